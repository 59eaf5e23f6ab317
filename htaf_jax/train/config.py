"""Config checks and the runlocal shrink, done before anything is compiled.

Every error names the field: ``config.learning_rate must be > 0, got -0.1``.
"""
from __future__ import annotations

import ml_collections

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
# What `runlocal` shrinks a run to: a laptop-sized smoke run of any config.
RUNLOCAL = dict(train_subset=512, test_subset=256, num_epochs=1, num_train_steps=-1,
                batch_size=64, eval_batch_size=128, log_every_steps=2,
                checkpoint_every_steps=4)


class ConfigError(ValueError):
    """A config field holds an invalid value; the message names the field."""


def _require(cond: bool, field: str, rule: str, value) -> None:
    if not cond:
        raise ConfigError(f"config.{field} {rule}, got {value!r}")


def _get(config, path: str):
    node = config
    for part in path.split("."):
        if part not in node:
            raise ConfigError(f"config.{path} is missing (start configs from "
                              f"experiments/configs/base.py:get_config())")
        node = node[part]
    return node


def parse_profile_steps(value) -> tuple[int, int] | None:
    """``config.profile_steps``: ``""`` (off) or ``"a,b"``, the steps [a, b) to trace
    (0 ≤ a < b, counted as ``state.step`` before each); also a pair of ints."""
    if value is None or value == "" or value == ():
        return None
    try:
        parts = value.split(",") if isinstance(value, str) else list(value)
        first, stop = (int(str(v).strip()) for v in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"config.profile_steps must be 'a,b' (trace steps [a, b)) or '', "
                          f"got {value!r}") from None
    _require(0 <= first < stop, "profile_steps", "must be 'a,b' with 0 <= a < b", value)
    return first, stop


def prepare_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A validated copy of ``config`` with ``runlocal`` applied (the input is left as is)."""
    config = ml_collections.ConfigDict(config.to_dict())
    if config.get("runlocal", False):
        for field, value in RUNLOCAL.items():
            if field in ("train_subset", "test_subset") and 0 < config.get(field, -1) < value:
                continue
            config[field] = value
    validate_config(config)
    return config


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError naming the first invalid field. Cheap: no jit, no data read."""
    for field in ("learning_rate", "batch_size", "eval_batch_size"):
        _require(_get(config, field) > 0, field, "must be > 0", _get(config, field))
    for field in ("num_epochs", "checkpoint_every_steps", "keep_checkpoints", "log_every_steps"):
        _require(_get(config, field) >= 1, field, "must be >= 1", _get(config, field))
    _require(_get(config, "warmup_steps") >= 0, "warmup_steps", "must be >= 0",
             config.warmup_steps)
    _require(_get(config, "weight_decay") >= 0, "weight_decay", "must be >= 0",
             config.weight_decay)
    _require(_get(config, "validation_size") >= 0, "validation_size", "must be >= 0",
             config.validation_size)
    for field in ("train_subset", "test_subset", "num_train_steps"):
        value = _get(config, field)
        _require(value == -1 or value > 0, field, "must be -1 (all) or > 0", value)
    num_devices = _get(config, "num_devices")
    _require(num_devices == -1 or num_devices > 0, "num_devices", "must be -1 (all) or > 0",
             num_devices)
    _require(_get(config, "optimizer") in OPTIMIZERS, "optimizer",
             f"must be one of {', '.join(OPTIMIZERS)}", config.optimizer)
    _require(_get(config, "schedule") in SCHEDULES, "schedule",
             f"must be one of {', '.join(SCHEDULES)}", config.schedule)

    _require(isinstance(config.get("half_precision", False), bool), "half_precision",
             "must be True or False", config.get("half_precision"))
    parse_profile_steps(config.get("profile_steps", ""))

    from htaf_jax.data import is_known_dataset
    dataset = _get(config, "dataset")
    if not is_known_dataset(dataset):
        raise ConfigError(f"config.dataset: unknown dataset {dataset!r}; use 'fashion_mnist' "
                          f"(local, the default), 'shd' (spike events) or a TFDS name such "
                          f"as mnist, cifar10, kmnist, emnist, svhn_cropped")

    from htaf_jax.models.registry import get_model_factory
    try:
        get_model_factory(_get(config, "model.name"))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    from htaf_jax.models.config_fields import check_unit
    try:  # hyperparameters or a training form the chosen unit does not have
        check_unit(config.model, field="config.model")
    except ValueError as e:
        raise ConfigError(str(e)) from None


def check_devices(config: ml_collections.ConfigDict, available_devices: int,
                  process_count: int = 1) -> None:
    """The global batch must split evenly over the devices the run uses.

    ``available_devices`` counts every process's devices; with P processes a
    run uses all of them (P × devices per process), and errors name both factors.
    """
    if config.num_devices > available_devices:
        raise ConfigError(f"config.num_devices={config.num_devices} but only "
                          f"{available_devices} devices are available")
    if process_count > 1 and config.num_devices not in (-1, available_devices):
        raise ConfigError(f"config.num_devices={config.num_devices}: a run over "
                          f"{process_count} processes uses all {available_devices} devices; "
                          f"leave config.num_devices at -1")
    device_count = available_devices if config.num_devices == -1 else config.num_devices
    for field in ("batch_size", "eval_batch_size"):
        value = config[field]
        if value % device_count:
            count = (f"{device_count} = {process_count} processes × "
                     f"{device_count // process_count} local devices"
                     if process_count > 1 else f"{device_count}")
            raise ConfigError(f"config.{field}={value} is not divisible by the number of "
                              f"devices ({count}); use a multiple of {device_count}")
