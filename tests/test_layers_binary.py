"""Binary and deep-Heaviside layers: Linen and NNX agree; NNX layers train."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx, traverse_util

from htaf_jax.binary import quantized_conv, quantized_dense, sign_quantizer
from htaf_jax.linen import binary as lb
from htaf_jax.linen import heaviside as lh
from htaf_jax.nnx import binary as xb
from htaf_jax.nnx import heaviside as xh

KEY = jax.random.key(0)


@pytest.fixture(autouse=True)
def _cheap_prng():
    """Initializers draw with the non-partitionable threefry: XLA:CPU takes seconds to
    compile the partitionable draw of each multi-dimensional kernel shape, and nothing
    checked here depends on which PRNG draws the weights."""
    with jax.threefry_partitionable(False):
        yield


def _normal(shape, seed):
    # NumPy's draw: a jax.random draw of a 4-D shape costs XLA:CPU seconds to compile.
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _dense_x(shape=(5, 12)):
    return _normal(shape, 1)


# (id, Linen module, NNX constructor (in_features, rngs), input, call kwargs)
CASES = [
    ("binary_dense", lb.BinaryDense(7), lambda n, r: xb.BinaryDense(n, 7, rngs=r), _dense_x(), {}),
    (
        "binary_dense_bias_noscale",
        lb.BinaryDense(7, use_scale=False, use_bias=True, surrogate="atan"),
        lambda n, r: xb.BinaryDense(n, 7, use_scale=False, use_bias=True, surrogate="atan", rngs=r),
        _dense_x(),
        {},
    ),
    (
        "binary_conv",
        lb.BinaryConv(4),
        lambda n, r: xb.BinaryConv(n, 4, rngs=r),
        _dense_x((2, 6, 6, 3)),
        {},
    ),
    (
        "binary_conv_strided",
        lb.BinaryConv(4, (2, 2), (2, 2), "VALID", use_bias=True),
        lambda n, r: xb.BinaryConv(n, 4, (2, 2), (2, 2), "VALID", use_bias=True, rngs=r),
        _dense_x((2, 6, 6, 3)),
        {},
    ),
    (
        "heaviside_hard_train",
        lh.HeavisideDense(9),
        lambda n, r: xh.HeavisideDense(n, 9, rngs=r),
        _dense_x(),
        {"train": True},
    ),
    (
        "heaviside_smooth_train_mixed",
        lh.HeavisideDense(8, mode="smooth", linear_fraction=0.25),
        lambda n, r: xh.HeavisideDense(n, 8, mode="smooth", linear_fraction=0.25, rngs=r),
        _dense_x(),
        {"train": True},
    ),
    (
        "heaviside_smooth_eval",
        lh.HeavisideDense(8, mode="smooth"),
        lambda n, r: xh.HeavisideDense(n, 8, mode="smooth", rngs=r),
        _dense_x(),
        {"train": False},
    ),
    (
        "heaviside_no_bn_residual",
        lh.HeavisideDense(8, use_batchnorm=False, surrogate="erf"),
        lambda n, r: xh.HeavisideDense(n, 8, use_batchnorm=False, surrogate="erf", rngs=r),
        _dense_x(),
        {"train": True, "residual": 0.3 * jnp.ones((5, 8))},
    ),
    (
        "quant_dense_real",
        lb.QuantDense(6),
        lambda n, r: xb.QuantDense(n, 6, rngs=r),
        _dense_x(),
        {},
    ),
    (
        "quant_dense_larq_bnn",
        lb.QuantDense(
            6,
            input_quantizer="ste_sign",
            kernel_quantizer="magnitude_aware_sign",
            kernel_constraint="weight_clip",
        ),
        lambda n, r: xb.QuantDense(
            n,
            6,
            input_quantizer="ste_sign",
            kernel_quantizer="magnitude_aware_sign",
            kernel_constraint="weight_clip",
            rngs=r,
        ),
        _dense_x(),
        {},
    ),
    (
        "quant_conv_tern_scaled",
        lb.QuantConv(4, input_quantizer="approx_sign", kernel_quantizer="ste_tern", use_scale=True),
        lambda n, r: xb.QuantConv(
            n, 4, input_quantizer="approx_sign", kernel_quantizer="ste_tern", use_scale=True, rngs=r
        ),
        _dense_x((2, 5, 5, 3)),
        {},
    ),
]


def _load(model: nnx.Module, variables: dict) -> None:
    """Copies a Linen variable tree into the NNX module with the same names."""
    for collection, tree in variables.items():
        for path, value in traverse_util.flatten_dict(tree).items():
            owner = model
            for name in path[:-1]:
                owner = getattr(owner, name)
            variable = getattr(owner, path[-1])
            assert variable.shape == value.shape, (collection, path)
            variable[...] = value


def _weights(shape):
    return _normal(shape, 2)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_linen_and_nnx_agree_in_outputs_and_gradients(case):
    _, linen_layer, make_nnx, x, kwargs = case
    variables = jax.jit(lambda k: linen_layer.init(k, x, **kwargs))(KEY)
    # Move batch statistics off their initial values, so evaluation uses them.
    if "batch_stats" in variables:
        variables = {
            **variables,
            "batch_stats": jax.tree.map(
                lambda v: v + 0.1 * jax.random.uniform(KEY, v.shape), variables["batch_stats"]
            ),
        }
    layer = nnx.jit(lambda: make_nnx(x.shape[-1], nnx.Rngs(5)))()
    _load(layer, variables)
    r = _weights(
        jax.eval_shape(lambda v: linen_layer.apply(v, x, **kwargs, mutable=True), variables)[
            0
        ].shape
    )

    @jax.jit
    def linen_loss_and_grad(params):
        def loss(p):
            y, updates = linen_layer.apply({**variables, "params": p}, x, **kwargs, mutable=True)
            return jnp.sum(y * r), (y, updates)

        return jax.value_and_grad(loss, has_aux=True)(params)

    @nnx.jit
    def nnx_loss_and_grad(model):
        def loss(m):
            y = m(x, **kwargs)
            return jnp.sum(y * r), y

        return nnx.value_and_grad(loss, has_aux=True)(model)

    (l_loss, (l_y, l_updates)), l_grads = linen_loss_and_grad(variables["params"])
    (n_loss, n_y), n_grads = nnx_loss_and_grad(layer)
    np.testing.assert_allclose(n_y, l_y, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(n_loss, l_loss, rtol=1e-6, atol=1e-6)
    l_flat = traverse_util.flatten_dict(l_grads)
    n_flat = traverse_util.flatten_dict(nnx.to_pure_dict(n_grads))
    assert set(n_flat) == set(l_flat)
    for path, g in l_flat.items():
        np.testing.assert_allclose(n_flat[path], g, rtol=1e-6, atol=1e-6, err_msg=str(path))
        assert np.any(np.asarray(g) != 0), path
    # Train mode updates the running statistics identically.
    for path, v in traverse_util.flatten_dict(l_updates.get("batch_stats", {})).items():
        owner = layer
        for name in path[:-1]:
            owner = getattr(owner, name)
        np.testing.assert_allclose(getattr(owner, path[-1])[...], v, rtol=1e-6, atol=1e-6)


def test_binary_dense_is_the_sign_configuration_of_quant_dense():
    x = _dense_x()
    binary = lb.BinaryDense(7, surrogate="atan")
    quant = lb.QuantDense(
        7, kernel_quantizer=sign_quantizer("atan"), use_scale=True, use_bias=False
    )
    variables = jax.jit(binary.init)(KEY, x)
    assert jax.tree.structure(variables) == jax.tree.structure(jax.eval_shape(quant.init, KEY, x))
    f = lambda m: lambda p: jnp.sum(m.apply({"params": p}, x) ** 2)
    (y_quant, g_quant), (y_binary, g_binary) = jax.jit(
        lambda p: [(m.apply({"params": p}, x), jax.grad(f(m))(p)) for m in (quant, binary)]
    )(variables["params"])
    np.testing.assert_array_equal(y_quant, y_binary)
    np.testing.assert_array_equal(g_quant["latent_kernel"], g_binary["latent_kernel"])


def test_quant_dense_names_its_kernel_by_whether_it_is_quantized():
    x = _dense_x()
    init = lambda m: jax.eval_shape(m.init, KEY, x)  # names only: no compile
    assert set(init(lb.QuantDense(3))["params"]) == {"kernel", "bias"}
    assert set(init(lb.QuantDense(3, kernel_quantizer="ste_sign"))["params"]) == {
        "latent_kernel",
        "bias",
    }
    assert hasattr(
        nnx.eval_shape(lambda: xb.QuantDense(12, 3, kernel_quantizer="ste_sign", rngs=nnx.Rngs(0))),
        "latent_kernel",
    )


def test_kernel_constraint_clips_forward_and_passes_the_gradient_through():
    from htaf_jax.binary import clip_latent_kernels, constrained

    w = jnp.array([-2.0, -0.5, 0.25, 1.5])
    np.testing.assert_array_equal(constrained(w, "weight_clip"), [-1.0, -0.5, 0.25, 1.0])
    np.testing.assert_array_equal(
        jax.grad(lambda v: jnp.sum(constrained(v, "weight_clip") * 2))(w), [2.0, 2.0, 2.0, 2.0]
    )
    np.testing.assert_array_equal(constrained(w, lambda v: v / 2), w / 2)
    with pytest.raises(ValueError, match="unknown kernel constraint 'clip'.*weight_clip"):
        constrained(w, "clip")
    params = {"a": {"b": {"latent_kernel": w, "bias": w}}}  # a model's path is deeper than 2
    clipped = clip_latent_kernels(params)["a"]["b"]
    np.testing.assert_array_equal(clipped["latent_kernel"], [-1.0, -0.5, 0.25, 1.0])
    np.testing.assert_array_equal(clipped["bias"], w)


def test_heaviside_evaluation_units_are_exactly_binary():
    layer = nnx.jit(lambda: xh.HeavisideDense(12, 16, mode="smooth", rngs=nnx.Rngs(0)))()
    h, h_train = nnx.jit(lambda m: (m(_dense_x(), train=False), m(_dense_x(), train=True)))(layer)
    assert set(np.unique(np.asarray(h))) <= {0.0, 1.0}
    assert np.all((h_train > 0) & (h_train < 1))


def test_heaviside_mode_is_checked():
    with pytest.raises(ValueError, match="mode must be one of smooth, hard"):
        xh.HeavisideDense(3, 4, mode="soft", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="mode must be one of smooth, hard"):
        lh.HeavisideDense(4, mode="soft").init(KEY, jnp.ones((1, 3)))


class _TinyBinaryNet(nnx.Module):
    """BinaryDense → BN → sign → HeavisideDense → BinaryDense head."""

    def __init__(self, rngs: nnx.Rngs):
        self.dense = xb.BinaryDense(12, 32, rngs=rngs)
        self.bn = nnx.BatchNorm(32, momentum=0.9, rngs=rngs)
        self.hidden = xh.HeavisideDense(32, 32, rngs=rngs)
        self.head = xb.BinaryDense(32, 3, use_bias=True, rngs=rngs)

    def __call__(self, x, train: bool = False):
        h = sign_quantizer("htaf")(self.bn(self.dense(x), use_running_average=not train))
        return self.head(self.hidden(h, train=train))


def test_nnx_binary_net_trains_with_optimizer_and_jit():
    model = nnx.jit(lambda: _TinyBinaryNet(nnx.Rngs(0)))()  # eagerly: an op at a time
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    x = _dense_x((64, 12))
    y = (x[:, 0] > 0).astype(jnp.int32) + (x[:, 1] > 0).astype(jnp.int32)

    @nnx.jit
    def step(model, optimizer):
        def loss_fn(m):
            return optax.softmax_cross_entropy_with_integer_labels(m(x, train=True), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(25)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    model_logits = nnx.jit(lambda m: m(x, train=False))(model)
    assert model_logits.shape == (64, 3)


def test_functional_forms_defaults_are_float_unscaled_stride_one_same():
    """quantized_dense and quantized_conv with no options: no quantizer, no scale, no bias,
    stride 1 and SAME padding (their documented defaults), checked against float64 sums."""
    rng = np.random.default_rng(0)
    x, k = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(quantized_dense(x, k), x @ k, rtol=1e-5, atol=1e-6)
    x, k = rng.standard_normal((1, 4, 4, 1)), rng.standard_normal((3, 3, 1, 2))
    padded = np.pad(x[0, :, :, 0], 1)  # SAME for a 3×3 kernel at stride 1: one zero each side
    want = np.stack(
        [
            [
                [np.sum(padded[i : i + 3, j : j + 3] * k[:, :, 0, o]) for o in range(2)]
                for j in range(4)
            ]
            for i in range(4)
        ]
    )[None]
    np.testing.assert_allclose(quantized_conv(x, k), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("x_rank,kernel_rank", [(3, 4), (4, 3)])
def test_quantized_conv_names_the_layouts_when_either_rank_is_wrong(x_rank, kernel_rank):
    x, k = jnp.ones((1, 4, 4, 1)[:x_rank]), jnp.ones((3, 3, 1, 2)[:kernel_rank])
    with pytest.raises(ValueError, match="NHWC inputs and HWIO kernels"):
        quantized_conv(x, k)
