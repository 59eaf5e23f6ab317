"""ICBM and its standard baseline: shapes, hard/smooth forms, gradients."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference_grads import assert_grads_equal, autodiff_reference

from htaf_jax.models.backbones import CNNBackbone, MLPBackbone, ResNetBackbone, make_backbone
from htaf_jax.models.icbm import ICBM, StandardClassifier
from htaf_jax.units import resolve_unit

K = 8
TINY = {
    "mlp": lambda: MLPBackbone(widths=(16,)),
    "cnn": lambda: CNNBackbone(channels=(4, 8), width=16),
    "resnet": lambda: ResNetBackbone(stage_channels=(4, 8), blocks_per_stage=1),
}


def _images(b=6, size=28):
    # Convolutional backbones are tested on 12×12 images: same code, a third of the compile time.
    return jax.random.normal(jax.random.key(0), (b, size, size, 1), jnp.float32)


def _init(model, x):
    return model.init({"params": jax.random.key(1)}, x, train=False)


def _htaf64(x, alpha=4.0, beta=1.0):
    """The default unit's smooth form σ(α tanh(β x)) in float64."""
    return 1.0 / (1.0 + np.exp(-alpha * np.tanh(beta * np.asarray(x, np.float64))))


def _htaf64_grad(x, alpha=4.0, beta=1.0):
    """htaf'(x) = α β σ(u) σ(−u) sech²(β x), u = α tanh(β x), in float64."""
    s, x = _htaf64(x, alpha, beta), np.asarray(x, np.float64)
    return alpha * beta * s * (1 - s) / np.cosh(beta * x) ** 2


@pytest.mark.parametrize(
    "backbone", [b if b == "mlp" else pytest.param(b, marks=pytest.mark.slow) for b in sorted(TINY)]
)  # the convnet's and ResNet's cases run in make test-slow
def test_icbm_shapes_and_sown_statistics(backbone):
    model = ICBM(TINY[backbone](), num_concepts=K)
    x = _images(size=28 if backbone == "mlp" else 12)
    variables = _init(model, x)
    logits, state = model.apply(variables, x, train=True, mutable=["batch_stats", "intermediates"])
    chex.assert_shape(logits, (6, 10))
    chex.assert_tree_all_finite(logits)
    inter = state["intermediates"]["concept_layer"]
    # The sown statistics of this batch, by hand in float64 from the train-mode
    # pre-activations: HTAF(x) = σ(4 tanh x) within 0.01 of {0, 1}; H(x) = [x ≥ 0].
    pre, _ = model.apply(
        variables, x, train=True, method=ICBM.concept_preactivations, mutable=["batch_stats"]
    )
    soft = _htaf64(pre)
    assert float(inter["near_binary"][0]) == pytest.approx(
        np.mean(np.minimum(soft, 1 - soft) <= 0.01), abs=1e-6
    )
    assert float(inter["concept_rate"][0]) == pytest.approx(np.mean(np.asarray(pre) >= 0), abs=1e-6)
    # BatchNorm statistics moved in training mode.
    moved = jax.tree.map(
        lambda a, b: jnp.any(a != b), variables["batch_stats"], state["batch_stats"]
    )
    assert any(jax.tree.leaves(moved))
    chex.assert_shape(variables["params"]["head"]["kernel"], (K, 10))


def test_eval_uses_hard_concepts():
    model = ICBM(TINY["mlp"](), num_concepts=K)
    x = _images()
    variables = _init(model, x)
    z = model.apply(variables, x, method=ICBM.concepts)
    assert set(np.unique(np.asarray(z))) <= {0.0, 1.0}
    pre = model.apply(variables, x, method=ICBM.concept_preactivations)
    np.testing.assert_array_equal(np.asarray(z), (np.asarray(pre) >= 0).astype(np.float32))
    logits = model.apply(variables, x, train=False)
    np.testing.assert_allclose(logits, model.apply(variables, z, method=ICBM.classify), rtol=1e-6)


def test_smooth_training_forward_uses_smooth_concepts():
    model = ICBM(TINY["mlp"](), num_concepts=K, concept_mode="smooth")
    x = _images()
    variables = _init(model, x)
    logits, _ = model.apply(variables, x, train=True, mutable=["batch_stats", "intermediates"])
    soft, _ = model.apply(
        variables, x, train=True, hard=False, method=ICBM.concepts, mutable=["batch_stats"]
    )
    hard, _ = model.apply(
        variables, x, train=True, hard=True, method=ICBM.concepts, mutable=["batch_stats"]
    )
    pre, _ = model.apply(
        variables, x, train=True, method=ICBM.concept_preactivations, mutable=["batch_stats"]
    )
    np.testing.assert_allclose(soft, _htaf64(pre), rtol=1e-6, atol=1e-7)  # σ(4 tanh x)
    np.testing.assert_allclose(
        logits, model.apply(variables, soft, method=ICBM.classify), rtol=1e-5, atol=1e-6
    )
    assert not np.allclose(logits, model.apply(variables, hard, method=ICBM.classify))


def _grads(model, variables, x):
    y = jnp.arange(x.shape[0]) % 10

    def loss(params):
        logits, _ = model.apply(
            {**variables, "params": params}, x, train=True, mutable=["batch_stats", "intermediates"]
        )
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    return jax.grad(loss)(variables["params"])


@pytest.mark.parametrize("mode", ["smooth", "hard"])
def test_gradient_reaches_the_backbone(mode, monkeypatch):
    """Every parameter's gradient through the concept unit's custom VJP (HTAF's stable rule
    or the straight-through primitive) equals autodiff of the same model with reference
    units (tests/reference_grads.py); through a hard step, only the surrogate gradient
    reaches the projection and the backbone, and it does (not zero)."""
    model = ICBM(TINY["mlp"](), num_concepts=K, concept_mode=mode)
    x = _images()
    variables = _init(model, x)
    grads = jax.jit(_grads, static_argnums=0)(model, variables, x)
    autodiff_reference(monkeypatch)
    assert_grads_equal(grads, jax.jit(_grads, static_argnums=0)(model, variables, x))


def test_hard_training_forward_is_binary():
    model = ICBM(TINY["mlp"](), num_concepts=K, concept_mode="hard")
    x = _images()
    variables = _init(model, x)
    logits, _ = model.apply(variables, x, train=True, mutable=["batch_stats", "intermediates"])
    hard, _ = model.apply(variables, x, train=True, method=ICBM.concepts, mutable=["batch_stats"])
    np.testing.assert_allclose(
        logits, model.apply(variables, hard, method=ICBM.classify), rtol=1e-6
    )


def test_straight_through_needs_hard_mode():
    x = _images()
    smooth = ICBM(
        TINY["mlp"](), num_concepts=K, surrogate="straight_through", concept_mode="smooth"
    )
    variables = _init(smooth, x)  # eval mode is hard: fine
    with pytest.raises(ValueError, match="no smooth form"):
        smooth.apply(variables, x, train=True, mutable=["batch_stats", "intermediates"])
    hard = smooth.clone(concept_mode="hard")
    logits, state = hard.apply(variables, x, train=True, mutable=["batch_stats", "intermediates"])
    chex.assert_shape(logits, (6, 10))
    assert "near_binary" not in state["intermediates"]["concept_layer"]
    chex.assert_tree_all_finite(_grads(hard, variables, x))


def test_surrogate_object_and_explain_keys():
    unit = resolve_unit("sigmoid")
    model = ICBM(TINY["mlp"](), num_concepts=K, surrogate=unit)
    x = _images()
    variables = _init(model, x)
    out = model.apply(variables, x, method=ICBM.explain)
    assert set(out) == {"preactivations", "hard", "logits", "soft", "soft_logits"}
    np.testing.assert_allclose(out["soft"], unit.smooth(out["preactivations"]), rtol=1e-6)


def test_bad_concept_mode():
    with pytest.raises(ValueError, match="concept_mode"):
        model = ICBM(TINY["mlp"](), concept_mode="soft")
        _init(model, _images())


@pytest.mark.parametrize("hidden", [None, K])
def test_standard_classifier(hidden):
    """The logits against float64 by hand from the backbone's output: a linear head,
    or Dense(K, no bias) → batch-statistics BN → ReLU → linear head; the running
    statistics move by the BN's momentum 0.9."""
    model = StandardClassifier(TINY["mlp"](), hidden=hidden)
    x = _images()
    variables = _init(model, x)
    logits, state = model.apply(variables, x, train=True, mutable=["batch_stats"])
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])
    bb = {"params": variables["params"]["backbone"]}
    if "batch_stats" in variables and "backbone" in variables["batch_stats"]:
        bb["batch_stats"] = variables["batch_stats"]["backbone"]
    h, _ = model.backbone.apply(bb, x, train=True, mutable=["batch_stats"])
    h = np.asarray(h, np.float64)
    if hidden:
        wh = h @ p["Dense_0"]["kernel"]
        mean, var = wh.mean(0), wh.var(0)
        bn = p["BatchNorm_0"]
        h = np.maximum((wh - mean) / np.sqrt(var + 1e-5) * bn["scale"] + bn["bias"], 0.0)
        np.testing.assert_allclose(
            np.asarray(state["batch_stats"]["BatchNorm_0"]["mean"]),
            0.1 * mean,
            rtol=1e-4,
            atol=1e-6,
        )
    want = h @ p["head"]["kernel"] + p["head"]["bias"]
    np.testing.assert_allclose(np.asarray(logits, np.float64), want, rtol=2e-4, atol=2e-5)
    chex.assert_shape(logits, (6, 10))


def test_make_backbone():
    assert make_backbone("mlp", widths=[8]).widths == (8,)
    with pytest.raises(ValueError, match="unknown backbone"):
        make_backbone("vgg")


def test_concept_noise_only_in_training():
    model = ICBM(TINY["mlp"](), num_concepts=K, concept_noise=2.0)
    x = _images()
    variables = _init(model, x)
    quiet = model.clone(concept_noise=0.0)
    rngs = {"dropout": jax.random.key(3)}
    noisy, _ = model.apply(
        variables, x, train=True, rngs=rngs, mutable=["batch_stats", "intermediates"]
    )
    clean, _ = quiet.apply(
        variables, x, train=True, rngs=rngs, mutable=["batch_stats", "intermediates"]
    )
    assert not np.allclose(noisy, clean)
    np.testing.assert_array_equal(model.apply(variables, x), quiet.apply(variables, x))


def test_registered_factories():
    import ml_collections

    from htaf_jax.models import build_model

    cfg = ml_collections.ConfigDict(
        {
            "name": "icbm",
            "backbone": "mlp",
            "backbone_kwargs": {"widths": [16]},
            "num_concepts": 5,
            "num_classes": 3,
            "surrogate": "htaf",
            "surrogate_kwargs": {"htaf": {"alpha": 8.0, "beta": 2.0}},
            "concept_mode": "hard",
        }
    )
    model = build_model(cfg)
    assert isinstance(model, ICBM) and model.num_concepts == 5 and model.concept_mode == "hard"
    assert model.surrogate.kwargs == {"alpha": 8.0, "beta": 2.0}
    assert model.backbone.widths == (16,)
    logits = model.apply(_init(model, _images()), _images())
    chex.assert_shape(logits, (6, 3))
    std = build_model(
        ml_collections.ConfigDict(
            {
                "name": "standard",
                "backbone": "mlp",
                "backbone_kwargs": {"widths": [16]},
                "hidden": 0,
            }
        )
    )
    assert isinstance(std, StandardClassifier) and std.hidden is None


@pytest.mark.parametrize(
    "name, field", [("icbm", "concept_nosie"), ("standard", "hiden"), ("mlp", "concept_nosie")]
)
def test_factories_reject_an_unknown_field_in_one_line(name, field):
    import ml_collections

    from htaf_jax.models import build_model

    fields = {"name": name, field: 0.5}
    if name != "mlp":
        fields.update(backbone="mlp", backbone_kwargs={"widths": [16]})
    with pytest.raises(ValueError) as e:
        build_model(ml_collections.ConfigDict(fields))
    text = str(e.value)
    assert "\n" not in text and not text.startswith("'")
    assert f"no fields ['{field}']" in text
    valid = {"icbm": "concept_noise", "standard": "hidden", "mlp": "hidden_sizes"}[name]
    assert f"'{valid}'" in text  # the valid fields are named
    with pytest.raises(
        ValueError,
        match=r"backbone 'mlp' \(MLPBackbone\) has no fields "
        r"\['width'\]; its fields are \['widths'\]",
    ):
        build_model(ml_collections.ConfigDict({"name": "icbm", "backbone_kwargs": {"width": 3}}))


def test_build_model_applies_derived_fields_to_a_copy():
    import ml_collections

    from htaf_jax.models import build_model

    cfg = ml_collections.ConfigDict(
        {"name": "icbm", "backbone_kwargs": {"widths": [16]}, "sharpen": 4.0}
    )
    model = build_model(cfg, num_classes=3, total_train_steps=40)
    assert model.num_classes == 3 and model.total_train_steps == 40
    assert "num_classes" not in cfg and "total_train_steps" not in cfg  # caller's config unchanged
    with pytest.raises(TypeError, match="unknown derived fields \\['input_shape'\\]"):
        build_model(cfg, input_shape=(28, 28, 1))


def test_sharpening_follows_the_step_it_is_given():
    total, fraction, final = 8, 0.5, 16.0  # ramp over 4 steps: s = 16^(t/4)
    model = ICBM(
        TINY["mlp"](),
        num_concepts=K,
        sharpen=final,
        sharpen_fraction=fraction,
        total_train_steps=total,
    )
    x = _images()
    variables = _init(model, x)
    assert "sharpness" not in variables["batch_stats"]  # no counter in the state
    plain = model.clone(sharpen=1.0)
    pre1 = model.apply(variables, x, step=0, method=ICBM.concept_preactivations)
    np.testing.assert_allclose(
        pre1, plain.apply(variables, x, method=ICBM.concept_preactivations), rtol=1e-6
    )
    hard0 = model.apply(variables, x, method=ICBM.concepts)
    for t, s in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (7, 16.0)]:
        pre = model.apply(variables, x, step=t, method=ICBM.concept_preactivations)
        np.testing.assert_allclose(pre, s * pre1, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(
            model.apply(variables, x, step=t, method=ICBM.concepts), hard0
        )  # hard concepts do not depend on s
    # Evaluation without a step: training is over, s = sharpen.
    np.testing.assert_allclose(
        model.apply(variables, x, method=ICBM.concept_preactivations),
        final * pre1,
        rtol=1e-5,
        atol=1e-6,
    )
    # Training at step t reads s(t): the smooth concepts are u(s(t)·BN(W h)) (BN in train mode).
    logits, _ = model.apply(
        variables, x, train=True, step=2, mutable=["batch_stats", "intermediates"]
    )
    soft, _ = model.apply(
        variables, x, train=True, hard=False, step=2, method=ICBM.concepts, mutable=["batch_stats"]
    )
    np.testing.assert_allclose(
        logits, model.apply(variables, soft, method=ICBM.classify), rtol=1e-5, atol=1e-6
    )


def test_sharpening_needs_the_step_and_the_length_of_training():
    model = ICBM(TINY["mlp"](), num_concepts=K, sharpen=8.0)
    x = _images()
    variables = _init(model, x)  # evaluation needs neither
    model.apply(variables, x, train=False)
    with pytest.raises(ValueError, match="needs the train step"):
        model.apply(variables, x, train=True, mutable=["batch_stats", "intermediates"])
    with pytest.raises(ValueError, match="total_train_steps > 0"):
        model.apply(variables, x, train=True, step=3, mutable=["batch_stats", "intermediates"])
    with pytest.raises(ValueError, match="sharpen must be ≥ 1"):
        _init(ICBM(TINY["mlp"](), num_concepts=K, sharpen=0.5), x)


# ------------------------------------------------------ sparse options ------
def test_head_params_give_the_logits_of_hard_concepts():
    for nonneg in (False, True):
        model = ICBM(TINY["mlp"](), num_concepts=K, nonneg_head=nonneg)
        x = _images()
        variables = _init(model, x)
        kernel, bias = model.apply(variables, method=ICBM.head_params)
        chex.assert_shape([kernel, bias], [(K, 10), (10,)])
        z = model.apply(variables, x, method=ICBM.concepts)
        np.testing.assert_allclose(
            model.apply(variables, x), z @ kernel + bias, rtol=1e-5, atol=1e-6
        )
        if not nonneg:  # a plain Dense head: the parameters as stored
            np.testing.assert_array_equal(kernel, variables["params"]["head"]["kernel"])


def test_nonneg_head_clips_at_zero_and_its_dead_weights_get_no_gradient():
    model = ICBM(TINY["mlp"](), num_concepts=K, nonneg_head=True)
    x = _images()
    variables = _init(model, x)
    raw = variables["params"]["head"]["kernel"]
    raw = raw.at[0, :5].set(-1.0)  # five weights pushed below 0
    variables = {
        **variables,
        "params": {**variables["params"], "head": {**variables["params"]["head"], "kernel": raw}},
    }
    kernel, _ = model.apply(variables, method=ICBM.head_params)
    np.testing.assert_array_equal(kernel[0, :5], 0.0)
    np.testing.assert_array_equal(kernel[1:], raw[1:])

    def loss(params):
        logits = model.apply({**variables, "params": params}, x)
        return jnp.sum(logits * jnp.arange(10.0))

    g = jax.grad(loss)(variables["params"])["head"]["kernel"]
    # ∂/∂kernel[k, c] of Σ_b,c c·(z V + b)[b, c] = c · Σ_b z[b, k] where kernel[k, c] > 0.
    z = np.asarray(model.apply(variables, x, method=ICBM.concepts), np.float64)
    np.testing.assert_allclose(
        g, np.outer(z.sum(0), np.arange(10.0)) * (np.asarray(raw) > 0), rtol=1e-6
    )
    np.testing.assert_array_equal(g[0, :5], 0.0)


def test_sparsity_losses_are_sown_in_training_and_their_gradients_flow():
    model = ICBM(TINY["mlp"](), num_concepts=K, rate_penalty=0.3, head_l1=0.2)
    x = _images()
    variables = _init(model, x)
    _, state = model.apply(variables, x, train=True, mutable=["batch_stats", "losses"])
    losses = state["losses"]
    kernel = variables["params"]["head"]["kernel"]
    assert float(losses["head_l1"][0]) == pytest.approx(
        0.2 * float(jnp.mean(jnp.abs(kernel))), rel=1e-6
    )
    soft = model.apply(
        variables, x, train=True, hard=False, method=ICBM.concepts, mutable=["batch_stats"]
    )[0]
    assert float(losses["concept_layer"]["on_rate_penalty"][0]) == pytest.approx(
        0.3 * float(jnp.mean(soft)), rel=1e-5
    )

    def aux(params):  # the trainer's line: the sown losses alone
        _, upd = model.apply(
            {**variables, "params": params}, x, train=True, mutable=["batch_stats", "losses"]
        )
        return sum(jax.tree.leaves(upd["losses"]))

    g = jax.grad(aux)(variables["params"])
    np.testing.assert_allclose(g["head"]["kernel"], 0.2 * jnp.sign(kernel) / kernel.size, rtol=1e-5)
    # ∂(0.3 · mean z)/∂(BN bias k) = 0.3 / (B K) · Σ_b htaf'(pre[b, k]) (> 0: pushes off).
    pre, _ = model.apply(
        variables, x, train=True, method=ICBM.concept_preactivations, mutable=["batch_stats"]
    )
    np.testing.assert_allclose(
        g["concept_layer"]["norm"]["bias"], 0.3 / pre.size * _htaf64_grad(pre).sum(0), rtol=1e-4
    )
    with pytest.raises(ValueError, match="head_l1 must be ≥ 0"):
        _init(ICBM(TINY["mlp"](), num_concepts=K, head_l1=-1.0), x)


def test_offset_caps_the_icbm_on_rate_in_training():
    theta = 2.0  # cap 0.2
    model = ICBM(
        TINY["mlp"](), num_concepts=32, norm_affine=False, concept_offset=theta, concept_mode="hard"
    )
    x = jax.random.normal(jax.random.key(5), (64, 28, 28, 1)) ** 3
    variables = _init(model, x)
    assert "norm" not in variables["params"]["concept_layer"]
    z, _ = model.apply(
        variables, x, train=True, hard=True, method=ICBM.concepts, mutable=["batch_stats"]
    )
    # By hand in float64: a concept is on where the batch-standardised W h is ≥ θ.
    h, _ = model.apply(
        variables, x, mutable=["batch_stats"], method=lambda m, x: m.backbone(x, train=True)
    )
    wh = np.asarray(h, np.float64) @ np.asarray(
        variables["params"]["concept_layer"]["proj"]["kernel"], np.float64
    )
    standard = (wh - wh.mean(0)) / np.sqrt(wh.var(0) + 1e-5)
    np.testing.assert_array_equal(np.asarray(z), (standard >= theta).astype(np.float32))
    assert float(np.asarray(z).mean(axis=0).max()) <= 1 / (1 + theta**2) + 1e-6  # Cantelli
