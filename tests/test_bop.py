"""Bop against Larq's update written out in numpy, and combined with Adam."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from htaf_jax.bop import binary_labels, bop, bop_states, bop_with, flip_ratio


def larq_bop_reference(w, grads, threshold, gamma):
    """Larq's Bop._resource_apply_dense, step by step (tf.sign(0) = 0, lq sign(0) = +1)."""
    m = np.zeros_like(w)
    out = []
    for g in grads:
        m = m + gamma * (g - m)
        inner = -np.sign(w * m - threshold) * w
        w = np.where(inner >= 0, 1.0, -1.0)
        out.append(w.copy())
    return out


def test_bop_matches_larq_update_step_by_step():
    rng = np.random.default_rng(0)
    w0 = np.where(rng.normal(size=(6, 5)) >= 0, 1.0, -1.0).astype(np.float32)
    grads = [rng.normal(size=w0.shape).astype(np.float32) * 1e-3 for _ in range(12)]
    threshold, gamma = 2e-5, 0.05
    tx = bop(threshold, gamma)
    params, state = jnp.asarray(w0), tx.init(jnp.asarray(w0))
    expected = larq_bop_reference(w0.astype(np.float64), grads, threshold, gamma)
    step = jax.jit(tx.update)
    flips = 0
    for g, want in zip(grads, expected):
        updates, state = step(jnp.asarray(g), state, params)
        new = optax.apply_updates(params, updates)
        flips += int(state.flipped)
        assert int(state.flipped) == int(np.sum(np.asarray(params) != np.asarray(new)))
        params = new
        np.testing.assert_array_equal(np.asarray(params), want)
    assert flips > 0  # the case exercises flips, not only holds


def test_flip_rule_and_first_update_binarises():
    # w·m > τ flips; w·m ≤ τ keeps; a real-valued initial weight becomes its sign.
    w = jnp.array([1.0, 1.0, -1.0, -1.0, 0.3, -0.2])
    g = jnp.array([1.0, -1.0, -1.0, 1.0, 0.0, 0.0])
    tx = bop(threshold=0.05, gamma=0.1)  # m = 0.1·g, |w·m| = 0.1 > τ where g ≠ 0
    updates, state = tx.update(g, tx.init(w), w)
    np.testing.assert_array_equal(optax.apply_updates(w, updates), [-1, 1, 1, -1, 1, -1])
    assert int(state.flipped) == 2 and float(flip_ratio(state)) == pytest.approx(2 / 6)
    # the rule reads the product w·m, not the ratio: m = 2 flips, m = 0.5 keeps (τ = 1)
    w, g = jnp.array([1.0, 1.0]), jnp.array([2.0, 0.5])
    tx = bop(threshold=1.0, gamma=1.0)
    updates, _ = tx.update(g, tx.init(w), w)
    np.testing.assert_array_equal(optax.apply_updates(w, updates), [-1, 1])


def test_bop_with_adam_trains_binary_and_real_parameters():
    """A ±1-weight linear layer + real bias learns a separable problem: Bop flips the
    binary kernel, Adam moves the bias; the kernel stays exactly ±1."""
    key = jax.random.key(0)
    x = jax.random.normal(key, (256, 8))
    w_true = jnp.array([1, -1, 1, 1, -1, -1, 1, -1], jnp.float32)
    y = (x @ w_true > 0).astype(jnp.float32)
    params = {"dense": {"latent_kernel": jnp.ones(8), "bias": jnp.zeros(())}}
    assert binary_labels(params) == {"dense": {"latent_kernel": "binary", "bias": "real"}}
    tx = bop_with(optax.adam(1e-2), threshold=1e-4, gamma=1e-1)
    state = tx.init(params)

    def loss(p):
        logits = x @ p["dense"]["latent_kernel"] + p["dense"]["bias"]
        return optax.sigmoid_binary_cross_entropy(logits, y).mean()

    @jax.jit
    def step(p, s):
        loss_value, g = jax.value_and_grad(loss)(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, loss_value

    first = None
    for _ in range(60):
        params, state, loss_value = step(params, state)
        first = first if first is not None else float(loss_value)
    kernel = np.asarray(params["dense"]["latent_kernel"])
    assert set(np.unique(kernel)) <= {-1.0, 1.0}
    np.testing.assert_array_equal(kernel, np.asarray(w_true))
    assert float(loss_value) < 0.5 * first


def test_flip_ratio_without_bop_state_is_an_error():
    with pytest.raises(ValueError, match="no Bop state"):
        flip_ratio(optax.adam(1e-3).init({"w": jnp.zeros(2)}))


def test_the_engine_trains_with_bop_and_logs_the_flips_it_made():
    """``config.optimizer = "bop"``: the binary layers' latent kernels become ±1 and move
    only by flips, the rest by Adam, and the step's ``flip_ratio`` is the share of binary
    weights whose sign that step changed, counted here by hand."""
    import ml_collections

    from htaf_jax.models import build_model
    from htaf_jax.train import step as step_lib
    from htaf_jax.train.optim import make_optimizer

    config = ml_collections.ConfigDict(
        dict(
            optimizer="bop",
            bop_threshold=0.0,
            bop_gamma=0.5,
            learning_rate=1e-3,
            warmup_steps=0,
            schedule="constant",
            model=dict(name="bnn_mlp", hidden=(32,), surrogate="htaf"),
        )
    )
    model = build_model(config.model, num_classes=10)
    tx, mesh = make_optimizer(config, 10), step_lib.make_mesh(1)
    state, rng = step_lib.replicate(
        (step_lib.init_state(model, tx, jax.random.key(0), (28, 28, 1)), jax.random.key(1)), mesh
    )
    rows = np.random.default_rng(0)
    batch = step_lib.shard_batch(
        (
            rows.normal(size=(32, 28, 28, 1)).astype(np.float32),
            rows.integers(0, 10, 32).astype(np.int32),
        ),
        mesh,
    )
    train_step = step_lib.make_train_step(model, tx, mesh, donate=False)
    labels = binary_labels(state.params)
    binary = lambda p: [
        w
        for w, lab in zip(jax.tree.leaves(p), jax.tree.leaves(labels))  # noqa
        if lab == "binary"
    ]
    assert binary(state.params), "the model has latent kernels for Bop"
    state1, _ = train_step(state, *batch, rng)
    state2, metrics = train_step(state1, *batch, jax.random.key(2))
    before, after = binary(jax.device_get(state1.params)), binary(jax.device_get(state2.params))
    # ±1 up to the last bit (the first update's w + (sign(w) − w) rounds)
    assert all(np.allclose(np.abs(w), 1.0, rtol=0, atol=1e-6) for w in before + after)
    flips = sum(int(np.sum(np.sign(a) != np.sign(b))) for a, b in zip(before, after))
    count = sum(w.size for w in before)
    assert flips > 0
    np.testing.assert_allclose(float(metrics["flip_ratio"]), flips / count, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown optimizer 'lamb'; valid: adam, adamw, sgd, bop"):
        make_optimizer(ml_collections.ConfigDict({**config.to_dict(), "optimizer": "lamb"}), 10)


@pytest.mark.parametrize("combined", [False, True], ids=["bop", "bop_with"])
def test_defaults_zero_weights_and_tiny_momentum(combined):
    """Larq's defaults γ = 1e-4, τ = 1e-8, in ``bop`` and in ``bop_with``: m = 1e-4·g
    after one step, and w flips iff w·m > 1e-8; a zero weight becomes +1 (sign(0) = +1)
    and is not counted as a flip."""
    w = {"latent_kernel": jnp.array([1.0, 1.0, -1.0, 0.0, 1.0])}
    # w·m: 5e-9 (keeps), 2e-8 (flips) ×2
    g = {"latent_kernel": jnp.array([5e-5, 2e-4, -2e-4, 1.0, 1e-9])}
    tx = bop_with(optax.sgd(0.0)) if combined else bop()
    updates, opt_state = tx.update(g, tx.init(w), w)
    (state,) = bop_states(opt_state)
    np.testing.assert_allclose(
        state.momentum["latent_kernel"], 1e-4 * np.asarray(g["latent_kernel"]), rtol=1e-6
    )
    # The last weight: w·m = 1e-13 < τ keeps it (w/m would be 1e13: the product is w·m).
    new = optax.apply_updates(w, updates)["latent_kernel"]
    np.testing.assert_array_equal(new, [1, -1, 1, 1, 1])
    assert int(state.flipped) == 2 and int(state.count) == 5


def test_labels_read_the_last_path_entry_and_flip_ratio_edge_cases():
    params = {"a": {"b": {"latent_kernel": jnp.ones(3), "bias": jnp.ones(2)}}}
    assert binary_labels(params) == {"a": {"b": {"latent_kernel": "binary", "bias": "real"}}}
    tx = bop_with(optax.sgd(0.1))
    state = tx.init({"bias": jnp.ones(2)})  # no binary weight at all
    assert float(flip_ratio(state)) == 0.0
    w = {"latent_kernel": jnp.ones(1)}
    tx = bop(threshold=0.0, gamma=1.0)
    _, state = tx.update({"latent_kernel": jnp.ones(1)}, tx.init(w), w)
    assert int(state.flipped) == 1 and float(flip_ratio(state)) == 1.0


def test_bop_with_trains_an_nnx_model_through_nnx_optimizer():
    """nnx.Optimizer initialises its state from Params (pytree nodes) and updates it
    with arrays: Bop must label the binary kernel the same both times. After one step
    from random latent weights, the kernel is exactly ±1, moved by Bop's rule (flips
    counted), while Adam moved the real head; bop_with's defaults are Larq's."""
    from flax import nnx

    import htaf_jax.nnx as hnn

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.fc1 = hnn.BinaryDense(8, 16, rngs=rngs)
            self.head = nnx.Linear(16, 3, rngs=rngs)

        def __call__(self, x):
            return self.head(self.fc1(x))

    model = Net(nnx.Rngs(0))
    head_before = np.asarray(model.head.kernel[...])
    x = jax.random.normal(jax.random.key(1), (32, 8))
    y = jnp.arange(32) % 3
    tx = bop_with(optax.adam(1e-2), threshold=0.0, gamma=1.0)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    grads = nnx.grad(lambda m: optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean())(
        model
    )
    optimizer.update(model, grads)
    kernel = np.asarray(model.fc1.latent_kernel[...])
    # ±1 up to float32 rounding: optax's updates are additive (w + (±1 − w)).
    np.testing.assert_allclose(np.abs(kernel), 1.0, atol=1e-6)
    assert 0 < float(flip_ratio(optimizer.opt_state)) <= 1
    assert not np.allclose(model.head.kernel[...], head_before)
    # bop_with's own defaults: Larq's τ = 1e-8, γ = 1e-4 (the label keys route them).
    inner = bop_with(optax.sgd(0.0))
    w, g = jnp.array([1.0, -1.0]), jnp.array([2e-4, 0.0])  # m = γ·g = 2e-8 > τ flips w[0]
    params = {"l": {"latent_kernel": w}}
    updates, _ = inner.update({"l": {"latent_kernel": g}}, inner.init(params), params)
    np.testing.assert_array_equal(
        optax.apply_updates(params, updates)["l"]["latent_kernel"], [-1.0, -1.0]
    )
