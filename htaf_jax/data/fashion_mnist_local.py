"""A TFDS builder for Fashion-MNIST read from a local folder (no download, no TF).

The four idx gz files ship in Debian's ``dataset-fashion-mnist`` package
(/usr/share/datasets/fashion-mnist). TFDS is given that folder as its
``manual_dir``; the builder writes array_record shards into the TFDS data dir
once, and every later load opens them as a random-access data source.

This class lives inside the package on purpose: TFDS locates a builder's
files beside its module, which fails for a class defined in ``__main__``.

Before preparing, ``check_files`` reads every file through (and compares
Debian's own md5 sums from dpkg where the files are the installed package's),
so a truncated or corrupt file is named in one line instead of surfacing as
an ``EOFError`` from inside TFDS.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib

import numpy as np
import tensorflow_datasets as tfds

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


DPKG_MD5SUMS = "/var/lib/dpkg/info/dataset-fashion-mnist.md5sums"
# The records each split holds (Xiao, Rasul & Vollgraf 2017).
SPLIT_SIZES = {"train": 60_000, "test": 10_000}


class DatasetFileError(ValueError):
    """A dataset file is truncated or corrupt; the message names it, in one line."""


def read_idx(path: str) -> np.ndarray:
    """Reads one gzip'd idx file (big-endian header: 0, 0, type 0x08 = uint8, ndim,
    then ndim uint32 sizes) into a uint8 array. Raises DatasetFileError naming
    ``path`` when the file is truncated, not gzip, or its header disagrees with
    its length."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except EOFError:
        raise DatasetFileError(f"{path} is truncated (its gzip stream ends early)") from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise DatasetFileError(f"{path} is corrupt ({e})") from None
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or len(raw) < 4 + 4 * raw[3]:
        raise DatasetFileError(f"{path} is not a uint8 idx file (header {raw[:4].hex()})")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    payload = len(raw) - 4 - 4 * ndim
    if payload != int(np.prod(dims)):
        raise DatasetFileError(
            f"{path} holds {payload} bytes of data where its header "
            f"{tuple(int(d) for d in dims)} needs {int(np.prod(dims))}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def debian_md5sums(folder: str, md5sums: str = DPKG_MD5SUMS) -> dict[str, str]:
    """``{file name: md5}`` that dpkg recorded for the package's files in ``folder``
    (empty when the folder is not where the package put them, or dpkg has no list)."""
    try:
        with open(md5sums) as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    folder = os.path.realpath(folder)
    sums = {}
    for line in lines:
        digest, _, rel = line.partition("  ")
        if os.path.dirname(os.path.realpath("/" + rel.strip())) == folder:
            sums[os.path.basename(rel.strip())] = digest
    return sums


def _md5(path: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_files(folder: str, md5sums: str = DPKG_MD5SUMS) -> None:
    """Raises DatasetFileError naming the first bad file of the four in ``folder``.

    A file dpkg has a checksum for (Debian's installed files) must match it;
    any other file must decode to an idx array whose header matches its
    length, and each split must hold its ``SPLIT_SIZES`` images and labels.
    """
    sums = debian_md5sums(folder, md5sums)
    for split, names in FILES.items():
        paths = [os.path.join(folder, name) for name in names]
        for path, name in zip(paths, names):
            if name in sums and (digest := _md5(path)) != sums[name]:
                raise DatasetFileError(
                    f"{path} is truncated or corrupt: md5 {digest}, dpkg recorded {sums[name]}"
                )
        if all(name in sums for name in names):
            continue
        images, labels = (read_idx(path) for path in paths)
        if not len(images) == len(labels) == SPLIT_SIZES[split]:
            raise DatasetFileError(
                f"{paths[0]} and {names[1]} hold {len(images)} images and "
                f"{len(labels)} labels; the {split} split has "
                f"{SPLIT_SIZES[split]}"
            )


class HtafFashionMnist(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from a local idx folder."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "First version (records shuffled by TFDS).",
        "1.1.0": "Records keep the idx files' order, so 'the first N' and "
        "'the last N' examples mean what they say.",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Install Debian's dataset-fashion-mnist package "
        "(files in /usr/share/datasets/fashion-mnist)."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        # Raw uint8 tensors rather than PNG-encoded images: nothing to decode
        # per example, so loading 70k records into memory takes a second.
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
            homepage="https://github.com/zalandoresearch/fashion-mnist",
        )

    def _split_generators(self, dl_manager):
        folder = str(dl_manager.manual_dir)
        return {split: self._generate_examples(folder, split) for split in FILES}

    def _generate_examples(self, folder: str, split: str):
        image_file, label_file = FILES[split]
        images = read_idx(os.path.join(folder, image_file))[..., None]
        labels = read_idx(os.path.join(folder, label_file))
        for i in range(len(labels)):
            yield i, {"image": images[i], "label": int(labels[i])}
