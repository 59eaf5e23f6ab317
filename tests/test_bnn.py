"""Binary layers, binary networks and the packed-bit export."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference_grads import assert_grads_equal, autodiff_reference

from htaf_jax.binary import binarize_weights
from htaf_jax.linen.binary import BinaryConv, BinaryDense
from htaf_jax.models.bnn import BinaryConvNet, BinaryMLP
from htaf_jax.models.bnn_export import (
    pack_binary_params,
    pack_bits,
    packed_memory_report,
    unpack_bits,
    unpack_params,
)
from htaf_jax.units import get_unit

HTAF = get_unit("htaf")
KEY = jax.random.PRNGKey(0)


def _normal(shape):
    # NumPy's draw: a jax.random draw of a 4-D shape costs XLA:CPU seconds to compile.
    return jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)


def _init(model, x, **kwargs):
    """Jitted init on the non-partitionable threefry (XLA:CPU compiles the partitionable
    draw of each multi-dimensional kernel in seconds; no test depends on which PRNG)."""
    with jax.threefry_partitionable(False):
        return jax.jit(lambda k: model.init(k, x, **kwargs))(KEY)


def test_binarize_weights_exact_signs_and_xnor_scale():
    w = jnp.array([[0.5, -0.2], [-1.5, 0.0], [0.1, 0.4]])
    signs, scale = binarize_weights(w, HTAF, True)
    np.testing.assert_array_equal(signs, [[1, -1], [-1, 1], [1, 1]])  # sign(0) = +1
    np.testing.assert_allclose(scale, [(0.5 + 1.5 + 0.1) / 3, (0.2 + 0.0 + 0.4) / 3], rtol=1e-6)
    assert binarize_weights(w, HTAF, False)[1] is None
    signs, scale = binarize_weights(w)  # the defaults: HTAF's sign, no scale
    np.testing.assert_array_equal(signs, [[1, -1], [-1, 1], [1, 1]])
    assert scale is None


def test_binary_dense_forward_and_surrogate_backward():
    x = jnp.array([[1.0, 2.0, -1.0]])
    layer = BinaryDense(2, use_scale=False)
    params = _init(layer, x)["params"]
    w = params["latent_kernel"]
    y = jax.jit(layer.apply)({"params": params}, x)
    np.testing.assert_array_equal(y, x @ jnp.where(w >= 0, 1.0, -1.0))
    # d sum(x · sign(W)) / dW_ij = x_i · 2·grad(W_ij): the surrogate's backward.
    g = jax.jit(jax.grad(lambda p: layer.apply({"params": p}, x).sum()))(params)["latent_kernel"]
    np.testing.assert_allclose(g, x[0][:, None] * 2 * HTAF.grad(w), rtol=1e-5)


def test_binary_conv_matches_float_conv_with_sign_kernel():
    x = _normal((2, 6, 6, 3))
    layer = BinaryConv(4, use_scale=False)
    params = _init(layer, x)["params"]
    y = jax.jit(layer.apply)({"params": params}, x)
    chex.assert_shape(y, (2, 6, 6, 4))
    ref = nn.Conv(4, (3, 3), use_bias=False).apply(
        {"params": {"kernel": jnp.where(params["latent_kernel"] >= 0, 1.0, -1.0)}}, x
    )
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def _record_inputs(model, variables, x, train, names):
    """Inputs of the named submodules during one apply."""
    seen = {}

    def interceptor(next_fun, args, kwargs, context):
        if context.module.name in names and context.method_name == "__call__":
            seen[context.module.name] = args[0]
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(interceptor):
        out, _ = model.apply(
            variables,
            x,
            train=train,
            rngs={"dropout": KEY},
            mutable=["batch_stats", "intermediates"],
        )
    return out, seen


@pytest.mark.parametrize(
    "model,names",
    [
        (BinaryMLP(hidden=(16, 8)), ("dense1", "head")),
        (BinaryConvNet(features=(4, 8), hidden=16), ("conv1", "dense", "head")),
    ],
)
def test_activations_after_the_first_layer_are_exactly_pm1(model, names):
    """In train and in eval mode (one compiled program for both)."""
    x = _normal((3, 8, 8, 1))
    variables = _init(model, x, train=False)
    runs = jax.jit(
        lambda v: {train: _record_inputs(model, v, x, train, names) for train in (True, False)}
    )(variables)
    for train, (logits, seen) in runs.items():
        chex.assert_shape(logits, (3, 10))
        for name in names:
            assert set(np.unique(np.asarray(seen[name]))) == {-1.0, 1.0}, (train, name)


@pytest.mark.parametrize(
    "model",
    [
        BinaryMLP(hidden=(16, 8), dropout_rate=0.1),
        BinaryConvNet(features=(4, 8), hidden=16, full_precision_first=True),
    ],
)
def test_gradients_equal_autodiff_of_the_reference_quantizers(model, monkeypatch):
    """Every parameter's gradient, through the straight-through quantizers' custom VJP,
    equals autodiff of the same model with a reference quantizer (tests/reference_grads.py)
    and is not zero."""
    x, y = _normal((4, 8, 8, 1)), jnp.array([0, 1, 2, 3])

    def grads(key):  # init and gradients: one compiled program
        variables = model.init(key, x, train=False)

        def loss(p):
            logits, _ = model.apply(
                {**variables, "params": p},
                x,
                train=True,
                rngs={"dropout": KEY},
                mutable=["batch_stats", "intermediates"],
            )
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

        return jax.grad(loss)(variables["params"])

    with jax.threefry_partitionable(False):
        g_tree = jax.jit(grads)(KEY)
        autodiff_reference(monkeypatch)
        want = jax.jit(grads)(KEY)
    assert_grads_equal(g_tree, want)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32])
def test_pack_bits_round_trip(dtype):
    bits = np.random.default_rng(0).random((5, 7, 3)) > 0.5  # 105 bits: not a word multiple
    words = pack_bits(bits, dtype)
    assert words.dtype == dtype and words.nbytes == (14 if dtype == np.uint8 else 16)
    np.testing.assert_array_equal(unpack_bits(words, bits.shape), bits)


@pytest.fixture(scope="module")
def mlp_64_32():
    model = BinaryMLP(hidden=(64, 32))
    x = _normal((5, 8, 8, 1))
    apply = jax.jit(lambda v: model.apply(v, x, train=False))
    return apply, _init(model, x, train=False)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32])
def test_packed_export_is_32x_smaller_and_inference_exact(dtype, mlp_64_32):
    apply, variables = mlp_64_32
    packed = pack_binary_params(variables["params"], dtype)
    assert len(packed) == 3  # dense0, dense1, head
    report = packed_memory_report(variables["params"], packed)
    assert report["ratio"] == 32.0  # 64·64, 64·32, 32·10 bits
    assert report["packed_bytes"] == (64 * 64 + 64 * 32 + 32 * 10) // 8
    restored = {**variables, "params": unpack_params(variables["params"], packed)}
    np.testing.assert_allclose(apply(restored), apply(variables), rtol=1e-6, atol=1e-6)
