"""Concept activations of a trained ICBM and how binary they are.

``concept_activations`` runs ``ICBM.explain`` over a dataset in batches and
returns host arrays; ``discretisation`` summarises them: the share of smooth
activations within ε of {0, 1}, accuracy with hard vs smooth concepts, and
concept usage (never / always on).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import numpy as np

from htaf_jax import concepts


class ConceptActivations(NamedTuple):
    """Evaluation-mode concept activations for N examples, K concepts, C classes."""

    preactivations: np.ndarray  # (N, K) BN(W·h); > 0 ⇔ concept on
    hard: np.ndarray  # (N, K) {0, 1}
    logits: np.ndarray  # (N, C) head on hard concepts (the model's prediction)
    soft: np.ndarray | None  # (N, K) smooth form; None without one (straight-through)
    soft_logits: np.ndarray | None  # (N, C) head on soft concepts


def concept_activations(model, variables, images, batch_size: int = 1000) -> ConceptActivations:
    """Runs ``model.explain`` (an ICBM) on ``images`` (N, H, W, C) in batches."""
    from htaf_jax.models.icbm import ICBM  # noqa: PLC0415 (keeps this module model-agnostic)

    explain = jax.jit(lambda v, x: model.apply(v, x, method=ICBM.explain))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(images), batch_size):
        out = explain(variables, np.asarray(images[start : start + batch_size], np.float32))
        for name, value in out.items():
            parts.setdefault(name, []).append(np.asarray(value))
    cat = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    return ConceptActivations(
        cat["preactivations"], cat["hard"], cat["logits"], cat.get("soft"), cat.get("soft_logits")
    )


def near_binary_share(z: np.ndarray, eps: float) -> float:
    """Share of entries of ``z`` within ``eps`` of 0 or 1 (``htaf_jax.concepts.near_binary_share``
    as a Python float)."""
    return float(concepts.near_binary_share(np.asarray(z), eps))


def discretisation(
    acts: ConceptActivations, labels: np.ndarray | None = None, eps: Sequence[float] = (0.01, 0.1)
) -> dict[str, float | int | None]:
    """Discretisation measures of a set of concept activations.

    Keys: ``near_binary@{eps}`` (share of smooth activations within ε of
    {0, 1}; None without a smooth form), ``concept_rate`` (mean hard
    activation), ``dead_concepts`` / ``always_on_concepts`` (counts), and with
    labels ``hard_accuracy``, ``soft_accuracy`` and ``hard_soft_gap``
    (soft − hard, in accuracy points ×100; None without a smooth form).
    """
    out: dict[str, float | int | None] = {}
    for e in eps:
        out[f"near_binary@{e:g}"] = None if acts.soft is None else near_binary_share(acts.soft, e)
    usage = acts.hard.mean(axis=0)
    out["concept_rate"] = float(usage.mean())
    out["dead_concepts"] = int(np.sum(usage == 0.0))
    out["always_on_concepts"] = int(np.sum(usage == 1.0))
    if labels is not None:
        labels = np.asarray(labels)
        hard_acc = float(np.mean(acts.logits.argmax(-1) == labels))
        out["hard_accuracy"] = hard_acc
        if acts.soft_logits is None:
            out["soft_accuracy"] = out["hard_soft_gap"] = None
        else:
            soft_acc = float(np.mean(acts.soft_logits.argmax(-1) == labels))
            out["soft_accuracy"] = soft_acc
            out["hard_soft_gap"] = 100.0 * (soft_acc - hard_acc)
    return out
