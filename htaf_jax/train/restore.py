"""Loading a trained model back from a work dir (for analysis, ICBM ``explain``).

    config = load_config(workdir)
    model = build_model(config.model)
    params, batch_stats, metrics = restore_params(workdir)
    logits = model.apply({"params": params, "batch_stats": batch_stats}, images, train=False)
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from htaf_jax.train.checkpoint import (CheckpointMismatchError, _shapes, describe_mismatch,
                                      item_handlers)
from htaf_jax.train.loop import TrainResult


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a run in ``workdir`` trained with (``config.json``, written at start)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no config.json in {workdir}: not a training work dir")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def restore_params(workdir: str, config: ml_collections.ConfigDict | None = None,
                   step: int | None = None) -> TrainResult:
    """Params and batch_stats (NumPy, on the host) of the latest checkpoint, or ``step``.

    With ``config``, the checkpoint is first checked against the model that
    ``config.model`` builds, and CheckpointMismatchError names any difference.
    ``metrics`` are the final ones from ``summary.json`` ({} if the run did not finish).
    """
    directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    manager = ocp.CheckpointManager(directory, item_handlers=item_handlers(),
                                    options=ocp.CheckpointManagerOptions(read_only=True))
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {directory}")
    metadata = manager.item_metadata(step)["state"]
    tree = getattr(metadata, "tree", metadata)
    model_tree = {"params": tree["params"], "batch_stats": tree.get("batch_stats", {}) or {}}
    if config is not None:
        _check_against_config(model_tree, config, workdir, step)
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    # The whole saved tree, as saved, onto one device (the run may have used 8).
    abstract = jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=device), dict(tree))
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract)))["state"]
    restored = {"params": restored["params"], "batch_stats": restored.get("batch_stats", {})}
    manager.close()
    summary_path = os.path.join(workdir, "summary.json")
    metrics = {}
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            metrics = json.load(f).get("metrics", {})
    host = jax.tree.map(np.asarray, restored)
    return TrainResult(host["params"], host.get("batch_stats", {}) or {}, metrics)


def _check_against_config(saved_tree, config, workdir: str, step: int) -> None:
    from htaf_jax.models import build_model
    model_config = ml_collections.ConfigDict(config.model.to_dict())
    if "num_classes" not in model_config and os.path.exists(os.path.join(workdir, "config.json")):
        model_config.num_classes = load_config(workdir).model.num_classes
    model = build_model(model_config)
    image_shape = tuple(load_config(workdir).get("input_shape", (28, 28, 1)))
    variables = jax.eval_shape(
        lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1),
                            "sample": jax.random.key(2)},
                           jnp.zeros((2,) + image_shape, jnp.float32), train=False))
    wanted = {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
    mismatch = describe_mismatch(_shapes(saved_tree), _shapes(wanted))
    if mismatch:
        raise CheckpointMismatchError(
            f"checkpoint {step} in {workdir} was made for a different model: {mismatch}")
