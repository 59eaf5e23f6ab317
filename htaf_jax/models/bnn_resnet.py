"""A Bi-Real-Net-style binary ResNet (Liu et al., ECCV 2018, "Bi-Real Net").

Every binary 3×3 convolution has its own real-valued identity shortcut, so the
residual stream between convolutions stays real and only what a convolution
reads is binarised:

    x ↦ BN(QuantConv3×3(q(x); q(W))·a) + shortcut(x)

q is the chosen binary unit (forward sign, backward its rule), on the
activations and on the weights, a = mean|W| per output channel (the
real-valued scale Bi-Real Net's magnitude-aware sign gives the weights).
A block that halves the resolution or changes the width takes its shortcut
through 2×2 average pooling and a real 1×1 convolution with BatchNorm, as
Bi-Real Net does. The stem convolution and the classifier are real-valued
(ReLU → global average pool → Dense, as Larq's zoo BiRealNet). Stages halve
the resolution after the first (28×28: 28, 14, 7; 32×32: 32, 16, 8).

``react=True`` adds ReActNet's two learnable reshapings (Liu et al., ECCV 2020,
"ReActNet"): RSign, a per-channel threshold subtracted before the binary unit,
q(x − t_c), and RPReLU after the shortcut sum, z ↦ PReLU(z − γ_c; β_c) + ζ_c
(t, γ, ζ start at 0, the slope β at 0.25, as in the paper).

The unit, ``surrogate``, is chosen as in the other binary models
(``htaf_jax.binary.sign_quantizer``): a step unit of ``htaf_jax.units``
(``"htaf"``, ``"ste_sign"``, ``"approx_sign"``, …) binarises with its ±1 form
(backward 2·grad), any other unit with its own levels, a callable as it is.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import chex
import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from htaf_jax.binary import sign_quantizer
from htaf_jax.linen.binary import QuantConv
from htaf_jax.models.registry import register_model

__all__ = ["BiRealBlock", "BinaryResNet", "RPReLU"]


class RPReLU(nn.Module):
    """ReActNet's RPReLU over the last axis: PReLU(z − γ_c; slope β_c) + ζ_c."""

    @nn.compact
    def __call__(self, z: Array) -> Array:
        c = z.shape[-1]
        z = z - self.param("shift_in", nn.initializers.zeros, (c,))
        slope = self.param("slope", nn.initializers.constant(0.25), (c,))
        return jnp.where(z > 0, z, slope * z) + self.param("shift_out", nn.initializers.zeros, (c,))


class BiRealBlock(nn.Module):
    """(N, H, W, C) real → (N, H/s, W/s, features) real: one binary conv with its shortcut."""

    features: int
    strides: int = 1
    unit: Any = "htaf"
    momentum: float = 0.9
    react: bool = False

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        unit = sign_quantizer(self.unit)
        s = self.strides
        shortcut = x
        if s > 1:
            shortcut = nn.avg_pool(
                shortcut, (s, s), (s, s), padding="SAME", count_include_pad=False
            )
        if s > 1 or x.shape[-1] != self.features:
            shortcut = nn.Conv(self.features, (1, 1), use_bias=False, name="shortcut_conv")(
                shortcut
            )
            shortcut = nn.BatchNorm(
                use_running_average=not train, momentum=self.momentum, name="shortcut_bn"
            )(shortcut)
        if self.react:  # RSign: q(x − t_c)
            x = x - self.param("threshold", nn.initializers.zeros, (x.shape[-1],))
        y = QuantConv(
            self.features,
            (3, 3),
            (s, s),
            input_quantizer=unit,
            kernel_quantizer=unit,
            use_scale=True,
            use_bias=False,
            name="conv",
        )(x)
        y = nn.BatchNorm(use_running_average=not train, momentum=self.momentum, name="bn")(y)
        return RPReLU(name="rprelu")(y + shortcut) if self.react else y + shortcut


@register_model("bnn_resnet")
class BinaryResNet(nn.Module):
    """Real stem conv 3×3 → BN → stages of ``BiRealBlock`` → ReLU → mean pool → Dense.

    (N, H, W, C) → (N, num_classes). Stage i has ``blocks_per_stage`` binary
    convolutions of width ``stage_features[i]``; every stage after the first
    starts with a stride-2 block.
    """

    stage_features: Sequence[int] = (32, 64, 128)
    blocks_per_stage: int = 2
    stem_features: int = 0  # 0: stage_features[0]
    num_classes: int = 10
    surrogate: str | Callable = "htaf"
    react: bool = False  # ReActNet's RSign thresholds and RPReLU (module docstring)

    @nn.compact
    def __call__(self, images: Array, train: bool = False) -> Array:
        chex.assert_rank(images, 4)
        x = nn.Conv(
            self.stem_features or self.stage_features[0],
            (3, 3),
            padding="SAME",
            use_bias=False,
            name="stem_conv",
        )(images)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name="stem_bn")(x)
        for i, features in enumerate(self.stage_features):
            for j in range(self.blocks_per_stage):
                x = BiRealBlock(
                    features,
                    2 if (i > 0 and j == 0) else 1,
                    self.surrogate,
                    react=self.react,
                    name=f"stage{i}_block{j}",
                )(x, train)
        x = nn.relu(x).mean(axis=(1, 2))
        logits = nn.Dense(self.num_classes, name="head")(x)
        chex.assert_shape(logits, (images.shape[0], self.num_classes))
        return logits
