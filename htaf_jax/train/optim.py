"""Optimiser and learning-rate schedule from a config.

``SCHEDULES`` and ``OPTIMIZERS`` are the one list of each choice: config
validation (htaf_jax.train.config) reads their keys, and the code here
builds from them.
"""

from __future__ import annotations

from typing import Callable

import ml_collections
import optax

from htaf_jax.bop import bop_with


def _bop(
    config: ml_collections.ConfigDict, schedule: optax.Schedule
) -> optax.GradientTransformation:
    return bop_with(
        optax.adam(schedule), config.get("bop_threshold", 1e-8), config.get("bop_gamma", 1e-4)
    )


# name -> (peak learning rate, decay steps) -> schedule; "cosine" decays to 0 at the last step.
SCHEDULES: dict[str, Callable[[float, int], optax.Schedule]] = {
    "constant": lambda lr, steps: optax.constant_schedule(lr),
    "cosine": lambda lr, steps: optax.cosine_decay_schedule(lr, steps),
}
# name -> (config, schedule) -> transformation. "bop": Bop on the binary layers'
# ``latent_kernel`` s, Adam on the rest (the train step then logs ``flip_ratio``).
OPTIMIZERS: dict[
    str, Callable[[ml_collections.ConfigDict, optax.Schedule], optax.GradientTransformation]
] = {
    "adam": lambda config, lr: optax.adam(lr),
    "adamw": lambda config, lr: optax.adamw(lr, weight_decay=config.weight_decay),
    "sgd": lambda config, lr: optax.sgd(lr, momentum=config.get("momentum", 0.9) or None),
    "bop": _bop,
}


def _choice(table: dict, field: str, value):
    if value not in table:
        raise ValueError(f"unknown {field} {value!r}; valid: {', '.join(table)}")
    return table[value]


def make_schedule(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """``config.schedule`` (a ``SCHEDULES`` name) after an optional linear warmup."""
    lr, warmup = config.learning_rate, config.warmup_steps
    main = _choice(SCHEDULES, "schedule", config.schedule)(lr, max(total_steps - warmup, 1))
    if warmup == 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def make_optimizer(
    config: ml_collections.ConfigDict, total_steps: int
) -> optax.GradientTransformation:
    """``config.optimizer``: an ``OPTIMIZERS`` name (bop: ``config.bop_threshold``,
    ``config.bop_gamma``, Larq's 1e-8 and 1e-4 by default), clipped by
    ``config.grad_clip_norm`` when > 0."""
    build = _choice(OPTIMIZERS, "optimizer", config.optimizer)
    tx = build(config, make_schedule(config, total_steps))
    clip = config.get("grad_clip_norm", 0.0)
    return optax.chain(optax.clip_by_global_norm(clip), tx) if clip > 0 else tx
