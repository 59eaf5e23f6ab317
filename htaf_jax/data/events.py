"""Event data: the Spiking Heidelberg Digits (SHD) read and binned into frames on the host.

SHD (Cramer, Stradmann, Schemmel, Zenke 2020, "The Heidelberg Spiking Data
Sets for the Systematic Evaluation of Spiking Neural Networks") ships one
HDF5 file per split, ``shd_train.h5`` and ``shd_test.h5``, laid out as::

    spikes/times   ragged (N,): sample i's spike times in seconds (float)
    spikes/units   ragged (N,): sample i's channel of each spike, 0..699
    labels         (N,) class ids, 0..19 (ten digits, German and English)

A split is held as one flat event list plus per-sample offsets (CSR), so
a batch is binned by slicing. :func:`bin_events` turns samples into frames:
step k of T counts the events with k·Δ ≤ t < (k+1)·Δ, Δ = max_time / T;
events at t ≥ max_time are dropped. The defaults (T = 100 over 1.4 s) are
those of Zenke's SHD tutorial (SpyTorch), whose spike raster bins the same
interval. Everything here is NumPy; frames are (T, B, C) float32 counts.

The training engine reads ``config.dataset = "shd"`` through
:func:`load_event_splits` (``htaf_jax.data.load_splits`` calls it): each split
is an :class:`EventFrames`, the events and how they are binned, and its
batches are (B, T, C) (``time_major=False``), since the engine shards the
leading axis over devices; the models put time first themselves
(``htaf_jax.models.rsnn``). The model's input shape is ``(T, C)``.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np

from htaf_jax.data.sources import (
    DatasetNotFoundError,
    check_validation_size,
    eval_spans,
    padded,
    train_indices,
)

SHD_DIR_ENV = "HTAF_SHD_DIR"
DEFAULT_SHD_DIR = os.path.join("~", "data", "shd")
SHD_CHANNELS = 700  # cochlea-model channels in SHD
SHD_NUM_CLASSES = 20  # digits 0-9 spoken in German and in English
SHD_URL = "https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/"
DEFAULT_NUM_STEPS, DEFAULT_MAX_TIME = 100, 1.4
SHD_FILES = {"train": "shd_train.h5", "test": "shd_test.h5"}


def load_h5py():
    try:
        import h5py  # optional: only SHD needs it, and the message says how to get it
    except ImportError as err:
        raise ImportError("reading SHD needs the 'h5py' package: pip install h5py") from err
    return h5py


class EventSplit(NamedTuple):
    """One split's events in memory: sample i is rows offsets[i]:offsets[i+1]."""

    times: np.ndarray  # float32 (E,) seconds
    units: np.ndarray  # int32 (E,) channel ids
    offsets: np.ndarray  # int64 (N + 1,)
    labels: np.ndarray  # int32 (N,)

    def __len__(self) -> int:
        return len(self.labels)


def shd_dir(data_dir: str | None = None) -> str:
    """``data_dir`` if given, else $HTAF_SHD_DIR, else ~/data/shd."""
    return os.path.expanduser(data_dir or os.environ.get(SHD_DIR_ENV) or DEFAULT_SHD_DIR)


def not_found_message(path: str) -> str:
    folder = os.path.dirname(path)
    return (
        f"SHD file {path} not found: put shd_train.h5 and shd_test.h5 (gunzipped, from "
        f"{SHD_URL}) in {folder}, or set {SHD_DIR_ENV} to their folder"
    )


def read_shd(path: str) -> EventSplit:
    """Reads one SHD-layout HDF5 file (``spikes/times``, ``spikes/units``, ``labels``)."""
    if not os.path.isfile(path):
        raise DatasetNotFoundError(not_found_message(path))
    h5py = load_h5py()
    with h5py.File(path, "r") as f:
        missing = [k for k in ("spikes/times", "spikes/units", "labels") if k not in f]
        if missing:
            raise DatasetNotFoundError(f"{path} is not in SHD's layout: no {', '.join(missing)}")
        times, units = f["spikes/times"][()], f["spikes/units"][()]
        labels = np.asarray(f["labels"][()], np.int32)
    if not len(times) == len(units) == len(labels):
        raise ValueError(
            f"{path}: {len(times)} time lists, {len(units)} unit lists and "
            f"{len(labels)} labels; SHD has one of each per sample"
        )
    counts = np.array([len(t) for t in times], np.int64)
    if any(len(t) != len(u) for t, u in zip(times, units)):
        raise ValueError(f"{path}: a sample has different numbers of spike times and units")
    offsets = np.concatenate([[0], np.cumsum(counts)])

    def flat(rows, dtype):
        return (
            np.concatenate([np.asarray(r, dtype) for r in rows])
            if len(rows)
            else np.zeros(0, dtype)
        )

    return EventSplit(flat(times, np.float32), flat(units, np.int32), offsets, labels)


def load_shd(
    data_dir: str | None = None, splits: Sequence[str] = ("train", "test")
) -> dict[str, EventSplit]:
    """Reads SHD's splits from :func:`shd_dir`; a missing file is one line saying where to put it."""
    folder = shd_dir(data_dir)
    return {s: read_shd(os.path.join(folder, SHD_FILES[s])) for s in splits}


def write_shd(
    path: str, times: Sequence[np.ndarray], units: Sequence[np.ndarray], labels: Sequence[int]
) -> None:
    """Writes samples in SHD's HDF5 layout (small test files, subsets)."""
    h5py = load_h5py()
    with h5py.File(path, "w") as f:
        for name, rows, dtype in (
            ("spikes/times", times, np.float32),
            ("spikes/units", units, np.uint16),
        ):
            ds = f.create_dataset(name, (len(rows),), dtype=h5py.vlen_dtype(dtype))
            for i, row in enumerate(rows):
                ds[i] = np.asarray(row, dtype)
        f.create_dataset("labels", data=np.asarray(labels, np.uint16))


def bin_events(
    split: EventSplit,
    indices: Sequence[int] | np.ndarray,
    *,
    num_steps: int = 100,
    max_time: float = 1.4,
    num_channels: int = SHD_CHANNELS,
    time_major: bool = True,
) -> np.ndarray:
    """Frames (T, B, C) float32: event counts of samples ``indices`` per step and channel.

    Step k holds the events with k·Δ ≤ t < (k+1)·Δ, Δ = max_time / num_steps;
    events at t ≥ max_time (or t < 0) are dropped. A unit ≥ num_channels raises.
    ``time_major=False`` counts straight into (B, T, C) (no transposed copy).
    """
    indices = np.asarray(indices, np.int64)
    starts, stops = split.offsets[indices], split.offsets[indices + 1]
    lengths = stops - starts
    rows = np.repeat(np.arange(len(indices)), lengths)
    events = np.repeat(
        starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths
    ) + np.arange(lengths.sum())
    times = split.times[events].astype(np.float64)
    units = split.units[events]
    if units.size and (units.max() >= num_channels or units.min() < 0):
        raise ValueError(
            f"unit ids must be in [0, {num_channels}), got {units.min()}..{units.max()}"
        )
    steps = np.floor(times * (num_steps / max_time)).astype(np.int64)
    keep = (steps >= 0) & (steps < num_steps)
    steps, rows = steps[keep], rows[keep]
    if time_major:
        flat, shape = steps * len(indices) + rows, (num_steps, len(indices), num_channels)
    else:
        flat, shape = rows * num_steps + steps, (len(indices), num_steps, num_channels)
    counts = np.bincount(
        flat * num_channels + units[keep], minlength=num_steps * len(indices) * num_channels
    )
    return counts.reshape(shape).astype(np.float32)


def train_event_batches(
    split: EventSplit,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    start_step: int = 0,
    rows: tuple[int, int] | None = None,
    **binning,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields (frames float32 (T, B, C), labels int32 (B,)) from step ``start_step`` on.

    The batches of ``htaf_jax.data.train_batches``: the order is
    ``epoch_order(N, seed, epoch)`` (a function of (seed, epoch) only, so a
    resumed run sees the same batches), full batches only, and
    ``rows=(start, stop)`` keeps one process's rows of each global batch.
    ``binning``: :func:`bin_events`'s ``num_steps``, ``max_time``, ``num_channels`` and
    ``time_major`` (False gives (B, T, C)).
    """
    for _, idx in train_indices(
        len(split), batch_size, seed=seed, epoch=epoch, start_step=start_step, rows=rows
    ):
        yield bin_events(split, idx, **binning), split.labels[idx]


def eval_event_batches(
    split: EventSplit, batch_size: int, rows: tuple[int, int] | None = None, **binning
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yields (frames, labels, mask) in file order, as ``htaf_jax.data.eval_batches``:
    the last batch is padded with empty samples, mask 0 on the padding. ``binning`` as
    :func:`train_event_batches`'s."""
    batch_axis = int(binning.get("time_major", True))
    for start, stop, pad in eval_spans(len(split), batch_size, rows):
        idx = np.arange(start, stop)
        yield padded(bin_events(split, idx, **binning), split.labels[idx], pad, batch_axis)


def subset(split: EventSplit, start: int, stop: int | None = None) -> EventSplit:
    """Samples ``start:stop`` (0 ≤ start; stop None: to the end) of a split: a slice of
    the CSR arrays, offsets from 0."""
    stop = len(split) if stop is None else min(stop, len(split))
    start = min(start, stop)
    offsets = split.offsets[start : stop + 1]
    lo, hi = int(offsets[0]), int(offsets[-1])
    return EventSplit(
        split.times[lo:hi], split.units[lo:hi], offsets - lo, split.labels[start:stop]
    )


class EventFrames(NamedTuple):
    """A split of events and how the engine bins them: frames (B, T, C) per batch.

    What ``htaf_jax.data.load_splits("shd")`` holds in ``DataSplits.train`` and
    ``.eval`` in place of an image ``ArraySplit``: ``labels`` and the batch
    functions ``train_batches``/``eval_batches`` take the same arguments
    (without the normaliser and augmentation) and give the same batches
    (order, resumption, process rows, padding with a mask).
    """

    events: EventSplit
    num_steps: int = DEFAULT_NUM_STEPS
    max_time: float = DEFAULT_MAX_TIME
    num_channels: int = SHD_CHANNELS

    @property
    def labels(self) -> np.ndarray:
        return self.events.labels

    @property
    def frame_shape(self) -> tuple[int, int]:
        """One example's input shape, (T, C): the model's input shape."""
        return (self.num_steps, self.num_channels)

    def _binning(self) -> dict:
        return dict(
            num_steps=self.num_steps,
            max_time=self.max_time,
            num_channels=self.num_channels,
            time_major=False,
        )

    def train_batches(self, batch_size: int, **order) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """As ``htaf_jax.data.train_batches``: ``seed``, ``epoch``, ``start_step``, ``rows``."""
        return train_event_batches(self.events, batch_size, **order, **self._binning())

    def eval_batches(self, batch_size: int, rows: tuple[int, int] | None = None):
        return eval_event_batches(self.events, batch_size, rows, **self._binning())


def load_event_splits(
    data_dir: str | None = None,
    *,
    train_subset: int = -1,
    test_subset: int = -1,
    validation_size: int = 0,
    num_steps: int | None = None,
    max_time: float | None = None,
) -> tuple[EventFrames, EventFrames, str, int]:
    """SHD's (train, eval, eval split name, number of classes), as ``load_splits`` reads
    an image dataset: ``validation_size`` > 0 evaluates on the last N train samples,
    ``train_subset``/``test_subset`` > 0 keep the first N. Frames: ``num_steps`` steps
    (default 100) over ``max_time`` seconds (default 1.4)."""
    binning: dict[str, Any] = dict(
        num_steps=DEFAULT_NUM_STEPS if num_steps is None else int(num_steps),
        max_time=DEFAULT_MAX_TIME if max_time is None else float(max_time),
    )
    if binning["num_steps"] < 1 or binning["max_time"] <= 0:
        raise ValueError(
            f"SHD frames need num_steps >= 1 and max_time > 0, got "
            f"{binning['num_steps']} and {binning['max_time']}"
        )
    splits = load_shd(data_dir, ("train",) if validation_size > 0 else ("train", "test"))
    train = splits["train"]
    n_train = len(train)
    check_validation_size(validation_size, n_train)
    if validation_size > 0:
        evaluation, eval_split = subset(train, n_train - validation_size), "validation"
        train = subset(train, 0, n_train - validation_size)
    else:
        evaluation, eval_split = splits["test"], "test"
    if train_subset > 0:
        train = subset(train, 0, train_subset)
    if test_subset > 0:
        evaluation = subset(evaluation, 0, test_subset)
    return (
        EventFrames(train, **binning),
        EventFrames(evaluation, **binning),
        eval_split,
        SHD_NUM_CLASSES,
    )
