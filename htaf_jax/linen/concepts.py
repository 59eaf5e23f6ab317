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

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from htaf_jax import concepts as core
from htaf_jax.surrogates import resolve_surrogate

__all__ = ["ConceptBottleneck"]


class ConceptBottleneck(nn.Module):
    """Features h (B, D) → concepts z (B, K): z = u(s(t) · BN(W h)), see :mod:`htaf_jax.concepts`.

    Attributes:
      num_concepts: K.
      surrogate: the binary unit: a registry name, a ``Surrogate`` or a callable.
      concept_mode: training form, ``"smooth"`` (u.smooth, true derivative) or
        ``"hard"`` (H with the surrogate derivative; the only choice for units
        without a smooth form). Evaluation is always hard.
      concept_noise: std of the Gaussian noise added to BN(W h) in training (rng
        stream ``"dropout"``); 0: off.
      sharpen: final sharpness of ``concepts.sharpness_schedule``; 1: off.
      sharpen_fraction: share of training over which s ramps up.
      total_train_steps: length of training, needed in training when ``sharpen > 1``.
      binary_eps: ε of the sown ``near_binary`` statistic.
      momentum, epsilon: of the BatchNorm.
      norm_affine: the BatchNorm learns a scale and a bias (False: plain
        standardisation, so ``concept_offset`` is a hard on-rate cap).
      concept_offset: θ subtracted from BN(W h) before the unit (0: off);
        ``htaf_jax.concepts.offset_for_on_rate(r)`` gives the θ whose cap is r.
      rate_penalty: λ of the sown training loss λ·mean(z) (0: not sown).

    Call: ``layer(h, train=False, step=None)``. ``step`` is the number of train
    steps taken (the engine passes its step counter); with ``step=None``
    evaluation takes training as finished (s = ``sharpen``), and training with
    ``sharpen > 1`` raises. Sown (``intermediates``): ``near_binary`` (share of
    smooth concepts within ``binary_eps`` of {0, 1}, units with a smooth form
    only) and ``concept_rate`` (mean hard concept); in training with
    ``rate_penalty > 0``, ``losses``: ``on_rate_penalty``.
    """

    num_concepts: int
    surrogate: str | Callable = "htaf"
    concept_mode: core.ConceptMode = "smooth"
    concept_noise: float = 0.0
    sharpen: float = 1.0
    sharpen_fraction: float = 0.75
    total_train_steps: int = 0
    binary_eps: float = 0.01
    momentum: float = 0.9
    epsilon: float = 1e-5
    norm_affine: bool = True
    concept_offset: float = 0.0
    rate_penalty: float = 0.0

    def setup(self):
        core.check_concept_options(self.concept_mode, self.concept_noise, self.sharpen,
                                   self.sharpen_fraction, self.concept_offset,
                                   self.rate_penalty)
        self.proj = nn.Dense(self.num_concepts, use_bias=False)
        self.norm = nn.BatchNorm(momentum=self.momentum, epsilon=self.epsilon,
                                 use_scale=self.norm_affine, use_bias=self.norm_affine)

    def sharpness(self, train: bool = False, step: Array | int | None = None) -> Array:
        """s at ``step`` (a float32 scalar); see the class doc for ``step=None``."""
        return core.sharpness_at(step, train=train, total_steps=self.total_train_steps,
                                 sharpen=self.sharpen, fraction=self.sharpen_fraction)

    def preactivations(self, h: Array, train: bool = False,
                       step: Array | int | None = None) -> Array:
        """s · (BN(W h) − θ) (B, K) without noise: ≥ 0 ⇔ the hard concept is on; ranks
        examples."""
        normed = self.norm(self.proj(h), use_running_average=not train)
        return core.concept_preactivations(normed, self.sharpness(train, step),
                                           offset=self.concept_offset)

    def __call__(self, h: Array, train: bool = False, step: Array | int | None = None) -> Array:
        normed = self.norm(self.proj(h), use_running_average=not train)
        key = self.make_rng("dropout") if train and self.concept_noise > 0 else None
        z, pre = core.binary_concepts(normed, self.surrogate, mode=self.concept_mode,
                                      train=train, sharpness=self.sharpness(train, step),
                                      noise_std=self.concept_noise, key=key,
                                      offset=self.concept_offset)
        if train and self.rate_penalty > 0:
            self.sow("losses", "on_rate_penalty", core.on_rate_penalty(z, self.rate_penalty))
        unit = resolve_surrogate(self.surrogate)
        if getattr(unit, "has_smooth", False):
            self.sow("intermediates", "near_binary",
                     core.near_binary_share(unit.smooth(pre), self.binary_eps))
        self.sow("intermediates", "concept_rate", jnp.mean(unit.heaviside(pre)))
        return z
