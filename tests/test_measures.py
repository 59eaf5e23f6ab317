"""Interpretability measures, each on a constructed case whose answer is known."""

import numpy as np
import pytest

from htaf_jax.interpret.measures import (
    chance_accuracy,
    completeness,
    explanation_size,
    leakage,
    linear_probe_accuracy,
    purity,
    random_code_purity,
    sparsity,
    stability,
)


def test_sparsity():
    hard = np.array([[1, 0, 0, 1], [1, 0, 1, 0], [1, 0, 0, 0]], np.float32)
    out = sparsity(hard)
    assert out["on_rate"] == pytest.approx(5 / 12)
    assert out["never_on"] == pytest.approx(1 / 4)  # concept 1
    assert out["always_on"] == pytest.approx(1 / 4)  # concept 0


def test_purity_of_constructed_concepts():
    labels = np.array([0, 0, 1, 1, 2, 2])
    hard = np.array(
        [
            # c0: class 0 only; c1: classes 0 and 1 evenly; c2: 2 of 3 from class 2; c3: never on
            [1, 1, 0, 0],
            [1, 1, 0, 0],
            [0, 1, 1, 0],
            [0, 1, 0, 0],
            [0, 0, 1, 0],
            [0, 0, 1, 0],
        ]
    )
    out = purity(hard, labels)
    np.testing.assert_allclose(out["per_concept"][:3], [1.0, 0.5, 2 / 3])
    assert np.isnan(out["per_concept"][3])
    assert out["mean"] == pytest.approx((1.0 + 0.5 + 2 / 3) / 3)  # never-on concepts left out
    np.testing.assert_array_equal(out["dominant_class"][:3], [0, 0, 2])
    np.testing.assert_array_equal(out["support"], [2, 4, 3, 0])


def test_random_code_purity_is_the_majority_share_for_balanced_classes():
    # A code without meaning: each concept's images are a random draw of the classes, so its
    # purity is about the largest class share (1/4 here, plus the sampling excess).
    labels = np.repeat(np.arange(4), 5000)
    rng = np.random.default_rng(1)
    hard = rng.random((20000, 16)) < 0.3
    assert random_code_purity(hard, labels) == pytest.approx(0.25, abs=0.01)
    # A perfectly class-aligned code keeps its purity of 1; its random twin does not.
    aligned = np.eye(4)[labels]
    assert purity(aligned, labels)["mean"] == 1.0
    assert random_code_purity(aligned, labels) == pytest.approx(0.25, abs=0.02)


def test_explanation_size_of_a_constructed_head():
    # 2 classes; margin contributions d_k = V[k,0] − V[k,1] for the active concepts.
    kernel = np.array(
        [
            [5.0, 0.0],  # d = +5
            [3.0, 0.0],  # d = +3
            [1.0, 0.0],  # d = +1
            [0.0, 2.0],  # d = −2
            [0.5, 0.0],
        ]
    )  # d = +0.5
    bias = np.zeros(2)
    hard = np.array(
        [
            [1, 1, 1, 1, 1],  # m = 7.5; kept: 0, 5, 8 ≥ 6.75 → 2
            [1, 0, 0, 0, 0],  # m = 5: one concept
            [0, 0, 1, 0, 1],  # m = 1.5: 1 (0.9), 1.5 (1.35) → 2
            [0, 0, 0, 1, 0],
        ]
    )  # class 1 wins by 2 with c3 alone → 1
    np.testing.assert_array_equal(explanation_size(hard, kernel, bias), [2, 1, 2, 1])
    # A bias that alone keeps 90% of the margin needs no concept.
    np.testing.assert_array_equal(explanation_size([[0, 0, 1, 0, 0]], kernel, [10.0, 0.0]), [0])
    np.testing.assert_array_equal(explanation_size(hard[:1], kernel, bias, share=0.5), [1])


def test_stability_finds_the_permutation_and_its_agreement():
    rng = np.random.default_rng(0)
    a = rng.random((400, 6)) < 0.4
    perm = np.array([3, 0, 5, 1, 4, 2])
    b = a[:, perm].copy()  # b's concept j is a's concept perm[j]
    out = stability(a, b)
    assert out.mean_agreement == 1.0
    np.testing.assert_array_equal(b[:, out.pairs[:, 1]], a[:, out.pairs[:, 0]])
    assert 0.4 < out.chance < 0.6
    # Flip one concept on 100 of the 400 images: that pair agrees on 3/4, the rest fully.
    b[:100, 0] = ~b[:100, 0]
    out = stability(a, b)
    np.testing.assert_allclose(sorted(out.agreement), [0.75, 1, 1, 1, 1, 1])
    assert out.mean_agreement == pytest.approx((5 + 0.75) / 6)
    with pytest.raises(ValueError, match="same images"):
        stability(a, b[:10])


def test_completeness_score_and_chance():
    labels = np.array([0, 0, 0, 1, 2])
    assert chance_accuracy(labels) == pytest.approx(0.6)
    # Yeh et al.: (a_concepts − a_r) / (a_model − a_r).
    assert completeness(0.8, 0.9, 0.1) == pytest.approx(0.7 / 0.8)
    assert completeness(0.9, 0.9, 0.1) == 1.0
    with pytest.raises(ValueError, match="above chance"):
        completeness(0.5, 0.1, 0.1)


def test_linear_probe_reads_a_linearly_coded_label():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    hard = np.eye(3)[labels]  # one concept per class
    noise = rng.random((600, 5)) < 0.5  # uninformative concepts beside them
    x = np.concatenate([hard, noise], axis=1)
    assert linear_probe_accuracy(x[:400], labels[:400], x[400:], labels[400:]) == 1.0
    # Uninformative concepts alone: about chance (1/3).
    acc = linear_probe_accuracy(noise[:400], labels[:400], noise[400:], labels[400:])
    assert acc < 0.5


def test_leakage_is_what_the_soft_values_add():
    # The label is the sign of a hidden value v. Hard concepts hold nothing about it (one
    # concept always on); the soft values sit within 0.01 of 1 but move with v, so a linear
    # probe reads v from them: soft probe 1, hard probe chance (1/2), leakage 1/2.
    rng = np.random.default_rng(0)
    v = rng.uniform(-1.0, 1.0, 2000)
    v = v[np.abs(v) > 0.05]
    labels = (v > 0).astype(np.int64)
    hard = np.ones((len(v), 1))
    soft = 1.0 - 0.005 * (1.0 + v[:, None])
    n = len(v) // 2
    out = leakage(soft[:n], hard[:n], labels[:n], soft[n:], hard[n:], labels[n:])
    assert out["soft_probe"] == 1.0
    # With constant features the probe predicts the training split's majority class.
    majority = int(np.mean(labels[:n]) > 0.5)
    assert out["hard_probe"] == pytest.approx(np.mean(labels[n:] == majority), abs=1e-6)
    assert out["leakage"] == pytest.approx(out["soft_probe"] - out["hard_probe"])
    assert out["leakage"] > 0.4
    # Soft concepts equal to the hard ones leak nothing.
    same = leakage(hard[:n], hard[:n], labels[:n], hard[n:], hard[n:], labels[n:])
    assert same["leakage"] == 0.0


def test_concept_measures_collects_them():
    from htaf_jax.interpret.measures import concept_measures

    labels = np.array([0, 0, 1, 1])
    hard = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], np.float32)
    kernel, bias = np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros(2)
    out = concept_measures(hard, labels, kernel, bias)
    assert out["on_rate"] == 0.5 and out["never_on"] == 0.0 and out["purity"] == 1.0
    assert out["explanation_size"] == 1.0 and out["chance_accuracy"] == 0.5
    assert out["leakage"] is None
    out = concept_measures(hard, labels, kernel, bias, soft=hard, probe_split=(hard, hard, labels))
    assert out["soft_probe"] == out["hard_probe"] == 1.0 and out["leakage"] == 0.0
