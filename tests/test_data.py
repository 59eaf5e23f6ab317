"""The data layer: real Fashion-MNIST through TFDS, the host pipeline, missing-data errors."""
import os
import time

import numpy as np
import pytest

from htaf_jax import data as data_lib
from htaf_jax.data import sources
from htaf_jax.data.fashion_mnist_local import read_idx

RAW_DIR = data_lib.DEFAULT_FASHION_MNIST_DIR
needs_data = pytest.mark.skipif(
    not os.path.exists(os.path.join(RAW_DIR, "train-images-idx3-ubyte.gz")),
    reason="Fashion-MNIST not installed (sudo apt-get install dataset-fashion-mnist)")


@pytest.fixture(scope="module")
def splits():
    return data_lib.load_splits("fashion_mnist", train_subset=600, test_subset=250)


@needs_data
def test_real_fashion_mnist_matches_the_idx_files(splits):
    assert splits.train.images.shape == (600, 28, 28, 1)
    assert splits.train.images.dtype == np.uint8 and splits.train.labels.dtype == np.int32
    assert splits.eval.images.shape == (250, 28, 28, 1) and splits.eval_split == "test"
    assert splits.num_classes == 10
    raw_images = read_idx(os.path.join(RAW_DIR, "t10k-images-idx3-ubyte.gz"))
    raw_labels = read_idx(os.path.join(RAW_DIR, "t10k-labels-idx1-ubyte.gz"))
    assert raw_images.shape == (10000, 28, 28)
    np.testing.assert_array_equal(splits.eval.images[..., 0], raw_images[:250])
    np.testing.assert_array_equal(splits.eval.labels, raw_labels[:250])
    assert sources.split_size("fashion_mnist", "train") == 60000
    assert sources.split_size("fashion_mnist", "test") == 10000


@needs_data
def test_second_load_reuses_the_prepared_copy():
    start = time.perf_counter()
    builder = sources.builder_for("fashion_mnist")
    assert builder.is_prepared()
    assert time.perf_counter() - start < 5.0
    assert os.path.isdir(os.path.join(data_lib.tfds_data_dir(), "htaf_fashion_mnist"))


@needs_data
def test_validation_split_is_the_last_train_examples():
    s = data_lib.load_splits("fashion_mnist", train_subset=100, validation_size=50)
    assert s.eval_split == "validation" and len(s.eval.labels) == 50
    raw_labels = read_idx(os.path.join(RAW_DIR, "train-labels-idx1-ubyte.gz"))
    np.testing.assert_array_equal(s.eval.labels, raw_labels[-50:])
    np.testing.assert_array_equal(s.train.labels, raw_labels[:100])


@needs_data
def test_train_batches_normalised_shuffled_and_resumable(splits):
    batches = list(data_lib.train_batches(splits.train, splits.normalizer, 64, seed=3, epoch=1))
    assert len(batches) == 600 // 64
    images = np.concatenate([b[0] for b in batches])
    assert images.dtype == np.float32 and images.shape == (576, 28, 28, 1)
    assert abs(images.mean()) < 0.05 and abs(images.std() - 1) < 0.05
    # Each example at most once per epoch; the order depends on (seed, epoch) only.
    order = data_lib.epoch_order(600, 3, 1)
    assert len(np.unique(order)) == 600
    assert not np.array_equal(order, data_lib.epoch_order(600, 3, 2))
    np.testing.assert_array_equal(order, data_lib.epoch_order(600, 3, 1))
    np.testing.assert_array_equal(np.sort(batches[0][1]),
                                  np.sort(splits.train.labels[order[:64]]))
    # Resuming at step 5 gives exactly the batches an uninterrupted epoch gives.
    resumed = list(data_lib.train_batches(splits.train, splits.normalizer, 64, seed=3,
                                          epoch=1, start_step=5))
    assert len(resumed) == len(batches) - 5
    for (a, la), (b, lb) in zip(resumed, batches[5:]):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)


def test_eval_batches_pad_and_mask():
    rng = np.random.default_rng(0)
    split = data_lib.ArraySplit(rng.integers(0, 256, (21, 4, 4, 1)).astype(np.uint8),
                                np.arange(21, dtype=np.int32))
    batches = list(data_lib.eval_batches(split, data_lib.Normalizer.fit(split.images), 8))
    assert [b[0].shape[0] for b in batches] == [8, 8, 8]
    mask = np.concatenate([b[2] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert mask.sum() == 21
    np.testing.assert_array_equal(labels[mask == 1], np.arange(21))


def test_missing_fashion_mnist_says_where_and_how(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(data_lib.FASHION_MNIST_DIR_ENV, str(empty))
    with pytest.raises(data_lib.DatasetNotFoundError) as e:
        data_lib.load_splits("fashion_mnist", data_dir=str(tmp_path / "tfds"))
    message = str(e.value)
    assert str(empty) in message and "train-images-idx3-ubyte.gz" in message
    assert "apt-get install dataset-fashion-mnist" in message and "make data" in message
    assert data_lib.FASHION_MNIST_DIR_ENV in message


def test_missing_data_through_the_cli_is_one_line(tmp_path, monkeypatch, capsys):
    from htaf_jax.train import cli
    monkeypatch.setenv(data_lib.FASHION_MNIST_DIR_ENV, str(tmp_path))
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--config", "experiments/configs/mlp.py", "--workdir",
                  str(tmp_path / "wd"), f"--config.data_dir={tmp_path / 'tfds'}"])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Fashion-MNIST not found") and "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_dataset_names_are_checked_against_tfds():
    assert data_lib.is_known_dataset("fashion_mnist")
    assert data_lib.is_known_dataset("mnist") and data_lib.is_known_dataset("cifar10")
    assert not data_lib.is_known_dataset("fashon_mnist")
