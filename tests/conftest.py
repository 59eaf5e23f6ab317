"""Test configuration, in the spirit of equinox's: fake CPU devices so the multi-device
code paths run in every test session, on any machine.

8 devices by default; ``HTAF_TEST_DEVICES=2`` fakes 2, which still runs every engine
test data-parallel at a quarter of the cost (8 fake devices on 2 cores spend much of
their time synchronising). Tests that need 8 are marked ``eight_devices`` and skipped
with fewer; ``make test`` runs the rest on 2 devices, then those on 8.
"""

import os

# Must happen before jax is imported anywhere in the test process.
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    _count = int(os.environ.get("HTAF_TEST_DEVICES", "8"))
    os.environ["XLA_FLAGS"] = (_flags + f" --xla_force_host_platform_device_count={_count}").strip()
# Tests compile hundreds of small programs and run most of them for a few steps: XLA's
# backend (LLVM) optimisations cost more time than they save (about a fifth of the
# suite's CPU time). HLO passes, and so the numerics up to float rounding, are unchanged.
if "xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_backend_optimization_level=0"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One persistent XLA compilation cache for the whole session: the xdist workers and the
# subprocesses tests start inherit it, so a program compiled once (the same tiny engine
# run, model or step in several tests) is read back instead of compiled again. Starts
# empty each session (a clean clone pays every first compile, as CI does). No size limit:
# with one, JAX's LRU cache takes a file lock around every read and write and, on every
# write, stats every entry to decide what to evict, so the suite's thousands of entries
# made each compile cost more than the one before (the workers spent most of a 40-minute
# run waiting on that lock; py-spy showed them in LRUCache._evict_if_needed). Without it,
# a write is a plain file write; a reader that meets a half-written entry gets JAX's
# "Error reading persistent compilation cache entry" warning and compiles instead.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _cache = tempfile.mkdtemp(prefix="htaf-jax-test-xla-cache-")
    os.environ.update(
        JAX_COMPILATION_CACHE_DIR=_cache,
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)

import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)

import pytest  # noqa: E402


@pytest.fixture
def count_trainings(monkeypatch):
    """The work dirs ``htaf_jax.train.train_and_evaluate`` is called with, in order."""
    import htaf_jax.train

    calls = []
    real = htaf_jax.train.train_and_evaluate

    def counting(config, workdir):
        calls.append(workdir)
        return real(config, workdir)

    monkeypatch.setattr(htaf_jax.train, "train_and_evaluate", counting)
    return calls


# Scheduling (`make test`: `-n 3 --dist loadfile --no-loadscope-reorder`). A file is one
# unit of work, and units are handed out in collection order, so the longest files go
# first: a long file handed out last runs alone at the end while the other workers idle.
# (Without --no-loadscope-reorder, xdist orders files by their number of tests instead.)
# Costs from `pytest --durations`, three workers on 2 cores, tests not marked slow; the
# notebooks' file leads `make test-slow` (four kernels, 04 the longest).
LONGEST_FIRST = (
    "test_notebooks.py",
    "test_layers_spiking.py",
    "test_precision.py",
    "test_backbones.py",
    "test_nir.py",
    "test_icbm.py",
    "test_sweep.py",
    "test_train_e2e.py",
    "test_options.py",
    "test_icbm_job.py",
    "test_benchmarks.py",
    "test_multiprocess.py",
    "test_layers_concepts.py",
    "test_surrogates.py",
    "test_cotangents.py",
    "test_config_units.py",
    "test_snn.py",
    "test_layers_binary.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
    if jax.device_count() < 8:
        skip = pytest.mark.skip(reason="needs 8 fake devices (HTAF_TEST_DEVICES=8)")
        for item in items:
            if "eight_devices" in item.keywords:
                item.add_marker(skip)
