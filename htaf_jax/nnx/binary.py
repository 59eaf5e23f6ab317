"""Quantized and binary layers for Flax NNX, thin over ``htaf_jax.binary``.

The same classes, fields, defaults and parameter names as
``htaf_jax.linen.binary``; NNX layers also take the input size
(``in_features``) and ``rngs``. See the Linen module for the math.
"""

from __future__ import annotations

from typing import Any, Callable

from flax import nnx
from jax import Array

from htaf_jax import binary as B

__all__ = ["BinaryConv", "BinaryDense", "QuantConv", "QuantDense"]

_lecun_normal = nnx.initializers.lecun_normal()


def _param(init: Callable, rngs: nnx.Rngs, shape: tuple[int, ...]) -> nnx.Param:
    return nnx.Param(init(rngs.params(), shape))


def _bias(self) -> Array | None:
    return None if self.bias is None else self.bias[...]


class QuantDense(nnx.Module):
    """(..., in_features) → (..., features), Larq's ``QuantDense`` (see the Linen class)."""

    def __init__(
        self,
        in_features: int,
        features: int,
        *,
        input_quantizer: Any = None,
        kernel_quantizer: Any = None,
        kernel_constraint: Any = None,
        use_scale: bool = False,
        use_bias: bool = True,
        kernel_init: Callable = _lecun_normal,
        bias_init: Callable = nnx.initializers.zeros,
        rngs: nnx.Rngs,
    ):
        self.in_features, self.features = in_features, features
        self.input_quantizer, self.kernel_quantizer = input_quantizer, kernel_quantizer
        self.kernel_constraint, self.use_scale, self.use_bias = (
            kernel_constraint,
            use_scale,
            use_bias,
        )
        self._kernel_name = B.kernel_name(kernel_quantizer)
        setattr(self, self._kernel_name, _param(kernel_init, rngs, (in_features, features)))
        self.bias = _param(bias_init, rngs, (features,)) if use_bias else None

    def __call__(self, x: Array) -> Array:
        B.check_input_features("QuantDense", self.in_features, x)
        kernel = B.constrained(getattr(self, self._kernel_name)[...], self.kernel_constraint)
        return B.quantized_dense(
            x,
            kernel,
            input_quantizer=B.sign_quantizer(self.input_quantizer),
            kernel_quantizer=B.sign_quantizer(self.kernel_quantizer),
            use_scale=self.use_scale,
            bias=_bias(self),
        )


class QuantConv(nnx.Module):
    """2-D convolution (NHWC in, HWIO kernel), Larq's ``QuantConv2D`` (see the Linen class)."""

    def __init__(
        self,
        in_features: int,
        features: int,
        kernel_size: tuple[int, int] = (3, 3),
        strides: tuple[int, int] = (1, 1),
        padding: Any = "SAME",
        *,
        input_quantizer: Any = None,
        kernel_quantizer: Any = None,
        kernel_constraint: Any = None,
        use_scale: bool = False,
        use_bias: bool = True,
        kernel_init: Callable = _lecun_normal,
        bias_init: Callable = nnx.initializers.zeros,
        rngs: nnx.Rngs,
    ):
        self.in_features, self.features = in_features, features
        self.kernel_size, self.strides, self.padding = tuple(kernel_size), tuple(strides), padding
        self.input_quantizer, self.kernel_quantizer = input_quantizer, kernel_quantizer
        self.kernel_constraint, self.use_scale, self.use_bias = (
            kernel_constraint,
            use_scale,
            use_bias,
        )
        self._kernel_name = B.kernel_name(kernel_quantizer)
        shape = self.kernel_size + (in_features, features)
        setattr(self, self._kernel_name, _param(kernel_init, rngs, shape))
        self.bias = _param(bias_init, rngs, (features,)) if use_bias else None

    def __call__(self, x: Array) -> Array:
        B.check_input_features("QuantConv", self.in_features, x)
        kernel = B.constrained(getattr(self, self._kernel_name)[...], self.kernel_constraint)
        return B.quantized_conv(
            x,
            kernel,
            strides=self.strides,
            padding=self.padding,
            input_quantizer=B.sign_quantizer(self.input_quantizer),
            kernel_quantizer=B.sign_quantizer(self.kernel_quantizer),
            use_scale=self.use_scale,
            bias=_bias(self),
        )


class BinaryDense(nnx.Module):
    """(..., in_features) → (..., features) with ±1 weights (scaled per output if ``use_scale``)."""

    def __init__(
        self,
        in_features: int,
        features: int,
        *,
        use_scale: bool = True,
        use_bias: bool = False,
        surrogate: str | Callable = "htaf",
        kernel_init: Callable = _lecun_normal,
        rngs: nnx.Rngs,
    ):
        self.in_features, self.features = in_features, features
        self.use_scale, self.use_bias, self.surrogate = use_scale, use_bias, surrogate
        setattr(self, B.LATENT_KERNEL, _param(kernel_init, rngs, (in_features, features)))
        self.bias = _param(nnx.initializers.zeros, rngs, (features,)) if use_bias else None

    def __call__(self, x: Array) -> Array:
        B.check_input_features("BinaryDense", self.in_features, x)
        return B.quantized_dense(
            x,
            getattr(self, B.LATENT_KERNEL)[...],
            kernel_quantizer=B.sign_quantizer(self.surrogate),
            use_scale=self.use_scale,
            bias=_bias(self),
        )


class BinaryConv(nnx.Module):
    """2-D convolution (NHWC in, HWIO ``latent_kernel``) with ±1 weights."""

    def __init__(
        self,
        in_features: int,
        features: int,
        kernel_size: tuple[int, int] = (3, 3),
        strides: tuple[int, int] = (1, 1),
        padding: Any = "SAME",
        *,
        use_scale: bool = True,
        use_bias: bool = False,
        surrogate: str | Callable = "htaf",
        kernel_init: Callable = _lecun_normal,
        rngs: nnx.Rngs,
    ):
        self.in_features, self.features = in_features, features
        self.kernel_size, self.strides, self.padding = tuple(kernel_size), tuple(strides), padding
        self.use_scale, self.use_bias, self.surrogate = use_scale, use_bias, surrogate
        shape = self.kernel_size + (in_features, features)
        setattr(self, B.LATENT_KERNEL, _param(kernel_init, rngs, shape))
        self.bias = _param(nnx.initializers.zeros, rngs, (features,)) if use_bias else None

    def __call__(self, x: Array) -> Array:
        B.check_input_features("BinaryConv", self.in_features, x)
        return B.quantized_conv(
            x,
            getattr(self, B.LATENT_KERNEL)[...],
            strides=self.strides,
            padding=self.padding,
            kernel_quantizer=B.sign_quantizer(self.surrogate),
            use_scale=self.use_scale,
            bias=_bias(self),
        )
