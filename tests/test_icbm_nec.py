"""NEC sparse heads, code collisions, random codes, interventions and margin coverage, on
constructed data whose answers are known."""

import numpy as np
import pytest

from htaf_jax.interpret import (
    choose_sparse_head,
    choose_sparse_heads,
    code_collisions,
    fit_sparse_head,
    head_accuracy,
    intervention_curve,
    l1_heads,
    margin_coverage,
    nec_mask,
    random_concepts,
)


def test_nec_mask_keeps_the_largest_magnitudes_per_class():
    kernel = np.array([[0.1, -3.0], [2.0, 0.2], [-1.5, 0.3], [0.0, 1.0]])
    np.testing.assert_array_equal(nec_mask(kernel, 1), [[0, 1], [1, 0], [0, 0], [0, 0]])
    np.testing.assert_array_equal(nec_mask(kernel, 2), [[0, 1], [1, 0], [1, 0], [0, 1]])
    assert nec_mask(kernel, None).all() and nec_mask(kernel, 9).all()
    with pytest.raises(ValueError, match="NEC"):
        nec_mask(kernel, 0)


def _one_concept_per_class(n=600, classes=3, noise=9, seed=0):
    """Concept c is on exactly for class c; ``noise`` more concepts are coin flips."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    z = np.concatenate([np.eye(classes)[y], rng.random((n, noise)) < 0.5], 1).astype(np.float32)
    return z, y


def test_refit_at_nec_1_finds_the_class_concepts_and_keeps_the_mask():
    z, y = _one_concept_per_class()
    k, c = z.shape[1], 3
    # A head whose largest weight per class is its class concept, but wrongly scaled and
    # with the noise concepts voting: masked to NEC = 1, a refit separates the classes.
    rng = np.random.default_rng(1)
    kernel = rng.normal(0, 0.1, (k, c))
    kernel[np.arange(c), np.arange(c)] = 0.5
    head = fit_sparse_head(z, y, kernel, np.zeros(c), nec_mask(kernel, 1), 0.1, 200)
    assert head_accuracy(head, z, y) == 1.0
    assert np.count_nonzero(head.kernel) == c
    np.testing.assert_array_equal(head.kernel != 0, np.eye(k, c, dtype=bool))
    nonneg = fit_sparse_head(
        z, y, -np.abs(kernel), np.zeros(c), nec_mask(kernel, 2), 0.1, 50, nonneg=True
    )
    assert (nonneg.kernel >= 0).all() and (nonneg.kernel[~nonneg.mask] == 0).all()


@pytest.mark.parametrize("nec", [1, 3, None])
@pytest.mark.parametrize("nonneg", [False, True])
def test_refit_on_the_kept_concepts_equals_the_refit_on_all_columns(nec, nonneg):
    # fit_sparse_head passes only the concepts some class keeps (padded to a power of two);
    # the reference is the same Adam on every column, where the others stay 0.
    from htaf_jax.interpret.sparse_head import _adam

    rng = np.random.default_rng(5)
    z = (rng.random((300, 40)) < 0.3).astype(np.float32)
    y = rng.integers(0, 3, 300)
    kernel, bias = rng.normal(0, 0.5, (40, 3)).astype(np.float32), np.zeros(3, np.float32)
    mask = nec_mask(kernel, nec)
    head = fit_sparse_head(z, y, kernel, bias, mask, 0.1, 30, nonneg)
    w, b = _adam(z, y, np.where(mask, kernel, 0), bias, mask, 0.1, steps=30, nonneg=nonneg)
    w = np.where(mask, np.maximum(w, 0) if nonneg else w, 0)
    np.testing.assert_allclose(head.kernel, w, atol=1e-5)
    np.testing.assert_allclose(head.bias, b, atol=1e-5)


def test_choose_sparse_head_reads_validation_and_refits_on_all():
    z, y = _one_concept_per_class(seed=2)
    kernel = np.zeros((z.shape[1], 3))
    kernel[np.arange(3), np.arange(3)] = 1e-3  # right concepts, but a far too small scale
    kernel[3:, :] = 1e-4
    # The bias favours class 0: without a refit most images are called class 0.
    choice = choose_sparse_head(
        z[:400], y[:400], z[400:], y[400:], kernel, [1.0, 0, 0], 1, grid=((0.0, 0), (0.1, 200))
    )
    assert (choice.learning_rate, choice.steps) == (0.1, 200)
    assert choice.validation_accuracy == 1.0 and head_accuracy(choice.head, z, y) == 1.0


def test_code_collisions_ceiling_of_a_known_code():
    codes = np.array([[0, 1], [0, 1], [0, 1], [1, 1], [1, 1], [0, 0]])
    labels = np.array([0, 0, 1, 2, 2, 1])
    found = code_collisions(codes, labels)
    # Codes 01 (labels 0, 0, 1), 11 (2, 2), 00 (1): one of three codes shared by two labels,
    # half the images in it; the best any head does is to miss the lone 1 of code 01.
    assert found.distinct_codes == 3
    assert found.shared_codes == pytest.approx(1 / 3)
    assert found.images_in_shared == pytest.approx(0.5)
    assert found.ceiling == pytest.approx(5 / 6)
    assert code_collisions(np.eye(4), np.arange(4)).ceiling == 1.0


def test_random_concepts_have_the_given_on_rates_and_are_frozen():
    h = np.random.default_rng(0).normal(size=(2000, 16))
    rates = np.array([0.05, 0.1, 0.5, 0.0, 1.0])
    code = random_concepts(h, rates, seed=3)
    np.testing.assert_allclose(code(h).mean(0), rates, atol=1e-3)
    np.testing.assert_array_equal(code(h[:7]), code(h)[:7])
    np.testing.assert_array_equal(random_concepts(h, rates, seed=3).projection, code.projection)


def test_intervention_curve_on_a_constructed_head():
    # Class 0 reads concepts 0 and 1 (weight 1 each), class 1 reads concept 2 (weight 1.5).
    kernel = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.5], [0.0, 0.0]])
    bias = np.zeros(2)
    target = np.array(
        [
            [1.0, 1.0, 0.0, 1.0],  # class 0's typical code
            [0.0, 0.0, 1.0, 0.0],
        ]
    )
    # True class 0, code 0010: predicted 1. Candidates: concepts 0, 1, 2 and 3 (which moves
    # nothing). Informed: switching concept 2 off raises the margin by 1.5 (the most), and
    # then the margin is 0 − 0: a tie goes to class 0 (argmax takes the first), so right.
    curve = intervention_curve([[0, 0, 1, 0]], [0], kernel, bias, target, 4, "informed")
    np.testing.assert_array_equal(curve.accuracy, [0, 1, 1, 1, 1])
    assert curve.concepts[0, 0] == 2 and sorted(curve.concepts[0]) == [0, 1, 2, 3]
    # Random order: after all four candidates the code is class 0's, whatever the order.
    rand = intervention_curve([[0, 0, 1, 0]] * 50, [0] * 50, kernel, bias, target, 5, "random")
    assert rand.accuracy[0] == 0 and rand.accuracy[4] == 1 and rand.accuracy[5] == 1
    assert (rand.concepts[:, 4] == -1).all()  # nothing left to set
    # Concept 3 first (no change), then 0 (margin 1 − 1.5): still wrong after two in some
    # orders, so the random curve lies below the informed one at n = 1.
    assert rand.accuracy[1] < curve.accuracy[1]
    # A soft target value moves the logits by (t − z) V.
    half = intervention_curve([[0, 0, 1, 0]], [0], kernel, bias, target * 0.5 + 0.25, 1)
    assert half.accuracy[1] == 0  # concept 2 only down to 0.25: logit 1 still 0.375 > 0


def test_margin_coverage():
    kernel = np.array([[2.0, 0.0], [1.0, 0.0], [0.5, 0.0], [0.0, 0.5]])
    z = np.array([[1, 1, 1, 1]])
    # margin = 3.5 − 0.5 = 3; d = 2, 1, 0.5, −0.5: the two largest keep 3 of 3.
    np.testing.assert_allclose(margin_coverage(z, kernel, np.zeros(2), 1), [2 / 3])
    np.testing.assert_allclose(margin_coverage(z, kernel, np.zeros(2), 2), [1.0])


def test_l1_path_keeps_the_head_at_0_empties_it_when_large_and_descends():
    z, y = _one_concept_per_class(seed=3)
    kernel = np.random.default_rng(4).normal(0, 0.3, (z.shape[1], 3)).astype(np.float32)
    heads = l1_heads(z, y, kernel, np.zeros(3), lambdas=(0.0, 0.01, 100.0), steps=200)
    np.testing.assert_array_equal(heads[0.0][0], kernel)
    assert not heads[100.0][0].any()

    def objective(w, b, lam):  # mean cross-entropy + λ·Σ|V|, in float64
        logits = z.astype(np.float64) @ w + b
        logits -= logits.max(1, keepdims=True)
        nll = np.log(np.exp(logits).sum(1)) - logits[np.arange(len(y)), y]
        return nll.mean() + lam * np.abs(w).sum()

    assert objective(*heads[0.01], 0.01) < objective(kernel, np.zeros(3), 0.01) - 0.5
    nonneg = l1_heads(z, y, kernel, np.zeros(3), lambdas=(0.01,), nonneg=True, steps=50)
    assert (nonneg[0.01][0] >= 0).all()


def test_the_l1_path_ranks_the_deciding_concepts_above_a_louder_trained_weight():
    # The trained head's largest weight per class sits on a coin-flip concept; cut to
    # NEC = 1 it cannot tell the classes apart, whatever the refit. The L1 path drops the
    # coin flips and grows the class concepts, so the validation split picks it.
    z, y = _one_concept_per_class(n=900, seed=5)
    k = z.shape[1]
    kernel = np.zeros((k, 3), np.float32)
    kernel[np.arange(3), np.arange(3)] = 0.1
    kernel[3 + np.arange(3), np.arange(3)] = 1.0
    args = (z[:600], y[:600], z[600:], y[600:], kernel, np.zeros(3))
    cut = choose_sparse_heads(*args, necs=(1,), lambdas=(0.0,))[1]
    assert cut.validation_accuracy < 0.6
    chosen = choose_sparse_heads(*args, necs=(1, None), lambdas=(0.0, 0.03))
    assert chosen[1].l1 == 0.03 and chosen[1].validation_accuracy == 1.0
    np.testing.assert_array_equal(chosen[1].head.mask, np.eye(k, 3, dtype=bool))
    assert head_accuracy(chosen[1].head, z, y) == 1.0
    assert chosen[None].head.mask.all()
    assert choose_sparse_head(*args, nec=1, lambdas=(0.0, 0.03)).l1 == 0.03
