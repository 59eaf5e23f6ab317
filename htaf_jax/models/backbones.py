"""Feature extractors shared by the ICBM and its standard baseline.

A backbone maps normalised images ``(B, H, W, C)`` to features ``(B, D)``
and is called as ``backbone(images, train=bool)``; BatchNorm statistics live
in the ``batch_stats`` collection. Three sizes ship: an MLP, a small CNN and a
small ResNet (pre-activation-free, BasicBlock-style, He et al. 2016).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
from jax import Array

__all__ = ["MLPBackbone", "CNNBackbone", "ResNetBackbone", "make_backbone"]


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


_BACKBONES = {"mlp": MLPBackbone, "cnn": CNNBackbone, "resnet": ResNetBackbone}


def make_backbone(name: str, **kwargs) -> nn.Module:
    """Builds a backbone by name (``"mlp"``, ``"cnn"``, ``"resnet"``); kwargs are its fields.

    An unknown name or field raises ValueError naming the valid ones."""
    try:
        cls = _BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose from {sorted(_BACKBONES)}") from None
    fields = sorted(set(cls.__dataclass_fields__) - {"parent", "name"})
    unknown = sorted(set(kwargs) - set(fields))
    if unknown:
        raise ValueError(f"backbone {name!r} ({cls.__name__}) has no fields {unknown}; "
                         f"its fields are {fields}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})
