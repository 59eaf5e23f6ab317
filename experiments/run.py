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
``--report-only`` rewrites each table from those runs and records, training nothing;
``--remeasure`` measures the finished runs again (a changed measure), training nothing.
"""

from __future__ import annotations

import collections
import fnmatch
import importlib
import json
import os
import re
import shlex
import sys
import time

import ml_collections
from absl import flags

from experiments import estimate, icbm, measures, report, runs, tables
from experiments.configs import studies
from experiments.study import tuned, tuning_points
from htaf_jax.train import ConfigError, cli, validate_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# name: <label>-s<seed>; command: trains this run alone; workdir None (and command ""):
# a test run of a tuned study whose value is not picked yet (its tuning runs unfinished);
# split: the split it reads (a tuning run: validation)
Run = collections.namedtuple("Run", "name label coords seed config workdir command split")


def config_file(study) -> str:
    return f"experiments/configs/{study.config}.py"


def run_config(study, point, seed: int | None, profile: str, split: str | None = None):
    """The config file + profile + study + point overrides, and the seed, validated: a
    field no run could train with (a smooth training mode for a unit without a smooth form)
    raises ConfigError naming the study, the point and the field. ``split``: the one the
    run reads (default: the study's)."""
    config = importlib.import_module(f"experiments.configs.{study.config}").get_config()
    overrides = {**studies.PROFILES[profile]["overrides"], **study.overrides}
    if (split or study.split) == "validation":
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


def _planned(study, point, seed, profile: str, out: str, split: str | None = None) -> Run:
    config = run_config(study, point, seed, profile, split)
    workdir = out if seed is None else runs.run_dir(out, point.label, seed, config)
    module = (
        "experiments.icbm"
        if study.measure == "icbm_job" or config.model.name == "icbm"
        else "experiments.train"
    )
    return Run(
        point.label if seed is None else f"{point.label}-s{seed}",
        point.label,
        point.coords,
        config.seed,
        config,
        workdir,
        runs.run_command(config, workdir, config_file(study), module),
        split or study.split,
    )


def plan(study, profile: str, out_root: str, only: list[str] = ()) -> list[Run]:
    """The study's runs under ``profile`` that ``only`` selects, with config, work dir,
    command. A tuned study (``Study.tune``): each point's validation runs over the grid
    (first seed), then its test runs with the value of the best of them, pending (no work
    dir) until they have all finished."""
    out, planned, seeds = os.path.join(out_root, study.name), [], study.seeds or (None,)
    stored = stored_records(study, out_root) if study.tune else {}
    for point in study.points:
        pending = False
        if study.tune:
            trials = [
                _planned(study, t, seeds[0], profile, out, "validation")
                for t in tuning_points(study, point)
            ]
            planned += trials
            key = study.columns[0].key
            scores = [
                tables.value(record, key) if record else None
                for record in (_record(r, out_root, stored) for r in trials)
            ]
            picked = tuned(study, point, scores)
            pending = picked is None
            point = picked or point  # pending: planned with the config's value, for estimates
        for seed in seeds:
            r = _planned(study, point, seed, profile, out)
            planned.append(r._replace(workdir=None, command="") if pending else r)
    return [run for run in planned if selected(run, only)]


def _record(run: Run, out_root: str, stored: dict) -> dict | None:
    """The run's record: its folder's, else its table's (``stored``), else None."""
    if run.workdir and runs.finished(run.workdir):
        return runs.read(run.workdir)
    return stored.get(os.path.relpath(run.workdir, out_root)) if run.workdir else None


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


PROVENANCE = ("date", "machine", "commit")


def stored_records(study, out_root: str) -> dict[str, dict]:
    """The run records the study's table JSON holds, by work dir: a run whose folder is
    gone (a fresh clone holds the tables, not the runs) but whose record is here under the
    same config hash is not trained again. ``_measured``: its date, machine and commit (the
    record's, else the table's; a table that records no commit: the one it came with)."""
    path = os.path.join(out_root, study.name, f"{study.table or study.name}.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        table = json.load(f)
    made = {"date": table.get("date"), "machine": table.get("machine")}
    made["commit"] = table.get("commit") or runs.last_commit(path)
    return {
        r["workdir"]: {**r, "_measured": {k: r.get(k) or made[k] for k in PROVENANCE}}
        for r in table.get("runs", [])
        if "workdir" in r
    }


def _made(measured: list[dict | None]) -> dict:
    """The table's date, machine and commit from its runs' (where every run has them):
    the one value, else the latest date and the several machines or commits named."""
    out = {}
    for key in PROVENANCE:
        values = sorted({m.get(key) if m else None for m in measured}, key=str)
        if values and None not in values:
            out[key] = (
                values[-1]
                if key == "date" or len(values) == 1
                else f"several (per run in the JSON): {', '.join(values)}"
            )
    return out


def run_study(
    study,
    profile: str,
    out_root: str,
    only: list[str] = (),
    report_only: bool = False,
    remeasure: bool = False,
) -> int:
    """Trains the study's missing runs (none with ``report_only``) and writes its table
    after each; returns the number of finished runs tabled. A tuned study trains its tuning
    runs first, then plans again: their picks make its test runs. ``remeasure``: the
    finished runs ``only`` selects are measured again (runs.train_or_reuse)."""
    planned = plan(study, profile, out_root)  # the table holds every finished run, --only or not
    again = (only, report_only, remeasure)
    records = _run_planned(study, profile, out_root, planned, *again)
    if not report_only and any(r.workdir is None for r in planned):
        planned = plan(study, profile, out_root)
        records = _run_planned(study, profile, out_root, planned, *again)
    return len(records)


def _run_planned(
    study,
    profile: str,
    out_root: str,
    planned: list[Run],
    only,
    report_only: bool,
    remeasure: bool = False,
) -> list[dict]:
    """run_study's pass over the planned runs: trains or reuses each, tables them."""
    meta = {
        "study": study.name,
        "title": study.title,
        "command": study_command(study.name, profile),
        **runs.provenance(),
        "split": study.split,
        "validation_size": studies.PROFILES[profile]["validation_size"],
        "config": config_file(study),
        "profile": profile,
        "overrides": {**studies.PROFILES[profile]["overrides"], **study.overrides},
        "seeds": list(study.seeds),
        "runs_planned": len(planned),
        **({"tune": {p: list(v) for p, v in study.tune.items()}} if study.tune else {}),
    }
    stem = os.path.join(out_root, study.name, study.table or study.name)
    stored, records, firsts, measured = stored_records(study, out_root), [], {}, []
    for run in planned:  # each point's first seed: the run the others' concepts match
        firsts.setdefault(run.label, run)
    for run in planned:
        if run.workdir is None:  # its value is picked once its tuning runs have finished
            continue
        rel = os.path.relpath(run.workdir, out_root)
        kept = not runs.finished(run.workdir) and rel in stored
        if not (runs.finished(run.workdir) or kept) and (report_only or not selected(run, only)):
            continue
        print(f"[{study.name}] {run.name}{' (record in its table)' if kept else ''}", flush=True)
        if kept:
            record = {
                k: v
                for k, v in stored[rel].items()
                if k not in ("label", "coords", "seed", "note", "workdir", "_measured", *run.coords)
            }
            record.update({k: v for k, v in stored[rel]["_measured"].items() if v})
        elif study.measure != "icbm_job":
            record = runs.train_or_reuse(
                run.config,
                run.workdir,
                measures.MEASURES[study.measure],
                run.command,
                remeasure and selected(run, only),
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
        if study.measure != "icbm_job":  # the command today's code rebuilds its config with
            record["command"] = run.command  # (a changed default: a flag more than at training)
        measured.append({k: record.get(k) for k in PROVENANCE})
        first = firsts[run.label]
        if (
            record.get("interpretability")
            and first != run
            and first.workdir
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
                **({"note": f"tuning run ({run.split} split)"} if run.split != study.split else {}),
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
        if study.columns:  # when, where and at which commit the runs were measured
            tables.write(stem, study, {**meta, **_made(measured)}, records)
    return records


def _table(study, out_root: str) -> dict:
    """The study's table JSON under ``out_root`` ({} where there is none)."""
    path = os.path.join(out_root, study.name, f"{study.table or study.name}.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def profile_roots(profile: str, out_root: str) -> dict[str, str]:
    """``out_root`` for ``profile`` and its sibling folders of the other profiles
    (results/quick beside results/full) where they exist."""
    parent = os.path.dirname(os.path.abspath(out_root))
    others = {p: os.path.join(parent, p) for p in studies.PROFILES if p != profile}
    return {profile: out_root, **{p: d for p, d in others.items() if os.path.isdir(d)}}


def timed_runs(roots: dict[str, str]) -> list[estimate.Timed]:
    """Every timed run that the results under ``roots`` (profile -> folder) hold: finished
    run folders and the records of the studies' tables, those of earlier code included
    (matched by label and seed), each with the config today's planner gives it."""
    pool = {}
    for profile, root in roots.items():
        for study in studies.STUDIES.values():
            if not os.path.isdir(os.path.join(root, study.name)):
                continue
            planned, table = plan(study, profile, root), _table(study, root)
            by_label = {}
            for r in planned:
                by_label.setdefault((r.label, r.seed), r)
                by_label.setdefault((r.label, None), r)  # another seed of the same point
            for label, seed, seconds, record in _timings(study, planned, table):
                r = by_label.get((label, seed)) or by_label.get((label, None))
                if r is not None and isinstance(seconds, (int, float)):
                    pool[(study.name, profile, label, seed)] = estimate.Timed(
                        f"{study.name} ({profile})",
                        float(seconds),
                        estimate.flat(r.config),
                        record.get("machine", table.get("machine")),
                        record.get("date", table.get("date")),
                    )
    return list(pool.values())


def _timings(study, planned: list[Run], table: dict):
    """(label, seed, seconds, record) of each timed run of the study: its table's records
    (an aggregate-only table: its rows, matched to points by their key columns), then its
    finished run folders."""
    for record in table.get("runs", []):
        named = re.fullmatch(
            r"(.+)-s(\d+)-[0-9a-f]{8}", os.path.basename(record.get("workdir", ""))
        )
        if named and "derived_from" not in record:
            yield named[1], int(named[2]), tables.value(record, "seconds"), record
    for row in [] if table.get("runs") else table.get("rows", []):
        point = next(
            (
                p
                for p in study.points
                if p.coords and all(row.get(k) == v for k, v in p.coords.items())
            ),
            None,
        )
        for seed in row.get("seeds", []) if point else []:
            yield point.label, seed, (row.get("seconds") or {}).get("mean"), {}
    for r in planned:
        if r.workdir and runs.finished(r.workdir):
            record = runs.read(r.workdir)
            yield r.label, r.seed, tables.value(record, "seconds"), record


def _table_path(study, out_root: str) -> str:
    """The file that holds the study's runs: its table's JSON (the ICBM job: its results)."""
    name = "results" if study.measure == "icbm_job" else study.table or study.name
    return os.path.join(out_root, study.name, f"{name}.json")


def recognised(study, profile: str, out_root: str) -> bool | None:
    """Whether today's planner plans every run the study's table under ``out_root`` holds
    (the ICBM job: whether its results name the planned config's hash); None: no table."""
    planned, path = plan(study, profile, out_root), _table_path(study, out_root)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        table = json.load(f)
    if study.measure == "icbm_job":
        return table.get("config_hash") == runs.config_hash(planned[0].config)
    held = {r["workdir"] for r in table.get("runs", []) if "workdir" in r}
    return bool(held) and held <= {
        os.path.relpath(r.workdir, out_root) for r in planned if r.workdir
    }


def stale_tables(roots: dict[str, str]) -> dict[tuple[str, str], str]:
    """(folder, study) -> the commit a table was made at (the one it records, else the last
    commit of its file), for each table under ``roots`` (profile -> folder) whose runs
    today's planner does not recognise; RESULTS.md labels them and README leaves them out."""
    stale = {}
    for profile, root in roots.items():
        for study in studies.STUDIES.values():
            if recognised(study, profile, root) is False:
                with open(_table_path(study, root)) as f:
                    made = json.load(f).get("commit")
                path = _table_path(study, root)
                stale[(os.path.abspath(root), study.name)] = (
                    made or runs.last_commit(path) or "unknown"
                )
    return stale


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def dry_run(
    study, profile: str, out_root: str, only: list[str] = (), pool: list | None = None
) -> tuple[int, int, float]:
    """Prints the study's finished and planned runs and an estimate of the time the rest
    take, saying what it is based on (experiments.estimate; ``pool``: the timed runs, by
    default those under ``out_root`` and its sibling profiles' folders); returns
    (finished, planned, seconds left where estimated)."""
    planned = plan(study, profile, out_root, only)
    stored = stored_records(study, out_root)
    left = [
        r
        for r in planned
        if not r.workdir
        or not (runs.finished(r.workdir) or os.path.relpath(r.workdir, out_root) in stored)
    ]
    pool = timed_runs(profile_roots(profile, out_root)) if pool is None else pool
    here = runs.machine()
    factors = estimate.machine_factors(pool, here)
    estimated = [
        (c, estimate.estimate(c, pool, here, factors))
        for c in (estimate.flat(r.config) for r in left)
    ]
    seconds = sum(e.seconds or 0.0 for _, e in estimated)
    line = f"[{study.name}] {len(planned) - len(left)} of {len(planned)} runs finished"
    if left:
        line += f"; the {len(left)} left ≈ {_duration(seconds)}: {estimate.describe(estimated, here, factors)}"
    print(f"{line}\n    {study_command(study.name, profile, only)}")
    return len(planned) - len(left), len(planned), seconds


def flag_values() -> flags.FlagValues:
    """The command's flags (tests parse RESULTS.md's commands with them)."""
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
    flags.DEFINE_bool(
        "remeasure",
        False,
        "Measure the finished runs --only selects (all without it) again with today's code, "
        "from their last checkpoint: no training; their recorded training time is kept.",
        flag_values=values,
    )
    flags.DEFINE_bool("list", False, "List every study and exit.", flag_values=values)
    return values


def main(argv: list[str] | None = None) -> int:
    values = flag_values()
    usage = __doc__ + "\nstudies: all, " + ", ".join(studies.STUDIES)
    names = cli.parse_command(values, list(sys.argv if argv is None else argv), usage)
    if values.list:
        for s in studies.STUDIES.values():  # the name column as wide as the longest name
            print(
                f"{s.name:{max(map(len, studies.STUDIES))}} "
                f"{s.num_runs:4} runs  {s.split:10}  {s.title}"
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
        pool = timed_runs(profile_roots(values.profile, out_root))
        counts = [
            dry_run(studies.STUDIES[n], values.profile, out_root, values.only, pool) for n in chosen
        ]
        print(
            f"total: {sum(c[0] for c in counts)} of {sum(c[1] for c in counts)} runs "
            f"finished; the rest ≈ {_duration(sum(c[2] for c in counts))} (estimated as above)"
        )
        return 0
    for name in chosen:
        print(f"\n=== {study_command(name, values.profile, values.only)}", flush=True)
        run_study(
            studies.STUDIES[name],
            values.profile,
            out_root,
            values.only,
            report_only,
            values.remeasure,
        )
    if names == ["all"]:
        stale = stale_tables(profile_roots(values.profile, out_root))
        path = report.write(
            out_root,
            values.profile,
            time.perf_counter() - start,
            trained=not report_only,
            stale=stale,
        )
        report.update_readme(path)
        print(f"written: {path} and README.md's results block")
    return 0


if __name__ == "__main__":
    sys.exit(main())
