"""Deep Heaviside networks (DHNs): hidden units are Heaviside steps H(z) ∈ {0, 1}.

Three variants of Kong, Chen, Langer & Schmidt-Hieber's (arXiv 2505.00110) networks,
whose units and training modes are :mod:`htaf_jax.heaviside`'s:

- ``plain``: h_l = H(BN(W_l h_{l−1})).
- ``skip``: every hidden layer also reads the network input x through its own
  linear map, h_l = H(BN(W_l h_{l−1} + V_l x)), so depth never cuts the path
  from x (for the CNN, x is max-pooled to the layer's resolution and mapped by
  a 1×1 convolution). The paper's exact skip topology could not be read here;
  this is the input-to-every-layer form.
- ``mixed``: a fraction ``linear_fraction`` of each layer's units is linear
  (identity), the rest Heaviside.

Evaluation (``train=False``) always uses true Heaviside units, so the evaluated network
is an exact DHN. The MLP's hidden layers are ``htaf_jax.linen.HeavisideDense`` layers
named ``layer{l}`` (kernel, and BatchNorm ``bn``; ``skip{l}`` for the skip map), which
the depth study reads per-layer gradient norms from; the CNN's are ``layer{l}`` (Conv)
and ``bn{l}``.
"""

from __future__ import annotations

from typing import Callable, Literal

import chex
import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from htaf_jax.heaviside import Mode, check_mode, linear_count, mixed_units
from htaf_jax.linen.heaviside import HeavisideDense
from htaf_jax.models.registry import register_model

__all__ = ["HeavisideMLP", "HeavisideCNN"]

Variant = Literal["plain", "skip", "mixed"]


class _HeavisideBase(nn.Module):
    """Fields and the unit shared by both DHNs (not used on its own)."""

    depth: int = 4
    num_classes: int = 10
    variant: Variant = "plain"
    mode: Mode = "hard"
    linear_fraction: float = 0.25
    use_batchnorm: bool = True
    surrogate: str | Callable = "htaf"

    def _check(self):
        if self.variant not in ("plain", "skip", "mixed"):
            raise ValueError(f"variant must be plain, skip or mixed, got {self.variant!r}")
        check_mode(self.mode)
        if self.depth < 1:
            raise ValueError(f"depth must be ≥ 1, got {self.depth}")

    @property
    def _linear_fraction(self) -> float:
        return self.linear_fraction if self.variant == "mixed" else 0.0

    def _record(self, h: Array, index: int) -> None:
        """Sows the share of active Heaviside units (the linear ones left out)."""
        n_linear = linear_count(h.shape[-1], self._linear_fraction)
        self.sow("intermediates", f"active_rate_layer{index}", jnp.mean(h[..., n_linear:]))

    def _unit(self, z: Array, train: bool, index: int) -> Array:
        """Heaviside (or smooth, when training in smooth mode) units on z (..., C)."""
        h = mixed_units(
            z,
            self.surrogate,
            smooth=train and self.mode == "smooth",
            linear_fraction=self._linear_fraction,
        )
        self._record(h, index)
        return h

    def _norm(self, z: Array, train: bool, index: int) -> Array:
        if not self.use_batchnorm:
            return z
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn{index}")(z)


@register_model("dhn_mlp")
class HeavisideMLP(_HeavisideBase):
    """Flatten → ``depth`` Heaviside layers of ``width`` units → Dense head."""

    width: int = 256

    @nn.compact
    def __call__(self, images: Array, train: bool = False) -> Array:
        self._check()
        chex.assert_rank(images, 4)
        x = images.reshape(images.shape[0], -1)
        h = x
        for i in range(self.depth):
            residual = None
            if self.variant == "skip" and i > 0:
                residual = nn.Dense(self.width, use_bias=False, name=f"skip{i}")(x)
            h = HeavisideDense(
                self.width,
                mode=self.mode,
                linear_fraction=self._linear_fraction,
                use_batchnorm=self.use_batchnorm,
                surrogate=self.surrogate,
                name=f"layer{i}",
            )(h, train, residual)
            self._record(h, i)
        logits = nn.Dense(self.num_classes, name="head")(h)
        chex.assert_shape(logits, (images.shape[0], self.num_classes))
        return logits


@register_model("dhn_cnn")
class HeavisideCNN(_HeavisideBase):
    """``depth`` Conv3×3 Heaviside layers of ``features`` channels → Dense head.

    Layers 0 and 1 are followed by a 2×2 max pool (28 → 14 → 7), which keeps
    Heaviside outputs binary; deeper layers stay at the last resolution.
    """

    features: int = 32
    num_pools: int = 2

    @nn.compact
    def __call__(self, images: Array, train: bool = False) -> Array:
        self._check()
        chex.assert_rank(images, 4)
        x = images
        h = x
        for i in range(self.depth):
            z = nn.Conv(
                self.features,
                (3, 3),
                padding="SAME",
                use_bias=not self.use_batchnorm,
                name=f"layer{i}",
            )(h)
            if self.variant == "skip" and i > 0:
                factor = x.shape[1] // z.shape[1]
                x_here = nn.max_pool(x, (factor, factor), (factor, factor)) if factor > 1 else x
                z = z + nn.Conv(self.features, (1, 1), use_bias=False, name=f"skip{i}")(x_here)
            h = self._unit(self._norm(z, train, i), train, i)
            if i < self.num_pools:
                h = nn.max_pool(h, (2, 2), (2, 2))
        logits = nn.Dense(self.num_classes, name="head")(h.reshape(h.shape[0], -1))
        chex.assert_shape(logits, (images.shape[0], self.num_classes))
        return logits
