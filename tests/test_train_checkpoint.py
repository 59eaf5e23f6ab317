"""Checkpoints: exact resume, half-written checkpoints ignored, shape mismatch, NaN stop."""

import json
import os
import shutil

import numpy as np
import pytest

from experiments.configs import mlp as mlp_config
from htaf_jax.train import (
    CheckpointMismatchError,
    NonFiniteLossError,
    restore_params,
    train_and_evaluate,
)
from htaf_jax.train.checkpoint import Checkpoints
from htaf_jax.train.metrics import TIMING_FIELDS, read_metrics


def tiny_config(**overrides):
    config = mlp_config.get_config()
    config.update(
        dict(
            train_subset=256,
            test_subset=100,
            batch_size=32,
            eval_batch_size=64,
            num_epochs=2,
            checkpoint_every_steps=4,
            keep_checkpoints=5,
            log_every_steps=4,
            progress=False,
            tensorboard=False,
        )
    )
    config.model.hidden_sizes = (16,)
    config.update(overrides)
    return config


def _untimed(records):
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


def assert_trees_equal(a, b):
    flat_a, flat_b = _flatten(a), _flatten(b)
    assert flat_a.keys() == flat_b.keys()
    for key in flat_a:
        np.testing.assert_array_equal(flat_a[key], flat_b[key], err_msg=key)


def _flatten(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        out.update(_flatten(v, f"{prefix}{k}/") if hasattr(v, "items") else {prefix + k: v})
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("uninterrupted"))
    return workdir, train_and_evaluate(tiny_config(), workdir)


def test_resume_from_an_earlier_checkpoint_is_bit_identical(finished_run, tmp_path):
    workdir, result = finished_run
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["12", "16", "4", "8"]
    # The state a run killed after step 4 leaves behind: checkpoint 4 and the
    # metrics it had written, some of them past the checkpoint.
    resumed = str(tmp_path / "resumed")
    shutil.copytree(workdir, resumed)
    for step in ("8", "12", "16"):
        shutil.rmtree(os.path.join(resumed, "checkpoints", step))
    os.remove(os.path.join(resumed, "summary.json"))
    again = train_and_evaluate(tiny_config(), resumed)
    assert json.load(open(os.path.join(resumed, "summary.json")))["resumed_from_step"] == 4
    assert_trees_equal(again.params, result.params)
    assert again.metrics == result.metrics
    assert _untimed(read_metrics(resumed)) == _untimed(read_metrics(workdir))


def test_half_written_checkpoint_is_never_picked_up(finished_run, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(finished_run[0], workdir)
    # What a SIGKILL during orbax's save leaves: a temporary directory, later step.
    partial = os.path.join(workdir, "checkpoints", "20.orbax-checkpoint-tmp-1700000000")
    os.makedirs(os.path.join(partial, "state"))
    with open(os.path.join(partial, "state", "garbage"), "wb") as f:
        f.write(b"\x00" * 100)
    checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), every_steps=4, keep=5)
    assert checkpoints.latest_step() == 16
    assert checkpoints.manager.all_steps() == [4, 8, 12, 16]
    checkpoints.close()
    restored = restore_params(workdir)
    assert_trees_equal(restored.params, finished_run[1].params)


def test_checkpoint_for_another_model_shape_names_the_mismatch(finished_run, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(finished_run[0], workdir)
    config = tiny_config()
    config.model.hidden_sizes = (32,)
    with pytest.raises(CheckpointMismatchError) as e:
        train_and_evaluate(config, workdir)
    assert "params/dense0/kernel has shape (784, 16) in the checkpoint but (784, 32)" in str(
        e.value
    )
    with pytest.raises(CheckpointMismatchError, match="params/dense0/kernel"):
        restore_params(workdir, config)


def test_restore_params_returns_the_trained_model(finished_run):
    workdir, result = finished_run
    restored = restore_params(workdir, tiny_config())
    assert_trees_equal(restored.params, result.params)
    assert restored.metrics == result.metrics
    assert restored.metrics["test/num_examples"] == 100


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny_config(optimizer="sgd", learning_rate=1e30, checkpoint_every_steps=1)
    with pytest.raises(NonFiniteLossError, match=r"train step 2 \(epoch 0, batch 1\)") as e:
        train_and_evaluate(config, str(tmp_path))
    assert "Last good checkpoint: step 1" in str(e.value)
    assert os.listdir(tmp_path / "checkpoints") == ["1"]
    params = restore_params(str(tmp_path)).params
    assert all(np.all(np.isfinite(v)) for v in _flatten(params).values())


def test_nan_at_a_known_step_is_found_at_the_next_boundary(tmp_path, monkeypatch):
    """A NaN image in step 6 (epoch 0, batch 5): the host does not look after each step, so
    steps 7 and 8 are dispatched; the flag is read at step 8's log/checkpoint boundary and
    the run stops naming step 6, with checkpoint 4 the last one written."""
    from htaf_jax.train import loop as loop_lib
    from htaf_jax.train import step as step_lib

    train_batches, reads = loop_lib.data_lib.train_batches, []

    def poisoned(*args, epoch, start_step=0, **kwargs):
        for index, (images, labels) in enumerate(
            train_batches(*args, epoch=epoch, start_step=start_step, **kwargs), start_step
        ):
            if (epoch, index) == (0, 5):
                images = images.copy()
                images[0, 0, 0, 0] = np.nan
            yield images, labels

    def counted(state):
        reads.append(1)
        return first_nonfinite_step(state)

    first_nonfinite_step = step_lib.first_nonfinite_step
    monkeypatch.setattr(loop_lib.data_lib, "train_batches", poisoned)
    monkeypatch.setattr(step_lib, "first_nonfinite_step", counted)
    with pytest.raises(NonFiniteLossError, match=r"train step 6 \(epoch 0, batch 5\)") as e:
        train_and_evaluate(tiny_config(), str(tmp_path))
    assert "Last good checkpoint: step 4" in str(e.value)
    assert len(reads) == 2  # at the boundaries of steps 4 and 8 only
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["4"]
    assert [r["step"] for r in read_metrics(str(tmp_path)) if r["split"] == "train"] == [4]
    params = restore_params(str(tmp_path)).params
    assert all(np.all(np.isfinite(v)) for v in _flatten(params).values())
