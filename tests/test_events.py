"""SHD reader (htaf_jax.data.events) on small files written in SHD's HDF5 layout."""

import os

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from htaf_jax.data import events  # noqa: E402
from htaf_jax.data.sources import DatasetNotFoundError  # noqa: E402


def write_raw(path, times, units, labels, time_dtype=np.float16):
    """SHD's layout written with h5py directly (not through write_shd); SHD stores
    times as float16 and units as uint16, with extra/ metadata beside them."""
    with h5py.File(path, "w") as f:
        t = f.create_dataset("spikes/times", (len(times),), dtype=h5py.vlen_dtype(time_dtype))
        u = f.create_dataset("spikes/units", (len(units),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (ti, ui) in enumerate(zip(times, units)):
            t[i], u[i] = np.asarray(ti, time_dtype), np.asarray(ui, np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, np.uint16))
        f.create_dataset("extra/speaker", data=np.zeros(len(labels), np.uint16))


# Three samples; max_time 1 s, 4 steps of 0.25 s (binary fractions: bin edges exact).
TIMES = [[0.0, 0.1, 0.25, 0.25, 0.5, 0.99, 1.0, 1.5], [0.75], []]
UNITS = [[0, 0, 3, 3, 699, 5, 1, 2], [2], []]
LABELS = [7, 19, 0]


def hand_binned():
    frames = np.zeros((4, 3, 700), np.float32)
    frames[0, 0, 0] = 2  # t = 0 and 0.1: step 0
    frames[1, 0, 3] = 2  # two events at exactly 0.25: step 1, counted twice
    frames[2, 0, 699] = 1  # t = 0.5: step 2, last channel
    frames[3, 0, 5] = 1  # t = 0.99: step 3; t = 1.0 and 1.5 ≥ max_time are dropped
    frames[3, 1, 2] = 1  # sample 1, t = 0.75: step 3
    return frames  # sample 2 has no events


def test_read_and_bin_hand_made_case(tmp_path):
    path = tmp_path / "shd_train.h5"
    write_raw(path, TIMES, UNITS, LABELS)
    split = events.read_shd(str(path))
    assert len(split) == 3
    np.testing.assert_array_equal(split.labels, LABELS)
    np.testing.assert_array_equal(split.offsets, [0, 8, 9, 9])
    frames = events.bin_events(split, [0, 1, 2], num_steps=4, max_time=1.0)
    assert frames.shape == (4, 3, 700) and frames.dtype == np.float32
    np.testing.assert_array_equal(frames, hand_binned())
    # Any subset, in any order, bins each sample the same.
    np.testing.assert_array_equal(
        events.bin_events(split, [2, 0], num_steps=4, max_time=1.0), hand_binned()[:, [2, 0]]
    )


def test_binning_matches_a_per_event_loop_on_random_samples(tmp_path):
    rng = np.random.default_rng(0)
    times = [np.sort(rng.uniform(0, 1.6, rng.integers(0, 300))) for _ in range(10)]
    units = [rng.integers(0, 700, len(t)) for t in times]
    path = tmp_path / "shd_test.h5"
    events.write_shd(str(path), times, units, rng.integers(0, 20, 10))
    split = events.read_shd(str(path))
    idx = [9, 3, 3, 0]
    expected = np.zeros((25, 4, 700), np.float32)
    for b, i in enumerate(idx):
        for t, u in zip(np.asarray(times[i], np.float32).astype(np.float64), units[i]):
            k = int(np.floor(t * 25 / 1.4))
            if k < 25:
                expected[k, b, u] += 1
    np.testing.assert_array_equal(events.bin_events(split, idx, num_steps=25), expected)


def test_train_and_eval_batches(tmp_path):
    rng = np.random.default_rng(1)
    times = [rng.uniform(0, 1.4, 20) for _ in range(10)]
    units = [rng.integers(0, 700, 20) for _ in range(10)]
    labels = np.arange(10) % 20
    path = tmp_path / "shd_train.h5"
    events.write_shd(str(path), times, units, labels)
    split = events.read_shd(str(path))
    batches = list(events.train_event_batches(split, 4, num_steps=50, seed=3, epoch=1))
    assert len(batches) == 2  # full batches only
    for frames, y in batches:
        assert frames.shape == (50, 4, 700) and y.shape == (4,) and y.dtype == np.int32
    seen = np.concatenate([y for _, y in batches])
    assert len(set(seen.tolist())) == 8
    # Resuming at step 1 gives the same second batch; rows split it between processes.
    resumed = next(
        events.train_event_batches(split, 4, num_steps=50, seed=3, epoch=1, start_step=1)
    )
    np.testing.assert_array_equal(resumed[0], batches[1][0])
    halves = [
        next(
            events.train_event_batches(
                split, 4, num_steps=50, seed=3, epoch=1, start_step=1, rows=r
            )
        )
        for r in ((0, 2), (2, 4))
    ]
    np.testing.assert_array_equal(np.concatenate([h[0] for h in halves], 1), batches[1][0])
    batch_major = next(
        events.train_event_batches(split, 4, num_steps=50, seed=3, epoch=1, time_major=False)
    )
    np.testing.assert_array_equal(batch_major[0], batches[0][0].transpose(1, 0, 2))
    evals = list(events.eval_event_batches(split, 4, num_steps=50))
    assert [f.shape for f, _, _ in evals] == [(50, 4, 700)] * 3
    np.testing.assert_array_equal(np.concatenate([m for _, _, m in evals]), [1] * 10 + [0] * 2)
    np.testing.assert_array_equal(np.concatenate([y for _, y, _ in evals])[:10], labels)
    assert float(evals[-1][0][:, 2:].sum()) == 0  # padding is empty
    assert sum(float(f.sum()) for f, _, _ in evals) == 200  # every event inside 1.4 s counted


def test_load_shd_from_env_dir(tmp_path, monkeypatch):
    for name in ("shd_train.h5", "shd_test.h5"):
        write_raw(tmp_path / name, TIMES, UNITS, LABELS)
    monkeypatch.setenv(events.SHD_DIR_ENV, str(tmp_path))
    splits = events.load_shd()
    assert set(splits) == {"train", "test"} and len(splits["test"]) == 3


def test_missing_files_name_the_folder_and_the_env_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(events.SHD_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DatasetNotFoundError) as err:
        events.load_shd()
    message = str(err.value)
    assert os.path.join(str(tmp_path / "nowhere"), "shd_train.h5") in message
    assert "HTAF_SHD_DIR" in message and "shd_test.h5" in message and "\n" not in message


def test_wrong_layout_and_out_of_range_units(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("labels", data=np.zeros(2, np.uint16))
    with pytest.raises(DatasetNotFoundError, match="not in SHD's layout: no spikes/times"):
        events.read_shd(str(path))
    write_raw(path, TIMES, UNITS, LABELS)
    with pytest.raises(ValueError, match=r"unit ids must be in \[0, 100\)"):
        events.bin_events(events.read_shd(str(path)), [0], num_channels=100)
