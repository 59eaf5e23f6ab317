"""Time estimates for the runs a dry run has not timed, from the timed runs the results hold.

A timed run (``Timed``) is a finished run or a record in a study's table, old tables
included, with the config today's planner gives its study, label and seed. An untimed run's
estimate (``estimate``) reads the timed runs of the same model (model name and backbone):

1. at the same budget (``BUDGET``'s fields): the mean time of the nearest ones, those with
   the fewest other config fields that differ (on a tie, those timed on this machine);
2. else a line fitted to the model's times against training images × epochs where they
   span the run's, else in proportion to those at the closest images × epochs;
3. else none: no run of the model has been timed.

Times whose machine is not recorded (tables of earlier code) are read only where a model has
no other. Times measured on another machine are scaled by a factor (``machine_factors``): the median
ratio of this machine's times to the other's over pairs of nearest runs (same model and
budget, at most one other field apart), one timed on each; the model's pairs where it has
some, else the median over the machine's models; unscaled where no pair exists.
"""

from __future__ import annotations

import statistics
from typing import NamedTuple

import numpy as np

from experiments import runs
from htaf_jax.data.fashion_mnist_local import SPLIT_SIZES

# The fields that set how much a run computes; the others pick the nearest timed runs.
BUDGET = ("train_subset", "test_subset", "num_epochs", "num_train_steps")
IGNORED = ("seed", "data_dir", *runs.WATCH_FIELDS)
TRAIN_IMAGES = {"fashion_mnist": SPLIT_SIZES["train"]}  # a full training split's images


class Timed(NamedTuple):
    source: str  # "<study> (<profile>)"
    seconds: float
    config: dict  # flat(): dotted path -> value
    machine: str | None  # where it was timed (None: not recorded)
    date: str | None


class Estimate(NamedTuple):
    seconds: float | None
    basis: str  # "nearest" | "fit" | "none"
    sources: tuple  # the Timed runs it came from


def flat(config) -> dict:
    """``config`` (a ConfigDict or dict) as dotted path -> value, lists as tuples."""
    out = {}

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                out[prefix + key] = tuple(value) if isinstance(value, list) else value

    walk(config if isinstance(config, dict) else config.to_dict(), "")
    return out


def model_of(config: dict) -> tuple:
    return config.get("model.name"), config.get("model.backbone")


def work(config: dict) -> float | None:
    """Training images × epochs (or steps × batch size); None where the dataset's size is
    not known here."""
    if (config.get("num_train_steps") or -1) > 0:
        return float(config["num_train_steps"] * config["batch_size"])
    subset = config.get("train_subset") or -1
    images = subset if subset > 0 else TRAIN_IMAGES.get(config.get("dataset"))
    if images is None:
        return None
    return float(max(1, images - max(0, config.get("validation_size") or 0)) * config["num_epochs"])


def _distance(a: dict, b: dict) -> int:
    keys = (set(a) | set(b)) - set(IGNORED) - set(BUDGET)
    return sum(a.get(k) != b.get(k) for k in keys)


def _group(config: dict) -> tuple:
    return model_of(config), tuple(config.get(k) for k in BUDGET)


def _nearest(config: dict, timed: list[Timed]) -> list[Timed]:
    """The runs of ``timed`` (all of ``config``'s model and budget) nearest to it."""
    distance = [_distance(t.config, config) for t in timed]
    return [t for t, d in zip(timed, distance) if d == min(distance)]


def machine_factors(pool: list[Timed], machine: str) -> dict:
    """Other machine -> {model: (factor, pairs)}, and at None the median of its models'
    factors (all pairs): a factor is the median ratio of a run's time here to the mean time
    there of the runs nearest to it (same model and budget, at most one other field apart)."""
    groups: dict = {}
    for t in pool:
        groups.setdefault(_group(t.config), []).append(t)
    ratios: dict = {}
    for members in groups.values():
        for here in (t for t in members if t.machine == machine):
            for other in {t.machine for t in members} - {machine, None}:
                there = _nearest(here.config, [t for t in members if t.machine == other])
                if _distance(there[0].config, here.config) <= 1:
                    ratio = here.seconds / statistics.fmean(t.seconds for t in there)
                    ratios.setdefault(other, {}).setdefault(model_of(here.config), []).append(ratio)
    factors = {}
    for other, by_model in ratios.items():
        factors[other] = {m: (statistics.median(r), len(r)) for m, r in by_model.items()}
        factors[other][None] = (
            statistics.median(f for f, _ in factors[other].values()),
            sum(map(len, by_model.values())),
        )
    return factors


def _factor(factors: dict, timed_on: str | None, model: tuple) -> tuple[float, int]:
    """(factor, pairs) that scales a time measured on ``timed_on`` to this machine."""
    by_model = factors.get(timed_on, {})
    return by_model.get(model) or by_model.get(None) or (1.0, 0)


def estimate(
    config: dict, pool: list[Timed], machine: str, factors: dict | None = None
) -> Estimate:
    """The seconds ``config`` (flat) should take on ``machine``, from ``pool``, and the
    basis used; ``factors``: ``machine_factors(pool, machine)``."""
    factors = machine_factors(pool, machine) if factors is None else factors

    def here(t: Timed) -> float:  # its time, scaled to this machine where a factor is known
        scale = _factor(factors, t.machine, model_of(t.config))[0] if t.machine != machine else 1
        return t.seconds * scale

    same_model = [t for t in pool if model_of(t.config) == model_of(config)]
    # A time whose machine is not recorded cannot be scaled: used only where no other is.
    same_model = [t for t in same_model if t.machine] or same_model
    same_budget = [t for t in same_model if _group(t.config) == _group(config)]
    if same_budget:
        nearest = _nearest(config, same_budget)
        nearest = [t for t in nearest if t.machine == machine] or nearest
        return Estimate(statistics.fmean(map(here, nearest)), "nearest", tuple(nearest))
    rated = [t for t in same_model if work(t.config)]
    if not rated or not work(config):
        return Estimate(None, "none", ())
    x = np.array([work(t.config) for t in rated])
    y = np.array([here(t) for t in rated])
    inside = x.min() <= work(config) <= x.max() and len(set(x)) > 1
    slope, intercept = np.polyfit(x, y, 1) if inside else (np.nan, np.nan)
    if not (slope > 0 and intercept >= 0):  # outside the timed budgets: in proportion to the
        closest = np.abs(np.log(x / work(config)))  # times at the closest budget
        near = closest == closest.min()
        slope, intercept = float(np.median(y[near] / x[near])), 0.0
    return Estimate(float(intercept + slope * work(config)), "fit", tuple(rated))


def _place(timed_on: str | None, machine: str, factors: dict, model: tuple) -> str:
    if timed_on == machine:
        return "this machine"
    if timed_on is None:
        return "machine not recorded, unscaled"
    short = timed_on.split(", jax")[0].removeprefix("x86_64, ")
    factor, pairs = _factor(factors, timed_on, model)
    scaled = f"×{factor:.2f} for this machine ({pairs} pairs)" if pairs else "unscaled"
    return f"{short}, {scaled}"


def describe(estimated: list[tuple[dict, Estimate]], machine: str, factors: dict) -> str:
    """Which basis the estimates (of the configs beside them) used, with the studies,
    dates and machines they read."""
    parts = []
    for basis, text in (
        ("nearest", "from the nearest timed runs of the same model and budget"),
        ("fit", "from the model's times at other budgets, by images × epochs"),
    ):
        used = [e for _, e in estimated if e.basis == basis]
        where = {
            (t.source, t.date[:10] if t.date else "date not recorded", t.machine): t
            for e in used
            for t in e.sources
        }
        shown = [
            f"{s}, {d}, {_place(m, machine, factors, model_of(t.config))}"
            for (s, d, m), t in sorted(where.items(), key=str)
        ]
        if used:
            more = f"; {len(shown) - 3} more" if len(shown) > 3 else ""
            parts.append(f"{len(used)} {text} [{'; '.join(shown[:3])}{more}]")
    untimed = sorted(
        {"/".join(filter(None, model_of(c))) for c, e in estimated if e.basis == "none"}
    )
    if untimed:
        count = sum(e.basis == "none" for _, e in estimated)
        parts.append(f"{count} not estimated (no run of {', '.join(untimed)} timed)")
    return "; ".join(parts)
