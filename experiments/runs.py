"""Runs keyed by the config they compute: ``OUT/runs/<label>-s<seed>-<hash>``.

The hash covers every config field that can change what a run computes, so a changed
setting never reuses an old run; a run whose ``results.json`` exists is reused as is,
and an unfinished one resumes from its last checkpoint.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib
import json
import os
import platform
import shlex
import subprocess
import time
from typing import Callable

import jax

from htaf_jax import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_FILE = "results.json"
# Top-level config fields that change how a run is watched or saved, never its numbers
# (a resumed run equals an uninterrupted one: tests/test_train_checkpoint.py): not hashed,
# so ``--config.progress=False`` reuses runs made without it.
WATCH_FIELDS = (
    "progress",
    "tensorboard",
    "log_every_steps",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "profile_steps",
)
HASHED_AS = {"profile_steps": ""}  # hashed at this value (tests/data/planned_runs.json)
# Fields added after those hashes ("model.x": a model field): unhashed at their default.
UNHASHED_AT = {
    "augment_crop_padding": 0,
    "augment_flip": False,
    "model.react": False,
    "model.head_l1": 0.0,
    "bop_threshold": 1e-8,
    "bop_gamma": 1e-4,
}


def _identity(config_json: dict) -> dict:
    """A config's JSON dict as hashed (``WATCH_FIELDS`` out or at ``HASHED_AS``)."""
    out = {
        k: HASHED_AS.get(k, v)
        for k, v in config_json.items()
        if (k in HASHED_AS or k not in WATCH_FIELDS) and UNHASHED_AT.get(k, ...) != v
    }
    if isinstance(out.get("model"), dict):
        out["model"] = {
            k: v for k, v in out["model"].items() if UNHASHED_AT.get(f"model.{k}", ...) != v
        }
    return out


def _trained_with(stored: dict, wanted: dict) -> bool:
    """Whether a stored config holds every field of ``wanted`` with its value (it may hold
    more: fields the engine derived, such as ``model.num_classes``)."""
    return all(
        key in stored
        and (
            _trained_with(stored[key], value)
            if isinstance(value, dict) and isinstance(stored[key], dict)
            else stored[key] == value
        )
        for key, value in wanted.items()
    )


def _hash(identity: dict) -> str:
    return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]


def config_hash(config) -> str:
    """8 hex digits of the SHA-1 of the config's sorted JSON, ``WATCH_FIELDS`` left out."""
    return _hash(_identity(json.loads(config.to_json())))


def run_dir(out: str, label: str, seed: int, config) -> str:
    """``OUT/runs/<label>-s<seed>-<hash>``; where that folder does not exist, another
    ``<label>-s<seed>-*`` run that trained the same config up to ``WATCH_FIELDS`` (a run of
    an older hash; finished ones first)."""
    wanted = _identity(json.loads(config.to_json()))
    root = os.path.join(out, "runs")
    name = f"{label}-s{seed}-{_hash(wanted)}"
    if os.path.isdir(os.path.join(root, name)) or not os.path.isdir(root):
        return os.path.join(root, name)
    same = []
    for d in sorted(os.listdir(root)):
        if d.startswith(f"{label}-s{seed}-") and len(d) == len(name):
            try:
                with open(os.path.join(root, d, "config.json")) as f:
                    if _trained_with(
                        {**UNHASHED_AT, **_identity(json.load(f))}, {**UNHASHED_AT, **wanted}
                    ):
                        same.append(os.path.join(root, d))
            except (OSError, ValueError):
                continue
    return min(same, key=lambda d: not finished(d), default=os.path.join(root, name))


def finished(workdir: str) -> bool:
    return os.path.exists(os.path.join(workdir, RESULTS_FILE))


def read(workdir: str) -> dict:
    with open(os.path.join(workdir, RESULTS_FILE)) as f:
        return json.load(f)


def _overrides(base: dict, config: dict, prefix: str) -> list[str]:
    """``--config.<path>=<value>`` flags that turn ``base`` into ``config``; a sub-dict
    that gained or lost keys is set whole, as a dict literal."""
    out = []
    for key, value in config.items():
        path, old = f"{prefix}.{key}", base.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and set(value) == set(old):
            out += _overrides(old, value, path)
        elif key not in base or value != old or type(value) is not type(old):
            # What config_flags parses back: strings raw, the rest as literals.
            out.append(f"--{path}={value if isinstance(value, str) else repr(value)}")
    return out


def run_command(config, workdir: str, config_file: str, module: str = "experiments.train") -> str:
    """``python -m <module> --config <config_file> --workdir <workdir>`` and an override for
    each field where ``config`` differs from the file's (tests/test_sweep.py parses it back)."""
    base = importlib.import_module(config_file[:-3].replace("/", ".")).get_config().to_dict()
    if os.path.isabs(workdir) and not os.path.relpath(workdir).startswith(".."):
        workdir = os.path.relpath(workdir)
    return shlex.join(
        [
            "python",
            "-m",
            module,
            "--config",
            config_file,
            "--workdir",
            workdir,
            *_overrides(base, config.to_dict(), "config"),
        ]
    )


def train_or_reuse(
    config,
    workdir: str,
    measure: Callable[[object, object, float], dict],
    command: str,
    remeasure: bool = False,
) -> dict:
    """The run's stored ``results.json``, or trains it and stores (atomically)
    ``measure(config, train_result, seconds)`` (experiments.measures) with ``command``.
    ``remeasure``: a finished run is measured again from its last checkpoint and final
    metrics (train.restore_params: nothing trained or evaluated, its files untouched),
    keeping the training seconds it recorded. A run resumed from an earlier process's
    checkpoint records no training seconds (``None``): this call's time would leave out
    the earlier process's."""
    if finished(workdir):
        if not remeasure:
            return read(workdir)
        seconds = read(workdir).get("seconds")
        result = train.restore_params(workdir, config)
    else:
        start = time.perf_counter()
        result = train.train_and_evaluate(config, workdir)
        seconds = None if _resumed(workdir) else time.perf_counter() - start
    record = {**measure(config, result, seconds), "command": command}
    record.update(provenance())
    path = os.path.join(workdir, RESULTS_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=2)
    os.replace(path + ".tmp", path)
    return record


def _resumed(workdir: str) -> bool:
    """Whether the training that just ended started from a checkpoint (summary.json)."""
    path = os.path.join(workdir, "summary.json")
    if not os.path.exists(path):  # written by the main process only
        return False
    with open(path) as f:
        return json.load(f).get("resumed_from_step", 0) > 0


def machine() -> str:
    """E.g. 'x86_64, 2 CPU cores (AMD EPYC …), jax 0.10.2 on cpu'."""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), ""
            )
    except OSError:
        model = ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{platform.machine()}, {cores} CPU cores{f' ({model})' if model else ''}, "
        f"jax {jax.__version__} on {jax.default_backend()}"
    )


def provenance() -> dict:
    """When, where and at which commit a run is measured (its record and its table)."""
    return {
        "date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        "machine": machine(),
        "commit": commit(),
    }


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", REPO, *args], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def commit() -> str:
    """The checkout's commit (short hash), with '+changes' where htaf_jax/ or experiments/
    differ from it; 'unknown' outside a git checkout."""
    head = _git("rev-parse", "--short", "HEAD")
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", "htaf_jax", "experiments")
    return (head + ("+changes" if changed else "")) if head else "unknown"


def last_commit(path: str) -> str | None:
    """The last commit that changed ``path`` (``git log --format=%h -1``): for a results file
    that records no commit, the commit it came with."""
    return _git("log", "--format=%h", "-1", "--", os.path.abspath(path)) or None
