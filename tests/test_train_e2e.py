"""End to end on real Fashion-MNIST: the public entry point, determinism, SIGKILL + resume."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from data_marks import needs_data

from htaf_jax.data import load_splits
from htaf_jax.models import build_model
from htaf_jax.train import cli, load_config, restore_params
from htaf_jax.train.metrics import TIMING_FIELDS, read_metrics
from htaf_jax.train.restore import load_derived, model_from_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = needs_data

TINY = [
    "--config",
    "experiments/configs/mlp.py",
    "--config.train_subset=512",
    "--config.test_subset=300",
    "--config.batch_size=32",
    "--config.eval_batch_size=128",
    "--config.num_epochs=2",
    "--config.model.hidden_sizes=(64,)",
    "--config.log_every_steps=8",
    "--config.checkpoint_every_steps=16",
    "--config.progress=False",
]


def _untimed(records):
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


def _run_cli(workdir, extra=()):
    assert cli.main(["train", *TINY, "--workdir", str(workdir), *extra]) == 0


def test_public_entry_point_trains_on_real_fashion_mnist(tmp_path, capsys):
    _run_cli(tmp_path / "a")
    assert "done: test/loss=" in capsys.readouterr().out
    summary = json.load(open(tmp_path / "a" / "summary.json"))
    assert summary["step"] == 32 and summary["num_devices"] == jax.device_count()
    assert summary["metrics"]["test/num_examples"] == 300
    assert summary["metrics"]["test/accuracy"] > 0.5  # chance is 0.1
    records = read_metrics(str(tmp_path / "a"))
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == [8, 16, 24, 32]
    assert train[-1]["loss"] < train[0]["loss"]
    assert "active_fraction/layer0" in train[0]
    assert [r["step"] for r in records if r["split"] == "test"] == [16, 32]
    assert glob.glob(str(tmp_path / "a" / "tensorboard" / "events.out.tfevents.*"))

    # The stored config is the one given; what the run derived is recorded beside it.
    config = load_config(str(tmp_path / "a"))
    assert "num_classes" not in config.model and "total_train_steps" not in config.model
    assert "input_shape" not in config
    assert load_derived(str(tmp_path / "a")) == {
        "num_classes": 10,
        "total_train_steps": 32,
        "input_shape": (28, 28, 1),
    }
    # The returned/restored params reproduce the reported accuracy.
    params, batch_stats, metrics = restore_params(str(tmp_path / "a"), config)
    splits = load_splits("fashion_mnist", train_subset=512, test_subset=300)
    model, _ = model_from_run(str(tmp_path / "a"))
    assert model == build_model(config.model, num_classes=10, total_train_steps=32)
    logits = model.apply({"params": params}, splits.normalizer(splits.eval.images))
    accuracy = float(np.mean(np.argmax(logits, -1) == splits.eval.labels))
    assert accuracy == pytest.approx(metrics["test/accuracy"], abs=1e-6)

    # Same seed, fresh workdir: the same metrics, exactly.
    _run_cli(tmp_path / "b")
    assert _untimed(read_metrics(str(tmp_path / "b"))) == _untimed(records)
    _run_cli(tmp_path / "c", ["--config.seed=1"])
    assert _untimed(read_metrics(str(tmp_path / "c"))) != _untimed(records)


def _checkpoint_steps(workdir):
    folder = os.path.join(workdir, "checkpoints")
    return [int(d) for d in os.listdir(folder) if d.isdigit()] if os.path.isdir(folder) else []


@pytest.mark.slow  # three engine processes (test_kill_safety keeps the in-process kill checks in make test)
def test_sigkill_then_rerun_gives_the_uninterrupted_result(tmp_path):
    args = [
        *TINY,
        "--config.train_subset=1024",
        "--config.num_epochs=6",
        "--config.model.hidden_sizes=(32,)",
        "--config.checkpoint_every_steps=8",
        "--config.log_every_steps=8",
        "--config.tensorboard=False",
    ]
    killed = str(tmp_path / "killed")
    command = [sys.executable, "-m", "experiments.train", *args, "--workdir", killed]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not _checkpoint_steps(killed) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not os.path.exists(os.path.join(killed, "summary.json")), "killed too late"
    steps_at_kill = max(_checkpoint_steps(killed))
    assert steps_at_kill < 192

    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.load(open(os.path.join(killed, "summary.json")))
    assert 0 < summary["resumed_from_step"] < 192 and summary["step"] == 192

    reference = tmp_path / "uninterrupted"
    assert cli.main(["train", *args, "--workdir", str(reference)]) == 0
    want, got = restore_params(str(reference)), restore_params(killed)
    for layer in want.params:
        for name in want.params[layer]:
            np.testing.assert_array_equal(got.params[layer][name], want.params[layer][name])
    assert got.metrics == want.metrics
    assert _untimed(read_metrics(killed)) == _untimed(read_metrics(str(reference)))
