"""SHD through the engine: experiments/configs/snn_shd.py's first steps on
small files written in SHD's layout, the frames the engine batches, the missing-file message.

The reader and binning themselves are tested in tests/test_events.py.
"""

import json
import os

import jax
import numpy as np
import optax
import pytest

pytest.importorskip("h5py")

from htaf_jax.data import events, load_splits  # noqa: E402
from htaf_jax.models import build_model  # noqa: E402
from htaf_jax.train import cli, restore_params  # noqa: E402
from htaf_jax.train.metrics import read_metrics  # noqa: E402
from htaf_jax.train.restore import load_derived, model_from_run  # noqa: E402

CONFIG = "experiments/configs/snn_shd.py"


def random_samples(rng, n, num_classes=3):
    """n samples of 5..60 events in [0, 1.5) s; class k fires mostly channels 100k..100k+99."""
    times, units, labels = [], [], []
    for i in range(n):
        label = i % num_classes
        count = int(rng.integers(5, 60))
        times.append(np.sort(rng.uniform(0.0, 1.5, count)).astype(np.float32))
        units.append(rng.integers(100 * label, 100 * label + 100, count))
        labels.append(label)
    return times, units, labels


@pytest.fixture
def shd_dir(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    folder = tmp_path / "shd"
    folder.mkdir()
    events.write_shd(str(folder / "shd_train.h5"), *random_samples(rng, 40))
    events.write_shd(str(folder / "shd_test.h5"), *random_samples(rng, 12))
    monkeypatch.setenv("HTAF_SHD_DIR", str(folder))
    return folder


TINY = [
    "--config.event_num_steps=10",
    "--config.model.hidden=(8,)",
    "--config.batch_size=16",
    "--config.eval_batch_size=8",
    "--config.num_epochs=1",
    "--config.log_every_steps=1",
    "--config.checkpoint_every_steps=2",
    "--config.progress=False",
    "--config.tensorboard=False",
]


@pytest.mark.slow  # the engine end to end: two compilations (train and eval steps), ~7 s
def test_snn_shd_config_trains_and_evaluates_on_a_small_shd_file(shd_dir, tmp_path, capsys):
    workdir = tmp_path / "run"
    assert cli.main(["train", "--config", CONFIG, "--workdir", str(workdir), *TINY]) == 0
    assert "done: test/loss=" in capsys.readouterr().out

    # 40 samples, batch 16: 2 full steps in the epoch; the 12 test samples each counted once.
    summary = json.load(open(workdir / "summary.json"))
    assert summary["step"] == 2 and summary["num_devices"] == jax.device_count()
    assert summary["metrics"]["test/num_examples"] == 12
    train = [r for r in read_metrics(str(workdir)) if r["split"] == "train"]
    assert [r["step"] for r in train] == [1, 2]
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["grad_norm"]) for r in train)
    assert train[0]["grad_norm"] > 0 and 0 <= train[0]["spike_rate_layer0"] <= 1
    assert np.isfinite(summary["metrics"]["test/loss"])

    # The model's input is one sample's frames, (T, 700); SHD has 20 classes.
    derived = load_derived(str(workdir))
    assert derived["input_shape"] == (10, 700) and derived["num_classes"] == 20
    assert os.listdir(workdir / "checkpoints") and "2" in os.listdir(workdir / "checkpoints")
    params, _, metrics = restore_params(str(workdir))
    assert params["dense0"]["kernel"].shape == (700, 8)
    assert params["rlif0"]["recurrent_kernel"].shape == (8, 8)
    assert params["head"]["kernel"].shape == (8, 20)

    # The reported test metrics are those of the checkpoint on the test file's frames.
    model, config = model_from_run(str(workdir))
    assert model == build_model(config.model, num_classes=20)
    test = events.read_shd(str(shd_dir / "shd_test.h5"))
    frames = events.bin_events(test, np.arange(len(test)), num_steps=10).transpose(1, 0, 2)
    logits = jax.jit(model.apply)({"params": params}, frames)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, test.labels).mean()
    accuracy = np.mean(np.argmax(logits, -1) == test.labels)
    assert float(loss) == pytest.approx(metrics["test/loss"], rel=1e-5)
    assert accuracy == pytest.approx(metrics["test/accuracy"], abs=1e-6)


def test_engine_batches_are_batch_major_frames_of_the_hand_count(tmp_path):
    # Sample 0: t = 0.1 (step 0), twice 0.3 on channel 5 (step 1), 0.95 (step 3), 1.2
    # (≥ max_time, dropped); sample 1: t = 0.5 on channel 699 (step 2). 4 steps of 0.25 s.
    times = [[0.1, 0.3, 0.3, 0.95, 1.2], [0.5], []]
    units = [[0, 5, 5, 7, 1], [699], []]
    for name in ("shd_train.h5", "shd_test.h5"):
        events.write_shd(str(tmp_path / name), times, units, [2, 0, 1])
    hand = np.zeros((3, 4, 700), np.float32)  # (B, T, C)
    hand[0, 0, 0], hand[0, 1, 5], hand[0, 3, 7], hand[1, 2, 699] = 1, 2, 1, 1

    splits = load_splits("shd", str(tmp_path), event_num_steps=4, event_max_time=1.0)
    assert splits.input_shape == (4, 700) and splits.num_classes == 20
    assert splits.normalizer is None and splits.eval_split == "test"
    frames, labels, mask = next(iter(splits.eval.eval_batches(4)))
    np.testing.assert_array_equal(frames[:3], hand)
    np.testing.assert_array_equal(labels, [2, 0, 1, 0])
    np.testing.assert_array_equal(mask, [1, 1, 1, 0])
    # Through the engine's own entry points (train_batches/eval_batches by split type).
    from htaf_jax.data import eval_batches, train_batches

    ((got, got_labels),) = list(train_batches(splits.train, None, 3, seed=0, epoch=0))
    np.testing.assert_array_equal(got, hand)  # one full batch: sorted indices 0, 1, 2
    np.testing.assert_array_equal(got_labels, [2, 0, 1])
    ((got, _, _),) = list(eval_batches(splits.eval, None, 4))
    np.testing.assert_array_equal(got[:3], hand)
    with pytest.raises(ValueError, match="augmentation apply to images"):
        next(train_batches(splits.train, None, 3, seed=0, epoch=0, flip=True))

    # validation_size holds out the last train samples; subsets keep the first ones.
    held = load_splits(
        "shd",
        str(tmp_path),
        validation_size=1,
        train_subset=1,
        event_num_steps=4,
        event_max_time=1.0,
    )
    assert held.eval_split == "validation"
    np.testing.assert_array_equal(held.train.labels, [2])
    np.testing.assert_array_equal(held.eval.labels, [1])
    assert held.eval.events.times.size == 0 and held.eval.events.offsets.tolist() == [0, 0]
    np.testing.assert_array_equal(
        next(iter(held.train.train_batches(1, seed=0, epoch=0)))[0], hand[:1]
    )


def test_missing_shd_files_stop_the_run_naming_folder_variable_and_url(
    tmp_path, monkeypatch, capsys
):
    folder = tmp_path / "no_shd_here"
    monkeypatch.setenv("HTAF_SHD_DIR", str(folder))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--config", CONFIG, "--workdir", str(tmp_path / "run"), *TINY])
    assert exit_info.value.code == 1
    message = capsys.readouterr().err
    assert str(folder) in message and "HTAF_SHD_DIR" in message
    assert "https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/" in message
    assert message.count("\n") == 1  # one line


def test_rsnn_is_dense_then_recurrent_lif_over_time_then_mean_readout():
    """The model on (B, T, C) frames against a NumPy loop over time (float32): I = x W + b,
    V = β U + I + S_prev R + r, S = H(V − θ), U = V − S θ; logits = mean_t(S W_o + b_o)."""
    model = build_model({"name": "rsnn", "hidden": (6,), "num_classes": 4, "beta": 0.8})
    frames = np.random.default_rng(0).poisson(0.5, (3, 9, 10)).astype(np.float32)
    variables = jax.jit(model.init)(jax.random.key(1), frames)
    p = jax.tree.map(np.asarray, variables["params"])
    logits, sown = jax.jit(lambda v, x: model.apply(v, x, mutable=["intermediates"]))(
        variables, frames
    )

    u = s = np.zeros((3, 6), np.float32)
    outputs, spikes = [], []
    for t in range(frames.shape[1]):
        v = (
            np.float32(0.8) * u
            + frames[:, t] @ p["dense0"]["kernel"]
            + p["dense0"]["bias"]
            + s @ p["rlif0"]["recurrent_kernel"]
            + p["rlif0"]["recurrent_bias"]
        )
        s = (v >= 1.0).astype(np.float32)
        u = v - s
        spikes.append(s)
        outputs.append(s @ p["head"]["kernel"] + p["head"]["bias"])
    assert 0 < np.mean(spikes) < 1  # some neurons fire, not all
    np.testing.assert_allclose(logits, np.mean(outputs, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        sown["intermediates"]["spike_rate_layer0"][0], np.mean(spikes), rtol=1e-6
    )
