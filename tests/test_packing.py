"""Bit packing and XNOR/popcount inference: exact against the float forward."""

import gzip
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from data_marks import needs_data

from htaf_jax import packing as P
from htaf_jax.binary import quantized_dense, sign_quantizer
from htaf_jax.models.bnn import BinaryMLP
from htaf_jax.models.bnn_export import pack_binary_mlp, packed_mlp_logits

KEY = jax.random.key(0)


def _pm1(seed, shape):
    # NumPy's draws: each jax.random draw of a new shape is a compile.
    return jnp.asarray(
        np.where(np.random.default_rng(seed).random(shape) < 0.5, 1.0, -1.0), jnp.float32
    )


def _normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


# Word layouts: one partial word, one full word, several words with a partial last one.
WIDTHS = [1, 32, 33]


@pytest.mark.parametrize("n", WIDTHS)
def test_pack_unpack_round_trip_and_layout(n):
    x = _pm1(0, (3, n))
    words, unpacked = jax.jit(lambda x: (lambda w: (w, P.unpack_signs(w, n)))(P.pack_signs(x)))(x)
    assert words.dtype == jnp.uint32 and words.shape == (3, -(-n // 32))
    np.testing.assert_array_equal(unpacked, x)
    # Bit j of word k is element 32k + j (little-endian), 1 for +1.
    expected = sum(int(x[0, j] > 0) << j for j in range(min(n, 32)))
    assert int(words[0, 0]) == expected


def test_zero_packs_as_plus_one():
    np.testing.assert_array_equal(
        P.unpack_signs(P.pack_signs(jnp.array([0.0, -0.0, -1e-30])), 3), [1.0, 1.0, -1.0]
    )


@pytest.mark.parametrize("n", WIDTHS)
def test_xnor_popcount_dot_equals_the_pm1_dot(n):
    a, w = _pm1(1, (5, n)), _pm1(2, (7, n))
    dot = jax.jit(lambda a, w: P.xnor_popcount_dot(P.pack_signs(a), P.pack_signs(w), n))(a, w)
    assert dot.dtype == jnp.int32
    np.testing.assert_array_equal(dot, np.asarray(a, np.int64) @ np.asarray(w, np.int64).T)


@pytest.mark.parametrize("use_scale,use_bias", [(True, False), (False, True), (True, True)])
def test_packed_dense_equals_the_float_binary_layer(use_scale, use_bias):
    a = _pm1(3, (6, 70))
    kernel = _normal(4, (70, 9)).at[0, 0].set(0.0)  # sign(0) = +1
    bias = _normal(5, (9,)) if use_bias else None

    @jax.jit
    def run(a, kernel, bias):
        layer = P.pack_dense_kernel(kernel, use_scale, bias)
        ref = quantized_dense(
            a, kernel, kernel_quantizer=sign_quantizer("htaf"), use_scale=use_scale, bias=bias
        )
        return layer, P.packed_dense(P.pack_signs(a), layer), ref

    layer, out, ref = run(a, kernel, bias)
    assert layer.bits.shape == (9, 3)
    np.testing.assert_array_equal(out, ref)


def test_batchnorm_inference_matches_flax():
    import flax.linen as nn

    y = _normal(0, (4, 6))
    stats = {"mean": jnp.linspace(-1, 1, 6), "var": jnp.linspace(0.5, 2, 6)}
    params = {"scale": jnp.linspace(0.2, 1.4, 6), "bias": jnp.linspace(-0.3, 0.3, 6)}
    ref = nn.BatchNorm(use_running_average=True).apply({"params": params, "batch_stats": stats}, y)
    out = P.batchnorm_inference(y, stats["mean"], stats["var"], params["scale"], params["bias"])
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-7)


def _init(model, x):
    # Jitted: an eager init compiles every primitive one by one. The non-partitionable
    # threefry: XLA:CPU compiles the partitionable draw of a kernel shape far slower.
    with jax.threefry_partitionable(False):
        return jax.jit(lambda k: model.init(k, x, train=False))(KEY)


def _with_random_stats(variables):
    k1, k2 = jax.random.split(jax.random.key(7))
    stats = jax.tree.map(lambda v: v + jax.random.uniform(k1, v.shape), variables["batch_stats"])
    params = jax.tree.map(
        lambda v: v * jax.random.uniform(k2, v.shape, minval=0.5, maxval=1.5), variables["params"]
    )
    return {"params": params, "batch_stats": stats}


@pytest.mark.parametrize(
    "model",
    [
        BinaryMLP(hidden=(40, 33)),
        BinaryMLP(hidden=(64,), use_scale=False),
        BinaryMLP(hidden=(32, 32), full_precision_head=True),
    ],
)
def test_packed_mlp_gives_the_float_logits_on_random_data(model):
    x = _normal(0, (50, 6, 6, 1))

    @jax.jit
    def both_logits(key):  # one compiled program
        variables = _with_random_stats(model.init(key, x, train=False))
        return (
            packed_mlp_logits(pack_binary_mlp(model, variables), x),
            model.apply(variables, x, train=False),
        )

    with jax.threefry_partitionable(False):
        packed_logits, float_logits = both_logits(KEY)
    np.testing.assert_allclose(packed_logits, float_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(jnp.argmax(packed_logits, -1), jnp.argmax(float_logits, -1))


def _idx(name, count=None):
    """The first ``count`` records (all: None), decompressing only as far as they go."""
    from htaf_jax.data import DEFAULT_FASHION_MNIST_DIR

    header, size = (16, 28 * 28) if "images" in name else (8, 1)
    with gzip.open(os.path.join(DEFAULT_FASHION_MNIST_DIR, name)) as f:
        data = np.frombuffer(f.read(-1 if count is None else header + count * size), np.uint8)
    return data[16:].reshape(-1, 28, 28, 1) if "images" in name else data[8:]


@pytest.mark.slow
@needs_data
def test_packed_inference_of_a_trained_bnn_on_the_whole_fashion_mnist_test_set():
    test_x = (_idx("t10k-images-idx3-ubyte.gz") / 255.0 - 0.286) / 0.353
    train_x = (_idx("train-images-idx3-ubyte.gz", 4096) / 255.0 - 0.286) / 0.353
    train_y = _idx("train-labels-idx1-ubyte.gz", 4096).astype(np.int32)
    assert len(train_x) == len(train_y) == 4096 and len(test_x) == 10000
    model = BinaryMLP(hidden=(96, 64))
    variables = _init(model, train_x[:2])
    tx = optax.adam(3e-3)
    opt_state = tx.init(variables["params"])

    @jax.jit
    def step(variables, opt_state, x, y):
        def loss(p):
            logits, upd = model.apply(
                {**variables, "params": p}, x, train=True, mutable=["batch_stats", "intermediates"]
            )
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), upd

        (loss_value, upd), g = jax.value_and_grad(loss, has_aux=True)(variables["params"])
        updates, opt_state = tx.update(g, opt_state)
        params = optax.apply_updates(variables["params"], updates)
        return {"params": params, "batch_stats": upd["batch_stats"]}, opt_state, loss_value

    losses = []
    for _epoch in range(3):
        for i in range(0, 4096, 256):
            variables, opt_state, loss_value = step(
                variables, opt_state, train_x[i : i + 256], train_y[i : i + 256]
            )
            losses.append(float(loss_value))
    assert losses[-1] < losses[0]  # it did train
    packed_logits, float_logits = jax.jit(
        lambda v, x: (
            packed_mlp_logits(pack_binary_mlp(model, v), x),
            model.apply(v, x, train=False),
        )
    )(variables, test_x)
    np.testing.assert_array_equal(jnp.argmax(packed_logits, -1), jnp.argmax(float_logits, -1))
    np.testing.assert_allclose(packed_logits, float_logits, rtol=1e-5, atol=1e-5)
