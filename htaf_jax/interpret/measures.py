"""Interpretability measures of a concept layer: is the binary code a set of concepts?

A concept bottleneck is judged by whether its concepts mean something, not
only by its accuracy (a dense hash code can classify well and explain
nothing). For N images, K hard concepts ``hard`` (N, K) ∈ {0, 1}, labels
(N,) and a linear head (kernel V (K, C), bias b (C,)):

- ``sparsity``: mean on-rate, and the share of concepts never / always on.
- ``purity``: per concept, the top class's share among the images that switch
  it on; its mean over the concepts that switch on at all. ``random_code_purity``
  gives the same for a random binary code with each concept's on-rate: the
  level a code without meaning reaches.
- ``explanation_size``: per image, how many concepts (the most supportive
  first) must stay on, the others off, to keep 90% of the winning logit's
  margin over the runner-up.
- ``stability``: concepts of two runs (seeds) matched one-to-one by the
  agreement of their activations (Hungarian matching,
  ``scipy.optimize.linear_sum_assignment``); mean agreement of matched pairs.
- ``completeness`` (Yeh et al. 2020, "On completeness-aware concept-based
  explanations in deep neural networks", NeurIPS): the accuracy reachable from
  the concepts relative to the backbone's, both above chance.
- ``leakage``: what a linear probe on the soft concepts gains over the same
  probe on the hard ones: information that passes through the concept layer
  outside its binary values (Mahinpei et al. 2021, "Promises and pitfalls of
  black-box concept learning models").

Inputs are host arrays (NumPy); the probes train with JAX and optax.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax


def _binary(hard) -> np.ndarray:
    hard = np.asarray(hard)
    if hard.ndim != 2:
        raise ValueError(f"concepts must be (N, K), got shape {hard.shape}")
    return hard > 0.5


def sparsity(hard) -> dict[str, float]:
    """``on_rate`` (mean share of concepts on per image), ``never_on`` and ``always_on``
    (shares of the K concepts off / on for every image)."""
    z = _binary(hard)
    usage = z.mean(axis=0)
    return {
        "on_rate": float(z.mean()),
        "never_on": float(np.mean(usage == 0.0)),
        "always_on": float(np.mean(usage == 1.0)),
    }


def _per_concept_purity(
    z: np.ndarray, labels: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts = z.T.astype(np.int64) @ np.eye(num_classes, dtype=np.int64)[labels]  # (K, C)
    on = counts.sum(axis=1)
    top = counts.max(axis=1)
    share = np.where(on > 0, top / np.maximum(on, 1), np.nan)
    return share, counts.argmax(axis=1), on


def purity(hard, labels, num_classes: int | None = None) -> dict:
    """Class purity of each concept's images.

    Returns ``mean`` (over the concepts on for at least one image; NaN if none
    is), ``per_concept`` (K,) top-class share (NaN for never-on concepts),
    ``dominant_class`` (K,) that class, ``support`` (K,) images that switch it on.
    A concept on for the images of one class only has purity 1; one on for C
    classes evenly, 1/C.
    """
    z = _binary(hard)
    labels = np.asarray(labels).astype(np.int64)
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    share, dominant, on = _per_concept_purity(z, labels, num_classes)
    used = on > 0
    return {
        "mean": float(share[used].mean()) if used.any() else float("nan"),
        "per_concept": share,
        "dominant_class": dominant,
        "support": on,
    }


def random_code_purity(hard, labels, num_classes: int | None = None, seed: int = 0) -> float:
    """Mean purity of a random binary code whose concept k is on with the on-rate of
    concept k of ``hard``, independently of the image: the chance level of ``purity``."""
    z = _binary(hard)
    rng = np.random.default_rng(seed)
    code = rng.random(z.shape) < z.mean(axis=0, keepdims=True)
    return purity(code, labels, num_classes)["mean"]


def margin_terms(z: np.ndarray, kernel, bias):
    """(logits, predicted class p, runner-up r, d) of float concepts z (N, K): d (N, K) =
    z_k (V[k, p] − V[k, r]), what each concept adds to the margin of p over r."""
    kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
    logits = z @ kernel + bias
    order = np.argsort(-logits, axis=-1, kind="stable")
    pred, runner = order[..., 0], order[..., 1]
    return logits, pred, runner, z * (kernel[:, pred] - kernel[:, runner]).T


def explanation_size(hard, kernel, bias, share: float = 0.9) -> np.ndarray:
    """Per image (N,): the fewest concepts that keep ``share`` of the decision's margin.

    With p the predicted class and r the runner-up, the margin is
    m = (b_p − b_r) + Σ_k d_k with d_k = z_k (V[k, p] − V[k, r]). Keeping the n
    concepts of largest d_k on and switching the others off leaves
    (b_p − b_r) + (sum of the n largest d_k); the size is the smallest n for
    which that reaches ``share`` · m (0 when the bias alone does).
    """
    z = _binary(hard).astype(np.float64)
    kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
    if kernel.shape[1] < 2:
        raise ValueError("explanation_size needs at least two classes")
    logits, pred, runner, d = margin_terms(z, kernel, bias)
    margin = logits[np.arange(len(z)), pred] - logits[np.arange(len(z)), runner]
    largest_first = np.cumsum(-np.sort(-d, axis=1), axis=1)
    kept = (bias[pred] - bias[runner])[:, None] + np.concatenate(
        [np.zeros((len(z), 1)), largest_first], axis=1
    )  # (N, K + 1): n = 0 … K kept on
    reached = kept >= share * margin[:, None] - 1e-9 * np.abs(margin[:, None])
    return np.argmax(reached, axis=1)  # the full set (n = K) always reaches m ≥ share·m


def margin_coverage(hard, kernel, bias, count: int = 5) -> np.ndarray:
    """Per image (N,): the share of the decision's margin that the ``count`` concepts of
    largest d_k keep, the others off (as ``explanation_size``): ((b_p − b_r) + sum of the
    ``count`` largest d_k) / m. 1 or more: those concepts alone carry the decision."""
    z = _binary(hard).astype(np.float64)
    logits, pred, runner, d = margin_terms(z, kernel, bias)
    bias, rows = np.asarray(bias, np.float64), np.arange(len(z))
    margin = logits[rows, pred] - logits[rows, runner]
    kept = (bias[pred] - bias[runner]) + (-np.sort(-d, axis=1))[:, :count].sum(axis=1)
    return np.where(margin > 0, kept / np.where(margin > 0, margin, 1.0), 1.0)


class Stability(NamedTuple):
    """Concepts of run A matched one-to-one to concepts of run B."""

    mean_agreement: float  # mean over matched pairs of the share of images where they agree
    pairs: np.ndarray  # (K, 2) matched (concept of A, concept of B)
    agreement: np.ndarray  # (K,) each pair's agreement
    chance: float  # the mean agreement of independent codes with the same on-rates


def stability(hard_a, hard_b) -> Stability:
    """Hungarian matching of two runs' concepts on the same images by activation agreement.

    Agreement of concepts i (of A) and j (of B): the share of images where
    z_a[:, i] = z_b[:, j]. The matching maximises the summed agreement
    (``scipy.optimize.linear_sum_assignment``). ``chance``: the expected mean
    agreement of the same matching between independent codes with the same
    on-rates, p_i p_j + (1 − p_i)(1 − p_j).
    """
    from scipy.optimize import linear_sum_assignment  # 0.6 s to import; this measure only

    a, b = _binary(hard_a).astype(np.float64), _binary(hard_b).astype(np.float64)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"the two runs' concepts must be on the same images, got {a.shape[0]} and {b.shape[0]}"
        )
    n = a.shape[0]
    agree = (a.T @ b + (1.0 - a).T @ (1.0 - b)) / n  # (Ka, Kb)
    rows, cols = linear_sum_assignment(agree, maximize=True)
    pa, pb = a.mean(axis=0)[rows], b.mean(axis=0)[cols]
    chance = float(np.mean(pa * pb + (1 - pa) * (1 - pb)))
    matched = agree[rows, cols]
    return Stability(float(matched.mean()), np.stack([rows, cols], axis=1), matched, chance)


def chance_accuracy(labels) -> float:
    """Accuracy of always predicting the most frequent class (Yeh et al.'s a_r)."""
    labels = np.asarray(labels).astype(np.int64)
    return float(np.bincount(labels).max() / len(labels))


def completeness(concept_accuracy: float, model_accuracy: float, chance: float) -> float:
    """Yeh et al. (2020) completeness score η = (a_concepts − a_r) / (a_model − a_r).

    ``concept_accuracy``: the best accuracy reached from the concepts alone
    (e.g. the ICBM's head on hard concepts, or a probe on them);
    ``model_accuracy``: the backbone's (a standard head on the same backbone);
    ``chance``: a_r (``chance_accuracy``). 1: the concepts lose nothing.
    """
    if not model_accuracy > chance:
        raise ValueError(
            f"completeness needs a model above chance, got accuracy "
            f"{model_accuracy} with chance {chance}"
        )
    return float((concept_accuracy - chance) / (model_accuracy - chance))


def linear_probe_accuracy(
    x_train,
    y_train,
    x_test,
    y_test,
    num_classes: int | None = None,
    steps: int = 300,
    learning_rate: float = 0.05,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> float:
    """Test accuracy of a multinomial logistic regression fitted on (x_train, y_train).

    Features are standardised with the training mean and std (so small
    variations, e.g. soft concepts near 0 or 1, are as visible to the probe as
    large ones); full-batch Adam for ``steps`` steps, L2 ``weight_decay``.
    """
    x_train, x_test = np.asarray(x_train, np.float32), np.asarray(x_test, np.float32)
    y_train, y_test = np.asarray(y_train, np.int32), np.asarray(y_test, np.int32)
    num_classes = int(max(y_train.max(), y_test.max())) + 1 if num_classes is None else num_classes
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    xt, xe = jnp.asarray((x_train - mean) / std), jnp.asarray((x_test - mean) / std)
    w = jax.random.normal(jax.random.key(seed), (xt.shape[1], num_classes)) * 1e-3
    params = (w, jnp.zeros((num_classes,)))
    tx = optax.adam(learning_rate)

    def loss(params):
        w, b = params
        ce = optax.softmax_cross_entropy_with_integer_labels(xt @ w + b, y_train).mean()
        return ce + weight_decay * jnp.sum(w * w)

    @jax.jit
    def fit(params):
        def body(carry, _):
            params, state = carry
            grads = jax.grad(loss)(params)
            updates, state = tx.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
        return params

    w, b = fit(params)
    return float(jnp.mean(jnp.argmax(xe @ w + b, -1) == y_test))


def leakage(
    soft_train, hard_train, y_train, soft_test, hard_test, y_test, **probe_kwargs
) -> dict[str, float]:
    """``soft_probe`` and ``hard_probe`` test accuracies of the same linear probe on
    soft and on hard concepts, and ``leakage`` = soft_probe − hard_probe (accuracy
    as a share; > 0: the soft values carry label information the binary code does not)."""
    soft = linear_probe_accuracy(soft_train, y_train, soft_test, y_test, **probe_kwargs)
    hard = linear_probe_accuracy(
        np.asarray(hard_train) > 0.5, y_train, np.asarray(hard_test) > 0.5, y_test, **probe_kwargs
    )
    return {"soft_probe": soft, "hard_probe": hard, "leakage": soft - hard}


def concept_measures(hard, labels, kernel, bias, soft=None, probe_split=None) -> dict:
    """The measures of one concept layer on an eval split, as JSON-ready numbers.

    ``hard``/``soft`` (N, K) eval-split concepts (``soft`` None without a smooth
    form), ``labels`` (N,), head ``kernel``/``bias``. ``probe_split``:
    ``(soft, hard, labels)`` of training images, on which the leakage probes
    are fitted (None: no leakage). Keys: ``on_rate``, ``never_on``,
    ``always_on``, ``purity``, ``purity_random``, ``explanation_size`` (mean
    over images), ``chance_accuracy``, and ``soft_probe``, ``hard_probe``,
    ``leakage`` (None without soft concepts or a probe split). Completeness
    needs the backbone's accuracy: ``completeness(hard accuracy, standard
    model's accuracy, chance_accuracy)``; stability needs a second run.
    """
    labels = np.asarray(labels).astype(np.int64)
    num_classes = np.asarray(kernel).shape[1]
    out: dict = dict(sparsity(hard))
    out["purity"] = purity(hard, labels, num_classes)["mean"]
    out["purity_random"] = random_code_purity(hard, labels, num_classes)
    out["explanation_size"] = float(explanation_size(hard, kernel, bias).mean())
    out["chance_accuracy"] = chance_accuracy(labels)
    out.update(soft_probe=None, hard_probe=None, leakage=None)
    if soft is not None and probe_split is not None and probe_split[0] is not None:
        soft_train, hard_train, y_train = probe_split
        out.update(
            leakage(soft_train, hard_train, y_train, soft, hard, labels, num_classes=num_classes)
        )
    return out
