"""HTAF and its hard forms against float64 references and closed forms."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

import htaf_jax as H

HARD = H.get_unit("htaf")  # the hard form: H(x) forward, htaf' backward
SIGN = H.get_unit("htaf").sign


# ------------------------------------------------------- float64 references --
def ref_htaf(x, a, b):
    x = np.asarray(x, np.float64)
    return 1.0 / (1.0 + np.exp(-a * np.tanh(b * x)))


def ref_htaf_grad(x, a, b):
    """Closed form in float64, written independently of the library's rule."""
    x = np.asarray(x, np.float64)
    u = a * np.tanh(b * x)
    s = 1.0 / (1.0 + np.exp(-u))
    sech2 = 1.0 / np.cosh(b * x) ** 2
    return a * b * s * (1.0 - s) * sech2


def ref_sigmoid_grad(x, k):
    s = 1.0 / (1.0 + np.exp(-k * np.asarray(x, np.float64)))
    return k * s * (1.0 - s)


PARAMS = [(1.0, 1.0), (4.0, 1.0), (8.0, 1.0), (4.0, 0.5), (2.0, 2.0)]


@pytest.mark.parametrize("alpha,beta", PARAMS)
def test_forward_matches_float64(alpha, beta):
    x = np.linspace(-50, 50, 4001, dtype=np.float32)
    got = np.asarray(H.htaf(x, alpha, beta), np.float64)
    np.testing.assert_allclose(got, ref_htaf(x, alpha, beta), rtol=2e-6, atol=0)


@pytest.mark.parametrize("alpha,beta", PARAMS)
def test_gradient_matches_closed_form_out_to_40(alpha, beta):
    # every float32 |βx| ≤ 40 on a dense grid, both signs
    bx = np.concatenate([np.linspace(-40, 40, 8001), [-40.0, -9.0, 9.0, 40.0]]).astype(np.float32)
    x = (bx / np.float32(beta)).astype(np.float32)
    got = np.asarray(jax.vmap(jax.grad(H.htaf), (0, None, None))(x, alpha, beta), np.float64)
    want = ref_htaf_grad(x, alpha, beta)
    assert np.all(got > 0), "the gradient must stay positive out to |βx| = 40"
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=0)
    # htaf_grad is the same rule, usable without autodiff
    np.testing.assert_allclose(np.asarray(H.htaf_grad(x, alpha, beta), np.float64), want, rtol=1e-5)


def test_plain_autodiff_of_the_composite_loses_the_tail():
    """The reason for the custom VJP: 1 − tanh² rounds to 0 in float32."""
    naive = jax.vmap(jax.grad(lambda x: jax.nn.sigmoid(8.0 * jnp.tanh(x))))
    x = jnp.array([8.0, 9.5, 12.0, 20.0, -15.0], jnp.float32)
    assert np.all(np.asarray(naive(x)) == 0.0)
    ours = np.asarray(jax.vmap(jax.grad(H.htaf), (0, None, None))(x, 8.0, 1.0))
    np.testing.assert_allclose(ours, ref_htaf_grad(np.asarray(x), 8.0, 1.0), rtol=1e-5)
    # a measured example: x = 8, α = 8, β = 1 → 1.2e-9, not 0
    assert 1.1e-9 < float(jax.grad(H.htaf)(8.0, 8.0, 1.0)) < 1.3e-9


def test_check_grads_reverse_mode():
    x = jnp.linspace(-3.0, 3.0, 13)
    f = functools.partial(H.htaf, alpha=4.0, beta=1.0)
    check_grads(f, (x,), order=1, modes=["rev"], atol=1e-2, rtol=1e-2)
    with jax.enable_x64(True):
        x64 = jnp.linspace(-12.0, 12.0, 25, dtype=jnp.float64)
        a, b = jnp.float64(4.0), jnp.float64(0.7)
        check_grads(H.htaf, (x64, a, b), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_traced_alpha_beta_get_true_cotangents():
    x = jnp.linspace(-2.0, 2.0, 9)
    loss = lambda a, b: jnp.sum(H.htaf(x, a, b) ** 2)
    ga, gb = jax.grad(loss, argnums=(0, 1))(3.0, 0.8)
    with jax.enable_x64(True):
        x64 = np.linspace(-2.0, 2.0, 9)
        eps = 1e-6
        fd = lambda a, b: float(np.sum(ref_htaf(x64, a, b) ** 2))
        fa = (fd(3.0 + eps, 0.8) - fd(3.0 - eps, 0.8)) / (2 * eps)
        fb = (fd(3.0, 0.8 + eps) - fd(3.0, 0.8 - eps)) / (2 * eps)
    np.testing.assert_allclose([float(ga), float(gb)], [fa, fb], rtol=1e-4)
    # per-channel α broadcast against x gets a per-channel cotangent
    xs = jnp.ones((5, 3))
    g = jax.grad(lambda a: jnp.sum(H.htaf(xs, a, 1.0)))(jnp.array([1.0, 2.0, 3.0]))
    chex.assert_shape(g, (3,))


@pytest.mark.parametrize("name", ["alpha", "beta"])
@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_hyperparameters_raise_naming_the_parameter(name, bad):
    with pytest.raises(ValueError, match=name):
        H.htaf(1.0, **{name: bad})
    with pytest.raises(ValueError, match=name):
        H.get_unit("htaf", **{name: bad})


def test_special_values():
    x = jnp.array([jnp.inf, -jnp.inf, jnp.nan, 0.0])
    y = np.asarray(H.htaf(x, 4.0, 1.0))
    rail = 1 / (1 + np.exp(-4.0))
    np.testing.assert_allclose(y[:2], [rail, 1 - rail], rtol=1e-6)
    assert np.isnan(y[2]) and y[3] == 0.5
    g = np.asarray(jax.vmap(jax.grad(H.htaf))(x))
    assert g[0] == 0.0 and g[1] == 0.0 and np.isnan(g[2]) and g[3] == 1.0
    gab = jax.grad(lambda a, b: jnp.sum(H.htaf(x[:2], a, b)), argnums=(0, 1))(4.0, 1.0)
    assert all(np.isfinite(v) for v in gab)
    # no NaN or inf gradient anywhere on the finite float32 line
    finite = np.concatenate([-np.logspace(-30, 38, 500), [0.0], np.logspace(-30, 38, 500)])
    gf = np.asarray(jax.vmap(jax.grad(H.htaf))(jnp.asarray(finite, jnp.float32)))
    assert np.all(np.isfinite(gf)) and np.all(gf >= 0)
    hard = np.asarray(jax.vmap(jax.grad(HARD))(jnp.asarray(finite, jnp.float32)))
    assert np.all(np.isfinite(hard))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_keeps_dtype_and_finite_gradients(dtype):
    x = jnp.linspace(-30, 30, 301).astype(dtype)
    y = H.htaf(x)
    assert y.dtype == dtype
    g = jax.grad(lambda v: jnp.sum(H.htaf(v)))(x)
    assert g.dtype == dtype and bool(jnp.all(jnp.isfinite(g)))
    np.testing.assert_allclose(
        np.asarray(y, np.float64), ref_htaf(np.asarray(x, np.float64), 4.0, 1.0), atol=1e-2
    )
    h = HARD(x)
    assert h.dtype == dtype


def test_hard_forms():
    x = jnp.array([-2.0, -1e-30, 0.0, 1e-30, 3.0])
    np.testing.assert_array_equal(HARD(x), [0, 0, 1, 1, 1])  # H(0) = 1
    np.testing.assert_array_equal(SIGN(x), [-1, -1, 1, 1, 1])  # sign(0) = +1
    g = jax.vmap(jax.grad(HARD))(x)
    np.testing.assert_allclose(g, ref_htaf_grad(np.asarray(x), 4.0, 1.0), rtol=1e-6)
    gs = jax.vmap(jax.grad(SIGN))(x)
    np.testing.assert_allclose(gs, 2 * ref_htaf_grad(np.asarray(x), 4.0, 1.0), rtol=1e-6)
    assert np.isnan(float(HARD(jnp.nan)))
    # H does not depend on α: its true cotangent is 0
    assert float(jax.grad(lambda a: jnp.sum(H.get_unit("htaf", alpha=a, beta=1.0)(x)))(4.0)) == 0.0


def crossover(alpha, beta):
    """|x| beyond which HTAF's derivative exceeds the equal-peak-slope sigmoid's."""
    k = alpha * beta
    xs = np.linspace(1e-3, 60 / beta, 200001)
    diff = ref_htaf_grad(xs, alpha, beta) - ref_sigmoid_grad(xs, k)
    sign_change = np.nonzero(np.diff(np.sign(diff)) > 0)[0]
    return xs[sign_change[-1] + 1] if len(sign_change) else None


@pytest.mark.parametrize("alpha,beta", [(4.0, 1.0), (8.0, 1.0), (16.0, 0.5)])
def test_heavier_tails_than_sigmoid_of_equal_peak_slope(alpha, beta, capsys):
    k = alpha * beta
    assert float(jax.grad(H.htaf)(0.0, alpha, beta)) == pytest.approx(k / 4)  # equal peaks
    x0 = crossover(alpha, beta)
    assert x0 is not None
    beyond = np.linspace(x0 * 1.01, 9.0 / beta, 400).astype(np.float32)
    ours = np.asarray(jax.vmap(jax.grad(H.htaf), (0, None, None))(beyond, alpha, beta))
    sig = np.asarray(jax.vmap(jax.grad(lambda v: jax.nn.sigmoid(k * v)))(beyond))
    assert np.all(ours > sig)
    # decay rates in float64: e^(−2β|x|) for HTAF, e^(−k|x|) for the sigmoid
    far = np.array([20.0, 30.0]) / beta
    rate = -np.diff(np.log(ref_htaf_grad(far, alpha, beta))) / np.diff(far)
    assert rate[0] == pytest.approx(2 * beta, rel=1e-3)
    # gradient mass in [−δ, δ]: HTAF keeps less of it near 0 at equal peak
    for delta in (0.25 / beta, 1.0 / beta):
        m_htaf = float(H.htaf(delta, alpha, beta) - H.htaf(-delta, alpha, beta))
        m_sig = float(jax.nn.sigmoid(k * delta) - jax.nn.sigmoid(-k * delta))
        with capsys.disabled():
            print(
                f"\nα={alpha} β={beta}: crossover |x|={x0:.3f}; mass in ±{delta:g}: "
                f"htaf {m_htaf:.4f} vs sigmoid {m_sig:.4f}"
            )
        assert m_htaf < m_sig


def test_alpha_below_two_has_lighter_tails():
    # the claim holds for α > 2 only: at α = 1 the sigmoid wins in the far tail
    assert ref_htaf_grad(20.0, 1.0, 1.0) < ref_sigmoid_grad(20.0, 1.0)


def test_transforms_and_no_retrace():
    x = jnp.linspace(-5, 5, 64).reshape(8, 8)
    np.testing.assert_allclose(jax.jit(H.htaf)(x), H.htaf(x), rtol=1e-7)
    np.testing.assert_allclose(jax.vmap(H.htaf)(x), H.htaf(x), rtol=1e-7)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(v, a):
        return jnp.sum(H.htaf(v, a, 1.0)) + jnp.sum(HARD(v))

    for i in range(4):  # new array values, new α values: one trace
        f(x + i, jnp.float32(2.0 + i))
        jax.grad(f)(x - i, jnp.float32(3.0))


@pytest.mark.eight_devices
def test_under_shard_map_on_8_devices():
    devices = jax.devices()
    assert len(devices) == 8, "tests/conftest.py fakes 8 CPU devices"
    mesh = Mesh(np.array(devices), ("data",))
    x = jnp.linspace(-20, 20, 8 * 32, dtype=jnp.float32)

    def loss(v):
        return jax.lax.psum(jnp.sum(H.htaf(v, 8.0, 1.0)), "data")

    sharded = jax.jit(
        jax.shard_map(
            jax.grad(lambda v: jnp.sum(H.htaf(v, 8.0, 1.0))),
            mesh=mesh,
            in_specs=P("data"),
            out_specs=P("data"),
        )
    )
    g = sharded(x)
    # In the tails (|x| near 20) the gradient is ~1e-5 and two programs' exp may differ in
    # its last bits: atol 1e-9 there, rtol 1e-6 everywhere else.
    np.testing.assert_allclose(
        g, jax.vmap(jax.grad(H.htaf), (0, None, None))(x, 8.0, 1.0), rtol=1e-6, atol=1e-9
    )
    total = jax.jit(jax.shard_map(loss, mesh=mesh, in_specs=P("data"), out_specs=P()))(x)
    np.testing.assert_allclose(total, jnp.sum(H.htaf(x, 8.0, 1.0)), rtol=1e-5)


@pytest.mark.eight_devices
def test_replicated_alpha_cotangent_under_shard_map_is_the_global_sum():
    mesh = Mesh(np.array(jax.devices()), ("data",))
    x = jnp.linspace(-1, 3, 8 * 4, dtype=jnp.float32)  # asymmetric: the sum is far from 0

    def per_device(v, a):
        return jax.grad(lambda a_: jnp.sum(H.htaf(v, a_, 1.0)))(a)

    ga = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P("data"), P()), out_specs=P()))(
        x, jnp.float32(3.0)
    )
    np.testing.assert_allclose(ga, jax.grad(lambda a: jnp.sum(H.htaf(x, a, 1.0)))(3.0), rtol=1e-5)
