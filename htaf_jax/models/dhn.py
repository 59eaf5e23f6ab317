"""Deep Heaviside networks (DHNs): hidden units are Heaviside steps H(z) ∈ {0, 1}.

Kong, Chen, Langer & Schmidt-Hieber ("On the expressivity of deep Heaviside
networks", arXiv 2505.00110) show that plain DHNs are limited in what they can
express and that skip connections, or some linear units per layer, fix that.
Three variants:

- ``plain``: h_l = H(BN(W_l h_{l−1})).
- ``skip``: every hidden layer also reads the network input x through its own
  linear map, h_l = H(BN(W_l h_{l−1} + V_l x)), so depth never cuts the path
  from x (for the CNN, x is max-pooled to the layer's resolution and mapped by
  a 1×1 convolution). The paper's exact skip topology could not be read here;
  this is the input-to-every-layer form.
- ``mixed``: a fraction ``linear_fraction`` of each layer's units is linear
  (identity), the rest Heaviside.

Training modes: ``mode="smooth"`` trains with the surrogate's smooth forward
(HTAF: σ(α·tanh(β·z))) and its true derivative; ``mode="hard"`` uses H(z)
forward with the surrogate derivative throughout. Evaluation
(``train=False``) always uses true Heaviside units, so the evaluated network
is an exact DHN. BatchNorm at evaluation is an affine map with positive
scale (for a positive BN γ), which only moves each unit's threshold.
Layer ``l``'s parameters live under ``layer{l}`` (``skip{l}`` for the skip
map), which the depth study reads per-layer gradient norms from.
"""
from __future__ import annotations

from typing import Callable, Literal

import chex
import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from htaf_jax.models.binary_units import heaviside_unit, smooth_unit
from htaf_jax.models.config_fields import module_kwargs
from htaf_jax.models.registry import register_model

__all__ = ["HeavisideMLP", "HeavisideCNN"]

Variant = Literal["plain", "skip", "mixed"]
Mode = Literal["smooth", "hard"]


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
        if self.mode not in ("smooth", "hard"):
            raise ValueError(f"mode must be smooth or hard, got {self.mode!r}")
        if self.depth < 1:
            raise ValueError(f"depth must be ≥ 1, got {self.depth}")

    def _unit(self, z: Array, train: bool, index: int) -> Array:
        """Heaviside (or smooth, when training in smooth mode) units on z (..., C)."""
        if train and self.mode == "smooth":
            smooth = smooth_unit(self.surrogate)
            if smooth is None:
                raise ValueError(f"surrogate {self.surrogate!r} has no smooth forward; "
                                 "train it with mode='hard'")
            h = smooth(z)
        else:
            h = heaviside_unit(self.surrogate)(z)
        if self.variant == "mixed":
            n_linear = int(round(self.linear_fraction * z.shape[-1]))
            h = jnp.concatenate([z[..., :n_linear], h[..., n_linear:]], axis=-1)
            h_binary = h[..., n_linear:]
        else:
            h_binary = h
        self.sow("intermediates", f"active_rate_layer{index}", jnp.mean(h_binary))
        return h

    def _norm(self, z: Array, train: bool, index: int) -> Array:
        if not self.use_batchnorm:
            return z
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn{index}")(z)


class HeavisideMLP(_HeavisideBase):
    """Flatten → ``depth`` Heaviside layers of ``width`` units → Dense head."""
    width: int = 256

    @nn.compact
    def __call__(self, images: Array, train: bool = False) -> Array:
        self._check()
        chex.assert_rank(images, 4)
        x = images.reshape(images.shape[0], -1)
        h = x
        for l in range(self.depth):
            z = nn.Dense(self.width, use_bias=not self.use_batchnorm, name=f"layer{l}")(h)
            if self.variant == "skip" and l > 0:
                z = z + nn.Dense(self.width, use_bias=False, name=f"skip{l}")(x)
            h = self._unit(self._norm(z, train, l), train, l)
        logits = nn.Dense(self.num_classes, name="head")(h)
        chex.assert_shape(logits, (images.shape[0], self.num_classes))
        return logits


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
        for l in range(self.depth):
            z = nn.Conv(self.features, (3, 3), padding="SAME", use_bias=not self.use_batchnorm,
                        name=f"layer{l}")(h)
            if self.variant == "skip" and l > 0:
                factor = x.shape[1] // z.shape[1]
                x_here = nn.max_pool(x, (factor, factor), (factor, factor)) if factor > 1 else x
                z = z + nn.Conv(self.features, (1, 1), use_bias=False, name=f"skip{l}")(x_here)
            h = self._unit(self._norm(z, train, l), train, l)
            if l < self.num_pools:
                h = nn.max_pool(h, (2, 2), (2, 2))
        logits = nn.Dense(self.num_classes, name="head")(h.reshape(h.shape[0], -1))
        chex.assert_shape(logits, (images.shape[0], self.num_classes))
        return logits


@register_model("dhn_mlp")
def dhn_mlp(config) -> HeavisideMLP:
    return HeavisideMLP(**module_kwargs(HeavisideMLP, config))


@register_model("dhn_cnn")
def dhn_cnn(config) -> HeavisideCNN:
    return HeavisideCNN(**module_kwargs(HeavisideCNN, config))
