"""Larq's quantizers, units of the one registry, against Larq's closed forms: values (at 0
too), gradients, out-of-range inputs. Larq's ±1 quantizers are ``.sign`` of the step units
of their names; the others are the units themselves."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from htaf_jax.units import bits_of, get_unit, list_units, resolve_unit


class Q:
    """Larq's spellings, in our API."""

    ste_sign = staticmethod(
        lambda x, clip_value=1.0: get_unit("ste_sign", clip_value=clip_value).sign(x)
    )
    approx_sign = staticmethod(lambda x: get_unit("approx_sign").sign(x))
    swish_sign = staticmethod(lambda x, beta=5.0: get_unit("swish_sign", beta=beta).sign(x))
    htaf_sign = staticmethod(
        lambda x, alpha=4.0, beta=1.0: get_unit("htaf", alpha=alpha, beta=beta).sign(x)
    )
    htaf_heaviside = staticmethod(
        lambda x, alpha=4.0, beta=1.0: get_unit("htaf", alpha=alpha, beta=beta)(x)
    )
    magnitude_aware_sign = staticmethod(lambda x: get_unit("magnitude_aware_sign")(x))
    ste_heaviside = staticmethod(lambda x: get_unit("ste_heaviside")(x))
    ste_tern = staticmethod(lambda x, **kw: get_unit("ste_tern", **kw)(x))
    dorefa = staticmethod(
        lambda x, k_bit=2, mode="activations": get_unit("dorefa", k_bit=k_bit, mode=mode)(x)
    )


X = jnp.array([-3.0, -1.0, -0.7, -0.05, 0.0, 0.03, 0.05, 0.5, 1.0, 1.5, 1e4])


def _grad(fn, x=X):
    return jax.vmap(jax.grad(lambda v: fn(v)))(x)


def _sign(x):
    return np.where(np.asarray(x) >= 0, 1.0, -1.0)


@pytest.mark.parametrize("fn", [Q.ste_sign, Q.approx_sign, Q.swish_sign, Q.htaf_sign])
def test_sign_forms_give_plus_one_at_zero(fn):
    np.testing.assert_array_equal(fn(X), _sign(X))
    assert float(fn(jnp.float32(0.0))) == 1.0
    assert float(fn(jnp.float32(-0.0))) == 1.0  # Larq: sign(sign(-0.) + 0.1) = +1


def test_ste_sign_gradient_is_clipped_identity_inclusive():
    np.testing.assert_array_equal(_grad(Q.ste_sign), (np.abs(X) <= 1.0).astype(float))
    np.testing.assert_array_equal(
        _grad(lambda v: Q.ste_sign(v, clip_value=2.0)), (np.abs(X) <= 2.0).astype(float)
    )
    np.testing.assert_array_equal(_grad(lambda v: Q.ste_sign(v, clip_value=None)), np.ones(X.shape))


def test_approx_sign_gradient_is_bi_real_piecewise_linear():
    a = np.abs(np.asarray(X, np.float64))
    np.testing.assert_allclose(_grad(Q.approx_sign), np.where(a <= 1, 2 - 2 * a, 0.0), atol=1e-7)
    assert float(jax.grad(Q.approx_sign)(0.0)) == 2.0


def test_swish_sign_gradient_matches_larq_closed_form_and_signswish_derivative():
    x = np.asarray(X, np.float64)[:-1]  # 1e4 checked apart: cosh overflows
    for beta in (5.0, 2.0):
        bx = beta * x
        larq = beta * (2 - bx * np.tanh(bx / 2)) / (1 + np.cosh(bx))
        np.testing.assert_allclose(
            _grad(lambda v, beta=beta: Q.swish_sign(v, beta), X[:-1]), larq, rtol=1e-5, atol=1e-7
        )
        # ... which is the derivative of SignSwish 2σ(βx)(1 + βx(1 − σ(βx))) − 1.
        ss = lambda v, beta=beta: (
            2 * jax.nn.sigmoid(beta * v) * (1 + beta * v * (1 - jax.nn.sigmoid(beta * v))) - 1
        )
        np.testing.assert_allclose(_grad(ss, X[:-1]), larq, rtol=1e-4, atol=1e-6)
    assert float(jax.grad(Q.swish_sign)(0.0)) == 5.0
    far = float(jax.grad(Q.swish_sign)(jnp.float32(1e4)))
    assert far == 0.0 and np.isfinite(far)


def test_magnitude_aware_sign_scales_per_output_channel_with_constant_scale():
    w = jnp.array([[0.5, -0.2], [-1.5, 0.0], [0.1, 0.4]])
    scale = np.array([2.1 / 3, 0.6 / 3])
    np.testing.assert_allclose(Q.magnitude_aware_sign(w), _sign(w) * scale, rtol=1e-6)
    g = jax.grad(lambda v: jnp.sum(Q.magnitude_aware_sign(v)))(w)
    np.testing.assert_allclose(g, (np.abs(w) <= 1.0) * scale, rtol=1e-6)  # -1.5: clipped


def test_ste_heaviside_is_zero_at_zero_as_larq():
    np.testing.assert_array_equal(Q.ste_heaviside(X), (np.asarray(X) > 0).astype(float))
    assert float(Q.ste_heaviside(jnp.float32(0.0))) == 0.0
    np.testing.assert_array_equal(_grad(Q.ste_heaviside), (np.abs(X) <= 1.0).astype(float))
    # HTAF's hard form keeps the registry's H(0) = 1.
    assert float(Q.htaf_heaviside(jnp.float32(0.0))) == 1.0


def test_ste_tern_fixed_threshold_including_the_threshold_itself():
    expected = np.select([np.asarray(X) >= 0.05, np.asarray(X) <= -0.05], [1.0, -1.0], 0.0)
    np.testing.assert_array_equal(Q.ste_tern(X), expected)
    assert float(Q.ste_tern(jnp.float32(0.0))) == 0.0
    np.testing.assert_array_equal(_grad(Q.ste_tern), (np.abs(X) <= 1.0).astype(float))


def test_ste_tern_twn_threshold_is_seven_tenths_of_mean_abs():
    w = jnp.array([[0.1, -0.9], [0.35, -0.2], [0.0, 0.6]])
    delta = 0.7 * np.mean(np.abs(w))  # 0.7 · 2.15/6 ≈ 0.2508
    expected = np.select([np.asarray(w) >= delta, np.asarray(w) <= -delta], [1.0, -1.0], 0.0)
    np.testing.assert_array_equal(Q.ste_tern(w, ternary_weight_networks=True), expected)
    np.testing.assert_array_equal(expected, [[0, -1], [1, 0], [0, 1]])
    g = jax.grad(lambda v: jnp.sum(Q.ste_tern(v, ternary_weight_networks=True)))(w)
    np.testing.assert_array_equal(g, np.ones(w.shape))  # Δ is a constant to the gradient


@pytest.mark.parametrize("k_bit", [1, 2, 3])
def test_dorefa_activations_levels_rounding_and_gradient(k_bit):
    n = 2**k_bit - 1
    x = jnp.array([-0.5, 0.0, 0.1, 0.5, 0.8, 1.0, 2.0])
    expected = np.round(np.clip(np.asarray(x), 0, 1) * n) / n  # numpy rounds half to even, as tf
    np.testing.assert_allclose(Q.dorefa(x, k_bit), expected, rtol=1e-6)
    np.testing.assert_array_equal(_grad(lambda v: Q.dorefa(v, k_bit), x), [0, 1, 1, 1, 1, 1, 0])
    assert len(np.unique(Q.dorefa(jnp.linspace(-1, 2, 301), k_bit))) == n + 1


def test_dorefa_half_rounds_to_even():
    # 2-bit: x·3 = 1.5 → round-half-even 2 → 2/3; x·3 = 0.5 → 0.
    np.testing.assert_allclose(Q.dorefa(jnp.array([0.5, 1 / 6]), 2), [2 / 3, 0.0], atol=1e-7)


def test_dorefa_weights_mode():
    w = jnp.array([-2.0, -0.3, 0.0, 0.4, 1.0])
    t = np.tanh(np.asarray(w, np.float64))
    normed = t / (2 * np.max(np.abs(t))) + 0.5
    np.testing.assert_allclose(
        Q.dorefa(w, 2, "weights"), 2 * np.round(normed * 3) / 3 - 1, rtol=1e-6
    )
    g = jax.grad(lambda v: jnp.sum(Q.dorefa(v, 2, "weights")))(w)
    np.testing.assert_allclose(g, 2 * (1 - t**2) / (2 * np.max(np.abs(t))), rtol=1e-5)
    # All zero: w' = 0.5, 0.5·3 = 1.5 rounds (half to even) to 2 → 2·2/3 − 1.
    np.testing.assert_allclose(Q.dorefa(jnp.zeros(3), 2, "weights"), np.full(3, 1 / 3), rtol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        Q.dorefa(w, 2, "bias")


def test_htaf_forms_have_htaf_gradients():
    s = get_unit("htaf", alpha=2.0, beta=0.5)
    np.testing.assert_allclose(_grad(lambda v: Q.htaf_sign(v, 2.0, 0.5)), 2 * s.grad(X), rtol=1e-6)
    np.testing.assert_allclose(_grad(lambda v: Q.htaf_heaviside(v, 2.0, 0.5)), s.grad(X), rtol=1e-6)


def test_registry_binds_hparams_hashes_and_reports_bits():
    q = get_unit("swish_sign", beta=2.0)
    assert q == get_unit("swish_sign", beta=2.0) and hash(q) == hash(
        get_unit("swish_sign", beta=2.0)
    )
    assert float(jax.grad(q.sign)(0.0)) == 2.0
    np.testing.assert_allclose(q.grad(X), _grad(q), rtol=1e-6)
    t = get_unit("ste_tern", ternary_weight_networks=True)
    np.testing.assert_allclose(t.grad(X), _grad(t), rtol=1e-6)
    assert get_unit("dorefa", k_bit=3).bits == 3
    assert get_unit("ste_tern").bits == 2
    assert bits_of(None) == 32 and bits_of("ste_sign") == 1
    assert resolve_unit(None) is None
    with pytest.raises(ValueError, match="unknown unit 'sgn'.*ste_sign"):
        get_unit("sgn")
    with pytest.raises(TypeError, match="unknown hyperparameter"):
        get_unit("ste_sign", beta=1.0)
    # old names: the clipped STE of stored runs, HTAF's two quantizer forms
    assert get_unit("ste_hardtanh") == get_unit("ste_sign")
    assert get_unit("htaf_sign") == get_unit("htaf_heaviside") == get_unit("htaf")


@pytest.mark.parametrize("name", list_units())
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_every_entry_jits_keeps_shape_and_is_finite(name, dtype):
    q = get_unit(name)
    x = (3 * jax.random.normal(jax.random.key(0), (4, 3, 5))).astype(dtype)
    y = jax.jit(q)(x)
    chex.assert_shape(y, x.shape)
    assert y.dtype == dtype
    g = jax.jit(jax.grad(lambda v: jnp.sum(q(v).astype(jnp.float32))))(x)
    chex.assert_shape(g, x.shape)
    assert np.all(np.isfinite(np.asarray(y, np.float32))) and np.all(
        np.isfinite(np.asarray(g, np.float32))
    )
    assert q.citation
