"""What a study's run records once trained (``Study.measure``), beside the command that
trains it alone: ``MEASURES[name](config, train_result, seconds) -> dict``."""

from __future__ import annotations

import functools
import json
import os
import time

import jax
import optax

from experiments import icbm_analysis, icbm_explain, icbm_nec
from htaf_jax import interpret
from htaf_jax.data import load_splits
from htaf_jax.heaviside import backward_gain
from htaf_jax.models import build_model
from htaf_jax.train import load_config
from htaf_jax.train import step as step_lib
from htaf_jax.train.config import prepare_config
from htaf_jax.train.restore import model_from_run

# Images of the fixed batch the per-layer gradient norms are taken on.
GRAD_BATCH = 1024


def accuracy(config, result, seconds: float) -> dict:
    """The final eval metrics (``test/…`` or ``validation/…``) and the training seconds."""
    split = next(iter(result.metrics)).split("/")[0]
    return {
        "split": split,
        "accuracy": result.metrics[f"{split}/accuracy"],
        "seconds": seconds,
        "metrics": dict(result.metrics),
    }


@functools.lru_cache(maxsize=2)
def _grad_batch(dataset, data_dir, train_subset, validation_size):
    splits = load_splits(
        dataset, data_dir, train_subset=train_subset, validation_size=validation_size
    )
    images = splits.normalizer(splits.train.images[:GRAD_BATCH])
    return images, splits.train.labels[:GRAD_BATCH].astype("int32"), splits.num_classes


def layer_grad_norms(config, params=None, batch_stats=None) -> list[float]:
    """‖∂L/∂(layer l's parameters)‖₂ for each hidden layer ``layer{l}``; L: mean
    cross-entropy of a train-mode forward on the first ``GRAD_BATCH`` training images.
    ``params=None``: the engine's init for ``config.seed`` (htaf_jax.train.loop's key split)."""

    config = prepare_config(config)
    images, labels, num_classes = _grad_batch(
        config.dataset, config.get("data_dir"), config.train_subset, config.validation_size
    )
    model = build_model(config.model, num_classes=num_classes)
    if params is None:
        init_rng = jax.random.split(jax.random.key(config.seed), 3)[0]
        state = step_lib.init_state(model, optax.identity(), init_rng, images.shape[1:])
        params, batch_stats = state.params, state.batch_stats
    rngs = {"dropout": jax.random.key(0), "sample": jax.random.key(1)}

    def loss(p):
        variables = {"params": p, "batch_stats": batch_stats} if batch_stats else {"params": p}
        logits, _ = model.apply(
            variables, images, train=True, rngs=rngs, mutable=["batch_stats", "intermediates"]
        )
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    grads = jax.jit(jax.grad(loss))(params)  # one program, not op by op
    layers = sorted((k for k in grads if k.startswith("layer")), key=lambda k: int(k[5:]))
    return [float(optax.tree.norm(grads[k])) for k in layers]


def grad_norms(config, result, seconds: float) -> dict:
    """``accuracy`` and each hidden layer's gradient norm at initialisation and at the end."""
    return {
        **accuracy(config, result, seconds),
        "grad_norms_init": layer_grad_norms(config),
        "grad_norms_end": layer_grad_norms(config, result.params, result.batch_stats),
    }


def concepts(config, result, seconds: float) -> dict:
    """A concept model's hard-concept accuracy and concept measures on the eval split
    (experiments.icbm_analysis); the standard model: its accuracy."""
    split = next(iter(result.metrics)).split("/")[0]
    record = {
        "model": icbm_analysis.describe_model(config.model),
        "seconds": seconds,
        "split": split,
        "hard_accuracy": result.metrics[f"{split}/accuracy"],
    }
    if config.model.name == "icbm":
        record.update(
            icbm_analysis.analyse(config, result.params, result.batch_stats, None, grids=False)
        )
        record.pop("class_concepts")
    return record


def nec(config, result, seconds: float) -> dict:
    """``concepts`` and the run's accuracy against NEC, explanations, interventions and code
    collisions (experiments.icbm_nec; the random-concept baseline inside an ICBM's record)."""

    start = time.perf_counter()
    record = {
        **concepts(config, result, seconds),
        **icbm_nec.measure(config, result.params, result.batch_stats),
    }
    record["nec_seconds"] = time.perf_counter() - start
    return record


def nec5_or_dense(record: dict) -> float | None:
    """The accuracy at NEC = 5, or the standard model's own (dense head): the issue's
    comparison (VLG-CBM tables the standard model dense)."""
    nec = record.get("nec") or {}
    key = "all" if record.get("variant") == "standard" else "5"
    return (nec.get(key) or {}).get("accuracy")


def nec_finding(rows: list[dict]) -> list[str]:
    """Per backbone, issue 35's target: the HTAF ICBM at NEC = 5 within 1.0 pt of the
    standard model (dense) and ≥ 5 pts above the random code at NEC = 5 (seed means)."""
    out = []
    for backbone in sorted({r.get("backbone") for r in rows if r.get("backbone")}):
        by = {
            r["variant"]: r.get("nec5_or_dense", {}).get("mean")
            for r in rows
            if r.get("backbone") == backbone
        }
        htaf, standard, rand = by.get("htaf"), by.get("standard"), by.get("random")
        if htaf is None:
            continue
        parts = [f"- {backbone}: HTAF at NEC=5 {htaf:.2f} %"]
        if standard is not None:
            parts.append(
                f"standard (dense) {standard:.2f} %: Δ {htaf - standard:+.2f} pts "
                f"(target ≥ −1.0: {'met' if htaf - standard >= -1.0 else 'not met'})"
            )
        if rand is not None:
            parts.append(
                f"random code at NEC=5 {rand:.2f} %: HTAF {htaf - rand:+.2f} pts "
                f"(target ≥ +5: {'met' if htaf - rand >= 5.0 else 'not met'})"
            )
        out.append("; ".join(parts) + ".")
    return out


def random_concept_rows(record: dict) -> list[tuple[str, dict, dict]]:
    """The random-concept baseline an HTAF ICBM run's ``nec`` record holds, as a row of its
    own: ``(label, coords, record)`` with variant "random" (``Study.derived``). The other
    concept layers' records hold one too (at their on-rates); the table shows the HTAF's."""
    if "random" not in record or record["coords"].get("variant") != "htaf":
        return []  # one random code per HTAF run: its K, its on-rates
    label = record["label"].replace(record["coords"]["variant"], "random")
    return [
        (
            label,
            {**record["coords"], "variant": "random"},
            {
                **record["random"],
                "split": record.get("split"),
                "seconds": None,
                "note": "a random projection of this HTAF run's backbone features, each "
                "concept at its concept's on-rate",
            },
        )
    ]


def stability(workdir: str, first: str) -> dict:
    """Concept stability of the ICBM run in ``workdir`` against the same point's first
    seed in ``first`` (htaf_jax.interpret.measures.stability on the eval split's hard
    concepts, Hungarian-matched): ``{"agreement", "chance"}``, cached in ``workdir``."""
    cache = os.path.join(workdir, "stability.json")
    if os.path.exists(cache):
        with open(cache) as f:
            return json.load(f)
    images, _, _ = icbm_analysis.load_eval_set(load_config(workdir))
    codes = [
        interpret.concept_activations(
            model_from_run(d)[0], icbm_explain.restore_variables(d), images, batch_size=1000
        ).hard
        for d in (first, workdir)
    ]
    found = interpret.measures.stability(*codes)
    out = {"agreement": found.mean_agreement, "chance": found.chance}
    with open(cache, "w") as f:
        json.dump(out, f)
    return out


def gain_theory(record: dict) -> float:
    """r of htaf_jax.heaviside.backward_gain for the run's HTAF α, β."""
    return backward_gain("htaf", alpha=record["coords"]["alpha"], beta=record["coords"]["beta"])


def _measured_gain(norms) -> float | None:
    """(‖g_1‖ / ‖g_L−1‖)^(1/(L−2)): the measured per-layer gain (layer 0 reads the input)."""
    return (norms[1] / norms[-1]) ** (1 / (len(norms) - 2)) if norms and len(norms) > 2 else None


def gain_init(record: dict) -> float | None:
    return _measured_gain(record.get("grad_norms_init"))


def gain_end(record: dict) -> float | None:
    return _measured_gain(record.get("grad_norms_end"))


def gain_finding(rows: list[dict]) -> list[str]:
    """Per depth: mean accuracy of the (α, β) rows by their theoretical gain r, the best row
    and the default's (α = 4, β = 1): does r ≈ 1 (gradients neither grow nor shrink through
    depth at initialisation) predict the best shape?"""
    bins, out = (
        (
            (0, 0.3, "r < 0.3"),
            (0.3, 0.9, "0.3 ≤ r < 0.9"),
            (0.9, 1.1, "0.9 ≤ r < 1.1"),
            (1.1, 1e9, "r ≥ 1.1"),
        ),
        [],
    )
    for depth in sorted({r["depth"] for r in rows}):
        rs = [r for r in rows if r["depth"] == depth and r["accuracy"]["mean"] is not None]
        acc = lambda r: r["accuracy"]["mean"]  # noqa: E731
        by = [
            f"{name}: {sum(map(acc, b)) / len(b):.2f} % ({len(b)} rows)"
            for lo, hi, name in bins
            if (b := [r for r in rs if lo <= r["gain_theory"]["mean"] < hi])
        ]
        best = max(rs, key=acc)
        default = next((r for r in rs if (r["alpha"], r["beta"]) == (4.0, 1.0)), None)
        shape = lambda r: (
            f"α={r['alpha']:g}, β={r['beta']:g} (r {r['gain_theory']['mean']:.2f})"  # noqa
            f": {r['accuracy']['text']} %"
        )
        out.append(
            f"- depth {depth}: mean acc by r theory: {'; '.join(by)}. Best {shape(best)}"
            + (f"; default {shape(default)}" if default else "")
            + "."
        )
    return out


MEASURES = {"accuracy": accuracy, "grad_norms": grad_norms, "concepts": concepts, "nec": nec}
