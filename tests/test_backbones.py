"""ResNet-18 (CIFAR) and ViT backbones: shapes, structure, gradients, use in the ICBM and baseline."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference_grads import check_against_float64

from htaf_jax.models import build_model
from htaf_jax.models.backbones import ResNet18Backbone, ViTBackbone, make_backbone

NARROW_RESNET = dict(stage_channels=(4, 4, 8, 8))
SMALL_VIT = dict(patch_size=4, hidden=16, depth=1, num_heads=2, mlp_dim=32)
# Compiled (not only traced) in the ICBM tests: one block per stage, still a stride-2
# stage with its 1×1 projection.
TINY_RESNET = dict(stage_channels=(4, 8), blocks_per_stage=1)


def _images(size, channels, b=3):
    # NumPy's draw: a jax.random draw of a 4-D shape costs XLA:CPU seconds to compile.
    return jnp.asarray(
        np.random.default_rng(0).standard_normal((b, size, size, channels)), jnp.float32
    )


def _one_program(fn, key):
    """fn(key) compiled once. Its initializers draw with the non-partitionable threefry:
    XLA:CPU takes seconds to compile the partitionable draw of each multi-dimensional
    kernel shape, and nothing checked here depends on which PRNG draws the weights."""
    with jax.threefry_partitionable(False):
        return jax.jit(fn)(key)


@pytest.mark.parametrize("size, channels", [(16, 3), (12, 1)])
def test_resnet18_shapes_and_structure(size, channels):
    net = ResNet18Backbone(**NARROW_RESNET)
    x = jax.ShapeDtypeStruct((3, size, size, channels), jnp.float32)
    variables = jax.eval_shape(net.init, jax.random.key(1), x)  # shapes only: no compile
    feats, upd = jax.eval_shape(
        lambda v, x: net.apply(v, x, train=True, mutable=["batch_stats"]), variables, x
    )
    chex.assert_shape(feats, (3, 8))
    params = variables["params"]
    blocks = sorted(k for k in params if k.startswith("_BasicBlock"))
    assert len(blocks) == 8  # 4 stages × 2 BasicBlocks
    convs = [k for b in blocks for k in params[b] if k.startswith("Conv")]
    # 16 3×3 convs in the blocks + 3 1×1 projections (stages 2-4) + the stem: 20 convs.
    assert len(convs) + 1 == 2 * 8 + 3 + 1
    assert params["Conv_0"]["kernel"].shape == (3, 3, channels, 4)  # CIFAR stem: 3×3
    assert "batch_stats" in upd
    # Defaults are ResNet-18's widths.
    assert ResNet18Backbone().stage_channels == (64, 128, 256, 512)
    assert ResNet18Backbone().blocks_per_stage == 2


def _features_loss(net, x):
    # Random weights on the features: their sum of squares is constant under LayerNorm.
    w = np.random.default_rng(1).standard_normal((x.shape[0], net.hidden))

    def loss(params):
        return jnp.sum(net.apply({"params": params}, x) * w.astype(x.dtype))

    return loss


# mean pooling shares every block with cls but the read-out; it runs in make test-slow.
@pytest.mark.parametrize("pool", ["cls", pytest.param("mean", marks=pytest.mark.slow)])
def test_vit_shapes_tokens_and_gradients(pool):
    net = ViTBackbone(**SMALL_VIT, pool=pool)
    x = _images(12, 3)
    x2 = x.at[1].set(0.0)

    def run(key):
        variables = net.init(key, x)

        g = jax.grad(_features_loss(net, x))(variables["params"])
        return variables, net.apply(variables, x), net.apply(variables, x2), g

    variables, feats, f2, g = _one_program(run, jax.random.key(1))
    # A smooth net: the gradient equals float64 autodiff, which finite differences confirm.
    check_against_float64(
        lambda dtype: _features_loss(net, x.astype(dtype)), variables["params"], g
    )
    chex.assert_shape(feats, (3, 16))
    tokens = 9 + (pool == "cls")  # 3×3 patches of 4, plus the class token
    chex.assert_shape(variables["params"]["pos_embedding"], (1, tokens, 16))
    assert ("cls" in variables["params"]) == (pool == "cls")
    chex.assert_tree_all_finite(g)
    # Each image's features depend on that image only (no mixing across the batch):
    # f2 is the features of x with image 1 zeroed.
    np.testing.assert_allclose(f2[0], feats[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(f2[1], feats[1])


def test_vit_rejects_bad_options():
    with pytest.raises(ValueError, match="does not divide the image size 10×10"):
        jax.eval_shape(ViTBackbone(**SMALL_VIT).init, jax.random.key(0), _images(10, 1))
    with pytest.raises(ValueError, match="pool must be 'cls' or 'mean'"):
        jax.eval_shape(ViTBackbone(**SMALL_VIT, pool="max").init, jax.random.key(0), _images(12, 1))
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        make_backbone("vgg")
    with pytest.raises(ValueError, match="has no fields"):
        make_backbone("vit", width=3)


@pytest.mark.slow  # compiles and trains each backbone inside two models
@pytest.mark.parametrize("backbone, kwargs", [("resnet18", TINY_RESNET), ("vit", SMALL_VIT)])
@pytest.mark.parametrize("name", ["icbm", "standard"])
def test_new_backbones_in_the_icbm_and_its_baseline(backbone, kwargs, name):
    fields = {"name": name, "backbone": backbone, "backbone_kwargs": kwargs, "num_classes": 5}
    if name == "icbm":
        fields["num_concepts"] = 6
    model = build_model(fields)
    x = _images(8, 3, b=4)
    labels = jnp.arange(4) % 5

    def loss_of(dtype):
        def loss(params):
            logits, _ = model.apply(
                {"params": params},
                x.astype(dtype),
                train=True,
                mutable=["batch_stats", "intermediates"],
            )
            chex.assert_shape(logits, (4, 5))
            return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), labels])

        return loss

    def grads(key):
        params = model.init(key, x, train=False)["params"]
        return params, jax.grad(loss_of(jnp.float32))(params)

    params, g = _one_program(grads, jax.random.key(2))
    chex.assert_tree_all_finite(g)
    # A smooth model (smooth concepts): the gradient of every part equals float64 autodiff,
    # which finite differences confirm; none is zero (it reaches every part).
    check_against_float64(loss_of, params, g)
