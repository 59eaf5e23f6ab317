"""``ConceptBottleneck`` for Flax NNX: projection → BatchNorm → binary unit.

The twin of ``htaf_jax.linen.concepts.ConceptBottleneck``: the same fields,
defaults and parameter names (``proj.kernel``, ``norm.scale/bias/mean/var``),
plus the input size and ``rngs``. Train/eval mode is an explicit ``train``
call argument, as in Linen (not ``model.train()``/``model.eval()``), so one
call signature serves both front ends.

    layer = ConceptBottleneck(256, 32, sharpen=16.0, total_train_steps=1000,
                              rngs=nnx.Rngs(0))
    z = layer(h, train=True, step=step)

With ``rate_penalty > 0`` the layer keeps the training loss term λ·mean(z)
of its last call in an ``AuxLoss`` variable (0 after an evaluation call); a
train step adds ``sum(jax.tree.leaves(nnx.state(model, AuxLoss)))`` to its
loss, the NNX counterpart of the Linen layer's sown ``losses``.
"""

# Fields come from the concept spec at build time: pyright cannot see them.
# pyright: reportAttributeAccessIssue=false
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax import Array

from htaf_jax import concepts as core
from htaf_jax.units import resolve_unit

__all__ = ["AuxLoss", "ConceptBottleneck"]


class AuxLoss(nnx.Intermediate):
    """A term the training loss should add (set on every call of the module that owns it)."""


class ConceptBottleneck(nnx.Module):
    """Features h (B, in_features) → concepts z (B, K): z = u(s(t) · BN(W h)).

    Fields and defaults: ``htaf_jax.concepts.ConceptFields`` (keyword arguments,
    ``num_concepts`` also positional), plus ``in_features`` (D) and ``rngs`` (``params`` for the projection; ``dropout`` for the noise,
    kept as a forked stream when ``concept_noise > 0``).

    Call: ``layer(h, train=False, step=None, rngs=None)``; ``rngs`` (a key or a
    stream) overrides the stored noise stream. The last call's statistics are
    kept in ``nnx.Intermediate`` variables ``near_binary`` (units with a smooth
    form) and ``concept_rate``, and with ``rate_penalty > 0`` the ``AuxLoss``
    ``on_rate_penalty`` (training calls; 0 after an evaluation call), overwritten on every call so the module's state
    keeps its structure under ``nnx.jit``.
    """

    def __init__(
        self,
        in_features: int,
        num_concepts: int = core.ConceptFields.num_concepts,
        *,
        rngs: nnx.Rngs,
        **fields,
    ):
        f = core.ConceptFields(num_concepts=num_concepts, **fields)
        f.check_concept_fields()
        for name, value in f.concept_fields().items():
            setattr(self, name, value)
        self.proj = nnx.Linear(in_features, f.num_concepts, use_bias=False, rngs=rngs)
        self.norm = nnx.BatchNorm(
            f.num_concepts,
            momentum=f.momentum,
            epsilon=f.epsilon,
            use_scale=f.norm_affine,
            use_bias=f.norm_affine,
            rngs=rngs,
        )
        self.rngs = rngs["dropout"].fork() if f.concept_noise > 0 else nnx.data(None)
        self.has_smooth = resolve_unit(f.surrogate).has_smooth
        if self.has_smooth:
            self.near_binary = nnx.Intermediate(jnp.zeros((), jnp.float32))
        self.concept_rate = nnx.Intermediate(jnp.zeros((), jnp.float32))
        if f.rate_penalty > 0:
            self.on_rate_penalty = AuxLoss(jnp.zeros((), jnp.float32))

    def sharpness(self, train: bool = False, step: Array | int | None = None) -> Array:
        """s at ``step`` (a float32 scalar); ``step=None`` as in the Linen layer."""
        return core.layer_sharpness(self, train, step)  # pyright: ignore[reportArgumentType]

    def preactivations(
        self, h: Array, train: bool = False, step: Array | int | None = None
    ) -> Array:
        """s · (BN(W h) − θ) (B, K) without noise: ≥ 0 ⇔ the hard concept is on."""
        normed = self.norm(self.proj(h), use_running_average=not train)
        return core.concept_preactivations(
            normed, self.sharpness(train, step), offset=self.concept_offset
        )

    def __call__(
        self,
        h: Array,
        train: bool = False,
        step: Array | int | None = None,
        rngs: nnx.RngStream | Array | None = None,
    ) -> Array:
        normed = self.norm(self.proj(h), use_running_average=not train)
        key = None
        if train and self.concept_noise > 0:
            stream = self.rngs if rngs is None else rngs
            key = stream if isinstance(stream, jax.Array) else stream()  # pyright: ignore[reportOptionalCall]
        z, stats = core.concept_layer(self, normed, train=train, step=step, key=key)  # pyright: ignore[reportArgumentType]
        for name, value in stats.items():
            getattr(self, name)[...] = value
        return z
