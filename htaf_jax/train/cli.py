"""Command-line launcher shared by every ``python -m experiments.<name>`` module.

An experiment module is three lines::

    from htaf_jax.train import cli
    if __name__ == "__main__":
        cli.main(default_config="experiments/configs/snn.py")

Flags: ``--config PATH`` (an ml_collections config file; any field can then be
overridden, ``--config.num_epochs=3``) and ``--workdir DIR`` (checkpoints,
metrics; a rerun with the same workdir resumes). Known failures (bad config
field, missing data, NaN loss, a checkpoint for another model) print one
line and exit with status 1; a bad flag or config file exits with status 2. A work
dir that cannot be written (a file in its place, no permission, a read-only or full
disk) is one line naming it, before any data is read.

Multi-process runs (one command per process, see htaf_jax.train.distributed):
``--coordinator_address=HOST:PORT --num_processes=P --process_id=I``, or the
variables JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, or a
SLURM/Open MPI launch; ``--distributed=on`` for TPU pod slices,
``--distributed=off`` to ignore all of it. The runtime is joined before any
JAX computation.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Callable, Sequence

from absl import flags
from ml_collections import config_flags

from htaf_jax.data import DatasetNotFoundError
from htaf_jax.train import (
    CheckpointMismatchError,
    ConfigError,
    NonFiniteLossError,
    distributed,
    train_and_evaluate,
)
from htaf_jax.train.workdir import WRITE_ERRNOS, WorkdirError, describe

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _resolve(path: str | None) -> str | None:
    if path is None or os.path.exists(path.split(":")[0]):
        return path
    candidate = os.path.join(_REPO_ROOT, path)
    return candidate if os.path.exists(candidate.split(":")[0]) else path


HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "--helpfull")
CONFIG_HINT = (
    "Any config field can be overridden: --config.<field>=VALUE, e.g. "
    "--config.num_epochs=3 --config.model.surrogate=atan."
)


def help_requested(argv: Sequence[str]) -> bool:
    """True when argv (argv[0] is the program) asks for help."""
    return any(arg in HELP_FLAGS for arg in list(argv)[1:])


def exit_with_help_if_asked(values: flags.FlagValues, argv: Sequence[str], usage: str) -> None:
    """When argv asks for help: prints ``usage``, the flags, and the config the other
    flags give, and exits 0. Otherwise returns.

    Flag sets made with ``flags.FlagValues()`` (ours, so that importing an
    experiment never touches absl's global flags) have no ``--help``.
    """
    if not help_requested(argv):
        return
    print(usage.strip() + "\n\nflags:")
    for line in values.get_help(include_special_flags=False).splitlines():
        if line.strip() and line.strip() != "-:":
            print(line)
    print("\n" + CONFIG_HINT)
    rest = [arg for arg in argv if arg not in HELP_FLAGS]
    try:
        values(list(rest))
        config = values["config"].value
    except Exception as e:  # noqa: BLE001 - help should print even with bad flags
        print(f"\n(the config could not be loaded: {e})")
    else:
        if config is not None:
            path = values["config"].config_filename  # pyright: ignore[reportAttributeAccessIssue]
            print(f"\nconfig ({path}):")
            print("  " + str(config).rstrip().replace("\n", "\n  "))
    sys.exit(0)


def parse_command(values: flags.FlagValues, argv: Sequence[str], usage: str) -> list[str]:
    """Parses ``argv`` (argv[0]: the program) into ``values`` for a command that trains no
    config (``experiments.run``, ``experiments.icbm_explain``); returns the positional
    arguments. ``--help`` prints ``usage`` and the flags and exits 0; a bad flag prints
    one line and exits 2."""
    if help_requested(argv):
        print(usage.strip() + "\n\nflags:\n" + values.get_help(include_special_flags=False))
        sys.exit(0)
    try:
        return values(list(argv))[1:]
    except flags.Error as e:
        print(f"{os.path.basename(str(argv[0]))}: error: {e}", file=sys.stderr)
        sys.exit(2)


def one_line(error: BaseException) -> str:
    """An exception's message as one line of text.

    ``str(KeyError(msg))`` is ``repr(msg)``, and ml_collections reports an
    unknown config field as an AttributeError holding such a KeyError
    ("'concept_nosie'\\nDid you mean ..."), which would print with quotes and a
    literal \\n; the message is unwrapped and its lines joined.
    """
    message: object = error
    while isinstance(message, BaseException):
        if isinstance(message, KeyError) or (
            message.args and isinstance(message.args[0], BaseException)
        ):
            message = message.args[0] if message.args else ""
        else:
            message = str(message)
    return " ".join(str(message).split())


def _unknown_field(error: BaseException, argv: Sequence[str]) -> str | None:
    """For an override of a field the config lacks: which flag, and ml_collections' hint."""
    text = one_line(error)
    if not text.startswith("'") or "'" not in text[1:]:
        return None
    key, hint = text[1:].split("'", 1)
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if flag.startswith("--config.") and key in flag.split(".")[1:]:
            return f"{flag}: the config has no field {key!r}. {hint.strip()}".strip()
    return None


def _main_usage(prog: str) -> str:
    """The running module's docstring (``python -m experiments.X``), else a generic line."""
    doc = getattr(sys.modules.get("__main__"), "__doc__", None)
    return doc if doc else f"{prog} --config PATH --workdir DIR [--config.FIELD=VALUE ...]"


def parse_flags(argv: Sequence[str], default_config: str | None = None):
    """Returns (config, workdir) from argv (argv[0] is the program name)."""
    values = _parse(argv, default_config)
    return values.config, values.workdir


def _config_path(argv: Sequence[str], default: str | None) -> str | None:
    """The ``--config`` argv names (the last one, as absl reads it), else ``default``."""
    path = default
    for i, arg in enumerate(argv[1:], 1):
        for flag in ("--config", "-config"):
            if arg == flag and i + 1 < len(argv):
                path = argv[i + 1]
            elif arg.startswith(flag + "="):
                path = arg[len(flag) + 1 :]
    return path


def _check_config_file(path: str | None) -> None:
    """Loads the config file ``path`` (``file.py[:arg]``) once, so that a missing file, or
    one that fails to import or has no ``get_config``, is one flags.Error naming it (absl and
    ml_collections would print tracebacks, or defer the error to the first field read)."""
    if path is None:
        return
    file, *arg = path.split(":", 1)
    if not os.path.isfile(file):
        raise flags.Error(
            f"--config {file}: no such file"
            + ("" if os.path.exists(file) else f" (configs: {', '.join(sorted(_list_configs()))})")
        )
    spec = importlib.util.spec_from_file_location("_htaf_config_check", file)
    if spec is None or spec.loader is None:
        raise flags.Error(f"--config {file}: not a Python file (a config is a .py file)")
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not callable(getattr(module, "get_config", None)):
            raise flags.Error(f"--config {file}: the file has no get_config() function")
        module.get_config(*arg)
    except flags.Error:
        raise
    except Exception as e:  # noqa: BLE001 - any error in a user's config file is reported
        raise flags.Error(
            f"--config {path}: the config file failed to load: {type(e).__name__}: {one_line(e)}"
        ) from None


def _list_configs() -> list[str]:
    folder = os.path.join(_REPO_ROOT, "experiments", "configs")
    return [
        f"experiments/configs/{n}"
        for n in (os.listdir(folder) if os.path.isdir(folder) else [])
        if n.endswith(".py") and not n.startswith("_") and n != "studies.py"
    ]


def _parse(argv: Sequence[str], default_config: str | None) -> flags.FlagValues:
    if not help_requested(argv):
        _check_config_file(_resolve(_config_path(argv, default_config)))
    values = flags.FlagValues()
    config_flags.DEFINE_config_file(
        "config",
        _resolve(default_config),
        "Path to an ml_collections config file.",
        flag_values=values,
        lock_config=False,
        sys_argv=list(argv),
    )  # override flags are found from argv
    flags.DEFINE_string(
        "workdir", None, "Directory for checkpoints and metrics.", flag_values=values
    )
    flags.DEFINE_string(
        "coordinator_address",
        None,
        "HOST:PORT of process 0 in a multi-process run (else $JAX_COORDINATOR_ADDRESS).",
        flag_values=values,
    )
    flags.DEFINE_integer(
        "num_processes", None, "Processes in the run (else $JAX_NUM_PROCESSES).", flag_values=values
    )
    flags.DEFINE_integer(
        "process_id",
        None,
        "This process's index in [0, num_processes) (else $JAX_PROCESS_ID).",
        flag_values=values,
    )
    flags.DEFINE_enum(
        "distributed",
        "auto",
        list(distributed.MODES),
        "auto: join a multi-process run when flags, JAX_* variables or "
        "SLURM/Open MPI say so; on: always (TPU pod slices); off: never.",
        flag_values=values,
    )
    exit_with_help_if_asked(values, argv, _main_usage(os.path.basename(str(argv[0]))))
    values(list(argv))
    if values.config is None:
        raise flags.Error("--config is required")
    if not values.workdir:
        raise flags.Error("--workdir is required")
    return values


def main(
    argv: Sequence[str] | None = None,
    *,
    default_config: str | None = None,
    train_fn: Callable | None = None,
) -> int:
    """Parses flags, runs ``train_fn(config, workdir)`` (default: train_and_evaluate).

    Returns 0 on success; exits with 1 and one readable line on a known failure.
    """
    argv = list(sys.argv if argv is None else argv)
    try:
        values = _parse(argv, default_config)
    except (flags.Error, ValueError, AttributeError, KeyError) as e:
        text = _unknown_field(e, argv) or one_line(e)
        print(f"{os.path.basename(argv[0])}: error: {text}", file=sys.stderr)
        sys.exit(2)
    config, workdir = values.config, values.workdir
    try:
        distributed.initialize(
            values.coordinator_address, values.num_processes, values.process_id, values.distributed
        )
        result = (train_fn or train_and_evaluate)(config, workdir)
    except (
        ConfigError,
        DatasetNotFoundError,
        CheckpointMismatchError,
        NonFiniteLossError,
        WorkdirError,
        distributed.DistributedInitError,
    ) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        if e.errno not in WRITE_ERRNOS:
            raise
        print(f"error: {describe(e)}", file=sys.stderr)  # the disk filled or went read-only
        sys.exit(1)
    metrics = getattr(result, "metrics", {}) or {}
    shown = " ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
    )
    if distributed.is_main_process():  # a train_fn returning no metrics printed its own summary
        print(f"done: {shown} (workdir {workdir})" if shown else f"done (workdir {workdir})")
    return 0
