"""A study's table from its runs' records: ``<table>.json`` (rows with mean, std and
per-seed values of every column), ``<table>.md`` and ``<table>.png``, rewritten after
every finished run so the files always show what is done."""

from __future__ import annotations

import json
import os
import re

import matplotlib
import numpy as np

from experiments.study import leaf

matplotlib.use("Agg")  # before pyplot: tables are drawn headless
import matplotlib.pyplot as plt  # noqa: E402


def value(record: dict, key: str):
    """``record``'s field ``key``: dotted for nested dicts, ``name[i]`` for list items, or
    a function of the record."""
    if callable(key):
        return key(record)
    index = re.fullmatch(r"(.+)\[(-?\d+)\]", key)
    name = index.group(1) if index else key
    node = record
    for part in [name] if name in record else name.split("."):  # "near_binary@0.01" is one
        node = node.get(part) if isinstance(node, dict) else None
    if index and node:
        node = node[int(index.group(2))]
    return node.get("total") if isinstance(node, dict) else node  # the ICBM job's timings


def cell_key(column) -> str:
    key = column.key if isinstance(column.key, str) else column.key.__name__
    return f"{key}_vs_{column.vs.label}" if column.vs else key


def _cell(values: list, column) -> dict:
    """Mean and sample std (ddof 1; 0 for one value) of the non-None values × scale."""
    per_seed = [None if v is None else column.scale * v for v in values]
    arr = np.asarray([v for v in per_seed if v is not None], np.float64)
    mean = float(arr.mean()) if arr.size else None
    std = None if mean is None else float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    text = "n/a" if mean is None else f"{mean:{column.fmt}} ± {std:{column.fmt}}"
    return {"mean": mean, "std": std, "text": text, "per_seed": per_seed}


def rows(study, records: list[dict]) -> list[dict]:
    """One row per point (its seeds' runs): the point's key columns and, per column,
    mean, sample std (0 for one seed), text and the per-seed values."""
    groups: dict = {}
    for r in records:
        groups.setdefault(r["label"], []).append(r)
    out = []
    for label, group in groups.items():
        coords = group[0]["coords"]
        row = {
            **coords,
            "label": label,
            "seeds": [r["seed"] for r in group],
            "split": group[0].get("split"),
            "note": group[0].get("note", ""),
            # a row computed from other runs' records (Study.derived): no runs of its own
            **({"derived": True} if "derived_from" in group[0] else {}),
        }
        for column in study.all_columns:
            values = [value(r, column.key) for r in group]
            if column.vs is not None:
                ref_coords = {**coords, **column.vs.coords}
                ref = {
                    r["seed"]: value(r, column.key)
                    for r in _reference(groups.values(), ref_coords, column.vs.coords)
                }
                values = (
                    []
                    if ref_coords == coords
                    else [
                        None if v is None or ref.get(r["seed"]) is None else v - ref[r["seed"]]
                        for v, r in zip(values, group)
                    ]
                )
            row[cell_key(column)] = _cell(values, column)
        out.append(row)
    return out


def _reference(groups, ref_coords: dict, own: dict) -> list[dict]:
    """The runs of the row a ``vs`` column compares with: the group that has the reference
    point's own coordinates ``own`` and whose coordinates all agree with ``ref_coords`` (a
    reference row need not have the axes it is shared over, e.g. the standard model has no
    on-rate cap), the most specific one if several; none where the study has no such row."""
    matches = [
        g
        for g in groups
        if own.keys() <= g[0]["coords"].keys()
        and all(k in ref_coords and ref_coords[k] == v for k, v in g[0]["coords"].items())
    ]
    return max(matches, key=lambda g: len(g[0]["coords"])) if matches else []


def markdown(study, meta: dict, table_rows: list[dict]) -> str:
    keys = study.keys
    done = sum(len(r["seeds"]) for r in table_rows if not r.get("derived"))
    unfinished = (
        f" **Unfinished:** {done} of the {meta['runs_planned']} planned runs have "
        "finished, and the table shows only those; rerunning the command trains "
        "only the missing runs."
        if done < meta["runs_planned"]
        else ""
    )
    split = meta["split"] + (
        f" ({meta['validation_size']} training images held out)"
        if meta["split"] == "validation"
        else ""
    )
    lines = [
        f"# {study.title}",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}  ",
        f"Date: {meta['date']}  ",
        f"Commit: {meta.get('commit') or 'not recorded'}  ",
        f"Split read: {split}  ",
        f"Config: `{meta['config']}`; every run overrides: "
        + (", ".join(f"{k}={v}" for k, v in meta["overrides"].items()) or "nothing")
        + "  ",
        "Cells: mean ± std over the seeds of each row (sample std, 0 for one seed); "
        "per-seed values in the JSON file of the same name." + unfinished,
        "",
        "| "
        + " | ".join(keys + [c.header for c in study.columns] + ["per seed", "seeds", "note"])
        + " |",
        "|---" * (len(keys) + len(study.columns) + 3) + "|",
    ]
    lines += _table_lines(keys, study.columns, table_rows)[2:]
    for heading, columns in study.more:
        lines += ["", f"## {heading}", "", *_table_lines(keys, columns, table_rows)]
    if study.tune and table_rows:
        lines += ["", *tuning_lines(study, table_rows)]
    if study.finding and table_rows:
        lines += ["", "Computed from the table:", *study.finding(table_rows)]
    return "\n".join(lines) + "\n"


def tuning_lines(study, table_rows: list[dict]) -> list[str]:
    """What each point's tuning picked, from its rows (``Study.tune``): the value its test
    runs use beside the validation score of each value of the grid."""
    leaves = [leaf(p) for p in study.tune]
    first, fmt = cell_key(study.columns[0]), study.columns[0].fmt
    tuning = [r for r in table_rows if r.get("split") not in (None, study.split)]
    lines = [
        f"Tuned per row on the validation split (seed {study.seeds[0]}; the highest "
        f"{study.columns[0].header}, the first value of the grid on a tie): "
        + ", ".join(f"{p} from {list(v)}" for p, v in study.tune.items())
    ]
    for row in (r for r in table_rows if r not in tuning):
        same = [
            r for r in tuning if all(r.get(k) == row.get(k) for k in study.keys if k not in leaves)
        ]
        scores = ", ".join(
            f"{'/'.join(str(r[k]) for k in leaves)}: "
            + ("n/a" if r[first]["mean"] is None else f"{r[first]['mean']:{fmt}}")
            for r in same
        )
        picked = ", ".join(f"{k}={row.get(k)}" for k in leaves)
        lines.append(f"- {row['label']}: {picked} (validation {study.columns[0].header}: {scores})")
    return lines


def _table_lines(keys: list[str], columns, table_rows: list[dict]) -> list[str]:
    """A markdown table: the key columns, ``columns``, the first column's per-seed values."""
    first = cell_key(columns[0])
    lines = [
        "| "
        + " | ".join(keys + [c.header for c in columns] + ["per seed", "seeds", "note"])
        + " |",
        "|---" * (len(keys) + len(columns) + 3) + "|",
    ]
    for r in table_rows:
        per_seed = ", ".join("n/a" if v is None else f"{v:.2f}" for v in r[first]["per_seed"])
        cells = ["—" if r.get(k) is None else str(r[k]) for k in keys]
        cells += [r[cell_key(c)]["text"] for c in columns]
        lines.append(
            "| " + " | ".join(cells + [per_seed, ",".join(map(str, r["seeds"])), r["note"]]) + " |"
        )
    return lines


def plot(path: str, study, table_rows: list[dict]) -> None:
    """``bars``: the first column per row; ``lines``: it against the second key column."""
    key, keys = cell_key(study.columns[0]), study.keys
    rs = [  # the study's split: not its tuning runs
        r
        for r in table_rows
        if r[key]["mean"] is not None and r.get("split") in (None, study.split)
    ]
    fig, ax = plt.subplots(figsize=(8, 4))
    if study.plot == "bars":
        ax.bar(
            range(len(rs)),
            [r[key]["mean"] for r in rs],
            yerr=[r[key]["std"] for r in rs],
            capsize=3,
            color=["C3" if r["label"] == "htaf" else "C0" for r in rs],
        )
        ax.set_xticks(range(len(rs)), [r["label"] for r in rs], rotation=45, ha="right")
        ax.set_ylim(max(0, min((r[key]["mean"] for r in rs), default=5) - 5), None)
    else:
        lines: dict = {}
        for r in sorted(rs, key=lambda r: r[keys[1]]):
            lines.setdefault(", ".join(f"{r[k]}" for k in keys if k != keys[1]), []).append(r)
        for name, line in lines.items():
            ax.errorbar(
                [r[keys[1]] for r in line],
                [r[key]["mean"] for r in line],
                yerr=[r[key]["std"] for r in line],
                marker="o",
                capsize=3,
                label=name,
                lw=2.5 if name.startswith("htaf") else 1.2,
            )
        ax.set(xlabel=keys[1], xscale="log")
        ax.legend(fontsize=7)
    ax.set_ylabel(f"{rs[0]['split'] if rs else ''} {study.columns[0].header}")
    fig.suptitle(study.title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(stem: str, study, meta: dict, records: list[dict]) -> None:
    """``stem``.json, .md and .png from the records so far."""
    os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
    table_rows = rows(study, records)
    with open(stem + ".json", "w") as f:
        json.dump({**meta, "rows": table_rows, "runs": records}, f, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(markdown(study, meta, table_rows))
    if study.plot != "none":
        plot(stem + ".png", study, table_rows)
    if study.figure is not None:
        study.figure(stem, records)
