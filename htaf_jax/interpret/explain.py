"""Reading an ICBM's decisions off its hard concepts and linear head.

With hard concepts z ∈ {0, 1}^K, head kernel V (K, C) and bias b (C,), the
logit of class c is ``b_c + Σ_k z_k V[k, c]``: each active concept adds its
weight, nothing else enters. ``concept_contributions`` returns those terms,
``class_concepts`` the largest weights per class, ``intervene`` flips a
concept and re-runs the head, ``explain_text`` writes it all out in words.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np

__all__ = ["head_weights", "class_concepts", "concept_contributions", "Intervention",
           "intervene", "explain_text"]


def head_weights(variables) -> tuple[np.ndarray, np.ndarray]:
    """The ICBM head's kernel (K, C) and bias (C,) as host arrays."""
    head = variables["params"]["head"]
    return np.asarray(head["kernel"]), np.asarray(head["bias"])


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


def _name(names: Sequence[str] | None, i: int, prefix: str) -> str:
    return names[i] if names is not None else f"{prefix}{i}"


def explain_text(concepts: np.ndarray, kernel: np.ndarray, bias: np.ndarray,
                 label: int | None = None, class_names: Sequence[str] | None = None,
                 top_alternatives: int = 1, max_listed: int = 12) -> str:
    """Plain-text explanation of one example from its hard concepts (K,).

    Lists the predicted class and its logit as bias + the contributions of the
    active concepts (largest |contribution| first), the runner-up class the
    same way, and which single concept flip would most lower the margin.
    """
    z = np.asarray(concepts, np.float64).reshape(-1)
    kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
    logits = bias + z @ kernel
    order = np.argsort(-logits)
    pred = int(order[0])
    active = np.flatnonzero(z > 0.5)
    cls = lambda c: _name(class_names, c, "class ")  # noqa: E731
    lines = [f"prediction: {cls(pred)} (logit {logits[pred]:.3f})"]
    if label is not None:
        verdict = "correct" if int(label) == pred else "wrong"
        lines.append(f"true label: {cls(int(label))} ({verdict})")
    lines.append(f"active concepts: {len(active)} of {len(z)}: "
                 + (", ".join(f"c{k}" for k in active) if len(active) else "none"))
    for c in [pred] + [int(c) for c in order[1:1 + top_alternatives]]:
        contrib = kernel[active, c]
        lines.append(f"\n{cls(c)}: logit {logits[c]:.3f} = bias {bias[c]:.3f} "
                     f"+ {contrib.sum():.3f} from {len(active)} active concepts")
        for j in np.argsort(-np.abs(contrib))[:max_listed]:
            lines.append(f"  c{active[j]:<4d} {contrib[j]:+.3f}")
        if len(active) > max_listed:
            rest = contrib[np.argsort(-np.abs(contrib))[max_listed:]].sum()
            lines.append(f"  ({len(active) - max_listed} more) {rest:+.3f}")
    if len(order) > 1:
        runner = int(order[1])
        # Flipping concept k changes the margin pred − runner by (1 − 2 z_k)(V[k,p] − V[k,r]).
        delta = (1.0 - 2.0 * z) * (kernel[:, pred] - kernel[:, runner])
        k = int(np.argmin(delta))
        state = "off" if z[k] > 0.5 else "on"
        new_pred = int(np.argmax(logits + (1.0 - 2.0 * z[k]) * kernel[k]))
        lines.append(f"\nmost decisive flip: turning c{k} {state} changes the margin over "
                     f"{cls(runner)} by {delta[k]:+.3f}; prediction would be {cls(new_pred)}")
    return "\n".join(lines)

