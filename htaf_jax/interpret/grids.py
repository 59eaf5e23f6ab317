"""PNG grids of the examples that switch a concept on most and least.

Examples are ranked by the concept's pre-activation BN(W·h) (the hard concept
is on iff it is ≥ 0), so "top" are the most confidently on and "least" the
most confidently off.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

__all__ = ["ranked_examples", "save_concept_grid", "save_concept_overview"]


def ranked_examples(preactivations: np.ndarray, concept: int, n: int = 16,
                    least: bool = False) -> np.ndarray:
    """Indices of the ``n`` examples with the largest (or smallest) pre-activation."""
    column = np.asarray(preactivations)[:, concept]
    order = np.argsort(column if least else -column, kind="stable")
    return order[:n]


def _figure():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _show(ax, image: np.ndarray) -> None:
    image = np.asarray(image, np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    ax.set_xticks([])
    ax.set_yticks([])


def save_concept_grid(path: str, images: np.ndarray, preactivations: np.ndarray, concept: int,
                      n: int = 16, least: bool = False, labels: np.ndarray | None = None,
                      class_names: Sequence[str] | None = None, columns: int = 8) -> np.ndarray:
    """Writes a PNG grid of the examples ranked by concept ``concept``.

    Each tile is titled with its pre-activation and, given labels, its class.
    Returns the indices shown.
    """
    plt = _figure()
    idx = ranked_examples(preactivations, concept, n, least)
    rows = -(-len(idx) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.5 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, idx):
        ax.axis("on")
        _show(ax, images[i])
        title = f"{preactivations[i, concept]:+.2f}"
        if labels is not None:
            name = class_names[labels[i]] if class_names is not None else str(labels[i])
            title = f"{name[:10]}\n{title}"
        ax.set_title(title, fontsize=7)
    which = "least" if least else "most"
    on_share = float(np.mean(np.asarray(preactivations)[:, concept] >= 0))
    fig.suptitle(f"concept c{concept}: {which} activating (on for {100 * on_share:.1f}% of examples)",
                 fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return idx


def save_concept_overview(path: str, images: np.ndarray, preactivations: np.ndarray,
                          concepts: Sequence[int], n: int = 8,
                          row_titles: Sequence[str] | None = None) -> None:
    """One PNG: a row per concept with its ``n`` top-activating examples."""
    plt = _figure()
    fig, axes = plt.subplots(len(concepts), n, figsize=(1.1 * n + 1.6, 1.1 * len(concepts)),
                             squeeze=False)
    for r, k in enumerate(concepts):
        for ax, i in zip(axes[r], ranked_examples(preactivations, k, n)):
            _show(ax, images[i])
        title = row_titles[r] if row_titles is not None else f"c{k}"
        axes[r, 0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
