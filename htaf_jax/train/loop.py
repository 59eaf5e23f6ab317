"""``train_and_evaluate(config, workdir)``: the one trainer every experiment uses.

Importable from a notebook; ``python -m experiments.<name>`` entry points
only parse flags (htaf_jax.train.cli). Order of work: validate the config
and the model's fields (no compilation yet), read the data, write
``config.json`` (the config as given, after ``runlocal``) and ``derived.json``
(``num_classes``, ``total_train_steps``, ``input_shape``: what the run derived,
passed to ``build_model`` as arguments), build model and optimiser, restore
the latest checkpoint in ``workdir`` if there is one, train (a model whose
``__call__`` takes ``step`` gets the train step), evaluate, write
``summary.json``.

The loop reads the train step's non-finite flag (htaf_jax.train.step) where it reads
the metrics anyway, before every evaluation and checkpoint save, and at the end; a
non-finite run raises NonFiniteLossError naming the step, and its last checkpoint is
from before it. ``config.profile_steps="a,b"`` writes a ``jax.profiler`` trace of
steps [a, b) (counted from 0, as ``state.step`` before each) into
``workdir/profile``. Steps/s and images/s are logged with the train metrics.

Multi-process runs (htaf_jax.train.distributed) go through the same code:
every process holds the whole (small) dataset in memory, builds only its
rows of each global batch (``step.process_rows``), and runs the same step on
a mesh of all devices; all processes save and restore the orbax checkpoints
(``workdir`` must be one shared directory), and process 0 alone writes
``config.json``, ``derived.json``, metrics, TensorBoard events, the progress bar and ``summary.json``.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from htaf_jax import data as data_lib
from htaf_jax._atomic import replace_on_close
from htaf_jax.models import build_model
from htaf_jax.train import step as step_lib
from htaf_jax.train.checkpoint import Checkpoints, Progress
from htaf_jax.train.config import ConfigError, check_devices, parse_profile_steps, prepare_config
from htaf_jax.train.distributed import is_main_process
from htaf_jax.train.metrics import MetricsWriter, progress_bar
from htaf_jax.train.optim import make_optimizer
from htaf_jax.train.workdir import prepare_workdir

# Beside config.json in the work dir: what the engine derived from the data and
# the run (num_classes, total_train_steps, input_shape).
DERIVED_FILE = "derived.json"
PROFILE_DIR = "profile"  # in the work dir: the jax.profiler trace of config.profile_steps


class TrainResult(NamedTuple):
    params: Any  # host (NumPy) pytree
    batch_stats: Any  # {} for models without BatchNorm
    metrics: dict  # final eval metrics, e.g. {"test/accuracy": 0.84, ...}


class NonFiniteLossError(FloatingPointError):
    """The loss or a gradient became NaN/inf; the run stopped, checkpoints kept."""


def _checkpoint_tree(state: step_lib.TrainState, rng: jax.Array) -> dict:
    return {
        "params": state.params,
        "batch_stats": state.batch_stats,
        "opt_state": state.opt_state,
        "step": state.step,
        "rng": jax.random.key_data(rng),
    }


def check_model_config(config: ml_collections.ConfigDict) -> None:
    """Builds ``config.model`` once before any data is read: an unknown or invalid field
    raises ConfigError with the factory's one-line message."""
    try:
        build_model(config.model)
    except (ValueError, TypeError) as e:
        text = " ".join(str(e.args[0] if e.args else e).split())
        raise ConfigError(f"config.model: {text}") from None


def check_run(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
    """Everything checked before the data is read: the config (``runlocal`` applied, the
    model's fields, the devices) and the work dir. Returns the prepared config."""
    config = prepare_config(config)
    check_model_config(config)
    check_devices(config, jax.device_count(), jax.process_count())
    prepare_workdir(workdir)
    return config


def evaluate(eval_step, state, splits: data_lib.DataSplits, config, mesh, rng) -> dict:
    """Loss and accuracy over the whole eval split, each example counted once."""
    totals = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
    rows = step_lib.process_rows(mesh, config.eval_batch_size)
    for batch in data_lib.eval_batches(
        splits.eval,
        splits.normalizer,  # pyright: ignore[reportArgumentType]
        config.eval_batch_size,
        rows=rows,
    ):
        out = jax.device_get(eval_step(state, *step_lib.shard_batch(batch, mesh), rng))
        totals = {k: totals[k] + float(out[k]) for k in totals}
    count = max(totals["count"], 1.0)
    return {
        "loss": totals["loss_sum"] / count,
        "accuracy": totals["correct"] / count,
        "num_examples": int(totals["count"]),
    }


def _raise_if_nonfinite(
    state: step_lib.TrainState, steps_per_epoch: int, checkpoints: Checkpoints
) -> None:
    """Raises NonFiniteLossError naming the first non-finite step, if there was one."""
    bad = step_lib.first_nonfinite_step(state)
    if bad is None:
        return
    checkpoints.wait()
    epoch, index = divmod(bad - 1, steps_per_epoch)
    raise NonFiniteLossError(
        f"non-finite loss or gradient in train step {bad} (epoch {epoch}, batch {index}); "
        f"stopped. Last good checkpoint: step {checkpoints.latest_step()} in "
        f"{checkpoints.directory}. Try a lower config.learning_rate."
    )


class _Profiler:
    """A jax.profiler trace over the steps [first, stop) of the run (None: off)."""

    def __init__(self, steps: tuple[int, int] | None, directory: str, enabled: bool):
        self.steps, self.directory = (steps if enabled else None), directory
        self.active = False

    def before_step(self, step: int) -> None:
        if self.steps and not self.active and self.steps[0] <= step < self.steps[1]:
            # Also a .trace.json.gz that ui.perfetto.dev opens without TensorBoard.
            jax.profiler.start_trace(self.directory, create_perfetto_trace=True)
            self.active = True

    def after_step(self, step: int, state) -> None:
        if self.active and step >= self.steps[1]:  # pyright: ignore[reportOptionalSubscript]
            self.stop(state)

    def stop(self, state=None) -> None:
        if self.active:
            if state is not None:  # the trace should hold the device work it dispatched
                jax.block_until_ready(state)
            jax.profiler.stop_trace()
            self.active = False


def _mean_metrics(history: list[dict]) -> dict:
    history = jax.device_get(history)
    return {k: float(np.mean([h[k] for h in history])) for k in history[0]}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainResult:
    """Trains ``config.model`` on ``config.dataset``, resuming from ``workdir`` if it can.

    Raises ConfigError (bad field, before compilation), WorkdirError (a work dir that
    cannot be written, before the data is read), DatasetNotFoundError,
    CheckpointMismatchError, NonFiniteLossError.
    """
    config = check_run(config, workdir)
    mesh = step_lib.make_mesh(config.num_devices)
    main_process = is_main_process()
    try:
        splits = data_lib.load_splits(
            config.dataset,
            config.get("data_dir"),
            train_subset=config.train_subset,
            test_subset=config.test_subset,
            validation_size=config.validation_size,
            event_num_steps=config.get("event_num_steps"),
            event_max_time=config.get("event_max_time"),
        )
        steps_per_epoch = data_lib.steps_per_epoch(len(splits.train.labels), config.batch_size)
    except ValueError as e:  # a config the data cannot serve: the message names the field
        raise ConfigError(" ".join(str(e).split())) from None
    total_steps = (
        config.num_train_steps
        if config.num_train_steps > 0
        else config.num_epochs * steps_per_epoch
    )
    num_epochs = math.ceil(total_steps / steps_per_epoch)
    # What the run derives from the data and its length goes to the model as
    # arguments, not into the config (which stays what a person chose), and is
    # recorded beside it for restore (htaf_jax.train.restore.model_from_run).
    derived = {
        "num_classes": splits.num_classes,
        "total_train_steps": total_steps,
        "input_shape": list(splits.input_shape),
    }
    if main_process:
        # Whole or absent under a kill (htaf_jax._atomic), as every file a run writes.
        with replace_on_close(os.path.join(workdir, "config.json")) as f:
            f.write(config.to_json(indent=2))
        with replace_on_close(os.path.join(workdir, DERIVED_FILE)) as f:
            json.dump(derived, f, indent=2)

    model = build_model(
        config.model,
        num_classes=derived["num_classes"],
        total_train_steps=derived["total_train_steps"],
    )
    tx = make_optimizer(config, total_steps)
    compute_dtype = jnp.bfloat16 if config.get("half_precision", False) else None
    init_rng, train_rng, eval_rng = jax.random.split(jax.random.key(config.seed), 3)
    state = step_lib.init_state(model, tx, init_rng, splits.input_shape)
    state, train_rng, eval_rng = step_lib.replicate((state, train_rng, eval_rng), mesh)

    checkpoints = Checkpoints(
        os.path.join(workdir, "checkpoints"),
        every_steps=config.checkpoint_every_steps,
        keep=config.keep_checkpoints,
    )
    position = Progress(0, 0, 0)
    # The newest usable checkpoint; newer ones a kill left unusable are named and set
    # aside (htaf_jax.train.checkpoint).
    restored = checkpoints.restore_latest(_checkpoint_tree(state, train_rng))
    if restored is not None:
        tree, position = restored
        # Checkpoints hold finite states only, so the flag keeps its initial 0.
        state = state.replace(
            step=tree["step"],
            params=tree["params"],
            batch_stats=tree["batch_stats"],
            opt_state=tree["opt_state"],
        )
        train_rng = jax.random.wrap_key_data(tree["rng"])
    writer = MetricsWriter(
        workdir,
        resume_step=position.step,
        tensorboard=config.get("tensorboard", True),
        enabled=main_process,
    )
    train_step = step_lib.make_train_step(model, tx, mesh, compute_dtype=compute_dtype)
    eval_step = step_lib.make_eval_step(model, mesh, compute_dtype=compute_dtype)
    profiler = _Profiler(
        parse_profile_steps(config.get("profile_steps", "")),
        os.path.join(workdir, PROFILE_DIR),
        enabled=main_process,
    )

    step, history = position.step, []
    pipeline_seconds, images_seen, loop_start = 0.0, 0, time.perf_counter()
    log_start, log_step = loop_start, step
    bar = progress_bar(total_steps, step, config.get("progress", True) and main_process)
    train_rows = step_lib.process_rows(mesh, config.batch_size)
    eval_metrics: dict = {}
    compiled_at, compiled_step = None, step
    try:
        for epoch in range(position.epoch, num_epochs):
            first = position.step_in_epoch if epoch == position.epoch else 0
            batches = data_lib.train_batches(
                splits.train,
                splits.normalizer,  # pyright: ignore[reportArgumentType]
                config.batch_size,
                seed=config.seed,
                epoch=epoch,
                start_step=first,
                rows=train_rows,
                crop_padding=config.augment_crop_padding,
                flip=config.augment_flip,
            )
            for index in range(first, steps_per_epoch):
                if step >= total_steps:
                    break
                t = time.perf_counter()
                batch = step_lib.shard_batch(next(batches), mesh)
                pipeline_seconds += time.perf_counter() - t
                profiler.before_step(step)
                state, metrics = train_step(state, *batch, train_rng)  # pyright: ignore[reportCallIssue]
                step += 1
                profiler.after_step(step, state)
                if compiled_at is None:  # steps/s below leaves the compilation out
                    compiled_at, compiled_step = time.perf_counter(), step
                images_seen += config.batch_size
                history.append(metrics)
                bar.update(1)
                end_of_epoch = index + 1 == steps_per_epoch
                log = step % config.log_every_steps == 0 or step == total_steps
                evaluate_now = (
                    end_of_epoch and (epoch + 1) % config.eval_every_epochs == 0
                ) or step == total_steps
                save = checkpoints.should_save(step) or step == total_steps
                if log or evaluate_now or save:  # the one host read of the device's flag
                    _raise_if_nonfinite(state, steps_per_epoch, checkpoints)
                if log:
                    now = time.perf_counter()
                    scalars = _mean_metrics(history)
                    history = []
                    rate = (step - log_step) / (now - log_start)
                    writer.write(
                        step,
                        "train",
                        {
                            **scalars,
                            "steps_per_sec": rate,
                            "images_per_sec": rate * config.batch_size,
                        },
                        epoch=epoch,
                    )
                    log_start, log_step = now, step
                    bar.set_postfix(loss=f"{scalars['loss']:.4f}")
                if evaluate_now:
                    eval_metrics = evaluate(eval_step, state, splits, config, mesh, eval_rng)
                    writer.write(step, splits.eval_split, eval_metrics, epoch=epoch)
                if save:
                    if not step_lib.state_is_finite(state):
                        checkpoints.wait()
                        raise NonFiniteLossError(
                            f"non-finite parameters or optimizer state after train step "
                            f"{step}, with finite losses and gradients (an update "
                            f"overflowed); stopped. Last good checkpoint: step "
                            f"{checkpoints.latest_step()} in {checkpoints.directory}. "
                            f"Try a lower config.learning_rate."
                        )
                    nxt = (
                        Progress(step, epoch + 1, 0)
                        if end_of_epoch
                        else Progress(step, epoch, index + 1)
                    )
                    checkpoints.save(_checkpoint_tree(state, train_rng), nxt)
        profiler.stop(state)
        _raise_if_nonfinite(state, steps_per_epoch, checkpoints)
        if not eval_metrics:  # resumed from a finished run: nothing left to train
            eval_metrics = evaluate(eval_step, state, splits, config, mesh, eval_rng)
            # The finished run wrote this record before its last checkpoint; a rerun
            # (after a kill past that point) adds no second copy.
            if not writer.has_record(step, splits.eval_split):
                writer.write(step, splits.eval_split, eval_metrics, epoch=num_epochs - 1)
        checkpoints.wait()
    finally:
        profiler.stop()
        bar.close()
        writer.close()
        checkpoints.close()

    loop_seconds = time.perf_counter() - loop_start
    final = {f"{splits.eval_split}/{k}": v for k, v in eval_metrics.items()}
    summary = {
        "step": step,
        "metrics": final,
        "train_steps_per_sec": (
            (step - compiled_step) / (time.perf_counter() - compiled_at)
            if compiled_at and step > compiled_step
            else None
        ),
        # this process builds only its rows of each global batch
        "pipeline_images_per_sec": (
            images_seen
            * (train_rows[1] - train_rows[0])
            / config.batch_size
            / max(pipeline_seconds, 1e-9)
        ),
        "train_images_per_sec": images_seen / max(loop_seconds, 1e-9),
        "num_devices": int(mesh.devices.size),
        "num_processes": jax.process_count(),
        "resumed_from_step": position.step,
    }
    if main_process:
        with replace_on_close(os.path.join(workdir, "summary.json")) as f:
            json.dump(summary, f, indent=2)
    host = jax.device_get(state)
    return TrainResult(host.params, host.batch_stats, final)
