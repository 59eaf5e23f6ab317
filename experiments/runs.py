"""Runs keyed by the config they compute: ``OUT/runs/<label>-s<seed>-<hash>``.

The hash covers every config field that can change what a run computes, so a changed
setting never reuses an old run; a run whose ``results.json`` exists is reused as is,
and an unfinished one resumes from its last checkpoint. ``WATCH_FIELDS`` (how a run is
watched or saved) are left out, so ``--config.progress=False`` reuses runs made without it.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import shlex
import time
from typing import Callable

import numpy as np

RESULTS_FILE = "results.json"


# Top-level config fields that change how a run is watched or saved, never its
# numbers (a resumed run equals an uninterrupted one: tests/test_train_checkpoint.py).
WATCH_FIELDS = ("progress", "tensorboard", "log_every_steps", "checkpoint_every_steps",
                "keep_checkpoints")
# Fields added after runs were stored: a stored config without one was trained
# with this value (run_dir fills it in before comparing).
LATER_DEFAULTS = {"half_precision": False, "profile_steps": "", "augment_crop_padding": 0,
                  "augment_flip": False}
# Of those, the ones added after the hashes of tests/data/planned_runs.json: left
# out of the hash at their default, so every earlier run keeps its name.
UNHASHED_AT_DEFAULT = ("augment_crop_padding", "augment_flip")
# The SNN models took Fashion-MNIST's normalisation as defaults before their
# configs set it: a stored SNN config without these fields used these values.
SNN_NORMALISATION = {"input_mean": 0.2860, "input_std": 0.3530}


def _identity(config_json: dict) -> dict:
    """A config's JSON dict without ``WATCH_FIELDS`` (and ``UNHASHED_AT_DEFAULT`` at default)."""
    return {k: v for k, v in config_json.items() if k not in WATCH_FIELDS and not (
        k in UNHASHED_AT_DEFAULT and v == LATER_DEFAULTS[k])}


def _with_legacy_defaults(stored: dict) -> dict:
    """A stored config with the values its run used for fields added since."""
    stored = {**LATER_DEFAULTS, **stored}
    model = stored.get("model")
    if isinstance(model, dict) and str(model.get("name", "")).startswith("snn"):
        stored["model"] = {**SNN_NORMALISATION, **model}
    return stored


def _trained_with(stored: dict, wanted: dict) -> bool:
    """Whether a run's stored ``config.json`` holds every field of ``wanted`` with its value
    (it may hold more: fields the engine derived, such as ``model.num_classes``)."""
    return all(key in stored and (_trained_with(stored[key], value) if isinstance(value, dict)
                                  and isinstance(stored[key], dict) else stored[key] == value)
               for key, value in wanted.items())


def _keyed_surrogate_kwargs(config_json: dict) -> dict:
    """The config with a flat ``model.surrogate_kwargs`` keyed by its unit's name: the
    same run either way (htaf_jax.models.config_fields), so a run stored under the
    flat form (the ICBM config before it keyed them) is still found."""
    model = config_json.get("model")
    if not isinstance(model, dict):
        return config_json
    kwargs = model.get("surrogate_kwargs")
    if not kwargs or any(isinstance(v, dict) for v in kwargs.values()):
        return config_json
    model = {**model, "surrogate_kwargs": {model.get("surrogate", "htaf"): kwargs}}
    return {**config_json, "model": model}


def _hash(identity: dict) -> str:
    return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]


def config_hash(config) -> str:
    """8 hex digits of the SHA-1 of the config's sorted JSON, ``WATCH_FIELDS`` left out."""
    return _hash(_identity(json.loads(config.to_json())))


def run_dir(out: str, label: str, seed: int, config) -> str:
    """``OUT/runs/<label>-s<seed>-<hash>``; where that folder does not exist, another
    ``<label>-s<seed>-*`` run that trained the same config (up to ``WATCH_FIELDS``, flat
    or unit-keyed ``surrogate_kwargs``; finished ones first): runs of an older hash."""
    wanted = _identity(json.loads(config.to_json()))
    name = f"{label}-s{seed}-{_hash(wanted)}"
    path = os.path.join(out, "runs", name)
    if os.path.isdir(path):
        return path
    prefix = f"{label}-s{seed}-"
    try:
        candidates = sorted(d for d in os.listdir(os.path.join(out, "runs"))
                            if d.startswith(prefix) and len(d) == len(name))
    except FileNotFoundError:
        return path
    same = []
    for d in candidates:
        try:
            with open(os.path.join(out, "runs", d, "config.json")) as f:
                stored = _with_legacy_defaults(json.load(f))
                if _trained_with(_keyed_surrogate_kwargs(stored),
                                 _keyed_surrogate_kwargs(wanted)):
                    same.append(os.path.join(out, "runs", d))
        except (OSError, ValueError):
            continue
    same.sort(key=lambda d: not finished(d))
    return same[0] if same else path


def finished(workdir: str) -> bool:
    """Whether the run in ``workdir`` has stored its ``results.json``."""
    return os.path.exists(os.path.join(workdir, RESULTS_FILE))


def _overrides(base: dict, config: dict, prefix: str) -> list[str]:
    """``--config.<path>=<value>`` flags that turn ``base`` into ``config``; a sub-dict
    that gained or lost keys is set whole, as a dict literal."""
    flags = []
    for key, value in config.items():
        path, old = f"{prefix}.{key}", base.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and set(value) == set(old):
            flags += _overrides(old, value, path)
        elif key not in base or value != old or type(value) is not type(old):
            # What config_flags parses back: strings raw, the rest as literals.
            flags.append(f"--{path}={value if isinstance(value, str) else repr(value)}")
    return flags


def run_command(config, workdir: str, config_file: str, module: str = "experiments.train"
                ) -> str:
    """The shell command that trains this one run: ``python -m <module> --config
    <config_file> --workdir <workdir>`` and a ``--config.<field>=<value>`` override
    for each field where ``config`` differs from what ``config_file`` gives
    (tests/test_sweep.py parses it back to the same config)."""
    base = importlib.import_module(config_file[:-3].replace("/", ".")).get_config().to_dict()
    if os.path.isabs(workdir) and not os.path.relpath(workdir).startswith(".."):
        workdir = os.path.relpath(workdir)
    return shlex.join(["python", "-m", module, "--config", config_file, "--workdir", workdir,
                       *_overrides(base, config.to_dict(), "config")])


def train_or_reuse(config, workdir: str, measure: Callable[[object, object, float], dict],
                   command: str) -> dict:
    """The run's stored ``results.json``, or trains it and stores (atomically)
    ``measure(config, train_result, seconds)`` (experiments.measures) with ``command``."""
    path = os.path.join(workdir, RESULTS_FILE)
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    from htaf_jax import train
    start = time.perf_counter()
    result = train.train_and_evaluate(config, workdir)
    seconds = time.perf_counter() - start
    record = measure(config, result, seconds)
    record["command"] = command
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2)
    os.replace(tmp, path)
    return record


def mean_std(values, scale: float = 1.0) -> tuple[float | None, float | None]:
    """(mean, sample std (ddof 1; 0 for one value)) of the non-None values × ``scale``."""
    arr = scale * np.asarray([v for v in values if v is not None], np.float64)
    if not arr.size:
        return None, None
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def machine() -> str:
    """E.g. 'x86_64, 2 CPU cores (AMD EPYC …), jax 0.10.2 on cpu'."""
    import jax
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "")
    except OSError:
        model = ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{platform.machine()}, {cores} CPU cores{f' ({model})' if model else ''}, "
            f"jax {jax.__version__} on {jax.default_backend()}")


def parse_flags(values, argv: list[str], usage: str) -> list[str]:
    """Parses ``argv`` (argv[0]: the program) into absl ``values``; returns the positional
    arguments. ``--help`` prints ``usage`` and the flags (absl's help) and exits 0; a bad
    flag prints one line and exits 2."""
    import sys

    from absl import flags
    if any(a in ("-h", "--help", "-help", "--helpfull") for a in argv[1:]):
        print(usage.strip() + "\n\nflags:\n" + values.get_help(include_special_flags=False))
        sys.exit(0)
    try:
        return values(list(argv))[1:]
    except flags.Error as e:
        print(f"{os.path.basename(argv[0])}: error: {e}", file=sys.stderr)
        sys.exit(2)
