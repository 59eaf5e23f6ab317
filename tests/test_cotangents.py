"""Backward rules under a random upstream cotangent g (issue 36). A gradient test that
differentiates ``x.sum()`` has g = 1, so a rule that drops or mangles g passes it; here
every custom VJP (HTAF, the straight-through primitive, each unit of the registry and
its ``.sign`` and smooth forms, the binary products, the concept layer, the LIF scan with
per-neuron parameters) is pulled back with a random g and compared with the float64
chain rule written out here."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference_lif import reference_lif
from test_surrogates import DOCUMENTED, X

from htaf_jax import functions as F
from htaf_jax.binary import quantized_conv, quantized_dense, sign_quantizer
from htaf_jax.concepts import binary_concepts, on_rate_penalty
from htaf_jax.spiking import lif_dynamics
from htaf_jax.units import get_unit

RNG = np.random.default_rng(36)
X2 = X.reshape(3, 4)  # no kinks of piecewise rules
G2 = RNG.standard_normal(X2.shape).astype(np.float32)


def _sig(z):
    return 1 / (1 + np.exp(-z))


def _pullback(f, *args, g):
    y, pull = jax.vjp(f, *args)
    assert y.shape == np.shape(g)
    out = pull(jnp.asarray(g, y.dtype))
    return out[0] if len(out) == 1 else out


def _close(got, want, rtol=2e-6, atol=1e-7):
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol)


def test_htaf_pullback_is_the_float64_chain_rule_for_x_alpha_and_beta():
    """Broadcast α (1, N) and β (B, 1): their cotangents are g·∂/∂α summed over the
    broadcast axis, as the float64 chain rule gives."""
    x = (3 * RNG.standard_normal((4, 5))).astype(np.float32)
    a = RNG.uniform(1.0, 6.0, (1, 5)).astype(np.float32)
    b = RNG.uniform(0.3, 2.0, (4, 1)).astype(np.float32)
    g = RNG.standard_normal((4, 5)).astype(np.float32)
    dx, da, db = _pullback(F.htaf, jnp.asarray(x), jnp.asarray(a), jnp.asarray(b), g=g)
    x, a, b, g = (v.astype(np.float64) for v in (x, a, b, g))
    t = np.tanh(b * x)
    s = _sig(a * t)
    ssm, sech2 = s * (1 - s), 1 / np.cosh(b * x) ** 2
    _close(dx, g * a * b * ssm * sech2, rtol=1e-5, atol=1e-8)
    _close(da, np.sum(g * ssm * t, axis=0, keepdims=True), rtol=1e-5, atol=1e-7)
    _close(db, np.sum(g * a * ssm * x * sech2, axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
    # The hard form's rule scales g too, and gives the hyperparameters no cotangent.
    dx, da = _pullback(
        lambda v, al: get_unit("htaf", alpha=al)(v),
        jnp.asarray(x, jnp.float32),
        jnp.float32(3.0),
        g=g.astype(np.float32),
    )
    t = np.tanh(x)
    s = _sig(3.0 * t)
    _close(dx, g * 3.0 * s * (1 - s) / np.cosh(x) ** 2, rtol=1e-5, atol=1e-8)
    assert float(da) == 0.0


def test_straight_through_scales_g_by_a_rule_with_array_hyperparameters():
    """A rule that reads an array hyperparameter (traced): x's cotangent is g·rule(x, w);
    the hyperparameter gets zero."""
    width = jnp.asarray(RNG.uniform(0.5, 3.0, X2.shape), jnp.float32)
    dx, dw = _pullback(
        lambda v, w: F.straight_through(v, lambda u, w: (jnp.abs(u) < w).astype(u.dtype) * w, w=w),
        jnp.asarray(X2),
        width,
        g=G2,
    )
    w = np.asarray(width, np.float64)
    _close(dx, G2 * (np.abs(X2) < w) * w, rtol=1e-6)
    np.testing.assert_array_equal(dw, 0.0)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_step_unit_scales_a_random_cotangent_by_its_rule(name):
    defaults, ref_grad, _ = DOCUMENTED[name]
    u = get_unit(name)
    want = G2 * ref_grad(X2.astype(np.float64), **defaults)
    atol = 5e-7 if name == "swish_sign" else 1e-7  # its float32 rule cancels near its root
    _close(_pullback(u, jnp.asarray(X2), g=G2), want, atol=atol)
    _close(_pullback(u.sign, jnp.asarray(X2), g=G2), 2 * want, atol=2 * atol)
    if u.has_smooth:
        _close(_pullback(u.smooth, jnp.asarray(X2), g=G2), want, rtol=1e-5, atol=1e-6)


W = np.array([[0.1, -0.9, 1.0, -2.5], [0.35, -0.2, 0.0, 1e4], [-1.0, 0.6, 0.04, -0.05]], np.float32)
GW = RNG.standard_normal(W.shape).astype(np.float32)


@pytest.mark.parametrize(
    "kwargs,clip",
    [
        ({}, 1.0),
        ({"clip_value": None}, None),
        ({"clip_value": 2.0}, 2.0),
        ({"ternary_weight_networks": True}, 1.0),
    ],
)
def test_ste_tern_backward_is_g_inside_the_clip(kwargs, clip):
    """clip_value=None: no clip at all, g passes everywhere (even at 1e4)."""
    got = _pullback(get_unit("ste_tern", **kwargs), jnp.asarray(W), g=GW)
    _close(got, GW * (np.ones(W.shape) if clip is None else (np.abs(W) <= clip)))


def test_ste_heaviside_and_magnitude_aware_sign_backward():
    _close(_pullback(get_unit("ste_heaviside"), jnp.asarray(W), g=GW), GW * (np.abs(W) <= 1))
    _close(_pullback(get_unit("ste_heaviside", clip_value=None), jnp.asarray(W), g=GW), GW)
    scale = np.mean(np.abs(W.astype(np.float64)), axis=0)  # a constant to the gradient
    _close(
        _pullback(get_unit("magnitude_aware_sign"), jnp.asarray(W), g=GW),
        GW * scale * (np.abs(W) <= 1),
        rtol=1e-6,
    )


def test_dorefa_backward_in_both_modes():
    x = np.array([[-0.5, 0.0, 0.1, 0.5], [0.8, 1.0, 2.0, 0.3], [0.7, -3.0, 0.2, 0.9]], np.float32)
    _close(_pullback(get_unit("dorefa", k_bit=3), jnp.asarray(x), g=GW), GW * ((x >= 0) & (x <= 1)))
    t = np.tanh(W.astype(np.float64))
    _close(
        _pullback(get_unit("dorefa", k_bit=2, mode="weights"), jnp.asarray(W), g=GW),
        GW * 2 * (1 - t**2) / (2 * np.max(np.abs(t))),
        rtol=1e-5,
        atol=1e-7,
    )


def test_quantized_dense_pullback_is_the_float64_chain_rule():
    """y = (sign(x) @ sign(W))·a + b, a = mean|W| per output: the inputs and the kernel get
    g through 2·u' (the unit's rule), the kernel also through a (sign(W)/n), b gets Σ g."""
    u = get_unit("htaf", alpha=2.0, beta=0.5)
    rule = DOCUMENTED["htaf"][1]
    x = RNG.standard_normal((5, 6)).astype(np.float32)
    w = RNG.standard_normal((6, 3)).astype(np.float32)
    bias = RNG.standard_normal(3).astype(np.float32)
    g = RNG.standard_normal((5, 3)).astype(np.float32)
    q = sign_quantizer(u)
    dx, dw, db = _pullback(
        lambda x, w, b: quantized_dense(
            x, w, input_quantizer=q, kernel_quantizer=q, use_scale=True, bias=b
        ),
        jnp.asarray(x),
        jnp.asarray(w),
        jnp.asarray(bias),
        g=g,
    )
    x, w, g = (v.astype(np.float64) for v in (x, w, g))
    sx, sw = np.where(x >= 0, 1.0, -1.0), np.where(w >= 0, 1.0, -1.0)
    a = np.mean(np.abs(w), axis=0)
    _close(dx, ((g * a) @ sw.T) * 2 * rule(x, 2.0, 0.5), rtol=1e-5, atol=1e-6)
    _close(
        dw,
        (sx.T @ (g * a)) * 2 * rule(w, 2.0, 0.5) + (sx @ sw * g).sum(0) * sw / 6,
        rtol=1e-5,
        atol=1e-6,
    )
    _close(db, g.sum(0), rtol=1e-6, atol=1e-6)


def _straight_through_by_autodiff(unit):
    """sign(x) with backward 2·u'(x), by autodiff alone (no custom VJP): the reference."""

    def q(v):
        return jax.lax.stop_gradient(jnp.where(v >= 0, 1.0, -1.0)) + jax.lax.stop_gradient(
            2 * unit.grad(v)
        ) * (v - jax.lax.stop_gradient(v))

    return q


def test_quantized_conv_pullback_equals_autodiff_of_a_reference_quantizer():
    u = get_unit("atan")
    x = jnp.asarray(RNG.standard_normal((2, 5, 5, 3)), jnp.float32)
    w = jnp.asarray(0.8 * RNG.standard_normal((3, 3, 3, 4)), jnp.float32)
    g = RNG.standard_normal((2, 3, 3, 4)).astype(np.float32)

    def conv(q):
        return lambda x, w: quantized_conv(
            x,
            w,
            strides=(2, 2),
            padding="SAME",
            input_quantizer=q,
            kernel_quantizer=q,
            use_scale=True,
        )

    got = _pullback(conv(sign_quantizer(u)), x, w, g=g)
    want = _pullback(conv(_straight_through_by_autodiff(u)), x, w, g=g)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()))


@pytest.mark.parametrize("mode", ["smooth", "hard"])
def test_concept_layer_pullback_to_the_projections_and_the_sharpness(mode):
    """p = s·(x − θ); z = u.smooth(p) or H(p): dx = g·s·u'(p), ds = Σ g·u'(p)·(x − θ)."""
    x = RNG.standard_normal((6, 4)).astype(np.float32)
    g = RNG.standard_normal((6, 4)).astype(np.float32)
    unit, rule = get_unit("htaf", alpha=3.0), DOCUMENTED["htaf"][1]
    dx, ds = _pullback(
        lambda x, s: binary_concepts(x, unit, mode=mode, train=True, sharpness=s, offset=0.4)[0],
        jnp.asarray(x),
        jnp.float32(1.7),
        g=g,
    )
    x, g = x.astype(np.float64), g.astype(np.float64)
    d = rule(1.7 * (x - 0.4), 3.0, 1.0)
    _close(dx, g * 1.7 * d, rtol=1e-5, atol=1e-7)
    _close(ds, np.sum(g * d * (x - 0.4)), rtol=1e-5, atol=1e-6)
    # The rate penalty λ·mean(z): each concept gets λ/(B·K).
    _close(jax.grad(on_rate_penalty)(jnp.asarray(x, jnp.float32), 0.3), np.full(x.shape, 0.3 / 24))


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_lif_direct_input_with_per_neuron_threshold_against_autodiff(reset):
    """A time-constant current (num_steps) with a per-neuron θ and a scalar β, both traced:
    the hand-written scan's pullback of random weights on spikes and membranes equals
    autodiff of the reference scan (the currents' cotangent summed over time, θ's over
    the batch)."""
    x = jnp.asarray(0.8 * RNG.standard_normal((3, 5)) + 0.5, jnp.float32)
    w = jnp.asarray(RNG.standard_normal((2, 9, 3, 5)), jnp.float32)
    spike_fn = get_unit("fast_sigmoid", slope=4.0)

    def loss(lif):
        def f(x, beta, theta):
            s, m = lif(
                x,
                beta=beta,
                threshold=theta,
                spike_fn=spike_fn,
                reset=reset,
                detach_reset=False,
                num_steps=9,
            )
            return jnp.sum(s * w[0]) + jnp.sum(m * w[1])

        return f

    args = (x, jnp.float32(0.85), jnp.linspace(0.5, 1.2, 5))
    got = jax.jit(jax.grad(loss(lif_dynamics), argnums=(0, 1, 2)))(*args)
    want = jax.jit(jax.grad(loss(reference_lif), argnums=(0, 1, 2)))(*args)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6 * float(jnp.abs(b).max()))
