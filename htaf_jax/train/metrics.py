"""Metrics out of a run: JSON lines always, TensorBoard events, a progress bar.

TensorBoard files are written by tensorboardX, which needs no TensorFlow.
``metrics.jsonl`` has one record per line, e.g.
``{"step": 50, "epoch": 0, "split": "train", "loss": 0.61, ..., "wall_time": 3.2}``.
Timing fields (TIMING_FIELDS) are the only ones that differ between two runs
with the same seed on CPU.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Mapping

import numpy as np
from tqdm.auto import tqdm

from htaf_jax._atomic import replace_on_close

TIMING_FIELDS = ("wall_time", "steps_per_sec", "images_per_sec", "pipeline_images_per_sec")


def _scalar(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)) or hasattr(value, "__array__"):
        value = np.asarray(value)
        return value.item() if value.size == 1 else value.tolist()
    return value


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = f.read().split("\n")
    # The last line lacks its newline only if a write was cut short: not a record.
    return [json.loads(line) for line in lines[:-1] if line.strip()]


class MetricsWriter:
    """Appends to ``workdir/metrics.jsonl`` and ``workdir/tensorboard/``.

    On resume from checkpoint step S, records after S (written by the killed
    run past its last checkpoint) are dropped, so the file reads as one run; the
    file is rewritten whole (htaf_jax._atomic), so a kill then loses nothing.
    """

    def __init__(
        self, workdir: str, *, resume_step: int = 0, tensorboard: bool = True, enabled: bool = True
    ):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._start = time.time()
        self._file = self._tb = None
        self._kept: set = set()
        if not enabled:  # processes other than 0 of a multi-process run: records only
            return
        os.makedirs(workdir, exist_ok=True)
        kept = [r for r in read_metrics(workdir) if r.get("step", 0) <= resume_step]
        self._kept = {(r.get("step"), r.get("split")) for r in kept}
        with replace_on_close(self.path) as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        self._file = open(self.path, "a")
        if tensorboard:
            # Imported here: tensorboardX imports torch when it is installed (~2.5 s), a
            # cost only the runs that write events should pay.
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(
                os.path.join(workdir, "tensorboard"), purge_step=resume_step + 1
            )

    def has_record(self, step: int, split: str) -> bool:
        """Whether the file kept a ``split`` record at ``step`` from before the resume."""
        return (int(step), split) in self._kept

    def write(self, step: int, split: str, scalars: Mapping[str, Any], **fields: Any) -> dict:
        record = {
            "step": int(step),
            "split": split,
            **{k: _scalar(v) for k, v in fields.items()},
            **{k: _scalar(v) for k, v in scalars.items()},
            "wall_time": round(time.time() - self._start, 3),
        }
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        if self._tb is not None:
            for name, value in scalars.items():
                value = _scalar(value)
                if isinstance(value, (int, float)):
                    self._tb.add_scalar(f"{split}/{name}", value, step)
        return record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()


def progress_bar(total: int, initial: int, enabled: bool):
    """A tqdm bar over steps, shown only when asked for and stderr is a terminal."""
    return tqdm(
        total=total,
        initial=initial,
        unit="step",
        dynamic_ncols=True,
        disable=not (enabled and sys.stderr.isatty()),
    )
