"""PNG grids of the examples that switch a concept on most and least.

Examples are ranked by the concept's pre-activation (the hard concept is on
iff it is ≥ 0), so "top" are the most confidently on and "least" the most
confidently off. Every figure labels a concept by what it detects: its
dominant class and that class's share among the images that switch it on
(``explain.concept_labels``), never by the class whose head weight it tops.
``save_explained_overview`` shows the concepts explanations use most
(``explain.explanation_usage``); ``write_concept_figures`` writes the overview
and the per-concept grids of a run in one call; ``save_class_overview`` shows,
for each class, the few concepts a sparse head (NEC per class) reads.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from htaf_jax._atomic import replace_on_close
from htaf_jax.interpret.explain import concept_labels, explanation_usage


def ranked_examples(
    preactivations: np.ndarray, concept: int, n: int = 16, least: bool = False
) -> np.ndarray:
    """Indices of the ``n`` examples with the largest (or smallest) pre-activation."""
    column = np.asarray(preactivations)[:, concept]
    order = np.argsort(column if least else -column, kind="stable")
    return order[:n]


def _figure():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _save(plt, fig, path: str) -> None:
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with replace_on_close(path, "wb") as f:  # a killed job leaves no torn PNG
        fig.savefig(f, format=os.path.splitext(path)[1][1:] or "png", dpi=100)
    plt.close(fig)


def _show(ax, image: np.ndarray) -> None:
    image = np.asarray(image, np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    ax.set_xticks([])
    ax.set_yticks([])


def save_concept_grid(
    path: str,
    images: np.ndarray,
    preactivations: np.ndarray,
    concept: int,
    n: int = 16,
    least: bool = False,
    labels: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    columns: int = 8,
) -> np.ndarray:
    """Writes a PNG grid of the examples ranked by concept ``concept``.

    Each tile is titled with its pre-activation and, given labels, its class.
    Returns the indices shown.
    """
    plt = _figure()
    idx = ranked_examples(preactivations, concept, n, least)
    rows = -(-len(idx) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(1.3 * columns, 1.5 * rows + 0.4), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, idx):
        ax.axis("on")
        _show(ax, images[i])
        title = f"{preactivations[i, concept]:+.2f}"
        if labels is not None:
            name = class_names[labels[i]] if class_names is not None else str(labels[i])  # pyright: ignore[reportArgumentType, reportCallIssue]
            title = f"{name[:10]}\n{title}"
        ax.set_title(title, fontsize=7)
    which = "least" if least else "most"
    on = np.asarray(preactivations) >= 0
    on_share = float(np.mean(on[:, concept]))
    detects = ""
    if labels is not None:  # what the concept detects, from all the images given
        detects = (
            ": "
            + concept_labels(
                on[:, [concept]],
                labels,
                class_names,
                None if class_names is None else len(class_names),
            )[0]
        )
    fig.suptitle(
        f"concept c{concept}{detects} — {which} activating "
        f"(on for {100 * on_share:.1f}% of examples)",
        fontsize=9,
    )
    _save(plt, fig, path)
    return idx


def save_concept_overview(
    path: str,
    images: np.ndarray,
    preactivations: np.ndarray,
    concepts: Sequence[int],
    n: int = 8,
    row_titles: Sequence[str] | None = None,
) -> None:
    """One PNG: a row per concept with its ``n`` top-activating examples."""
    plt = _figure()
    fig, axes = plt.subplots(
        len(concepts), n, figsize=(1.1 * n + 1.6, 1.1 * len(concepts)), squeeze=False
    )
    for r, k in enumerate(concepts):
        for ax, i in zip(axes[r], ranked_examples(preactivations, k, n)):
            _show(ax, images[i])
        title = row_titles[r] if row_titles is not None else f"c{k}"
        axes[r, 0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize=8)
    _save(plt, fig, path)


def overview_concepts(
    hard, kernel, bias, count: int = 10, share: float = 0.9
) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` concepts that explanations use most (``explanation_usage``, ties by
    index), and their usage shares. Concepts no explanation uses are left out."""
    usage = explanation_usage(hard, kernel, bias, share)
    order = np.argsort(-usage, kind="stable")
    order = order[usage[order] > 0][:count]
    return order, usage[order]


def save_explained_overview(
    path: str,
    images,
    hard,
    preactivations,
    labels,
    kernel,
    bias,
    class_names: Sequence[str] | None = None,
    count: int = 10,
    n: int = 8,
    share: float = 0.9,
) -> list[int]:
    """One PNG: a row for each of the ``count`` concepts explanations use most, with its
    ``n`` top-activating images, titled ``c<k>: <class> <share>%`` (what it detects) and
    the share of explanations that use it. Returns the concepts shown."""
    chosen, usage = overview_concepts(hard, kernel, bias, count, share)
    names = concept_labels(
        hard, labels, class_names, None if class_names is None else len(class_names)
    )
    titles = [f"c{k}: {names[k]}\nin {100 * u:.0f}% of expl." for k, u in zip(chosen, usage)]
    save_concept_overview(path, images, preactivations, [int(k) for k in chosen], n, titles)
    return [int(k) for k in chosen]


def write_concept_figures(
    folder: str,
    images,
    labels,
    hard,
    preactivations,
    kernel,
    bias,
    class_names: Sequence[str] | None = None,
    count: int = 10,
    size: int = 16,
) -> list[str]:
    """``folder/overview.png`` (``save_explained_overview``) and, for each concept in it,
    ``c<k>_top.png`` / ``c<k>_least.png`` grids. Images in [0, 1] for display (pass
    normalised images shifted back). Returns the paths, overview first."""
    overview = os.path.join(folder, "overview.png")
    chosen = save_explained_overview(
        overview, images, hard, preactivations, labels, kernel, bias, class_names, count, n=10
    )
    paths = [overview]
    for k in chosen:
        for least in (False, True):
            paths.append(os.path.join(folder, f"c{k}_{'least' if least else 'top'}.png"))
            save_concept_grid(
                paths[-1],
                images,
                preactivations,
                k,
                n=size,
                least=least,
                labels=labels,
                class_names=class_names,
            )
    return paths


def _mosaic(images: np.ndarray, idx: np.ndarray, side: int) -> np.ndarray:
    """``side``² images (the first of ``idx``) tiled into one (side·H, side·W[, C]) image."""
    tiles = [np.asarray(images[i], np.float32) for i in idx[: side * side]]
    tiles += [np.zeros_like(tiles[0])] * (side * side - len(tiles))
    rows = [np.concatenate(tiles[r * side : (r + 1) * side], axis=1) for r in range(side)]
    return np.concatenate(rows, axis=0)


def save_class_overview(
    path: str,
    images,
    preactivations,
    kernel,
    mask,
    labels,
    class_names: Sequence[str] | None = None,
    side: int = 2,
) -> None:
    """One PNG: a row per class with the concepts its sparse head reads (``mask`` (K, C),
    e.g. ``sparse_head.nec_mask``), largest weight first, side by side. Each tile is the
    concept's ``side``² top-activating images, titled ``c<k> w=<V[k, c]>`` and what the
    concept detects (its dominant class and share, ``explain.concept_labels``)."""
    plt = _figure()
    kernel, mask = np.asarray(kernel), np.asarray(mask, bool)
    num_classes = kernel.shape[1]
    on = np.asarray(preactivations) >= 0
    names = concept_labels(on, labels, class_names, num_classes)
    per_class = [
        np.flatnonzero(mask[:, c])[np.argsort(-kernel[mask[:, c], c], kind="stable")]
        for c in range(num_classes)
    ]
    cols = max(1, max(len(ks) for ks in per_class))
    fig, axes = plt.subplots(
        num_classes, cols, figsize=(1.5 * cols + 1.4, 1.7 * num_classes), squeeze=False
    )
    for c, ks in enumerate(per_class):
        for j, ax in enumerate(axes[c]):
            ax.axis("off")
            if j < len(ks):
                k = int(ks[j])
                ax.axis("on")
                _show(ax, _mosaic(images, ranked_examples(preactivations, k, side * side), side))
                ax.set_title(f"c{k} w={kernel[k, c]:+.2f}\n{names[k]}", fontsize=6)
        axes[c, 0].axis("on")
        axes[c, 0].set_ylabel(
            _class(class_names, c), rotation=0, ha="right", va="center", fontsize=8
        )
    _save(plt, fig, path)


def _class(names: Sequence[str] | None, c: int) -> str:
    return names[c] if names is not None else f"class {c}"
