"""RESULTS.md from the studies' tables under ``results/<profile>/``, and README's results
block from RESULTS.md's summary (``python -m experiments.run all``; nothing else writes
either)."""

from __future__ import annotations

import datetime
import glob
import json
import os
import re

from experiments import runs, tables
from experiments.configs import studies
from experiments.study import leaf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def table_rows(out_root: str, study) -> list[dict]:
    path = os.path.join(out_root, study.name, f"{study.table or study.name}.json")
    return json.load(open(path)).get("rows", []) if os.path.exists(path) else []


def _text(cell) -> str:
    ok = isinstance(cell, dict) and cell.get("mean") is not None
    return f"{cell['mean']:.2f} ± {cell['std']:.2f}" if ok else "n/a"


def summary_table(out_root: str, stale=()) -> str:
    """Per final (test-split) study and point group: HTAF beside the best other unit (its
    first column) and the ``vs`` columns' reference rows; the studies in ``stale`` (tables
    made by earlier code) left out."""
    lines = ["| study | HTAF | best other | reference | seeds |", "|---|---|---|---|---|"]
    for study in (s for s in studies.STUDIES.values() if s.unit and s.split == "test"):
        if study.name in stale:
            continue
        rows, first = table_rows(out_root, study), tables.cell_key(study.columns[0])
        keys = [k for k in study.keys if k != study.unit]
        keys = [k for k in keys if k not in map(leaf, study.tune)]  # the tuned value: per unit
        groups: dict = {}
        for r in (r for r in rows if r.get("split") in (None, study.split)):  # not tuning runs
            groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
        for group, members in groups.items():
            htaf = next((r for r in members if r.get(study.unit) == "htaf"), None)
            if htaf is None:
                continue
            best = max(
                (
                    r
                    for r in members
                    if r.get(study.unit) not in ("htaf", None)
                    and (r.get(first) or {}).get("mean") is not None
                ),
                key=lambda r: r[first]["mean"],
                default=None,
            )
            where = ", ".join(f"{k}={v}" for k, v in zip(keys, group) if v is not None)
            refs = []
            for column in (c for c in study.columns if c.vs):
                coords = {**dict(zip(keys, group)), **column.vs.coords}
                ref = next((r for r in rows if all(r.get(k) == v for k, v in coords.items())), {})
                refs.append(f"{column.vs.label}: {_text(ref.get(first))}")
            lines.append(
                f"| {study.name}{' ' + where if where else ''} | "
                f"{_text(htaf.get(first))} | "
                f"{f'{best[study.unit]}: {_text(best[first])}' if best else 'n/a'} | "
                f"{'; '.join(refs) or '—'} | {','.join(map(str, htaf['seeds']))} |"
            )
    return "\n".join(lines) + "\n" if len(lines) > 2 else "_No finished study yet._\n"


def choices_table(*roots: str, stale: dict | None = None) -> str:
    """Which split chose each default (studies.CHOSEN_BY): the default's row of the study
    that chose it beside that study's best row changing that field alone (meeting the
    pick's target), from the first of ``roots`` holding the study's table; ``stale``:
    (folder, study) -> the commit of a table made by earlier code, named beside it."""
    stale = stale or {}
    lines = [
        "| config: default field | value | chosen by (split) | default's row | best row | agrees |",
        "|---|---|---|---|---|---|",
    ]
    for (config, path), how in studies.CHOSEN_BY.items():
        if isinstance(how, str):
            value = studies.default_of(config, path)
            lines.append(f"| {config}: {path} | {value} | {how} | — | — | — |")
            continue
        study, key = studies.STUDIES[how[0]], how[1]
        root, rows = next(((root, r) for root in roots if (r := table_rows(root, study))), ("", []))
        value, mine, best, _ = studies.choice(config, path, rows)
        first = study.columns[0].key
        cell = lambda r: "n/a" if r is None else f"{key}={r[key]}: {_text(r[first])}"  # noqa
        agrees = "n/a" if best is None else "yes" if best[key] == value else "**no**"
        made = stale.get((os.path.abspath(root), study.name)) if root else None
        lines.append(
            f"| {config}: {path} | {value} | {study.name} ({study.split}"
            f"{', ' + os.path.basename(root) if root else ''}"
            f"{f', made at commit {made}' if made else ''}) | "
            f"{cell(mine)} | {cell(best)} | {agrees} |"
        )
    return "\n".join(lines) + "\n"


def _command(study, profile: str) -> str:
    return f"python -m experiments.run {study.name} --profile {profile}"


def _demote(markdown: str, levels: int = 2) -> str:
    """Study tables start with '# '; nest them under RESULTS.md's sections."""
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + levels) + " ", markdown, flags=re.M)


def _tables(
    folder: str, report_dir: str, levels: int = 2, pattern: str = "*.md", image: str | None = None
) -> list[str]:
    """Each markdown file in ``folder`` (headings demoted) and the plot of the same name
    (``image``: that figure instead)."""
    lines = []
    for path in sorted(glob.glob(os.path.join(folder, pattern))):
        png = os.path.join(folder, image) if image else path[:-3] + ".png"
        lines += [_demote(open(path).read(), levels), ""]
        if os.path.exists(png):
            name = "concept overview" if image else os.path.basename(path)[:-3]
            lines += [f"![{name}]({os.path.relpath(png, report_dir)})", ""]
        for more in [] if image else sorted(glob.glob(path[:-3] + "_*.png")):  # Study.figure's
            lines += [f"![{os.path.basename(more)[:-4]}]({os.path.relpath(more, report_dir)})", ""]
    return lines


def _earlier(lines: list[str], commit: str, command: str) -> list[str]:
    """A table that today's planner does not recognise: labelled with the commit that made
    it and the command that remakes it; its own ``Command:`` lines (of that commit's code)
    become ``Command at <commit>:``."""
    label = (
        f"**Made at commit {commit} by code that no longer plans these runs**; "
        f"rerun with `{command}`."
    )
    return [
        label,
        "",
        *(re.sub(r"^Command: ", f"Command at {commit}: ", x, flags=re.M) for x in lines),
    ]


def _left_out(stale: dict) -> list[str]:
    if not stale:
        return []
    return [
        f"Left out: the tables of {', '.join(sorted(stale))}, made at earlier commits by code "
        "that no longer plans their runs (labelled below, each with the command that remakes it).",
        "",
    ]


def write(
    out_root: str,
    profile: str,
    seconds: float,
    trained: bool = True,
    path: str | None = None,
    stale: dict | None = None,
) -> str:
    """Writes RESULTS.md (``path``) from the tables under ``out_root``; returns its path.
    ``stale``: (folder, study) -> the commit of each table that today's planner does not
    recognise (experiments.run.stale_tables): labelled, and left out of the summary."""
    path = path or os.path.join(REPO, "RESULTS.md")
    stale = stale or {}
    report_dir = os.path.dirname(path)
    full_root = os.path.join(os.path.dirname(os.path.abspath(out_root)), "full")
    with_full = profile != "full" and os.path.isdir(full_root)
    old = {
        root: {name: c for (r, name), c in stale.items() if r == os.path.abspath(root)}
        for root in (out_root, full_root)
    }
    shrunk = ", ".join(f"{k}={v}" for k, v in studies.PROFILES[profile]["overrides"].items())
    lines = [
        "# Results",
        "",
        f"Written by `python -m experiments.run all --profile {profile}` on "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} "
        f"({'training what was missing' if trained else 'report only'}; "
        f"{seconds / 60:.1f} min).  ",
        f"Machine: {runs.machine()}.",
        "",
        "## Summary",
        "",
        (
            f"Profile **{profile}**: every run shrunk ({shrunk}), so these rank the units "
            "under a small budget and are not the configs' accuracy."
            if shrunk
            else f"Profile **{profile}**: the configs' budgets."
        )
        + " HTAF beside the best other unit of each final study (test split), "
        "mean ± std over the seeds named; selection studies read the validation split "
        "and are tabled below.",
        "",
        summary_table(out_root, old[out_root]),
        *_left_out(old[out_root]),
    ]
    if with_full:
        lines += [
            "At the default configs' budgets (full profile, the runs finished so far):",
            "",
            summary_table(full_root, old[full_root]),
            *_left_out(old[full_root]),
        ]
    lines += [
        "## Which split chose each default",
        "",
        "Rows: the study's first column "
        "(full profile where run), its best row changing that field alone (ICBM: "
        f"among rows with ≥ {studies.NEAR_BINARY[1]:g}% of activations within 0.01 of "
        "{0, 1}).",
        "",
        choices_table(full_root, out_root, stale=stale),
    ]
    for study in studies.STUDIES.values():
        folder, command = os.path.join(out_root, study.name), _command(study, profile)
        shown = (
            (
                _tables(folder, report_dir, 2, "results.md", "concepts/overview.png")
                if study.measure == "icbm_job"
                else []
            )
            or _tables(folder, report_dir)
            or ["_Not run yet._", ""]
        )
        made = old[out_root].get(study.name)
        job = os.path.join(folder, "results.json")
        if (
            study.measure == "icbm_job"
            and os.path.exists(job)
            and "commit" not in json.load(open(job))
        ):
            shown += [  # results written before they recorded date, machine and commit
                f"Commit: {runs.last_commit(job)} (the one its results came with; "
                "date and machine not recorded)",
                "",
            ]
        lines += [f"## {study.title}", ""]
        lines += _earlier(shown, made, command) if made else [f"Command: `{command}`", "", *shown]
    if with_full:
        lines += ["## Default budgets: full-profile runs finished so far", ""]
        for study in studies.STUDIES.values():
            shown = _tables(os.path.join(full_root, study.name), report_dir)
            made = old[full_root].get(study.name)
            lines += _earlier(shown, made, _command(study, "full")) if made and shown else shown
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def update_readme(report: str, path: str | None = None) -> bool:
    """README's results block := RESULTS.md's summary; False when the markers are missing."""
    path = path or os.path.join(REPO, "README.md")
    text, summary = open(path).read(), open(report).read()
    if README_START not in text or README_END not in text:
        return False
    summary = summary.split("## Summary\n", 1)[1].split("\n## ", 1)[0].strip()
    block = (
        f"{README_START}\nFrom `make results`; tables, plots, machine and date in "
        f"[RESULTS.md](RESULTS.md).\n\n{summary}\n{README_END}"
    )
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    with open(path, "w") as f:
        f.write(text[:start] + block + text[end:])
    return True
