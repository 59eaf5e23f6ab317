"""Feature extractors shared by the ICBM and its standard baseline.

A backbone maps normalised images ``(B, H, W, C)`` to features ``(B, D)``
and is called as ``backbone(images, train=bool)``; BatchNorm statistics live
in the ``batch_stats`` collection. Shipped: an MLP, a small CNN, a small
ResNet (BasicBlock-style, He et al. 2016), ResNet-18 in its CIFAR form (3×3
stem, no max-pool, 4 stages of 2 BasicBlocks; widths configurable so a narrow
one runs on a CPU) and a small ViT (Dosovitskiy et al. 2021: patch
embedding, pre-norm transformer blocks, class token or mean pool).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
from jax import Array

__all__ = [
    "MLPBackbone",
    "CNNBackbone",
    "ResNetBackbone",
    "ResNet18Backbone",
    "ViTBackbone",
    "make_backbone",
]


class MLPBackbone(nn.Module):
    """Flatten → [Dense → BN → ReLU] × len(widths). Features: (B, widths[-1])."""

    widths: Sequence[int] = (512, 256)

    @nn.compact
    def __call__(self, images: Array, train: bool = False) -> Array:
        h = images.reshape((images.shape[0], -1))
        for width in self.widths:
            h = nn.Dense(width, use_bias=False)(h)
            h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
            h = nn.relu(h)
        return h


class CNNBackbone(nn.Module):
    """[Conv3×3 → BN → ReLU → MaxPool2] × len(channels) → flatten → Dense → ReLU.

    With the default (32, 64) and 28×28 inputs: 7×7×64 before the dense layer.
    """

    channels: Sequence[int] = (32, 64)
    width: int = 256

    @nn.compact
    def __call__(self, images: Array, train: bool = False) -> Array:
        h = images
        for c in self.channels:
            h = nn.Conv(c, (3, 3), use_bias=False)(h)
            h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
            h = nn.relu(h)
            h = nn.max_pool(h, (2, 2), strides=(2, 2))
        h = h.reshape((h.shape[0], -1))
        h = nn.Dense(self.width, use_bias=False)(h)
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
        return nn.relu(h)


class _BasicBlock(nn.Module):
    channels: int
    strides: int = 1

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9)  # noqa: E731
        y = nn.Conv(self.channels, (3, 3), (self.strides, self.strides), use_bias=False)(x)
        y = nn.relu(norm()(y))
        y = nn.Conv(self.channels, (3, 3), use_bias=False)(y)
        y = norm()(y)
        if x.shape[-1] != self.channels or self.strides != 1:
            x = nn.Conv(self.channels, (1, 1), (self.strides, self.strides), use_bias=False)(x)
            x = norm()(x)
        return nn.relu(x + y)


class ResNetBackbone(nn.Module):
    """Stem conv → one BasicBlock per stage (stride 2 after the first) → global mean pool.

    Default stages (16, 32, 64): 28×28 → 28 → 14 → 7, features (B, 64).
    """

    stage_channels: Sequence[int] = (16, 32, 64)
    blocks_per_stage: int = 1

    @nn.compact
    def __call__(self, images: Array, train: bool = False) -> Array:
        h = nn.Conv(self.stage_channels[0], (3, 3), use_bias=False)(images)
        h = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(h))
        for i, c in enumerate(self.stage_channels):
            for j in range(self.blocks_per_stage):
                strides = 2 if (i > 0 and j == 0) else 1
                h = _BasicBlock(c, strides)(h, train)
        return jnp.mean(h, axis=(1, 2))


class ResNet18Backbone(ResNetBackbone):
    """ResNet-18, CIFAR variant (He et al. 2016, §4.2 stem): 3×3 stride-1 stem, no
    max-pool, stages of 2 BasicBlocks at ``stage_channels`` (64, 128, 256, 512),
    stride 2 from the second stage on, global mean pool. Features (B, stage_channels[-1]).

    A narrow one, e.g. ``stage_channels=(16, 32, 64, 128)``, keeps the depth and
    runs on a CPU."""

    stage_channels: Sequence[int] = (64, 128, 256, 512)
    blocks_per_stage: int = 2


class _TransformerBlock(nn.Module):
    """Pre-norm block: x + MHSA(LN(x)), then x + MLP(LN(x)) (GELU)."""

    num_heads: int
    mlp_dim: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        y = nn.LayerNorm()(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=self.num_heads)(y, y)
        y = nn.LayerNorm()(x)
        y = nn.Dense(x.shape[-1])(nn.gelu(nn.Dense(self.mlp_dim)(y)))
        return x + y


class ViTBackbone(nn.Module):
    """A small Vision Transformer: patches → linear embedding + learned position
    embedding → ``depth`` pre-norm blocks → LayerNorm → pooled (B, hidden).

    ``pool="cls"`` reads a learned class token, ``"mean"`` averages the patch
    tokens. The image side must be a multiple of ``patch_size`` (28 → 7×7
    patches of 4, 32 → 8×8); the position embedding is sized from the input at init.
    """

    patch_size: int = 4
    hidden: int = 64
    depth: int = 4
    num_heads: int = 4
    mlp_dim: int = 128
    pool: str = "cls"

    @nn.compact
    def __call__(self, images: Array, train: bool = False) -> Array:
        del train  # no dropout or batch statistics
        if self.pool not in ("cls", "mean"):
            raise ValueError(f"ViT pool must be 'cls' or 'mean', got {self.pool!r}")
        b, height, width, _ = images.shape
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(f"ViT patch_size={p} does not divide the image size {height}×{width}")
        h = nn.Conv(self.hidden, (p, p), strides=(p, p), padding="VALID", name="embed")(images)
        h = h.reshape((b, -1, self.hidden))
        if self.pool == "cls":
            cls = self.param("cls", nn.initializers.zeros, (1, 1, self.hidden))
            h = jnp.concatenate(
                [jnp.broadcast_to(cls, (b, 1, self.hidden)).astype(h.dtype), h], axis=1
            )
        pos = self.param("pos_embedding", nn.initializers.normal(0.02), (1,) + h.shape[1:])
        h = h + pos.astype(h.dtype)
        for _ in range(self.depth):
            h = _TransformerBlock(self.num_heads, self.mlp_dim)(h)
        h = nn.LayerNorm()(h)
        return h[:, 0] if self.pool == "cls" else jnp.mean(h, axis=1)


_BACKBONES = {
    "mlp": MLPBackbone,
    "cnn": CNNBackbone,
    "resnet": ResNetBackbone,
    "resnet18": ResNet18Backbone,
    "vit": ViTBackbone,
}


def make_backbone(name: str, **kwargs) -> nn.Module:
    """Builds a backbone by name (``"mlp"``, ``"cnn"``, ``"resnet"``, ``"resnet18"``,
    ``"vit"``); kwargs are its fields.

    An unknown name or field raises ValueError naming the valid ones."""
    try:
        cls = _BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose from {sorted(_BACKBONES)}") from None
    fields = sorted(set(cls.__dataclass_fields__) - {"parent", "name"})
    unknown = sorted(set(kwargs) - set(fields))
    if unknown:
        raise ValueError(
            f"backbone {name!r} ({cls.__name__}) has no fields {unknown}; its fields are {fields}"
        )
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})
