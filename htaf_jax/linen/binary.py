"""Quantized and binary layers for Flax Linen, thin over ``htaf_jax.binary``.

``QuantDense`` / ``QuantConv``: Larq's layer shape. ``input_quantizer`` and
``kernel_quantizer`` (a ``htaf_jax.units`` name or ``Unit``: a step unit's ±1
form, another unit's own levels; any callable; None: real-valued) and ``kernel_constraint`` (None, "weight_clip"
or a callable, applied as ``htaf_jax.binary.constrained`` does):

    y = q_in(x) ⊛ q_k(c(W)) (· mean|W| per output with ``use_scale``) + b

The kernel is ``latent_kernel`` when it is quantized, ``kernel`` otherwise.

``BinaryDense`` / ``BinaryConv``: latent real weights ``latent_kernel``,
forward with sign(W) ∈ {−1, +1} (times mean|W| per output channel with
``use_scale``), backward the surrogate's 2·grad(W). Inputs are not binarised
here; a binary block is BinaryDense/Conv → BatchNorm → sign, so the
binariser sees normalised pre-activations.

The same classes, fields and defaults are in ``htaf_jax.nnx.binary``.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
from jax import Array

from htaf_jax import binary as B

__all__ = ["BinaryConv", "BinaryDense", "QuantConv", "QuantDense"]

Spec = Any  # a unit: None, a registry name, a Unit or a callable


def _check_features(module: nn.Module, name: str, x: Array) -> None:
    """Once the kernel exists (apply), the input must match the features it was made for."""
    if module.has_variable("params", name):
        B.check_input_features(
            type(module).__name__, module.get_variable("params", name).shape[-2], x
        )


class QuantDense(nn.Module):
    """(..., in) → (..., features), Larq's ``QuantDense``.

    Parameters: ``latent_kernel`` (or ``kernel`` unquantized) (in, features);
    ``bias`` (features,) if ``use_bias``.
    """

    features: int
    input_quantizer: Spec = None
    kernel_quantizer: Spec = None
    kernel_constraint: Spec = None
    use_scale: bool = False
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: Array) -> Array:
        _check_features(self, B.kernel_name(self.kernel_quantizer), x)
        kernel = self.param(
            B.kernel_name(self.kernel_quantizer), self.kernel_init, (x.shape[-1], self.features)
        )
        bias = self.param("bias", self.bias_init, (self.features,)) if self.use_bias else None
        return B.quantized_dense(
            x,
            B.constrained(kernel, self.kernel_constraint),
            input_quantizer=B.sign_quantizer(self.input_quantizer),
            kernel_quantizer=B.sign_quantizer(self.kernel_quantizer),
            use_scale=self.use_scale,
            bias=bias,
        )


class QuantConv(nn.Module):
    """2-D convolution (NHWC in, HWIO kernel), Larq's ``QuantConv2D``.

    (N, H, W, C) → (N, H', W', features).
    """

    features: int
    kernel_size: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    padding: Any = "SAME"
    input_quantizer: Spec = None
    kernel_quantizer: Spec = None
    kernel_constraint: Spec = None
    use_scale: bool = False
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: Array) -> Array:
        _check_features(self, B.kernel_name(self.kernel_quantizer), x)
        shape = tuple(self.kernel_size) + (x.shape[-1], self.features)
        kernel = self.param(B.kernel_name(self.kernel_quantizer), self.kernel_init, shape)
        bias = self.param("bias", self.bias_init, (self.features,)) if self.use_bias else None
        return B.quantized_conv(
            x,
            B.constrained(kernel, self.kernel_constraint),
            strides=self.strides,
            padding=self.padding,
            input_quantizer=B.sign_quantizer(self.input_quantizer),
            kernel_quantizer=B.sign_quantizer(self.kernel_quantizer),
            use_scale=self.use_scale,
            bias=bias,
        )


class BinaryDense(nn.Module):
    """(..., in) → (..., features) with ±1 weights (scaled per output if ``use_scale``).

    The configuration ``QuantDense(features, kernel_quantizer=sign_quantizer(surrogate),
    use_scale=True, use_bias=False)`` with the binary unit as a field.

    Parameters: ``latent_kernel`` (in, features); ``bias`` (features,) if ``use_bias``.
    """

    features: int
    use_scale: bool = True
    use_bias: bool = False
    surrogate: str | Callable = "htaf"
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: Array) -> Array:
        _check_features(self, B.LATENT_KERNEL, x)
        kernel = self.param(B.LATENT_KERNEL, self.kernel_init, (x.shape[-1], self.features))
        bias = (
            self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
        )
        return B.quantized_dense(
            x,
            kernel,
            kernel_quantizer=B.sign_quantizer(self.surrogate),
            use_scale=self.use_scale,
            bias=bias,
        )


class BinaryConv(nn.Module):
    """2-D convolution (NHWC in, HWIO ``latent_kernel``) with ±1 weights.

    (N, H, W, C) → (N, H', W', features). The configuration of ``QuantConv``
    that ``BinaryDense`` is of ``QuantDense``.
    """

    features: int
    kernel_size: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    padding: Any = "SAME"
    use_scale: bool = True
    use_bias: bool = False
    surrogate: str | Callable = "htaf"
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: Array) -> Array:
        _check_features(self, B.LATENT_KERNEL, x)
        shape = tuple(self.kernel_size) + (x.shape[-1], self.features)
        kernel = self.param(B.LATENT_KERNEL, self.kernel_init, shape)
        bias = (
            self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
        )
        return B.quantized_conv(
            x,
            kernel,
            strides=self.strides,
            padding=self.padding,
            kernel_quantizer=B.sign_quantizer(self.surrogate),
            use_scale=self.use_scale,
            bias=bias,
        )
