"""Command-line launcher shared by every ``python -m experiments.<name>`` module.

An experiment module is three lines::

    from htaf_jax.train import cli
    if __name__ == "__main__":
        cli.main(default_config="experiments/configs/snn.py")

Flags: ``--config PATH`` (an ml_collections config file; any field can then be
overridden, ``--config.num_epochs=3``) and ``--workdir DIR`` (checkpoints,
metrics; a rerun with the same workdir resumes). Known failures (bad config
field, missing data, NaN loss, a checkpoint for another model) print one
line and exit with status 1; a bad flag exits with status 2.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

from absl import flags
from ml_collections import config_flags

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _resolve(path: str | None) -> str | None:
    if path is None or os.path.exists(path.split(":")[0]):
        return path
    candidate = os.path.join(_REPO_ROOT, path)
    return candidate if os.path.exists(candidate.split(":")[0]) else path


def parse_flags(argv: Sequence[str], default_config: str | None = None):
    """Returns (config, workdir) from argv (argv[0] is the program name)."""
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", _resolve(default_config),
                                    "Path to an ml_collections config file.",
                                    flag_values=values, lock_config=False,
                                    sys_argv=list(argv))  # override flags are found from argv
    flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.",
                        flag_values=values)
    values(list(argv))
    if values.config is None:
        raise flags.Error("--config is required")
    if not values.workdir:
        raise flags.Error("--workdir is required")
    return values.config, values.workdir


def main(argv: Sequence[str] | None = None, *, default_config: str | None = None,
         train_fn: Callable | None = None) -> int:
    """Parses flags, runs ``train_fn(config, workdir)`` (default: train_and_evaluate).

    Returns 0 on success; exits with 1 and one readable line on a known failure.
    """
    from htaf_jax.data import DatasetNotFoundError
    from htaf_jax.train import (CheckpointMismatchError, ConfigError, NonFiniteLossError,
                                train_and_evaluate)
    argv = list(sys.argv if argv is None else argv)
    try:
        config, workdir = parse_flags(argv, default_config)
    except (flags.Error, ValueError, AttributeError, KeyError) as e:
        print(f"{os.path.basename(argv[0])}: error: {e}", file=sys.stderr)
        sys.exit(2)
    try:
        result = (train_fn or train_and_evaluate)(config, workdir)
    except (ConfigError, DatasetNotFoundError, CheckpointMismatchError,
            NonFiniteLossError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    metrics = getattr(result, "metrics", {}) or {}
    shown = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in metrics.items())
    print(f"done: {shown} (workdir {workdir})")
    return 0
