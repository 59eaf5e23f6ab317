"""What a study's run records once trained (``Study.measure``), beside the command that
trains it alone: ``MEASURES[name](config, train_result, seconds) -> dict``."""

from __future__ import annotations

import functools
import json
import os
import re
import time

import jax
import jax.numpy as jnp
import optax

from experiments import icbm_analysis, icbm_explain, icbm_nec
from experiments.configs import dhn_mlp
from htaf_jax import interpret
from htaf_jax.data import load_splits
from htaf_jax.heaviside import backward_gain, linear_count
from htaf_jax.models import build_model
from htaf_jax.models.bnn import BinaryMLP
from htaf_jax.models.dhn import HeavisideMLP
from htaf_jax.models.snn import SpikingMLP
from htaf_jax.train import load_config
from htaf_jax.train import step as step_lib
from htaf_jax.train.config import prepare_config
from htaf_jax.train.restore import model_from_run

# Images of the fixed batch the per-layer gradient norms are taken on.
GRAD_BATCH = 1024
# A unit's input is "dead" where its backward is below DEAD_BELOW × its peak slope (the
# gradient has effectively vanished there); shares taken on DEAD_BATCH eval-split images.
DEAD_BELOW = 1e-3
DEAD_BATCH = 512


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
def _splits(dataset, data_dir, train_subset, test_subset, validation_size):
    return load_splits(
        dataset,
        data_dir,
        train_subset=train_subset,
        test_subset=test_subset,
        validation_size=validation_size,
    )


def _grad_batch(config):
    """The first ``GRAD_BATCH`` training images (normalised), their labels, the classes."""
    splits = _splits(*(config.get(k) for k in _SPLIT_FIELDS))
    images = splits.normalizer(splits.train.images[:GRAD_BATCH])
    return images, splits.train.labels[:GRAD_BATCH].astype("int32"), splits.num_classes


_SPLIT_FIELDS = ("dataset", "data_dir", "train_subset", "test_subset", "validation_size")


def layer_grad_norms(config, params=None, batch_stats=None) -> list[float]:
    """‖∂L/∂(layer l's parameters)‖₂ for each hidden layer ``layer{l}``; L: mean
    cross-entropy of a train-mode forward on the first ``GRAD_BATCH`` training images.
    ``params=None``: the engine's init for ``config.seed`` (htaf_jax.train.loop's key split)."""

    config = prepare_config(config)
    images, labels, num_classes = _grad_batch(config)
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
    # DHNs name their hidden layers layer{l}; the spiking and binary MLPs dense{l}
    layers = sorted(
        (k for k in grads if re.fullmatch(r"(layer|dense)\d+", k)),
        key=lambda k: int(re.sub(r"\D", "", k)),
    )
    return [float(optax.tree.norm(grads[k])) for k in layers]


def grad_norms(config, result, seconds: float) -> dict:
    """``accuracy`` and each hidden layer's gradient norm at initialisation and at the end."""
    return {
        **accuracy(config, result, seconds),
        "grad_norms_init": layer_grad_norms(config),
        "grad_norms_end": layer_grad_norms(config, result.params, result.batch_stats),
    }


def unit_inputs(model, variables, images) -> list[jax.Array]:
    """The inputs of the model's binary units on ``images`` in evaluation mode, one array
    per layer, read from the module outputs Flax captures (``capture_intermediates``): the
    BatchNorm each unit reads (deep Heaviside MLP: its Heaviside units, not the linear
    ones; binary MLP: the hidden layers' signs) or each LIF layer's V − θ over all steps,
    from its spikes S and membrane U (htaf_jax.spiking: subtract reset, U = V − S·θ; with
    ``reset_delay`` U is V)."""
    _, state = model.apply(
        variables,
        images,
        train=False,
        rngs={"sample": jax.random.key(1)},
        capture_intermediates=True,
        mutable=["intermediates"],
    )
    captured = state["intermediates"]
    out = lambda *path: functools.reduce(dict.__getitem__, path, captured)["__call__"][0]  # noqa: E731
    if isinstance(model, HeavisideMLP) and model.use_batchnorm:
        n = linear_count(model.width, model._linear_fraction)
        return [out(f"layer{i}", "bn")[..., n:] for i in range(model.depth)]
    if isinstance(model, BinaryMLP):
        return [out(f"bn{i}") for i in range(len(model.hidden))]
    if (
        isinstance(model, SpikingMLP)
        and not model.learn_threshold
        and not model.fire_first
        and (model.reset == "subtract" or model.reset_delay)
    ):
        lifs = sorted((k for k in captured if re.fullmatch(r"lif\d+", k)), key=lambda k: int(k[3:]))
        theta = model.threshold
        return [
            u - theta if model.reset_delay else u + s * theta - theta
            for s, u in (out(k) for k in lifs)
        ]
    raise ValueError(
        f"unit_inputs: no capture of the unit inputs of {type(model).__name__} with these "
        "fields (the deep Heaviside MLP with BatchNorm, the binary MLP, the spiking MLP "
        "without a learned threshold, with a subtract reset or a delayed one)"
    )


def dead(unit, x) -> jax.Array:
    """Where ``unit``'s backward at ``x`` is below ``DEAD_BELOW`` × its peak slope."""
    return unit.grad(x) < DEAD_BELOW * unit.peak_slope


def dead_shares(config, params, batch_stats=None) -> dict:
    """The share of the binary units' inputs (``unit_inputs``, on the first ``DEAD_BATCH``
    eval-split images) where the unit's backward is below ``DEAD_BELOW`` × its peak slope:
    ``dead_share`` over every unit input, ``dead_share_layers`` per layer."""
    config = prepare_config(config)
    splits = _splits(*(config.get(k) for k in _SPLIT_FIELDS))
    images = splits.normalizer(splits.eval.images[:DEAD_BATCH])
    model = build_model(config.model, num_classes=splits.num_classes)
    unit = model.surrogate
    variables = {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})}

    def counts(variables, images):
        xs = unit_inputs(model, variables, images)
        return [jnp.sum(dead(unit, x)) for x in xs]

    sizes = [
        x.size for x in jax.eval_shape(lambda v, i: unit_inputs(model, v, i), variables, images)
    ]
    n_dead = [int(d) for d in jax.jit(counts)(variables, images)]
    return {
        "dead_share": sum(n_dead) / sum(sizes),
        "dead_share_layers": [d / n for d, n in zip(n_dead, sizes)],
        "dead_below": DEAD_BELOW,
    }


def dead_share(config, result, seconds: float) -> dict:
    """``accuracy``, each hidden layer's gradient norm at initialisation (``grad_norms``'s
    ``grad_norms_init``) and the trained network's ``dead_shares``."""
    return {
        **accuracy(config, result, seconds),
        "grad_norms_init": layer_grad_norms(config),
        **dead_shares(config, result.params, result.batch_stats),
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
    # The random code is a row beside the HTAF ICBM's (random_concept_rows): only its runs
    # pay for it.
    random = config.model.get("surrogate") == "htaf"
    record = {
        **concepts(config, result, seconds),
        **icbm_nec.measure(config, result.params, result.batch_stats, random=random),
    }
    record["nec_seconds"] = time.perf_counter() - start
    return record


def nec_choice(config, result, seconds: float) -> dict:
    """``concepts`` and the eval-split accuracy at NEC = 5 and with the dense head refitted
    (no explanations, interventions or random code): a choosing study's measure."""
    return {
        **concepts(config, result, seconds),
        **icbm_nec.measure(
            config,
            result.params,
            result.batch_stats,
            necs=(icbm_nec.CHOSEN_NEC, None),
            details=False,
        ),
    }


def nec5_or_dense(record: dict) -> float | None:
    """The accuracy at NEC = 5, or the standard model's own (dense head): the issue's
    comparison (VLG-CBM tables the standard model dense)."""
    nec = record.get("nec") or {}
    key = "all" if record.get("variant") == "standard" else "5"
    return (nec.get(key) or {}).get("accuracy")


def nec_finding(rows: list[dict]) -> list[str]:
    """Per backbone, issue 35's target: the HTAF ICBM at NEC = 5 within 1.0 pt of the
    standard model (dense) and ≥ 5 pts above the random code at NEC = 5 (seed means); and
    the best other row at NEC = 5 (the standard model's head cut to NEC = 5 too)."""
    out = []
    for backbone in sorted({r.get("backbone") for r in rows if r.get("backbone")}):
        same = [r for r in rows if r.get("backbone") == backbone]
        by = {r["variant"]: r.get("nec5_or_dense", {}).get("mean") for r in same}
        at5 = {
            r["variant"]: (r.get("nec.5.accuracy") or {}).get("mean")
            for r in same
            if r["variant"] not in ("htaf", *RANDOM_NOTES)
        }
        at5 = {k: v for k, v in at5.items() if v is not None}
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
        if by.get("random_signed") is not None:
            parts.append(
                f"with a signed head {by['random_signed']:.2f} % "
                f"(HTAF {htaf - by['random_signed']:+.2f} pts)"
            )
        if at5:
            best = max(at5, key=at5.__getitem__)
            parts.append(f"best other at NEC=5: {best} {at5[best]:.2f} %")
        out.append("; ".join(parts) + ".")
    return out


RANDOM_NOTES = {
    "random": "a random projection of this HTAF run's backbone features, each concept at its "
    "concept's on-rate; its head as the ICBM's (non-negative)",
    "random_signed": "the same random code, its head signed",
}


def random_concept_rows(record: dict) -> list[tuple[str, dict, dict]]:
    """The random-concept baselines an HTAF ICBM run's ``nec`` record holds, as rows of their
    own: ``(label, coords, record)`` with variant "random" (the ICBM's head constraint) and
    "random_signed" (``Study.derived``)."""
    if record["coords"].get("variant") != "htaf":
        return []  # one random code per HTAF run: its K, its on-rates
    return [
        (
            record["label"].replace("htaf", key),
            {**record["coords"], "variant": key},
            {**record[key], "split": record.get("split"), "seconds": None, "note": note},
        )
        for key, note in RANDOM_NOTES.items()
        if key in record
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
    and the default's (experiments/configs/dhn_mlp.py's): does r ≈ 1 (gradients neither grow
    nor shrink through depth at initialisation) predict the best shape?"""
    htaf = dhn_mlp.get_config().model.surrogate_kwargs.htaf
    default_shape = (float(htaf.alpha), float(htaf.beta))
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
        default = next((r for r in rs if (r["alpha"], r["beta"]) == default_shape), None)
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


MEASURES = {
    "accuracy": accuracy,
    "grad_norms": grad_norms,
    "dead_share": dead_share,
    "concepts": concepts,
    "nec": nec,
    "nec_choice": nec_choice,
}
