"""Checkpoints with orbax-checkpoint's CheckpointManager.

A checkpoint holds the train state (params, batch_stats, opt_state, step),
the rng key and the data-order position (epoch, step within epoch), so a run
restarted with the same command continues bit-identically.

What a kill leaves, and what a restart does with it:

- Killed during a save: orbax writes each step into ``<step>.orbax-checkpoint-tmp-<t>``
  and renames it to ``<step>`` once every file is written (on a local disk; on GCS a
  ``commit_success.txt`` marks it instead). Such a directory is never listed as a
  checkpoint; the restart names it in one line and orbax deletes it.
- A step directory that is listed but cannot be used (its metadata gone, an array
  file truncated or damaged, the progress record missing or for another step): the
  newest step is restored and checked (the arrays against a checksum saved with the
  progress record); one that fails is named in one line, moved to
  ``checkpoints.unusable/`` beside the checkpoints, and the previous step is tried,
  down to a fresh start if none is usable.
- A checkpoint made for another model (shapes differ) is not "unusable": it stops
  the run with CheckpointMismatchError naming the leaves.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

# Orbax's suffix of a step directory still being written (atomicity_types.TMP_DIR_SUFFIX).
HALF_WRITTEN_MARK = ".orbax-checkpoint-tmp"
UNUSABLE_SUFFIX = ".unusable"  # checkpoints/ -> checkpoints.unusable/<step>


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model being built; the message names the leaves."""


class UnusableCheckpointError(Exception):
    """A listed checkpoint step cannot be restored (damaged or incomplete on disk)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"checkpoint {path} is unusable ({reason})")
        self.path, self.reason = path, reason


class Progress(NamedTuple):
    step: int  # global steps taken
    epoch: int  # epoch the next step belongs to
    step_in_epoch: int  # index of the next batch in that epoch's order


def _shapes(tree) -> dict[str, tuple[int, ...]]:
    """{"params/dense0/kernel": shape, ...} of every leaf."""
    return {
        jax.tree_util.keystr(path, simple=True, separator="/"): tuple(np.shape(leaf))
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def describe_mismatch(saved: dict, wanted: dict, limit: int = 3) -> str | None:
    """A readable description of how two {path: shape} maps differ, or None."""
    problems = [
        f"{k} has shape {saved[k]} in the checkpoint but {wanted[k]} in this model"
        for k in sorted(saved.keys() & wanted.keys())
        if saved[k] != wanted[k]
    ]
    problems += [
        f"{k} is in this model but not in the checkpoint"
        for k in sorted(wanted.keys() - saved.keys())
    ]
    problems += [
        f"{k} is in the checkpoint but not in this model"
        for k in sorted(saved.keys() - wanted.keys())
    ]
    if not problems:
        return None
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more


def check_same_model(saved_tree, target, which: str, hint: str = "") -> None:
    """Raises CheckpointMismatchError naming the ``params``/``batch_stats`` leaves whose
    shapes differ between a saved tree and the model's (the optimiser state mirrors them)."""
    model_part = lambda shapes: {  # noqa: E731
        k: v for k, v in shapes.items() if k.split("/")[0] in ("params", "batch_stats")
    }
    mismatch = describe_mismatch(model_part(_shapes(saved_tree)), model_part(_shapes(target)))
    if mismatch:
        raise CheckpointMismatchError(
            f"checkpoint {which} was made for a different model: {mismatch}.{hint}"
        )


def _words(leaf: jax.Array) -> jax.Array:
    """The leaf's bits as uint32 words (one per element; two for 8-byte elements)."""
    if leaf.dtype == jnp.bool_:
        return leaf.astype(jnp.uint32)
    size = leaf.dtype.itemsize
    if size == 8:
        return jax.lax.bitcast_convert_type(leaf, jnp.uint32)
    unsigned = {4: jnp.uint32, 2: jnp.uint16, 1: jnp.uint8}[size]
    return jax.lax.bitcast_convert_type(leaf, unsigned).astype(jnp.uint32)


@jax.jit
def _checksum_of(leaves: list) -> jax.Array:
    # Position-weighted word sum mod 2**32: exact in any reduction order, and a
    # changed, zeroed or shifted word changes it. Leaves are summed, so the
    # nesting a reader rebuilds the tree with (tuple, list, dict) does not matter.
    total = jnp.zeros((), jnp.uint32)
    for leaf in leaves:
        words = _words(leaf).ravel()
        weights = jnp.arange(words.size, dtype=jnp.uint32) * jnp.uint32(0x9E3779B1) + 1
        total = total + jnp.sum(words * weights, dtype=jnp.uint32)
    return total


def state_checksum(tree) -> int | None:
    """A checksum of every array in ``tree``, computed on one local copy (no collective,
    so each process of a multi-process run checks on its own); None where a leaf is
    sharded rather than replicated."""
    leaves = jax.tree.leaves(tree)
    local = []
    for leaf in leaves:
        if isinstance(leaf, jax.Array):
            if not leaf.is_fully_replicated:
                return None
            leaf = leaf.addressable_data(0)
        local.append(jnp.asarray(leaf))
    return int(jax.device_get(_checksum_of(local)))


def _one_line(error: BaseException, limit: int = 240) -> str:
    # The innermost error says what is wrong with the file (tensorstore's outer one
    # prints its whole spec).
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # pyright: ignore[reportAssignmentType]
    text = " ".join(str(error).split()) or type(error).__name__
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"{type(error).__name__}: {text}"


def _say(message: str) -> None:
    if jax.process_index() == 0:
        print(f"warning: {message}", file=sys.stderr, flush=True)


def read_checked(
    manager: ocp.CheckpointManager, step: int, abstract_state=None, check_shapes=None
) -> tuple[Any, dict]:
    """``(state, progress)`` of ``step``, or UnusableCheckpointError saying why not.

    ``abstract_state`` (ShapeDtypeStructs) is what to restore into; None: the saved
    tree as saved, on one device. ``check_shapes(saved_tree)`` runs on the saved
    metadata before any array is read (it raises CheckpointMismatchError).
    """
    path = os.path.join(str(manager.directory), str(step))
    try:
        metadata = manager.item_metadata(step)["state"]
    except Exception as e:  # noqa: BLE001 - whatever orbax raises on a broken directory
        raise UnusableCheckpointError(
            path, f"its metadata cannot be read: {_one_line(e)}"
        ) from None
    tree = getattr(metadata, "tree", metadata)
    if not tree:
        raise UnusableCheckpointError(path, "its array metadata state/_METADATA is missing")
    if check_shapes is not None:
        check_shapes(tree)
    if abstract_state is None:
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        abstract_state = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=device), dict(tree)
        )
    try:
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), progress=ocp.args.JsonRestore()
            ),
        )
    except Exception as e:  # noqa: BLE001 - tensorstore/orbax errors on a damaged file
        raise UnusableCheckpointError(path, f"reading it failed: {_one_line(e)}") from None
    progress = dict(restored["progress"] or {})
    if progress.get("step") != step:
        raise UnusableCheckpointError(
            path, f"its progress record is missing or for step {progress.get('step')}"
        )
    saved = progress.pop("checksum", None)
    if saved is not None and state_checksum(restored["state"]) != saved:
        raise UnusableCheckpointError(
            path, "its arrays do not match the checksum saved with them: a damaged file"
        )
    return restored["state"], progress


def item_handlers() -> dict:
    # Named up front so a fresh manager can read metadata before any save.
    return {"state": ocp.StandardCheckpointHandler(), "progress": ocp.JsonCheckpointHandler()}


class Checkpoints:
    """Save every ``every_steps`` steps and at the end, keep the last ``keep``."""

    def __init__(self, directory: str, *, every_steps: int, keep: int):
        self.directory = os.path.abspath(directory)
        self.every_steps = every_steps
        # Orbax also deletes these (cleanup_tmp_directories), silently and in the
        # background; removed here first, each named.
        if jax.process_index() == 0 and os.path.isdir(self.directory):
            for name in sorted(os.listdir(self.directory)):
                if HALF_WRITTEN_MARK in name:
                    path = os.path.join(self.directory, name)
                    shutil.rmtree(path, ignore_errors=True)
                    _say(
                        f"checkpoint {path} was left half-written by an interrupted save: "
                        "skipped and removed"
                    )
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, cleanup_tmp_directories=True
        )
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_handlers=item_handlers()
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def should_save(self, step: int) -> bool:
        return step % self.every_steps == 0

    def save(self, tree: dict[str, Any], progress: Progress) -> None:
        """Saves asynchronously; the arrays are copied before this returns."""
        record = {**progress._asdict(), "checksum": state_checksum(tree)}
        self.manager.save(
            progress.step,
            force=True,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree), progress=ocp.args.JsonSave(record)
            ),
        )

    def check_compatible(self, step: int, saved_tree, target: dict[str, Any]) -> None:
        hint = " Use another --workdir, or the config that made it."
        check_same_model(saved_tree, target, f"{step} in {self.directory}", hint)

    def restore(self, target: dict[str, Any], step: int) -> tuple[dict[str, Any], Progress]:
        """Restores ``step`` into the shapes, dtypes and shardings of ``target``; raises
        UnusableCheckpointError if it cannot be read, CheckpointMismatchError if it
        was made for another model."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        state, progress = read_checked(
            self.manager,
            step,
            abstract,
            check_shapes=lambda saved: self.check_compatible(step, saved, target),
        )
        return state, Progress(**progress)

    def restore_latest(self, target: dict[str, Any]) -> tuple[dict[str, Any], Progress] | None:
        """The newest usable checkpoint, restored as ``restore`` does; None if there is
        none. A newer step that is unusable is named in one line on stderr and moved
        to ``checkpoints.unusable/`` (so the run can save that step again)."""
        steps = sorted(self.manager.all_steps(), reverse=True)
        for step in steps:
            try:
                return self.restore(target, step)
            except UnusableCheckpointError as e:
                _say(
                    f"{e}: set aside in {self._set_aside(step)}, "
                    "falling back to the previous checkpoint"
                )
        if steps:
            _say(f"no usable checkpoint in {self.directory}: training from the start")
        return None

    def _set_aside(self, step: int) -> str:
        folder = self.directory.rstrip(os.sep) + UNUSABLE_SUFFIX
        destination, n = os.path.join(folder, str(step)), 1
        while os.path.exists(destination):
            destination, n = os.path.join(folder, f"{step}-{n}"), n + 1
        if jax.process_index() == 0:
            os.makedirs(folder, exist_ok=True)
            os.rename(os.path.join(self.directory, str(step)), destination)
        ocp.multihost.sync_global_processes(f"htaf_set_aside_{step}")
        self.manager.reload()
        return destination

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()
