"""Helpers shared by the experiment tests: tiny budgets, a run's command parsed back,
and a run's accuracy recomputed outside the engine."""

import shlex

import numpy as np

# Watch fields every tiny run sets: no progress bar, no TensorBoard files.
QUIET = {"progress": False, "tensorboard": False}
# A runlocal-sized run: 256 training images, one epoch of 4 steps, 128 eval images.
TINY = {
    "train_subset": 256,
    "test_subset": 128,
    "batch_size": 64,
    "eval_batch_size": 128,
    "num_epochs": 1,
    "checkpoint_every_steps": 100,
    "log_every_steps": 2,
    **QUIET,
}
TINY_DHN = {**TINY, "model.width": 32}
TINY_ICBM = {
    "train_subset": 512,
    "test_subset": 200,
    "num_epochs": 2,
    "batch_size": 64,
    "model.backbone_kwargs.widths": (32,),
    "model.num_concepts": 16,
    "grid_concepts": 2,
    "grid_size": 4,
    **QUIET,
}


def flags(overrides: dict) -> list[str]:
    """``--config.<path>=<value>`` flags for ``overrides``."""
    return [f"--config.{k}={v}" for k, v in overrides.items()]


def parsed_back(command: str):
    """(config, workdir) the CLI builds from a run's stored shell command."""
    from htaf_jax.train import cli

    args = shlex.split(command)
    assert args[:2] == ["python", "-m"], command
    return cli.parse_flags([args[2], *args[3:]])


def eval_accuracy(workdir: str) -> float:
    """Accuracy of the run's last checkpoint on its eval images, outside the engine."""
    from htaf_jax.data import load_splits
    from htaf_jax.train import load_config, restore_params
    from htaf_jax.train.restore import model_from_run

    config = load_config(workdir)
    model, _ = model_from_run(workdir)
    state = restore_params(workdir)
    variables = {
        "params": state.params,
        **({"batch_stats": state.batch_stats} if state.batch_stats else {}),
    }
    splits = load_splits(
        config.dataset,
        config.get("data_dir"),
        train_subset=config.train_subset,
        test_subset=config.test_subset,
        validation_size=config.validation_size,
    )
    logits = model.apply(variables, splits.normalizer(splits.eval.images), train=False)
    return float(np.mean(np.argmax(logits, -1) == splits.eval.labels))
