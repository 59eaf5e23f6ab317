"""Quantized and binary layers for Flax NNX, thin over ``htaf_jax.binary``.

The same classes, fields, defaults and parameter names as
``htaf_jax.linen.binary``, whose dataclass fields each layer here takes (declared
once, there); NNX layers also take the input size (``in_features``) first and
``rngs``. See the Linen module for the math.
"""

# The layers take their fields from the Linen classes when built, so a type checker cannot
# see them as attributes: that one check is off in this file.
# pyright: reportAttributeAccessIssue=false
from __future__ import annotations

import inspect

from flax import nnx
from jax import Array

from htaf_jax import binary as B
from htaf_jax.linen import binary as linen_binary
from htaf_jax.nnx._fields import bind, signature

__all__ = ["BinaryConv", "BinaryDense", "QuantConv", "QuantDense"]

_POSITIONAL = ("features", "kernel_size", "strides", "padding")  # after in_features


class _Layer(nnx.Module):
    """A quantized or binary layer with the fields of its Linen twin, ``linen``."""

    linen: type

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        after = [("rngs", inspect.Parameter.empty)]
        cls.__signature__ = signature(cls.linen, _POSITIONAL, ["in_features"], after)

    def __init__(self, in_features: int, *args, rngs: nnx.Rngs, **fields):
        values = bind(self, self.linen, args, fields, _POSITIONAL)
        kernel_init = values.pop("kernel_init")
        bias_init = values.pop("bias_init", nnx.initializers.zeros)
        for name, value in values.items():
            setattr(self, name, tuple(value) if name in ("kernel_size", "strides") else value)
        self.in_features = in_features
        binary = "surrogate" in values  # BinaryDense/Conv: the surrogate quantizes the kernel
        self._kernel_name = B.LATENT_KERNEL if binary else B.kernel_name(self.kernel_quantizer)
        shape = tuple(values.get("kernel_size", ())) + (in_features, self.features)
        setattr(self, self._kernel_name, nnx.Param(kernel_init(rngs.params(), shape)))
        bias = bias_init(rngs.params(), (self.features,)) if self.use_bias else None
        self.bias = None if bias is None else nnx.Param(bias)

    def __call__(self, x: Array) -> Array:
        B.check_input_features(type(self).__name__, self.in_features, x)
        kernel = getattr(self, self._kernel_name)[...]
        own = vars(self)
        conv = {"strides": self.strides, "padding": self.padding} if "strides" in own else {}
        return (B.quantized_conv if conv else B.quantized_dense)(
            x,
            B.constrained(kernel, own.get("kernel_constraint")),
            input_quantizer=B.sign_quantizer(own.get("input_quantizer")),
            kernel_quantizer=B.sign_quantizer(own.get("kernel_quantizer", own.get("surrogate"))),
            use_scale=self.use_scale,
            bias=None if self.bias is None else self.bias[...],
            **conv,
        )


class QuantDense(_Layer):
    """(..., in_features) → (..., features), Larq's ``QuantDense`` (see the Linen class)."""

    linen = linen_binary.QuantDense


class QuantConv(_Layer):
    """2-D convolution (NHWC in, HWIO kernel), Larq's ``QuantConv2D`` (see the Linen class)."""

    linen = linen_binary.QuantConv


class BinaryDense(_Layer):
    """(..., in_features) → (..., features) with ±1 weights (scaled per output if ``use_scale``)."""

    linen = linen_binary.BinaryDense


class BinaryConv(_Layer):
    """2-D convolution (NHWC in, HWIO ``latent_kernel``) with ±1 weights."""

    linen = linen_binary.BinaryConv
