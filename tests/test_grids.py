"""Figures and explanations that say what a concept detects; the decisive concepts."""

import os

import jax
import numpy as np
import pytest

from htaf_jax.interpret import explain as ex
from htaf_jax.interpret import grids
from htaf_jax.interpret.measures import explanation_size

NAMES = ["a", "b", "c"]


def test_concept_labels_name_the_dominant_class_and_its_share():
    hard = np.array([[1, 0, 1], [1, 0, 0], [1, 0, 1], [0, 0, 1]])
    labels = np.array([1, 1, 2, 0])
    assert ex.concept_labels(hard, labels, NAMES) == ["b 67%", "never on", "a 33%"]
    # Ties go to the lower class index (argmax); without names, "class i".
    assert ex.concept_labels(hard[:, :1], labels)[0] == "class 1 67%"


# Head: class 0 gets +3 from c0, +1 from c1, +0.5 from c2; class 1 gets +1 from c3.
KERNEL = np.array([[3.0, 0.0], [1.0, 0.0], [0.5, 0.0], [0.0, 1.0]])
BIAS = np.zeros(2)


def test_decisive_concepts_hand_case():
    z = np.array([1, 1, 1, 1])  # margin 3 + 1 + 0.5 − 1 = 3.5; 90%: 3.15
    # Largest first: c0 alone gives 3 − 1 (c3 off too) ... keeping n largest d's: d = (3, 1, .5, −1):
    # n=1: 3 < 3.15; n=2: 4 ≥ 3.15.
    got = ex.decisive_concepts(z, KERNEL, BIAS)
    assert got == [(0, 3.0), (1, 1.0)]
    assert len(got) == explanation_size(z[None], KERNEL, BIAS)[0]
    e = ex.explain(z, KERNEL, BIAS, concept_names=["shoe", "heel", "x", "y"])
    assert (e.prediction, e.runner_up) == (0, 1) and e.margin == pytest.approx(3.5)
    assert e.concepts == [(0, "shoe", 3.0, 3.0), (1, "heel", 1.0, 1.0)]
    assert ex.explain(z, KERNEL, BIAS).concepts[0][1] == "c0"


def test_explanation_usage_counts_each_images_decisive_set():
    hard = np.array([[1, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 1]])
    usage = ex.explanation_usage(hard, KERNEL, BIAS)
    # Image 0: {c0, c1}; image 1: {c0}; image 2: predicts class 1 from c3 alone: {c3}.
    np.testing.assert_allclose(usage, [2 / 3, 1 / 3, 0.0, 1 / 3])
    sizes = explanation_size(hard, KERNEL, BIAS)
    np.testing.assert_allclose(usage.sum() * len(hard), sizes.sum())
    chosen, shares = grids.overview_concepts(hard, KERNEL, BIAS, count=2)
    np.testing.assert_array_equal(chosen, [0, 1])  # most used first; ties by index
    np.testing.assert_allclose(shares, [2 / 3, 1 / 3])


def test_explain_text_lists_the_decisive_concepts_with_their_labels():
    text = ex.explain_text(
        np.array([1, 1, 1, 1]),
        KERNEL,
        BIAS,
        label=0,
        class_names=["boot", "bag"],
        concept_names=["boot 90%", "boot 70%", "bag 40%", "bag 95%"],
    )
    assert "decided by 2 concept(s), 90% of the margin 3.500 over bag" in text
    assert "c0 [boot 90%]: +3.000 to boot, +3.000 to the margin" in text
    assert "c1 [boot 70%]: +1.000 to boot" in text
    assert "c2 [bag 40%]" in text  # listed among the active concepts too


def _acts(seed=0, n=40, k=6):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    pre = rng.normal(size=(n, k))
    pre[:, 0] = np.where(labels == 2, 2.0, -1.0) + 0.1 * rng.normal(size=n)  # detects "c"
    return rng.random((n, 8, 8, 1)), labels, pre, (pre >= 0).astype(np.float32)


def test_grid_titles_say_what_the_concept_detects(tmp_path, monkeypatch):
    import matplotlib.figure

    titles = []
    original = matplotlib.figure.Figure.suptitle
    monkeypatch.setattr(
        matplotlib.figure.Figure,
        "suptitle",
        lambda self, t, **kw: titles.append(t) or original(self, t, **kw),
    )
    images, labels, pre, _ = _acts()
    grids.save_concept_grid(
        str(tmp_path / "g.png"), images, pre, 0, n=8, labels=labels, class_names=NAMES
    )
    assert titles[-1].startswith("concept c0: c 100% — most activating")
    assert os.path.getsize(tmp_path / "g.png") > 0


def test_explained_overview_and_figures(tmp_path, monkeypatch):
    images, labels, pre, hard = _acts()
    kernel = np.zeros((6, 3))
    kernel[0, 2] = 2.0  # c0 decides every "c" image; c1 decides the others
    kernel[1, 0] = 0.5
    bias = np.array([0.0, 0.1, 0.0])
    seen = {}
    real = grids.save_concept_overview
    monkeypatch.setattr(
        grids, "save_concept_overview", lambda *a, **kw: seen.update(args=a) or real(*a, **kw)
    )
    chosen = grids.save_explained_overview(
        str(tmp_path / "o.png"), images, hard, pre, labels, kernel, bias, NAMES, count=3
    )
    usage = ex.explanation_usage(hard, kernel, bias)
    assert chosen[0] == int(np.argmax(usage)) and len(chosen) == min(3, int((usage > 0).sum()))
    titles = seen["args"][5]
    label0 = ex.concept_labels(hard, labels, NAMES)[chosen[0]]
    assert titles[0] == f"c{chosen[0]}: {label0}\nin {100 * usage[chosen[0]]:.0f}% of expl."
    assert "c0: c 100%" in " ".join(titles)
    paths = grids.write_concept_figures(
        str(tmp_path / "figs"), images, labels, hard, pre, kernel, bias, NAMES, count=2, size=4
    )
    assert paths[0].endswith("overview.png") and all(os.path.exists(p) for p in paths)
    assert len(paths) == 1 + 2 * min(2, int((usage > 0).sum()))


def test_head_weights_of_a_nonneg_head_are_the_effective_ones():
    from htaf_jax.models.backbones import MLPBackbone
    from htaf_jax.models.icbm import ICBM

    model = ICBM(MLPBackbone(widths=(8,)), num_concepts=4, num_classes=3, nonneg_head=True)
    x = np.zeros((2, 4, 4, 1), np.float32)
    variables = model.init(jax.random.key(0), x)
    raw = variables["params"]["head"]["kernel"].at[0, 0].set(-2.0)
    variables = {
        **variables,
        "params": {**variables["params"], "head": {**variables["params"]["head"], "kernel": raw}},
    }
    kernel, bias = ex.head_weights(variables, model)
    assert kernel[0, 0] == 0.0 and kernel.min() >= 0.0
    np.testing.assert_array_equal(ex.head_weights(variables)[0], raw)  # the stored kernel
