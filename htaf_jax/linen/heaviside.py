"""The deep-Heaviside layer for Flax Linen, thin over ``htaf_jax.heaviside``.

``HeavisideDense``: z = W x (+ b without BatchNorm) (+ residual) → optional
BatchNorm → unit, the unit being H(z) (or, in training with
``mode="smooth"``, the surrogate's smooth forward), with a fraction
``linear_fraction`` of the units left linear (Kong et al. 2025's "mixed"
DHN). Evaluation (``train=False``) always uses true Heaviside units:
BatchNorm at evaluation is an affine map with positive scale (for a positive
γ), which only moves each unit's threshold, so the evaluated layer is an
exact Heaviside layer. ``htaf_jax.nnx.heaviside`` has the same class.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
from jax import Array

from htaf_jax.heaviside import Mode, check_mode, mixed_units

__all__ = ["HeavisideDense"]


class HeavisideDense(nn.Module):
    """(..., in) → (..., features) units in {0, 1} (linear ones real-valued).

    Parameters: ``kernel`` (in, features); ``bias`` without BatchNorm; BatchNorm
    ``bn`` (scale, bias; batch stats mean, var) with ``use_batchnorm``.
    Call: ``layer(x, train=False, residual=None)``; ``residual`` (..., features)
    is added to W x before the norm (a DHN skip connection's V·x).
    """

    features: int
    mode: Mode = "hard"
    linear_fraction: float = 0.0
    use_batchnorm: bool = True
    momentum: float = 0.9
    surrogate: str | Callable = "htaf"
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: Array, train: bool = False, residual: Array | None = None) -> Array:
        check_mode(self.mode)
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        z = x @ kernel
        if not self.use_batchnorm:
            z = z + self.param("bias", nn.initializers.zeros, (self.features,))
        if residual is not None:
            z = z + residual
        if self.use_batchnorm:
            z = nn.BatchNorm(use_running_average=not train, momentum=self.momentum, name="bn")(z)
        return mixed_units(
            z,
            self.surrogate,
            smooth=train and self.mode == "smooth",
            linear_fraction=self.linear_fraction,
        )
