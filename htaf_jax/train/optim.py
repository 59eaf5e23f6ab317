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


OPTIMIZERS = ("adam", "adamw", "sgd", "bop")


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int
                   ) -> optax.GradientTransformation:
    """``config.optimizer``: adam | adamw | sgd | bop (Bop on the binary layers'
    ``latent_kernel`` s, Adam on the rest; ``config.bop_threshold``, ``config.bop_gamma``
    default to Larq's 1e-8 and 1e-4; the train step then logs ``flip_ratio``)."""
    schedule = make_schedule(config, total_steps)
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    if config.optimizer == "adam":
        tx = optax.adam(schedule)
    elif config.optimizer == "bop":
        from htaf_jax.bop import bop_with
        tx = bop_with(optax.adam(schedule), config.get("bop_threshold", 1e-8),
                      config.get("bop_gamma", 1e-4))
    elif config.optimizer == "adamw":
        tx = optax.adamw(schedule, weight_decay=config.weight_decay)
    else:
        tx = optax.sgd(schedule, momentum=config.get("momentum", 0.9) or None)
    clip = config.get("grad_clip_norm", 0.0)
    return optax.chain(optax.clip_by_global_norm(clip), tx) if clip > 0 else tx
