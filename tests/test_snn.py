"""Spiking neurons, encoders, readouts and SNN models."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference_grads import assert_grads_equal, autodiff_reference

from htaf_jax.linen.spiking import IF, LIF
from htaf_jax.models.snn import SpikingConvNet, SpikingMLP
from htaf_jax.spiking import (
    latency_encode,
    lif_dynamics,
    membrane_readout,
    rate_encode,
    to_intensity,
)
from htaf_jax.units import get_unit

HTAF = get_unit("htaf")
KEY = jax.random.PRNGKey(0)


def _run(currents, **kw):
    kw.setdefault("spike_fn", HTAF)
    spikes, mems = lif_dynamics(jnp.asarray(currents, jnp.float32)[:, None], **kw)
    return np.asarray(spikes[:, 0]), np.asarray(mems[:, 0])


def test_lif_subtract_reset_hand_computed():
    # β = 0.5, θ = 1, I = 0.6: U' = 0.6, 0.9, 1.05 (fire → 0.05), 0.625, 0.9125, 1.05625 (fire).
    spikes, mems = _run([0.6] * 6, beta=0.5, threshold=1.0, reset="subtract")
    np.testing.assert_array_equal(spikes, [0, 0, 1, 0, 0, 1])
    np.testing.assert_allclose(mems, [0.6, 0.9, 0.05, 0.625, 0.9125, 0.05625], rtol=1e-5)


def test_lif_zero_reset_hand_computed():
    # Same input, hard reset: after each spike the membrane restarts from 0.
    spikes, mems = _run([0.6] * 6, beta=0.5, threshold=1.0, reset="zero")
    np.testing.assert_array_equal(spikes, [0, 0, 1, 0, 0, 1])
    np.testing.assert_allclose(mems, [0.6, 0.9, 0.0, 0.6, 0.9, 0.0], rtol=1e-6)


def test_if_neuron_integrates_without_leak_and_fires_at_threshold():
    # β = 1, I = 0.75 (exact in binary): 0.75; 1.5 → 0.5; 1.25 → 0.25; 1.0 = θ fires (H(0) = 1).
    spikes, mems = _run([0.75] * 4, beta=1.0, threshold=1.0)
    np.testing.assert_array_equal(spikes, [0, 1, 1, 1])
    np.testing.assert_array_equal(mems, [0.75, 0.5, 0.25, 0.0])


def test_decay_alone_is_geometric():
    spikes, mems = _run([0.5, 0, 0, 0], beta=0.8, threshold=1.0)
    np.testing.assert_array_equal(spikes, 0)
    np.testing.assert_allclose(mems, 0.5 * 0.8 ** np.arange(4), rtol=1e-6)


@pytest.mark.parametrize("detach", [True, False])
def test_reset_gradient_detached_or_not(detach):
    # One step, U' = I = 1.2 fires; U = U' − S·θ. dU/dI = 1 − θ·s'(U' − θ) unless detached.
    grad = jax.grad(lambda i: _sum_mem(i, detach))(jnp.float32(1.2))
    expected = 1.0 if detach else 1.0 - float(HTAF.grad(jnp.float32(0.2)))
    np.testing.assert_allclose(grad, expected, rtol=1e-5)


def _sum_mem(i, detach):
    _, mems = lif_dynamics(
        jnp.reshape(i, (1, 1)), beta=0.9, threshold=1.0, spike_fn=HTAF, detach_reset=detach
    )
    return jnp.sum(mems)


def test_time_constant_current_equals_broadcast_sequence():
    cur = jax.random.normal(KEY, (3, 5)) + 0.5
    a = lif_dynamics(cur, beta=0.9, threshold=1.0, spike_fn=HTAF, num_steps=7)
    b = lif_dynamics(jnp.broadcast_to(cur, (7, 3, 5)), beta=0.9, threshold=1.0, spike_fn=HTAF)
    chex.assert_trees_all_close(a, b)


def test_lif_module_spikes_exactly_binary_and_learnable_params():
    cur = 2.0 * jax.random.normal(KEY, (6, 4, 3))
    lif = LIF(beta=0.8, learn_beta=True, learn_threshold=True, per_neuron=True)
    variables = lif.init(KEY, cur)
    chex.assert_shape(variables["params"]["beta_logit"], (3,))
    np.testing.assert_allclose(jax.nn.sigmoid(variables["params"]["beta_logit"]), 0.8, rtol=1e-6)
    spikes, mems = lif.apply(variables, cur)
    chex.assert_shape([spikes, mems], (6, 4, 3))
    # The LIF update by hand in float64: V = βU + I, S = [V ≥ θ], U = V − Sθ (β 0.8, θ 1).
    u, ref_spikes, ref_mems = np.zeros((4, 3)), [], []
    for current in np.asarray(cur, np.float64):
        v = 0.8 * u + current
        ref_spikes.append((v >= 1.0).astype(np.float64))
        u = v - ref_spikes[-1]
        ref_mems.append(u)
    np.testing.assert_array_equal(spikes, np.stack(ref_spikes))
    np.testing.assert_allclose(mems, np.stack(ref_mems), rtol=1e-5, atol=1e-6)
    shared = LIF(learn_threshold=True).init(KEY, cur)["params"]["threshold"]
    chex.assert_shape(shared, ())


def test_if_rejects_a_leak():
    with pytest.raises(ValueError):
        IF(beta=0.9)


def test_rate_encoding_is_bernoulli_with_pixel_intensity():
    mean, std = 0.2860, 0.3530
    x = (jnp.array([[0.0, 0.25, 1.0]]) - mean) / std  # standardised intensities
    spikes = rate_encode(KEY, x, 4000, mean=mean, std=std)
    chex.assert_shape(spikes, (4000, 1, 3))
    assert set(np.unique(np.asarray(spikes))) <= {0.0, 1.0}
    np.testing.assert_allclose(spikes.mean(0)[0], [0.0, 0.25, 1.0], atol=0.03)
    np.testing.assert_array_equal(
        rate_encode(KEY, x, 5, mean=mean, std=std), rate_encode(KEY, x, 5, mean=mean, std=std)
    )
    # Odd T uses half of the last word's uniforms; steps are not copies of each other.
    many = rate_encode(KEY, jnp.full((1, 20000), 0.5), 3, mean=0.0, std=1.0)
    chex.assert_shape(many, (3, 1, 20000))
    np.testing.assert_allclose(many.mean(axis=(1, 2)), 0.5, atol=0.015)
    # Independent Bernoulli(½) steps agree with probability ½² + ½² = ½ (std 0.0035 here).
    for other in (1, 2):
        assert float(jnp.mean(many[0] == many[other])) == pytest.approx(0.5, abs=0.015)
    # The 16-bit level is rounded and compared strictly: p = 0 never fires, p = 0.75·2^-16
    # (level 1) fires about 16 times in 2^20 steps (e^-16 odds of none); truncating the level
    # to 0, or firing on u = level, would each fail here.
    edge = rate_encode(KEY, jnp.array([[0.0, 0.75 / 65536]]), 2**20, mean=0.0, std=1.0)
    counts = np.asarray(edge.sum(axis=0))[0]
    assert counts[0] == 0 and 4 <= counts[1] <= 40


def test_latency_encoding_one_spike_brighter_first():
    p = jnp.array([[0.0, 0.5, 1.0]])
    spikes = np.asarray(latency_encode(p, 5, mean=0.0, std=1.0))[:, 0]
    np.testing.assert_array_equal(spikes.sum(0), [0, 1, 1])  # black never fires
    assert spikes[0, 2] == 1 and spikes[2, 1] == 1  # t = round((1 − p)(T − 1))
    np.testing.assert_allclose(to_intensity(jnp.float32(-5.0), 0.2860, 0.3530), 0.0)
    np.testing.assert_allclose(to_intensity(jnp.float32(0.5), 0.25, 0.5), 0.5)
    # t is rounded: p = 0.3, T = 10 fires at round(6.3) = 6; brighter than 1 is clipped to 1
    spikes = np.asarray(latency_encode(jnp.array([[0.3, 1.7]]), 10, mean=0.0, std=1.0))[:, 0]
    np.testing.assert_array_equal(spikes.argmax(0), [6, 0])
    np.testing.assert_array_equal(spikes.sum(0), [1, 1])


def test_membrane_readout_leaky_mean():
    cur = jnp.ones((3, 1, 1))
    np.testing.assert_allclose(membrane_readout(cur, 0.5)[0, 0], (1 + 1.5 + 1.75) / 3)
    np.testing.assert_allclose(membrane_readout(cur)[0, 0], 1.0)
    np.testing.assert_allclose(membrane_readout(cur, 1.0)[0, 0], (1 + 2 + 3) / 3)  # no leak


def _images(b=2, side=8):
    # NumPy's draw: a jax.random draw of a 4-D shape costs XLA:CPU seconds to compile.
    return jnp.asarray(np.random.default_rng(0).standard_normal((b, side, side, 1)), jnp.float32)


def _init(model, x, rngs=KEY):
    """Jitted init (eagerly, each op compiles on its own) on the non-partitionable
    threefry: XLA:CPU compiles the partitionable draw of each kernel shape in seconds,
    and nothing checked here depends on which PRNG draws the initial weights."""
    with jax.threefry_partitionable(False):
        return jax.jit(lambda r: model.init(r, x, train=False))(rngs)


def _apply(model, variables, x, train=True):
    return jax.jit(
        lambda v, x: model.apply(
            v,
            x,
            train=train,
            rngs={"sample": KEY, "dropout": KEY},
            mutable=["batch_stats", "intermediates"],
        )
    )(variables, x)


@pytest.mark.parametrize(
    "encoding,readout", [("direct", "membrane"), ("rate", "spike_count"), ("latency", "membrane")]
)
def test_spiking_mlp_shapes_and_sown_rates(encoding, readout):
    model = SpikingMLP(
        hidden=(16, 8), num_steps=3, encoding=encoding, readout=readout, use_batchnorm=True
    )
    variables = _init(model, _images(), {"params": KEY, "sample": KEY})

    @jax.jit
    def run(v):
        logits, state = model.apply(
            v,
            _images(),
            train=True,
            rngs={"sample": KEY, "dropout": KEY},
            mutable=["batch_stats", "intermediates"],
            capture_intermediates=lambda m, _: (m.name or "").startswith("lif"),
        )
        # The LIF calls' outputs and the sown rates (the captured calls' other entries
        # hold Python values, which a jitted function cannot return).
        return logits, {
            k: v if k.startswith("spike_rate") else {"__call__": v["__call__"]}
            for k, v in state["intermediates"].items()
        }

    logits, rates = run(variables)
    chex.assert_shape(logits, (2, 10))
    n_spiking = 3 if readout == "spike_count" else 2
    assert sorted(k for k in rates if k.startswith("spike_rate")) == [
        f"spike_rate_layer{i}" for i in range(n_spiking)
    ]
    for i in range(n_spiking):  # each layer's rate: the mean of its neurons' spikes
        ((spikes, _),) = rates[f"lif{i}"]["__call__"]
        assert float(rates[f"spike_rate_layer{i}"][0]) == pytest.approx(float(spikes.mean()))
    if readout == "spike_count":  # counts of binary spikes: integers in [0, T], rate × T
        np.testing.assert_array_equal(logits, jnp.round(logits))
        assert float(logits.min()) >= 0 and float(logits.max()) <= 3
        assert float(logits.mean()) / 3 == pytest.approx(
            float(rates["spike_rate_layer2"][0]), rel=1e-6
        )


@pytest.mark.slow  # compiles the spiking convnet (make test-slow)
def test_spiking_convnet_rates_are_its_layers_spike_means():
    model = SpikingConvNet(features=(4, 8), num_steps=2)
    variables = _init(model, _images())
    logits, state = model.apply(
        variables,
        _images(),
        train=False,
        mutable=["intermediates"],
        capture_intermediates=lambda m, _: (m.name or "").startswith("lif"),
    )
    chex.assert_shape(logits, (2, 10))
    inter = state["intermediates"]
    assert sorted(k for k in inter if k.startswith("spike_rate")) == [
        "spike_rate_layer0",
        "spike_rate_layer1",
    ]
    for i in range(2):  # binary spikes, and the sown rate is their mean
        ((spikes, _),) = inter[f"lif{i}"]["__call__"]
        assert set(np.unique(np.asarray(spikes))) <= {0.0, 1.0}
        assert float(inter[f"spike_rate_layer{i}"][0]) == pytest.approx(float(spikes.mean()))


@pytest.mark.parametrize(
    "model",
    [
        SpikingMLP(
            hidden=(16, 8),
            num_steps=4,
            encoding="rate",
            learn_beta=True,
            learn_threshold=True,
            per_neuron=True,
            threshold=0.5,
            detach_reset=False,
        ),
        SpikingConvNet(
            features=(4, 8), num_steps=3, learn_beta=True, learn_threshold=True, threshold=0.5
        ),
    ],
)
def test_gradients_equal_autodiff_of_the_reference_scan(model, monkeypatch):
    """Every parameter's gradient (learnable β and θ too) through the LIF scan's
    hand-written backward equals autodiff of the same model run on the reference scan
    (tests/reference_grads.py), and is not zero."""
    x, y = _images(4), jnp.array([0, 1, 2, 3])

    def grads(rngs):  # init and gradients: one program
        variables = model.init(rngs, x, train=False)

        def loss(params):
            logits, _ = model.apply(
                {**variables, "params": params},
                x,
                train=True,
                rngs={"sample": KEY, "dropout": KEY},
                mutable=["batch_stats", "intermediates"],
            )
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

        return jax.grad(loss)(variables["params"])

    with jax.threefry_partitionable(False):
        got = jax.jit(grads)({"params": KEY, "sample": KEY})
        autodiff_reference(monkeypatch)
        want = jax.jit(grads)({"params": KEY, "sample": KEY})
    assert_grads_equal(got, want)


def test_raw_callable_surrogate():
    """A plain callable spike function (its own gradient, through the scan's vjp path)
    gives the registry unit's logits and gradients."""
    model = SpikingMLP(hidden=(8,), num_steps=2, encoding="direct", surrogate=lambda x: HTAF(x))
    same = SpikingMLP(hidden=(8,), num_steps=2, encoding="direct", surrogate="htaf")
    variables = _init(model, _images())
    logits = _apply(model, variables, _images())[0]
    chex.assert_shape(logits, (2, 10))
    np.testing.assert_allclose(logits, _apply(same, variables, _images())[0], rtol=1e-6)

    def grads(m):
        return jax.jit(
            jax.grad(lambda p: jnp.sum(_apply(m, {**variables, "params": p}, _images())[0] ** 2))
        )(variables["params"])

    assert_grads_equal(grads(model), grads(same), rtol=1e-5)


def test_model_config_typos_fail_but_engine_fields_pass():
    import ml_collections

    from htaf_jax.models import build_model

    cfg = ml_collections.ConfigDict(
        {
            "name": "snn_mlp",
            "hidden": (8,),
            "num_steps": 2,
            "num_classes": 10,
            "total_train_steps": 100,
        }
    )
    build_model(cfg)  # total_train_steps is set by the engine for every model
    cfg.hiden = (8,)
    with pytest.raises(ValueError, match=r"SpikingMLP has no fields \['hiden'\]"):
        build_model(cfg)
