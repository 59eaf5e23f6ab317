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


def _apply(module: nn.Module, x: Array, op, shape: tuple[int, ...], *, name: str, **quant) -> Array:
    """``op`` (quantized_dense or quantized_conv) with the module's kernel ``name`` of
    ``shape``, its bias and ``quant``: the quantizers and the constraint."""
    if module.has_variable("params", name):  # after init: the input must match the kernel
        B.check_input_features(
            type(module).__name__, module.get_variable("params", name).shape[-2], x
        )
    kernel = module.param(name, module.kernel_init, shape)
    bias_init = getattr(module, "bias_init", nn.initializers.zeros)
    bias = module.param("bias", bias_init, (module.features,)) if module.use_bias else None
    return op(
        x,
        B.constrained(kernel, quant.pop("kernel_constraint", None)),
        input_quantizer=B.sign_quantizer(quant.pop("input_quantizer", None)),
        kernel_quantizer=B.sign_quantizer(quant.pop("kernel_quantizer")),
        use_scale=module.use_scale,
        bias=bias,
        **quant,
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
        return _apply(
            self,
            x,
            B.quantized_dense,
            (x.shape[-1], self.features),
            name=B.kernel_name(self.kernel_quantizer),
            input_quantizer=self.input_quantizer,
            kernel_quantizer=self.kernel_quantizer,
            kernel_constraint=self.kernel_constraint,
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
        return _apply(
            self,
            x,
            B.quantized_conv,
            tuple(self.kernel_size) + (x.shape[-1], self.features),
            name=B.kernel_name(self.kernel_quantizer),
            input_quantizer=self.input_quantizer,
            kernel_quantizer=self.kernel_quantizer,
            kernel_constraint=self.kernel_constraint,
            strides=self.strides,
            padding=self.padding,
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
        shape = (x.shape[-1], self.features)
        return _apply(
            self, x, B.quantized_dense, shape, name=B.LATENT_KERNEL, kernel_quantizer=self.surrogate
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
        return _apply(
            self,
            x,
            B.quantized_conv,
            tuple(self.kernel_size) + (x.shape[-1], self.features),
            name=B.LATENT_KERNEL,
            kernel_quantizer=self.surrogate,
            strides=self.strides,
            padding=self.padding,
        )
