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

Multi-process runs (one command per process, see htaf_jax.train.distributed):
``--coordinator_address=HOST:PORT --num_processes=P --process_id=I``, or the
variables JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, or a
SLURM/Open MPI launch; ``--distributed=on`` for TPU pod slices,
``--distributed=off`` to ignore all of it. The runtime is joined before any
JAX computation.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

from absl import flags
from ml_collections import config_flags

from htaf_jax.train import distributed

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _resolve(path: str | None) -> str | None:
    if path is None or os.path.exists(path.split(":")[0]):
        return path
    candidate = os.path.join(_REPO_ROOT, path)
    return candidate if os.path.exists(candidate.split(":")[0]) else path


def parse_flags(argv: Sequence[str], default_config: str | None = None):
    """Returns (config, workdir) from argv (argv[0] is the program name)."""
    values = _parse(argv, default_config)
    return values.config, values.workdir


def _parse(argv: Sequence[str], default_config: str | None) -> flags.FlagValues:
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", _resolve(default_config),
                                    "Path to an ml_collections config file.",
                                    flag_values=values, lock_config=False,
                                    sys_argv=list(argv))  # override flags are found from argv
    flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.",
                        flag_values=values)
    flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 in a "
                        "multi-process run (else $JAX_COORDINATOR_ADDRESS).", flag_values=values)
    flags.DEFINE_integer("num_processes", None, "Processes in the run (else "
                         "$JAX_NUM_PROCESSES).", flag_values=values)
    flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes) "
                         "(else $JAX_PROCESS_ID).", flag_values=values)
    flags.DEFINE_enum("distributed", "auto", list(distributed.MODES),
                      "auto: join a multi-process run when flags, JAX_* variables or "
                      "SLURM/Open MPI say so; on: always (TPU pod slices); off: never.",
                      flag_values=values)
    values(list(argv))
    if values.config is None:
        raise flags.Error("--config is required")
    if not values.workdir:
        raise flags.Error("--workdir is required")
    return values


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
        values = _parse(argv, default_config)
    except (flags.Error, ValueError, AttributeError, KeyError) as e:
        print(f"{os.path.basename(argv[0])}: error: {e}", file=sys.stderr)
        sys.exit(2)
    config, workdir = values.config, values.workdir
    try:
        distributed.initialize(values.coordinator_address, values.num_processes,
                               values.process_id, values.distributed)
        result = (train_fn or train_and_evaluate)(config, workdir)
    except (ConfigError, DatasetNotFoundError, CheckpointMismatchError,
            NonFiniteLossError, distributed.DistributedInitError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    metrics = getattr(result, "metrics", {}) or {}
    shown = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in metrics.items())
    if distributed.is_main_process():  # a train_fn returning no metrics printed its own summary
        print(f"done: {shown} (workdir {workdir})" if shown else f"done (workdir {workdir})")
    return 0
