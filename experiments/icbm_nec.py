"""Accuracy at a number of effective concepts per class (NEC), explanations, interventions
and code collisions of one trained run (the ``nec`` measure of experiments.measures).

For an ICBM the features are its hard concepts, for the standard model its backbone's
features; both are computed once and frozen. The head is cut to the NEC largest |weights|
per class of the run's trained head, or of that head after an L1 path on the frozen
features, and refitted (htaf_jax.interpret.sparse_head): the path's λ and the refit's
learning rate and steps are chosen on a validation split, the last
``VALIDATION_SHARE`` of the run's training images (held out from the refit; the backbone and
concept layer did train on them), then refitted on all training images; the test split is
read once, for the final numbers. The random-concept baseline: a frozen random projection
of the ICBM's own backbone features to K concepts, each at its ICBM concept's on-rate on the
training images, its head fitted dense first (zero start) and then cut and chosen the same
way, under the ICBM's head constraint and, as a stronger baseline, with a signed head.
"""

from __future__ import annotations

import jax
import numpy as np

from htaf_jax import data as data_lib
from htaf_jax import interpret
from htaf_jax.interpret import (
    choose_sparse_heads,
    code_collisions,
    head_accuracy,
    intervention_curve,
    margin_coverage,
    random_concepts,
)
from htaf_jax.interpret.measures import explanation_size
from htaf_jax.interpret.sparse_head import MASK_LAMBDAS
from htaf_jax.models import build_model

NECS = (1, 2, 3, 5, 10, 20, None)  # None: all concepts (the dense head, refitted as well)
CHOSEN_NEC = 5  # VLG-CBM's reporting point; explanations are read there
VALIDATION_SHARE = 1 / 6  # of the training images: 10000 of 60000, 1000 of 6000
INTERVENE_MAX = 20  # concepts intervened per mispredicted image
EXPLANATION_SIZE_AT_MOST = 5  # the explanation a person reads: ≤ 5 concepts


def nec_key(nec: int | None) -> str:
    return "all" if nec is None else str(nec)


def data(config):
    """(train images, train labels, eval images, eval labels, class names), normalised: the
    eval split is the test split, or the validation split the run held out
    (``config.validation_size`` > 0), which its training images then exclude."""
    splits = data_lib.load_splits(
        config.dataset,
        config.get("data_dir"),
        train_subset=config.train_subset,
        test_subset=config.test_subset,
        validation_size=config.get("validation_size") or 0,
    )
    names = data_lib.class_names(config.dataset, config.get("data_dir"))
    return (
        splits.normalizer(splits.train.images),
        np.asarray(splits.train.labels),
        splits.normalizer(splits.eval.images),
        np.asarray(splits.eval.labels),
        names,
    )


def backbone_features(model, variables, images, batch_size: int = 1000) -> np.ndarray:
    """The backbone's evaluation-mode features (N, D) of an ICBM or a standard model."""
    fn = jax.jit(lambda v, x: model.apply(v, x, method=lambda m, x: m.backbone(x, train=False)))
    return np.concatenate(
        [
            np.asarray(fn(variables, np.asarray(images[i : i + batch_size], np.float32)))
            for i in range(0, len(images), batch_size)
        ]
    )


def split_train(z, y):
    """(refit-train, validation) parts of the training features: the last share held out."""
    cut = len(y) - int(round(len(y) * VALIDATION_SHARE))
    return (z[:cut], y[:cut]), (z[cut:], y[cut:])


def sparse_heads(
    z_train, y_train, kernel, bias, nonneg: bool, necs=NECS, lambdas=MASK_LAMBDAS
) -> dict:
    """``{nec: RefitChoice}`` for each NEC (htaf_jax.interpret.choose_sparse_heads)."""
    (zt, yt), (zv, yv) = split_train(z_train, y_train)
    return choose_sparse_heads(zt, yt, zv, yv, kernel, bias, necs, nonneg, lambdas=lambdas)


def _curves(z_train, y_train, z_test, y_test, kernel, bias, nonneg, necs, cut: bool):
    """(heads, ``{"nec": curve}``), with ``cut`` also ``"nec_cut"``: the curve of heads
    cut from the trained head only (λ = 0), what the L1 path is chosen against."""
    heads = sparse_heads(z_train, y_train, kernel, bias, nonneg, necs)
    out = {"nec": _curve(heads, z_test, y_test)}
    if cut:
        cut_heads = sparse_heads(z_train, y_train, kernel, bias, nonneg, necs, lambdas=(0.0,))
        out["nec_cut"] = _curve(cut_heads, z_test, y_test)
    return heads, out


def _curve(heads: dict, z_test, y_test) -> dict:
    return {
        nec_key(n): {
            "accuracy": head_accuracy(c.head, z_test, y_test),
            "learning_rate": c.learning_rate,
            "steps": c.steps,
            "l1": c.l1,
            "validation_accuracy": c.validation_accuracy,
            "weights": int(np.count_nonzero(c.head.kernel)),
        }
        for n, c in heads.items()
    }


def _collisions(z_test, y_test, used=None) -> dict:
    z = z_test if used is None else z_test[:, used]
    return code_collisions(z, y_test)._asdict() | {"concepts": int(z.shape[1])}


def explanation_at(head, z_test) -> dict:
    """Median explanation size (90% of the margin), the median share of the margin the
    ``EXPLANATION_SIZE_AT_MOST`` largest terms keep, and the share of images whose
    explanation has at most that many concepts, under ``head``."""
    size = explanation_size(z_test, head.kernel, head.bias)
    cover = margin_coverage(z_test, head.kernel, head.bias, EXPLANATION_SIZE_AT_MOST)
    return {
        "median_size": float(np.median(size)),
        "mean_size": float(size.mean()),
        "median_coverage": float(np.median(cover)),
        "share_small": float(np.mean(size <= EXPLANATION_SIZE_AT_MOST)),
    }


def interventions(z_train, y_train, z_test, y_test, kernel, bias, seed: int = 0) -> dict:
    """Accuracy curves (n = 0 … ``INTERVENE_MAX``) of the test images the head mispredicts,
    their concepts set toward the true class's on-rates on the training images, in random
    and in informed order; and the whole test split's accuracy after n."""
    classes = kernel.shape[1]
    target = np.stack(
        [
            z_train[y_train == c].mean(0) if np.any(y_train == c) else np.zeros(z_train.shape[1])
            for c in range(classes)
        ]
    )
    wrong = (z_test @ kernel + bias).argmax(-1) != y_test
    out = {"mispredicted": int(wrong.sum()), "test_accuracy": float(1 - wrong.mean())}
    for order in ("random", "informed"):
        curve = intervention_curve(
            z_test[wrong], y_test[wrong], kernel, bias, target, INTERVENE_MAX, order, seed
        )
        out[order] = [float(a) for a in curve.accuracy]
        out[f"{order}_test"] = [float(1 - wrong.mean() + wrong.mean() * a) for a in curve.accuracy]
    return out


def measure(
    config, params, batch_stats, necs=NECS, details: bool = True, random: bool = True
) -> dict:
    """The run's NEC curve (eval-split accuracy per NEC in ``necs``, with the refit choices),
    and with ``details`` for an ICBM its explanations and interventions at ``CHOSEN_NEC`` and
    with its own head, code collisions, and with ``random`` the random-concept baselines
    (``random_baselines``); without ``details``, the curve of heads cut from the trained
    head alone as well."""
    x_train, y_train, x_test, y_test, _ = data(config)
    model = build_model(config.model, num_classes=len(params["head"]["bias"]))
    variables = {"params": params, "batch_stats": batch_stats}
    if config.model.name != "icbm":
        h_train = backbone_features(model, variables, x_train)
        h_test = backbone_features(model, variables, x_test)
        head = params["head"]
        kernel, bias = np.asarray(head["kernel"]), np.asarray(head["bias"])
        return _curves(h_train, y_train, h_test, y_test, kernel, bias, False, necs, not details)[1]
    z_train = interpret.concept_activations(model, variables, x_train).hard
    z_test = interpret.concept_activations(model, variables, x_test).hard
    kernel, bias = interpret.head_weights(variables, model)
    nonneg = bool(config.model.get("nonneg_head", False))
    heads, curves = _curves(
        z_train, y_train, z_test, y_test, kernel, bias, nonneg, necs, not details
    )
    if not details:
        return curves
    chosen = heads[CHOSEN_NEC].head
    used = np.flatnonzero(chosen.mask.any(axis=1))
    record = {
        **curves,
        "explanation": {
            "own_head": explanation_at(interpret.SparseHead(kernel, bias, kernel != 0), z_test),
            f"nec{CHOSEN_NEC}": explanation_at(chosen, z_test),
        },
        "interventions": {
            "own_head": interventions(z_train, y_train, z_test, y_test, kernel, bias, config.seed),
            f"nec{CHOSEN_NEC}": interventions(
                z_train, y_train, z_test, y_test, chosen.kernel, chosen.bias, config.seed
            ),
        },
        "collisions": {
            "all": _collisions(z_test, y_test),
            f"nec{CHOSEN_NEC}": _collisions(z_test, y_test, used),
        },
    }
    if random:
        h_train = backbone_features(model, variables, x_train)
        h_test = backbone_features(model, variables, x_test)
        record.update(
            random_baselines(
                h_train, h_test, y_train, y_test, z_train.mean(0), len(bias), nonneg, config.seed
            )
        )
    return record


def random_baselines(
    h_train, h_test, y_train, y_test, rates, classes: int, nonneg: bool, seed: int
) -> dict:
    """The random-concept baseline: a frozen random projection of the ICBM's backbone
    features (``h_train``, ``h_test``) to K concepts at the ICBM's on-rates (``rates``), its
    head fitted dense from zero (Adam, the same refit choice) and then cut and chosen as the
    ICBM's. ``{"random": …}`` with the ICBM's head constraint (non-negative where
    ``nonneg``), and for a non-negative ICBM ``"random_signed"`` too: the same code with a
    signed head, a stronger baseline."""
    code = random_concepts(h_train, rates, seed=seed)
    r_train, r_test = code(h_train), code(h_test)
    zeros = np.zeros((len(rates), classes), np.float32)
    dense = sparse_heads(
        r_train, y_train, zeros, zeros[0], nonneg=False, necs=(None,), lambdas=(0.0,)
    )[None].head
    out = {}
    for key, signed in (("random", not nonneg), ("random_signed", True))[: 1 + nonneg]:
        start = dense.kernel if signed else np.maximum(dense.kernel, 0.0)
        heads = sparse_heads(r_train, y_train, start, dense.bias, nonneg=not signed)
        used = np.flatnonzero(heads[CHOSEN_NEC].head.mask.any(axis=1))
        out[key] = {
            "nec": _curve(heads, r_test, y_test),
            "on_rate": float(r_test.mean()),
            "collisions": {
                "all": _collisions(r_test, y_test),
                f"nec{CHOSEN_NEC}": _collisions(r_test, y_test, used),
            },
            "explanation": {f"nec{CHOSEN_NEC}": explanation_at(heads[CHOSEN_NEC].head, r_test)},
        }
    return out


def _mean_over_seeds(records: list[dict], get) -> dict:
    """``{(backbone, variant): (mean array, std array)}`` of ``get(record)`` over seeds."""
    groups: dict = {}
    for r in records:
        v = get(r)
        if v is not None:
            groups.setdefault((r.get("backbone"), r.get("variant")), []).append(v)
    return {
        k: (np.mean(v, 0), np.std(v, 0, ddof=1) if len(v) > 1 else np.zeros_like(v[0]))
        for k, v in groups.items()
    }


def figures(stem: str, records: list[dict]) -> None:
    """``<stem>_nec.png``: test accuracy against NEC; ``<stem>_interventions.png``: the
    mispredicted test images' accuracy against concepts intervened (own head, random order
    dashed, informed solid); one panel per backbone, mean ± std over seeds."""
    import matplotlib  # the figures only: measuring needs no plotting library

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after use("Agg")

    keys = [nec_key(n) for n in NECS]
    nec = _mean_over_seeds(
        records, lambda r: [100 * r["nec"][k]["accuracy"] for k in keys] if "nec" in r else None
    )
    backbones = sorted({b for b, _ in nec})
    if not backbones:
        return
    x = np.arange(len(keys))
    fig, axes = plt.subplots(1, len(backbones), figsize=(5 * len(backbones), 3.8), squeeze=False)
    for ax, b in zip(axes[0], backbones):
        for (bb, variant), (m, s) in sorted(nec.items(), key=lambda kv: str(kv[0][1])):
            if bb == b:
                ax.errorbar(
                    x,
                    m,
                    yerr=s,
                    marker="o",
                    capsize=3,
                    label=variant,
                    lw=2.5 if variant == "htaf" else 1.2,
                )
        ax.set(
            xticks=x,
            xticklabels=keys,
            xlabel="NEC (weights per class)",
            ylabel="test accuracy %",
            title=b,
        )
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(stem + "_nec.png", dpi=110)
    plt.close(fig)
    heads = ("own_head", f"nec{CHOSEN_NEC}")
    fig, axes = plt.subplots(
        len(heads), len(backbones), figsize=(5 * len(backbones), 7.2), squeeze=False
    )
    for row, head in enumerate(heads):
        for i, order in enumerate(("informed", "random")):
            curves = _mean_over_seeds(
                records,
                lambda r, head=head, order=order: (
                    [100 * a for a in r["interventions"][head][order]]
                    if "interventions" in r
                    else None
                ),
            )
            for ax, b in zip(axes[row], backbones):
                for j, ((bb, variant), (m, s)) in enumerate(
                    sorted(curves.items(), key=lambda kv: str(kv[0][1]))
                ):
                    if bb == b:
                        ax.plot(
                            np.arange(len(m)),
                            m,
                            f"C{j}",
                            ls="-" if i == 0 else "--",
                            label=f"{variant}, {order}",
                        )
                        ax.fill_between(np.arange(len(m)), m - s, m + s, color=f"C{j}", alpha=0.15)
        for ax, b in zip(axes[row], backbones):
            ax.set(
                xlabel="concepts intervened",
                ylabel="mispredicted now right %",
                title=f"{b}, {'own head' if row == 0 else f'NEC={CHOSEN_NEC} head'}: "
                "toward the true class's on-rates",
            )
            ax.title.set_fontsize(9)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(stem + "_interventions.png", dpi=110)
    plt.close(fig)
