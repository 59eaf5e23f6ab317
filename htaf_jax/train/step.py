"""The data-parallel train and eval steps: one code path for 1 or N devices.

Each step is written for one device's share of the batch and mapped with
``jax.shard_map`` over a 1-D mesh whose axis is named ``data``. Gradients,
BatchNorm statistics and metrics are averaged with ``lax.pmean``.

The gradient trap (DESIGN.md): inside shard_map the gradient of a
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

A model whose ``__call__`` takes ``step`` (``takes_step``; the ICBM, for its
sharpening schedule) is called with the number of train steps taken, in the
train step (before the update) and in the eval step.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import chex
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "data"
Metrics = dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
    step: jax.Array      # int32 (), steps taken
    params: Any
    batch_stats: Any     # {} for models without BatchNorm
    opt_state: Any


def make_mesh(num_devices: int = -1) -> Mesh:
    """A 1-D mesh named ``data`` over the first ``num_devices`` devices (-1: all).

    In a multi-process run the mesh spans every process's devices, ordered
    by process, so process p holds one contiguous block of each global batch
    (``process_rows``); ``num_devices`` must then be -1 or the global count.
    """
    devices = jax.devices()
    if num_devices > len(devices):
        raise ValueError(f"config.num_devices={num_devices} but only {len(devices)} devices "
                         f"are available")
    if jax.process_count() > 1:
        if num_devices not in (-1, len(devices)):
            raise ValueError(f"config.num_devices={num_devices}: a run over "
                             f"{jax.process_count()} processes uses all {len(devices)} "
                             f"devices; leave num_devices at -1")
        devices = sorted(devices, key=lambda d: (d.process_index, d.id))
    return Mesh(np.asarray(devices[:num_devices if num_devices > 0 else None]), (AXIS,))


def _is_key(leaf) -> bool:
    return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def replicate(tree, mesh: Mesh):
    """A copy of ``tree`` on every device of the mesh.

    Multi-process: every process passes the same values (same seed, same
    init) and each places them on its own devices; device_put accepts host
    arrays, not arrays already on one process's device, for a global sharding.
    """
    sharding = NamedSharding(mesh, P())
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def leaf(x):
        if _is_key(x):
            data = jax.device_put(np.asarray(jax.random.key_data(x)), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        return jax.device_put(np.asarray(x), sharding)
    return jax.tree.map(leaf, tree)


def process_rows(mesh: Mesh, batch_size: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of a global batch that this process's devices hold.

    ``(0, batch_size)`` on one process; ``(p·B/P, (p+1)·B/P)`` for process p
    of P on a mesh from ``make_mesh``.
    """
    indices = NamedSharding(mesh, P(AXIS)).addressable_devices_indices_map((batch_size,))
    spans = sorted((s[0].start or 0, batch_size if s[0].stop is None else s[0].stop)
                   for s in indices.values())
    if any(a[1] != b[0] for a, b in zip(spans, spans[1:])):
        raise ValueError(f"this process's devices hold non-contiguous rows {spans} of the "
                         f"batch; build the mesh with make_mesh")
    return spans[0][0], spans[-1][1]


def shard_batch(arrays, mesh: Mesh):
    """Global arrays split along the leading (batch) axis over the mesh.

    One process: ``arrays`` are the whole batch. Several: they are this
    process's rows (``process_rows``), and the global batch is P times longer.
    """
    sharding = NamedSharding(mesh, P(AXIS))
    if jax.process_count() == 1:
        return jax.device_put(arrays, sharding)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), arrays)


def init_state(model: nn.Module, tx: optax.GradientTransformation, rng: jax.Array,
               image_shape: tuple[int, ...]) -> TrainState:
    params_rng, dropout_rng, sample_rng = jax.random.split(rng, 3)
    variables = model.init({"params": params_rng, "dropout": dropout_rng, "sample": sample_rng},
                           jnp.zeros((2,) + tuple(image_shape), jnp.float32), train=False)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params))


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


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, mesh: Mesh
                    ) -> Callable[[TrainState, jax.Array, jax.Array, jax.Array],
                                  tuple[TrainState, Metrics]]:
    """``step(state, images, labels, rng) -> (state, metrics)``, jitted and chexified.

    ``images`` (B, H, W, C) float32 and ``labels`` (B,) int32 must already be
    sharded over the mesh (``shard_batch``); ``state`` and ``rng`` replicated.
    A non-finite loss or gradient raises ``NonFiniteStepError`` (an
    AssertionError) from the call that produced it.
    """
    num_devices = mesh.devices.size

    def per_device(state: TrainState, images, labels, rng):
        step_kwargs = _step_kwargs(model, state.step)
        chex.assert_rank(images, 4)
        chex.assert_shape(labels, (images.shape[0],))
        chex.assert_type([images, labels], [jnp.float32, jnp.int32])
        rngs = _step_rngs(rng, state.step)
        varying_params = lax.pcast(state.params, AXIS, to="varying")

        def loss_fn(params):
            logits, updates = model.apply(
                _variables(params, state.batch_stats), images, train=True, rngs=rngs,
                mutable=["batch_stats", "intermediates"], **step_kwargs)
            chex.assert_shape(logits, (images.shape[0], None))
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            return loss, (logits, updates)

        (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            varying_params)
        grads = lax.pmean(grads, AXIS)
        loss = lax.pmean(loss, AXIS)
        # Both are averaged over the mesh, so every device computes the same
        # flag: a replicated scalar the host reads from its own shard.
        finite = jnp.isfinite(loss) & jnp.all(jnp.stack(
            [jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)]))
        param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, param_updates)
        batch_stats = lax.pmean(updates.get("batch_stats", {}), AXIS)
        metrics = {"loss": loss,
                   "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels),
                   "grad_norm": optax.tree.norm(grads),
                   **sown_metrics(updates.get("intermediates", {}))}
        metrics = {k: lax.pmean(v, AXIS) if k != "loss" else v for k, v in metrics.items()}
        new_state = state.replace(step=state.step + 1, params=params,
                                  batch_stats=batch_stats, opt_state=opt_state)
        return new_state, metrics, finite

    mapped = jax.jit(jax.shard_map(per_device, mesh=mesh,
                                   in_specs=(P(), P(AXIS), P(AXIS), P()),
                                   out_specs=(P(), P(), P())))

    # Synchronous check: a NaN is reported by the call that produced it, so the
    # error can name the step, and a NaN state is never checkpointed. Not
    # chex.chexify: its error reduction runs eager ops on the per-device error
    # arrays, which are global arrays in a multi-process run, and two processes
    # deadlocked there (gloo, CPU, under load). Reading the replicated flag
    # from a local shard needs no cross-process work.
    def step(state, images, labels, rng):
        new_state, metrics, finite = mapped(state, images, labels, rng)
        if not bool(np.asarray(finite.addressable_data(0))):
            raise NonFiniteStepError("non-finite loss or gradient in the train step "
                                     "(the state before this step is unchanged)")
        return new_state, metrics

    step.num_devices = num_devices  # type: ignore[attr-defined]
    return step


class NonFiniteStepError(AssertionError):
    """The train step produced a NaN/inf loss or gradient."""


def make_eval_step(model: nn.Module, mesh: Mesh
                   ) -> Callable[[TrainState, jax.Array, jax.Array, jax.Array, jax.Array],
                                 Metrics]:
    """``eval_step(state, images, labels, mask, rng) -> {'loss_sum','correct','count'}``.

    Sums over the examples whose mask is 1, so padded batches count each real
    example once; divide by ``count`` after summing over batches.
    """
    def per_device(state: TrainState, images, labels, mask, rng):
        rngs = _step_rngs(rng, jnp.zeros((), jnp.int32))
        logits = model.apply(_variables(state.params, state.batch_stats), images,
                             train=False, rngs=rngs, **_step_kwargs(model, state.step))
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        sums = {"loss_sum": jnp.sum(loss * mask), "correct": jnp.sum(correct * mask),
                "count": jnp.sum(mask)}
        return {k: lax.psum(v, AXIS) for k, v in sums.items()}

    return jax.jit(jax.shard_map(per_device, mesh=mesh,
                                 in_specs=(P(), P(AXIS), P(AXIS), P(AXIS), P()), out_specs=P()))
