"""Every step unit of the registry through the same checks (optax-style), against
float64 formulas written here from the peers' documentation; peak slopes."""

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
    "htaf": (
        {"alpha": 4.0, "beta": 1.0},
        lambda x, alpha, beta: (
            alpha
            * beta
            * _sig(alpha * np.tanh(beta * x))
            * (1 - _sig(alpha * np.tanh(beta * x)))
            / np.cosh(beta * x) ** 2
        ),
        lambda x, alpha, beta: _sig(alpha * np.tanh(beta * x)),
    ),
    "sigmoid": (
        {"alpha": 4.0},
        lambda x, alpha: alpha * _sig(alpha * x) * (1 - _sig(alpha * x)),
        lambda x, alpha: _sig(alpha * x),
    ),
    "atan": (
        {"alpha": 2.0},
        lambda x, alpha: alpha / 2 / (1 + (math.pi / 2 * alpha * x) ** 2),
        lambda x, alpha: np.arctan(math.pi / 2 * alpha * x) / math.pi + 0.5,
    ),
    "fast_sigmoid": (
        {"slope": 25.0},
        lambda x, slope: 1 / (slope * np.abs(x) + 1) ** 2,
        lambda x, slope: 0.5 + x / (1 + slope * np.abs(x)),
    ),
    "triangle": ({"gamma": 0.3}, lambda x, gamma: gamma * np.maximum(0, 1 - np.abs(x)), None),
    "rectangle": ({"width": 1.0}, lambda x, width: (np.abs(x) < width / 2) / width, None),
    "piecewise_exp": (
        {"alpha": 1.0},
        lambda x, alpha: alpha / 2 * np.exp(-alpha * np.abs(x)),
        lambda x, alpha: np.where(x < 0, 0.5 * np.exp(alpha * x), 1 - 0.5 * np.exp(-alpha * x)),
    ),
    "erf": (
        {"alpha": 2.0},
        lambda x, alpha: alpha / math.sqrt(math.pi) * np.exp(-((alpha * x) ** 2)),
        lambda x, alpha: 0.5 * (1 + np_erf(alpha * x)),
    ),
    "straight_through": ({}, lambda x: np.ones_like(x), None),
    "ste_sign": ({"clip_value": 1.0}, lambda x, clip_value: 0.5 * (np.abs(x) <= clip_value), None),
    "swish_sign": (
        {"beta": 5.0},
        lambda x, beta: (
            beta * (2 - beta * x * np.tanh(beta * x / 2)) / (2 * (1 + np.cosh(beta * x)))
        ),
        None,
    ),
    "approx_sign": ({}, lambda x: np.where(np.abs(x) < 1, 1 - np.abs(x), 0.0), None),
}

NAMES = sorted(DOCUMENTED)
# grid that avoids the kinks of piecewise entries, where the one-sided values differ
X = np.array([-3.0, -1.3, -0.9, -0.49, -0.3, -0.05, 0.02, 0.26, 0.51, 0.8, 1.2, 2.5], np.float32)


def test_registry_has_every_documented_entry():
    assert set(NAMES) <= set(H.list_units())


@pytest.mark.parametrize("name", NAMES)
def test_entry(name):
    defaults, ref_grad, ref_smooth = DOCUMENTED[name]
    s = H.get_unit(name)
    assert s.kwargs == defaults, "defaults as documented"
    assert s.spec.citation, "every entry cites its source"
    want = ref_grad(X.astype(np.float64), **defaults)

    # closed form
    np.testing.assert_allclose(s.grad(X), want, rtol=2e-6, atol=1e-7)
    # hard form: exactly binary forward, H(0) = 1; backward equals the closed form
    hx = np.asarray(jax.jit(s)(jnp.asarray(X)))
    np.testing.assert_array_equal(hx, (X >= 0).astype(np.float32))
    assert float(s(jnp.float32(0.0))) == 1.0 and float(s.sign(jnp.float32(0.0))) == 1.0
    g_hard = jax.jit(jax.vmap(jax.grad(s)))(jnp.asarray(X))
    np.testing.assert_allclose(g_hard, want, rtol=2e-6, atol=1e-7)
    np.testing.assert_array_equal(s.sign(jnp.asarray(X)), np.where(X >= 0, 1.0, -1.0))
    g_sign = jax.vmap(jax.grad(s.sign))(jnp.asarray(X))
    # (swish_sign's 2 − βx·tanh(βx/2) cancels near its root in float32, as Larq's)
    np.testing.assert_allclose(
        g_sign, 2 * want, rtol=2e-6, atol=5e-7 if name == "swish_sign" else 1e-7
    )
    # smooth form: its autodiff derivative is the closed form, and it matches the reference
    if s.has_smooth:
        g_smooth = jax.vmap(jax.grad(s.smooth))(jnp.asarray(X))
        np.testing.assert_allclose(g_smooth, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(float(s.smooth(jnp.float32(0.0))), 0.5, atol=1e-7)
        if ref_smooth is not None:
            np.testing.assert_allclose(
                s.smooth(X), ref_smooth(X.astype(np.float64), **defaults), rtol=1e-5, atol=1e-6
            )
    else:
        with pytest.raises(ValueError, match="no smooth form"):
            s.smooth(X)
    # vmap over a batch and a 2-D input under jit
    x2 = jnp.asarray(X).reshape(3, 4)
    np.testing.assert_array_equal(jax.vmap(s)(x2), s(x2))
    # hyperparameters change the rule (entries with any)
    if defaults:
        key = next(iter(defaults))
        s2 = H.get_unit(name, **{key: defaults[key] * 2})
        np.testing.assert_allclose(
            s2.grad(X),
            ref_grad(X.astype(np.float64), **{**defaults, key: defaults[key] * 2}),
            rtol=2e-6,
            atol=1e-7,
        )
    # hashable: usable as a static argument / Flax field
    assert hash(s) == hash(H.get_unit(name))


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as e:
        H.get_unit("atna")
    for name in NAMES:
        assert name in str(e.value)


def test_unknown_or_bad_hyperparameter():
    with pytest.raises(TypeError, match="valid: alpha"):
        H.get_unit("atan", slope=3.0)
    with pytest.raises(ValueError, match="atan.alpha"):
        H.get_unit("atan", alpha=-1.0)


def test_register_and_resolve_user_surrogates(monkeypatch):
    from htaf_jax import units

    # A registry of its own, so the entry does not leak into other tests ("--surrogates all").
    monkeypatch.setattr(units, "_REGISTRY", dict(units._REGISTRY))
    name = "test_box2"
    H.register_unit(
        name,
        grad=lambda x, w: (jnp.abs(x) < w).astype(x.dtype) / (2 * w),
        defaults={"w": 0.5},
        citation="test",
    )
    assert name in H.list_units()
    with pytest.raises(ValueError, match="already registered"):
        H.register_unit(name, grad=lambda x: x)
    s = H.resolve_unit(name, w=1.0)
    np.testing.assert_allclose(jax.grad(s)(0.3), 0.5)
    assert H.resolve_unit(s) is s
    assert H.resolve_unit(s, w=2.0).kwargs == {"w": 2.0}

    # a plain callable spike function keeps its own gradient
    fn = H.get_unit("atan").sign
    c = H.resolve_unit(fn)
    np.testing.assert_array_equal(c(jnp.array([-1.0, 1.0])), [-1.0, 1.0])
    np.testing.assert_allclose(
        c.grad(jnp.array([0.0, 0.5])), 2 * H.get_unit("atan").grad(jnp.array([0.0, 0.5]))
    )
    with pytest.raises(TypeError, match="a unit is"):
        H.resolve_unit(3)


def test_straight_through_primitive_is_the_hard_form_of_every_entry():
    x = jnp.array([-0.2, 0.0, 0.7])
    for name in ("htaf", "atan"):
        s = H.get_unit(name)
        hard = lambda v, s=s: H.straight_through(v, s.spec.grad, **s.kwargs)  # noqa: E731
        np.testing.assert_array_equal(hard(x), s(x))
        np.testing.assert_array_equal(hard(x), [0, 1, 1])
        np.testing.assert_allclose(jax.vmap(jax.grad(hard))(x), s.grad(x), rtol=1e-6)


LEARNABLE = [
    (n, k)
    for n in H.list_units()
    for k in H.get_unit(n).kwargs
    if H.get_unit(n).has_smooth and n != "ste_sign"
]


@pytest.mark.parametrize("name,key", LEARNABLE)
def test_array_hyperparameters_are_learnable(name, key):
    """A traced hyperparameter gets its true cotangent through the smooth form
    (central finite difference) and exactly zero through the hard form."""
    x = jnp.array([-0.7, -0.1, 0.05, 0.4, 1.3])
    value = H.get_unit(name).kwargs[key]
    smooth = lambda v: jnp.sum(H.get_unit(name, **{key: v}).smooth(x))  # noqa: E731
    g = jax.jit(jax.grad(smooth))(jnp.float32(value))
    h = 1e-2 * value
    fd = (float(smooth(value + h)) - float(smooth(value - h))) / (2 * h)
    np.testing.assert_allclose(float(g), fd, rtol=2e-2, atol=1e-4)
    hard = lambda v: jnp.sum(H.get_unit(name, **{key: v})(x))  # noqa: E731
    assert float(jax.grad(hard)(jnp.float32(value))) == 0.0


def test_integer_input_is_rejected():
    with pytest.raises(TypeError, match="floating"):
        H.get_unit("htaf")(jnp.arange(3))
    with pytest.raises(TypeError, match="floating"):
        H.htaf(jnp.arange(3))


SMOOTH_BACKWARD = [
    "htaf",
    "sigmoid",
    "atan",
    "fast_sigmoid",
    "erf",
    "triangle",
    "rectangle",
    "piecewise_exp",
]


def _fd_peak(u) -> float:
    """max over a fine grid of the smooth form's central finite difference (float64)."""
    with jax.enable_x64():
        x = jnp.linspace(-4.0, 4.0, 160_001, dtype=jnp.float64)
        h = 1e-5
        fd = (u.smooth(x + h) - u.smooth(x - h)) / (2 * h)
        return float(jnp.max(fd))


@pytest.mark.parametrize("name", SMOOTH_BACKWARD)
@pytest.mark.parametrize("k", [0.5, 1.0, 4.0, 32.0])
def test_peak_slope_formula_and_its_inverse_match_a_finite_difference_peak(name, k):
    if name == "fast_sigmoid":  # peak 1 whatever the slope: no inverse for another k
        assert H.get_unit(name, slope=k * 10).peak_slope == 1.0
        if k != 1.0:
            with pytest.raises(ValueError, match="peak slope is 1"):
                H.peak_slope_hparams(name, k)
        k = 1.0
    hp = H.peak_slope_hparams(name, k)
    u = H.get_unit(name, **hp)
    assert u.peak_slope == pytest.approx(k, rel=1e-12)
    # the rectangle's finite difference straddles its edges: its plateau is its peak
    assert _fd_peak(u) == pytest.approx(k, rel=2e-3 if name != "rectangle" else 1e-6)
    assert float(jnp.max(u.grad(jnp.linspace(-4.0, 4.0, 80_001)))) == pytest.approx(k, rel=1e-5)


def test_htaf_peak_slope_solves_alpha_at_beta_or_beta_at_alpha():
    assert H.peak_slope_hparams("htaf", 8.0) == {"alpha": 32.0, "beta": 1.0}
    assert H.peak_slope_hparams("htaf", 8.0, alpha=4.0) == {"alpha": 4.0, "beta": 8.0}
    assert H.peak_slope_hparams("htaf", 8.0, beta=2.0) == {"alpha": 16.0, "beta": 2.0}
    with pytest.raises(ValueError, match="not both"):
        H.peak_slope_hparams("htaf", 8.0, alpha=4.0, beta=1.0)
    with pytest.raises(ValueError, match="no peak-slope formula"):
        H.peak_slope_hparams("ste_tern", 1.0)


def test_unit_objects_edges_against_their_definitions():
    import dataclasses

    # HTAF's peak αβ/4 away from β = 1, against its finite-difference peak
    u = H.get_unit("htaf", alpha=4.0, beta=8.0)
    assert u.peak_slope == 8.0 and _fd_peak(u) == pytest.approx(8.0, rel=2e-3)
    with pytest.raises(ValueError, match="no peak-slope formula"):
        _ = H.get_unit("ste_tern").peak_slope
    # the rectangle's indicator is strict (Wu et al.: 1[|x| < a/2]): 0 on its edges
    np.testing.assert_array_equal(
        H.get_unit("rectangle", width=1.0).grad(jnp.array([-0.5, -0.25, 0.25, 0.5])),
        [0.0, 1.0, 1.0, 0.0],
    )
    # Python ints bind as floats; a None hyperparameter still compares and hashes by value
    assert type(H.get_unit("htaf", alpha=4).kwargs["alpha"]) is float
    a, b = H.get_unit("ste_tern", clip_value=None), H.get_unit("ste_tern", clip_value=None)
    assert a == b and hash(a) == hash(b) and a != H.get_unit("ste_tern")
    assert repr(H.get_unit("sigmoid", alpha=2.0)) == "StepUnit('sigmoid', alpha=2.0)"
    assert repr(H.get_unit("sigmoid", alpha=jnp.array(2.0))) == "StepUnit('sigmoid', alpha=<array>)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        u.hparams = ()  # pyright: ignore[reportAttributeAccessIssue]
    # a callable without a precision attribute is a 32-bit (real-valued) unit
    assert H.resolve_unit(lambda x: jnp.sign(x)).bits == 32
    with pytest.raises(ValueError, match="give its rule"):
        H.register_unit("test_neither")
