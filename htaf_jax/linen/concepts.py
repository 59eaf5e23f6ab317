"""``ConceptBottleneck`` for Flax Linen: projection → BatchNorm → binary unit.

The ICBM's concept layer (``htaf_jax.models.icbm``), usable in any Linen
model. The math after the batch norm is :mod:`htaf_jax.concepts`; the NNX
twin (``htaf_jax.nnx.concepts``) has the same fields, defaults and parameter
names (``proj/kernel``, ``norm/{scale,bias}`` (absent with ``norm_affine=False``),
``batch_stats`` ``norm/{mean,var}``).

    layer = ConceptBottleneck(num_concepts=32, sharpen=16.0, total_train_steps=1000)
    z, updates = layer.apply(variables, h, train=True, step=state.step,
                             rngs={"dropout": key}, mutable=["batch_stats"])

Sparse concepts (see :mod:`htaf_jax.concepts`): ``norm_affine=False`` with
``concept_offset=θ`` caps every concept's on-rate per training batch at
1/(1 + θ²) without any loss term; ``rate_penalty=λ`` sows λ·mean(z) in the
``losses`` collection, for a trainer that adds the sown losses to its loss
(``loss + sum(jax.tree.leaves(updates["losses"]))`` with ``"losses"`` mutable;
when the collection is not mutable the sow does nothing).
"""

from __future__ import annotations

import flax.linen as nn
from jax import Array

from htaf_jax import concepts as core

__all__ = ["ConceptBottleneck"]


class ConceptBottleneck(nn.Module, core.ConceptFields):
    """Features h (B, D) → concepts z (B, K): z = u(s(t) · BN(W h)), see :mod:`htaf_jax.concepts`.

    Fields and defaults: ``htaf_jax.concepts.ConceptFields`` (keyword-only).

    Call: ``layer(h, train=False, step=None)``. ``step`` is the number of train
    steps taken (the engine passes its step counter); with ``step=None``
    evaluation takes training as finished (s = ``sharpen``), and training with
    ``sharpen > 1`` raises. Sown (``intermediates``): ``near_binary`` (share of
    smooth concepts within ``binary_eps`` of {0, 1}, units with a smooth form
    only) and ``concept_rate`` (mean hard concept); in training with
    ``rate_penalty > 0``, ``losses``: ``on_rate_penalty``.
    """

    def setup(self):
        self.check_concept_fields()
        self.proj = nn.Dense(self.num_concepts, use_bias=False)
        self.norm = nn.BatchNorm(
            momentum=self.momentum,
            epsilon=self.epsilon,
            use_scale=self.norm_affine,
            use_bias=self.norm_affine,
        )

    def sharpness(self, train: bool = False, step: Array | int | None = None) -> Array:
        """s at ``step`` (a float32 scalar); see the class doc for ``step=None``."""
        return core.layer_sharpness(self, train, step)

    def preactivations(
        self, h: Array, train: bool = False, step: Array | int | None = None
    ) -> Array:
        """s · (BN(W h) − θ) (B, K) without noise: ≥ 0 ⇔ the hard concept is on; ranks
        examples."""
        normed = self.norm(self.proj(h), use_running_average=not train)
        return core.concept_preactivations(
            normed, self.sharpness(train, step), offset=self.concept_offset
        )

    def __call__(self, h: Array, train: bool = False, step: Array | int | None = None) -> Array:
        normed = self.norm(self.proj(h), use_running_average=not train)
        key = self.make_rng("dropout") if train and self.concept_noise > 0 else None
        z, stats = core.concept_layer(self, normed, train=train, step=step, key=key)
        penalty = stats.pop("on_rate_penalty", None)
        if train and penalty is not None:
            self.sow("losses", "on_rate_penalty", penalty)
        for name, value in stats.items():
            self.sow("intermediates", name, value)
        return z
