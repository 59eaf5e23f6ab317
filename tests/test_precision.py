"""bfloat16 (config.half_precision): every registry unit against float64 references,
the data-parallel step on 1 vs 8 devices, and one short engine run per model family.

Tolerances follow from bfloat16's unit roundoff u = 2^-8 (8 significant bits): the
units compute in float32 and round their result to bfloat16 once, so a gradient is
within u of the exact value at the same (bfloat16) input, plus the float32 rule's own
error, which is far smaller, and CPUs flushing float32 subnormals (an absolute
2^-125).
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from data_marks import needs_data
from test_surrogates import DOCUMENTED

import htaf_jax as H
from htaf_jax.models import build_model
from htaf_jax.train import step as step_lib

U = 2.0**-8  # bfloat16 unit roundoff
TINY = 2.0**-125  # twice float32's smallest normal: flushed subnormals
BF16_MAX = float(jnp.finfo(jnp.bfloat16).max)
# |βx| ≤ 40 (β = 1 for the defaults): both signs, 0, and magnitudes from 1e-3 to 40.
_MAG = np.concatenate([np.logspace(-3, np.log10(40.0), 60), np.arange(1.0, 41.0)])
TAIL = np.concatenate([-_MAG[::-1], [0.0], _MAG])
# Finite inputs far outside that: where a careless rule overflows (exp, x²) or divides 0/0.
EXTREME = np.array(
    [
        -BF16_MAX,
        -1e30,
        -1e10,
        -65504.0,
        -1e-30,
        -1.2e-38,
        -0.0,
        0.0,
        1.2e-38,
        1e-30,
        65504.0,
        1e10,
        1e30,
        BF16_MAX,
    ]
)
SUBNORMAL = np.array([-1e-39, 1e-39])  # CPUs may read these as 0 (H = 1 on both sides)
# A float64 σ(z)(1 − σ(z)) rounds to 0 past z ≈ 37; σ(z)σ(−z) keeps the tail.
STABLE_GRAD = {
    "sigmoid": lambda x, alpha: alpha / (1 + np.exp(-alpha * x)) / (1 + np.exp(alpha * x))
}
UNITS = [(name, {}) for name in sorted(DOCUMENTED)] + [("htaf", {"alpha": 8.0, "beta": 2.0})]


def _bf16(x) -> jax.Array:
    return jnp.asarray(np.asarray(x, np.float32), jnp.bfloat16)


def _f64(x) -> np.ndarray:
    return np.asarray(jnp.asarray(x, jnp.float32), np.float64)


@pytest.mark.parametrize("name, hparams", UNITS, ids=lambda v: str(v) if v else "defaults")
def test_unit_gradients_in_bfloat16_match_float64_over_the_tail(name, hparams):
    unit = H.get_unit(name, **hparams)
    defaults, ref_grad, ref_smooth = DOCUMENTED[name]
    ref_grad = STABLE_GRAD.get(name, ref_grad)
    kwargs = {**defaults, **hparams}
    scale = kwargs.get("beta", 1.0)  # the grid is |βx| ≤ 40 for HTAF
    x = _bf16(TAIL / scale)
    want = ref_grad(_f64(x), **kwargs)  # float64, at the bfloat16 inputs themselves
    # The sigmoid rule α·σ(αx)·σ(−αx) passes through σ(−αx), flushed below 2^-126:
    # results under α·2^-126 may read 0.
    bound = U * np.abs(want) + TINY * (kwargs["alpha"] if name == "sigmoid" else 1.0)
    hard = jax.grad(lambda v: jnp.sum(unit(v).astype(jnp.float32)))(x)
    sign = jax.grad(lambda v: jnp.sum(unit.sign(v).astype(jnp.float32)))(x)
    for label, got, factor in (
        ("grad", unit.grad(x), 1),
        ("heaviside'", hard, 1),
        ("sign'", sign, 2),
    ):
        assert got.dtype == jnp.bfloat16, label
        err = np.abs(_f64(got) - factor * want)
        worst = int(np.argmax(err / (factor * bound)))
        assert np.all(err <= factor * bound), (
            f"{name} {label}: x={_f64(x)[worst]:.4g} got {_f64(got)[worst]:.6g} "
            f"want {factor * want[worst]:.6g}"
        )
    if ref_smooth is not None:  # forward values in [0, 1]: within u, absolutely (a float32
        # forward like 0.5·(1 + erf(z)) cancels to 0 in the far negative tail)
        np.testing.assert_allclose(
            _f64(unit.smooth(x)), ref_smooth(_f64(x), **kwargs), rtol=U, atol=U
        )
    if name == "htaf":  # the smooth form's own gradient keeps the tail too (custom VJP)
        smooth = jax.grad(lambda v: jnp.sum(unit.smooth(v).astype(jnp.float32)))(x)
        assert np.all(np.abs(_f64(smooth) - want) <= bound)
        assert np.all(_f64(smooth)[np.abs(TAIL) <= 40] > 0), "the heavy tail is kept"


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_unit_is_finite_and_exactly_binary_for_any_finite_bfloat16_input(name):
    unit = H.get_unit(name)
    x = _bf16(np.concatenate([TAIL, EXTREME, SUBNORMAL]))
    values = {
        "heaviside": unit(x),
        "sign": unit.sign(x),
        "grad": unit.grad(x),
        "heaviside'": jax.grad(lambda v: jnp.sum(unit(v)))(x),
        "sign'": jax.grad(lambda v: jnp.sum(unit.sign(v)))(x),
    }
    if unit.has_smooth:
        values["smooth"] = unit.smooth(x)
        values["smooth'"] = jax.grad(lambda v: jnp.sum(unit.smooth(v)))(x)
    for label, v in values.items():
        assert v.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(v))), f"{name} {label}"
    assert set(np.unique(_f64(values["heaviside"]))) <= {0.0, 1.0}
    assert set(np.unique(_f64(values["sign"]))) <= {-1.0, 1.0}
    normal = slice(0, len(x) - len(SUBNORMAL))
    positive = _f64(x)[normal] >= 0  # H(0) = 1, sign(0) = +1 (also for −0)
    np.testing.assert_array_equal(_f64(values["heaviside"])[normal], positive.astype(float))
    np.testing.assert_array_equal(_f64(values["sign"])[normal], np.where(positive, 1.0, -1.0))


# --------------------------------------------------------- the data-parallel step --


def _applied_gradient(num_devices, compute_dtype, images, labels):
    """The gradient one SGD step (lr 1, no momentum) applies: params before − after."""
    model = build_model(
        ml_collections.ConfigDict(dict(name="mlp", hidden_sizes=(32,))), num_classes=10
    )
    mesh = step_lib.make_mesh(num_devices)
    tx = optax.sgd(1.0)
    state = step_lib.init_state(model, tx, jax.random.key(0), images.shape[1:])
    before = jax.device_get(state.params)
    state, rng = step_lib.replicate((state, jax.random.key(1)), mesh)
    train_step = step_lib.make_train_step(model, tx, mesh, compute_dtype=compute_dtype)
    state, _ = train_step(state, *step_lib.shard_batch((images, labels), mesh), rng)
    after = jax.device_get(state)
    assert all(x.dtype == np.float32 for x in jax.tree.leaves(after.params))
    return jax.tree.map(lambda b, a: b - a, before, after.params)


@pytest.mark.eight_devices
def test_eight_devices_equal_one_device_in_bfloat16():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(64, 28, 28, 1)).astype(np.float32)
    labels = rng.integers(0, 10, 64).astype(np.int32)
    exact = _applied_gradient(1, None, images, labels)
    one = _applied_gradient(1, jnp.bfloat16, images, labels)
    eight = _applied_gradient(8, jnp.bfloat16, images, labels)
    for path, e, g1, g8 in zip(
        jax.tree_util.tree_leaves_with_path(exact),
        jax.tree.leaves(exact),
        jax.tree.leaves(one),
        jax.tree.leaves(eight),
    ):
        scale = np.max(np.abs(e))
        # Same per-example arithmetic on both meshes; what differs is where the
        # batch sum of a weight gradient is rounded to bfloat16 (over 8 rows per
        # device, then a float32 mean, vs over all 64 rows): a few u of the
        # leaf's largest entry. An 8x gradient (the shard_map trap) is 7x off.
        np.testing.assert_allclose(g8, g1, rtol=0, atol=8 * U * scale, err_msg=str(path[0]))
        # Against float32 the errors compound: inputs, activations, logits and each
        # backward delta are rounded to bfloat16 (u each) before the batch sum.
        np.testing.assert_allclose(g1, e, rtol=0, atol=32 * U * scale, err_msg=str(path[0]))
        assert np.linalg.norm(g8) / np.linalg.norm(e) == pytest.approx(1.0, abs=4 * U)


# --------------------------------------------- one short engine run per family --


def _engine_config(name: str):
    from experiments.configs import bnn_mlp, dhn_mlp, icbm, mlp, snn_mlp

    config = {"mlp": mlp, "snn_mlp": snn_mlp, "bnn_mlp": bnn_mlp, "dhn_mlp": dhn_mlp, "icbm": icbm}[
        name
    ].get_config()
    config.update(
        dict(
            runlocal=True,
            half_precision=True,
            progress=False,
            tensorboard=False,
            train_subset=128,
            test_subset=64,
        )
    )
    small = {
        "mlp": dict(hidden_sizes=(32,), batch_norm=True),
        "snn_mlp": dict(hidden=(32,), num_steps=4),
        "bnn_mlp": dict(hidden=(64, 64)),
        "dhn_mlp": dict(depth=2, width=32),
        "icbm": dict(backbone_kwargs=ml_collections.ConfigDict({"widths": (32,)}), num_concepts=16),
    }[name]
    for key, value in small.items():
        config.model[key] = value
    return config


@pytest.mark.slow  # the engine end to end, once per model family
@needs_data
@pytest.mark.parametrize("name", ["mlp", "snn_mlp", "bnn_mlp", "dhn_mlp", "icbm"])
def test_engine_trains_every_family_in_bfloat16(name, tmp_path):
    from htaf_jax.train import train_and_evaluate

    config = _engine_config(name)
    result = train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(result.metrics["test/loss"])
    for tree in (result.params, result.batch_stats):
        for leaf in jax.tree.leaves(tree):
            assert leaf.dtype == np.float32 and np.all(np.isfinite(leaf))
    if name != "snn_mlp":  # every other family here normalises with BatchNorm
        assert jax.tree.leaves(result.batch_stats)


@pytest.mark.parametrize("name", ["mlp", "snn_mlp", "bnn_mlp", "dhn_mlp", "icbm"])
def test_every_matmul_of_the_train_step_runs_in_bfloat16(name):
    """No model upcasts on its own: every dot_general of the lowered step (forward and
    backward) takes bfloat16 operands."""
    import re

    model = build_model(_engine_config(name).model, num_classes=10, total_train_steps=10)
    tx, mesh = optax.adam(1e-3), step_lib.make_mesh(1)
    state, rng = step_lib.replicate(
        (step_lib.init_state(model, tx, jax.random.key(0), (28, 28, 1)), jax.random.key(1)), mesh
    )
    train_step = step_lib.make_train_step(model, tx, mesh, compute_dtype=jnp.bfloat16)
    batch = step_lib.shard_batch(
        (np.zeros((8, 28, 28, 1), np.float32), np.zeros(8, np.int32)), mesh
    )
    text = train_step.jitted.lower(state, *batch, rng).as_text()
    operands = [d.split("->")[0] for d in re.findall(r"stablehlo\.dot_general.*?->", text)]
    assert len(operands) >= 3  # a forward and two backward matmuls at the least
    assert all("bf16" in o and "f32" not in o for o in operands), operands
