"""The deep-Heaviside layer for Flax NNX, thin over ``htaf_jax.heaviside``.

The same class, fields, defaults and parameter names as
``htaf_jax.linen.heaviside.HeavisideDense``; it also takes ``in_features`` and
``rngs``. Train/eval: an explicit ``train`` call argument, mirroring the
Linen signature (``layer(x, train=True)`` updates the BatchNorm statistics
and, with ``mode="smooth"``, uses the smooth units).
"""

from __future__ import annotations

from typing import Callable

from flax import nnx
from jax import Array

from htaf_jax.heaviside import Mode, check_mode, mixed_units

__all__ = ["HeavisideDense"]


class HeavisideDense(nnx.Module):
    """(..., in_features) → (..., features) units in {0, 1} (linear ones real-valued)."""

    def __init__(
        self,
        in_features: int,
        features: int,
        *,
        mode: Mode = "hard",
        linear_fraction: float = 0.0,
        use_batchnorm: bool = True,
        momentum: float = 0.9,
        surrogate: str | Callable = "htaf",
        kernel_init: Callable = nnx.initializers.lecun_normal(),
        rngs: nnx.Rngs,
    ):
        check_mode(mode)
        self.in_features, self.features = in_features, features
        self.mode, self.linear_fraction, self.surrogate = mode, linear_fraction, surrogate
        self.use_batchnorm = use_batchnorm
        self.kernel = nnx.Param(kernel_init(rngs.params(), (in_features, features)))
        if use_batchnorm:
            self.bias = None
            self.bn = nnx.BatchNorm(features, momentum=momentum, rngs=rngs)
        else:
            self.bias = nnx.Param(nnx.initializers.zeros(rngs.params(), (features,)))
            self.bn = None

    def __call__(self, x: Array, train: bool = False, residual: Array | None = None) -> Array:
        z = x @ self.kernel[...]
        if self.bias is not None:
            z = z + self.bias[...]
        if residual is not None:
            z = z + residual
        if self.bn is not None:
            z = self.bn(z, use_running_average=not train)
        return mixed_units(
            z,
            self.surrogate,
            smooth=train and self.mode == "smooth",
            linear_fraction=self.linear_fraction,
        )
