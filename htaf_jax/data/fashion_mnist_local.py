"""A TFDS builder for Fashion-MNIST read from a local folder (no download, no TF).

The four idx gz files ship in Debian's ``dataset-fashion-mnist`` package
(/usr/share/datasets/fashion-mnist). TFDS is given that folder as its
``manual_dir``; the builder writes array_record shards into the TFDS data dir
once, and every later load opens them as a random-access data source.

This class lives inside the package on purpose: TFDS locates a builder's
files beside its module, which fails for a class defined in ``__main__``.
"""
from __future__ import annotations

import gzip
import os

import numpy as np
import tensorflow_datasets as tfds

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def read_idx(path: str) -> np.ndarray:
    """Reads one gzip'd idx file (big-endian header: magic, dims) into uint8."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


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
        "(files in /usr/share/datasets/fashion-mnist).")

    def _info(self) -> tfds.core.DatasetInfo:
        # Raw uint8 tensors rather than PNG-encoded images: nothing to decode
        # per example, so loading 70k records into memory takes a second.
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                "label": tfds.features.ClassLabel(names=CLASS_NAMES),
            }),
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
