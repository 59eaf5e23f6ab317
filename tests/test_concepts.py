"""Interpretation tools: activations, discretisation, contributions, interventions, grids."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from htaf_jax.interpret import (
    ConceptActivations,
    class_concepts,
    concept_activations,
    concept_contributions,
    discretisation,
    explain_text,
    head_weights,
    intervene,
    ranked_examples,
    save_concept_grid,
    save_concept_overview,
)
from htaf_jax.models.backbones import MLPBackbone
from htaf_jax.models.icbm import ICBM

K = 12


@pytest.fixture(scope="module")
def trained_like():
    """A small ICBM with random weights, a non-trivial head bias, and 20 images."""
    model = ICBM(MLPBackbone(widths=(16,)), num_concepts=K)
    x = jax.random.normal(jax.random.key(0), (20, 28, 28, 1), jnp.float32)
    variables = model.init(jax.random.key(1), x, train=False)
    params = jax.tree.map(lambda a: a, variables["params"])
    params["head"]["bias"] = jnp.linspace(-1.0, 1.0, 10)
    return model, {**variables, "params": params}, x


def test_contributions_add_up_to_logit_minus_bias(trained_like):
    model, variables, x = trained_like
    acts = concept_activations(model, variables, x, batch_size=7)
    kernel, bias = head_weights(variables)
    contrib = concept_contributions(acts.hard, kernel)
    assert contrib.shape == (20, K, 10)
    np.testing.assert_allclose(contrib.sum(axis=1), acts.logits - bias, rtol=1e-6, atol=1e-6)
    # Inactive concepts contribute nothing.
    assert np.all(contrib[acts.hard == 0] == 0)
    assert 0 < acts.hard.mean() < 1


def test_batched_activations_match_one_call(trained_like):
    model, variables, x = trained_like
    acts = concept_activations(model, variables, x, batch_size=7)
    full = model.apply(variables, x, method=ICBM.explain)
    np.testing.assert_allclose(acts.preactivations, full["preactivations"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(acts.hard, full["hard"])
    assert acts.soft.shape == (20, K)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_intervention_changes_logits_by_the_head_weight(trained_like, value):
    model, variables, x = trained_like
    kernel, _ = head_weights(variables)
    hard = np.asarray(model.apply(variables, x, method=ICBM.concepts))
    k = int(
        np.argmax(np.abs(hard.mean(0) - 0.5) < 0.5)
    )  # a concept that is on for some, off for others
    out = intervene(model, variables, x, concept=k, value=value)
    expected = out.logits_before + (value - hard[:, k])[:, None] * kernel[k][None, :]
    np.testing.assert_allclose(out.logits_after, expected, rtol=1e-5, atol=1e-5)
    assert np.all(out.concepts[:, k] == value)
    np.testing.assert_array_equal(np.delete(out.concepts, k, 1), np.delete(hard, k, 1))
    np.testing.assert_array_equal(out.prediction_after, out.logits_after.argmax(-1))
    # Only examples whose concept actually flipped change.
    same = hard[:, k] == value
    np.testing.assert_allclose(out.logits_after[same], out.logits_before[same], rtol=1e-6)
    with pytest.raises(IndexError):
        intervene(model, variables, x, concept=K, value=1.0)


def test_class_concepts_orders_by_weight():
    kernel = np.array([[0.1, -2.0], [3.0, 0.5], [-1.0, 0.7], [2.0, 0.7]])
    top = class_concepts(kernel, top=3)
    assert top[0] == [(1, 3.0), (3, 2.0), (0, pytest.approx(0.1))]
    assert [k for k, _ in top[1]] == [2, 3, 1]  # ties keep concept order


def test_discretisation_measures():
    soft = np.array([[0.0, 0.005, 0.5, 0.95], [1.0, 0.991, 0.2, 0.91]])
    hard = (soft >= 0.5).astype(np.float32)
    hard[:, 2] = 0.0
    logits_hard = np.array([[1.0, 0.0], [0.0, 1.0]])
    logits_soft = np.array([[1.0, 0.0], [1.0, 0.0]])
    acts = ConceptActivations(soft - 0.5, hard, logits_hard, soft, logits_soft)
    out = discretisation(acts, labels=np.array([0, 1]))
    assert out["near_binary@0.01"] == pytest.approx(4 / 8)  # 0, .005, 1, .991
    assert out["near_binary@0.1"] == pytest.approx(6 / 8)  # + .95, .91
    assert out["hard_accuracy"] == 1.0 and out["soft_accuracy"] == 0.5
    assert out["hard_soft_gap"] == pytest.approx(-50.0)
    assert out["dead_concepts"] == 1 and out["always_on_concepts"] == 1
    assert out["concept_rate"] == pytest.approx(hard.mean())
    no_soft = discretisation(acts._replace(soft=None, soft_logits=None), labels=np.array([0, 1]))
    assert no_soft["near_binary@0.01"] is None and no_soft["hard_soft_gap"] is None


def test_explain_text_names_the_prediction_and_sums():
    kernel = np.zeros((4, 3))
    kernel[0] = [2.0, 0.0, 0.0]
    kernel[1] = [0.0, 1.5, 0.0]
    kernel[2] = [0.5, 0.0, 0.0]
    bias = np.array([0.1, 0.2, 0.3])
    text = explain_text(np.array([1, 1, 1, 0]), kernel, bias, label=1, class_names=["a", "b", "c"])
    assert "prediction: a (logit 2.600)" in text
    assert "true label: b (wrong)" in text
    assert "active concepts: 3 of 4: c0, c1, c2" in text
    assert "bias 0.100 + 2.500" in text
    # Turning c0 off drops the margin over b by 2.0 and makes b win.
    assert "turning c0 off" in text and "prediction would be b" in text


def test_concept_grids(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(30, 28, 28, 1)).astype(np.float32)
    pre = rng.normal(size=(30, 5))
    top = ranked_examples(pre, 3, n=4)
    np.testing.assert_array_equal(top, np.argsort(-pre[:, 3])[:4])
    least = ranked_examples(pre, 3, n=4, least=True)
    assert pre[least, 3].max() < pre[top, 3].min()
    path = tmp_path / "c3_top.png"
    shown = save_concept_grid(
        str(path),
        images,
        pre,
        3,
        n=10,
        labels=np.arange(30) % 10,
        class_names=[f"k{i}" for i in range(10)],
    )
    np.testing.assert_array_equal(shown, ranked_examples(pre, 3, n=10))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    overview = tmp_path / "sub" / "overview.png"
    save_concept_overview(str(overview), images, pre, [0, 2, 4], n=5)
    assert overview.stat().st_size > 1000
