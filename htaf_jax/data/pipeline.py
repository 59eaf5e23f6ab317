"""Host-side input pipeline: splits, normalisation, seeded shuffling, batching.

Everything here is NumPy on the host. The per-epoch order depends only on
(seed, epoch), and the augmentation of a batch (off by default: random crop
after zero padding, horizontal flip, as in He et al. 2016's CIFAR setup) only
on (seed, epoch, step), so a run resumed at (epoch, step) sees exactly the
batches an uninterrupted run would have seen. Normalisation: per-channel mean
and std fitted on the training split (``Normalizer.fit``); the input size is
the dataset's.

``dataset="shd"`` reads event data instead (``htaf_jax.data.events``):
``DataSplits.train``/``.eval`` are then ``EventFrames``, binned into float32
frames (B, T, C) per batch by ``train_batches``/``eval_batches``, with no
normaliser; ``DataSplits.input_shape`` is (T, C).
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np

from htaf_jax.data import events
from htaf_jax.data.sources import (
    SHD,
    ArraySplit,
    check_validation_size,
    eval_spans,
    num_classes,
    padded,
    read_split,
    split_size,
    train_indices,
)


class Normalizer(NamedTuple):
    """uint8 → float32 ``(x/255 − mean)/std`` per channel, as one table lookup."""

    mean: np.ndarray  # float32 (C,)
    std: np.ndarray  # float32 (C,)

    @classmethod
    def fit(cls, images: np.ndarray) -> "Normalizer":
        x = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
        return cls(x.mean(0).astype(np.float32), np.maximum(x.std(0), 1e-6).astype(np.float32))

    def table(self) -> np.ndarray:
        levels = np.arange(256, dtype=np.float32)[:, None] / 255.0
        return ((levels - self.mean) / self.std).astype(np.float32)  # (256, C)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        table = self.table()
        channels = np.arange(images.shape[-1])
        return table[images, channels]


class DataSplits(NamedTuple):
    train: ArraySplit  # or events.EventFrames (dataset "shd")
    eval: ArraySplit
    eval_split: str  # "test" or "validation"
    num_classes: int
    normalizer: Normalizer | None  # None for event data

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape as the model gets it: (H, W, C), or (T, C) for events."""
        if isinstance(self.train, ArraySplit):
            return tuple(self.train.images.shape[1:])
        return tuple(self.train.frame_shape)


def load_splits(
    dataset: str,
    data_dir: str | None = None,
    *,
    train_subset: int = -1,
    test_subset: int = -1,
    validation_size: int = 0,
    event_num_steps: int | None = None,
    event_max_time: float | None = None,
) -> DataSplits:
    """Reads the splits a run needs.

    ``train_subset``/``test_subset`` > 0 keep the first N examples.
    ``validation_size`` > 0 holds out the last N train examples and evaluates
    on them instead of the test split (for sweeps that must not see test).
    ``event_num_steps``/``event_max_time``: for ``dataset="shd"``, T frames over
    that many seconds (defaults 100 and 1.4); ``data_dir`` is then SHD's folder
    (default $HTAF_SHD_DIR, else ~/data/shd).
    """
    if dataset == SHD:
        train, evaluation, eval_split, classes = events.load_event_splits(
            data_dir,
            train_subset=train_subset,
            test_subset=test_subset,
            validation_size=validation_size,
            num_steps=event_num_steps,
            max_time=event_max_time,
        )
        return DataSplits(train, evaluation, eval_split, classes, None)  # pyright: ignore[reportArgumentType]
    n_train = split_size(dataset, "train", data_dir)
    check_validation_size(validation_size, n_train)
    train_stop = n_train - validation_size
    if train_subset > 0:
        train_stop = min(train_stop, train_subset)
    train = read_split(dataset, "train", data_dir, 0, train_stop)
    if validation_size > 0:
        held_out = read_split(dataset, "train", data_dir, n_train - validation_size, n_train)
        if test_subset > 0:
            held_out = ArraySplit(held_out.images[:test_subset], held_out.labels[:test_subset])
        evaluation, eval_split = held_out, "validation"
    else:
        evaluation = read_split(
            dataset, "test", data_dir, 0, test_subset if test_subset > 0 else None
        )
        eval_split = "test"
    return DataSplits(
        train, evaluation, eval_split, num_classes(dataset, data_dir), Normalizer.fit(train.images)
    )


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Full batches per epoch; the remainder of the shuffled epoch is dropped."""
    steps = num_examples // batch_size
    if steps == 0:
        raise ValueError(
            f"config.batch_size={batch_size} is larger than the training set "
            f"({num_examples} examples, after config.train_subset and "
            f"config.validation_size)"
        )
    return steps


def crop_and_flip(
    images: np.ndarray, padding: int, offsets: np.ndarray, flips: np.ndarray
) -> np.ndarray:
    """Pads (B, H, W, C) images with ``padding`` zeros on each side, cuts the H×W window at
    ``offsets`` (B, 2) (row, column, each in [0, 2·padding]) and mirrors left-right
    the images where ``flips`` (B,) is True. Same shape and dtype."""
    out = images
    if padding:
        h, w = images.shape[1:3]
        padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
        out = np.stack([padded[i, r : r + h, c : c + w] for i, (r, c) in enumerate(offsets)])
    if flips.any():
        out = out.copy() if out is images else out
        out[flips] = out[flips, :, ::-1]
    return out


def augmentation_draws(
    batch_size: int, padding: int, flip: bool, *, seed: int, epoch: int, step: int
) -> tuple[np.ndarray, np.ndarray]:
    """The crop offsets (B, 2) and flips (B,) of one global batch, a function of
    (seed, epoch, step) only."""
    rng = np.random.default_rng([seed, epoch, step, 0x5EED])
    offsets = rng.integers(0, 2 * padding + 1, size=(batch_size, 2))
    flips = rng.random(batch_size) < 0.5 if flip else np.zeros(batch_size, bool)
    return offsets, flips


def train_batches(
    split: ArraySplit,
    normalizer: Normalizer,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    start_step: int = 0,
    rows: tuple[int, int] | None = None,
    crop_padding: int = 0,
    flip: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields (images float32 (B,H,W,C), labels int32 (B,)) from step ``start_step`` on.

    ``rows=(start, stop)`` yields only those rows of each global batch of
    ``batch_size`` (one process's share in a multi-process run), so P
    processes with consecutive row blocks together see the one-process batches.
    ``crop_padding`` > 0: random crop of the image padded by that many zero
    pixels; ``flip``: random horizontal flip (both drawn per global batch, so
    the rows of P processes are augmented as one process's would be).
    """
    if crop_padding < 0:
        raise ValueError(f"crop_padding must be ≥ 0, got {crop_padding}")
    if not isinstance(split, ArraySplit):  # events.EventFrames: frames (B, T, C)
        if crop_padding or flip:
            raise ValueError("crop and flip augmentation apply to images, not event frames")
        yield from split.train_batches(
            batch_size, seed=seed, epoch=epoch, start_step=start_step, rows=rows
        )
        return
    table = normalizer.table()
    channels = np.arange(split.images.shape[-1])
    lo, hi = rows if rows is not None else (0, batch_size)
    steps_per_epoch(len(split.labels), batch_size)  # raises for a batch larger than the split
    for step, idx in train_indices(
        len(split.labels), batch_size, seed=seed, epoch=epoch, start_step=start_step, rows=rows
    ):
        images = split.images[idx]
        if crop_padding or flip:
            offsets, flips = augmentation_draws(
                batch_size, crop_padding, flip, seed=seed, epoch=epoch, step=step
            )
            images = crop_and_flip(images, crop_padding, offsets[lo:hi], flips[lo:hi])
        yield table[images, channels], split.labels[idx]


def eval_batches(
    split: ArraySplit, normalizer: Normalizer, batch_size: int, rows: tuple[int, int] | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yields (images, labels, mask) in order; the last batch is padded, mask 0 on padding.

    Every example is counted exactly once when metrics are summed with the mask.
    ``rows=(start, stop)``: only those rows of each padded global batch.
    """
    if not isinstance(split, ArraySplit):  # events.EventFrames: frames (B, T, C)
        yield from split.eval_batches(batch_size, rows)
        return
    table = normalizer.table()
    channels = np.arange(split.images.shape[-1])
    for start, stop, pad in eval_spans(len(split.labels), batch_size, rows):
        yield padded(table[split.images[start:stop], channels], split.labels[start:stop], pad)
