"""Implicit Concept Bottleneck Models on Fashion-MNIST: train, measure, explain.

    python -m experiments.icbm --workdir workdirs/icbm             # main job (`make run`)
    python -m experiments.icbm explain --workdir workdirs/icbm --index 7 [--flip 3]
    python -m experiments.icbm compare --out results/icbm --seeds 0,1,2

Main job: trains the ICBM of ``experiments/configs/icbm.py`` (override any
field: ``--config.model.backbone=cnn``), then the same backbone with a
standard head on the same budget (``config.baseline``), then measures the
concepts on the test set and writes to the work dir: ``results.json``,
``results.md``, ``concepts/*.png`` (top/least activating test images per
concept, ``overview.png``), next to the engine's checkpoints and metrics.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
import time

import ml_collections
import numpy as np

DEFAULT_CONFIG = "experiments/configs/icbm.py"


def class_names_for(dataset: str, num_classes: int) -> list[str]:
    if dataset == "fashion_mnist":
        from htaf_jax.data.fashion_mnist_local import CLASS_NAMES
        return list(CLASS_NAMES)
    return [str(i) for i in range(num_classes)]


def baseline_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The standard model on the ICBM's backbone, data, optimiser and budget."""
    base = ml_collections.ConfigDict(config.to_dict())
    base.model = ml_collections.ConfigDict({
        "name": "standard", "backbone": config.model.backbone,
        "backbone_kwargs": config.model.get("backbone_kwargs", {}) or {}, "hidden": 0})
    return base


def load_test_set(config):
    """Normalised eval images (N, H, W, C) and labels, as the engine evaluated them."""
    from htaf_jax import data as data_lib
    splits = data_lib.load_splits(config.dataset, config.get("data_dir"),
                                  train_subset=config.train_subset,
                                  test_subset=config.test_subset,
                                  validation_size=config.validation_size)
    return splits.normalizer(splits.eval.images), splits.eval.labels, splits.eval_split


# Training images the leakage probes are fitted on: enough for a linear probe on K
# concepts, few enough that measuring stays a small part of a run.
PROBE_TRAIN_IMAGES = 10000


def load_train_sample(config, count: int):
    """The first ``count`` normalised training images (N, H, W, C) and their labels."""
    from htaf_jax import data as data_lib
    splits = data_lib.load_splits(config.dataset, config.get("data_dir"),
                                  train_subset=config.train_subset,
                                  test_subset=config.test_subset,
                                  validation_size=config.validation_size)
    return splits.normalizer(splits.train.images[:count]), splits.train.labels[:count]


def measure_concepts(config, model, variables, acts, labels) -> dict:
    """``htaf_jax.interpret.measures.concept_measures`` on the eval split; the leakage
    probes are fitted on the first ``PROBE_TRAIN_IMAGES`` training images."""
    from htaf_jax import interpret
    from htaf_jax.interpret.measures import concept_measures
    kernel, bias = interpret.head_weights(variables)
    probe = None
    if acts.soft is not None:
        images, train_labels = load_train_sample(config, PROBE_TRAIN_IMAGES)
        train = interpret.concept_activations(model, variables, images, batch_size=1000)
        probe = (train.soft, train.hard, train_labels)
    return concept_measures(acts.hard, labels, kernel, bias, soft=acts.soft, probe_split=probe)


def add_completeness(measured: dict, baseline: dict | None) -> None:
    """Yeh et al.'s completeness of the hard concepts against the standard model on the
    same backbone, into ``measured["interpretability"]`` (None without a baseline)."""
    from htaf_jax.interpret.measures import completeness
    m = measured["interpretability"]
    ok = baseline is not None and baseline["accuracy"] > m["chance_accuracy"]
    m["completeness"] = (completeness(measured["hard_accuracy"], baseline["accuracy"],
                                      m["chance_accuracy"]) if ok else None)


def analyse(config, params, batch_stats, workdir: str | None, grids: bool = True) -> dict:
    """Discretisation, accuracies, class concepts (and PNG grids) on the eval split."""
    from htaf_jax import interpret
    from htaf_jax.models import build_model
    from htaf_jax.train.restore import model_from_run
    if workdir and os.path.exists(os.path.join(workdir, "config.json")):
        model, _ = model_from_run(workdir)  # the config the run stored
    else:
        model = build_model(config.model, num_classes=len(params["head"]["bias"]))
    variables = {"params": params, "batch_stats": batch_stats}
    images, labels, split = load_test_set(config)
    acts = interpret.concept_activations(model, variables, images, batch_size=1000)
    out = {"split": split, **interpret.discretisation(acts, labels, eps=(0.01, 0.1))}
    out["interpretability"] = measure_concepts(config, model, variables, acts, labels)
    kernel, _ = interpret.head_weights(variables)
    names = class_names_for(config.dataset, kernel.shape[1])
    out["class_concepts"] = {names[c]: [[k, round(w, 4)] for k, w in top]
                             for c, top in enumerate(interpret.class_concepts(kernel, top=5))}
    if grids and workdir:
        out["grids"] = write_grids(os.path.join(workdir, "concepts"), images, labels, acts,
                                   kernel, names, config.get("grid_concepts", 10),
                                   config.get("grid_size", 16))
    return out


def write_grids(folder, images, labels, acts, kernel, names, count, size) -> list[str]:
    """Grids for the top concept of each class first, then the largest weights."""
    from htaf_jax import interpret
    chosen: list[int] = []
    reason: dict[int, str] = {}  # row title: why the concept is shown
    for c, top in enumerate(interpret.class_concepts(kernel, top=1)):
        if top[0][0] not in chosen:
            chosen.append(top[0][0])
            reason[top[0][0]] = f"top concept of {names[c]}"
    for k in np.argsort(-kernel.max(axis=1)):
        if len(chosen) >= count:
            break
        if int(k) not in chosen:
            chosen.append(int(k))
    chosen = chosen[:count]
    shown = images * 0.5 + 0.5 if images.min() < 0 else images
    paths = []
    for k in chosen:
        for least in (False, True):
            path = os.path.join(folder, f"c{k}_{'least' if least else 'top'}.png")
            interpret.save_concept_grid(path, shown, acts.preactivations, k, n=size, least=least,
                                        labels=labels, class_names=names)
            paths.append(path)
    # A class's top concept need not have its own largest weight on that class.
    titles = [f"c{k}: {reason.get(k) or 'largest weight on ' + names[int(np.argmax(kernel[k]))]}"
              for k in chosen]
    overview = os.path.join(folder, "overview.png")
    interpret.save_concept_overview(overview, shown, acts.preactivations, chosen, n=10,
                                    row_titles=titles)
    return [overview] + paths


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def describe_model(model_config) -> str:
    m = model_config
    if m.name == "standard":
        return f"standard {m.backbone} (linear head)"
    from htaf_jax.models.config_fields import surrogate_hparams
    hp = " ".join(f"{k}={v:g}" for k, v in sorted(surrogate_hparams(m).items()))
    extras = []
    if m.get("concept_noise", 0.0):
        extras.append(f"noise std {m.concept_noise:g}")
    if m.get("sharpen", 1.0) != 1.0:
        extras.append(f"sharpened ×{m.sharpen:g} over {m.get('sharpen_fraction', 0.75):.0%} "
                      "of training")
    return (f"ICBM {m.backbone}, K={m.num_concepts}, {m.surrogate}"
            f"{' ' + hp if hp else ''}, {m.concept_mode} training"
            + "".join(f", {e}" for e in extras))


def summarise(config, icbm: dict, baseline: dict | None, timings: dict, workdir: str) -> str:
    """The short plain-text summary printed at the end and written to results.md."""
    gap_std = None if baseline is None else 100 * (icbm["hard_accuracy"] - baseline["accuracy"])
    lines = [f"# ICBM on {config.dataset} ({icbm['split']} split)", "",
             f"model: {describe_model(config.model)}; {config.num_epochs} epochs, "
             f"batch {config.batch_size}, seed {config.seed}", "",
             f"- test accuracy with hard concepts: {_pct(icbm['hard_accuracy'])}"
             f" (soft concepts: {_pct(icbm['soft_accuracy'])}; gap soft − hard: "
             + ("n/a" if icbm["hard_soft_gap"] is None else f"{icbm['hard_soft_gap']:+.2f} pts")
             + ")"]
    if baseline is not None:
        lines.append(f"- standard model, same backbone and budget: {_pct(baseline['accuracy'])}"
                     f" (ICBM − standard: {gap_std:+.2f} pts)")
    lines += [f"- concept activations within 0.01 of {{0,1}}: {_pct(icbm['near_binary@0.01'])};"
              f" within 0.1: {_pct(icbm['near_binary@0.1'])}",
              f"- concepts: {config.model.num_concepts}, mean on-rate "
              f"{icbm['concept_rate']:.3f}, never on: {icbm['dead_concepts']}, "
              f"always on: {icbm['always_on_concepts']}"]
    mi = icbm.get("interpretability")
    if mi:
        num = lambda x, f: "n/a" if x is None else format(x, f)  # noqa: E731
        lines.append(
            f"- interpretability: purity {mi['purity']:.3f} (random code, same on-rates: "
            f"{mi['purity_random']:.3f}); explanation size {mi['explanation_size']:.1f} "
            f"concepts (90% of the margin); completeness {num(mi.get('completeness'), '.3f')}; "
            f"leakage (soft − hard probe) {num(mi['leakage'] and 100 * mi['leakage'], '+.2f')}"
            + (" pts" if mi["leakage"] is not None else ""))
    checks = [("hard acc within 1.0 pt of standard", gap_std is not None and gap_std >= -1.0),
              ("≥ 99% within 0.01 of {0,1}", (icbm["near_binary@0.01"] or 0) >= 0.99),
              ("hard-vs-soft gap ≤ 0.3 pts", icbm["hard_soft_gap"] is not None
               and abs(icbm["hard_soft_gap"]) <= 0.3)]
    lines.append("- targets: " + "; ".join(f"{name}: {'yes' if ok else 'NO'}"
                                           for name, ok in checks))
    lines.append("- wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items()))
    lines += ["", f"outputs in {workdir}: results.md, results.json, metrics.jsonl, checkpoints/, "
              "concepts/ (overview.png, c<k>_top.png, c<k>_least.png)"
              + (", baseline/" if baseline is not None else ""),
              f"explain a test example: python -m experiments.icbm explain --workdir {workdir} "
              "--index 0"]
    return "\n".join(lines)


def command_line(argv: list[str]) -> str:
    """The shell command that runs the main job with ``argv`` (argv[0] is the program):
    the arguments this run was given, not the parent's ``sys.argv`` (make results,
    a sweep, a notebook call ``main`` with their own)."""
    return shlex.join(["python", "-m", "experiments.icbm", *argv[1:]])


def run(config: ml_collections.ConfigDict, workdir: str, command: str | None = None) -> dict:
    """The main job; returns the results dict written to ``workdir/results.json``.

    ``command`` (what ``results.json`` records; default: from ``sys.argv``) is the
    command that reproduces this run alone. In a multi-process run every process
    trains (the steps are collective), and only process 0 measures the concepts
    and writes results.json, results.md and the figures; the others return {}.
    """
    from htaf_jax.train import train_and_evaluate
    from htaf_jax.train.distributed import is_main_process
    timings, start = {}, time.perf_counter()
    result = train_and_evaluate(config, workdir)
    timings["ICBM training"] = time.perf_counter() - start
    baseline = None
    if config.get("baseline", False):
        t = time.perf_counter()
        base = train_and_evaluate(baseline_config(config), os.path.join(workdir, "baseline"))
        baseline = {k.split("/", 1)[1]: v for k, v in base.metrics.items()}
        timings["baseline training"] = time.perf_counter() - t
    if not is_main_process():
        return {}
    t = time.perf_counter()
    measured = analyse(config, result.params, result.batch_stats, workdir)
    add_completeness(measured, baseline)
    timings["analysis"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    text = summarise(config, measured, baseline, timings, workdir)
    record = {"model": describe_model(config.model), "icbm": measured, "baseline": baseline,
              "engine_metrics": result.metrics, "seconds": timings,
              "command": command or command_line(sys.argv)}
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(record, f, indent=2)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    return record


def restore_variables(workdir: str) -> dict:
    """``{"params", "batch_stats"}`` of the latest checkpoint in ``workdir`` (host arrays)."""
    from htaf_jax.train import restore_params
    try:
        restored = restore_params(workdir)
        return {"params": restored.params, "batch_stats": restored.batch_stats}
    except TypeError:
        pass
    # restore_params reads the item metadata through a manager without item
    # handlers, which comes back None in a process that did not write the
    # checkpoint (orbax 0.12.8); naming the handlers makes it readable.
    import jax
    import orbax.checkpoint as ocp
    manager = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, "checkpoints")), item_names=("state",),
        item_handlers={"state": ocp.PyTreeCheckpointHandler()},
        options=ocp.CheckpointManagerOptions(read_only=True))
    step = manager.latest_step()
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints")
    tree = manager.item_metadata(step)["state"]
    tree = getattr(tree, "tree", tree)
    wanted = {"params": tree["params"], "batch_stats": tree.get("batch_stats", {}) or {}}
    abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype), wanted)
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(abstract, partial_restore=True)))["state"]
    manager.close()
    return jax.tree.map(np.asarray, dict(restored))


def explain(argv: list[str]) -> int:
    """``explain --workdir DIR --index N [--flip K]``: one test example in words."""
    import argparse

    import jax.numpy as jnp

    from htaf_jax import interpret
    from htaf_jax.train import load_config
    from htaf_jax.train.restore import model_from_run
    parser = argparse.ArgumentParser(prog="python -m experiments.icbm explain")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--index", type=int, default=0, help="index in the test split")
    parser.add_argument("--flip", type=int, default=None, help="also flip this concept")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.workdir)
    except FileNotFoundError as e:
        parser.error(f"{e} (train one first: python -m experiments.icbm --workdir "
                     f"{args.workdir})")
    if config.model.name != "icbm":
        parser.error(f"{args.workdir} holds a {config.model.name!r} model, not an ICBM")
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.ERROR)  # orbax's read-only notices
    variables = restore_variables(args.workdir)
    model, _ = model_from_run(args.workdir, config)
    images, labels, split = load_test_set(config)
    if not 0 <= args.index < len(labels):
        parser.error(f"--index must be in [0, {len(labels)})")
    x = jnp.asarray(images[args.index:args.index + 1])
    acts = interpret.concept_activations(model, variables, x)
    kernel, bias = interpret.head_weights(variables)
    names = class_names_for(config.dataset, kernel.shape[1])
    print(f"{split} example {args.index} — {describe_model(config.model)}")
    print(interpret.explain_text(acts.hard[0], kernel, bias, label=int(labels[args.index]),
                                 class_names=names))
    if args.flip is not None:
        out = interpret.intervene(model, variables, x, args.flip, 1.0 - acts.hard[0, args.flip])
        state = "on" if out.concepts[0, args.flip] else "off"
        change = np.asarray(out.logits_after[0] - out.logits_before[0])
        # Switching z_k changes every logit by ±V[k, c]: list the classes it moves most.
        moved = ", ".join(f"{names[c]} {change[c]:+.3f}" for c in np.argsort(-np.abs(change))[:4])
        print(f"\nintervention: c{args.flip} switched {state}: prediction "
              f"{names[out.prediction_before[0]]} → {names[out.prediction_after[0]]} "
              f"(largest logit changes: {moved})")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) > 1 and argv[1] == "explain":
        return explain(argv[2:])
    if len(argv) > 1 and argv[1] == "compare":
        from experiments import icbm_compare
        return icbm_compare.main(argv[2:])
    from htaf_jax.train import cli
    command = command_line(argv)
    return cli.main(argv, default_config=DEFAULT_CONFIG,
                    train_fn=lambda config, workdir: run(config, workdir, command))


if __name__ == "__main__":
    sys.exit(main())
