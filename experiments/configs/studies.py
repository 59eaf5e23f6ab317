"""Every study, as data (the shape of a study: experiments/study.py). ``python -m
experiments.run --list`` lists them. A study that chooses something reads the validation
split (held out of the training images); a final run reads the test split.
"""

from __future__ import annotations

import importlib

from experiments import icbm_nec, sharpness
from experiments.configs import icbm
from experiments.measures import (
    gain_end,
    gain_finding,
    gain_init,
    gain_theory,
    nec5_or_dense,
    nec_finding,
    random_concept_rows,
)
from experiments.study import Column, Point, Study, axis, grid
from htaf_jax.concepts import offset_for_on_rate
from htaf_jax.units import peak_slope_hparams

PROFILES = {
    "full": {"overrides": {}, "validation_size": 10000},
    "quick": {
        "overrides": {
            "train_subset": 6000,
            "num_epochs": 2,
            "test_subset": 2000,
            "progress": False,
        },
        "validation_size": 2000,
    },
}
QUICK_BUDGET = {k: v for k, v in PROFILES["quick"]["overrides"].items() if k != "progress"}

# The units the surrogate studies compare, by the names their stored runs were keyed with
# (tests/data/planned_runs.json): "ste_hardtanh" is now called "ste_sign" (the same unit,
# htaf_jax.units resolves the old name). Larq's other quantizers are not in these studies.
ALL_UNITS = [
    "htaf",
    "approx_sign",
    "atan",
    "erf",
    "fast_sigmoid",
    "piecewise_exp",
    "rectangle",
    "sigmoid",
    "ste_hardtanh",
    "straight_through",
    "triangle",
]
# Compared at every depth of the DHN variants rather than all units, to keep the cost down:
# HTAF, the peers' default (atan), a sharp surrogate and straight-through.
DHN_VARIANT_UNITS = ["htaf", "atan", "fast_sigmoid", "straight_through"]
DEPTHS = [2, 4, 8, 16]
# ‖g_l‖: hidden layer l's gradient norm on a fixed batch (experiments.measures); layer 0 is
# the farthest from the loss.
GRAD_COLUMNS = (
    Column("acc %", "accuracy", 100),
    *(
        Column(f"‖g_{name}‖ {when}", f"grad_norms_{when}[{i}]", fmt=".2e")
        for when in ("init", "end")
        for name, i in (("0", 0), ("L−1", -1))
    ),
    Column("train s", "seconds", fmt=".0f"),
)
GAIN_COLUMNS = (
    GRAD_COLUMNS[0],
    Column("r theory", gain_theory, fmt=".3f"),
    Column("r init", gain_init, fmt=".3f"),
    Column("r end", gain_end, fmt=".3f"),
    *GRAD_COLUMNS[1:],
)


SHARPNESS_COLUMNS = (
    Column("acc %", "accuracy", 100),
    Column("dead %", "dead_share", 100),  # unit inputs whose backward < 1e-3 × the peak
    Column("‖g_0‖ init", "grad_norms_init[0]", fmt=".2e"),
    Column("train s", "seconds", fmt=".0f"),
)
# Issue 37: every smooth-backward unit at matched peak slope k (experiments.sharpness),
# one study per model: the spiking MLP, the binary MLP, the plain deep Heaviside MLP at depth 8.
SHARPNESS_MODELS = {
    "snn": ("snn_mlp", "spiking MLP", {}),
    "bnn": ("bnn_mlp", "binary MLP", {}),
    "dhn": ("dhn_mlp", "plain deep Heaviside MLP, depth 8", {"model.depth": 8}),
}


def units(names) -> list[Point]:
    return axis("surrogate", names, "model.surrogate")


def htaf_shape(alphas, betas) -> tuple:
    return grid(
        axis("alpha", [float(a) for a in alphas], "model.surrogate_kwargs.htaf.alpha", "a{:g}"),
        axis("beta", [float(b) for b in betas], "model.surrogate_kwargs.htaf.beta", "b{:g}"),
    )


def htaf_pairs(pairs) -> tuple:
    """htaf_shape's points for the given (α, β) pairs only (not their grid)."""
    return tuple(htaf_shape([a], [b])[0] for a, b in pairs)


def standard_head(config) -> dict:
    """The standard model (linear head) on the ICBM's backbone: the ICBM's comparison."""
    return {
        "name": "standard",
        "backbone": config.model.backbone,
        "backbone_kwargs": config.model.get("backbone_kwargs", {}) or {},
        "hidden": 0,
    }


BACKBONES = [
    Point("mlp", {"backbone": "mlp"}, {}),  # the config's, with its widths
    Point("cnn", {"backbone": "cnn"}, {"model.backbone": "cnn", "model.backbone_kwargs": {}}),
]
CONCEPT_LAYERS = [  # only the binary unit changes; noise, sharpening, budget: the config's
    Point("htaf", {"variant": "htaf"}, {"model.concept_mode": "smooth"}),
    Point("htaf_hard", {"variant": "htaf_hard"}, {"model.concept_mode": "hard"}),
    Point(
        "sigmoid",
        {"variant": "sigmoid"},
        {
            "model.surrogate": "sigmoid",
            "model.surrogate_kwargs": {},
            "model.concept_mode": "smooth",
        },
    ),
    Point(
        "straight_through",
        {"variant": "straight_through"},
        {
            "model.surrogate": "straight_through",
            "model.surrogate_kwargs": {},
            "model.concept_mode": "hard",
        },
    ),
]
STANDARD = Point(
    "standard", {"variant": "standard", "num_concepts": None}, {"model": standard_head}
)
ICBM_COLUMNS = (
    Column("hard acc %", "hard_accuracy", 100),
    Column("Δ vs standard (pts)", "hard_accuracy", 100, vs=STANDARD),
    Column("soft − hard (pts)", "hard_soft_gap"),
    Column("on-rate", "concept_rate", fmt=".3f"),
    Column("purity", "interpretability.purity", fmt=".3f"),
    Column("within 0.01 %", "near_binary@0.01", 100),
    Column("within 0.1 %", "near_binary@0.1", 100),
    Column("train s", "seconds", fmt=".0f"),
)
SPARSE_COLUMNS = (
    *ICBM_COLUMNS[:5],
    Column("purity random", "interpretability.purity_random", fmt=".3f"),
    Column("expl. size", "interpretability.explanation_size", fmt=".1f"),
    Column("stability", "stability.agreement", fmt=".3f"),
    Column("stab. chance", "stability.chance", fmt=".3f"),
    Column("leakage (pts)", "interpretability.leakage", 100),
    Column("never on", "dead_concepts", fmt=".0f"),
    *ICBM_COLUMNS[5:6],
    ICBM_COLUMNS[-1],
)


# Accuracy against the number of effective concepts per class (experiments.icbm_nec).
NEC_KEYS = ("1", "2", "3", "5", "10", "20", "all")
NEC_COLUMNS = (
    Column("acc % at NEC=5 (standard: dense)", nec5_or_dense, 100),
    Column("Δ vs standard dense (pts)", nec5_or_dense, 100, vs=STANDARD),
    *(Column(f"NEC={k}", f"nec.{k}.accuracy", 100) for k in NEC_KEYS),
    Column("train s", "seconds", fmt=".0f"),
)
# The head's training penalty μ·mean|V| (ICBM.head_l1) icbm_nec_head_l1 chooses from, on
# validation, by the HTAF ICBM's accuracy at NEC = 5: a head learnt sparse, not only cut.
NEC_HEAD_L1S = (0.0, 0.3, 3.0, 30.0, 100.0, 300.0, 1000.0)


def head_l1_finding(rows: list[dict]) -> list[str]:
    """icbm_nec_head_l1's choice: the row with the best NEC = 5 mean, beside HTAF at μ = 0."""
    acc = lambda r: (r.get("nec5_or_dense") or {}).get("mean")  # noqa: E731
    rs = [r for r in rows if r.get("head_l1") is not None and acc(r) is not None]
    if not rs:
        return []
    best = max(rs, key=acc)
    off = next((r for r in rs if r["head_l1"] == 0 and r["variant"] == "htaf"), None)
    return [
        f"- best at NEC=5: {best['variant']}, head_l1={best['head_l1']:g}, "
        f"{best['nec5_or_dense']['text']} % (dense refit {best['nec.all.accuracy']['text']} %)"
        + (f"; without the penalty {off['nec5_or_dense']['text']} %" if off else "")
        + "."
    ]


def mask_finding(rows: list[dict]) -> list[str]:
    """icbm_nec_mask's comparison: each row's NEC = 5 mean (%) with the L1 path on offer,
    beside its mean cut from the trained head alone."""
    mean = lambda r, k: (r.get(k) or {}).get("mean")  # noqa: E731
    return [
        f"- {r['variant']}: {mean(r, 'nec.5.accuracy'):.2f} % with the L1 path on offer, "
        f"{mean(r, 'nec_cut.5.accuracy'):.2f} % cut from the trained head "
        f"({mean(r, 'nec.5.accuracy') - mean(r, 'nec_cut.5.accuracy'):+.2f} pts)."
        for r in rows
        if mean(r, "nec.5.accuracy") is not None and mean(r, "nec_cut.5.accuracy") is not None
    ]


_N = "nec5"  # the chosen NEC's records (icbm_nec.CHOSEN_NEC)
NEC_MORE = (
    (
        "Explanations at NEC=5 and with the ICBM's own head (test split; size: concepts "
        "that keep 90% of the margin; coverage: the margin share the 5 largest terms keep)",
        (
            Column("median size NEC=5", f"explanation.{_N}.median_size", fmt=".1f"),
            Column("coverage by 5, NEC=5 %", f"explanation.{_N}.median_coverage", 100),
            Column("size ≤ 5, NEC=5 %", f"explanation.{_N}.share_small", 100),
            Column("median size own", "explanation.own_head.median_size", fmt=".1f"),
            Column("coverage by 5, own %", "explanation.own_head.median_coverage", 100),
            Column("size ≤ 5, own %", "explanation.own_head.share_small", 100),
        ),
    ),
    (
        "Interventions: mispredicted test images right (%) after n concepts set toward the "
        "true class's on-rates (training split), own head",
        (
            Column("mispredicted", "interventions.own_head.mispredicted", fmt=".0f"),
            *(
                Column(f"{o} n={n}", f"interventions.own_head.{o}[{n}]", 100)
                for o in ("informed", "random")
                for n in (1, 3, 5, 10, 20)
            ),
        ),
    ),
    (
        "Interventions with the NEC=5 head",
        (
            Column("mispredicted", f"interventions.{_N}.mispredicted", fmt=".0f"),
            *(
                Column(f"{o} n={n}", f"interventions.{_N}.{o}[{n}]", 100)
                for o in ("informed", "random")
                for n in (1, 3, 5, 10, 20)
            ),
        ),
    ),
    (
        "Code collisions (test split) and stability across seeds",
        (
            Column("distinct codes", "collisions.all.distinct_codes", fmt=".0f"),
            Column("codes shared by >1 label %", "collisions.all.shared_codes", 100),
            Column("images in them %", "collisions.all.images_in_shared", 100),
            Column("ceiling %", "collisions.all.ceiling", 100),
            Column("concepts at NEC=5", f"collisions.{_N}.concepts", fmt=".0f"),
            Column("shared, NEC=5 concepts %", f"collisions.{_N}.shared_codes", 100),
            Column("ceiling, NEC=5 concepts %", f"collisions.{_N}.ceiling", 100),
            Column("stability", "stability.agreement", fmt=".3f"),
            Column("stab. chance", "stability.chance", fmt=".3f"),
            Column("on-rate", "concept_rate", fmt=".3f"),
            Column("purity", "interpretability.purity", fmt=".3f"),
        ),
    ),
    (
        "Refit choices (validation: the last sixth of the training images): validation "
        "accuracy %, the chosen Adam rate (0: the cut head as is) and the chosen L1 path's λ "
        "(0: the weights cut from the trained head)",
        (
            *(Column(f"val NEC={k}", f"nec.{k}.validation_accuracy", 100) for k in NEC_KEYS),
            *(Column(f"lr NEC={k}", f"nec.{k}.learning_rate", fmt=".2f") for k in NEC_KEYS),
            *(Column(f"λ NEC={k}", f"nec.{k}.l1", fmt=".3f") for k in NEC_KEYS),
        ),
    ),
)


NEAR_BINARY = ("near_binary@0.01", 99.0)  # the ICBM job's target: ≥ 99% within 0.01 of {0,1}
ON_RATE_CAPS = [Point("dense", {"on_rate_cap": None}, {})] + [
    Point(
        f"cap{cap:g}",
        {"on_rate_cap": cap},
        {"model.norm_affine": False, "model.concept_offset": offset_for_on_rate(cap)},
    )
    for cap in (0.35, 0.25, 0.15)
]


def sparse_recipe(k: int, cap: float | None = None, extra: str = "", **more) -> Point:
    """The MLP ICBM (HTAF) with K concepts, an on-rate cap and other overrides (``more``,
    named by ``extra``; ``num_epochs`` becomes the ``epochs`` column)."""
    o = {
        "model.concept_mode": "smooth",
        "model.num_concepts": k,
        **more,
        **(
            {}
            if cap is None
            else {"model.norm_affine": False, "model.concept_offset": offset_for_on_rate(cap)}
        ),
    }
    coords = {
        "backbone": "mlp",
        "variant": "htaf",
        "num_concepts": k,
        "on_rate_cap": cap,
        **({"epochs": more["num_epochs"]} if "num_epochs" in more else {}),
        "extra": extra or None,
    }
    return Point(
        "-".join(
            x
            for x in (
                "mlp-htaf",
                f"k{k}",
                f"cap{cap:g}" if cap else "",
                extra,
                f"e{more['num_epochs']}" if "num_epochs" in more else "",
            )
            if x
        ),
        coords,
        o,
    )


# icbm_sparse.py's changes to icbm.py (the sparse recipe), for other concept layers.
SPARSE_RECIPE = {
    "model.num_concepts": 512,
    "model.norm_affine": False,
    "model.concept_offset": offset_for_on_rate(0.35),
    "model.nonneg_head": True,
}


def icbm_points(backbones, layers, concepts, extra=()) -> tuple:
    ks = axis("num_concepts", concepts, "model.num_concepts", "k{}")
    return grid(backbones, [STANDARD]) + grid(backbones, layers, ks, *extra)


def _recipe(label: str, **change) -> Point:
    """The ICBM config's recipe (MLP, HTAF) with ``change``d coordinates."""
    c = icbm.get_config()
    coords = {
        "backbone": "mlp",
        "variant": "htaf",
        "num_concepts": c.model.num_concepts,
        "concept_noise": c.model.concept_noise,
        "sharpen": c.model.sharpen,
        "epochs": c.num_epochs,
        **change,
    }
    return Point(
        label, coords, {RECIPE_PATHS[k]: v for k, v in coords.items() if k in RECIPE_PATHS}
    )


RECIPE_PATHS = {
    "num_concepts": "model.num_concepts",
    "concept_noise": "model.concept_noise",
    "sharpen": "model.sharpen",
    "epochs": "num_epochs",
}
ICBM_RECIPES = [
    _recipe("default"),
    *(_recipe(f"n{v:g}", concept_noise=v) for v in (0.0, 0.25)),
    *(_recipe(f"x{v:g}", sharpen=v) for v in (8.0, 32.0)),
    *(_recipe(f"e{v}", epochs=v) for v in (8, 12)),
    _recipe("k64", num_concepts=64),
    _recipe("k32", num_concepts=32),
    _recipe("k32-n0", num_concepts=32, concept_noise=0.0),
    _recipe("k32-n0-x32", num_concepts=32, concept_noise=0.0, sharpen=32.0),
]
PRECISIONS = [
    Point("f32", {"dtype": "float32"}, {"half_precision": False}),
    Point("bf16", {"dtype": "bfloat16"}, {"half_precision": True}),
]


def _surrogate_study(family: str, title: str) -> Study:
    return Study(family, title, family, tuple(units(ALL_UNITS)), table=f"{family}_surrogates")


# Every unit of the DHN depth studies at its own best peak slope on the validation split,
# from one grid: sharpness_dhn's (depth 8; python -m experiments.run sharpness_dhn --profile
# quick), where every unit with a slope did best at k = 0.5 but triangle (k = 2). HTAF's
# shape is dhn_mlp's (alpha_beta: α = 4, β = 0.5, also k = 0.5); piecewise_exp's default is
# k = 0.5 already; units without a slope (straight-through, approx_sign, fast_sigmoid) have
# nothing to tune.
DHN_SLOPES = {"atan": 0.5, "erf": 0.5, "rectangle": 0.5, "sigmoid": 0.5, "triangle": 2.0}


def dhn_units(names) -> list[Point]:
    """``units`` at DHN_SLOPES' peak slopes."""
    return [
        Point(
            p.label,
            p.coords,
            {
                **p.overrides,
                **(
                    {"model.surrogate_kwargs": {p.label: peak_slope_hparams(p.label, k)}}
                    if (k := DHN_SLOPES.get(p.label))
                    else {}
                ),
            },
        )
        for p in units(names)
    ]


def _depth_study(name: str, variant: str, names, title: str) -> Study:
    return Study(
        name,
        title,
        "dhn_mlp",
        grid(dhn_units(names), axis("depth", DEPTHS, "model.depth", "d{}")),
        measure="grad_norms",
        columns=GRAD_COLUMNS,
        plot="lines",
        overrides={"model.variant": variant} if variant != "plain" else {},
        table="dhn_mlp_depths",
    )


# The dense ICBM's defaults that icbm_dense_choices re-chooses: key column -> config path.
DENSE_ICBM_FIELDS = {
    "alpha": "model.surrogate_kwargs.htaf.alpha",
    "beta": "model.surrogate_kwargs.htaf.beta",
    "sharpen_fraction": "model.sharpen_fraction",
    "learning_rate": "learning_rate",
}


def one_at_a_time(config: str, fields: dict, values: dict) -> tuple:
    """The config's defaults of ``fields`` (key column -> path), then each field alone at
    each of ``values[key]`` other than its default."""
    default = {k: default_of(config, path) for k, path in fields.items()}
    return (
        Point("default", default, {}),
        *(
            Point(f"{k}{v:g}", {**default, k: v}, {fields[k]: v})
            for k, vs in values.items()
            for v in vs
            if v != default[k]
        ),
    )


# (config, default field) -> (the study that chooses it, its key column[, (column key, least
# value) a pick must reach]), or how it was chosen where no study does (RESULTS.md's table).
CHOSEN_BY = {
    ("icbm", "model.concept_noise"): ("icbm_recipe", "concept_noise", NEAR_BINARY),
    ("icbm", "model.sharpen"): ("icbm_recipe", "sharpen", NEAR_BINARY),
    ("icbm", "num_epochs"): ("icbm_recipe", "epochs", NEAR_BINARY),
    ("icbm", "model.num_concepts"): ("icbm_recipe", "num_concepts", NEAR_BINARY),
    # The dense recipe's α, β (first picked on the test split by hand), sharpening ramp and
    # Adam's rate, re-chosen on validation one at a time.
    **{
        ("icbm", path): ("icbm_dense_choices", key, NEAR_BINARY)
        for key, path in DENSE_ICBM_FIELDS.items()
    },
    ("icbm_sparse", "model.surrogate_kwargs.htaf.alpha"): (
        "icbm_alpha_beta_seeds",
        "alpha",
        NEAR_BINARY,
    ),
    ("icbm_sparse", "model.surrogate_kwargs.htaf.beta"): (
        "icbm_alpha_beta_seeds",
        "beta",
        NEAR_BINARY,
    ),
    **{
        ("icbm_sparse", path): "icbm_sparse_sweep (validation, seed 0): the smallest "
        "accuracy loss with mean on-rate ≤ 15% at 16 epochs"
        for path in ("model.num_concepts", "model.concept_offset", "model.nonneg_head")
    },
    ("snn_conv", "num_epochs"): ("snn_conv_epochs", "epochs"),
    ("bnn_resnet", "model.stage_features"): "bnn_resnet_budget (validation, seed 0): "
    "the better of 16-32-64 for 10 epochs and 32-64-128 for 4, at one budget",
    ("bnn_resnet", "model.react"): "bnn_resnet_budget (validation, seed 0): the better "
    "of 32-64-128 for 4 epochs with and without ReActNet's RSign and RPReLU",
    # HTAF's rate (the config's); the bnn_resnet comparison tunes every unit's on the same grid.
    ("bnn_resnet", "learning_rate"): ("bnn_resnet_lr", "learning_rate"),
    ("dhn_mlp", "model.surrogate_kwargs.htaf.alpha"): ("alpha_beta", "alpha"),
    ("dhn_mlp", "model.surrogate_kwargs.htaf.beta"): ("alpha_beta", "beta"),
}


def default_of(config: str, path: str):
    """The value of ``path`` in ``experiments/configs/<config>.py``'s config."""
    node = importlib.import_module(f"experiments.configs.{config}").get_config()
    for part in path.split("."):
        node = node[part]
    return node


def choice(config: str, path: str, rows: list[dict]) -> tuple:
    """(default, its row, the chosen row, the row of best mean) of a CHOSEN_BY entry over
    its study's table rows: the rows changing its key column alone (the study's other chosen
    fields of this config at their defaults); among those meeting the entry's target, the
    best by the study's first column (None: no such row). The default's row stays chosen
    when it meets the target and the best mean beats it by no more than the larger of the
    two rows' seed stds: a difference inside the seeds' spread chooses nothing."""
    name, key, *target = CHOSEN_BY[(config, path)]
    need, least = target[0] if target else (None, 0)
    others = {
        h[1]: default_of(c, p)
        for (c, p), h in CHOSEN_BY.items()
        if c == config and not isinstance(h, str) and h[0] == name and h[1] != key
    }
    first = STUDIES[name].columns[0].key
    rows = [
        r
        for r in rows
        if r.get(key) is not None
        and (r.get(first) or {}).get("mean") is not None
        and all(r.get(k) == v for k, v in others.items())
    ]
    ok = [r for r in rows if need is None or ((r.get(need) or {}).get("mean") or 0) >= least]
    value = default_of(config, path)
    mine = next((r for r in rows if r[key] == value), None)
    top = max(ok, key=lambda r: r[first]["mean"], default=None)
    if top is None or mine is None or mine not in ok:
        return value, mine, top, top
    spread = max(top[first].get("std") or 0, mine[first].get("std") or 0)
    return value, mine, mine if top[first]["mean"] - mine[first]["mean"] <= spread else top, top


def choice_finding(name: str):
    """A choosing study's ``finding``: the value its rows pick for each default it chooses
    (CHOSEN_BY), beside the default's own row."""

    def finding(rows: list[dict]) -> list[str]:
        first, lines = STUDIES[name].columns[0], []
        for (config, path), how in CHOSEN_BY.items():
            if isinstance(how, str) or how[0] != name:
                continue
            value, mine, best, top = choice(config, path, rows)
            key = how[1]

            def shown(r: dict, key: str = key) -> str:
                return f"{key}={r[key]} ({r[first.key]['text']} {first.header})"

            if best is None:
                lines.append(f"- {config}: {path}: no row meets the target yet")
            elif best[key] == value:
                lines.append(
                    f"- {config}: {path}: chosen {shown(best)}, the config's default"
                    + ("" if top is best else f"; {shown(top)} is within the seeds' std")
                )
            else:
                lines.append(
                    f"- {config}: {path}: chosen {shown(best)}; the config's default is "
                    f"{value}{f' ({shown(mine)})' if mine else ''}: change it in "
                    f"experiments/configs/{config}.py"
                )
        return lines

    return finding


# Adam's rate the binary ResNet's budget studies ran at, the default before bnn_resnet_lr;
# they pin it so that their finished runs keep their config hashes.
BNN_RESNET_LR_BEFORE = 1e-3
# Adam's peak rates the binary ResNet chooses from (bnn_resnet_lr; bnn_resnet per unit).
BNN_RESNET_LRS = (1e-3, 2e-3, 5e-3)

STUDIES = {
    s.name: s
    for s in (
        _surrogate_study("snn_mlp", "Spiking MLP (LIF): HTAF vs every surrogate"),
        _surrogate_study("snn_conv", "Spiking convnet (LIF): HTAF vs every surrogate"),
        _surrogate_study("bnn_mlp", "Binary MLP: HTAF vs every surrogate"),
        _surrogate_study("bnn_conv", "Binary convnet: HTAF vs every surrogate"),
        _depth_study(
            "dhn_depths",
            "plain",
            ALL_UNITS,
            "Deep Heaviside MLP: accuracy and gradient norms against depth",
        ),
        # Kong, Chen, Langer & Schmidt-Hieber (arXiv 2505.00110): skip connections, or some
        # linear units per layer, restore what plain deep Heaviside networks cannot express.
        _depth_study(
            "dhn_skip",
            "skip",
            DHN_VARIANT_UNITS,
            "Deep Heaviside MLP with skip connections against depth",
        ),
        _depth_study(
            "dhn_mixed",
            "mixed",
            DHN_VARIANT_UNITS,
            "Deep Heaviside MLP with a quarter of linear units per layer against depth",
        ),
        Study(
            "alpha_beta",
            "HTAF α/β sweep (DHN MLP, depth 4, validation split)",
            "dhn_mlp",
            grid(units(["htaf"]), htaf_shape([2, 4, 8, 16], [0.5, 1, 2])),
            split="validation",
            table="dhn_mlp_alpha_beta",
            plot="lines",
            finding=choice_finding("alpha_beta"),
        ),
        # Does any (α, β) keep a plain depth-16 DHN trainable? Gradient norms against theory.
        Study(
            "dhn_alpha_beta",
            "Plain deep Heaviside MLP at depths 8 and 16: HTAF α × β "
            "(quick budget, validation split)",
            "dhn_mlp",
            grid(
                units(["htaf"]),
                axis("depth", [8, 16], "model.depth", "d{}"),
                htaf_shape([1, 2, 4, 8], [0.25, 0.5, 1, 2]),
            ),
            split="validation",
            measure="grad_norms",
            columns=GAIN_COLUMNS,
            plot="none",
            overrides=QUICK_BUDGET,
            finding=gain_finding,
        ),
        *(
            Study(
                f"sharpness_{short}",
                f"Every unit at matched peak slope k: {title} (quick budget, validation split)",
                config,
                sharpness.points(),
                split="validation",
                measure="dead_share",
                columns=SHARPNESS_COLUMNS,
                overrides={**QUICK_BUDGET, **more},
                plot="lines",
                finding=sharpness.finding,
            )
            for short, (config, title, more) in SHARPNESS_MODELS.items()
        ),
        Study(
            "icbm_compare",
            "ICBM: HTAF vs sigmoid and straight-through concept layers vs the standard model",
            "icbm",
            icbm_points(BACKBONES, CONCEPT_LAYERS, [32, 128]),
            measure="concepts",
            columns=ICBM_COLUMNS,
            overrides={"baseline": False},
            table="icbm_results",
            plot="none",
            unit="variant",
        ),
        # The ICBM recipe chosen on validation (MLP backbone); an on-rate sparsity
        # pressure joins as an axis once the model has that field.
        Study(
            "icbm_recipe",
            "ICBM recipe (MLP, validation split, seed 0): the default, one "
            "factor changed at a time, and K=32's best test-split recipes re-read",
            "icbm",
            (STANDARD, *ICBM_RECIPES),
            seeds=(0,),
            split="validation",
            measure="concepts",
            columns=ICBM_COLUMNS,
            overrides={"baseline": False},
            plot="none",
            unit="variant",
        ),
        # The SNN conv default went 5 -> 6 epochs on the test split; re-read on validation.
        Study(
            "snn_conv_epochs",
            "Spiking convnet (HTAF): epochs, validation split",
            "snn_conv",
            tuple(axis("epochs", [6, 5, 4], "num_epochs", "e{}")),
            seeds=(0, 1),
            split="validation",
            plot="none",
            unit="",
            finding=choice_finding("snn_conv_epochs"),
        ),
        Study(
            "icbm_dense_choices",
            "Dense ICBM (MLP, K=128): HTAF α and β, the sharpening ramp's share of training and "
            "Adam's rate, one at a time (validation split)",
            "icbm",
            one_at_a_time(
                "icbm",
                DENSE_ICBM_FIELDS,
                {
                    "alpha": (8.0, 32.0),
                    "beta": (0.5, 2.0),
                    "sharpen_fraction": (0.5, 0.75),
                    "learning_rate": (1e-3, 4e-3),
                },
            ),
            split="validation",
            measure="concepts",
            columns=ICBM_COLUMNS,
            overrides={"baseline": False},
            plot="none",
            unit="",
            finding=choice_finding("icbm_dense_choices"),
        ),
        *(
            Study(
                f"precision_{c}",
                f"bfloat16 vs float32 ({c}, 2 epochs, test split)",
                c,
                tuple(PRECISIONS),
                seeds=(0, 1),
                overrides={"num_epochs": 2, **({"baseline": False} if c == "icbm" else {})},
                measure="accuracy" if c == "mlp" else "concepts",
                plot="none",
                unit="",
                columns=(
                    Column("acc %", cols[0], 100),
                    Column("Δ vs f32 (pts)", cols[0], 100, vs=PRECISIONS[0]),
                    *cols[1:],
                    Column("train s", "seconds", fmt=".0f"),
                ),
            )
            for c, cols in (("mlp", ("accuracy",)), ("icbm", ("hard_accuracy", ICBM_COLUMNS[5])))
        ),
        # Sparse concepts: each concept's on-rate capped per batch (affine-free BatchNorm and
        # an offset θ, Cantelli's bound 1/(1+θ²)), against the dense recipe and the standard model.
        Study(
            "icbm_sparsity",
            "ICBM on-rate cap (MLP, K=128, validation split): accuracy against sparsity and purity",
            "icbm",
            icbm_points(BACKBONES[:1], CONCEPT_LAYERS[:1], [128], extra=(ON_RATE_CAPS,)),
            split="validation",
            measure="concepts",
            columns=ICBM_COLUMNS,
            overrides={"baseline": False},
            plot="none",
            unit="variant",
        ),
        # Closing the sparse recipe's accuracy gap at on-rate ≤ 0.15: more concepts, the cap,
        # the schedule, a sparse head, no training noise, a soft on-rate penalty (1 seed: pruning).
        Study(
            "icbm_sparse_sweep",
            "Sparse ICBM recipe sweep (MLP, validation split, seed 0): "
            "concepts, cap, schedule, head, noise, on-rate penalty",
            "icbm",
            (
                *grid(BACKBONES[:1], [STANDARD]),
                *(
                    sparse_recipe(k, cap)
                    for k, cap in (
                        (512, 0.35),
                        (256, 0.35),
                        (512, 0.25),
                        (512, 0.15),
                        (512, 0.1),
                        (256, 0.15),
                    )
                ),
                sparse_recipe(512, 0.35, "nonneg", **{"model.nonneg_head": True}),
                sparse_recipe(512, 0.35, "n0", **{"model.concept_noise": 0.0}),
                sparse_recipe(512, None, "rp1", **{"model.rate_penalty": 1.0}),
                sparse_recipe(512, 0.35, num_epochs=32),
                Point(
                    "mlp-standard-e32",
                    {**STANDARD.coords, "backbone": "mlp", "epochs": 32},
                    {"model": standard_head, "num_epochs": 32},
                ),
            ),
            seeds=(0,),
            split="validation",
            measure="concepts",
            columns=SPARSE_COLUMNS,
            overrides={"baseline": False},
            plot="none",
            unit="variant",
        ),
        # The sparse recipe (make run's) on the test split beside the standard model, and the
        # interpretability of the dense recipe's concept layers (HTAF, sigmoid, straight-through).
        Study(
            "icbm_confirm",
            "ICBM sparse recipe (`make run`'s) vs the standard model (MLP, test split, seeds 0–4)",
            "icbm_sparse",
            (STANDARD, Point("htaf", {"variant": "htaf", "num_concepts": 512}, {})),
            seeds=(0, 1, 2, 3, 4),
            measure="concepts",
            columns=SPARSE_COLUMNS,
            overrides={"baseline": False},
            plot="none",
            unit="variant",
        ),
        Study(
            "icbm_confirm_cnn",
            "ICBM sparse recipe (`make run`'s) vs the standard model (CNN, test split, seeds 0–2)",
            "icbm_sparse",
            grid(
                BACKBONES[1:],
                [STANDARD, Point("htaf", {"variant": "htaf", "num_concepts": 512}, {})],
            ),
            seeds=(0, 1, 2),
            measure="concepts",
            columns=SPARSE_COLUMNS,
            overrides={"baseline": False},
            plot="none",
            unit="variant",
        ),
        Study(
            "icbm_layers",
            "Concept layers of the dense and the sparse recipe: accuracy and "
            "interpretability (MLP, test split, seeds 0–1)",
            "icbm",
            (
                *(
                    Point(f"dense-{p.label}", {"recipe": "dense", **p.coords}, p.overrides)
                    for p in (CONCEPT_LAYERS[0], *CONCEPT_LAYERS[2:])
                ),
                Point(
                    "sparse-htaf",
                    {"recipe": "sparse", "variant": "htaf"},
                    {  # make run's
                        **CONCEPT_LAYERS[0].overrides,
                        **SPARSE_RECIPE,
                        "model.surrogate_kwargs.htaf.beta": 0.5,
                    },
                ),
                *(
                    Point(
                        f"sparse-{p.label}",
                        {"recipe": "sparse", **p.coords},
                        {**p.overrides, **SPARSE_RECIPE},
                    )
                    for p in CONCEPT_LAYERS[2:]
                ),
            ),
            seeds=(0, 1),
            measure="concepts",
            columns=SPARSE_COLUMNS,
            overrides={"baseline": False},
            plot="none",
            unit="variant",
        ),
        # The new backbones on real data at a short stated budget (12k images, 2 epochs).
        Study(
            "icbm_backbones",
            "ICBM (sparse recipe) vs the standard model on ResNet-18 (¼ width) "
            "and ViT backbones (12k training images, 2 epochs, test split)",
            "icbm_sparse",
            grid(
                [
                    Point(
                        "resnet18",
                        {"backbone": "resnet18"},
                        {
                            "model.backbone": "resnet18",
                            "model.backbone_kwargs": {"stage_channels": (16, 32, 64, 128)},
                        },
                    ),
                    Point(
                        "vit",
                        {"backbone": "vit"},
                        {"model.backbone": "vit", "model.backbone_kwargs": {}},
                    ),
                ],
                [STANDARD, Point("htaf", {"variant": "htaf"}, {})],
            ),
            seeds=(0, 1),
            measure="concepts",
            columns=SPARSE_COLUMNS,
            plot="none",
            # β = 1: these runs predate icbm_sparse's β = 0.5 (icbm_alpha_beta_seeds).
            overrides={
                "baseline": False,
                "train_subset": 12000,
                "num_epochs": 2,
                "model.surrogate_kwargs.htaf.beta": 1.0,
            },
            unit="variant",
        ),
        # HTAF's α, β of the ICBM were picked on the test split by hand; re-read on validation
        # with the sparse recipe, one factor at a time.
        Study(
            "icbm_alpha_beta",
            "ICBM sparse recipe: HTAF α and β one at a time (MLP, validation split, seed 0)",
            "icbm_sparse",
            htaf_pairs(((16.0, 1.0), (8.0, 1.0), (32.0, 1.0), (16.0, 0.5), (16.0, 2.0))),
            seeds=(0,),
            split="validation",
            measure="concepts",
            columns=SPARSE_COLUMNS,
            overrides={"baseline": False},
            plot="none",
            unit="",
        ),
        # The α/β sweep's leaders and the default over three seeds: one seed's 0.1–0.3 pts is
        # within the seed-to-seed spread, so the choice reads the mean of three.
        Study(
            "icbm_alpha_beta_seeds",
            "ICBM sparse recipe: the default α, β and the α/β sweep's "
            "leaders over seeds 0–2 (MLP, validation split)",
            "icbm_sparse",
            htaf_pairs(((16.0, 1.0), (8.0, 1.0), (16.0, 0.5))),
            split="validation",
            measure="concepts",
            columns=SPARSE_COLUMNS,
            overrides={"baseline": False},
            plot="none",
            unit="",
        ),
        # Every unit gets its own Adam rate from the same grid on validation (seed 0) before
        # its test runs, instead of the rate chosen on HTAF's run.
        Study(
            "bnn_resnet",
            "Binary ResNet (Bi-Real-Net style): HTAF vs ste_sign and approx_sign, each with "
            "its own learning rate",
            "bnn_resnet",
            tuple(units(["htaf", "ste_sign", "approx_sign"])),
            tune={"learning_rate": BNN_RESNET_LRS},
        ),
        # The binary ResNet at one budget (about 15 min on 2 cores): stages 16-32-64 for 10
        # epochs or twice as wide for 4, and the wide one with ReActNet's RSign and RPReLU
        # (validation; the pick is in CHOSEN_BY).
        Study(
            "bnn_resnet_budget",
            "Binary ResNet (HTAF): longer, wider, or with ReActNet's RSign "
            "and RPReLU, at one budget (validation split, seed 0; each run on one core, beside "
            "another run)",
            "bnn_resnet",
            tuple(
                Point(
                    f"w{w}-e{e}" + ("-react" if r else ""),
                    {"width": w, "epochs": e, "react": r},
                    {
                        "model.stage_features": (w, 2 * w, 4 * w),
                        "num_epochs": e,
                        "model.react": r,
                        "learning_rate": BNN_RESNET_LR_BEFORE,
                    },
                )
                for w, e, r in ((16, 10, False), (32, 4, False), (32, 4, True))
            ),
            seeds=(0,),
            split="validation",
            plot="none",
            unit="",
        ),
        # Past the default budget: does 1.5× the width (about 2× the compute) bring the binary
        # ResNet to issue 16's target? Validation, seed 0, at the old default rate 1e-3. (A
        # w32-e8 point was killed at epoch 5 of 8 with its checkout and not rerun once
        # bnn_resnet_lr reached the target at the default budget.)
        Study(
            "bnn_resnet_longer",
            "Binary ResNet (HTAF): 1.5× wider, about twice the default "
            "budget (validation split, seed 0; each run on one core, beside another run)",
            "bnn_resnet",
            tuple(
                Point(
                    f"w{w}-e{e}",
                    {"width": w, "epochs": e},
                    {
                        "model.stage_features": (w, 2 * w, 4 * w),
                        "num_epochs": e,
                        "learning_rate": BNN_RESNET_LR_BEFORE,
                    },
                )
                for w, e in ((48, 4),)
            ),
            seeds=(0,),
            split="validation",
            plot="none",
            unit="",
        ),
        # The default budget's runs underfit (their train accuracy is little above validation's):
        # is Adam's learning rate too low for 4 epochs? 1e-3 is bnn_resnet_budget's w32-e4 run.
        # Validation, seed 0. (A 2e-3 point was killed with its checkout and not rerun.)
        Study(
            "bnn_resnet_lr",
            "Binary ResNet (HTAF): Adam's peak learning rate at the default "
            "budget (validation split, seed 0; each run on one core, beside another run)",
            "bnn_resnet",
            tuple(
                Point(f"lr{lr:g}", {"learning_rate": lr}, {"learning_rate": lr})
                for lr in BNN_RESNET_LRS
            ),
            seeds=(0,),
            split="validation",
            plot="none",
            unit="",
            finding=choice_finding("bnn_resnet_lr"),
        ),
        # Issue 35: accuracy at a handful of concepts per class (VLG-CBM's NEC), explanations
        # and interventions at that size, code collisions; the random-concept baseline is a row
        # each HTAF run's record holds (experiments.icbm_nec).
        Study(
            "icbm_nec",
            "ICBM sparse recipe: test accuracy against the number of effective "
            "concepts per class (NEC; head cut and refitted on frozen concepts), concept layers "
            "vs the standard model and a random code (K=512, seeds 0–2)",
            "icbm_sparse",
            grid(BACKBONES, [STANDARD, CONCEPT_LAYERS[0], *CONCEPT_LAYERS[2:]]),
            measure="nec",
            columns=NEC_COLUMNS,
            more=NEC_MORE,
            overrides={"baseline": False},
            plot="none",
            unit="variant",
            derived=random_concept_rows,
            figure=icbm_nec.figures,
            finding=nec_finding,
        ),
        # Issue 35's lever: a head trained sparse (an L1 penalty on V) rather than only cut
        # after training. HTAF, MLP backbone, validation split.
        Study(
            "icbm_nec_head_l1",
            "ICBM sparse recipe (HTAF, MLP): the head's training L1 penalty μ·mean|V| "
            "against accuracy at NEC=5 (validation split, seeds 0–2)",
            "icbm_sparse",
            (
                STANDARD,
                *(
                    Point(f"htaf-l1{m:g}", {"variant": "htaf", "head_l1": m}, {"model.head_l1": m})
                    for m in NEC_HEAD_L1S
                ),
                # HTAF trained in its hard form (straight_through's form, HTAF's backward)
                Point(
                    "htaf_hard-l10",
                    {"variant": "htaf_hard", "head_l1": 0.0},
                    {**CONCEPT_LAYERS[1].overrides, "model.head_l1": 0.0},
                ),
            ),
            split="validation",
            measure="nec_choice",
            columns=(
                *NEC_COLUMNS[:2],
                Column("NEC=all", "nec.all.accuracy", 100),
                Column("own head %", "hard_accuracy", 100),
                Column("on-rate", "concept_rate", fmt=".3f"),
                Column("train s", "seconds", fmt=".0f"),
            ),
            overrides={"baseline": False},
            plot="none",
            unit="variant",
            finding=head_l1_finding,
        ),
        # Issue 35: which weights the NEC head keeps, read off the trained head or off an L1
        # path on the frozen concepts (interpret.choose_sparse_heads picks λ on the held-out
        # sixth), each concept layer and the standard model alike; validation split.
        Study(
            "icbm_nec_mask",
            "ICBM sparse recipe (MLP): the NEC=5 head's weights cut from the trained head, or "
            "chosen between that and an L1 path on the frozen concepts (validation split, "
            "seeds 0–2)",
            "icbm_sparse",
            (STANDARD, CONCEPT_LAYERS[0], *CONCEPT_LAYERS[2:]),
            split="validation",
            measure="nec_choice",
            columns=(
                Column("NEC=5, cut or L1 path %", "nec.5.accuracy", 100),
                Column("NEC=5, cut %", "nec_cut.5.accuracy", 100),
                Column("NEC=all %", "nec.all.accuracy", 100),
                Column("own head %", "hard_accuracy", 100),
                Column("train s", "seconds", fmt=".0f"),
            ),
            overrides={"baseline": False},
            plot="none",
            unit="variant",
            finding=mask_finding,
        ),
        Study(
            "icbm_main",
            "ICBM main job (`make run`): concept figures",
            "icbm_sparse",
            (Point("icbm_main", {}, {}),),
            seeds=(),
            measure="icbm_job",
            columns=(),
            plot="none",
            unit="",
        ),
    )
}
