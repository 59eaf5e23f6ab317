r"""Joining JAX's multi-controller runtime before any JAX computation.

A multi-host run is P copies of the same command, one per process (one per
host, or one per GPU); each process drives its local devices, and the train
step runs over a mesh of all P × L devices (htaf_jax.train.step). Nothing else
changes: ``config.batch_size`` is the *global* batch, each process builds only
its own rows of it (loop.py), and process 0 alone writes metrics and
summaries, as the experiments do with their analysis outputs
(``is_main_process``; the ICBM job's results and concept figures,
tests/test_multiprocess.py). A single process needs nothing from this module.

Where the settings come from, first match wins:

1. flags ``--coordinator_address=HOST:PORT --num_processes=P --process_id=I``;
2. environment ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``;
3. a launcher JAX detects by itself — SLURM (``SLURM_NTASKS`` > 1), Open MPI
   (``OMPI_COMM_WORLD_SIZE`` > 1) — or ``--distributed=on`` for the
   environments JAX detects without any variable to look at (Cloud TPU pod
   slices, GKE).

Two processes on one machine, the run tests/test_multiprocess.py makes
(CPU, loopback, gloo collectives)::

    for i in 0 1; do
      XLA_FLAGS=--xla_force_host_platform_device_count=2 JAX_PLATFORMS=cpu \
      python -m experiments.train --config experiments/configs/mlp.py --workdir /tmp/mp \
          --coordinator_address=127.0.0.1:12355 --num_processes=2 --process_id=$i &
    done; wait
"""

from __future__ import annotations

import os
from typing import Mapping, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MODES = ("auto", "on", "off")
AXIS = "data"  # the one mesh axis: the batch is split over it


class DistributedInitError(RuntimeError):
    """The multi-process settings are incomplete or JAX could not join the run."""


class DistributedSettings(NamedTuple):
    coordinator_address: str | None  # "host:port" of process 0's coordination service
    num_processes: int | None
    process_id: int | None


def _int_env(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise DistributedInitError(f"${name}={value!r} is not an integer") from None


def _scheduler(environ: Mapping[str, str]) -> str | None:
    """A multi-task launcher JAX's own cluster detection handles, if any."""
    if "SLURM_JOB_ID" in environ and (_int_env(environ, "SLURM_NTASKS") or 1) > 1:
        return "SLURM"
    if (_int_env(environ, "OMPI_COMM_WORLD_SIZE") or 1) > 1:
        return "Open MPI"
    return None


def resolve_settings(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    mode: str = "auto",
    environ: Mapping[str, str] | None = None,
) -> DistributedSettings | None:
    """The settings to join with, or None for a single-process run.

    Raises DistributedInitError for a half-given setting (an address without a
    process count, an id outside [0, P)), naming the flag and variable.
    """
    environ = os.environ if environ is None else environ
    if mode not in MODES:
        raise DistributedInitError(f"--distributed must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "off":
        return None
    address = coordinator_address or environ.get("JAX_COORDINATOR_ADDRESS") or None
    count = num_processes if num_processes is not None else _int_env(environ, "JAX_NUM_PROCESSES")
    index = process_id if process_id is not None else _int_env(environ, "JAX_PROCESS_ID")
    explicit = address is not None or (count or 1) > 1 or index is not None
    if not explicit:
        if mode == "on" or _scheduler(environ):
            return DistributedSettings(None, None, None)  # JAX detects the cluster
        return None
    if count == 1 and (index or 0) == 0:
        return None  # a cluster of one: nothing to join
    missing = [
        f"--{flag} (or ${env})"
        for flag, env, value in (
            ("coordinator_address", "JAX_COORDINATOR_ADDRESS", address),
            ("num_processes", "JAX_NUM_PROCESSES", count),
            ("process_id", "JAX_PROCESS_ID", index),
        )
        if value is None
    ]
    if missing and not _scheduler(environ):
        raise DistributedInitError(
            f"a multi-process run needs {', '.join(missing)} as well "
            f"(got coordinator_address={address!r}, "
            f"num_processes={count}, process_id={index})"
        )
    if count is not None and count < 1:
        raise DistributedInitError(f"--num_processes must be >= 1, got {count}")
    if count is not None and index is not None and not 0 <= index < count:
        raise DistributedInitError(
            f"--process_id={index} is outside [0, {count}) for --num_processes={count}"
        )
    return DistributedSettings(address, count, index)


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    mode: str = "auto",
    environ: Mapping[str, str] | None = None,
) -> bool:
    """Calls ``jax.distributed.initialize`` when the run is multi-process.

    Returns True if this process joined a multi-process run. Call it before
    anything touches a device (``jax.devices()``, an array op): JAX refuses
    to join afterwards. On CPU the collectives go through gloo.
    """
    settings = resolve_settings(coordinator_address, num_processes, process_id, mode, environ)
    if settings is None:
        return False
    if jax.distributed.is_initialized():  # a second run in the same process
        return True
    environ = os.environ if environ is None else environ
    platforms = environ.get("JAX_PLATFORMS", "") or (jax.config.jax_platforms or "")  # pyright: ignore[reportAttributeAccessIssue]
    if not platforms or "cpu" in platforms.split(","):
        # Without it, CPU collectives across processes are unimplemented.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=settings.coordinator_address,
            num_processes=settings.num_processes,
            process_id=settings.process_id,
        )
    except (RuntimeError, ValueError) as e:
        raise DistributedInitError(
            f"jax.distributed.initialize({settings.coordinator_address!r}, "
            f"num_processes={settings.num_processes}, process_id={settings.process_id}) "
            f"failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from e
    return True


def is_main_process() -> bool:
    """Process 0: the one that writes metrics, summaries and figures."""
    return jax.process_index() == 0


# ------------------------------------------------ placing state and batches on a mesh --


def check_num_devices(num_devices: int, available: int, process_count: int) -> None:
    """Raises ValueError unless a run may use ``num_devices`` (-1: all) of the ``available``
    devices of every process: more than there are, or a subset over several processes."""
    if num_devices > available:
        raise ValueError(
            f"config.num_devices={num_devices} but only {available} devices are available"
        )
    if process_count > 1 and num_devices not in (-1, available):
        raise ValueError(
            f"config.num_devices={num_devices}: a run over {process_count} processes uses all "
            f"{available} devices; leave config.num_devices at -1"
        )


def make_mesh(num_devices: int = -1) -> Mesh:
    """A 1-D mesh named ``data`` over the first ``num_devices`` devices (-1: all).

    In a multi-process run the mesh spans every process's devices, ordered
    by process, so process p holds one contiguous block of each global batch
    (``process_rows``); ``num_devices`` must then be -1 or the global count.
    """
    devices = jax.devices()
    check_num_devices(num_devices, len(devices), jax.process_count())
    if jax.process_count() > 1:
        devices = sorted(devices, key=lambda d: (d.process_index, d.id))
    return Mesh(np.asarray(devices[: num_devices if num_devices > 0 else None]), (AXIS,))


def _is_key(leaf) -> bool:
    return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)  # pyright: ignore[reportPrivateImportUsage]


def replicate(tree, mesh: Mesh):
    """A copy of ``tree`` on every device of the mesh.

    Multi-process: every process passes the same values (same seed, same
    init) and each places them on its own devices; device_put accepts host
    arrays, not arrays already on one process's device, for a global sharding.
    """
    sharding = NamedSharding(mesh, P())
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def leaf(x):
        if _is_key(x):
            data = jax.device_put(np.asarray(jax.random.key_data(x)), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        return jax.device_put(np.asarray(x), sharding)

    return jax.tree.map(leaf, tree)


def process_rows(mesh: Mesh, batch_size: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of a global batch that this process's devices hold.

    ``(0, batch_size)`` on one process; ``(p·B/P, (p+1)·B/P)`` for process p
    of P on a mesh from ``make_mesh``.
    """
    indices = NamedSharding(mesh, P(AXIS)).addressable_devices_indices_map((batch_size,))
    spans = sorted(
        (s[0].start or 0, batch_size if s[0].stop is None else s[0].stop)  # pyright: ignore[reportOptionalSubscript]
        for s in indices.values()
    )
    if any(a[1] != b[0] for a, b in zip(spans, spans[1:])):
        raise ValueError(
            f"this process's devices hold non-contiguous rows {spans} of the "
            f"batch; build the mesh with make_mesh"
        )
    return spans[0][0], spans[-1][1]


def shard_batch(arrays, mesh: Mesh):
    """Global arrays split along the leading (batch) axis over the mesh.

    One process: ``arrays`` are the whole batch. Several: they are this
    process's rows (``process_rows``), and the global batch is P times longer.
    """
    sharding = NamedSharding(mesh, P(AXIS))
    if jax.process_count() == 1:
        return jax.device_put(arrays, sharding)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), arrays)
