"""What a study is made of (experiments/configs/studies.py holds every study, as data): a
config file, its runs (``Point``: named overrides over dotted config paths), seeds, the
split it reads, what each run measures and the table's ``Column``s. A run is the config
file + the profile's overrides + the study's + its point's + its seed.
"""

from __future__ import annotations

import dataclasses
import itertools
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
    measure: str = "accuracy"  # accuracy | grad_norms | dead_share | concepts | nec | icbm_job
    columns: tuple = (Column("acc %", "accuracy", 100), Column("train s", "seconds", fmt=".0f"))
    overrides: dict = dataclasses.field(default_factory=dict)  # every run of the study
    table: str = ""  # file stem of the study's table (default: its name)
    plot: str = "bars"  # bars | lines (x: the second key column) | none
    unit: str = "surrogate"  # key column naming the binary unit (README's summary)
    finding: object = None  # rows -> lines of text under the table, computed from it
    more: tuple = ()  # (heading, columns): more tables of the same rows, below it
    derived: object = None  # record -> [(label, coords, record)]: rows a run's record holds
    figure: object = None  # (path stem, records) -> None: the study's own figure(s)

    @property
    def all_columns(self) -> tuple:
        """The main table's columns and those of the ``more`` tables."""
        return self.columns + tuple(c for _, columns in self.more for c in columns)

    @property
    def keys(self) -> list[str]:
        """The table's key columns, in the points' order."""
        return list(dict.fromkeys(k for p in self.points for k in p.coords))


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
