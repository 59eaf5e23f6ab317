"""Reading an ICBM's decisions off its hard concepts and linear head.

With hard concepts z ∈ {0, 1}^K, head kernel V (K, C) and bias b (C,), the
logit of class c is ``b_c + Σ_k z_k V[k, c]``: each active concept adds its
weight, nothing else enters. ``concept_contributions`` returns those terms,
``class_concepts`` the largest weights per class, ``intervene`` flips a
concept and re-runs the head, ``intervention_curve`` sets concepts one at a
time toward a target code (test-time interventions, Koh et al. 2020), and
``explain_text`` writes it all out in words.

A concept is named by what it detects, not by the class whose head weight it
tops: ``concept_labels`` gives each concept its dominant class and that
class's share among the images that switch it on (``measures.purity``).
``explain`` returns the few concepts that decide a prediction: with p the
predicted class and r the runner-up, concept k adds d_k = z_k (V[k, p] −
V[k, r]) to the margin; the decisive concepts are the fewest, largest d_k
first, that keep 90% of it (the set whose size ``measures.explanation_size``
counts). ``explanation_usage`` is how often each concept is in that set.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np

from htaf_jax.interpret.measures import explanation_size, margin_terms, purity


def head_weights(variables, model=None) -> tuple[np.ndarray, np.ndarray]:
    """The ICBM head's effective kernel V (K, C) and bias (C,) as host arrays.

    Pass the ``model`` for a head whose stored kernel is not V (``nonneg_head``:
    V = max(kernel, 0)); without it the stored ``head/kernel`` is returned.
    """
    if model is not None:
        from htaf_jax.models.icbm import ICBM  # noqa: PLC0415

        kernel, bias = model.apply(variables, method=ICBM.head_params)
        return np.asarray(kernel), np.asarray(bias)
    head = variables["params"]["head"]
    return np.asarray(head["kernel"]), np.asarray(head["bias"])


def concept_labels(
    hard, labels, class_names: Sequence[str] | None = None, num_classes: int | None = None
) -> list[str]:
    """Per concept, what it detects: ``"<dominant class> <share>%"``, the class most
    frequent among the images (N, with ``labels``) that switch it on in ``hard``
    (N, K), and its share among them; ``"never on"`` for a concept that is not."""
    labels = np.asarray(labels).astype(np.int64)
    if num_classes is None:
        num_classes = len(class_names) if class_names is not None else int(labels.max()) + 1
    p = purity(hard, labels, num_classes)
    out = []
    for share, cls, support in zip(p["per_concept"], p["dominant_class"], p["support"]):
        if support == 0:
            out.append("never on")
        else:
            out.append(f"{_name(class_names, int(cls), 'class ')} {100 * share:.0f}%")
    return out


def _decisive_masks(hard, kernel, bias, share: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) masks of the decisive concepts, and (N, K) margin terms d."""
    z = (np.asarray(hard) > 0.5).astype(np.float64)
    d = margin_terms(z, kernel, bias)[-1]
    size = explanation_size(z, kernel, bias, share)
    rank = np.argsort(np.argsort(-d, axis=1, kind="stable"), axis=1, kind="stable")
    return rank < size[:, None], d


def decisive_concepts(concepts, kernel, bias, share: float = 0.9) -> list[tuple[int, float]]:
    """The concepts that decide one prediction (hard ``concepts`` (K,)), largest first, each
    with d_k, what it adds to the margin of the prediction over the runner-up; as many as
    ``measures.explanation_size`` counts for ``share`` of the margin."""
    mask, d = _decisive_masks(np.asarray(concepts).reshape(1, -1), kernel, bias, share)
    ks = np.flatnonzero(mask[0])
    ks = ks[np.argsort(-d[0, ks], kind="stable")]
    return [(int(k), float(d[0, k])) for k in ks]


def explanation_usage(hard, kernel, bias, share: float = 0.9) -> np.ndarray:
    """(K,): the share of images (``hard`` (N, K)) whose decisive concepts include k."""
    mask, _ = _decisive_masks(hard, kernel, bias, share)
    return mask.mean(axis=0)


class Explanation(NamedTuple):
    """The decisive concepts of one prediction."""

    prediction: int
    runner_up: int
    margin: float  # logit of the prediction − logit of the runner-up
    concepts: list[tuple[int, str, float, float]]  # (k, label, V[k, pred], d_k), d_k largest first


def explain(
    concepts, kernel, bias, concept_names: Sequence[str] | None = None, share: float = 0.9
) -> Explanation:
    """Which few concepts decide the prediction of one example (hard ``concepts`` (K,)).

    Each decisive concept comes with its label (``concept_names[k]``, e.g. from
    ``concept_labels``; else ``"c<k>"``), its contribution to the predicted logit
    V[k, pred] and to the margin over the runner-up d_k.
    """
    z = (np.asarray(concepts).reshape(-1) > 0.5).astype(np.float64)
    kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
    logits, pred, runner, _ = margin_terms(z[None], kernel, bias)
    p, r = int(pred[0]), int(runner[0])
    rows = [
        (k, concept_names[k] if concept_names is not None else f"c{k}", float(kernel[k, p]), d)
        for k, d in decisive_concepts(z, kernel, bias, share)
    ]
    return Explanation(p, r, float(logits[0, p] - logits[0, r]), rows)


def class_concepts(kernel: np.ndarray, top: int = 5) -> list[list[tuple[int, float]]]:
    """Per class c: the ``top`` concepts with the largest weights V[k, c], largest first."""
    kernel = np.asarray(kernel)
    order = np.argsort(-kernel, axis=0, kind="stable")[:top]
    return [[(int(k), float(kernel[k, c])) for k in order[:, c]] for c in range(kernel.shape[1])]


def concept_contributions(concepts: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Terms z_k V[k, c]: (..., K) concepts and (K, C) kernel → (..., K, C).

    Summed over K they equal the logits minus the head bias.
    """
    concepts, kernel = np.asarray(concepts), np.asarray(kernel)
    return concepts[..., :, None] * kernel


class Intervention(NamedTuple):
    """One concept set by hand for a batch of examples."""

    concepts: np.ndarray  # (B, K) hard concepts after the intervention
    logits_before: np.ndarray  # (B, C)
    logits_after: np.ndarray  # (B, C)
    prediction_before: np.ndarray  # (B,)
    prediction_after: np.ndarray  # (B,)


def intervene(model, variables, images, concept: int, value: float) -> Intervention:
    """Sets hard concept ``concept`` to ``value`` (0 or 1) and reclassifies.

    ``model`` is an ICBM; ``images`` (B, H, W, C). The head is re-run through
    ``ICBM.classify``, so the change in logit c is exactly
    ``(value − z_k) · V[k, c]``.
    """
    from htaf_jax.models.icbm import ICBM  # noqa: PLC0415

    images = jnp.asarray(images, jnp.float32)
    out = model.apply(variables, images, method=ICBM.explain)
    hard = out["hard"]
    if not 0 <= concept < hard.shape[-1]:
        raise IndexError(f"concept {concept} out of range for K={hard.shape[-1]}")
    changed = hard.at[:, concept].set(value)
    logits_after = model.apply(variables, changed, method=ICBM.classify)
    before, after = np.asarray(out["logits"]), np.asarray(logits_after)
    return Intervention(np.asarray(changed), before, after, before.argmax(-1), after.argmax(-1))


class InterventionCurve(NamedTuple):
    """Accuracy of a batch of examples against the number of concepts intervened."""

    accuracy: np.ndarray  # (S + 1,) share predicted right after n = 0 … S interventions
    concepts: np.ndarray  # (N, S) the concept set at each step (−1: none left to set)


def intervention_curve(
    hard,
    labels,
    kernel,
    bias,
    target,
    max_concepts: int = 20,
    order: str = "informed",
    seed: int = 0,
) -> InterventionCurve:
    """Test-time interventions on hard concepts (N, K): for each example, its concepts
    are set one at a time to its true class's value ``target[label]`` ((C, K), e.g. the
    class's on-rate of each concept on the training split), and the head re-read.

    Each step changes logit c by (t_k − z_k) V[k, c], as ``intervene`` does through
    the model. Candidates are the concepts whose value differs from the target.
    ``order="random"``: a random order per example (``seed``); ``"informed"``: at
    each step the candidate that raises the margin of the true class over the best
    other class the most (it may lower it, when every candidate does). An example
    with no candidate left stays as it is.
    """
    if order not in ("random", "informed"):
        raise ValueError(f"order must be 'random' or 'informed', got {order!r}")
    z = (np.asarray(hard) > 0.5).astype(np.float64)
    labels = np.asarray(labels).astype(np.int64)
    kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
    goal = np.asarray(target, np.float64)[labels]  # (N, K)
    logits = z @ kernel + bias
    rows = np.arange(len(z))
    left = np.abs(goal - z) > 0
    rank = np.random.default_rng(seed).random(z.shape)
    accuracy, chosen = [np.mean(logits.argmax(-1) == labels)], []
    for _ in range(max_concepts):
        delta = np.where(left, goal - z, 0.0)
        if order == "informed":
            after = logits[:, None, :] + delta[:, :, None] * kernel[None]  # (N, K, C)
            true = after[rows, :, labels]
            after[rows, :, labels] = -np.inf
            score = np.where(left, true - after.max(-1), -np.inf)
        else:
            score = np.where(left, -rank, -np.inf)
        k = score.argmax(-1)
        some = left[rows, k]
        logits += np.where(some, delta[rows, k], 0.0)[:, None] * kernel[k]
        z[rows[some], k[some]] = goal[rows[some], k[some]]
        left[rows[some], k[some]] = False
        chosen.append(np.where(some, k, -1))
        accuracy.append(np.mean(logits.argmax(-1) == labels))
    return InterventionCurve(
        np.asarray(accuracy), np.stack(chosen, 1) if chosen else np.zeros((len(z), 0), int)
    )


def _name(names: Sequence[str] | None, i: int, prefix: str) -> str:
    return names[i] if names is not None else f"{prefix}{i}"


def explain_text(
    concepts: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray,
    label: int | None = None,
    class_names: Sequence[str] | None = None,
    top_alternatives: int = 1,
    max_listed: int = 12,
    concept_names: Sequence[str] | None = None,
    share: float = 0.9,
) -> str:
    """Plain-text explanation of one example from its hard concepts (K,).

    Lists the predicted class, the decisive concepts (``explain``: the fewest
    that keep ``share`` of the margin over the runner-up), each with its label
    (``concept_names``, e.g. ``concept_labels``) and contribution; then the
    predicted logit as bias + the contributions of the active concepts
    (largest |contribution| first), the runner-up class the same way, and
    which single concept flip would most lower the margin.
    """
    z = np.asarray(concepts, np.float64).reshape(-1)
    kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
    logits = bias + z @ kernel
    order = np.argsort(-logits)
    pred = int(order[0])
    active = np.flatnonzero(z > 0.5)
    cls = lambda c: _name(class_names, c, "class ")  # noqa: E731
    tag = lambda k: f"c{k}" + ("" if concept_names is None else f" [{concept_names[k]}]")  # noqa: E731
    lines = [f"prediction: {cls(pred)} (logit {logits[pred]:.3f})"]
    if label is not None:
        verdict = "correct" if int(label) == pred else "wrong"
        lines.append(f"true label: {cls(int(label))} ({verdict})")
    if len(order) > 1:
        why = explain(z, kernel, bias, concept_names, share)
        lines.append(
            f"decided by {len(why.concepts)} concept(s), {100 * share:.0f}% of the "
            f"margin {why.margin:.3f} over {cls(why.runner_up)}:"
        )
        for k, _, weight, d in why.concepts:
            lines.append(f"  {tag(k)}: {weight:+.3f} to {cls(pred)}, {d:+.3f} to the margin")
    lines.append(
        f"active concepts: {len(active)} of {len(z)}: "
        + (", ".join(f"c{k}" for k in active) if len(active) else "none")
    )
    for c in [pred] + [int(c) for c in order[1 : 1 + top_alternatives]]:
        contrib = kernel[active, c]
        weighted = np.flatnonzero(contrib != 0)  # a sparse head reads few of them
        lines.append(
            f"\n{cls(c)}: logit {logits[c]:.3f} = bias {bias[c]:.3f} "
            f"+ {contrib.sum():.3f} from {len(active)} active concepts"
            + (f" ({len(weighted)} with a weight)" if len(weighted) < len(active) else "")
        )
        ranked = weighted[np.argsort(-np.abs(contrib[weighted]), kind="stable")]
        for j in ranked[:max_listed]:
            lines.append(f"  {tag(active[j]):<6s} {contrib[j]:+.3f}")
        if len(ranked) > max_listed:
            rest = contrib[ranked[max_listed:]].sum()
            lines.append(f"  ({len(ranked) - max_listed} more) {rest:+.3f}")
    if len(order) > 1:
        runner = int(order[1])
        # Flipping concept k changes the margin pred − runner by (1 − 2 z_k)(V[k,p] − V[k,r]).
        delta = (1.0 - 2.0 * z) * (kernel[:, pred] - kernel[:, runner])
        k = int(np.argmin(delta))
        state = "off" if z[k] > 0.5 else "on"
        new_pred = int(np.argmax(logits + (1.0 - 2.0 * z[k]) * kernel[k]))
        lines.append(
            f"\nmost decisive flip: turning {tag(k)} {state} changes the margin over "
            f"{cls(runner)} by {delta[k]:+.3f}; prediction would be {cls(new_pred)}"
        )
    return "\n".join(lines)
