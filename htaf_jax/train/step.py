"""The data-parallel train and eval steps: one code path for 1 or N devices.

Each step is written for one device's share of the batch and mapped with
``jax.shard_map`` over a 1-D mesh whose axis is named ``data``. Gradients,
BatchNorm statistics and metrics are averaged with ``lax.pmean``.

The gradient trap: inside shard_map the gradient of a
*replicated* parameter w.r.t. a per-device loss already comes out summed over
devices, so pmean on top of it gives N× the single-device gradient. The
parameters are therefore cast to device-varying first (``lax.pcast``), which
makes each device's gradient its own, and then pmean'd.

BatchNorm: models call BatchNorm without an axis name, so in the forward pass
each device normalises with its own share of the batch (as with ghost batch
norm), and the new running statistics are pmean'd after the update. Runs
with BatchNorm or with rngs (dropout, stochastic encoders; the key is folded
with the step and the device index) therefore equal the single-device run in
distribution only; deterministic models without BatchNorm equal it to float32
rounding (tests/test_train_step.py).

Values a model sows into the ``losses`` collection are added to the training
loss (the ICBM's concept on-rate penalty and head L1); evaluation reports the
cross-entropy alone.

A model whose ``__call__`` takes ``step`` (``takes_step``; the ICBM, for its
sharpening schedule) is called with the number of train steps taken, in the
train step (before the update) and in the eval step.

Non-finite steps are caught on the device, not by the host after every step
(a host read per step serialises dispatch on a GPU or TPU): a step whose loss,
gradient or new state is NaN/inf keeps the state it was given and records its
1-based index in ``TrainState.first_nonfinite_step``; every later step then
keeps the state too. The loop reads that one scalar where it reads metrics or
saves a checkpoint (``first_nonfinite_step``), so steps run ahead of the host
and a non-finite state never reaches a checkpoint.

The train state is donated to the jitted step (its buffers are reused for the
new state, so one copy of parameters and optimizer state lives on the device,
not two): the state passed in is deleted by the call and must not be read
again. Mixed precision (``compute_dtype=jnp.bfloat16``, ``config.half_precision``)
casts the parameters and images to bfloat16 inside the loss and the logits
back to float32, as Flax's ImageNet example runs a bfloat16 model on float32
parameters: parameters, optimizer state, loss and BatchNorm statistics stay
float32 (Flax's BatchNorm reduces in float32 and keeps its statistics in
``param_dtype``), and no model needs a change.
"""

from __future__ import annotations

import collections
import inspect
from typing import Any, Callable

import chex
import flax
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from htaf_jax.bop import bop_states, flip_ratio

# Placing the state and the batches on the mesh the step runs over (re-exported here,
# where a step's callers look for them).
from htaf_jax.train.distributed import AXIS, make_mesh, process_rows, replicate, shard_batch  # noqa: F401

Metrics = dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 (), steps applied (frozen from the first non-finite step on)
    params: Any
    batch_stats: Any  # {} for models without BatchNorm
    opt_state: Any
    first_nonfinite_step: jax.Array  # int32 (), 0, or the 1-based index of the first bad step


def init_variables(model: nn.Module, rng: jax.Array, input_shape: tuple[int, ...]) -> Any:
    """``model.init`` with the engine's rng streams, on a batch of two zero inputs."""
    params_rng, dropout_rng, sample_rng = jax.random.split(rng, 3)
    rngs = {"params": params_rng, "dropout": dropout_rng, "sample": sample_rng}
    return model.init(rngs, jnp.zeros((2,) + tuple(input_shape), jnp.float32), train=False)


def init_state(
    model: nn.Module, tx: optax.GradientTransformation, rng: jax.Array, image_shape: tuple[int, ...]
) -> TrainState:
    # One jitted program: eagerly, every op of every initializer compiles on its own
    # (seconds for a small network on a CPU).
    @jax.jit
    def init(rng):
        variables = init_variables(model, rng, image_shape)
        params = variables["params"]
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats=variables.get("batch_stats", {}),
            opt_state=tx.init(params),
            first_nonfinite_step=jnp.zeros((), jnp.int32),
        )

    return init(rng)


def first_nonfinite_step(state: TrainState) -> int | None:
    """The 1-based index of the first train step that was non-finite, or None.

    Reads one replicated scalar from a local shard (no cross-process work), so
    it waits for the steps dispatched so far: call it at logging and
    checkpoint boundaries, not after every step.
    """
    return int(_local(state.first_nonfinite_step)) or None


def _local(flag) -> np.ndarray:
    """A replicated scalar read from a local shard (no cross-process work)."""
    return np.asarray(flag.addressable_data(0) if hasattr(flag, "addressable_data") else flag)


@jax.jit
def _state_is_finite(state: TrainState) -> jax.Array:
    return _all_finite(state.params, state.batch_stats, state.opt_state)


def state_is_finite(state: TrainState) -> bool:
    """Whether every parameter, BatchNorm statistic and optimizer-state entry is finite:
    the check before a checkpoint for an update that overflowed from finite gradients."""
    return bool(_local(_state_is_finite(state)))


def cast_floating(tree, dtype):
    """``tree`` with its floating-point leaves cast to ``dtype`` (integers, keys kept)."""
    floating = lambda x: hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)  # noqa: E731
    return jax.tree.map(lambda x: x.astype(dtype) if floating(x) else x, tree)


def _all_finite(*trees) -> jax.Array:
    leaves = [x for t in trees for x in jax.tree.leaves(t) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _variables(params, batch_stats) -> dict:
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def takes_step(model: nn.Module) -> bool:
    """Whether ``model.__call__`` takes ``step`` (the train steps taken so far, e.g. for
    the ICBM's sharpening schedule); the train and eval steps then pass it."""
    return "step" in inspect.signature(type(model).__call__).parameters


def _step_kwargs(model: nn.Module, step: jax.Array) -> dict:
    return {"step": step} if takes_step(model) else {}


def sown_metrics(intermediates, prefix: str = "") -> Metrics:
    """Flattens sown leaves into {'spike_rate/layer1': scalar mean}."""
    out: Metrics = {}
    for key, value in intermediates.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) or hasattr(value, "items"):
            out.update(sown_metrics(value, name + "/"))
        else:  # sow keeps a tuple of every value sown under the name
            out[name] = jnp.mean(jnp.stack([jnp.mean(v.astype(jnp.float32)) for v in value]))
    return out


def _step_rngs(rng: jax.Array, step: jax.Array) -> dict[str, jax.Array]:
    rng = jax.random.fold_in(jax.random.fold_in(rng, step), lax.axis_index(AXIS))
    dropout_rng, sample_rng = jax.random.split(rng)
    return {"dropout": dropout_rng, "sample": sample_rng}


# Train steps the host may dispatch ahead of the devices (see make_train_step).
MAX_IN_FLIGHT = 4


def make_train_step(
    model: nn.Module,
    tx: optax.GradientTransformation,
    mesh: Mesh,
    *,
    compute_dtype=None,
    donate: bool = True,
    check_every_step: bool = False,
) -> Callable[[TrainState, jax.Array, jax.Array, jax.Array], tuple[TrainState, Metrics]]:
    """``step(state, images, labels, rng) -> (state, metrics)``, jitted, chex-checked.

    ``images`` (B, H, W, C) float32 and ``labels`` (B,) int32 must already be
    sharded over the mesh (``shard_batch``); ``state`` and ``rng`` replicated.

    Args:
      compute_dtype: None (float32 throughout) or e.g. ``jnp.bfloat16``: the
        dtype of the forward and backward pass (see the module docstring).
      donate: donate ``state`` to the step (its buffers become the new
        state's; the state passed in is deleted). False keeps it readable.
      check_every_step: read the non-finite flag on the host after every step
        and raise ``NonFiniteStepError`` at once. It waits for each step to
        finish, so it stalls an accelerator: for debugging and the benchmark
        that measures that stall. Default: the caller checks
        ``first_nonfinite_step`` at its own boundaries.
    """
    num_devices = mesh.devices.size

    def train_step(state: TrainState, images, labels, rng):  # the name profiles show
        step_kwargs = _step_kwargs(model, state.step)
        chex.assert_rank(images, {3, 4})  # (B, H, W, C) images or (B, T, C) event frames
        chex.assert_shape(labels, (images.shape[0],))
        chex.assert_type([images, labels], [jnp.float32, jnp.int32])
        rngs = _step_rngs(rng, state.step)
        varying_params = lax.pcast(state.params, AXIS, to="varying")
        inputs = images if compute_dtype is None else images.astype(compute_dtype)

        def loss_fn(params):
            if compute_dtype is not None:  # the cast's transpose brings float32 gradients back
                params = cast_floating(params, compute_dtype)
            logits, updates = model.apply(
                _variables(params, state.batch_stats),
                inputs,
                train=True,
                rngs=rngs,
                mutable=["batch_stats", "intermediates", "losses"],
                **step_kwargs,
            )
            chex.assert_shape(logits, (images.shape[0], None))
            logits = logits.astype(jnp.float32)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            # Penalties a model sows into "losses" (the ICBM's on-rate and head L1).
            sown = sum(
                (
                    jnp.sum(x.astype(jnp.float32))
                    for x in jax.tree.leaves(updates.get("losses", {}))
                ),
                jnp.float32(0),
            )
            return loss + sown, (logits, updates)

        (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(varying_params)
        grads = lax.pmean(grads, AXIS)
        loss = lax.pmean(loss, AXIS)
        batch_stats = lax.pmean(updates.get("batch_stats", {}), AXIS)
        metrics = {
            "loss": loss,
            "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels),
            "grad_norm": optax.tree.norm(grads),
            **sown_metrics(updates.get("intermediates", {})),
        }
        metrics = {k: lax.pmean(v, AXIS) if k != "loss" else v for k, v in metrics.items()}

        # Every input of the flag is averaged over the mesh, so every device
        # computes the same value. Once a step is bad, the state stays as it
        # was before it: the steps the host has already queued change nothing.
        # The flag reads the loss, gradients and BatchNorm statistics, so it is
        # known before the update, and the update runs inside a cond: XLA then
        # writes it into the donated buffers (a select between the new and the
        # old state, or a flag over the new state, holds a second copy of it).
        # An update that overflows from finite gradients is caught before a
        # checkpoint by ``state_is_finite``.
        finite = jnp.isfinite(loss) & _all_finite(grads, batch_stats)
        apply = finite & (state.first_nonfinite_step == 0)

        def update(state):
            param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
            stats = jax.tree.map(lambda n, o: n.astype(o.dtype), batch_stats, state.batch_stats)
            return optax.apply_updates(state.params, param_updates), stats, opt_state

        params, new_stats, opt_state = lax.cond(
            apply, update, lambda s: (s.params, s.batch_stats, s.opt_state), state
        )
        if bop_states(opt_state):  # Larq's FlipRatio: the binary weights this update flipped
            metrics["flip_ratio"] = jnp.where(apply, flip_ratio(opt_state), 0.0)
        first_bad = jnp.where(
            apply | (state.first_nonfinite_step > 0), state.first_nonfinite_step, state.step + 1
        )
        new_state = TrainState(
            step=jnp.where(apply, state.step + 1, state.step),
            params=params,
            batch_stats=new_stats,
            opt_state=opt_state,
            first_nonfinite_step=first_bad.astype(jnp.int32),
        )
        return new_state, metrics

    mapped = jax.jit(
        jax.shard_map(
            train_step, mesh=mesh, in_specs=(P(), P(AXIS), P(AXIS), P()), out_specs=(P(), P())
        ),
        donate_argnums=(0,) if donate else (),
    )

    in_flight: collections.deque = collections.deque()

    def step(state, images, labels, rng):
        new_state, metrics = mapped(state, images, labels, rng)
        # At most MAX_IN_FLIGHT steps queued ahead of the host: waiting (not reading)
        # on an older step's loss keeps the device busy, while an unbounded queue of
        # collectives deadlocked XLA's CPU runtime on 8 faked devices (a rendezvous
        # timed out with 7 of 8 participants after ~100 queued steps).
        in_flight.append(metrics["loss"])
        if len(in_flight) > MAX_IN_FLIGHT:
            in_flight.popleft().block_until_ready()
        if check_every_step:
            # Not chex.chexify: its error reduction runs eager ops on the
            # per-device error arrays, which are global arrays in a
            # multi-process run, and two processes deadlocked there (gloo, CPU).
            bad = first_nonfinite_step(new_state)
            if bad is not None:
                raise NonFiniteStepError(
                    f"non-finite loss, gradient or state in train step "
                    f"{bad} (the state before it is kept)"
                )
        return new_state, metrics

    step.num_devices = num_devices  # type: ignore[attr-defined]
    step.jitted = mapped  # type: ignore[attr-defined]  # for .lower(...).compile() analyses
    return step


class NonFiniteStepError(AssertionError):
    """A train step made with ``check_every_step=True`` produced a NaN/inf loss,
    gradient or state."""


def make_eval_step(
    model: nn.Module, mesh: Mesh, *, compute_dtype=None
) -> Callable[[TrainState, jax.Array, jax.Array, jax.Array, jax.Array], Metrics]:
    """``eval_step(state, images, labels, mask, rng) -> {'loss_sum','correct','count'}``.

    Sums over the examples whose mask is 1, so padded batches count each real
    example once; divide by ``count`` after summing over batches.
    ``compute_dtype`` as in ``make_train_step``; the sums are float32.
    """

    def eval_step(state: TrainState, images, labels, mask, rng):
        rngs = _step_rngs(rng, jnp.zeros((), jnp.int32))
        params = state.params
        if compute_dtype is not None:
            params, images = cast_floating(params, compute_dtype), images.astype(compute_dtype)
        logits = model.apply(
            _variables(params, state.batch_stats),
            images,
            train=False,
            rngs=rngs,
            **_step_kwargs(model, state.step),
        )
        logits = logits.astype(jnp.float32)  # pyright: ignore[reportAttributeAccessIssue]
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        sums = {
            "loss_sum": jnp.sum(loss * mask),
            "correct": jnp.sum(correct * mask),
            "count": jnp.sum(mask),
        }
        return {k: lax.psum(v, AXIS) for k, v in sums.items()}

    return jax.jit(
        jax.shard_map(
            eval_step, mesh=mesh, in_specs=(P(), P(AXIS), P(AXIS), P(AXIS), P()), out_specs=P()
        )
    )
