"""Resumable sweeps: one work dir per run, keyed by a hash of its config.

Shared by ``experiments.sweep`` and ``experiments.icbm_compare``. A run lives
in ``OUT/runs/<label>-s<seed>-<hash>``; the hash covers every config field
that can change what the run computes, so a changed setting never reuses an
old run, and a run whose ``results.json`` exists is reused as is, so an
interrupted sweep resumes where it stopped (an unfinished run resumes from
its last checkpoint). The fields that only change how a run is watched or
saved (``WATCH_FIELDS``: the progress bar, TensorBoard, logging and
checkpoint intervals) are left out, so ``--config.progress=False`` reuses the
runs made without it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import shlex
import time
from typing import Callable

import numpy as np

__all__ = ["config_hash", "run_dir", "finished", "to_run", "train_or_reuse", "mean_std",
           "machine", "run_command", "unfinished_runs", "without_report_only", "RESULTS_FILE"]

RESULTS_FILE = "results.json"


# Top-level config fields that change how a run is watched or saved, never its
# numbers (a resumed run equals an uninterrupted one: tests/test_train_checkpoint.py).
WATCH_FIELDS = ("progress", "tensorboard", "log_every_steps", "checkpoint_every_steps",
                "keep_checkpoints")


def _identity(config_json: dict) -> dict:
    """A config's JSON dict without ``WATCH_FIELDS``."""
    return {k: v for k, v in config_json.items() if k not in WATCH_FIELDS}


def _trained_with(stored: dict, wanted: dict) -> bool:
    """Whether a run's stored ``config.json`` holds every field of ``wanted`` with its value
    (the stored one may have more: the training loop records derived fields such as
    ``input_shape`` and ``model.num_classes``)."""
    for key, value in wanted.items():
        if key not in stored:
            return False
        if isinstance(value, dict) and isinstance(stored[key], dict):
            if not _trained_with(stored[key], value):
                return False
        elif stored[key] != value:
            return False
    return True


def _keyed_surrogate_kwargs(config_json: dict) -> dict:
    """The config with a flat ``model.surrogate_kwargs`` keyed by its unit's name: the
    same run either way (htaf_jax.models.config_fields), so a run stored under the
    flat form is found by a config that now keys them (the ICBM config since issue 20)."""
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
    """``OUT/runs/<label>-s<seed>-<hash>``.

    Where that folder does not exist but another ``<label>-s<seed>-*`` run
    there trained the same config up to ``WATCH_FIELDS`` (its ``config.json``
    holds every other field with the same value; flat or unit-keyed
    ``surrogate_kwargs`` count as the same), that run's folder is
    returned, finished ones first: this reuses runs keyed by the older hash,
    which covered every field.
    """
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
                if _trained_with(_keyed_surrogate_kwargs(json.load(f)),
                                 _keyed_surrogate_kwargs(wanted)):
                    same.append(os.path.join(out, "runs", d))
        except (OSError, ValueError):
            continue
    same.sort(key=lambda d: not finished(d))
    return same[0] if same else path


def finished(workdir: str) -> bool:
    """Whether the run in ``workdir`` has stored its ``results.json``."""
    return os.path.exists(os.path.join(workdir, RESULTS_FILE))


def to_run(plan: dict, tag: str) -> list[dict]:
    """The runs of a sweep's ``plan`` its command goes through: all of them, or with
    ``plan["report_only"]`` only the finished ones (an empty list after saying so)."""
    todo = [run for run in plan["runs"] if not plan["report_only"] or finished(run["workdir"])]
    if not todo:
        print(f"[{tag}] none of the {len(plan['runs'])} planned runs has finished under "
              f"{plan['out']}; nothing written")
    return todo


def unfinished_runs(done: int, planned: int) -> str:
    """The note of a table that shows ``done`` of its command's ``planned`` runs."""
    return f"{done} of the command's {planned} runs have finished, and the table shows only those"


def without_report_only(argv: list[str]) -> list[str]:
    """A sweep's arguments as the command that trains them (``--report_only`` only changes
    whether missing runs are trained, so the tables name the command without it)."""
    return [a for a in argv if a not in ("--report_only", "--report_only=True",
                                         "--report_only=true")]


def _load_config_file(path: str):
    spec = importlib.util.spec_from_file_location("_run_base_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def _flag_value(value) -> str:
    # What config_flags parses back to ``value``: strings raw, the rest as literals.
    return value if isinstance(value, str) else repr(value)


def _overrides(base: dict, config: dict, prefix: str) -> list[str]:
    """``--config.<path>=<value>`` flags that turn ``base`` into ``config``; a sub-dict
    that gained or lost keys is set whole, as a dict literal."""
    flags = []
    for key, value in config.items():
        path, old = f"{prefix}.{key}", base.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and set(value) == set(old):
            flags += _overrides(old, value, path)
        elif key not in base or value != old or type(value) is not type(old):
            flags.append(f"--{path}={_flag_value(value)}")
    return flags


def run_command(config, workdir: str, config_file: str, module: str = "experiments.train"
                ) -> str:
    """The shell command that trains this one run: ``python -m <module> --config
    <config_file> --workdir <workdir>`` and a ``--config.<field>=<value>`` override
    for each field where ``config`` differs from what ``config_file`` gives
    (tests/test_sweep.py parses it back to the same config)."""
    base = _load_config_file(config_file).to_dict()
    if os.path.isabs(workdir) and not os.path.relpath(workdir).startswith(".."):
        workdir = os.path.relpath(workdir)
    return shlex.join(["python", "-m", module, "--config", config_file, "--workdir", workdir,
                       *_overrides(base, config.to_dict(), "config")])


def train_or_reuse(config, workdir: str,
                   measure: Callable[[object, object, float], dict] | None = None,
                   command: str | None = None) -> dict:
    """Returns the run's stored ``results.json``, or trains it and stores one.

    ``measure(config, train_result, seconds) -> dict`` turns a finished
    ``htaf_jax.train.TrainResult`` into the record to store (default: the
    final eval metrics and the training seconds); ``command`` (``run_command``:
    the command that trains this run alone) is stored with it. The record is
    written atomically, so a killed sweep never leaves a half-written result.
    """
    path = os.path.join(workdir, RESULTS_FILE)
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    from htaf_jax import train
    start = time.perf_counter()
    result = train.train_and_evaluate(config, workdir)
    seconds = time.perf_counter() - start
    record = (measure or default_record)(config, result, seconds)
    if command:
        record["command"] = command
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2)
    os.replace(tmp, path)
    return record


def default_record(config, result, seconds: float) -> dict:
    """Final eval metrics (``test/accuracy`` or ``validation/accuracy`` …) plus seconds."""
    split = next(iter(result.metrics)).split("/")[0]
    return {"split": split, "accuracy": result.metrics[f"{split}/accuracy"],
            "seconds": seconds, "metrics": dict(result.metrics)}


def mean_std(values, scale: float = 1.0) -> tuple[float | None, float | None, str]:
    """(mean, sample std (ddof 1; 0 for one value), "m ± s") of the non-None values."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None, "n/a"
    arr = scale * np.asarray(values, np.float64)
    mean, std = float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return mean, std, f"{mean:.2f} ± {std:.2f}"


def machine() -> str:
    """E.g. 'x86_64, 2 CPU cores (AMD EPYC …), jax 0.10.2 on cpu'."""
    import jax
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "")
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{platform.machine()}, {cores} CPU cores{f' ({model})' if model else ''}, "
            f"jax {jax.__version__} on {jax.default_backend()}")
