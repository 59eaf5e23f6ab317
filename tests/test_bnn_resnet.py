"""The Bi-Real-Net-style binary ResNet: shapes, block structure, gradients, the unit
registry's errors and the model summary against numbers computed by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from htaf_jax.binary import sign_quantizer
from htaf_jax.linen.summary import summarize
from htaf_jax.models.bnn_resnet import BinaryResNet
from htaf_jax.units import bits_of, get_unit

KEY = jax.random.key(0)
UNITS = ("htaf", "ste_sign", "approx_sign")


def _init(model, shape):
    """Inputs and initial variables. XLA:CPU takes seconds to compile the partitionable
    threefry draw of each multi-dimensional kernel shape; what these tests check does not
    depend on which PRNG draws the initial weights, so they use the cheap-to-compile one."""
    # NumPy's draw: a jax.random draw of a 4-D shape costs XLA:CPU seconds to compile.
    x = jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)
    with jax.threefry_partitionable(False):
        return x, jax.jit(lambda k: model.init(k, x))(jax.random.key(1))


def _shapes(fn, *args):
    """fn's output shapes, traced without compiling."""
    return jax.eval_shape(fn, *args)


@pytest.fixture(scope="module")
def small():
    """The (4, 8)-wide, one-block-per-stage model on a batch of 4 8×8 images."""
    model = BinaryResNet(stage_features=(4, 8), blocks_per_stage=1)
    x, variables = _init(model, (4, 8, 8, 1))
    return model, x, variables


@pytest.mark.parametrize("shape", [(2, 28, 28, 1), (2, 32, 32, 3)])
def test_logits_shape_and_stage_resolutions(shape):
    model = BinaryResNet(stage_features=(4, 8, 16), blocks_per_stage=1)
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    variables = _shapes(model.init, KEY, x)
    logits, inter = _shapes(
        lambda v, x: model.apply(v, x, capture_intermediates=True), variables, x
    )
    assert logits.shape == (2, 10)
    side = shape[1]
    # Stages halve the resolution after the first (SAME padding: ceil).
    for i, (s, c) in enumerate([(side, 4), (-(-side // 2), 8), (-(-side // 4), 16)]):
        out = inter["intermediates"][f"stage{i}_block0"]["__call__"][0]
        assert out.shape == (2, s, s, c)


def test_block_structure_binary_convs_and_shortcut_convs():
    model = BinaryResNet(stage_features=(4, 8), blocks_per_stage=2)
    x = jax.ShapeDtypeStruct((1, 8, 8, 1), jnp.float32)
    params = _shapes(model.init, KEY, x)["params"]
    # Every block's 3×3 conv keeps a latent (binarised) kernel; stem, shortcuts and head
    # are real-valued ("kernel").
    for b in ("stage0_block0", "stage0_block1", "stage1_block0", "stage1_block1"):
        assert set(params[b]["conv"]) == {"latent_kernel"}
    assert params["stage1_block0"]["conv"]["latent_kernel"].shape == (3, 3, 4, 8)
    assert set(params["stem_conv"]) == {"kernel"} and set(params["head"]) == {"kernel", "bias"}
    # A 1×1 shortcut conv (with its BN) only where the stride or the width changes.
    with_shortcut = {b for b in params if "shortcut_conv" in params[b]}
    assert with_shortcut == {"stage1_block0"}
    assert params["stage1_block0"]["shortcut_conv"]["kernel"].shape == (1, 1, 4, 8)
    assert "shortcut_bn" in params["stage1_block0"]
    # A wider stem than the first stage gives stage 0's first block a shortcut conv too.
    wide = _shapes(BinaryResNet(stage_features=(4, 8), stem_features=6).init, KEY, x)
    assert {b for b in wide["params"] if "shortcut_conv" in wide["params"][b]} == {
        "stage0_block0",
        "stage1_block0",
    }


def test_binary_conv_reads_signs_and_shortcut_is_real():
    """A block's output is BN(conv(sign x, sign W)·mean|W|) + x: with the BN at init
    (identity up to its ε, on running statistics 0/1), the shortcut passes x unchanged."""
    from htaf_jax.models.bnn_resnet import BiRealBlock

    block = BiRealBlock(3, unit="ste_sign")
    x, v = _init(block, (1, 5, 5, 3))
    w = v["params"]["conv"]["latent_kernel"]
    xs, ws = jnp.where(x >= 0, 1.0, -1.0), jnp.where(w >= 0, 1.0, -1.0)
    conv = jax.lax.conv_general_dilated(
        xs, ws, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    expected = conv * jnp.mean(jnp.abs(w), axis=(0, 1, 2)) / jnp.sqrt(1 + 1e-5) + x
    np.testing.assert_allclose(jax.jit(block.apply)(v, x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # the whole ResNet's backward (make test-slow)
def test_gradients_reach_every_parameter(small):
    """For each unit (the parameters do not depend on it): one compiled program."""
    _, x, variables = small
    labels = jnp.arange(4)

    def loss(params, unit):
        model = BinaryResNet(stage_features=(4, 8), blocks_per_stage=1, surrogate=unit)
        logits, _ = model.apply(
            {**variables, "params": params}, x, train=True, mutable=["batch_stats"]
        )
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), labels])

    grads = jax.jit(lambda p: {u: jax.grad(loss)(p, u) for u in UNITS})(variables["params"])
    assert set(grads) == set(UNITS)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert jnp.all(jnp.isfinite(g)), path
        assert jnp.any(g != 0), path


def test_train_mode_updates_batch_stats(small):
    model, x, variables = small
    _, updates = jax.jit(lambda v: model.apply(v, x, train=True, mutable=["batch_stats"]))(
        variables
    )
    changed = jax.tree.map(
        lambda a, b: bool(jnp.any(a != b)), updates["batch_stats"], variables["batch_stats"]
    )
    assert all(jax.tree.leaves(changed))
    assert set(updates["batch_stats"]) == {"stem_bn", "stage0_block0", "stage1_block0"}


def test_binary_unit_names():
    x = jnp.array([-0.5, 0.0, 2.0])
    assert sign_quantizer("htaf").__self__ == get_unit("htaf")
    for name in ("ste_sign", "approx_sign", "atan"):  # a step unit's signed hard form, 1 bit
        np.testing.assert_array_equal(sign_quantizer(name)(x), [-1.0, 1.0, 1.0])
        assert bits_of(name) == 1
    assert sign_quantizer("ste_tern") == get_unit("ste_tern")  # other units: their own levels
    with pytest.raises(ValueError, match=r"unknown unit 'sgn'.*approx_sign.*atan.*htaf.*ste_sign"):
        sign_quantizer("sgn")
    with pytest.raises(TypeError, match="a unit is a name"):
        sign_quantizer(3)


def test_summary_by_hand(small):
    """Stem 3×3 1→4 (8×8), block 0 binary 3×3 4→4 (8×8), block 1 stride 2: shortcut
    1×1 4→8 and binary 3×3 4→8 (4×4), head 8→10."""
    model, x, variables = small
    s = summarize(model, variables, x[:2])
    assert [layer.name for layer in s.layers] == [
        "stem_conv",
        "stem_bn",
        "stage0_block0/conv",
        "stage0_block0/bn",
        "stage1_block0/shortcut_conv",
        "stage1_block0/shortcut_bn",
        "stage1_block0/conv",
        "stage1_block0/bn",
        "head",
    ]
    binary = 3 * 3 * 4 * 4 + 3 * 3 * 4 * 8  # 144 + 288
    real = 3 * 3 * 4 + 1 * 1 * 4 * 8 + 8 * 10 + 10 + 2 * (4 + 4 + 8 + 8)
    assert s.params == {1: binary, 32: real}
    assert [layer.input_precision for layer in s.layers] == [
        32,
        None,
        1,
        None,
        32,
        None,
        1,
        None,
        32,
    ]
    macs_1 = 144 * 64 + 288 * 16  # 13824
    macs_32 = 36 * 64 + 32 * 16 + 80  # 2896
    assert s.macs == {1: macs_1, 32: macs_32}
    assert s.binary_mac_ratio == pytest.approx(13824 / 16720)
    assert s.memory_bytes == (binary + 32 * real) / 8
    assert "Ratio of MACs that are binarized: 0.8268" in s.table()


def test_react_block_rsign_threshold_and_rprelu_by_hand():
    """react=True: BN(conv(sign(x − t))·mean|W|) + x, then PReLU(· − γ; β) + ζ, with t, γ,
    β, ζ set to non-default values per channel."""
    from htaf_jax.models.bnn_resnet import BiRealBlock

    block = BiRealBlock(3, unit="ste_sign", react=True)
    x, v = _init(block, (1, 5, 5, 3))
    t, g, b, z = (
        jnp.array(a, jnp.float32)
        for a in ([0.3, -0.2, 0.5], [0.1, -0.4, 0.0], [0.25, 0.5, -0.1], [0.0, 0.2, -0.3])
    )
    p = {**v["params"], "threshold": t, "rprelu": {"shift_in": g, "slope": b, "shift_out": z}}
    w = p["conv"]["latent_kernel"]
    xs, ws = jnp.where(x - t >= 0, 1.0, -1.0), jnp.where(w >= 0, 1.0, -1.0)
    conv = jax.lax.conv_general_dilated(
        xs, ws, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    u = conv * jnp.mean(jnp.abs(w), axis=(0, 1, 2)) / jnp.sqrt(1 + 1e-5) + x - g
    expected = jnp.where(u > 0, u, b * u) + z
    np.testing.assert_allclose(
        jax.jit(block.apply)({**v, "params": p}, x), expected, rtol=1e-5, atol=1e-5
    )
    # At init (t = γ = ζ = 0, β = 0.25) the block is Bi-Real's followed by a PReLU.
    plain = BiRealBlock(3, unit="ste_sign").apply(
        {**v, "params": {k: v["params"][k] for k in ("conv", "bn")}}, x
    )
    np.testing.assert_allclose(
        block.apply(v, x), jnp.where(plain > 0, plain, 0.25 * plain), rtol=1e-6
    )


def test_react_gradients_reach_thresholds_and_rprelu():
    model = BinaryResNet(stage_features=(4, 8), blocks_per_stage=1, react=True)
    x, variables = _init(model, (4, 8, 8, 1))

    def loss(params):
        logits, _ = model.apply(
            {**variables, "params": params}, x, train=True, mutable=["batch_stats"]
        )
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), jnp.arange(4)])

    # The head's ReLU follows the last RPReLU: at init (ζ = 0) it zeroes every negative
    # branch there, and with it the last slope's gradient; ζ = 1 lets some through.
    params = variables["params"]
    last = {**params["stage1_block0"]["rprelu"], "shift_out": jnp.ones(8)}
    params = {**params, "stage1_block0": {**params["stage1_block0"], "rprelu": last}}
    grads = jax.jit(jax.grad(loss))(params)
    for block, c_in, _c in (("stage0_block0", 4, 4), ("stage1_block0", 4, 8)):
        assert grads[block]["threshold"].shape == (c_in,)
        assert set(grads[block]["rprelu"]) == {"shift_in", "slope", "shift_out"}
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert jnp.all(jnp.isfinite(g)), path
        assert jnp.any(g != 0), path
    # The summary counts the new real-valued parameters: 4 + 3·4 and 4 + 3·8.
    s = summarize(model, variables, x[:2])
    plain_model = BinaryResNet(stage_features=(4, 8), blocks_per_stage=1)
    plain = summarize(plain_model, _init(plain_model, (4, 8, 8, 1))[1], x[:2])
    assert s.params[32] - plain.params[32] == (4 + 12) + (4 + 24)
    assert s.macs == plain.macs
    own = {
        layer.name: (layer.kind, layer.params, layer.output_shape)
        for layer in s.layers
        if layer.kind != "BatchNorm" and not layer.macs
    }
    assert own == {
        "stage0_block0": ("BiRealBlock", {32: 4}, (8, 8, 4)),
        "stage0_block0/rprelu": ("RPReLU", {32: 12}, (8, 8, 4)),
        "stage1_block0": ("BiRealBlock", {32: 4}, (4, 4, 8)),
        "stage1_block0/rprelu": ("RPReLU", {32: 24}, (4, 4, 8)),
    }
