"""The data layer: real Fashion-MNIST through TFDS, the host pipeline, missing-data errors."""

import gzip
import os
import time

import numpy as np
import pytest

from htaf_jax import data as data_lib
from htaf_jax.data import sources
from htaf_jax.data.fashion_mnist_local import (
    FILES,
    SPLIT_SIZES,
    DatasetFileError,
    check_files,
    debian_md5sums,
    read_idx,
)

RAW_DIR = data_lib.DEFAULT_FASHION_MNIST_DIR
needs_data = pytest.mark.skipif(
    not os.path.exists(os.path.join(RAW_DIR, "train-images-idx3-ubyte.gz")),
    reason="Fashion-MNIST not installed (sudo apt-get install dataset-fashion-mnist)",
)


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
    np.testing.assert_array_equal(np.sort(batches[0][1]), np.sort(splits.train.labels[order[:64]]))
    # Resuming at step 5 gives exactly the batches an uninterrupted epoch gives.
    resumed = list(
        data_lib.train_batches(splits.train, splits.normalizer, 64, seed=3, epoch=1, start_step=5)
    )
    assert len(resumed) == len(batches) - 5
    for (a, la), (b, lb) in zip(resumed, batches[5:]):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)


def test_eval_batches_pad_and_mask():
    rng = np.random.default_rng(0)
    split = data_lib.ArraySplit(
        rng.integers(0, 256, (21, 4, 4, 1)).astype(np.uint8), np.arange(21, dtype=np.int32)
    )
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
        cli.main(
            [
                "train",
                "--config",
                "experiments/configs/mlp.py",
                "--workdir",
                str(tmp_path / "wd"),
                f"--config.data_dir={tmp_path / 'tfds'}",
            ]
        )
    assert e.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Fashion-MNIST not found") and "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_dataset_names_are_checked_against_tfds():
    assert data_lib.is_known_dataset("fashion_mnist")
    assert data_lib.is_known_dataset("mnist") and data_lib.is_known_dataset("cifar10")
    assert not data_lib.is_known_dataset("fashon_mnist")


# ---- truncated or corrupt files ------------------------------------------------


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def idx_folder(tmp_path):
    """A folder with the four idx files, valid and of the real sizes (all zeros)."""
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for split, (images, labels) in FILES.items():
        n = SPLIT_SIZES[split]
        _write_idx(folder / images, np.zeros((n, 28, 28), np.uint8))
        _write_idx(folder / labels, np.arange(n) % 10)
    return folder


def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_valid_files_pass_and_a_truncated_copy_is_named(idx_folder):
    check_files(str(idx_folder), md5sums="/nonexistent")
    _truncate(idx_folder / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(
        DatasetFileError,
        match=r"t10k-labels-idx1-ubyte.gz is truncated "
        r"\(its gzip stream ends early\)",
    ):
        check_files(str(idx_folder), md5sums="/nonexistent")


def test_corrupt_bytes_and_a_short_payload_are_named(idx_folder):
    path = idx_folder / "train-labels-idx1-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the CRC (or the deflate stream) no longer checks
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetFileError, match=r"train-labels-idx1-ubyte.gz is corrupt"):
        read_idx(str(path))
    # A whole gzip stream whose idx payload is shorter than its header says.
    header = bytes([0, 0, 8, 1]) + np.asarray([100], ">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + bytes(60))
    with pytest.raises(
        DatasetFileError,
        match=r"holds 60 bytes of data where its header "
        r"\(100,\) needs 100",
    ):
        read_idx(str(path))


def test_debian_files_are_checked_against_dpkgs_md5sums(idx_folder, tmp_path):
    import hashlib

    sums = tmp_path / "dataset-fashion-mnist.md5sums"
    lines = [
        f"{hashlib.md5(p.read_bytes()).hexdigest()}  {str(p)[1:]}"
        for p in sorted(idx_folder.iterdir())
    ]
    sums.write_text("\n".join(lines + ["0123  usr/share/doc/dataset-fashion-mnist/copyright"]))
    assert set(debian_md5sums(str(idx_folder), str(sums))) == {
        name for pair in FILES.values() for name in pair
    }
    check_files(str(idx_folder), str(sums))  # every checksum matches: nothing decoded
    _truncate(idx_folder / "train-images-idx3-ubyte.gz", keep=0.9)
    with pytest.raises(
        DatasetFileError,
        match=r"train-images-idx3-ubyte.gz is truncated or "
        r"corrupt: md5 [0-9a-f]{32}, dpkg recorded",
    ):
        check_files(str(idx_folder), str(sums))


@needs_data
def test_the_installed_debian_files_match_dpkg():
    if not debian_md5sums(RAW_DIR):
        pytest.skip("no dpkg md5sums for dataset-fashion-mnist on this host")
    check_files(RAW_DIR)


def test_truncated_file_through_the_cli_is_one_line_with_the_reinstall_command(
    idx_folder, tmp_path, monkeypatch, capsys
):
    from htaf_jax.train import cli

    _truncate(idx_folder / "train-labels-idx1-ubyte.gz")
    monkeypatch.setenv(data_lib.FASHION_MNIST_DIR_ENV, str(idx_folder))
    with pytest.raises(SystemExit) as e:
        cli.main(
            [
                "train",
                "--config",
                "experiments/configs/mlp.py",
                "--workdir",
                str(tmp_path / "wd"),
                f"--config.data_dir={tmp_path / 'tfds'}",
            ]
        )
    assert e.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(
        f"error: Fashion-MNIST file {idx_folder}/train-labels-idx1-ubyte.gz is truncated"
    )
    assert "reinstall it: sudo apt-get install --reinstall dataset-fashion-mnist" in err
    assert f"${data_lib.FASHION_MNIST_DIR_ENV}={idx_folder}" in err
    assert not os.path.exists(tmp_path / "tfds" / "htaf_fashion_mnist" / "1.1.0")
