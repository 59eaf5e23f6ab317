"""Config checks and the runlocal shrink, done before anything is compiled.

Every error names the field: ``config.learning_rate must be > 0, got -0.1``.
``FIELDS`` declares each engine field's rule once: ``validate_config`` reads
it, and so does the command-line fuzz test (tests/test_cli_fuzz.py), which
draws valid and invalid values from it. The choices are the tables the code
acts on (``optim.OPTIMIZERS``, ``optim.SCHEDULES``), never a copy of them;
a model's fields are checked against the model's own annotations
(``htaf_jax.models.config_fields``).
"""

from __future__ import annotations

import dataclasses
import math

import ml_collections

from htaf_jax.data.sources import LOCAL_DATASETS, TFDS_EXAMPLES, is_known_dataset
from htaf_jax.models.config_fields import check_unit
from htaf_jax.models.registry import get_model_factory
from htaf_jax.train.distributed import check_num_devices
from htaf_jax.train.optim import OPTIMIZERS, SCHEDULES

# What `runlocal` shrinks a run to: a laptop-sized smoke run of any config.
RUNLOCAL = dict(
    train_subset=512,
    test_subset=256,
    num_epochs=1,
    num_train_steps=-1,
    batch_size=64,
    eval_batch_size=128,
    log_every_steps=2,
    checkpoint_every_steps=4,
)


class ConfigError(ValueError):
    """A config field holds an invalid value; the message names the field."""


@dataclasses.dataclass(frozen=True)
class Number:
    """An int (``integer``) or float field ≥ ``low`` (> ``low`` with ``strict``), ≤ ``high``;
    ``every``: a value meaning "all" (-1) besides the range."""

    low: float
    strict: bool = False
    high: float | None = None
    integer: bool = False
    every: int | None = None
    required: bool = True

    def rule(self) -> str:
        bound = f"> {self.low:g}" if self.strict else f">= {self.low:g}"
        if self.high is not None:
            bound = f"in {'(' if self.strict else '['}{self.low:g}, {self.high:g}]"
        return f"{self.every} (all) or {bound}" if self.every is not None else bound

    def check(self, field: str, value) -> None:
        kind = "an integer" if self.integer else "a number"
        if isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float)):
            raise ConfigError(f"config.{field} must be {kind} {self.rule()}, got {value!r}")
        if value == self.every:
            return
        if not math.isfinite(value):
            raise ConfigError(
                f"config.{field} must be a finite number {self.rule()}, got {value!r}"
            )
        inside = (value > self.low if self.strict else value >= self.low) and (
            self.high is None or value <= self.high
        )
        if not inside:
            raise ConfigError(f"config.{field} must be {self.rule()}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Choice:
    """A field holding one of ``values`` (the keys of the table that acts on it)."""

    values: tuple
    required: bool = True

    def check(self, field: str, value) -> None:
        if not isinstance(value, str) or value not in self.values:
            raise ConfigError(
                f"config.{field} must be one of {', '.join(self.values)}, got {value!r}"
            )


@dataclasses.dataclass(frozen=True)
class Flag:
    """A True/False field."""

    required: bool = False

    def check(self, field: str, value) -> None:
        if not isinstance(value, bool):
            raise ConfigError(f"config.{field} must be True or False, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Text:
    """A string field (``optional``: None allowed); its meaning is checked elsewhere
    (``dataset`` against the datasets, ``profile_steps`` by ``parse_profile_steps``)."""

    optional: bool = False
    required: bool = False

    def check(self, field: str, value) -> None:
        if not (isinstance(value, str) or (self.optional and value is None)):
            raise ConfigError(
                f"config.{field} must be a string"
                f"{' or None' if self.optional else ''}, got {value!r}"
            )


_POSITIVE, _COUNT = Number(0, strict=True), Number(1, integer=True)
_ALL_OR_POSITIVE = Number(0, strict=True, integer=True, every=-1)
_NONNEGATIVE = Number(0)
# The engine's fields and their rules (experiments/configs/base.py sets them; a
# field with ``required=False`` may be absent, and the engine then uses its default).
FIELDS = {
    "seed": Number(0, integer=True),
    "dataset": Text(required=True),
    "data_dir": Text(optional=True),
    "train_subset": _ALL_OR_POSITIVE,
    "test_subset": _ALL_OR_POSITIVE,
    "validation_size": Number(0, integer=True),
    "batch_size": Number(0, strict=True, integer=True),
    "eval_batch_size": Number(0, strict=True, integer=True),
    "num_epochs": _COUNT,
    "num_train_steps": _ALL_OR_POSITIVE,
    "optimizer": Choice(tuple(OPTIMIZERS)),
    "learning_rate": _POSITIVE,
    "schedule": Choice(tuple(SCHEDULES)),
    "warmup_steps": Number(0, integer=True),
    "weight_decay": _NONNEGATIVE,
    "momentum": Number(0, high=1, required=False),
    "grad_clip_norm": Number(0, required=False),
    "bop_threshold": Number(0, required=False),
    "bop_gamma": Number(0, strict=True, high=1, required=False),
    "num_devices": _ALL_OR_POSITIVE,
    "checkpoint_every_steps": _COUNT,
    "keep_checkpoints": _COUNT,
    "log_every_steps": _COUNT,
    "eval_every_epochs": Number(1, integer=True, required=False),
    "progress": Flag(),
    "tensorboard": Flag(),
    "runlocal": Flag(),
    "half_precision": Flag(),
    "profile_steps": Text(),
    "augment_crop_padding": Number(0, integer=True, required=False),
    "augment_flip": Flag(),
    "event_num_steps": Number(1, integer=True, required=False),
    "event_max_time": Number(0, strict=True, required=False),
}


def _get(config, path: str):
    node = config
    for part in path.split("."):
        if part not in node:
            raise ConfigError(
                f"config.{path} is missing (start configs from "
                f"experiments/configs/base.py:get_config())"
            )
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
        raise ConfigError(
            f"config.profile_steps must be 'a,b' (trace steps [a, b)) or '', got {value!r}"
        ) from None
    if not 0 <= first < stop:
        raise ConfigError(f"config.profile_steps must be 'a,b' with 0 <= a < b, got {value!r}")
    return first, stop


def prepare_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A validated copy of ``config`` with ``runlocal`` applied (the input is left as is)."""
    config = ml_collections.ConfigDict(config.to_dict())
    if config.get("runlocal", False) is True:
        for field, value in RUNLOCAL.items():
            if field in ("train_subset", "test_subset") and 0 < config.get(field, -1) < value:
                continue
            config[field] = value
    validate_config(config)
    return config


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError naming the first invalid field. Cheap: no jit, no data read."""
    for field, spec in FIELDS.items():
        if field in config:
            spec.check(field, config[field])
        elif spec.required:
            _get(config, field)  # raises: missing
    parse_profile_steps(config.get("profile_steps", ""))

    if not is_known_dataset(config.dataset):
        raise ConfigError(
            f"config.dataset: unknown dataset {config.dataset!r}; use "
            f"{' or '.join(map(repr, LOCAL_DATASETS))} or a TFDS name such "
            f"as {', '.join(TFDS_EXAMPLES)}"
        )

    try:
        get_model_factory(_get(config, "model.name"))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    try:  # hyperparameters or a training form the chosen unit does not have
        check_unit(config.model, field="config.model")
    except ValueError as e:
        raise ConfigError(str(e)) from None


def check_devices(
    config: ml_collections.ConfigDict, available_devices: int, process_count: int = 1
) -> None:
    """The global batch must split evenly over the devices the run uses.

    ``available_devices`` counts every process's devices; with P processes a
    run uses all of them (P × devices per process), and errors name both factors.
    """
    try:
        check_num_devices(config.num_devices, available_devices, process_count)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    device_count = available_devices if config.num_devices == -1 else config.num_devices
    for field in ("batch_size", "eval_batch_size"):
        value = config[field]
        if value % device_count:
            count = (
                f"{device_count} = {process_count} processes × "
                f"{device_count // process_count} local devices"
                if process_count > 1
                else f"{device_count}"
            )
            raise ConfigError(
                f"config.{field}={value} is not divisible by the number of "
                f"devices ({count}); use a multiple of {device_count}"
            )
