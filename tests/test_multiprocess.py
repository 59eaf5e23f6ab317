"""Multi-process training (jax.distributed) with two CPU processes on loopback.

Each child process fakes 2 CPU devices, so the two-process mesh has 4
devices; the reference is a one-process run on 4 of this test process's 8
faked devices, fed the same global batches. The gradient averages then differ
only in summation order (gloo across processes vs XLA within one), hence
float32 tolerances on the two-process comparisons.

The launch each test makes, per process i in {0, 1}::

    XLA_FLAGS=--xla_force_host_platform_device_count=2 JAX_PLATFORMS=cpu \\
    python -m experiments.train <TINY flags> --workdir W \\
        --coordinator_address=127.0.0.1:PORT --num_processes=2 --process_id=i
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import ml_collections
import numpy as np
import pytest
from data_marks import needs_data

from htaf_jax.data import Normalizer, eval_batches, train_batches
from htaf_jax.data.sources import ArraySplit
from htaf_jax.train import ConfigError, cli, restore_params
from htaf_jax.train.config import check_devices
from htaf_jax.train.distributed import DistributedInitError, resolve_settings
from htaf_jax.train.metrics import TIMING_FIELDS, read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCESSES, LOCAL_DEVICES = 2, 2
TINY = [
    "--config",
    "experiments/configs/mlp.py",
    "--config.train_subset=512",
    "--config.test_subset=300",
    "--config.batch_size=32",
    "--config.eval_batch_size=64",
    "--config.model.hidden_sizes=(32,)",
    "--config.log_every_steps=4",
    "--config.progress=False",
    "--config.tensorboard=False",
]
# A hang (a collective one process never joins) fails here, before pytest's 600 s; on a
# busy 2-core machine the two processes of the ICBM job took over 150 s.
TIMEOUT_S = 400


# ---- cheap checks: settings, row shares, the batch-size error ------------------------------


def test_settings_from_flags_environment_and_schedulers():
    assert resolve_settings(environ={}) is None  # one process: nothing to join
    assert resolve_settings("127.0.0.1:1234", 2, 1, environ={}) == ("127.0.0.1:1234", 2, 1)
    env = {
        "JAX_COORDINATOR_ADDRESS": "10.0.0.1:99",
        "JAX_NUM_PROCESSES": "4",
        "JAX_PROCESS_ID": "3",
    }
    assert resolve_settings(environ=env) == ("10.0.0.1:99", 4, 3)
    assert resolve_settings(process_id=0, environ=env) == ("10.0.0.1:99", 4, 0)  # flag wins
    assert resolve_settings(mode="off", environ=env) is None
    assert resolve_settings(num_processes=1, environ={}) is None
    # Launchers JAX detects by itself: join with no explicit settings.
    assert resolve_settings(environ={"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8"}) == (None,) * 3
    assert resolve_settings(environ={"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}) is None
    assert resolve_settings(environ={"OMPI_COMM_WORLD_SIZE": "2"}) == (None,) * 3
    assert resolve_settings(mode="on", environ={}) == (None,) * 3  # TPU pod slice
    with pytest.raises(DistributedInitError, match=r"--process_id \(or \$JAX_PROCESS_ID\)"):
        resolve_settings("127.0.0.1:1234", 2, environ={})
    with pytest.raises(DistributedInitError, match=r"--process_id=2 is outside \[0, 2\)"):
        resolve_settings("127.0.0.1:1234", 2, 2, environ={})
    with pytest.raises(DistributedInitError, match=r"\$JAX_NUM_PROCESSES='two'"):
        resolve_settings(environ={"JAX_NUM_PROCESSES": "two"})


def test_process_row_shares_make_up_the_one_process_batches():
    rng = np.random.default_rng(0)
    split = ArraySplit(
        rng.integers(0, 256, (100, 4, 4, 1), dtype=np.uint8),
        rng.integers(0, 10, 100).astype(np.int32),
    )
    norm = Normalizer.fit(split.images)
    whole = list(train_batches(split, norm, 16, seed=3, epoch=1, start_step=2))
    halves = [
        list(train_batches(split, norm, 16, seed=3, epoch=1, start_step=2, rows=r))
        for r in ((0, 8), (8, 16))
    ]
    assert len(whole) == len(halves[0]) == len(halves[1]) == 4
    for w, a, b in zip(whole, *halves):
        np.testing.assert_array_equal(np.concatenate([a[0], b[0]]), w[0])
        np.testing.assert_array_equal(np.concatenate([a[1], b[1]]), w[1])
    # Eval: 100 examples in padded batches of 80; the second process's share
    # of the last batch (rows 120..159) is padding only, with mask 0.
    whole = list(eval_batches(split, norm, 80))
    halves = [list(eval_batches(split, norm, 80, rows=r)) for r in ((0, 40), (40, 80))]
    assert len(whole) == len(halves[0]) == len(halves[1]) == 2
    for w, a, b in zip(whole, *halves):
        for k in range(3):
            np.testing.assert_array_equal(np.concatenate([a[k], b[k]]), w[k])
    assert whole[-1][2].sum() == 20 and halves[1][-1][2].sum() == 0


def test_global_batch_not_divisible_names_processes_and_local_devices():
    config = ml_collections.ConfigDict({"batch_size": 30, "eval_batch_size": 64, "num_devices": -1})
    with pytest.raises(
        ConfigError,
        match=r"config.batch_size=30 is not divisible by the number "
        r"of devices \(4 = 2 processes × 2 local devices\)",
    ):
        check_devices(config, 4, 2)
    config.batch_size, config.num_devices = 32, 2
    with pytest.raises(ConfigError, match=r"config.num_devices=2: a run over 2 processes"):
        check_devices(config, 4, 2)


# ---- two real processes ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def launch(tmp_path):
    """launch(workdir, args, via_env) -> [Popen] * 2; every child is killed at teardown."""
    children = []

    def start(workdir, args, via_env=False, module="experiments.train", env_extra=None):
        port = _free_port()
        procs = []
        for i in range(PROCESSES):
            env = dict(
                os.environ,
                JAX_PLATFORMS="cpu",  # not conftest's 8 devices
                XLA_FLAGS=f"--xla_force_host_platform_device_count={LOCAL_DEVICES}",
                **{k: v.format(i=i) for k, v in (env_extra or {}).items()},
            )
            flags = []
            if via_env:
                env.update(
                    JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                    JAX_NUM_PROCESSES=str(PROCESSES),
                    JAX_PROCESS_ID=str(i),
                )
            else:
                flags = [
                    f"--coordinator_address=127.0.0.1:{port}",
                    f"--num_processes={PROCESSES}",
                    f"--process_id={i}",
                ]
            log = open(tmp_path / f"{os.path.basename(workdir)}-{len(children)}-p{i}.log", "w+")
            proc = subprocess.Popen(
                [sys.executable, "-m", module, *args, "--workdir", str(workdir), *flags],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            proc.log = log
            procs.append(proc)
            children.append(proc)
        return procs

    yield start
    for proc in children:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.log.close()


def _log(proc) -> str:
    proc.log.seek(0)
    return proc.log.read()[-3000:]


def _wait_all(procs, timeout=TIMEOUT_S):
    deadline = time.time() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.time(), 1))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail(
                f"the processes did not finish in {timeout} s:\n"
                + "\n".join(_log(p) for p in procs)
            )
    for i, proc in enumerate(procs):
        assert proc.returncode == 0, f"process {i}:\n{_log(proc)}"


def _untimed(records):
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


def _assert_same_run(got_dir, want_dir):
    """Params and logged metrics agree to float32 rounding (summation order differs)."""
    got, want = restore_params(str(got_dir)), restore_params(str(want_dir))
    for layer in want.params:
        for name in want.params[layer]:
            np.testing.assert_allclose(
                got.params[layer][name],
                want.params[layer][name],
                rtol=1e-5,
                atol=1e-6,
                err_msg=f"{layer}/{name}",
            )
    got_records, want_records = (
        _untimed(read_metrics(str(got_dir))),
        _untimed(read_metrics(str(want_dir))),
    )
    assert [(r["step"], r["split"]) for r in got_records] == [
        (r["step"], r["split"]) for r in want_records
    ]
    for g, w in zip(got_records, want_records):
        assert g.keys() == w.keys()
        for key in w:
            expected = (
                pytest.approx(w[key], rel=1e-5, abs=1e-6) if isinstance(w[key], float) else w[key]
            )
            assert g[key] == expected, (g["step"], g["split"], key)
    assert got.metrics["test/num_examples"] == want.metrics["test/num_examples"] == 300


def _one_process_reference(workdir, args):
    # Same global device count (4 of this process's 8), so the same per-device rows.
    assert (
        cli.main(
            [
                "train",
                *args,
                "--workdir",
                str(workdir),
                f"--config.num_devices={PROCESSES * LOCAL_DEVICES}",
            ]
        )
        == 0
    )


@pytest.mark.slow  # two engine processes and the one-process reference
@needs_data
@pytest.mark.eight_devices  # the one-process reference runs here on 4 devices
def test_two_processes_equal_one_process_on_the_same_global_batches(tmp_path, launch):
    args = [*TINY, "--config.num_train_steps=12", "--config.checkpoint_every_steps=100"]
    procs = launch(tmp_path / "two", args)
    _wait_all(procs)
    assert "done: test/loss=" in _log(procs[0]) and "done:" not in _log(procs[1])
    summary = json.load(open(tmp_path / "two" / "summary.json"))
    assert summary["num_processes"] == 2 and summary["num_devices"] == 4
    assert summary["step"] == 12
    _one_process_reference(tmp_path / "one", args)
    _assert_same_run(tmp_path / "two", tmp_path / "one")


def _checkpoint_steps(workdir):
    folder = os.path.join(workdir, "checkpoints")
    return [int(d) for d in os.listdir(folder) if d.isdigit()] if os.path.isdir(folder) else []


@pytest.mark.slow  # two engine processes, killed and restarted
@needs_data
@pytest.mark.eight_devices  # the one-process reference runs here on 4 devices
def test_sigkill_both_processes_then_restart_resumes(tmp_path, launch):
    total = 64
    args = [
        *TINY,
        f"--config.num_train_steps={total}",
        "--config.checkpoint_every_steps=4",
        "--config.keep_checkpoints=2",
    ]
    killed = tmp_path / "killed"
    procs = launch(killed, args, via_env=True)
    deadline = time.time() + TIMEOUT_S
    while (
        not _checkpoint_steps(killed)
        and time.time() < deadline
        and all(p.poll() is None for p in procs)
    ):
        time.sleep(0.01)
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    for i, proc in enumerate(procs):
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"process {i}:\n{_log(proc)}"
    assert not os.path.exists(killed / "summary.json"), "killed too late"
    assert 0 < max(_checkpoint_steps(killed)) < total

    restarted = launch(killed, args, via_env=True)
    _wait_all(restarted)
    summary = json.load(open(killed / "summary.json"))
    assert 0 < summary["resumed_from_step"] < total and summary["step"] == total
    _one_process_reference(tmp_path / "uninterrupted", args)
    _assert_same_run(killed, tmp_path / "uninterrupted")


# Loaded by each child (PYTHONPATH): logs every file it opens for writing, so the
# test can tell which process wrote what in the work dir both share.
_WRITE_LOGGER = """
import builtins, os
_log, _open = os.environ["HTAF_TEST_WRITE_LOG"], builtins.open

def _logging_open(file, mode="r", *args, **kwargs):
    if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
        with _open(_log, "a") as f:
            f.write(os.path.abspath(file) + "\\n")
    return _open(file, mode, *args, **kwargs)

builtins.open = _logging_open
"""


@pytest.mark.slow  # the ICBM job over two engine processes
@needs_data
def test_icbm_job_over_two_processes_writes_its_outputs_from_process_0_only(tmp_path, launch):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_WRITE_LOGGER)
    workdir = tmp_path / "icbm"
    args = [
        "--config.train_subset=256",
        "--config.test_subset=200",
        "--config.batch_size=32",
        "--config.num_train_steps=4",
        "--config.baseline=False",
        "--config.model.backbone_kwargs.widths=(16,)",
        "--config.model.num_concepts=8",
        "--config.grid_concepts=2",
        "--config.grid_size=4",
        "--config.progress=False",
        "--config.tensorboard=False",
    ]
    procs = launch(
        workdir,
        args,
        module="experiments.icbm",
        env_extra={
            "PYTHONPATH": f"{hooks}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "HTAF_TEST_WRITE_LOG": str(tmp_path / "writes-p{i}.log"),
        },
    )
    _wait_all(procs)
    # A file written whole goes to a hidden temporary beside it first (htaf_jax._atomic).
    target = lambda p: re.sub(r"(^|/)\.([^/]+)\.tmp-\d+$", r"\1\2", p)  # noqa: E731
    written = [
        {
            target(os.path.relpath(p, workdir))
            for p in (tmp_path / f"writes-p{i}.log").read_text().split()
            if p.startswith(str(workdir))
        }
        for i in range(PROCESSES)
    ]
    outputs = {"results.json", "results.md", "concepts/overview.png"}
    assert outputs <= written[0], written[0]
    assert not {p for p in written[1] if p.startswith(("results.", "concepts"))}, written[1]
    assert "test accuracy with hard concepts" in _log(procs[0])
    assert "test accuracy with hard concepts" not in _log(procs[1])
    record = json.load(open(workdir / "results.json"))
    assert record["engine_metrics"]["test/num_examples"] == 200
    assert record["command"].startswith("python -m experiments.icbm --config.train_subset=256")
    assert "--process_id=0" in record["command"]
