"""Spiking layers: Linen and NNX agree; NNX trains; core updates against hand-computed ones."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from htaf_jax import spiking
from htaf_jax.linen import spiking as L
from htaf_jax.nnx import spiking as N
from htaf_jax.surrogates import get_surrogate

KEY = jax.random.PRNGKey(0)
HTAF = get_surrogate("htaf")
T, B, F = 6, 3, 4

OPTIONS = [
    ("LIF", {}),
    ("LIF", {"reset": "zero"}),
    ("LIF", {"detach_reset": False, "learn_beta": True, "learn_threshold": True}),
    ("LIF", {"learn_beta": True, "learn_threshold": True, "per_neuron": True,
             "surrogate": "atan", "reset": "zero", "detach_reset": False}),
    ("LIF", {"reset_delay": True, "spike_at_threshold": False, "learn_beta": True,
             "per_neuron": True}),
    ("LIF", {"reset_delay": True, "reset": "zero", "detach_reset": False,
             "learn_threshold": True}),
    ("LIF", {"surrogate": get_surrogate("sigmoid", alpha=25.0), "beta": 0.5}),
    ("IF", {}),
    ("IF", {"learn_threshold": True, "per_neuron": True, "reset": "zero"}),
]


def _nnx_layer(name, options):
    in_features = F if options.get("per_neuron") else None
    return getattr(N, name)(**options, in_features=in_features, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("direct", [False, True])
@pytest.mark.parametrize("name,options", OPTIONS)
def test_linen_and_nnx_agree_in_outputs_and_gradients(name, options, direct):
    k1, k2, k3 = jax.random.split(KEY, 3)
    x = 1.5 * jax.random.normal(k1, (B, F) if direct else (T, B, F)) + 0.5
    w_spike, w_mem = jax.random.normal(k2, (T, B, F)), jax.random.normal(k3, (T, B, F))
    num_steps = T if direct else None

    def objective(out):
        spikes, mems = out
        return jnp.sum(spikes * w_spike) + jnp.sum(mems * w_mem)

    linen = getattr(L, name)(**options)
    params = linen.init(KEY, x, num_steps).get("params", {})
    # Perturb the learnable parameters away from their constant init, then copy them over.
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(k2, p.shape), params)
    model = _nnx_layer(name, options)
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, params)
    nnx.update(model, state)

    out_l = jax.jit(lambda p, x: linen.apply({"params": p}, x, num_steps))(params, x)
    out_n = nnx.jit(lambda m, x: m(x, num_steps))(model, x)
    chex.assert_trees_all_close(out_l, out_n, atol=1e-6, rtol=1e-6)
    assert set(np.unique(np.asarray(out_n[0]))) <= {0.0, 1.0}

    grad_l = jax.jit(jax.grad(lambda p, x: objective(linen.apply({"params": p}, x, num_steps)),
                              argnums=(0, 1)))(params, x)
    grad_n = nnx.jit(nnx.grad(lambda m, x: objective(m(x, num_steps)), argnums=(0, 1)))(model, x)
    chex.assert_trees_all_close(grad_l[0], nnx.to_pure_dict(grad_n[0]), atol=1e-6, rtol=1e-6)
    chex.assert_trees_all_close(grad_l[1], grad_n[1], atol=1e-6, rtol=1e-6)
    assert float(jnp.abs(grad_n[1]).max()) > 0


def test_same_fields_and_defaults_in_linen_and_nnx():
    import inspect
    for name in ("LIF", "IF"):
        linen_fields = {k: f.default for k, f in getattr(L, name).__dataclass_fields__.items()
                        if k not in ("parent", "name")}
        sig = inspect.signature(getattr(N, name).__init__).parameters
        nnx_defaults = {k: p.default for k, p in inspect.signature(N.LIF.__init__).parameters.items()
                        if k not in ("self", "in_features", "rngs")}
        if name == "IF":
            nnx_defaults["beta"] = sig["beta"].default
        assert linen_fields == nnx_defaults, name


def test_nnx_if_rejects_a_leak_and_per_neuron_needs_in_features():
    with pytest.raises(ValueError, match="beta = 1"):
        N.IF(beta=0.9)
    with pytest.raises(ValueError, match="beta = 1"):
        L.IF(learn_beta=True)
    with pytest.raises(ValueError, match="needs in_features"):
        N.LIF(learn_beta=True, per_neuron=True)
    with pytest.raises(ValueError, match="reset must be"):
        N.LIF(reset="hard")
    with pytest.raises(ValueError, match="0 < beta < 1"):
        L.LIF(beta=1.0, learn_beta=True)


class _SpikingNet(nnx.Module):
    """Dense over all T steps → LIF → Dense → mean membrane (the library's pattern)."""

    def __init__(self, rngs):
        self.fc1 = nnx.Linear(8, 32, rngs=rngs)
        self.lif = N.LIF(learn_beta=True, learn_threshold=True, per_neuron=True,
                         in_features=32, rngs=rngs)
        self.fc2 = nnx.Linear(32, 3, rngs=rngs)

    def __call__(self, x):
        spikes, _ = self.lif(self.fc1(x), num_steps=10)
        return spiking.membrane_readout(self.fc2(spikes))


def test_nnx_lif_network_trains_with_optimizer_and_jit():
    x = jax.random.normal(KEY, (64, 8)) * 2.0
    y = jnp.argmax(x[:, :3], axis=-1)   # a learnable rule
    model = _SpikingNet(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(train_step(model, optimizer, x, y)) for _ in range(30)]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.8 * losses[0], losses


# ------------------------------------------------------------ core updates --

def _run(currents, **kw):
    kw.setdefault("spike_fn", HTAF)
    spikes, mems = spiking.lif_dynamics(jnp.asarray(currents, jnp.float32)[:, None], **kw)
    return np.asarray(spikes[:, 0]), np.asarray(mems[:, 0])


def test_reset_delay_subtract_hand_computed():
    # β = 0.5, θ = 1, I = 1.5: U = 1.5 (fires); 0.75 + 1.5 − 1 = 1.25 (fires);
    # 0.625 + 1.5 − 1 = 1.125 (fires); 0.5625 + 0.5 − 1 = 0.0625.
    spikes, mems = _run([1.5, 1.5, 1.5, 0.5], beta=0.5, threshold=1.0, reset_delay=True)
    np.testing.assert_array_equal(spikes, [1, 1, 1, 0])
    np.testing.assert_allclose(mems, [1.5, 1.25, 1.125, 0.0625], rtol=1e-6)
    # Same-step reset for comparison: V = 1.5 → 0.5; 1.75 → 0.75; 1.875 → 0.875; 0.9375.
    spikes, mems = _run([1.5, 1.5, 1.5, 0.5], beta=0.5, threshold=1.0)
    np.testing.assert_array_equal(spikes, [1, 1, 1, 0])
    np.testing.assert_allclose(mems, [0.5, 0.75, 0.875, 0.9375], rtol=1e-6)


def test_reset_delay_zero_hand_computed():
    # U[t] = β(1 − S[t−1])U[t−1] + I[t], β = 0.5: 1.2 (fires); 0 + 0.4; 0.2 + 0.4 = 0.6.
    spikes, mems = _run([1.2, 0.4, 0.4], beta=0.5, threshold=1.0, reset="zero", reset_delay=True)
    np.testing.assert_array_equal(spikes, [1, 0, 0])
    np.testing.assert_allclose(mems, [1.2, 0.4, 0.6], rtol=1e-6)


def test_spike_at_threshold_sets_h0_and_keeps_the_gradient():
    # IF, I = 0.5 (exact): U = 0.5, 1.0 = θ: fires only with H(0) = 1.
    spikes, _ = _run([0.5, 0.5], beta=1.0, threshold=1.0)
    np.testing.assert_array_equal(spikes, [0, 1])
    spikes, mems = _run([0.5, 0.5], beta=1.0, threshold=1.0, spike_at_threshold=False)
    np.testing.assert_array_equal(spikes, [0, 0])
    np.testing.assert_array_equal(mems, [0.5, 1.0])
    for at in (True, False):
        g = jax.grad(lambda x: spiking.threshold_spike(HTAF, x, at))(jnp.float32(0.0))
        np.testing.assert_allclose(g, HTAF.grad(jnp.float32(0.0)), rtol=1e-6)


def test_if_dynamics_is_lif_without_leak():
    cur = jax.random.normal(KEY, (7, 2, 3)) + 0.4
    chex.assert_trees_all_equal(
        spiking.if_dynamics(cur, threshold=0.8, spike_fn=HTAF, reset="zero"),
        spiking.lif_dynamics(cur, beta=1.0, threshold=0.8, spike_fn=HTAF, reset="zero"))


def test_reset_delay_gradient_through_previous_spike():
    # Two steps, reset_delay, subtract: U1 = I1, U2 = β·U1 + I2 − S1·θ with S1 = H(U1 − θ).
    # dU2/dI1 = β − θ·H'(I1 − θ) without detach, β with it.
    def mem2(i1, detach):
        cur = jnp.stack([i1, jnp.float32(0.3)]).reshape(2, 1)
        return spiking.lif_dynamics(cur, beta=0.9, threshold=1.0, spike_fn=HTAF,
                                    reset_delay=True, detach_reset=detach)[1][1, 0]
    i1 = jnp.float32(1.2)
    np.testing.assert_allclose(jax.grad(mem2)(i1, True), 0.9, rtol=1e-6)
    np.testing.assert_allclose(jax.grad(mem2)(i1, False), 0.9 - float(HTAF.grad(0.2)), rtol=1e-5)


def test_leaky_integrate_and_readouts():
    cur = jnp.arange(1.0, 4.0).reshape(3, 1, 1)
    np.testing.assert_allclose(spiking.leaky_integrate(cur, 0.5)[:, 0, 0], [1.0, 2.5, 4.25])
    np.testing.assert_allclose(spiking.membrane_readout(cur, 0.5)[0, 0], (1 + 2.5 + 4.25) / 3)
    np.testing.assert_array_equal(spiking.spike_count_readout(jnp.ones((4, 2, 3))), 4.0)
    np.testing.assert_array_equal(spiking.direct_encode(cur), cur)


def test_encoders_undo_the_given_standardisation():
    mean, std = 0.5, 0.25
    x = (jnp.array([[0.0, 0.5, 1.0]]) - mean) / std
    lat = np.asarray(spiking.latency_encode(x, 3, mean=mean, std=std))[:, 0]
    np.testing.assert_array_equal(lat, [[0, 0, 1], [0, 1, 0], [0, 0, 0]])
    rate = spiking.rate_encode(KEY, x, 8, mean=mean, std=std)
    np.testing.assert_array_equal(rate[:, 0, 0], 0.0)
    np.testing.assert_array_equal(rate[:, 0, 2], 1.0)
