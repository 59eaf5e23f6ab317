"""Resumable sweeps: one work dir per run, keyed by a hash of its whole config.

Shared by ``experiments.sweep`` and ``experiments.icbm_compare``. A run lives
in ``OUT/runs/<label>-s<seed>-<hash>``; the hash covers every config field,
so a changed setting never reuses an old run, and a run whose
``results.json`` exists is reused as is, so an interrupted sweep resumes
where it stopped (an unfinished run resumes from its last checkpoint).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from typing import Callable

import numpy as np

__all__ = ["config_hash", "run_dir", "train_or_reuse", "mean_std", "machine", "RESULTS_FILE"]

RESULTS_FILE = "results.json"


def config_hash(config) -> str:
    """8 hex digits of the SHA-1 of the config's sorted JSON."""
    return hashlib.sha1(config.to_json(sort_keys=True).encode()).hexdigest()[:8]


def run_dir(out: str, label: str, seed: int, config) -> str:
    """``OUT/runs/<label>-s<seed>-<hash>``."""
    return os.path.join(out, "runs", f"{label}-s{seed}-{config_hash(config)}")


def train_or_reuse(config, workdir: str,
                   measure: Callable[[object, object, float], dict] | None = None) -> dict:
    """Returns the run's stored ``results.json``, or trains it and stores one.

    ``measure(config, train_result, seconds) -> dict`` turns a finished
    ``htaf_jax.train.TrainResult`` into the record to store (default: the
    final eval metrics and the training seconds). The record is written
    atomically, so a killed sweep never leaves a half-written result.
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
