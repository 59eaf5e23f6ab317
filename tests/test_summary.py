"""The model summary by bit width, against numbers computed by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from htaf_jax.linen.binary import QuantDense
from htaf_jax.linen.summary import summarize
from htaf_jax.models.bnn import BinaryConvNet, BinaryMLP

KEY = jax.random.key(0)


def _summary(model, x, **kwargs):
    # The non-partitionable threefry: XLA:CPU compiles the partitionable draw of each
    # kernel shape in seconds, and no count here depends on the weights' values.
    with jax.threefry_partitionable(False):
        variables = jax.jit(lambda k: model.init(k, x, **kwargs))(KEY)
    return summarize(model, variables, x, **kwargs)


def _normal(shape):
    # NumPy's draw: a jax.random draw of a 4-D shape costs XLA:CPU seconds to compile.
    return jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)


def test_binary_mlp_summary_by_hand():
    s = _summary(BinaryMLP(hidden=(16, 8)), _normal((2, 4, 4, 1)), train=False)
    assert [layer.name for layer in s.layers] == [
        "dense0",
        "bn0",
        "dense1",
        "bn1",
        "head",
        "head_bn",
    ]
    # 1-bit kernels: 16·16 + 16·8 + 8·10; BatchNorms: 2 per channel (16 + 8 + 10 channels).
    assert s.params == {1: 256 + 128 + 80, 32: 2 * (16 + 8 + 10)}
    assert s.total_params == 464 + 68
    assert s.memory_bytes == (464 + 68 * 32) / 8 == 330
    assert s.float32_bytes == 532 * 4
    assert s.compression_ratio == pytest.approx(330 / 2128)
    # The first layer reads the real image (32-bit MACs); the others read ±1 activations.
    assert [layer.input_precision for layer in s.layers] == [32, None, 1, None, 1, None]
    assert s.macs == {1: 128 + 80, 32: 256}
    assert s.binary_mac_ratio == pytest.approx(208 / 464)
    text = s.table()
    assert "Total" in text and "Ratio of MACs that are binarized: 0.4483" in text


def test_binary_convnet_counts_macs_per_output_pixel():
    s = _summary(BinaryConvNet(features=(4,), hidden=8), _normal((2, 8, 8, 1)), train=False)
    conv = s.layers[0]
    assert conv.name == "conv0" and conv.output_shape == (8, 8, 4)
    assert conv.params == {1: 3 * 3 * 1 * 4} and conv.macs == {32: 36 * 64}
    dense = next(layer for layer in s.layers if layer.name == "dense")  # 4·4·4 = 64 inputs, all ±1
    assert dense.params == {1: 64 * 8} and dense.macs == {1: 512}
    assert s.params == {1: 36 + 512 + 80, 32: 2 * (4 + 8 + 10)}
    assert s.macs == {1: 512 + 80, 32: 2304}


def test_quant_dense_precisions_come_from_its_quantizers():
    model = QuantDense(5, input_quantizer="ste_sign", kernel_quantizer="dorefa")
    s = _summary(model, jnp.ones((2, 3)))
    (layer,) = s.layers
    assert layer.input_precision == 1
    assert layer.params == {2: 15, 32: 5}  # 2-bit kernel, float bias
    assert layer.macs == {2: 15}  # max(1, 2)
    real = _summary(QuantDense(5), jnp.full((2, 3), 0.5)).layers[0]
    assert real.params == {32: 20} and real.macs == {32: 15} and real.input_precision == 32
