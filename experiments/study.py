"""What a study is made of (experiments/configs/studies.py holds every study, as data): a
config file, its runs (``Point``: named overrides over dotted config paths), seeds, the
split it reads, what each run measures and the table's ``Column``s. A run is the config
file + the profile's overrides + the study's + its point's + its seed. A comparison may
``tune`` a field per point first: each point's test runs take the value of its best
validation run from one grid (``tuning_points``, ``tuned``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import NamedTuple


@dataclasses.dataclass(frozen=True)
class Point:
    label: str  # the run's name before -s<seed>-<hash>
    coords: dict  # the table's key columns, e.g. {"surrogate": "atan", "depth": 8}
    overrides: dict  # dotted config path -> value, or a function of the config so far


class Column(NamedTuple):
    header: str
    key: str  # record field: "accuracy", "interpretability.purity", "x[-1]"
    scale: float = 1.0  # 100: a share shown in %
    fmt: str = ".2f"
    vs: Point | None = None  # the difference to this point's run of the same seed


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    title: str
    config: str  # file under experiments/configs/, without .py
    points: tuple  # of Point
    seeds: tuple = (0, 1, 2)  # () : one run with the config's seed (the ICBM job)
    split: str = "test"  # "validation": the profile's validation_size held out
    measure: str = "accuracy"  # experiments.measures.MEASURES, or icbm_job
    columns: tuple = (Column("acc %", "accuracy", 100), Column("train s", "seconds", fmt=".0f"))
    overrides: dict = dataclasses.field(default_factory=dict)  # every run of the study
    table: str = ""  # file stem of the study's table (default: its name)
    plot: str = "bars"  # bars | lines (x: the second key column) | none
    unit: str = "surrogate"  # key column naming the binary unit (README's summary)
    finding: object = None  # rows -> lines of text under the table, computed from it
    more: tuple = ()  # (heading, columns): more tables of the same rows, below it
    derived: object = None  # record -> [(label, coords, record)]: rows a run's record holds
    figure: object = None  # (path stem, records) -> None: the study's own figure(s)
    # {config path: values}: before its test runs, every point (unit) gets its own value from
    # this grid, that of its best validation run with the study's first seed (tuning_points)
    tune: dict = dataclasses.field(default_factory=dict)

    @property
    def all_columns(self) -> tuple:
        """The main table's columns and those of the ``more`` tables."""
        return self.columns + tuple(c for _, columns in self.more for c in columns)

    @property
    def num_runs(self) -> int:
        """Every point's runs: one per seed, and one per value of the tuning grid."""
        grid = math.prod(len(v) for v in self.tune.values()) if self.tune else 0
        return len(self.points) * (max(1, len(self.seeds)) + grid)

    @property
    def keys(self) -> list[str]:
        """The table's key columns, in the points' order."""
        return list(
            dict.fromkeys([*(k for p in self.points for k in p.coords), *map(leaf, self.tune)])
        )


def axis(key: str, values, path: str, label: str = "{}") -> list[Point]:
    """One point per value: ``key=value`` in the table, ``path=value`` in the config."""
    return [Point(label.format(v), {key: v}, {path: v}) for v in values]


def grid(*axes: list[Point]) -> tuple:
    """Every combination, labels joined by '-' (``htaf-d8``)."""
    return tuple(
        Point(
            "-".join(p.label for p in combo),
            {k: v for p in combo for k, v in p.coords.items()},
            {k: v for p in combo for k, v in p.overrides.items()},
        )
        for combo in itertools.product(*axes)
    )


def leaf(path: str) -> str:
    """A config path's last field: its key column in a table (``learning_rate``)."""
    return path.rsplit(".", 1)[-1]


def _text(value) -> str:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f"{value:g}" if number else str(value)


def tuning_points(study: Study, point: Point) -> list[Point]:
    """``point``'s validation runs of ``study.tune``: one per combination of the grid's
    values, labelled ``<point>-<field><value>`` (``htaf-learning_rate0.005``)."""
    paths = list(study.tune)
    return [
        Point(
            "-".join([point.label, *(f"{leaf(p)}{_text(v)}" for p, v in zip(paths, combo))]),
            {**point.coords, **{leaf(p): v for p, v in zip(paths, combo)}},
            {**point.overrides, **dict(zip(paths, combo))},
        )
        for combo in itertools.product(*study.tune.values())
    ]


def tuned(study: Study, point: Point, scores: list) -> Point | None:
    """``point`` with the grid's values of its best tuning run (``scores``: the study's first
    column for each of ``tuning_points(study, point)``, higher is better, the first on a
    tie); None while one of them has no score (not finished)."""
    if not scores or any(s is None for s in scores):
        return None
    best = tuning_points(study, point)[max(range(len(scores)), key=lambda i: (scores[i], -i))]
    chosen = {p: best.overrides[p] for p in study.tune}
    return Point(
        point.label,
        {**point.coords, **{leaf(p): v for p, v in chosen.items()}},
        {**point.overrides, **chosen},
    )
