"""The deep-Heaviside layer for Flax NNX, thin over ``htaf_jax.heaviside``.

The same class, fields, defaults and parameter names as
``htaf_jax.linen.heaviside.HeavisideDense``; it also takes ``in_features`` and
``rngs``. Train/eval: an explicit ``train`` call argument, mirroring the
Linen signature (``layer(x, train=True)`` updates the BatchNorm statistics
and, with ``mode="smooth"``, uses the smooth units).
"""

# The layer takes its fields from the Linen class when built, so a type checker cannot
# see them as attributes: that one check is off in this file.
# pyright: reportAttributeAccessIssue=false
from __future__ import annotations

import inspect

from flax import nnx
from jax import Array

from htaf_jax.heaviside import check_mode, mixed_units
from htaf_jax.linen import heaviside as linen_heaviside
from htaf_jax.nnx._fields import bind, signature

__all__ = ["HeavisideDense"]


class HeavisideDense(nnx.Module):
    """(..., in_features) → (..., features) units in {0, 1} (linear ones real-valued)."""

    def __init__(self, in_features: int, *args, rngs: nnx.Rngs, **fields):
        values = bind(self, linen_heaviside.HeavisideDense, args, fields, ("features",))
        check_mode(values["mode"])
        kernel_init, momentum = values.pop("kernel_init"), values.pop("momentum")
        for name, value in values.items():
            setattr(self, name, value)
        self.in_features = in_features
        self.kernel = nnx.Param(kernel_init(rngs.params(), (in_features, self.features)))
        if self.use_batchnorm:
            self.bias, self.bn = None, nnx.BatchNorm(self.features, momentum=momentum, rngs=rngs)
        else:
            zeros = nnx.initializers.zeros(rngs.params(), (self.features,))
            self.bias, self.bn = nnx.Param(zeros), None

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


HeavisideDense.__signature__ = signature(
    linen_heaviside.HeavisideDense,
    ("features",),
    ["in_features"],
    [("rngs", inspect.Parameter.empty)],
)
