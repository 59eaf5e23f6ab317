"""The data-parallel step: 1 device vs 8 faked CPU devices, finiteness checks, eval counting."""

import chex
import jax
import ml_collections
import numpy as np
import optax
import pytest

from htaf_jax.models import build_model
from htaf_jax.train import step as step_lib

pytestmark = pytest.mark.eight_devices  # every test here runs on 8 fake devices


def _model(**kw):
    return build_model(
        ml_collections.ConfigDict(dict(name="mlp", hidden_sizes=(16,), num_classes=10, **kw))
    )


def _batches(n_steps, batch=32, seed=0):
    """Cycles through 4 fixed random batches, so the loss can go down."""
    rng = np.random.default_rng(seed)
    data = [
        (
            rng.normal(size=(batch, 28, 28, 1)).astype(np.float32),
            rng.integers(0, 10, size=batch).astype(np.int32),
        )
        for _ in range(4)
    ]
    for i in range(n_steps):
        yield tuple(a.copy() for a in data[i % 4])


def _train(num_devices, n_steps=20, lr=0.05, **model_kw):
    model = _model(**model_kw)
    mesh = step_lib.make_mesh(num_devices)
    tx = optax.sgd(lr, momentum=0.9)
    state = step_lib.replicate(step_lib.init_state(model, tx, jax.random.key(0), (28, 28, 1)), mesh)
    train_step = step_lib.make_train_step(model, tx, mesh)
    rng = step_lib.replicate(jax.random.key(1), mesh)
    losses = []
    for images, labels in _batches(n_steps):
        state, metrics = train_step(state, *step_lib.shard_batch((images, labels), mesh), rng)
        losses.append(float(metrics["loss"]))
    return jax.device_get(state), losses


def test_eight_devices_equal_one_device():
    assert jax.device_count() == 8
    state1, losses1 = _train(1)
    state8, losses8 = _train(8)
    assert int(state8.step) == 20
    # Catches the shard_map+pmean trap: an 8x gradient diverges within a step or two.
    chex.assert_trees_all_close(state8.params, state1.params, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(losses8, losses1, rtol=1e-4)
    assert losses1[-1] < losses1[0]


def test_batch_stats_are_averaged_and_replicated():
    state8, _ = _train(8, n_steps=3, batch_norm=True)
    stats = state8.batch_stats["bn0"]
    assert set(stats) == {"mean", "var"}
    assert np.all(np.isfinite(stats["mean"])) and np.any(stats["mean"] != 0)
    # Averaged per-device statistics of the same data are close to the 1-device ones.
    state1, _ = _train(1, n_steps=3, batch_norm=True)
    np.testing.assert_allclose(stats["mean"], state1.batch_stats["bn0"]["mean"], atol=0.05)


def test_sown_intermediates_become_metrics():
    model = _model()
    mesh = step_lib.make_mesh(8)
    tx = optax.adam(1e-3)
    state = step_lib.replicate(step_lib.init_state(model, tx, jax.random.key(0), (28, 28, 1)), mesh)
    images, labels = next(_batches(1))
    params = jax.device_get(state.params)  # before the step takes (donates) the state
    _, metrics = step_lib.make_train_step(model, tx, mesh)(
        state, *step_lib.shard_batch((images, labels), mesh), jax.random.key(0)
    )
    assert set(metrics) == {"loss", "accuracy", "grad_norm", "active_fraction/layer0"}
    # The share of the hidden ReLUs on over the whole batch (the 8 devices' means of
    # equal shards, averaged), from the step's parameters by hand.
    flat = images.reshape(len(images), -1).astype(np.float64)
    dense = params["dense0"]
    hidden = flat @ np.asarray(dense["kernel"], np.float64) + np.asarray(dense["bias"])
    want = float(np.mean(hidden > 0))
    assert 0.0 < want < 1.0
    assert float(metrics["active_fraction/layer0"]) == pytest.approx(want, abs=1e-6)


def _nan_run(check_every_step, bad_step=3, n_steps=5):
    """Steps 1..n_steps of SGD on 8 devices, a NaN in one image of step ``bad_step``."""
    model = _model()
    mesh = step_lib.make_mesh(8)
    tx = optax.sgd(1e-2)
    state = step_lib.replicate(step_lib.init_state(model, tx, jax.random.key(0), (28, 28, 1)), mesh)
    train_step = step_lib.make_train_step(model, tx, mesh, check_every_step=check_every_step)
    good = None
    for i, (images, labels) in enumerate(_batches(n_steps), start=1):
        if i == bad_step:
            images[3, 0, 0, 0] = np.nan
            good = jax.device_get(state.params)  # before the state is donated to the bad step
        state, _ = train_step(
            state, *step_lib.shard_batch((images, labels), mesh), jax.random.key(0)
        )
    return state, good


def test_non_finite_step_freezes_the_state_on_the_device_and_names_the_step():
    state, good = _nan_run(check_every_step=False)
    # No host read happened: the steps after the bad one ran, and changed nothing.
    assert step_lib.first_nonfinite_step(state) == 3
    assert int(state.step) == 2
    chex.assert_trees_all_equal(jax.device_get(state.params), good)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(jax.device_get(state)))


def test_check_every_step_raises_from_the_step_that_went_non_finite():
    with pytest.raises(step_lib.NonFiniteStepError, match="non-finite .* in train step 3 "):
        _nan_run(check_every_step=True)
    state, _ = _nan_run(check_every_step=True, bad_step=99)
    assert step_lib.first_nonfinite_step(state) is None and int(state.step) == 5


def test_eval_step_counts_every_example_once():
    from htaf_jax.data import Normalizer, eval_batches
    from htaf_jax.data.sources import ArraySplit

    n = 37  # not a multiple of the batch size, nor of 8 devices
    rng = np.random.default_rng(0)
    split = ArraySplit(
        rng.integers(0, 256, (n, 28, 28, 1)).astype(np.uint8),
        rng.integers(0, 10, n).astype(np.int32),
    )
    normalizer = Normalizer.fit(split.images)
    model = _model()
    mesh = step_lib.make_mesh(8)
    state = step_lib.replicate(
        step_lib.init_state(model, optax.sgd(0.1), jax.random.key(0), (28, 28, 1)), mesh
    )
    eval_step = step_lib.make_eval_step(model, mesh)
    totals = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
    for images, labels, mask in eval_batches(split, normalizer, 16):
        out = eval_step(
            state, *step_lib.shard_batch((images, labels, mask), mesh), jax.random.key(0)
        )
        totals = {k: totals[k] + float(v) for k, v in out.items()}
    assert totals["count"] == n
    logits = model.apply({"params": state.params}, normalizer(split.images))
    want_correct = int(np.sum(np.argmax(logits, -1) == split.labels))
    want_loss = float(optax.softmax_cross_entropy_with_integer_labels(logits, split.labels).sum())
    assert totals["correct"] == want_correct
    np.testing.assert_allclose(totals["loss_sum"], want_loss, rtol=1e-5)


def test_models_that_take_a_step_are_given_the_train_step():
    import flax.linen as nn
    import jax.numpy as jnp

    class StepReader(nn.Module):
        @nn.compact
        def __call__(self, images, train=False, step=None):
            seen = -1 if step is None else step  # init_state calls it without one
            self.sow("intermediates", "seen_step", jnp.asarray(seen, jnp.float32))
            return nn.Dense(10)(images.reshape(images.shape[0], -1))

    assert step_lib.takes_step(StepReader()) and not step_lib.takes_step(_model())
    model, mesh, tx = StepReader(), step_lib.make_mesh(8), optax.sgd(0.01)
    state = step_lib.replicate(step_lib.init_state(model, tx, jax.random.key(0), (28, 28, 1)), mesh)
    train_step = step_lib.make_train_step(model, tx, mesh)
    rng = step_lib.replicate(jax.random.key(1), mesh)
    seen = []
    for images, labels in _batches(3):
        state, metrics = train_step(state, *step_lib.shard_batch((images, labels), mesh), rng)
        seen.append(float(metrics["seen_step"]))
    assert seen == [0.0, 1.0, 2.0]  # the steps taken before each update


def test_sown_losses_are_added_to_the_training_loss():
    import flax.linen as nn
    import jax.numpy as jnp

    class Penalised(nn.Module):
        @nn.compact
        def __call__(self, images, train=False):
            dense = nn.Dense(10, name="dense")
            logits = dense(images.reshape(images.shape[0], -1))
            self.sow("losses", "l2", 0.5 * jnp.sum(dense.variables["params"]["kernel"] ** 2))
            return logits

    model, mesh, tx = Penalised(), step_lib.make_mesh(8), optax.sgd(1.0)
    state = step_lib.init_state(model, tx, jax.random.key(0), (28, 28, 1))
    before = jax.device_get(state.params)
    images, labels = next(_batches(1))
    state, rng = step_lib.replicate((state, jax.random.key(1)), mesh)
    state, metrics = step_lib.make_train_step(model, tx, mesh)(
        state, *step_lib.shard_batch((images, labels), mesh), rng
    )

    def loss(p):  # cross-entropy plus the penalty, outside the engine
        logits = model.apply({"params": p}, images)
        return optax.softmax_cross_entropy_with_integer_labels(
            logits, labels
        ).mean() + 0.5 * jnp.sum(p["dense"]["kernel"] ** 2)

    np.testing.assert_allclose(float(metrics["loss"]), float(loss(before)), rtol=1e-5)
    applied = jax.tree.map(lambda b, a: b - a, before, jax.device_get(state.params))
    chex.assert_trees_all_close(applied, jax.grad(loss)(before), rtol=1e-4, atol=1e-6)
