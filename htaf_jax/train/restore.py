"""Loading a trained model back from a work dir (for analysis, ICBM ``explain``).

    model, config = model_from_run(workdir)      # from the config the run stored
    params, batch_stats, metrics = restore_params(workdir)
    logits = model.apply({"params": params, "batch_stats": batch_stats}, images, train=False)

The model is rebuilt from the run's ``config.json`` and the values the engine
derived (``derived.json``: ``num_classes``, ``total_train_steps``,
``input_shape``). Runs from before ``derived.json`` kept those in the config
(``config.model.num_classes``, ``config.model.total_train_steps``,
``config.input_shape``), where they are read instead.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from htaf_jax.models import build_model
from htaf_jax.train.checkpoint import (
    UnusableCheckpointError,
    check_same_model,
    item_handlers,
    read_checked,
)
from htaf_jax.train.loop import DERIVED_FILE, TrainResult
from htaf_jax.train.step import init_variables

DEFAULT_INPUT_SHAPE = (28, 28, 1)  # runs that recorded no input shape were Fashion-MNIST


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a run in ``workdir`` trained with (``config.json``, written at start)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no config.json in {workdir}: not a training work dir")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def load_derived(workdir: str) -> dict:
    """``num_classes``, ``total_train_steps`` and ``input_shape`` (a tuple) of the run in
    ``workdir``; a value the run did not record is None (input_shape: 28×28×1)."""
    path = os.path.join(workdir, DERIVED_FILE)
    if os.path.exists(path):
        with open(path) as f:
            derived = json.load(f)
    else:  # older runs: the engine wrote these into the config
        config = load_config(workdir)
        derived = {
            "num_classes": config.model.get("num_classes", None),
            "total_train_steps": config.model.get("total_train_steps", None),
            "input_shape": config.get("input_shape", None),
        }
    shape = derived.get("input_shape") or DEFAULT_INPUT_SHAPE
    return {
        "num_classes": derived.get("num_classes"),
        "total_train_steps": derived.get("total_train_steps"),
        "input_shape": tuple(int(d) for d in shape),
    }


def model_from_run(workdir: str, config: ml_collections.ConfigDict | None = None):
    """``(model, config)``: the Linen module the run in ``workdir`` trained, built from
    the config it stored (or ``config``, e.g. a copy with changed analysis fields) and
    the values it derived (num_classes, total_train_steps)."""
    config = load_config(workdir) if config is None else config
    derived = load_derived(workdir)
    model = build_model(
        config.model,  # pyright: ignore[reportOptionalMemberAccess]
        num_classes=derived["num_classes"],
        total_train_steps=derived["total_train_steps"],
    )
    return model, config


def restore_params(
    workdir: str, config: ml_collections.ConfigDict | None = None, step: int | None = None
) -> TrainResult:
    """Params and batch_stats (NumPy, on the host) of the latest checkpoint, or ``step``.

    The latest usable one: a newer step that cannot be read (a kill mid-save, a
    damaged file) is named in one line on stderr and skipped; ``step`` given, its
    UnusableCheckpointError is raised instead.

    With ``config``, the checkpoint is first checked against the model that
    ``config.model`` builds, and CheckpointMismatchError names any difference.
    ``metrics`` are the final ones from ``summary.json`` ({} if the run did not finish).
    """
    directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    manager = ocp.CheckpointManager(
        directory,
        item_handlers=item_handlers(),
        options=ocp.CheckpointManagerOptions(read_only=True),
    )
    check = None
    if config is not None:
        check = lambda saved: _check_against_config(  # noqa: E731
            {"params": saved["params"], "batch_stats": saved.get("batch_stats", {}) or {}},
            config,
            workdir,
            step,  # pyright: ignore[reportArgumentType]
        )
    # The whole saved tree, as saved, onto one device (the run may have used 8). Asked
    # for no step: the newest usable one, naming any newer one that is not.
    explicit = step is not None
    steps = [step] if explicit else sorted(manager.all_steps(), reverse=True)
    restored = None
    try:
        for step in steps:
            try:
                restored = read_checked(manager, step, check_shapes=check)[0]
                break
            except UnusableCheckpointError as e:
                if explicit:
                    raise
                print(
                    f"warning: {e}: skipped, falling back to the previous checkpoint",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        manager.close()
    if restored is None:
        raise FileNotFoundError(f"no {'usable ' if steps else ''}checkpoint in {directory}")
    restored = {"params": restored["params"], "batch_stats": restored.get("batch_stats", {})}
    summary_path = os.path.join(workdir, "summary.json")
    metrics = {}
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            metrics = json.load(f).get("metrics", {})
    host = jax.tree.map(np.asarray, restored)
    return TrainResult(host["params"], host.get("batch_stats", {}) or {}, metrics)


def _check_against_config(saved_tree, config, workdir: str, step: int) -> None:
    model, _ = model_from_run(workdir, config)
    shape = load_derived(workdir)["input_shape"]
    wanted = jax.eval_shape(lambda: init_variables(model, jax.random.key(0), shape))
    check_same_model(saved_tree, dict(wanted), f"{step} in {workdir}")
