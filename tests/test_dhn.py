"""Deep Heaviside networks: variants, training modes, binary evaluation."""

import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference_grads import assert_grads_equal, autodiff_reference

from htaf_jax.models.dhn import HeavisideCNN, HeavisideMLP

KEY = jax.random.PRNGKey(0)
# NumPy's draw: a jax.random draw of a 4-D shape costs XLA:CPU seconds to compile.
X = jnp.asarray(np.random.default_rng(0).standard_normal((4, 8, 8, 1)), jnp.float32)
Y = jnp.array([0, 1, 2, 3])


def _init(model):
    """Jitted init (eagerly, each op compiles on its own) on the non-partitionable
    threefry: XLA:CPU compiles the partitionable draw of each kernel shape in seconds,
    and nothing these tests check depends on which PRNG draws the initial weights."""
    with jax.threefry_partitionable(False):
        return jax.jit(lambda k: model.init(k, X, train=False))(KEY)


def _head_input(model, variables, train):
    """Logits and the input of the head (the last hidden layer's units), jitted."""

    @jax.jit
    def run(variables):
        seen = {}

        def interceptor(next_fun, args, kwargs, context):
            if context.module.name == "head" and context.method_name == "__call__":
                seen["h"] = args[0]
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(interceptor):
            logits, _ = model.apply(
                variables, X, train=train, mutable=["batch_stats", "intermediates"]
            )
        return logits, seen["h"]

    logits, h = run(variables)
    return logits, np.asarray(h)


@pytest.mark.parametrize("cls", [HeavisideMLP, HeavisideCNN])
@pytest.mark.parametrize("variant", ["plain", "skip", "mixed"])
def test_evaluation_units_are_exactly_heaviside(cls, variant):
    model = cls(depth=3, variant=variant, mode="smooth", **_small(cls))
    variables = _init(model)
    logits, h = _head_input(model, variables, train=False)
    chex.assert_shape(logits, (4, 10))
    if variant == "mixed":  # the first quarter of units is linear
        channels = model.width if cls is HeavisideMLP else model.features
        h = h.reshape(h.shape[0], -1, channels)[..., channels // 4 :]
    assert set(np.unique(h)) == {0.0, 1.0}


def _small(cls):
    return {"width": 16} if cls is HeavisideMLP else {"features": 4}


def test_smooth_mode_trains_on_smooth_units_hard_mode_on_binary_ones():
    smooth = HeavisideMLP(depth=2, width=16, mode="smooth")
    variables = _init(smooth)
    _, h = _head_input(smooth, variables, train=True)
    assert np.all((h > 0) & (h < 1)) and len(np.unique(h)) > 2
    hard = HeavisideMLP(depth=2, width=16, mode="hard")
    _, h = _head_input(hard, variables, train=True)
    assert set(np.unique(h)) == {0.0, 1.0}


def test_hard_mode_without_batchnorm_trains_the_network_it_evaluates():
    model = HeavisideMLP(depth=3, width=16, mode="hard", use_batchnorm=False)
    variables = _init(model)
    train_logits, eval_logits = jax.jit(
        lambda v: (
            model.apply(v, X, train=True, mutable=["intermediates"])[0],
            model.apply(v, X, train=False),
        )
    )(variables)
    np.testing.assert_array_equal(train_logits, eval_logits)


@pytest.mark.parametrize(
    "model",
    [
        HeavisideMLP(depth=3, width=16, variant="plain", mode="smooth"),
        HeavisideMLP(depth=3, width=16, variant="skip", mode="hard"),
        HeavisideMLP(depth=3, width=16, variant="mixed", mode="hard", surrogate="atan"),
        HeavisideCNN(depth=3, features=4, variant="skip", mode="hard"),
    ],
)
def test_gradients_equal_autodiff_of_the_reference_units(model, monkeypatch):
    """Every parameter's gradient through the hard units' custom VJP equals autodiff of the
    same model with reference units (tests/reference_grads.py), and is not zero."""
    variables = _init(model)

    def grads(params):
        def loss(p):
            logits, _ = model.apply(
                {**variables, "params": p}, X, train=True, mutable=["batch_stats", "intermediates"]
            )
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), Y[:, None], 1))

        return jax.grad(loss)(params)

    g = jax.jit(grads)(variables["params"])
    assert "layer0" in g and "head" in g
    autodiff_reference(monkeypatch)
    assert_grads_equal(g, jax.jit(grads)(variables["params"]))


def test_smooth_mode_needs_a_smooth_surrogate():
    model = HeavisideMLP(depth=2, width=8, mode="smooth", surrogate="straight_through")
    variables = jax.eval_shape(lambda: model.init(KEY, X, train=False))  # evaluation form: fine
    with pytest.raises(ValueError, match="no smooth form"):
        jax.eval_shape(
            lambda v: model.apply(v, X, train=True, mutable=["batch_stats", "intermediates"]),
            variables,
        )


def test_invalid_variant_is_rejected():
    with pytest.raises(ValueError, match="variant"):
        jax.eval_shape(lambda: HeavisideMLP(variant="resnet").init(KEY, X))


def test_backward_gain_closed_forms_and_float64_quadrature():
    from htaf_jax.heaviside import backward_gain

    assert backward_gain("straight_through") == pytest.approx(2.0, rel=1e-6)  # s' = 1
    # ste_hardtanh: s' = ½·1[|z| ≤ 1] → r = 2·√(¼·P(|z| ≤ 1)) = √erf(1/√2)
    assert backward_gain("ste_hardtanh") == pytest.approx(math.sqrt(math.erf(2**-0.5)), rel=1e-3)
    z = np.linspace(-30.0, 30.0, 600_001)  # HTAF against a float64 trapezoid rule
    for a, b in [(4.0, 1.0), (1.0, 0.25), (8.0, 2.0)]:
        u = a * np.tanh(b * z)
        sig = 1.0 / (1.0 + np.exp(-u))
        grad = a * b * sig * (1.0 - sig) / np.cosh(b * z) ** 2
        ref = 2.0 * np.sqrt(np.trapezoid(grad**2 * np.exp(-(z**2) / 2), z) / np.sqrt(2 * np.pi))
        assert backward_gain("htaf", alpha=a, beta=b) == pytest.approx(ref, rel=1e-4)


@jax.jit
def _plain_dhn_layer_grad_norms(alpha, beta):
    """The weight-gradient norm of each hidden layer of a plain depth-6, width-512 DHN at
    initialisation on a random batch of 1024. One compiled program for every (α, β) (they
    are traced), the same draws and network as an eager run."""
    import optax

    from htaf_jax.units import resolve_unit

    model = HeavisideMLP(depth=6, width=512, surrogate=resolve_unit("htaf", alpha=alpha, beta=beta))
    x = jax.random.normal(jax.random.key(0), (1024, 8, 8, 1))
    y = jax.random.randint(jax.random.key(1), (1024,), 0, 10)
    variables = model.init(jax.random.key(2), x, train=False)

    def loss(params):
        logits, _ = model.apply(
            {**variables, "params": params}, x, train=True, mutable=["batch_stats", "intermediates"]
        )
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    grads = jax.grad(loss)(variables["params"])
    return [optax.tree.norm(grads[f"layer{i}"]) for i in range(6)]


@pytest.mark.parametrize("alpha,beta", [(4.0, 1.0), (2.0, 0.5), (8.0, 2.0)])
def test_backward_gain_predicts_a_plain_dhn_gradient_decay_at_init(alpha, beta):
    # Per-layer ratio of hidden weight-gradient norms (layers 1..L−1) of a real plain DHN
    # at initialisation against the mean-field r of htaf_jax.heaviside.backward_gain.
    from htaf_jax.heaviside import backward_gain
    from htaf_jax.units import resolve_unit

    unit = resolve_unit("htaf", alpha=alpha, beta=beta)
    norms = [float(n) for n in _plain_dhn_layer_grad_norms(jnp.float32(alpha), jnp.float32(beta))]
    measured = (norms[1] / norms[-1]) ** (1 / 4)
    assert measured == pytest.approx(backward_gain(unit), rel=0.03)
