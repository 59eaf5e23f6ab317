"""Qwix alongside our binary layers: a Qwix QAT rule quantizes the ordinary float layers
of an NNX model to int8, and a rule without a type in front of it leaves our binary
layers alone, so they keep their ±1 weights, their own forward and their backward rule.
Skipped when qwix (``pip install 'htaf-jax[qwix]'``) is not installed."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import htaf_jax.nnx as hnnx
from htaf_jax.binary import LATENT_KERNEL

qwix = pytest.importorskip("qwix")
# Qwix 0.1.8 calls NNX APIs Flax 0.12 deprecates.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning:qwix")]

BINARY_LAYERS = (hnnx.BinaryDense, hnnx.BinaryConv)


def binary_layer_paths(model: nnx.Module) -> str:
    """A regex matching the module path of every binary layer of ``model`` (Qwix matches
    ``QtRule.module_path`` against paths joined with '/')."""
    paths = [
        "/".join(map(str, path))
        for path, module in nnx.iter_modules(model)
        if isinstance(module, BINARY_LAYERS)
    ]
    return "|".join(re.escape(p) for p in paths)


def int8_rules(model: nnx.Module) -> list:
    """The first matching rule wins: our binary layers match a rule with no type (Qwix
    then calls the op unchanged), every other layer the int8 QAT rule."""
    return [
        qwix.QtRule(module_path=binary_layer_paths(model)),
        qwix.QtRule(module_path=".*", weight_qtype="int8", act_qtype="int8"),
    ]


class Mixed(nnx.Module):
    """Our BinaryConv (real image in, ±1 kernels) -> float Linear -> our BinaryDense (real
    inputs, ±1 weights) -> float Linear. Returns the logits and every layer's input and
    output, so a test can recompute the binary layers on their own."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv = hnnx.BinaryConv(1, 4, rngs=rngs)
        self.stem = nnx.Linear(4 * 4 * 4, 32, rngs=rngs)
        self.binary = hnnx.BinaryDense(32, 32, rngs=rngs)
        self.head = nnx.Linear(32, 4, rngs=rngs)

    def __call__(self, x):  # x: (B, 4, 4, 1)
        a = self.conv(x)
        h = jnp.tanh(self.stem(a.reshape(a.shape[0], -1)))
        z = self.binary(h)
        return self.head(jax.nn.relu(z)), a, h, z


def _setup(rules_of):
    model = Mixed(nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (8, 4, 4, 1))
    provider = qwix.QtProvider(rules_of(model))
    qmodel = qwix.quantize_model(model, provider, x)
    reference = Mixed(nnx.Rngs(0))  # the same parameters, never quantized
    return qmodel, reference, provider, x


def _latent_grad(model, output_index, x, c, name):
    """d sum(output · c) / d latent kernel of layer ``name``."""

    def loss(m):
        return jnp.sum(m(x)[output_index] * c)

    return nnx.grad(loss)(model)[name][LATENT_KERNEL][...]


def _layer_latent_grad(layer, inputs, c):
    return nnx.grad(lambda m: jnp.sum(m(inputs) * c))(layer)[LATENT_KERNEL][...]


def test_qwix_int8_on_float_layers_leaves_binary_layers_alone():
    qmodel, reference, provider, x = _setup(int8_rules)
    assert sorted(binary_layer_paths(reference).split("|")) == ["binary", "conv"]
    assert not provider.get_unused_rules()  # both rules matched a layer

    logits, a, h, z = qmodel(x)
    ref_logits, ref_a, ref_h, _ = reference(x)
    # The float layers run in int8 QAT: close to float, not equal to it.
    assert not np.array_equal(h, ref_h)
    np.testing.assert_allclose(h, ref_h, atol=0.05)
    assert not np.array_equal(logits, ref_logits)

    # Our binary layers, given the inputs they got inside the quantized model, compute
    # exactly what they compute on their own: ±1 weights times a per-output scale.
    np.testing.assert_array_equal(a, ref_a)
    np.testing.assert_array_equal(z, reference.binary(h))
    latent = reference.binary.latent_kernel[...]
    scale = jnp.mean(jnp.abs(latent), axis=0)
    np.testing.assert_allclose(
        reference.binary(jnp.eye(32)), jnp.where(latent >= 0, 1.0, -1.0) * scale, rtol=1e-6
    )

    # Backward: the gradient reaching each binary layer's latent weights is our rule's
    # (HTAF's straight-through sign), in the quantized model as on the layer alone.
    c_a = jax.random.normal(jax.random.key(2), a.shape)
    c_z = jax.random.normal(jax.random.key(3), z.shape)
    for index, name, inputs, c in ((1, "conv", x, c_a), (3, "binary", h, c_z)):
        got = _latent_grad(qmodel, index, x, c, name)
        want = _layer_latent_grad(getattr(reference, name), inputs, c)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
        assert np.any(got != 0)


def test_a_blanket_qwix_rule_requantizes_a_binary_conv():
    """Why the rule above is needed: one '.*' int8 rule also takes the binary conv (Qwix
    intercepts jax.lax.conv_general_dilated), whose real input is then rounded to int8 and
    whose output is no longer our layer's. (BinaryDense's ``x @ w`` is not a
    jax.lax.dot_general call that Qwix intercepts today; the rule above covers it anyway.)"""

    def blanket(model):
        return [qwix.QtRule(module_path=".*", weight_qtype="int8", act_qtype="int8")]

    qmodel, reference, _, x = _setup(blanket)
    _, a, _, _ = qmodel(x)
    assert not np.array_equal(a, reference.conv(x))
