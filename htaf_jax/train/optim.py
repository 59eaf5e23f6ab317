"""Optimiser and learning-rate schedule from a config."""
from __future__ import annotations

import ml_collections
import optax


def make_schedule(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """``constant`` or ``cosine`` (to 0 at ``total_steps``), after an optional linear warmup."""
    lr, warmup = config.learning_rate, config.warmup_steps
    decay_steps = max(total_steps - warmup, 1)
    main = (optax.constant_schedule(lr) if config.schedule == "constant"
            else optax.cosine_decay_schedule(lr, decay_steps))
    if warmup == 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int
                   ) -> optax.GradientTransformation:
    schedule = make_schedule(config, total_steps)
    if config.optimizer == "adam":
        tx = optax.adam(schedule)
    elif config.optimizer == "adamw":
        tx = optax.adamw(schedule, weight_decay=config.weight_decay)
    else:
        tx = optax.sgd(schedule, momentum=config.get("momentum", 0.9) or None)
    clip = config.get("grad_clip_norm", 0.0)
    return optax.chain(optax.clip_by_global_norm(clip), tx) if clip > 0 else tx
