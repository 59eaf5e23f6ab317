"""The ICBM's analysis on the eval split: discretisation, accuracies, interpretability
measures, class concepts, concept grids, and the plain-text summary of the main job."""

from __future__ import annotations

import os

from htaf_jax import data as data_lib
from htaf_jax import interpret
from htaf_jax.data import class_names
from htaf_jax.interpret.measures import completeness, concept_measures
from htaf_jax.models import build_model
from htaf_jax.models.config_fields import surrogate_hparams
from htaf_jax.train.restore import model_from_run

# Training images the leakage probes are fitted on: enough for a linear probe on K
# concepts, few enough that measuring stays a small part of a run.
PROBE_TRAIN_IMAGES = 10000
# Hard-concept accuracy the ICBM may lose against its standard model (pts), per backbone.
ACCURACY_MARGIN = {"cnn": 0.3}


def _splits(config):
    return data_lib.load_splits(
        config.dataset,
        config.get("data_dir"),
        train_subset=config.train_subset,
        test_subset=config.test_subset,
        validation_size=config.validation_size,
    )


def load_eval_set(config):
    """Normalised eval images (N, H, W, C), labels and the split's name, as the engine
    evaluated them (the validation split where ``config.validation_size`` > 0)."""
    splits = _splits(config)
    return splits.normalizer(splits.eval.images), splits.eval.labels, splits.eval_split


def add_completeness(measured: dict, baseline: dict | None) -> None:
    """Yeh et al.'s completeness of the hard concepts against the standard model on the
    same backbone, into ``measured["interpretability"]`` (None without a baseline)."""
    m = measured["interpretability"]
    ok = baseline is not None and baseline["accuracy"] > m["chance_accuracy"]
    m["completeness"] = (
        completeness(measured["hard_accuracy"], baseline["accuracy"], m["chance_accuracy"])
        if ok
        else None
    )


def analyse(config, params, batch_stats, workdir: str | None, grids: bool = True) -> dict:
    """Discretisation, accuracies, ``htaf_jax.interpret.measures.concept_measures`` (leakage
    probes fitted on the first ``PROBE_TRAIN_IMAGES`` training images), class concepts
    (and PNG grids) on the eval split."""
    if workdir and os.path.exists(os.path.join(workdir, "config.json")):
        model, _ = model_from_run(workdir)  # the config the run stored
    else:
        model = build_model(config.model, num_classes=len(params["head"]["bias"]))
    variables = {"params": params, "batch_stats": batch_stats}
    images, labels, split = load_eval_set(config)
    acts = interpret.concept_activations(model, variables, images, batch_size=1000)
    kernel, bias = interpret.head_weights(variables, model)
    probe = None
    if acts.soft is not None:
        splits = _splits(config)
        train = interpret.concept_activations(
            model,
            variables,
            splits.normalizer(splits.train.images[:PROBE_TRAIN_IMAGES]),
            batch_size=1000,
        )
        probe = (train.soft, train.hard, splits.train.labels[:PROBE_TRAIN_IMAGES])
    out = {
        "split": split,
        **interpret.discretisation(acts, labels, eps=(0.01, 0.1)),
        "interpretability": concept_measures(
            acts.hard, labels, kernel, bias, soft=acts.soft, probe_split=probe
        ),
    }
    names = class_names(config.dataset, config.get("data_dir"))
    out["class_concepts"] = {
        names[c]: [[k, round(w, 4)] for k, w in top]
        for c, top in enumerate(interpret.class_concepts(kernel, top=5))
    }
    if grids and workdir:
        # Rows: the concepts explanations use most, each labelled by what it detects.
        shown = images * 0.5 + 0.5 if images.min() < 0 else images
        out["grids"] = interpret.write_concept_figures(
            os.path.join(workdir, "concepts"),
            shown,
            labels,
            acts.hard,
            acts.preactivations,
            kernel,
            bias,
            names,
            config.get("grid_concepts", 10),
            config.get("grid_size", 16),
        )
    return out


def describe_model(m) -> str:
    if m.name == "standard":
        return f"standard {m.backbone} (linear head)"
    hp = "".join(f" {k}={v:g}" for k, v in sorted(surrogate_hparams(m).items()))
    extras = [f"noise std {m.concept_noise:g}"] if m.get("concept_noise", 0.0) else []
    if m.get("sharpen", 1.0) != 1.0:
        extras.append(
            f"sharpened ×{m.sharpen:g} over {m.get('sharpen_fraction', 0.75):.0%} of training"
        )
    return (
        f"ICBM {m.backbone}, K={m.num_concepts}, {m.surrogate}{hp}, {m.concept_mode} "
        "training" + "".join(f", {e}" for e in extras)
    )


def targets(config, icbm: dict, baseline: dict | None) -> list[dict]:
    """The issue's targets, each ``{name, value, target, pass, margin}`` (margin > 0: met by
    that much; value and margin None when not measured): hard accuracy − standard (pts,
    ≥ −0.5 on the MLP, −0.3 on the CNN), share within 0.01 of {0,1} (%, ≥ 99), mean on-rate
    (%, ≤ 15), purity over a random code's at the same on-rates (≥ 2×), |soft − hard|
    (pts, ≤ 0.3)."""
    mi, gap = icbm.get("interpretability") or {}, icbm.get("hard_soft_gap")
    near, rate = icbm.get("near_binary@0.01"), icbm.get("concept_rate")
    allowed = ACCURACY_MARGIN.get(config.model.get("backbone", "mlp"), 0.5)
    rows = [
        (
            "hard acc − standard (pts)",
            None if baseline is None else 100 * (icbm["hard_accuracy"] - baseline["accuracy"]),
            -allowed,
            1,
        ),
        ("within 0.01 of {0,1} (%)", None if near is None else 100 * near, 99.0, 1),
        ("mean on-rate (%)", None if rate is None else 100 * rate, 15.0, -1),
        (
            "purity / random code's",
            mi["purity"] / mi["purity_random"] if mi.get("purity_random") else None,
            2.0,
            1,
        ),
        ("|soft − hard| (pts)", None if gap is None else abs(gap), 0.3, -1),
    ]
    return [
        {
            "name": name,
            "value": v,
            "target": f"{'≥' if sign > 0 else '≤'} {t:g}",
            "pass": v is not None and sign * (v - t) >= 0,
            "margin": None if v is None else sign * (v - t),
        }
        for name, v, t, sign in rows
    ]


def summarise(config, icbm: dict, baseline: dict | None, timings: dict, workdir: str) -> str:
    """The short plain-text summary printed at the end and written to results.md."""
    num = lambda x, f: "n/a" if x is None else format(x, f)  # noqa: E731
    if not os.path.relpath(workdir).startswith(".."):  # as typed from the repository
        workdir = os.path.relpath(workdir)
    pct = lambda x: "n/a" if x is None else f"{100 * x:.2f}%"  # noqa: E731
    gap, mi = icbm["hard_soft_gap"], icbm.get("interpretability")
    lines = [
        f"# ICBM on {config.dataset} ({icbm['split']} split)",
        "",
        f"model: {describe_model(config.model)}; {config.num_epochs} epochs, "
        f"batch {config.batch_size}, seed {config.seed}",
        "",
        f"- {icbm['split']} accuracy with hard concepts: {pct(icbm['hard_accuracy'])}"
        f" (soft concepts: {pct(icbm['soft_accuracy'])}; gap soft − hard: "
        + ("n/a" if gap is None else f"{gap:+.2f} pts")
        + ")",
    ]
    if baseline is not None:
        lines.append(
            f"- standard model, same backbone and budget: {pct(baseline['accuracy'])}"
            f" (ICBM − standard: "
            f"{100 * (icbm['hard_accuracy'] - baseline['accuracy']):+.2f} pts)"
        )
    lines += [
        f"- concept activations within 0.01 of {{0,1}}: {pct(icbm['near_binary@0.01'])};"
        f" within 0.1: {pct(icbm['near_binary@0.1'])}",
        f"- concepts: {config.model.num_concepts}, mean on-rate "
        f"{icbm['concept_rate']:.3f}, never on: {icbm['dead_concepts']}, "
        f"always on: {icbm['always_on_concepts']}",
    ]
    if mi:
        lines.append(
            f"- interpretability: purity {mi['purity']:.3f} (random code, same on-rates: "
            f"{mi['purity_random']:.3f}); explanation size {mi['explanation_size']:.1f} "
            f"concepts (90% of the margin); completeness {num(mi.get('completeness'), '.3f')}; "
            f"leakage (soft − hard probe) {num(mi['leakage'] and 100 * mi['leakage'], '+.2f')}"
            + (" pts" if mi["leakage"] is not None else "")
        )
    lines.append("- targets: (margin > 0: met by that much)")
    lines += [
        f"  - {t['name']}: {num(t['value'], '.2f')} (target {t['target']}): "
        f"{'PASS' if t['pass'] else 'NO'}, margin {num(t['margin'], '+.2f')}"
        for t in targets(config, icbm, baseline)
    ]
    lines += [
        "- wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items()),
        "",
        f"outputs in {workdir}: results.md, results.json, metrics.jsonl, checkpoints/, "
        "concepts/ (overview.png, c<k>_top.png, c<k>_least.png)"
        + (", baseline/" if baseline is not None else ""),
        f"explain a test example: python -m experiments.icbm_explain --workdir {workdir} --index 0",
    ]
    return "\n".join(lines)
