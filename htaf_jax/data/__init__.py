"""Datasets for htaf_jax: TFDS array_record data sources, no TensorFlow.

Batches of images and labels, as the engine reads them::

    splits = load_splits("fashion_mnist", train_subset=512)
    for images, labels in train_batches(splits.train, splits.normalizer, 128,
                                        seed=0, epoch=0):
        ...
"""

from htaf_jax._extras import require_extra

require_extra("train", "htaf_jax.data", "tensorflow_datasets", "array_record", "ml_collections")

from htaf_jax.data.events import (
    SHD_CHANNELS,
    SHD_DIR_ENV,
    EventFrames,
    EventSplit,
    bin_events,
    eval_event_batches,
    load_shd,
    read_shd,
    shd_dir,
    train_event_batches,
    write_shd,
)
from htaf_jax.data.pipeline import (
    DataSplits,
    Normalizer,
    eval_batches,
    load_splits,
    steps_per_epoch,
    train_batches,
)
from htaf_jax.data.sources import (
    DEFAULT_FASHION_MNIST_DIR,
    FASHION_MNIST_DIR_ENV,
    ArraySplit,
    DatasetCorruptError,
    DatasetNotFoundError,
    class_names,
    epoch_order,
    is_known_dataset,
    read_split,
    tfds_data_dir,
)

__all__ = [
    "ArraySplit",
    "DataSplits",
    "EventFrames",
    "EventSplit",
    "SHD_CHANNELS",
    "SHD_DIR_ENV",
    "bin_events",
    "class_names",
    "eval_event_batches",
    "load_shd",
    "read_shd",
    "shd_dir",
    "train_event_batches",
    "write_shd",
    "DatasetCorruptError",
    "DatasetNotFoundError",
    "DEFAULT_FASHION_MNIST_DIR",
    "FASHION_MNIST_DIR_ENV",
    "Normalizer",
    "epoch_order",
    "eval_batches",
    "is_known_dataset",
    "load_splits",
    "read_split",
    "steps_per_epoch",
    "tfds_data_dir",
    "train_batches",
]
