"""Spiking layers: Linen and NNX agree; NNX trains; core updates against hand-computed ones."""

import dataclasses
import functools
import inspect
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from reference_grads import assert_grads_equal, autodiff_reference
from reference_lif import reference_lif

from htaf_jax import spiking
from htaf_jax.linen import spiking as L
from htaf_jax.nnx import spiking as N
from htaf_jax.units import get_unit

KEY = jax.random.PRNGKey(0)
HTAF = get_unit("htaf")
T, B, F = 6, 3, 4

OPTIONS = [  # (layer, options, direct input (B, F) with num_steps rather than (T, B, F))
    ("LIF", {}, False),
    ("LIF", {"reset": "zero"}, True),
    ("LIF", {"detach_reset": False, "learn_beta": True, "learn_threshold": True}, False),
    (
        "LIF",
        {
            "learn_beta": True,
            "learn_threshold": True,
            "per_neuron": True,
            "surrogate": "atan",
            "reset": "zero",
            "detach_reset": False,
        },
        True,
    ),
    (
        "LIF",
        {"reset_delay": True, "spike_at_threshold": False, "learn_beta": True, "per_neuron": True},
        False,
    ),
    (
        "LIF",
        {"reset_delay": True, "reset": "zero", "detach_reset": False, "learn_threshold": True},
        True,
    ),
    ("LIF", {"surrogate": get_unit("sigmoid", alpha=25.0), "beta": 0.5}, False),
    (
        "LIF",
        {
            "reset_delay": True,
            "fire_first": True,
            "detach_reset": False,
            "learn_beta": True,
            "learn_threshold": True,
            "threshold": 0.5,
        },
        True,
    ),
    ("IF", {}, True),
    ("IF", {"learn_threshold": True, "per_neuron": True, "reset": "zero"}, False),
    ("RecurrentLIF", {}, True),
    ("RecurrentLIF", {"learn_beta": True, "reset_delay": True, "detach_reset": False}, False),
    ("RecurrentLIF", {"all_to_all": False, "per_neuron": True, "learn_threshold": True}, True),
    ("RecurrentLIF", {"all_to_all": False, "recurrent_init": 0.5, "reset": "zero"}, False),
    ("Synaptic", {}, True),
    (
        "Synaptic",
        {
            "learn_alpha": True,
            "learn_beta": True,
            "per_neuron": True,
            "alpha": 0.7,
            "reset_delay": True,
        },
        False,
    ),
    (
        "Synaptic",
        {"learn_alpha": True, "learn_threshold": True, "reset": "zero", "detach_reset": False},
        True,
    ),
    ("ALIF", {}, False),
    (
        "ALIF",
        {
            "learn_beta": True,
            "learn_threshold": True,
            "per_neuron": True,
            "adapt_decay": 0.8,
            "adapt_scale": 0.5,
            "detach_reset": False,
        },
        True,
    ),
    ("ALIF", {"reset_delay": True, "reset": "zero", "spike_at_threshold": False}, False),
    (
        "ALIF",
        {
            "learn_adapt_decay": True,
            "learn_adapt_scale": True,
            "per_neuron": True,
            "adapt_decay": 0.8,
            "detach_reset": False,
        },
        False,
    ),
    ("ALIF", {"learn_adapt_decay": True, "learn_threshold": True, "reset_delay": True}, True),
    ("ALIF", {"learn_adapt_scale": True, "adapt_scale": 0.3, "reset": "zero"}, True),
    (
        "ALIF",
        {
            "reset_delay": True,
            "fire_first": True,
            "learn_adapt_decay": True,
            "learn_adapt_scale": True,
            "threshold": 0.5,
        },
        False,
    ),
    (
        "RecurrentLIF",
        {"reset_delay": True, "fire_first": True, "reset": "zero", "threshold": 0.5},
        False,
    ),
]
NEURONS = ("LIF", "IF", "RecurrentLIF", "Synaptic", "ALIF")


def _nnx_layer(name, options):
    return getattr(N, name)(**options, in_features=F, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("name,options,direct", OPTIONS)
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

    def linen_loss(p, x):
        out = linen.apply({"params": p}, x, num_steps)
        return objective(out), out

    def nnx_loss(m, x):
        out = m(x, num_steps)
        return objective(out), out

    grad_l, out_l = jax.jit(jax.grad(linen_loss, argnums=(0, 1), has_aux=True))(params, x)
    grad_n, out_n = nnx.jit(nnx.grad(nnx_loss, argnums=(0, 1), has_aux=True))(model, x)
    chex.assert_trees_all_close(out_l, out_n, atol=1e-6, rtol=1e-6)
    assert set(np.unique(np.asarray(out_n[0]))) <= {0.0, 1.0}
    chex.assert_trees_all_close(grad_l[0], nnx.to_pure_dict(grad_n[0]), atol=1e-6, rtol=1e-6)
    chex.assert_trees_all_close(grad_l[1], grad_n[1], atol=1e-6, rtol=1e-6)
    assert float(jnp.abs(grad_n[1]).max()) > 0


@pytest.mark.parametrize("name", NEURONS)
def test_same_fields_and_defaults_in_linen_and_nnx(name):
    """Both front ends take the neuron's field spec: the Linen dataclass fields and the
    NNX signature hold the same names and defaults as spiking's spec."""
    linen_fields = {
        k: f.default
        for k, f in getattr(L, name).__dataclass_fields__.items()
        if k not in ("parent", "name")
    }
    nnx_fields = {
        k: p.default
        for k, p in inspect.signature(getattr(N, name)).parameters.items()
        if k not in ("in_features", "rngs")
    }
    spec = getattr(spiking, f"{name}Fields")
    assert linen_fields == nnx_fields
    assert {k: v for k, v in linen_fields.items() if k != "param_dtype"} == {
        f.name: f.default for f in dataclasses.fields(spec)
    }
    assert N.IF(threshold=0.5).beta == 1.0 and L.IF().beta == 1.0


@pytest.mark.parametrize("front", [L, N])
@pytest.mark.parametrize(
    "name,fields,message",
    [
        ("LIF", {"beta": 1.5}, r"beta is a decay per step and must lie in \[0, 1\].*got 1.5"),
        ("LIF", {"beta": -0.1}, r"beta is a decay per step"),
        ("LIF", {"beta": np.array([0.5, 1.2])}, r"beta is a decay per step"),
        ("LIF", {"threshold": 0.0}, r"threshold must be > 0.*got 0.0"),
        ("IF", {"threshold": -1.0}, r"threshold must be > 0"),
        ("Synaptic", {"alpha": 2.0}, r"alpha is a decay per step"),
        ("ALIF", {"adapt_decay": 1.01}, r"adapt_decay is a decay per step"),
        ("Synaptic", {"alpha": 1.0, "learn_alpha": True}, r"0 < alpha < 1"),
        ("LIF", {"reset": "hard"}, r"reset must be 'subtract' or 'zero', got 'hard'"),
        ("LIF", {"fire_first": True}, r"needs reset_delay=True"),
    ],
)
def test_neurons_refuse_bad_fields_in_one_line(front, name, fields, message):
    with pytest.raises(ValueError, match=message) as info:
        getattr(front, name)(**fields)
    assert "\n" not in str(info.value)


def test_nnx_neuron_lists_valid_fields_for_an_unknown_one():
    with pytest.raises(
        TypeError,
        match=r"LIF got unknown field\(s\) treshold; valid: beta, "
        r"threshold, reset",
    ):
        N.LIF(treshold=0.5)
    # The edges of the valid range are accepted: no leak (IF-like) and full leak.
    for beta in (0.0, 1.0):
        assert float(N.LIF(beta=beta)(jnp.ones((3, 1, 2)))[1][-1, 0, 0]) >= 0


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
    with pytest.raises(ValueError, match="0 < adapt_decay < 1"):
        L.ALIF(adapt_decay=0.0, learn_adapt_decay=True)
    with pytest.raises(ValueError, match="0 < adapt_decay < 1"):
        N.ALIF(adapt_decay=1.0, learn_adapt_decay=True)


ALL_LEARNABLE = {
    "LIF": {"learn_beta": True, "learn_threshold": True, "per_neuron": True},
    "IF": {"learn_threshold": True, "per_neuron": True},
    "RecurrentLIF": {"learn_beta": True, "learn_threshold": True, "per_neuron": True},
    "Synaptic": {
        "learn_alpha": True,
        "learn_beta": True,
        "learn_threshold": True,
        "per_neuron": True,
    },
    "ALIF": {
        "learn_beta": True,
        "learn_threshold": True,
        "learn_adapt_decay": True,
        "learn_adapt_scale": True,
        "per_neuron": True,
    },
}


class _SpikingNet(nnx.Module):
    """Dense over all T steps → neuron → Dense → mean membrane (the library's pattern)."""

    def __init__(self, rngs, neuron="LIF"):
        self.fc1 = nnx.Linear(8, 32, rngs=rngs)
        self.lif = getattr(N, neuron)(
            **ALL_LEARNABLE[neuron], threshold=0.5, in_features=32, rngs=rngs
        )
        self.fc2 = nnx.Linear(32, 3, rngs=rngs)

    def __call__(self, x):
        spikes, _ = self.lif(self.fc1(x), num_steps=10)
        return spiking.membrane_readout(self.fc2(spikes))


def test_nnx_lif_network_trains_with_optimizer_and_jit():
    x = jax.random.normal(KEY, (64, 8)) * 2.0
    y = jnp.argmax(x[:, :3], axis=-1)  # a learnable rule
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


@pytest.mark.parametrize("neuron", NEURONS)
def test_every_neuron_passes_its_gradient_to_every_parameter(neuron, monkeypatch):
    """Every parameter's gradient equals autodiff of the same network with reference
    units and the reference LIF scan (tests/reference_grads.py), and is not zero."""
    x = jax.random.normal(KEY, (16, 8)) * 2.0
    y = jnp.arange(16) % 3
    model = _SpikingNet(nnx.Rngs(1), neuron)

    def loss_fn(model):
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    grads = nnx.to_pure_dict(nnx.jit(nnx.grad(loss_fn))(model))
    assert set(grads["lif"]) >= {"threshold"}
    autodiff_reference(monkeypatch)
    assert_grads_equal(grads, nnx.to_pure_dict(nnx.jit(nnx.grad(loss_fn))(model)))


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


def test_fire_first_hand_computed():
    # β = 0.5, θ = 1, I = 1.5, 1.5, 1.5, 0.5: the membrane of the delayed reset
    # (1.5, 1.25, 1.125, 0.0625), each spike read from the membrane carried in:
    # H(0 − 1) = 0, H(1.5 − 1) = 1, H(1.25 − 1) = 1, H(1.125 − 1) = 1.
    spikes, mems = _run(
        [1.5, 1.5, 1.5, 0.5], beta=0.5, threshold=1.0, reset_delay=True, fire_first=True
    )
    np.testing.assert_array_equal(spikes, [0, 1, 1, 1])
    np.testing.assert_allclose(mems, [1.5, 1.25, 1.125, 0.0625], rtol=1e-6)
    # Zero reset: 1.2; S = 1 resets before the leak: 0 + 0.4; 0.2 + 0.4 = 0.6.
    spikes, mems = _run(
        [1.2, 0.4, 0.4], beta=0.5, threshold=1.0, reset="zero", reset_delay=True, fire_first=True
    )
    np.testing.assert_array_equal(spikes, [0, 1, 0])
    np.testing.assert_allclose(mems, [1.2, 0.4, 0.6], rtol=1e-6)


def test_fire_first_needs_reset_delay():
    with pytest.raises(ValueError, match="fire_first=True .* needs reset_delay=True"):
        spiking.lif_dynamics(
            jnp.ones((2, 1)), beta=0.5, threshold=1.0, spike_fn=HTAF, fire_first=True
        )
    for make in (
        lambda: L.LIF(fire_first=True).init(KEY, jnp.ones((2, 1, 1))),
        lambda: N.ALIF(fire_first=True),
    ):
        with pytest.raises(ValueError, match="needs reset_delay=True"):
            make()


@pytest.mark.parametrize("name", ["LIF", "RecurrentLIF", "Synaptic", "ALIF"])
@pytest.mark.parametrize("reset,detach", [("subtract", False), ("zero", True)])
def test_fire_first_is_the_delayed_reset_one_step_earlier(name, reset, detach):
    """Same membrane; spikes S[t] = the delayed update's S[t−1]; the same gradients
    for a loss on spikes and membrane (every parameter learnable).

    One gradient differs by design: fire_first's S[0] = H(−θ) carries H'(−θ) to θ,
    where the shifted S[0] is a constant 0. The rectangle surrogate (support
    |x| ≤ 0.5) has H'(−0.6) = 0, so the gradients must agree exactly."""
    learn = {
        "LIF": {},
        "RecurrentLIF": {"all_to_all": False},
        "Synaptic": {"learn_alpha": True},
        "ALIF": {"learn_adapt_decay": True, "learn_adapt_scale": True, "adapt_scale": 0.5},
    }[name]
    options = dict(
        learn,
        reset=reset,
        detach_reset=detach,
        reset_delay=True,
        threshold=0.6,
        learn_beta=True,
        learn_threshold=True,
        per_neuron=True,
        surrogate="rectangle",
    )
    x = jax.random.normal(KEY, (T, B, F)) * 0.6 + 0.35
    delayed, first = (getattr(L, name)(**options, fire_first=f) for f in (False, True))
    params = delayed.init(KEY, x)["params"]
    w = jax.random.normal(jax.random.PRNGKey(1), (2, T, B, F))

    def loss(layer, shift):
        def f(p, x):
            s, m = layer.apply({"params": p}, x)
            if shift:
                s = jnp.concatenate([jnp.zeros_like(s[:1]), s[:-1]])
            return jnp.sum(s * w[0]) + jnp.sum(m * w[1]), (s, m)

        return jax.grad(f, argnums=(0, 1), has_aux=True)(params, x)

    (g_delayed, (s_delayed, m_delayed)) = loss(delayed, True)
    (g_first, (s_first, m_first)) = loss(first, False)
    assert 0.1 < float(s_first.mean()) < 0.7
    np.testing.assert_array_equal(s_first, s_delayed)
    np.testing.assert_allclose(m_first, m_delayed, rtol=1e-6, atol=1e-6)  # fused differently
    chex.assert_trees_all_close(g_first, g_delayed, rtol=1e-5, atol=1e-6)


def test_spike_at_threshold_sets_h0_and_keeps_the_gradient():
    # IF, I = 0.5 (exact): U = 0.5, 1.0 = θ: fires only with H(0) = 1.
    spikes, _ = _run([0.5, 0.5], beta=1.0, threshold=1.0)
    np.testing.assert_array_equal(spikes, [0, 1])
    spikes, mems = _run([0.5, 0.5], beta=1.0, threshold=1.0, spike_at_threshold=False)
    np.testing.assert_array_equal(spikes, [0, 0])
    np.testing.assert_array_equal(mems, [0.5, 1.0])
    for at in (True, False):
        g = jax.grad(lambda x, at=at: spiking.threshold_spike(HTAF, x, at))(jnp.float32(0.0))
        np.testing.assert_allclose(g, HTAF.grad(jnp.float32(0.0)), rtol=1e-6)


def test_if_dynamics_is_lif_without_leak():
    cur = jax.random.normal(KEY, (7, 2, 3)) + 0.4
    chex.assert_trees_all_equal(
        spiking.if_dynamics(cur, threshold=0.8, spike_fn=HTAF, reset="zero"),
        spiking.lif_dynamics(cur, beta=1.0, threshold=0.8, spike_fn=HTAF, reset="zero"),
    )


def test_reset_delay_gradient_through_previous_spike():
    # Two steps, reset_delay, subtract: U1 = I1, U2 = β·U1 + I2 − S1·θ with S1 = H(U1 − θ).
    # dU2/dI1 = β − θ·H'(I1 − θ) without detach, β with it.
    def mem2(i1, detach):
        cur = jnp.stack([i1, jnp.float32(0.3)]).reshape(2, 1)
        return spiking.lif_dynamics(
            cur, beta=0.9, threshold=1.0, spike_fn=HTAF, reset_delay=True, detach_reset=detach
        )[1][1, 0]

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


def test_recurrent_one_to_one_hand_computed():
    # β = 0.5, θ = 1, V = 0.5: 0.75; 0.375 + 0.625 = 1 fires → 0; 0 + 0 + 0.5·1; 0.25.
    cur = jnp.array([0.75, 0.625, 0.0, 0.0]).reshape(4, 1)
    spikes, mems = spiking.recurrent_lif_dynamics(
        cur, recurrent=lambda s: 0.5 * s, beta=0.5, threshold=1.0, spike_fn=HTAF
    )
    np.testing.assert_array_equal(spikes[:, 0], [0, 1, 0, 0])
    np.testing.assert_array_equal(mems[:, 0], [0.75, 0.0, 0.5, 0.25])


@pytest.mark.parametrize(
    "delay, mems",
    [
        # same step: 0.75; 0.375 + 0.875 = 1.25 fires → 0; 0 + 0.5·1; 0.25
        (False, [0.75, 0.0, 0.5, 0.25]),
        # delayed: 1.25 fires and stays; the next step zeroes it: 0.5·(1 − 1)·1.25 + 0.5
        (True, [0.75, 1.25, 0.5, 0.25]),
    ],
)
def test_recurrent_zero_reset_hand_computed(delay, mems):
    cur = jnp.array([0.75, 0.875, 0.0, 0.0]).reshape(4, 1)
    spikes, got = spiking.recurrent_lif_dynamics(
        cur,
        recurrent=lambda s: 0.5 * s,
        beta=0.5,
        threshold=1.0,
        spike_fn=HTAF,
        reset="zero",
        reset_delay=delay,
    )
    np.testing.assert_array_equal(spikes[:, 0], [0, 1, 0, 0])
    np.testing.assert_array_equal(got[:, 0], mems)


def test_recurrent_delayed_subtract_reset_hand_computed():
    # θ = 0.5, V = 0.5, β = 0.5: 0.75 fires; the next step subtracts θ:
    # 0.375 + 0.5·1 − 0.5 = 0.375; 0.1875
    cur = jnp.array([0.75, 0.0, 0.0]).reshape(3, 1)
    spikes, mems = spiking.recurrent_lif_dynamics(
        cur, recurrent=lambda s: 0.5 * s, beta=0.5, threshold=0.5, spike_fn=HTAF, reset_delay=True
    )
    np.testing.assert_array_equal(spikes[:, 0], [1, 0, 0])
    np.testing.assert_array_equal(mems[:, 0], [0.75, 0.375, 0.1875])


def test_recurrent_all_to_all_hand_computed():
    # Neuron 0's spike feeds neuron 1 (W[0, 1] = 1): n1 = 0.5; 0.25 + 0.5 + 1 = 1.75 fires
    # → 0.75; 0.375.
    w = jnp.array([[0.0, 1.0], [0.0, 0.0]])
    cur = jnp.array([[1.0, 0.5], [0.0, 0.5], [0.0, 0.0]])[:, None, :]  # (T, B=1, N=2)
    spikes, mems = spiking.recurrent_lif_dynamics(
        cur, recurrent=lambda s: s @ w, beta=0.5, threshold=1.0, spike_fn=HTAF
    )
    np.testing.assert_array_equal(spikes[:, 0], [[1, 0], [0, 1], [0, 0]])
    np.testing.assert_array_equal(mems[:, 0], [[0, 0.5], [0, 0.75], [0, 0.375]])


def test_synaptic_hand_computed():
    # α = β = 0.5: I_syn = 1, 0.5, 0.25, 0.125; V = 1 fires (H(0) = 1) → 0; 0.5; 0.5; 0.375.
    cur = jnp.array([1.0, 0.0, 0.0, 0.0]).reshape(4, 1)
    spikes, mems = spiking.synaptic_dynamics(cur, alpha=0.5, beta=0.5, threshold=1.0, spike_fn=HTAF)
    np.testing.assert_array_equal(spikes[:, 0], [1, 0, 0, 0])
    np.testing.assert_array_equal(mems[:, 0], [0.0, 0.5, 0.5, 0.375])
    direct = spiking.synaptic_dynamics(
        jnp.ones((2, 3)), alpha=0.5, beta=0.5, threshold=1.0, spike_fn=HTAF, num_steps=4
    )
    chex.assert_trees_all_equal(
        direct,
        spiking.synaptic_dynamics(
            jnp.ones((4, 2, 3)), alpha=0.5, beta=0.5, threshold=1.0, spike_fn=HTAF
        ),
    )


def test_alif_hand_computed():
    # β = 1, θ = 1, ρ = 0.5, γ = 1, I = 1:
    # t0: a = 0,     A = 1:     V = 1 fires, U = 0
    # t1: a = 0.5,   A = 1.5:   V = 1, U = 1
    # t2: a = 0.25,  A = 1.25:  V = 2 fires, U = 0.75
    # t3: a = 0.625, A = 1.625: V = 1.75 fires, U = 0.125
    spikes, mems = spiking.alif_dynamics(
        jnp.ones((4, 1)), beta=1.0, threshold=1.0, adapt_decay=0.5, adapt_scale=1.0, spike_fn=HTAF
    )
    np.testing.assert_array_equal(spikes[:, 0], [1, 0, 1, 1])
    np.testing.assert_array_equal(mems[:, 0], [0.0, 1.0, 0.75, 0.125])
    # γ = 0 is the LIF: the same spikes, membranes equal up to float rounding (the two
    # programs compile to different instructions; XLA's backend may contract differently).
    cur = jax.random.normal(KEY, (6, 2, 3)) + 0.6
    (s_alif, v_alif), (s_lif, v_lif) = (
        spiking.alif_dynamics(
            cur, beta=0.9, threshold=1.0, adapt_decay=0.5, adapt_scale=0.0, spike_fn=HTAF
        ),
        spiking.lif_dynamics(cur, beta=0.9, threshold=1.0, spike_fn=HTAF),
    )
    np.testing.assert_array_equal(s_alif, s_lif)
    np.testing.assert_allclose(v_alif, v_lif, rtol=0, atol=1e-6)


def _no_surrogate_gradient(x):
    """H(x) with H(0) = 1 and a zero gradient: only the reset and threshold terms carry one."""
    return jax.lax.stop_gradient((x >= 0).astype(x.dtype))


@pytest.mark.parametrize("front", ["linen", "nnx"])
def test_alif_learnable_adaptation_hand_computed(front):
    # Two neurons, β = 1, θ = 1, I = 1, learnable per neuron: ρ = σ(0) = 0.5 for both,
    # γ = (1, 0). Neuron 0 is test_alif_hand_computed's; neuron 1 (γ = 0) fires every step.
    # With the spike's gradient cut, U[t] = U[t−1] + I − S[t]·(θ + γ·a[t]) gives
    #   dU[t]/dγ = dU[t−1]/dγ − S[t]·a[t]
    #   dU[t]/dρ = dU[t−1]/dρ − S[t]·γ·da[t]/dρ,  da[t]/dρ = a[t−1] − S[t−1] + ρ·da[t−1]/dρ
    # neuron 0: a = (0, 0.5, 0.25, 0.625), da/dρ = (0, −1, 0, −0.75), S = (1, 0, 1, 1):
    #   Σ_t dU/dγ = 0 + 0 − 0.25 − 0.875 = −1.125;  Σ_t dU/dρ = 0 + 0 + 0 + 0.75 = 0.75
    # neuron 1: a = (0, 0.5, 0.75, 0.875), S = 1: Σ_t dU/dγ = 0 − 0.5 − 1.25 − 2.125 = −3.875,
    #   and γ = 0 gives Σ_t dU/dρ = 0. The logit's gradient is dρ/dlogit = ρ(1 − ρ) = 0.25 times ρ's.
    options = dict(
        beta=1.0,
        threshold=1.0,
        adapt_decay=0.5,
        adapt_scale=1.0,
        learn_adapt_decay=True,
        learn_adapt_scale=True,
        per_neuron=True,
        surrogate=_no_surrogate_gradient,
    )
    params = {"adapt_decay_logit": jnp.zeros(2), "adapt_scale": jnp.array([1.0, 0.0])}
    x = jnp.ones((4, 1, 2))
    if front == "linen":
        layer = L.ALIF(**options)
        assert jax.tree.map(jnp.shape, layer.init(KEY, x)["params"]) == {
            "adapt_decay_logit": (2,),
            "adapt_scale": (2,),
        }
        run = lambda p: layer.apply({"params": p}, x)  # noqa: E731
    else:
        model = N.ALIF(**options, in_features=2)
        graphdef, state = nnx.split(model)
        assert jax.tree.map(jnp.shape, nnx.to_pure_dict(state)) == {
            "adapt_decay_logit": (2,),
            "adapt_scale": (2,),
        }

        def run(p):
            st = nnx.state(model)
            nnx.replace_by_pure_dict(st, p)
            return nnx.merge(graphdef, st)(x)

    spikes, mems = run(params)
    np.testing.assert_array_equal(spikes[:, 0], [[1, 1], [0, 1], [1, 1], [1, 1]])
    np.testing.assert_array_equal(mems[:, 0], [[0, 0], [1, 0], [0.75, 0], [0.125, 0]])
    grads = jax.grad(lambda p: jnp.sum(run(p)[1]))(params)
    np.testing.assert_allclose(grads["adapt_scale"], [-1.125, -3.875], rtol=1e-6)
    np.testing.assert_allclose(grads["adapt_decay_logit"], [0.25 * 0.75, 0.0], atol=1e-7)


@pytest.mark.parametrize("name", NEURONS)
def test_bfloat16_currents_with_float32_parameters(name):
    # Mixed precision: the state computes in the currents' dtype, the parameters stay float32.
    x = (2.0 * jax.random.normal(KEY, (T, B, F))).astype(jnp.bfloat16)
    layer = getattr(L, name)(**ALL_LEARNABLE[name])
    params = layer.init(KEY, x)["params"]
    spikes, mems = layer.apply({"params": params}, x)
    assert spikes.dtype == mems.dtype == jnp.bfloat16
    grads = jax.grad(lambda p: jnp.sum(layer.apply({"params": p}, x)[1].astype(jnp.float32)))(
        params
    )
    for g in jax.tree.leaves(grads):
        assert g.dtype == jnp.float32 and np.all(np.isfinite(g))


def test_the_models_pass_every_neuron_field_to_their_neurons():
    import dataclasses

    from htaf_jax.models.rsnn import RecurrentSNN
    from htaf_jax.models.snn import SpikingMLP

    names = {f.name for f in dataclasses.fields(L.NeuronFields)} - {"parent", "name"}
    assert set(L.NEURON_FIELDS) == names  # a new field cannot be left out of neuron_fields()
    x = jnp.ones((2, 4, 6))
    for model in (
        RecurrentSNN(
            num_classes=3,
            hidden=(5,),
            threshold=0.25,
            reset="zero",
            learn_threshold=True,
            per_neuron=True,
        ),
        SpikingMLP(
            num_classes=3,
            hidden=(5,),
            num_steps=4,
            encoding="direct",
            threshold=0.25,
            reset="zero",
            learn_threshold=True,
            per_neuron=True,
        ),
    ):
        assert model.neuron_fields()["reset"] == "zero"
        params = model.init(
            jax.random.key(0), x if isinstance(model, RecurrentSNN) else x[..., None]
        )["params"]
        # learn_threshold and per_neuron reached the neuron: a θ per neuron, at 0.25.
        (theta,) = [
            v
            for k, v in jax.tree_util.tree_flatten_with_path(params)[0]
            if "threshold" in jax.tree_util.keystr(k)
        ]
        np.testing.assert_array_equal(theta, np.full((5,), 0.25, np.float32))


# ------------------------------------------------- hand-written LIF gradient --

ORDERS = [{}, {"reset_delay": True}, {"reset_delay": True, "fire_first": True}]


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("spike", ["registry", "callable"])
@pytest.mark.parametrize("direct", [False, True])
def test_hand_written_lif_gradient_matches_autodiff(reset, detach, order, spike, direct):
    """LIF's one scan (a hand-written gradient, for a registry unit or for a plain
    callable through its own vjp) against the obvious scan autodiff differentiates
    (tests/reference_lif.py): equal spikes, membranes and gradients for the currents
    (a (T, B, F) sequence, or one (B, F) current for T steps, whose gradient the scan
    sums itself), a per-neuron β and a scalar θ equal to float32 rounding, for a loss
    with random weights on both outputs."""
    surrogate = get_unit("atan")
    spike_fn = surrogate if spike == "registry" else (lambda x: surrogate(x))
    x = jax.random.normal(KEY, (3, 5) if direct else (40, 3, 5)) * 0.7 + 0.4
    w = jax.random.normal(jax.random.PRNGKey(1), (2, 40, 3, 5))
    options = dict(reset=reset, detach_reset=detach, spike_at_threshold=False, **order)
    options |= {"num_steps": 40} if direct else {}

    def loss(x, beta, theta, lif):
        s, m = lif(x, beta=beta, threshold=theta, spike_fn=spike_fn, **options)
        return jnp.sum(s * w[0]) + jnp.sum(m * w[1]), (s, m)

    args = (x, jnp.linspace(0.6, 0.95, 5), jnp.float32(0.9))
    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2), has_aux=True), static_argnums=3)
    g_hand, (s_hand, m_hand) = grad(*args, spiking.lif_dynamics)
    g_auto, (s_auto, m_auto) = grad(*args, reference_lif)
    assert 0.1 < float(s_auto.mean()) < 0.7
    np.testing.assert_array_equal(s_hand, s_auto)
    np.testing.assert_allclose(m_hand, m_auto, rtol=1e-6, atol=1e-6)  # XLA fuses differently
    for a, b in zip(g_hand, g_auto):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6 * float(jnp.abs(b).max()))
    # Constants (Python numbers) get no gradient work, and the values agree.
    s_const, _ = spiking.lif_dynamics(x, beta=0.8, threshold=0.9, spike_fn=spike_fn, **options)
    s_ref, _ = reference_lif(x, beta=0.8, threshold=0.9, spike_fn=spike_fn, **options)
    np.testing.assert_array_equal(s_const, s_ref)


def test_lif_takes_traced_unit_hyperparameters():
    """A unit whose hyperparameters are traced (learned) runs the same scan: the
    backward rule uses their values (the gradient to the currents equals the one with
    the same numbers bound as constants), and the step gives them zero cotangent."""
    x = jax.random.normal(KEY, (12, 3, 4)) + 0.5
    w = jax.random.normal(jax.random.PRNGKey(2), (12, 3, 4))

    def loss(x, alpha):
        s, _ = spiking.lif_dynamics(
            x, beta=0.9, threshold=1.0, spike_fn=get_unit("htaf", alpha=alpha)
        )
        return jnp.sum(s * w)

    g_x, g_alpha = jax.grad(loss, argnums=(0, 1))(x, jnp.float32(2.5))
    np.testing.assert_allclose(g_x, jax.grad(loss)(x, 2.5), rtol=1e-6)
    assert float(g_alpha) == 0.0
    assert not np.allclose(g_x, jax.grad(loss)(x, 4.0))  # α reached the rule


def _copies_per_step(fn, *args, t: int) -> list[str]:
    """Copies of an array with a leading axis of size t that the compiled program makes
    outside its entry computation: inside a loop body, one per step."""
    text = jax.jit(fn).lower(*args).compile().as_text()
    copies = []
    for computation in re.split(r"\n(?=\S)", text):
        if computation.startswith("ENTRY"):
            continue  # a copy there runs once
        copies += re.findall(rf"= \w+\[{t},[^\]]*\]\S* copy\(", computation)
    return copies


LIF_OPTIONS = [
    dict(reset=r, reset_delay=d, fire_first=f, detach_reset=dr, spike_at_threshold=a)
    for r in ("subtract", "zero")
    for d, f in ((False, False), (True, False), (True, True))
    for dr in (True, False)
    for a in (True, False)
]
T_LONG = 37  # no other axis has this size


@pytest.mark.parametrize(
    "options", LIF_OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items())
)
def test_no_per_step_copy_of_the_sequence_in_any_lif_option(options):
    """The cause of a cost quadratic in T, tested directly: a (T, ...) buffer that a
    loop updates in place costs a copy of all T steps at every step when XLA cannot
    prove the update safe (the same-step reset's forward did, at 0a11196). For every
    combination of reset, reset_delay, fire_first, detach_reset and spike_at_threshold,
    with learnable β and θ: the compiled forward and forward + backward copy nothing of
    size T inside a loop."""
    x = jax.random.normal(KEY, (T_LONG, 3, 5)) + 0.5

    def forward(x, beta, theta):
        return spiking.lif_dynamics(x, beta=beta, threshold=theta, spike_fn=HTAF, **options)

    def loss(x, beta, theta):
        s, m = forward(x, beta, theta)
        return jnp.sum(s) + jnp.sum(m)

    args = (x, jnp.full((5,), 0.9), jnp.float32(1.0))
    assert _copies_per_step(forward, *args, t=T_LONG) == []
    assert _copies_per_step(jax.value_and_grad(loss, argnums=(0, 1, 2)), *args, t=T_LONG) == []


def _eqns(jaxpr):
    """Every equation of a jaxpr and of the jaxprs inside it (scan bodies, pjit, ...)."""
    for e in jaxpr.eqns:
        yield e
        for v in e.params.values():
            for sub in v if isinstance(v, (tuple, list)) else (v,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _eqns(inner)


@pytest.mark.parametrize("name", NEURONS)
def test_direct_input_gradient_is_not_a_sum_over_time(name):
    """A time-constant current (num_steps) is not broadcast to (T, ...) and its gradient
    is not a sum over T after the scan (the scan's carry sums it): XLA:CPU's sum over a
    short leading axis cost most of an SNN step (LIF, IF and Synaptic had it at 2bc8624)."""
    x = jax.random.normal(KEY, (3, 5)) + 0.5
    layer = getattr(L, name)(**ALL_LEARNABLE[name])
    params = layer.init(KEY, x, T_LONG)

    def loss(x):
        s, m = layer.apply(params, x, T_LONG)
        return jnp.sum(s) + jnp.sum(m)

    over_t = [  # the broadcast's transpose: reduce_sum[axes=(0,)] of (T, 3, 5)
        e
        for e in _eqns(jax.make_jaxpr(jax.grad(loss))(x).jaxpr)
        if e.primitive.name == "reduce_sum"
        and e.invars[0].aval.shape == (T_LONG, 3, 5)
        and e.params["axes"] == (0,)
    ]
    assert over_t == []
    assert _copies_per_step(jax.grad(loss), x, t=T_LONG) == []


@pytest.mark.parametrize("name", NEURONS)
@pytest.mark.parametrize("front", ["linen", "nnx"])
def test_no_per_step_copy_of_the_sequence_in_any_neuron(name, front):
    """Every neuron, Linen and NNX, default options and every parameter learnable
    (and the snnTorch order): no copy of size T inside a loop of the compiled
    forward + backward."""
    x = jax.random.normal(KEY, (T_LONG, 3, 5)) + 0.5
    for options in ({}, {"reset_delay": True, "spike_at_threshold": False}):
        fields = {**ALL_LEARNABLE[name], **options}
        if front == "linen":
            layer = getattr(L, name)(**fields)
            params = layer.init(KEY, x)

            def loss(p, x):
                s, m = layer.apply(p, x)  # noqa: B023 (used within this iteration)
                return jnp.sum(s) + jnp.sum(m)
        else:
            layer = getattr(N, name)(**fields, in_features=5, rngs=nnx.Rngs(0))
            graph, params = nnx.split(layer)

            def loss(p, x):
                s, m = nnx.merge(graph, p)(x)  # noqa: B023 (used within this iteration)
                return jnp.sum(s) + jnp.sum(m)

        assert _copies_per_step(jax.value_and_grad(loss, argnums=(0, 1)), params, x, t=T_LONG) == []


@pytest.mark.parametrize(
    "order",
    [dict(reset_delay=True, fire_first=True, detach_reset=False), dict(), dict(reset_delay=True)],
)
def test_hand_written_lif_gradient_keeps_fewer_stacks(order):
    """The scan writes its one residual over the currents and stacks nothing else
    (spikes and membranes come from the residual afterwards), so the compiled gradient
    of Dense (with bias) → LIF needs two (T, B, N) stacks less temporary memory than
    autodiff of the plain scan (XLA's buffer assignment, no timing; a residual stacked
    as the scan's output instead of written over the currents saves only one)."""
    T_, B_, N_ = 64, 8, 256
    stack = T_ * B_ * N_ * 4
    x = jax.random.normal(KEY, (T_, B_, N_))
    params = (jax.random.normal(KEY, (N_, N_)) / 16, jnp.zeros(N_))

    def temp(lif):
        def f(p):
            s, _ = lif(x @ p[0] + p[1], beta=0.9, threshold=1.0, spike_fn=get_unit("atan"), **order)
            return jnp.sum(s)

        return (
            jax.jit(jax.value_and_grad(f))
            .lower(params)
            .compile()
            .memory_analysis()
            .temp_size_in_bytes
        )

    assert temp(spiking.lif_dynamics) <= temp(reference_lif) - 1.9 * stack  # + small buffers


def test_field_specs_defaults_and_decay_edges():
    from htaf_jax.spiking import fields as F

    F.check_decay("beta", 0.0)  # a fixed decay may be 0 (no memory) or 1 (no leak)
    F.check_decay("beta", 1.0)
    for edge in (0.0, 1.0):
        with pytest.raises(ValueError, match="learnable decay needs 0 < beta < 1"):
            F.check_decay("beta", edge, learn=True)
    with pytest.raises(ValueError, match="learnable decay needs 0 < alpha < 1"):
        F.decay_to_logit(1.0, "alpha")  # not log(1/0)
    # frozen: a spec's values were checked once, in __post_init__, and stay checked;
    # keyword-only: a positional number cannot land in a field by its place in the list
    for spec in (F.LIFFields, F.IFFields, F.RecurrentLIFFields, F.SynapticFields, F.ALIFFields):
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec().threshold = -1.0  # pyright: ignore[reportAttributeAccessIssue]
        with pytest.raises(TypeError, match="positional"):
            spec(1.0)  # pyright: ignore[reportCallIssue]
    # the default RecurrentLIF is all-to-all (needs its kernel's size); one-to-one starts at V = 1
    with pytest.raises(ValueError, match="needs in_features and rngs"):
        N.RecurrentLIF()
    one = N.RecurrentLIF(all_to_all=False)
    np.testing.assert_array_equal(one.recurrent_weight[...], 1.0)
    # nothing is learned unless asked: the default neurons hold no parameters
    for cls in (N.LIF, N.IF, N.Synaptic, N.ALIF):
        assert not jax.tree.leaves(nnx.state(cls(), nnx.Param)), cls.__name__
    # the default ALIF's adaptation scale is γ = 1
    cur = jnp.full((8, 1), 1.2)
    alif = lambda **kw: np.asarray(N.ALIF(**kw)(cur)[0])  # noqa: E731
    np.testing.assert_array_equal(alif(), alif(adapt_scale=1.0))
    assert not np.array_equal(alif(), alif(adapt_scale=2.0))
    # the default LIF detaches its reset: its gradient is the detached one, not the other
    cur = jnp.array([0.6, 0.7, 0.2, 0.9, 0.4, 1.3]).reshape(6, 1)
    grad = lambda **kw: jax.grad(
        lambda c: jnp.sum(jnp.arange(1.0, 7.0)[:, None] * N.LIF(**kw)(c)[0])
    )(cur)  # noqa: E731
    np.testing.assert_array_equal(grad(), grad(detach_reset=True))
    assert not np.allclose(grad(), grad(detach_reset=False))


def test_core_dynamics_defaults_detach_the_reset_and_fire_at_threshold():
    from htaf_jax.spiking.lif import threshold_spike

    x = jnp.array([-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(threshold_spike(HTAF, x), [0.0, 1.0, 1.0])  # H(0) = 1
    np.testing.assert_array_equal(threshold_spike(HTAF, x, False), [0.0, 0.0, 1.0])
    # a plain callable with H(0) = 0 forced: U − θ = 0 at t = 0 keeps quiet, = 1 at t = 1 fires
    step = lambda v: (v >= 0).astype(v.dtype)  # noqa: E731
    cur = jnp.array([1.0, 1.5]).reshape(2, 1)
    spikes, _ = spiking.lif_dynamics(
        cur, beta=0.5, threshold=1.0, spike_fn=step, spike_at_threshold=False
    )
    np.testing.assert_array_equal(spikes[:, 0], [0.0, 1.0])
    # lif_dynamics and recurrent_lif_dynamics detach the reset unless told otherwise
    cur = jnp.array([0.6, 0.7, 0.2, 0.9, 0.4, 1.3]).reshape(6, 1)
    weights = jnp.arange(1.0, 7.0)[:, None]
    for dyn in (
        functools.partial(spiking.lif_dynamics, beta=0.8, threshold=1.0, spike_fn=HTAF),
        functools.partial(
            spiking.recurrent_lif_dynamics,
            recurrent=lambda s: 0.3 * s,
            beta=0.8,
            threshold=1.0,
            spike_fn=HTAF,
        ),
    ):
        grad = lambda f=dyn, **kw: jax.grad(lambda c: jnp.sum(weights * f(c, **kw)[0]))(cur)  # noqa: E731
        np.testing.assert_array_equal(grad(), grad(detach_reset=True))
        assert not np.allclose(grad(), grad(detach_reset=False))
