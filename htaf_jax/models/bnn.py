"""Binary networks built from ``htaf_jax.linen.binary`` (BinaryNet / XNOR-Net style).

Every weight is binary: ``BinaryDense``/``BinaryConv`` keep real latent
weights and compute with sign(W) (times a per-output-channel mean|W| with
``use_scale``, XNOR-Net, Rastegari et al. 2016), backward the surrogate's
2·grad(W) (for straight-through "ste_hardtanh": BinaryNet's 1[|W| ≤ 1],
Courbariaux et al. 2016). Activations are binarised the same way, each
after a BatchNorm, so a block is BinaryDense/Conv → BN → sign.

After training, ``htaf_jax.models.bnn_export`` packs the ±1 kernels into bits
and ``htaf_jax.packing`` runs the MLP on them with XNOR/popcount.
"""

from __future__ import annotations

from typing import Callable, Sequence

import chex
import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from htaf_jax.binary import sign_quantizer
from htaf_jax.linen.binary import BinaryConv, BinaryDense
from htaf_jax.models.registry import register_model

__all__ = ["BinaryMLP", "BinaryConvNet"]


@register_model("bnn_mlp")
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
        sign = sign_quantizer(self.surrogate)
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


@register_model("bnn_conv")
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
        sign = sign_quantizer(self.surrogate)
        x = images
        for i, feats in enumerate(self.features):
            if i == 0 and self.full_precision_first:
                x = nn.Conv(feats, (3, 3), padding="SAME", use_bias=False, name=f"conv{i}")(x)
            else:
                x = BinaryConv(
                    feats, use_scale=self.use_scale, surrogate=self.surrogate, name=f"conv{i}"
                )(x)
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
    logits = BinaryDense(
        model.num_classes, model.use_scale, surrogate=model.surrogate, name="head"
    )(x)
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, name="head_bn")(logits)
