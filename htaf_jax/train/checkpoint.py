"""Checkpoints with orbax-checkpoint's CheckpointManager.

A checkpoint holds the train state (params, batch_stats, opt_state, step),
the rng key and the data-order position (epoch, step within epoch), so a run
restarted with the same command continues bit-identically. Orbax writes each
step into a temporary directory and renames it when complete; a directory
left half-written by a killed process is never listed as a checkpoint, and
is deleted on the next start (``cleanup_tmp_directories``).
"""
from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model being built; the message names the leaves."""


class Progress(NamedTuple):
    step: int            # global steps taken
    epoch: int           # epoch the next step belongs to
    step_in_epoch: int   # index of the next batch in that epoch's order


def _path_name(path) -> str:
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
    return "/".join(parts)


def _shapes(tree) -> dict[str, tuple[int, ...]]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {_path_name(path): tuple(getattr(leaf, "shape", np.shape(leaf)))
            for path, leaf in leaves}


def describe_mismatch(saved: dict, wanted: dict, limit: int = 3) -> str | None:
    """A readable description of how two {path: shape} maps differ, or None."""
    problems = [f"{k} has shape {saved[k]} in the checkpoint but {wanted[k]} in this model"
                for k in sorted(saved.keys() & wanted.keys()) if saved[k] != wanted[k]]
    problems += [f"{k} is in this model but not in the checkpoint"
                 for k in sorted(wanted.keys() - saved.keys())]
    problems += [f"{k} is in the checkpoint but not in this model"
                 for k in sorted(saved.keys() - wanted.keys())]
    if not problems:
        return None
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more


def item_handlers() -> dict:
    # Named up front so a fresh manager can read metadata before any save.
    return {"state": ocp.StandardCheckpointHandler(), "progress": ocp.JsonCheckpointHandler()}


class Checkpoints:
    """Save every ``every_steps`` steps and at the end, keep the last ``keep``."""

    def __init__(self, directory: str, *, every_steps: int, keep: int):
        self.directory = os.path.abspath(directory)
        self.every_steps = every_steps
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               cleanup_tmp_directories=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_handlers=item_handlers())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def should_save(self, step: int) -> bool:
        return step % self.every_steps == 0

    def save(self, tree: dict[str, Any], progress: Progress) -> None:
        """Saves asynchronously; the arrays are copied before this returns."""
        self.manager.save(progress.step, force=True, args=ocp.args.Composite(
            state=ocp.args.StandardSave(tree),
            progress=ocp.args.JsonSave(progress._asdict())))

    def check_compatible(self, step: int, target: dict[str, Any]) -> None:
        metadata = self.manager.item_metadata(step)["state"]
        saved = _shapes(getattr(metadata, "tree", metadata))
        wanted = _shapes(target)
        # Compare the model's own leaves; the optimiser state mirrors them.
        model_part = lambda shapes: {k: v for k, v in shapes.items()
                                     if k.split("/")[0] in ("params", "batch_stats")}
        mismatch = describe_mismatch(model_part(saved), model_part(wanted))
        if mismatch:
            raise CheckpointMismatchError(
                f"checkpoint {step} in {self.directory} was made for a different model: "
                f"{mismatch}. Use another --workdir, or the config that made it.")

    def restore(self, target: dict[str, Any], step: int | None = None
                ) -> tuple[dict[str, Any], Progress]:
        """Restores into the shapes, dtypes and shardings of ``target``."""
        step = self.latest_step() if step is None else step
        self.check_compatible(step, target)  # pyright: ignore[reportArgumentType]
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore()))
        return restored["state"], Progress(**restored["progress"])

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()
