r"""Run a study of experiments/configs/studies.py: plan, train what is missing, write its table.

    python -m experiments.run --list                      # every study: runs, split, title
    python -m experiments.run snn_mlp --profile quick     # train what is missing, write the table
    python -m experiments.run dhn_depths --dry-run        # finished / planned runs, time left
    python -m experiments.run icbm_compare --only 'mlp-htaf*,mlp-standard'  # trains those
    python -m experiments.run all                         # `make results`: all studies, RESULTS.md
    python -m experiments.run all --report-only           # tables and reports, training nothing

Runs live in ``results/<profile>/<study>/runs/<label>-s<seed>-<hash>`` (experiments/runs.py):
a finished run is reused, an interrupted one resumes, and a run whose folder is gone but
whose record its table's JSON holds (same config hash: a fresh clone) is not trained again.
``--report-only`` rewrites each table from those runs and records, training nothing.
"""

from __future__ import annotations

import collections
import datetime
import fnmatch
import importlib
import json
import os
import shlex
import sys
import time

import ml_collections
from absl import flags

from experiments import icbm, measures, report, runs, tables
from experiments.configs import studies
from htaf_jax.train import ConfigError, cli, validate_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# name: <label>-s<seed>; command: trains this run alone
Run = collections.namedtuple("Run", "name label coords seed config workdir command")


def config_file(study) -> str:
    return f"experiments/configs/{study.config}.py"


def run_config(study, point, seed: int | None, profile: str):
    """The config file + profile + study + point overrides, and the seed, validated: a
    field no run could train with (a smooth training mode for a unit without a smooth form)
    raises ConfigError naming the study, the point and the field."""
    config = importlib.import_module(f"experiments.configs.{study.config}").get_config()
    overrides = {**studies.PROFILES[profile]["overrides"], **study.overrides}
    if study.split == "validation":
        overrides["validation_size"] = studies.PROFILES[profile]["validation_size"]
    for path, value in {
        **overrides,
        **point.overrides,
        **({} if seed is None else {"seed": seed}),
    }.items():
        *parents, leaf = path.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        value = value(config) if callable(value) else value
        node[leaf] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value
    try:
        validate_config(config)
    except ConfigError as e:
        raise ConfigError(f"study {study.name}, run {point.label}: {e}") from None
    return config


def selected(run: Run, only: list[str]) -> bool:
    """Whether ``--only``'s patterns (none: all) match the run's point label or its name."""
    return not only or any(fnmatch.fnmatch(n, p) for p in only for n in (run.label, run.name))


def plan(study, profile: str, out_root: str, only: list[str] = ()) -> list[Run]:
    """The study's runs under ``profile`` that ``only`` selects, with config, work dir, command."""
    out, planned = os.path.join(out_root, study.name), []
    for point in study.points:
        for seed in study.seeds or (None,):
            config = run_config(study, point, seed, profile)
            workdir = out if seed is None else runs.run_dir(out, point.label, seed, config)
            module = (
                "experiments.icbm"
                if study.measure == "icbm_job" or config.model.name == "icbm"
                else "experiments.train"
            )
            planned.append(
                Run(
                    point.label if seed is None else f"{point.label}-s{seed}",
                    point.label,
                    point.coords,
                    config.seed,
                    config,
                    workdir,
                    runs.run_command(config, workdir, config_file(study), module),
                )
            )
    return [run for run in planned if selected(run, only)]


def study_command(name: str, profile: str, only: list[str] = ()) -> str:
    return shlex.join(
        [
            "python",
            "-m",
            "experiments.run",
            name,
            "--profile",
            profile,
            *(["--only", ",".join(only)] if only else []),
        ]
    )


def stored_records(study, out_root: str) -> dict[str, dict]:
    """The run records the study's table JSON holds, by work dir: a run whose folder is
    gone (a fresh clone holds the tables, not the runs) but whose record is here under the
    same config hash is not trained again."""
    path = os.path.join(out_root, study.name, f"{study.table or study.name}.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        table = json.load(f)
    return {
        r["workdir"]: {**r, "_measured": {k: table.get(k) for k in ("date", "machine")}}
        for r in table.get("runs", [])
        if "workdir" in r
    }


def run_study(
    study, profile: str, out_root: str, only: list[str] = (), report_only: bool = False
) -> int:
    """Trains the study's missing runs (none with ``report_only``) and writes its table
    after each; returns the number of finished runs tabled."""
    planned = plan(study, profile, out_root)  # the table holds every finished run, --only or not
    meta = {
        "study": study.name,
        "title": study.title,
        "command": study_command(study.name, profile),
        "machine": runs.machine(),
        "date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        "split": study.split,
        "validation_size": studies.PROFILES[profile]["validation_size"],
        "config": config_file(study),
        "profile": profile,
        "overrides": {**studies.PROFILES[profile]["overrides"], **study.overrides},
        "seeds": list(study.seeds),
        "runs_planned": len(planned),
    }
    stem = os.path.join(out_root, study.name, study.table or study.name)
    stored, records, firsts, measured = stored_records(study, out_root), [], {}, []
    for run in planned:  # each point's first seed: the run the others' concepts match
        firsts.setdefault(run.label, run)
    for run in planned:
        rel = os.path.relpath(run.workdir, out_root)
        kept = not runs.finished(run.workdir) and rel in stored
        if not (runs.finished(run.workdir) or kept) and (report_only or not selected(run, only)):
            continue
        print(f"[{study.name}] {run.name}{' (record in its table)' if kept else ''}", flush=True)
        measured.append(stored[rel]["_measured"] if kept else None)
        if kept:
            record = {
                k: v
                for k, v in stored[rel].items()
                if k not in ("label", "coords", "seed", "note", "workdir", "_measured", *run.coords)
            }
        elif study.measure != "icbm_job":
            record = runs.train_or_reuse(
                run.config, run.workdir, measures.MEASURES[study.measure], run.command
            )
        else:  # the job's folder is not keyed by its config: its record names the config
            if runs.finished(run.workdir) and runs.read(run.workdir).get(
                "config_hash"
            ) != runs.config_hash(run.config):
                raise SystemExit(
                    f"{run.workdir} holds the job of another config (its "
                    f"results.json names no config hash or another one); "
                    f"remove the folder to rerun it: rm -r {run.workdir}"
                )
            record = (
                runs.read(run.workdir)
                if runs.finished(run.workdir)
                else icbm.run(run.config, run.workdir, run.command)
            )
        first = firsts[run.label]
        if (
            record.get("interpretability")
            and first != run
            and runs.finished(first.workdir)
            and runs.finished(run.workdir)
        ):
            record["stability"] = measures.stability(run.workdir, first.workdir)
        records.append(
            {
                "label": run.label,
                "coords": run.coords,
                **run.coords,
                "seed": run.seed,
                "workdir": rel,
                **record,
            }
        )
        for label, coords, row in study.derived(records[-1]) if study.derived else ():
            # a row the run's record holds (no work dir of its own: not a stored run)
            records.append(
                {
                    "label": label,
                    "coords": coords,
                    **coords,
                    "seed": run.seed,
                    "derived_from": rel,
                    **row,
                }
            )
        if study.columns:  # every record from the table: its measurement's date and machine
            same = None not in measured and len({json.dumps(m) for m in measured}) == 1
            tables.write(stem, study, {**meta, **(measured[0] if same else {})}, records)
    return len(records)


def dry_run(study, profile: str, out_root: str, only: list[str] = ()) -> tuple[int, int, float]:
    """Prints the study's finished and planned runs and a time estimate for the rest (the
    mean of its finished runs' seconds); returns (finished, planned, seconds left)."""
    planned = plan(study, profile, out_root, only)
    stored = stored_records(study, out_root)
    seconds = [
        tables.value(
            runs.read(r.workdir)
            if runs.finished(r.workdir)
            else stored[os.path.relpath(r.workdir, out_root)],
            "seconds",
        )
        for r in planned
        if runs.finished(r.workdir) or os.path.relpath(r.workdir, out_root) in stored
    ]
    left = len(planned) - len(seconds)
    estimate = sum(seconds) / len(seconds) * left if seconds else 0.0
    line = f"[{study.name}] {len(seconds)} of {len(planned)} runs finished"
    if left:
        line += (
            f"; the {left} left ≈ {estimate / 3600:.1f} h at its finished runs' mean time"
            if seconds
            else f"; {left} to train (none finished yet to time)"
        )
    print(f"{line}\n    {study_command(study.name, profile, only)}")
    return len(seconds), len(planned), estimate


def main(argv: list[str] | None = None) -> int:
    values = flags.FlagValues()
    flags.DEFINE_enum(
        "profile",
        "full",
        sorted(studies.PROFILES),
        "full: the configs' budgets; quick: every run shrunk.",
        flag_values=values,
    )
    flags.DEFINE_list(
        "only",
        [],
        "Train only runs whose label or name matches a pattern ("
        "'htaf*', 'htaf-s1'); tables keep every finished run.",
        flag_values=values,
    )
    flags.DEFINE_string("out", None, "Default: results/<profile>.", flag_values=values)
    flags.DEFINE_bool(
        "dry-run",
        False,
        "Print each study's finished and planned runs; train nothing.",
        flag_values=values,
    )
    flags.DEFINE_bool(
        "report-only",
        False,
        "Train nothing: tables (with 'all': RESULTS.md, README's block) from the finished runs.",
        flag_values=values,
    )
    flags.DEFINE_bool("list", False, "List every study and exit.", flag_values=values)
    usage = __doc__ + "\nstudies: all, " + ", ".join(studies.STUDIES)
    names = cli.parse_command(values, list(sys.argv if argv is None else argv), usage)
    if values.list:
        for s in studies.STUDIES.values():  # the name column as wide as the longest name
            print(
                f"{s.name:{max(map(len, studies.STUDIES))}} "
                f"{len(s.points) * max(1, len(s.seeds)):4} runs  {s.split:10}  {s.title}"
            )
        return 0
    chosen = list(studies.STUDIES) if names == ["all"] else names
    if len(names) != 1 or any(n not in studies.STUDIES for n in chosen):
        print(
            f"run: error: name one study or 'all'; studies: {', '.join(studies.STUDIES)}",
            file=sys.stderr,
        )
        return 2
    try:
        return _run(values, names, chosen)
    except ConfigError as e:  # a run of the study that the config checks refuse
        print(f"run: error: {cli.one_line(e)}", file=sys.stderr)
        return 1


def _run(values, names: list[str], chosen: list[str]) -> int:
    out_root = values.out or os.path.join(REPO, "results", values.profile)
    start, report_only = time.perf_counter(), values["report-only"].value
    if values["dry-run"].value:
        counts = [
            dry_run(studies.STUDIES[n], values.profile, out_root, values.only) for n in chosen
        ]
        print(
            f"total: {sum(c[0] for c in counts)} of {sum(c[1] for c in counts)} runs "
            f"finished; ≈ {sum(c[2] for c in counts) / 3600:.1f} h left where timed"
        )
        return 0
    for name in chosen:
        print(f"\n=== {study_command(name, values.profile, values.only)}", flush=True)
        run_study(studies.STUDIES[name], values.profile, out_root, values.only, report_only)
    if names == ["all"]:
        path = report.write(
            out_root, values.profile, time.perf_counter() - start, trained=not report_only
        )
        report.update_readme(path)
        print(f"written: {path} and README.md's results block")
    return 0


if __name__ == "__main__":
    sys.exit(main())
