"""Where datasets come from: TFDS array_record data sources, read into memory.

``fashion_mnist`` (the default) is built once from the local idx files of
Debian's ``dataset-fashion-mnist`` package by ``HtafFashionMnist``; where
those are not installed and the host can download (a Colab), TFDS's own
``fashion_mnist`` is used instead. Every other name is handed to TFDS as
usual: any image-classification dataset with fixed-size images and an
integer label (``cifar10``, ``cifar100``, ``svhn_cropped``, ``mnist``, …),
read through its ``supervised_keys``.
Datasets here are small (Fashion-MNIST is 47 MB as uint8), so a split is read
once into a pair of NumPy arrays and kept for the life of the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import socket
from typing import NamedTuple

import numpy as np

FASHION_MNIST = "fashion_mnist"
SHD = "shd"  # Spiking Heidelberg Digits, event data (htaf_jax.data.events)
# The datasets read without TFDS's catalogue; any other name is a TFDS name.
LOCAL_DATASETS = (FASHION_MNIST, SHD)
# TFDS image-classification names the engine reads (where the host can download them).
TFDS_EXAMPLES = ("mnist", "cifar10", "kmnist", "emnist", "svhn_cropped")
DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_DIR_ENV = "HTAF_FASHION_MNIST_DIR"
INSTALL_HINT = (
    "sudo apt-get install dataset-fashion-mnist   (or `make data` in the htaf-jax checkout)"
)


REINSTALL_HINT = "sudo apt-get install --reinstall dataset-fashion-mnist"


class DatasetNotFoundError(FileNotFoundError):
    """The data a config asks for is not on this host; the message says how to get it."""


class DatasetCorruptError(DatasetNotFoundError):
    """A dataset file is truncated or corrupt; one line naming it and how to reinstall it."""


class ArraySplit(NamedTuple):
    """One split held in memory."""

    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray  # int32 (N,)


def fashion_mnist_dir() -> str:
    return os.environ.get(FASHION_MNIST_DIR_ENV, DEFAULT_FASHION_MNIST_DIR)


def tfds_data_dir(data_dir: str | None = None) -> str:
    """The TFDS cache: ``data_dir`` if given, else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
    if data_dir:
        return os.path.expanduser(data_dir)
    return os.path.expanduser(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))


def is_known_dataset(name: str) -> bool:
    """Whether ``name`` is the embedded Fashion-MNIST, SHD's events (``htaf_jax.data.events``)
    or a dataset TFDS knows."""
    if name in LOCAL_DATASETS:
        return True
    tfds = _tfds()
    try:
        tfds.builder_cls(name.split(":")[0])
    except Exception:  # TFDS raises DatasetNotFoundError or ValueError by version
        return False
    return True


@contextlib.contextmanager
def _file_lock(path: str):
    # Two processes (pytest -n 2, a sweep) may prepare the same dataset at once.
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# Where TFDS downloads most datasets from; reaching it is the test for "can download".
DOWNLOAD_HOST = ("storage.googleapis.com", 443)


def host_can_download(timeout: float = 2.0) -> bool:
    """Whether a TCP connection to TFDS's download host opens within ``timeout`` s."""
    try:
        socket.create_connection(DOWNLOAD_HOST, timeout=timeout).close()
    except OSError:
        return False
    return True


def _tfds():
    """TFDS, imported when a dataset is first looked up or prepared (the import takes
    seconds; validating a config for the local data, or importing htaf_jax.data, need
    not pay it)."""
    import tensorflow_datasets as tfds

    return tfds


def _fashion_mnist_builder(data_dir: str | None):
    tfds = _tfds()
    # Imports TFDS too: deferred with it.
    from htaf_jax.data.fashion_mnist_local import (
        FILES,
        DatasetFileError,
        HtafFashionMnist,
        check_files,
    )

    root = tfds_data_dir(data_dir)
    builder = HtafFashionMnist(data_dir=root, file_format="array_record")
    if builder.is_prepared():
        return builder
    manual_dir = fashion_mnist_dir()
    wanted = [os.path.join(manual_dir, f) for pair in FILES.values() for f in pair]
    missing = [p for p in wanted if not os.path.isfile(p)]
    if missing:
        message = (
            f"Fashion-MNIST not found: looked for {', '.join(os.path.basename(p) for p in missing)} "
            f"in {manual_dir} (set ${FASHION_MNIST_DIR_ENV} to use another folder), and for a "
            f"prepared copy in the TFDS data dir {root}. Install it with: {INSTALL_HINT}"
        )
        # Not installed: TFDS's own copy, if it is prepared or this host can fetch it.
        tfds_copy = tfds.builder(FASHION_MNIST, data_dir=root, file_format="array_record")
        if tfds_copy.is_prepared():
            return tfds_copy
        if not host_can_download():
            raise DatasetNotFoundError(
                message + " (a host that can download uses TFDS's fashion_mnist instead)"
            )
        try:
            return _tfds_builder(FASHION_MNIST, data_dir)
        except DatasetNotFoundError as e:
            raise DatasetNotFoundError(f"{message}; TFDS's fashion_mnist failed too: {e}") from None
    with _file_lock(os.path.join(root, ".htaf_fashion_mnist.lock")):
        builder = HtafFashionMnist(data_dir=root, file_format="array_record")
        if not builder.is_prepared():
            try:
                check_files(manual_dir)
            except DatasetFileError as e:
                where = (
                    ""
                    if os.path.realpath(manual_dir) == os.path.realpath(DEFAULT_FASHION_MNIST_DIR)
                    else f", or replace the file in ${FASHION_MNIST_DIR_ENV}={manual_dir}"
                )
                raise DatasetCorruptError(
                    f"Fashion-MNIST file {e}; reinstall it: {REINSTALL_HINT}{where}"
                ) from None
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
            )
    return builder


def _tfds_builder(name: str, data_dir: str | None):
    tfds = _tfds()
    root = tfds_data_dir(data_dir)
    try:
        builder = tfds.builder(name, data_dir=root, file_format="array_record")
        if not builder.is_prepared():
            builder.download_and_prepare()
    except Exception as e:  # network down, manual download needed, ...
        raise DatasetNotFoundError(
            f"TFDS dataset {name!r} is not prepared in {root} and could not be downloaded "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). On a host with "
            f'network access run: python -c "import tensorflow_datasets as tfds; '
            f"tfds.builder('{name}', data_dir='{root}', file_format='array_record')"
            f'.download_and_prepare()"'
        ) from None
    return builder


def builder_for(name: str, data_dir: str | None = None):
    if name == FASHION_MNIST:
        return _fashion_mnist_builder(data_dir)
    return _tfds_builder(name, data_dir)


def record_keys(builder) -> tuple[str, str]:
    """(image key, label key) of a classification dataset: its ``supervised_keys``,
    else ("image", "label"). Raises ValueError for images of varying size."""
    keys = builder.info.supervised_keys
    image_key, label_key = (
        keys
        if keys and len(keys) == 2 and all(isinstance(k, str) for k in keys)
        else ("image", "label")
    )
    features = builder.info.features
    if image_key not in features or label_key not in features:
        raise ValueError(
            f"TFDS dataset {builder.name!r} has no {image_key!r}/{label_key!r} "
            f"features (it has {', '.join(features.keys())}): not an image "
            "classification dataset"
        )
    shape = tuple(features[image_key].shape)
    if any(d is None for d in shape):
        raise ValueError(
            f"TFDS dataset {builder.name!r} has images of varying size "
            f"{shape}; only fixed-size image datasets are supported"
        )
    return image_key, label_key


@functools.lru_cache(maxsize=16)
def _read_split(name: str, split: str, root: str, start: int, stop: int | None) -> ArraySplit:
    builder = builder_for(name, root)
    image_key, label_key = record_keys(builder)
    source = builder.as_data_source(split=split)
    stop = len(source) if stop is None else min(stop, len(source))
    records = source.__getitems__(list(range(start, stop)))
    images = np.stack([r[image_key] for r in records]).astype(np.uint8)
    if images.ndim == 3:
        images = images[..., None]
    labels = np.asarray([r[label_key] for r in records], dtype=np.int32)
    images.flags.writeable = False  # shared between callers through the cache
    labels.flags.writeable = False
    return ArraySplit(images, labels)


def split_size(name: str, split: str, data_dir: str | None = None) -> int:
    return len(builder_for(name, data_dir).as_data_source(split=split))


def num_classes(name: str, data_dir: str | None = None) -> int:
    return len(class_names(name, data_dir))


def class_names(name: str, data_dir: str | None = None) -> list[str]:
    """The label names of a dataset (TFDS's ``ClassLabel``; "0", "1", … where it has none)."""
    builder = builder_for(name, data_dir)
    return list(builder.info.features[record_keys(builder)[1]].names)


def read_split(
    name: str, split: str, data_dir: str | None = None, start: int = 0, stop: int | None = None
) -> ArraySplit:
    """Reads records [start, stop) of ``split`` into memory (cached per process)."""
    return _read_split(name, split, tfds_data_dir(data_dir), start, stop)


def epoch_order(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The example order of one epoch, a function of (seed, epoch) only (image and
    event splits shuffle alike)."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def train_indices(
    n: int, batch_size: int, *, seed: int, epoch: int, start_step: int = 0, rows=None
):
    """Yields (step, indices) from ``start_step`` on: the sorted example indices of rows
    ``rows=(start, stop)`` (default: all) of each full global batch of ``epoch_order``.
    Sorted indices gather faster; the order inside a batch does not matter to a mean
    loss, but it is the same on every run."""
    order = epoch_order(n, seed, epoch)
    lo, hi = rows if rows is not None else (0, batch_size)
    for step in range(start_step, n // batch_size):
        yield step, np.sort(order[step * batch_size : (step + 1) * batch_size])[lo:hi]


def eval_spans(n: int, batch_size: int, rows=None):
    """Yields (start, stop, pad) in order: rows ``rows`` (default: all) of each global
    batch, and how many padding rows complete the last one."""
    lo, hi = rows if rows is not None else (0, batch_size)
    for first in range(0, n, batch_size):
        start, stop = min(first + lo, n), min(first + hi, n)
        yield start, stop, (hi - lo) - (stop - start)


def padded(x: np.ndarray, labels: np.ndarray, pad: int, axis: int = 0):
    """(x, labels, mask) with ``pad`` rows of zeros appended along ``axis`` (mask 0 on them)."""
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, pad)
    mask = np.concatenate([np.ones(len(labels), np.float32), np.zeros(pad, np.float32)])
    return np.pad(x, widths), np.pad(labels, (0, pad)), mask


def check_validation_size(validation_size: int, n_train: int) -> None:
    if validation_size >= n_train:
        raise ValueError(
            f"config.validation_size={validation_size} leaves no training "
            f"examples (train split has {n_train})"
        )
