"""The concept layer: the pure-JAX core, and Linen vs NNX ``ConceptBottleneck``."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from htaf_jax import concepts as core
from htaf_jax.linen.concepts import ConceptBottleneck as LinenConcepts
from htaf_jax.nnx.concepts import AuxLoss
from htaf_jax.nnx.concepts import ConceptBottleneck as NNXConcepts
from htaf_jax.units import get_unit

D, K, B = 6, 5, 8


def _features(seed=0):
    return jax.random.normal(jax.random.key(seed), (B, D), jnp.float32)


# ------------------------------------------------------------------- core --
@pytest.mark.parametrize(
    "total, fraction, sharpen", [(8, 0.5, 16.0), (100, 0.75, 3.0), (7, 1.0, 10.0), (5, 0.3, 1.0)]
)
def test_schedule_matches_its_closed_form(total, fraction, sharpen):
    steps = np.arange(0, total + 3)
    want = sharpen ** np.minimum(steps / (fraction * total), 1.0)  # float64
    got = jax.jit(lambda t: core.sharpness_schedule(t, total, sharpen, fraction))(steps)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert float(got[0]) == 1.0 and float(got[-1]) == pytest.approx(sharpen, rel=1e-6)


def test_schedule_rejects_bad_options():
    with pytest.raises(ValueError, match="sharpen must be ≥ 1"):
        core.sharpness_schedule(0, 10, 0.5)
    with pytest.raises(ValueError, match=r"sharpen_fraction must be in \(0, 1\]"):
        core.sharpness_schedule(0, 10, 2.0, 1.5)
    with pytest.raises(ValueError, match="total_train_steps > 0"):
        core.sharpness_schedule(0, 0, 2.0)
    with pytest.raises(ValueError, match="needs the train step"):
        core.sharpness_at(None, train=True, total_steps=10, sharpen=2.0)
    assert float(core.sharpness_at(None, train=False, total_steps=0, sharpen=2.0)) == 2.0
    assert float(core.sharpness_at(None, train=True, total_steps=0, sharpen=1.0)) == 1.0


def test_binary_concepts_forms_and_noise():
    normed = jnp.array([[-2.0, -0.1, 0.0, 0.3, 5.0]], jnp.float32)
    unit = get_unit("htaf", alpha=4.0, beta=1.0)
    hard, pre = core.binary_concepts(normed, unit, mode="smooth", sharpness=2.0)  # eval: hard
    np.testing.assert_array_equal(hard, [[0.0, 0.0, 1.0, 1.0, 1.0]])  # H(0) = 1
    np.testing.assert_allclose(pre, 2.0 * normed)
    soft, _ = core.binary_concepts(normed, unit, mode="smooth", train=True, sharpness=2.0)
    np.testing.assert_allclose(soft, unit.smooth(2.0 * normed), rtol=1e-6)
    key = jax.random.key(3)
    noisy, pre = core.binary_concepts(
        normed, unit, mode="hard", train=True, sharpness=3.0, noise_std=0.5, key=key
    )
    eps = jax.random.normal(key, normed.shape, normed.dtype)
    np.testing.assert_allclose(pre, 3.0 * (normed + 0.5 * eps), rtol=1e-6)
    np.testing.assert_array_equal(noisy, (np.asarray(pre) >= 0).astype(np.float32))
    with pytest.raises(ValueError, match="needs a PRNG key"):
        core.binary_concepts(normed, unit, train=True, noise_std=0.5)
    with pytest.raises(ValueError, match="no smooth form"):
        core.binary_concepts(normed, "straight_through", mode="smooth", train=True)
    with pytest.raises(ValueError, match="concept_mode"):
        core.binary_concepts(normed, unit, mode="soft")


def test_near_binary_share_closed_form():
    z = jnp.array([0.0, 0.005, 0.5, 0.95, 0.991, 1.0, 0.02, 0.011])
    assert float(core.near_binary_share(z, 0.01)) == pytest.approx(4 / 8)  # 0, .005, .991, 1
    assert float(core.near_binary_share(z, 0.06)) == pytest.approx(7 / 8)  # all but 0.5


def test_hard_concepts_take_the_surrogate_gradient():
    unit = get_unit("htaf", alpha=4.0, beta=1.0)
    x = jnp.linspace(-3.0, 3.0, 7)
    g = jax.grad(lambda v: jnp.sum(unit(v)))(x)
    np.testing.assert_allclose(g, unit.grad(x), rtol=1e-6)


# ------------------------------------------------------- Linen vs NNX ------
def _pair(**kw):
    """A Linen layer with its variables, and an NNX layer holding the same values."""
    lin = LinenConcepts(num_concepts=K, **kw)
    variables = lin.init(jax.random.key(1), _features(), train=False)
    # Non-trivial BatchNorm state, so evaluation reads running statistics that matter.
    variables = jax.tree.map(lambda a: a, variables)
    affine = kw.get("norm_affine", True)
    if affine:
        variables["params"]["norm"]["scale"] = jnp.linspace(0.5, 1.5, K)
        variables["params"]["norm"]["bias"] = jnp.linspace(-0.3, 0.3, K)
    else:
        assert "norm" not in variables["params"]  # no learned scale or bias
    variables["batch_stats"]["norm"]["mean"] = jnp.linspace(-0.2, 0.2, K)
    variables["batch_stats"]["norm"]["var"] = jnp.linspace(0.5, 2.0, K)
    mod = NNXConcepts(D, K, **kw, rngs=nnx.Rngs(0))
    mod.proj.kernel[...] = variables["params"]["proj"]["kernel"]
    for name in ("scale", "bias") if affine else ():
        getattr(mod.norm, name)[...] = variables["params"]["norm"][name]
    assert affine or (mod.norm.scale is None and mod.norm.bias is None)
    for name in ("mean", "var"):
        getattr(mod.norm, name)[...] = variables["batch_stats"]["norm"][name]
    return lin, variables, mod


CASES = [
    dict(),
    dict(concept_mode="hard"),
    dict(surrogate="sigmoid", sharpen=8.0, sharpen_fraction=0.5, total_train_steps=10),
    dict(surrogate="straight_through", concept_mode="hard"),
    dict(surrogate=get_unit("htaf", alpha=16.0, beta=1.0), sharpen=4.0, total_train_steps=6),
    dict(concept_offset=0.7, rate_penalty=0.3),
    dict(norm_affine=False, concept_offset=1.5, rate_penalty=2.0, concept_mode="hard"),
    dict(norm_affine=False, concept_offset=-0.5, sharpen=4.0, total_train_steps=6),
]


def _close(actual, desired):
    """Equal to 1e-6 of the array's largest entry: the two front ends may round one
    pre-activation an ulp apart, and a steep unit's derivative amplifies that."""
    desired = np.asarray(desired)
    np.testing.assert_allclose(
        actual, desired, rtol=1e-6, atol=1e-6 * max(1.0, float(np.abs(desired).max()))
    )


def _weights():
    return jax.random.normal(jax.random.key(7), (B, K), jnp.float32)


@pytest.mark.parametrize(
    "kw", CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "defaults"
)
@pytest.mark.parametrize("train", [False, True])
def test_linen_and_nnx_agree_in_outputs_and_gradients(kw, train):
    lin, variables, mod = _pair(**kw)
    h, w, step = _features(), _weights(), jnp.asarray(3, jnp.int32)

    @jax.jit
    def linen_loss(params, h):
        z, updates = lin.apply(
            {"params": params, "batch_stats": variables["batch_stats"]},
            h,
            train=train,
            step=step,
            mutable=["batch_stats", "intermediates", "losses"],
        )
        aux = sum(jax.tree.leaves(updates.get("losses", {})))  # the trainer's one line
        return jnp.sum(z * w) + aux, z

    @nnx.jit
    def nnx_loss_and_grads(mod, h):
        def loss(mod, h):
            z = mod(h, train=train, step=step)
            return jnp.sum(z * w) + sum(jax.tree.leaves(nnx.state(mod, AuxLoss))), z

        return nnx.value_and_grad(loss, argnums=(0, 1), has_aux=True)(mod, h)

    (l_lin, z_lin), (g_params, g_h) = jax.value_and_grad(linen_loss, argnums=(0, 1), has_aux=True)(
        variables["params"], h
    )
    (l_nnx, z_nnx), (g_mod, g_h_nnx) = nnx_loss_and_grads(mod, h)
    _close(z_nnx, z_lin)
    _close(l_nnx, l_lin)
    _close(g_h_nnx, g_h)
    _close(g_mod["proj"]["kernel"][...], g_params["proj"]["kernel"])
    for name in ("scale", "bias") if kw.get("norm_affine", True) else ():
        _close(g_mod["norm"][name][...], g_params["norm"][name])
    assert float(jnp.abs(g_params["proj"]["kernel"]).sum()) > 0  # the gradient gets through


def test_linen_and_nnx_agree_on_running_statistics_and_sown_values():
    kw = dict(sharpen=4.0, total_train_steps=10)
    lin, variables, mod = _pair(**kw)
    h = _features()
    _, updates = lin.apply(
        variables, h, train=True, step=5, mutable=["batch_stats", "intermediates"]
    )
    mod(h, train=True, step=5)
    for name in ("mean", "var"):
        np.testing.assert_allclose(
            getattr(mod.norm, name)[...], updates["batch_stats"]["norm"][name], rtol=1e-6, atol=1e-7
        )
    inter = updates["intermediates"]
    np.testing.assert_allclose(mod.near_binary[...], inter["near_binary"][0], rtol=1e-6)
    np.testing.assert_allclose(mod.concept_rate[...], inter["concept_rate"][0], rtol=1e-6)
    # The preactivations method (noiseless, ranks examples) agrees too, on the new statistics.
    updated = {"params": variables["params"], "batch_stats": updates["batch_stats"]}
    _close(
        mod.preactivations(h, step=5),
        lin.apply(updated, h, step=5, method=LinenConcepts.preactivations),
    )


def test_same_fields_and_defaults_in_both():
    import dataclasses

    from flax import nnx

    spec = {f.name: f.default for f in dataclasses.fields(core.ConceptFields)}
    linen = {
        f.name: f.default
        for f in LinenConcepts.__dataclass_fields__.values()
        if f.name not in ("parent", "name")
    }
    assert linen == spec
    layer = NNXConcepts(4, rngs=nnx.Rngs(0))
    assert {k: getattr(layer, k) for k in spec} == spec


@pytest.mark.parametrize("cls", ["linen", "nnx"])
def test_noise_only_in_training(cls):
    h = _features()
    if cls == "linen":
        lin, variables, _ = _pair(concept_noise=1.0)
        quiet = lin.clone(concept_noise=0.0)
        run = lambda m, train: m.apply(
            variables,
            h,
            train=train,  # noqa: E731
            rngs={"dropout": jax.random.key(2)},
            mutable=["batch_stats"],
        )[0]
        noisy_eval, clean_eval = run(lin, False), run(quiet, False)
        noisy_train, clean_train = run(lin, True), run(quiet, True)
    else:
        _, _, mod = _pair(concept_noise=1.0)
        _, _, quiet = _pair()
        noisy_eval, clean_eval = mod(h), quiet(h)
        noisy_train, clean_train = mod(h, train=True), quiet(h, train=True)
        # An explicit key overrides the stored stream and is reproducible.
        a = mod(h, train=True, rngs=jax.random.key(4))
        np.testing.assert_array_equal(a, mod(h, train=True, rngs=jax.random.key(4)))
    np.testing.assert_array_equal(noisy_eval, clean_eval)
    assert not np.allclose(noisy_train, clean_train)


def test_nnx_layer_trains_with_nnx_optimizer():
    """A concept layer and a linear head learn a task set by a hidden binary code."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(128, D)), jnp.float32)
    y = jnp.asarray((x[:, 0] > 0).astype(np.int32) + 2 * (x[:, 1] > 0).astype(np.int32))

    class Model(nnx.Module):
        def __init__(self, rngs):
            self.concepts = NNXConcepts(
                D, K, sharpen=4.0, total_train_steps=60, concept_noise=0.2, rngs=rngs
            )
            self.head = nnx.Linear(K, 4, rngs=rngs)

        def __call__(self, x, train=False, step=None):
            return self.head(self.concepts(x, train=train, step=step))

    model = Model(nnx.Rngs(0, dropout=1))
    optimizer = nnx.Optimizer(model, optax.adam(0.05), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, step):
        def loss_fn(model):
            logits = model(x, train=True, step=step)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    def accuracy():
        return float(jnp.mean(jnp.argmax(model(x), -1) == y))  # hard concepts

    before = accuracy()
    losses = [float(train_step(model, optimizer, jnp.asarray(t))) for t in range(60)]
    assert losses[-1] < 0.5 * losses[0]
    assert accuracy() >= 0.9 > before


# ------------------------------------------------------ sparse concepts ------
def _two_point_features(n=10, on=2):
    """h (n, 1) with ``on`` examples at 1 and the rest at 0: after standardisation a
    two-point x̂ with mass r = on/n at √((1 − r)/r), the case where Cantelli's cap is met."""
    h = np.zeros((n, 1), np.float32)
    h[:on] = 1.0
    return jnp.asarray(h)


@pytest.mark.parametrize("cls", ["linen", "nnx"])
def test_offset_caps_the_on_rate_exactly_at_the_two_point_case(cls):
    h = _two_point_features()  # r = 0.2: x̂ = 2 for two examples, −0.5 for eight
    theta_low, theta_high = 1.9, 2.1  # caps 0.217 and 0.185
    rates = []
    for theta in (theta_low, theta_high):
        if cls == "linen":
            lin = LinenConcepts(
                num_concepts=1,
                concept_mode="hard",
                norm_affine=False,
                concept_offset=theta,
                epsilon=1e-9,
            )
            v = lin.init(jax.random.key(0), h)
            v = {"params": {"proj": {"kernel": jnp.ones((1, 1))}}, "batch_stats": v["batch_stats"]}
            z, _ = lin.apply(v, h, train=True, mutable=["batch_stats"])
        else:
            mod = NNXConcepts(
                1,
                1,
                concept_mode="hard",
                norm_affine=False,
                concept_offset=theta,
                epsilon=1e-9,
                rngs=nnx.Rngs(0),
            )
            mod.proj.kernel[...] = jnp.ones((1, 1))
            z = mod(h, train=True)
        rates.append(float(jnp.mean(z)))
    assert rates[0] == pytest.approx(0.2)  # the cap 1/(1 + 1.9²) ≥ 0.2: reached
    assert rates[1] == 0.0  # the cap 1/(1 + 2.1²) < 0.2: the two-point code cannot fire


def test_offset_caps_the_on_rate_of_any_batch():
    """Skewed, heavy-tailed features and a random projection: every concept's on-rate in
    a training batch stays ≤ 1/(1 + θ²) (Cantelli), for several θ."""
    rng = np.random.default_rng(0)
    h = jnp.asarray(
        np.concatenate(
            [rng.standard_exponential((200, 4)) ** 3, rng.standard_cauchy((200, 4))], axis=1
        ),
        jnp.float32,
    )
    for rate in (0.05, 0.15, 0.5):
        theta = core.offset_for_on_rate(rate)
        assert core.on_rate_bound(theta) == pytest.approx(rate)
        lin = LinenConcepts(
            num_concepts=64, concept_mode="hard", norm_affine=False, concept_offset=theta
        )
        v = lin.init(jax.random.key(1), h)
        z, _ = lin.apply(v, h, train=True, mutable=["batch_stats"])
        per_concept = np.asarray(z).mean(axis=0)
        assert per_concept.max() <= rate + 1e-6
        assert per_concept.max() > 0  # skewed features do fire some concepts


def test_offset_and_bound_closed_forms():
    assert core.offset_for_on_rate(0.2) == pytest.approx(2.0)
    assert core.offset_for_on_rate(1.0) == 0.0
    assert core.on_rate_bound(0.0) == 1.0 and core.on_rate_bound(-1.0) == 1.0
    assert core.on_rate_bound(3.0) == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"on-rate cap must be in \(0, 1\]"):
        core.offset_for_on_rate(0.0)
    with pytest.raises(ValueError, match="rate_penalty must be ≥ 0"):
        LinenConcepts(num_concepts=3, rate_penalty=-1.0).init(jax.random.key(0), _features())
    with pytest.raises(ValueError, match="concept_offset must be finite"):
        NNXConcepts(D, 3, concept_offset=float("nan"), rngs=nnx.Rngs(0))
    pre = core.concept_preactivations(jnp.array([[0.5, 1.0, 2.0]]), 3.0, offset=1.0)
    np.testing.assert_allclose(pre, [[-1.5, 0.0, 3.0]])
    hard, _ = core.binary_concepts(jnp.array([[0.5, 1.0, 2.0]]), offset=1.0)
    np.testing.assert_array_equal(hard, [[0.0, 1.0, 1.0]])  # H(0) = 1 at the offset


def test_rate_penalty_is_sown_in_training_only():
    lin, variables, mod = _pair(rate_penalty=0.5)
    h = _features()
    z, updates = lin.apply(variables, h, train=True, mutable=["batch_stats", "losses"])
    (value,) = updates["losses"]["on_rate_penalty"]
    assert float(value) == pytest.approx(0.5 * float(jnp.mean(z)), rel=1e-6)
    _, updates = lin.apply(variables, h, train=False, mutable=["losses"])
    assert "losses" not in updates or not updates["losses"]
    # Not mutable: the sow does nothing (an engine without the line trains as before).
    lin.apply(variables, h, train=True, mutable=["batch_stats"])
    z_nnx = mod(h, train=True)
    assert float(mod.on_rate_penalty[...]) == pytest.approx(0.5 * float(jnp.mean(z_nnx)), rel=1e-6)
    mod(h)
    assert float(mod.on_rate_penalty[...]) == 0.0
    # Without a penalty there is no AuxLoss variable: the state keeps its old structure.
    _, _, plain = _pair()
    assert not jax.tree.leaves(nnx.state(plain, AuxLoss))


def test_the_default_layer_is_the_documented_one():
    """ConceptBottleneck with no options: K = 128, BN ε = 1e-5, no offset, near_binary at
    ε = 0.01, and sharpening that asks for total_train_steps (ConceptFields' docstring),
    against float64 arithmetic. Features of tiny variance make BN's ε visible."""
    layer = NNXConcepts(D, rngs=nnx.Rngs(0))
    h = 1e-3 * _features()
    z = layer(h, train=True)
    assert z.shape == (B, 128)
    u = np.asarray(h, np.float64) @ np.asarray(layer.proj.kernel[...], np.float64)
    normed = (u - u.mean(0)) / np.sqrt(u.var(0) + 1e-5)
    smooth = np.asarray(get_unit("htaf").smooth(jnp.asarray(normed, jnp.float32)), np.float64)
    np.testing.assert_allclose(z, smooth, rtol=1e-4, atol=1e-6)
    dist = np.minimum(np.abs(smooth), np.abs(1.0 - smooth))
    assert float(layer.near_binary[...]) == pytest.approx(np.mean(dist <= 0.01), abs=1 / z.size)
    with pytest.raises(ValueError, match="total_train_steps > 0"):
        NNXConcepts(D, sharpen=4.0, rngs=nnx.Rngs(0))(h, train=True, step=0)
    with pytest.raises(TypeError):
        core.ConceptFields(128)  # keyword-only, so the field order is free to change


def test_core_defaults_and_edges_against_closed_forms():
    x = jnp.array([[-1.5, -0.2, 0.0, 0.4, 2.0]], jnp.float32)
    np.testing.assert_array_equal(core.concept_preactivations(x), x)  # s = 1, no offset
    z, _ = core.binary_concepts(x, train=True)  # HTAF's smooth form at s = 1
    np.testing.assert_allclose(z, get_unit("htaf").smooth(x), rtol=1e-6)
    # sharpness_at ramps over 0.75 of training by default; one training step is enough
    assert float(core.sharpness_at(30, train=True, total_steps=100, sharpen=4.0)) == (
        pytest.approx(4.0**0.4, rel=1e-6)
    )
    assert float(core.sharpness_schedule(1, 1, 4.0, 1.0)) == pytest.approx(4.0)
    # near_binary_share: |z| and |1 − z| both count, ε inclusive, default ε = 0.01
    z = jnp.array([-0.5, 1.5, -0.25, 1.25, 0.25, 0.5])
    assert float(core.near_binary_share(z, 0.25)) == pytest.approx(3 / 6)  # the ±0.25s
    assert float(core.near_binary_share(jnp.array([0.5, 0.02, 0.995]))) == pytest.approx(1 / 3)
    for bad, match in [
        (dict(fraction=0.0), r"sharpen_fraction must be in \(0, 1\]"),
        (dict(offset=float("inf")), "concept_offset must be finite"),
        (dict(offset=-float("inf")), "concept_offset must be finite"),
    ]:
        kw = dict(mode="smooth", noise_std=0.0, sharpen=2.0, fraction=0.5) | bad
        with pytest.raises(ValueError, match=match):
            core.check_concept_options(**kw)
    with pytest.raises(ValueError, match=r"on-rate cap must be in \(0, 1\]"):
        core.offset_for_on_rate(1.5)


def test_the_layer_statistics_carry_no_gradient():
    x = jax.random.normal(jax.random.key(1), (B, K))

    def stats_sum(x):
        _, stats = core.concept_layer(core.ConceptFields(), x, train=True, step=None, key=None)
        return stats["concept_rate"] + stats["near_binary"]

    # without the stop_gradient, concept_rate's gradient is HTAF's derivative / (B·K)
    np.testing.assert_array_equal(jax.grad(stats_sum)(x), np.zeros((B, K)))
