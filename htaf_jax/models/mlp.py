"""A small Dense-ReLU MLP: the engine's reference model.

Optional BatchNorm after each hidden Dense exercises the ``batch_stats``
path; optional dropout exercises the ``dropout`` rng stream.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from htaf_jax.models.registry import register_model


@register_model("mlp")
class MLP(nn.Module):
    """images (B, H, W, C) → logits (B, num_classes)."""

    hidden_sizes: Sequence[int] = (128,)
    num_classes: int = 10
    batch_norm: bool = False
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        x = images.reshape(images.shape[0], -1)
        for i, width in enumerate(self.hidden_sizes):
            x = nn.Dense(width, name=f"dense{i}")(x)
            if self.batch_norm:
                x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn{i}")(x)
            x = nn.relu(x)
            self.sow("intermediates", f"active_fraction/layer{i}", jnp.mean(x > 0))
            if self.dropout_rate > 0:
                x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="head")(x)
