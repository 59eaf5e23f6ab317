"""Binary networks: binarised weights and activations (BinaryNet / XNOR-Net style).

A binary layer keeps real-valued latent weights W and computes with
sign(W) ∈ {−1, +1} (sign(0) = +1); the backward pass is the surrogate's,
2·grad(W) (for straight-through "ste_hardtanh": 1 for |W| ≤ 1, as BinaryNet,
Courbariaux et al. 2016). With ``use_scale`` the kernel is sign(W)·a with a
per-output-channel a = mean|W| over the inputs (XNOR-Net, Rastegari et al.
2016). Activations are binarised the same way, each after a BatchNorm, so
a block is BinaryDense/Conv → BN → sign.

After training, ``htaf_jax.models.bnn_export`` packs the ±1 kernels into bits.
"""
from __future__ import annotations

from typing import Callable, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from htaf_jax.models.binary_units import sign_unit
from htaf_jax.models.config_fields import module_kwargs
from htaf_jax.models.registry import register_model

__all__ = ["BinaryDense", "BinaryConv", "BinaryMLP", "BinaryConvNet",
           "binarize_weights", "LATENT_KERNEL"]

# Parameter name of every binarised kernel; the bit-packing export looks for it.
LATENT_KERNEL = "latent_kernel"


def binarize_weights(kernel: Array, sign_fn, use_scale: bool) -> tuple[Array, Array | None]:
    """(sign(kernel), per-output-channel mean|kernel| or None); channels on the last axis.

    Layers apply the scale after the ±1 product, as XNOR-Net does: with ±1
    inputs the product is an exact integer sum, so a tie is exactly 0 and
    binarises to +1 deterministically, however the kernel was stored.
    """
    signs = sign_fn(kernel)
    if not use_scale:
        return signs, None
    return signs, jnp.mean(jnp.abs(kernel), axis=tuple(range(kernel.ndim - 1)))


def _scaled(y: Array, scale: Array | None) -> Array:
    return y if scale is None else y * scale


class BinaryDense(nn.Module):
    """Dense layer with ±1 weights (times a per-output scale if ``use_scale``).

    (..., in) → (..., features). The input is not binarised here; binarise
    activations with ``sign_unit`` after a BatchNorm.
    """
    features: int
    use_scale: bool = True
    use_bias: bool = False
    surrogate: str | Callable = "htaf"
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param(LATENT_KERNEL, self.kernel_init, (x.shape[-1], self.features))
        signs, scale = binarize_weights(kernel, sign_unit(self.surrogate), self.use_scale)
        y = _scaled(x @ signs, scale)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y


class BinaryConv(nn.Module):
    """2-D convolution (NHWC, HWIO kernel) with ±1 weights (scaled per output channel)."""
    features: int
    kernel_size: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    padding: str = "SAME"
    use_scale: bool = True
    use_bias: bool = False
    surrogate: str | Callable = "htaf"
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: Array) -> Array:
        chex.assert_rank(x, 4)
        shape = tuple(self.kernel_size) + (x.shape[-1], self.features)
        kernel = self.param(LATENT_KERNEL, self.kernel_init, shape)
        signs, scale = binarize_weights(kernel, sign_unit(self.surrogate), self.use_scale)
        y = _scaled(jax.lax.conv_general_dilated(
            x, signs, tuple(self.strides), self.padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC")), scale)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y


class BinaryMLP(nn.Module):
    """Flatten → [BinaryDense → BN → sign] per hidden layer → BinaryDense → BN.

    Every weight is binary. The input layer reads the real-valued
    (standardised) image, as BinaryNet's first layer does; the last
    BatchNorm (no binariser) scales the ±1-weighted logits. With
    ``full_precision_head`` the output layer is an ordinary Dense (XNOR-Net
    keeps the first and last layers real).
    """
    hidden: Sequence[int] = (1024, 1024)
    num_classes: int = 10
    use_scale: bool = True
    full_precision_head: bool = False
    dropout_rate: float = 0.0
    surrogate: str | Callable = "htaf"

    @nn.compact
    def __call__(self, images: Array, train: bool = False) -> Array:
        chex.assert_rank(images, 4)
        sign = sign_unit(self.surrogate)
        x = images.reshape(images.shape[0], -1)
        for i, width in enumerate(self.hidden):
            x = BinaryDense(width, self.use_scale, surrogate=self.surrogate, name=f"dense{i}")(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn{i}")(x)
            x = sign(x)
            self.sow("intermediates", f"positive_rate_layer{i}", jnp.mean(x > 0))
            if self.dropout_rate:
                x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        logits = _head(self, x, train)
        chex.assert_shape(logits, (images.shape[0], self.num_classes))
        return logits


class BinaryConvNet(nn.Module):
    """[BinaryConv3×3 → MaxPool2 → BN → sign] per stage → BinaryDense → BN → sign → head.

    Pooling comes before the BatchNorm and binariser, as in XNOR-Net's block
    order, so the max is taken over real-valued sums. The first convolution
    reads the real-valued image; with ``full_precision_first`` it is an
    ordinary convolution.
    """
    features: Sequence[int] = (32, 64)
    hidden: int = 256
    num_classes: int = 10
    use_scale: bool = True
    full_precision_first: bool = False
    full_precision_head: bool = False
    dropout_rate: float = 0.0
    surrogate: str | Callable = "htaf"

    @nn.compact
    def __call__(self, images: Array, train: bool = False) -> Array:
        chex.assert_rank(images, 4)
        sign = sign_unit(self.surrogate)
        x = images
        for i, feats in enumerate(self.features):
            if i == 0 and self.full_precision_first:
                x = nn.Conv(feats, (3, 3), padding="SAME", use_bias=False, name=f"conv{i}")(x)
            else:
                x = BinaryConv(feats, use_scale=self.use_scale, surrogate=self.surrogate,
                               name=f"conv{i}")(x)
            x = nn.max_pool(x, (2, 2), (2, 2))
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn{i}")(x)
            x = sign(x)
            self.sow("intermediates", f"positive_rate_layer{i}", jnp.mean(x > 0))
        x = x.reshape(x.shape[0], -1)
        n = len(self.features)
        x = BinaryDense(self.hidden, self.use_scale, surrogate=self.surrogate, name="dense")(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn{n}")(x)
        x = sign(x)
        if self.dropout_rate:
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        logits = _head(self, x, train)
        chex.assert_shape(logits, (images.shape[0], self.num_classes))
        return logits


def _head(model, x: Array, train: bool) -> Array:
    """The output layer shared by both models (called inside their compact scope)."""
    if model.full_precision_head:
        return nn.Dense(model.num_classes, name="head")(x)
    logits = BinaryDense(model.num_classes, model.use_scale, surrogate=model.surrogate,
                         name="head")(x)
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, name="head_bn")(logits)


@register_model("bnn_mlp")
def bnn_mlp(config) -> BinaryMLP:
    return BinaryMLP(**module_kwargs(BinaryMLP, config))


@register_model("bnn_conv")
def bnn_conv(config) -> BinaryConvNet:
    return BinaryConvNet(**module_kwargs(BinaryConvNet, config))
