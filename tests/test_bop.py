"""Bop against Larq's update written out in numpy, and combined with Adam."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from htaf_jax.bop import binary_labels, bop, bop_with, flip_ratio


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
    config = ml_collections.ConfigDict(dict(
        optimizer="bop", bop_threshold=0.0, bop_gamma=0.5, learning_rate=1e-3,
        warmup_steps=0, schedule="constant",
        model=dict(name="bnn_mlp", hidden=(32,), surrogate="htaf")))
    model = build_model(config.model, num_classes=10)
    tx, mesh = make_optimizer(config, 10), step_lib.make_mesh(1)
    state, rng = step_lib.replicate(
        (step_lib.init_state(model, tx, jax.random.key(0), (28, 28, 1)), jax.random.key(1)),
        mesh)
    rows = np.random.default_rng(0)
    batch = step_lib.shard_batch((rows.normal(size=(32, 28, 28, 1)).astype(np.float32),
                                  rows.integers(0, 10, 32).astype(np.int32)), mesh)
    train_step = step_lib.make_train_step(model, tx, mesh, donate=False)
    labels = binary_labels(state.params)
    binary = lambda p: [w for w, lab in zip(jax.tree.leaves(p), jax.tree.leaves(labels))  # noqa
                        if lab == "binary"]
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
