"""Every registry entry through the same checks (optax-style), against
float64 formulas written here from the peers' documentation."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf as np_erf

import htaf_jax as H


def _sig(z):
    return 1 / (1 + np.exp(-z))


# name: (documented defaults, float64 derivative of H, float64 smooth or None)
DOCUMENTED = {
    "htaf": ({"alpha": 4.0, "beta": 1.0},
             lambda x, alpha, beta: alpha * beta * _sig(alpha * np.tanh(beta * x))
             * (1 - _sig(alpha * np.tanh(beta * x))) / np.cosh(beta * x) ** 2,
             lambda x, alpha, beta: _sig(alpha * np.tanh(beta * x))),
    "sigmoid": ({"alpha": 4.0}, lambda x, alpha: alpha * _sig(alpha * x) * (1 - _sig(alpha * x)),
                lambda x, alpha: _sig(alpha * x)),
    "atan": ({"alpha": 2.0}, lambda x, alpha: alpha / 2 / (1 + (math.pi / 2 * alpha * x) ** 2),
             lambda x, alpha: np.arctan(math.pi / 2 * alpha * x) / math.pi + 0.5),
    "fast_sigmoid": ({"slope": 25.0}, lambda x, slope: 1 / (slope * np.abs(x) + 1) ** 2,
                     lambda x, slope: 0.5 + x / (1 + slope * np.abs(x))),
    "triangle": ({"gamma": 0.3}, lambda x, gamma: gamma * np.maximum(0, 1 - np.abs(x)), None),
    "rectangle": ({"width": 1.0}, lambda x, width: (np.abs(x) < width / 2) / width, None),
    "piecewise_exp": ({"alpha": 1.0}, lambda x, alpha: alpha / 2 * np.exp(-alpha * np.abs(x)),
                      lambda x, alpha: np.where(x < 0, 0.5 * np.exp(alpha * x),
                                                1 - 0.5 * np.exp(-alpha * x))),
    "erf": ({"alpha": 2.0}, lambda x, alpha: alpha / math.sqrt(math.pi) * np.exp(-(alpha * x) ** 2),
            lambda x, alpha: 0.5 * (1 + np_erf(alpha * x))),
    "straight_through": ({}, lambda x: np.ones_like(x), None),
    "ste_hardtanh": ({"clip": 1.0}, lambda x, clip: 0.5 * (np.abs(x) <= clip), None),
    "approx_sign": ({}, lambda x: np.where(np.abs(x) < 1, 1 - np.abs(x), 0.0), None),
}

NAMES = sorted(DOCUMENTED)
# grid that avoids the kinks of piecewise entries, where the one-sided values differ
X = np.array([-3.0, -1.3, -0.9, -0.49, -0.3, -0.05, 0.02, 0.26, 0.51, 0.8, 1.2, 2.5], np.float32)


def test_registry_has_every_documented_entry():
    assert set(NAMES) <= set(H.list_surrogates())


@pytest.mark.parametrize("name", NAMES)
def test_entry(name):
    defaults, ref_grad, ref_smooth = DOCUMENTED[name]
    s = H.get_surrogate(name)
    assert s.kwargs == defaults, "defaults as documented"
    assert s.spec.citation, "every entry cites its source"
    want = ref_grad(X.astype(np.float64), **defaults)

    # closed form
    np.testing.assert_allclose(s.grad(X), want, rtol=2e-6, atol=1e-7)
    # hard form: exactly binary forward, H(0) = 1; backward equals the closed form
    hx = np.asarray(jax.jit(s.heaviside)(jnp.asarray(X)))
    np.testing.assert_array_equal(hx, (X >= 0).astype(np.float32))
    assert float(s(jnp.float32(0.0))) == 1.0 and float(s.sign(jnp.float32(0.0))) == 1.0
    g_hard = jax.jit(jax.vmap(jax.grad(s.heaviside)))(jnp.asarray(X))
    np.testing.assert_allclose(g_hard, want, rtol=2e-6, atol=1e-7)
    np.testing.assert_array_equal(s.sign(jnp.asarray(X)), np.where(X >= 0, 1.0, -1.0))
    g_sign = jax.vmap(jax.grad(s.sign))(jnp.asarray(X))
    np.testing.assert_allclose(g_sign, 2 * want, rtol=2e-6, atol=1e-7)
    # smooth form: its autodiff derivative is the closed form, and it matches the reference
    if s.has_smooth:
        g_smooth = jax.vmap(jax.grad(s.smooth))(jnp.asarray(X))
        np.testing.assert_allclose(g_smooth, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(float(s.smooth(jnp.float32(0.0))), 0.5, atol=1e-7)
        if ref_smooth is not None:
            np.testing.assert_allclose(s.smooth(X), ref_smooth(X.astype(np.float64), **defaults),
                                       rtol=1e-5, atol=1e-6)
    else:
        with pytest.raises(ValueError, match="no smooth forward"):
            s.smooth(X)
    # vmap over a batch and a 2-D input under jit
    x2 = jnp.asarray(X).reshape(3, 4)
    np.testing.assert_array_equal(jax.vmap(s)(x2), s(x2))
    # hyperparameters change the rule (entries with any)
    if defaults:
        key = next(iter(defaults))
        s2 = H.get_surrogate(name, **{key: defaults[key] * 2})
        np.testing.assert_allclose(s2.grad(X), ref_grad(X.astype(np.float64), **{**defaults, key: defaults[key] * 2}),
                                   rtol=2e-6, atol=1e-7)
    # hashable: usable as a static argument / Flax field
    assert hash(s) == hash(H.get_surrogate(name))


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as e:
        H.get_surrogate("atna")
    for name in NAMES:
        assert name in str(e.value)


def test_unknown_or_bad_hyperparameter():
    with pytest.raises(TypeError, match="valid: alpha"):
        H.get_surrogate("atan", slope=3.0)
    with pytest.raises(ValueError, match="atan.alpha"):
        H.get_surrogate("atan", alpha=-1.0)


def test_register_and_resolve_user_surrogates(monkeypatch):
    from htaf_jax import surrogates
    # A registry of its own, so the entry does not leak into other tests ("--surrogates all").
    monkeypatch.setattr(surrogates, "_REGISTRY", dict(surrogates._REGISTRY))
    name = "test_box2"
    H.register_surrogate(name, grad=lambda x, w: (jnp.abs(x) < w).astype(x.dtype) / (2 * w),
                         defaults={"w": 0.5}, citation="test")
    assert name in H.list_surrogates()
    with pytest.raises(ValueError, match="already registered"):
        H.register_surrogate(name, grad=lambda x: x)
    s = H.resolve_surrogate(name, w=1.0)
    np.testing.assert_allclose(jax.grad(s)(0.3), 0.5)
    assert H.resolve_surrogate(s) is s
    assert H.resolve_surrogate(s, w=2.0).kwargs == {"w": 2.0}

    # a plain callable spike function keeps its own gradient
    fn = H.get_surrogate("atan").heaviside
    c = H.resolve_surrogate(fn)
    np.testing.assert_array_equal(c.sign(jnp.array([-1.0, 1.0])), [-1.0, 1.0])
    np.testing.assert_allclose(c.grad(jnp.array([0.0, 0.5])), H.get_surrogate("atan").grad(jnp.array([0.0, 0.5])))
    with pytest.raises(TypeError, match="surrogate must be"):
        H.resolve_surrogate(3)


def test_straight_through_primitive_is_the_hard_form_of_every_entry():
    x = jnp.array([-0.2, 0.0, 0.7])
    for name in ("htaf", "atan"):
        s = H.get_surrogate(name)
        hard = lambda v, s=s: H.straight_through(v, s.spec.grad, **s.kwargs)  # noqa: E731
        np.testing.assert_array_equal(hard(x), s.heaviside(x))
        np.testing.assert_array_equal(hard(x), [0, 1, 1])
        np.testing.assert_allclose(jax.vmap(jax.grad(hard))(x), s.grad(x), rtol=1e-6)


LEARNABLE = [(n, k) for n in H.list_surrogates() for k in H.get_surrogate(n).kwargs
             if H.get_surrogate(n).has_smooth]


@pytest.mark.parametrize("name,key", LEARNABLE)
def test_array_hyperparameters_are_learnable(name, key):
    """A traced hyperparameter gets its true cotangent through the smooth form
    (central finite difference) and exactly zero through the hard form."""
    x = jnp.array([-0.7, -0.1, 0.05, 0.4, 1.3])
    value = H.get_surrogate(name).kwargs[key]
    smooth = lambda v: jnp.sum(H.get_surrogate(name, **{key: v}).smooth(x))  # noqa: E731
    g = jax.jit(jax.grad(smooth))(jnp.float32(value))
    h = 1e-2 * value
    fd = (float(smooth(value + h)) - float(smooth(value - h))) / (2 * h)
    np.testing.assert_allclose(float(g), fd, rtol=2e-2, atol=1e-4)
    hard = lambda v: jnp.sum(H.get_surrogate(name, **{key: v}).heaviside(x))  # noqa: E731
    assert float(jax.grad(hard)(jnp.float32(value))) == 0.0


def test_integer_input_is_rejected():
    with pytest.raises(TypeError, match="floating"):
        H.get_surrogate("htaf")(jnp.arange(3))
    with pytest.raises(TypeError, match="floating"):
        H.htaf(jnp.arange(3))
