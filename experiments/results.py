r"""`make results`: every experiment sweep, then RESULTS.md and README's short table.

    python -m experiments.results                    # full budget: default configs, seeds 0,1,2
    python -m experiments.results --profile quick    # the same studies on a reduced budget
    python -m experiments.results --only snn_mlp,icbm --dry-run
    python -m experiments.results --tables-only      # the full profile's tables, from the runs done

A *study* is one sweep command (``experiments.sweep`` or ``experiments.icbm
compare``) with its own output folder under ``results/<profile>/``. Every run
inside a study is keyed by a hash of its config (experiments/runs.py),
so an interrupted ``make results`` continues where it stopped and reuses the
finished runs; ``--dry-run`` prints the commands and how many runs each
study holds without training anything, and ``--tables-only`` writes each
study's table from its finished runs alone (flagged unfinished), which is how
a profile run in pieces shows what it has so far.

RESULTS.md embeds each study's table and figure (written by the study's own
command, which each table names with its machine and date), the ICBM main
job's concept figures, and a summary table; README.md's block between the
``results`` markers is rewritten with that summary. The full profile is long
on 2 CPU cores (about 10 minutes per default run; see ``--dry-run``): run it
on a bigger host or leave it overnight; ``quick`` shrinks every run.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import time
from typing import NamedTuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = "0,1,2"


# The DHN variants of Kong, Chen, Langer & Schmidt-Hieber (arXiv 2505.00110): skip
# connections, or some linear units per layer, restore what plain DHNs cannot
# express. Compared at every depth with HTAF, the peers' default (atan), a sharp
# surrogate and straight-through, rather than all 11, to keep the profile's cost down.
DHN_VARIANT_SURROGATES = "htaf,atan,fast_sigmoid,straight_through"
DHN_VARIANTS = (("plain", "dhn_depths"), ("skip", "dhn_skip"), ("mixed", "dhn_mixed"))


class Study(NamedTuple):
    name: str        # output sub-folder and --only key
    module: str      # "sweep" | "icbm_compare" | "icbm"
    args: tuple      # arguments of that command (without --out / overrides)
    title: str


STUDIES = (
    Study("snn_mlp", "sweep", ("--family", "snn_mlp", "--seeds", SEEDS, "--surrogates", "all"),
          "Spiking MLP (LIF): HTAF vs every surrogate"),
    Study("snn_conv", "sweep", ("--family", "snn_conv", "--seeds", SEEDS, "--surrogates", "all"),
          "Spiking convnet (LIF): HTAF vs every surrogate"),
    Study("bnn_mlp", "sweep", ("--family", "bnn_mlp", "--seeds", SEEDS, "--surrogates", "all"),
          "Binary MLP: HTAF vs every surrogate"),
    Study("bnn_conv", "sweep", ("--family", "bnn_conv", "--seeds", SEEDS, "--surrogates", "all"),
          "Binary convnet: HTAF vs every surrogate"),
    Study("dhn_depths", "sweep", ("--family", "dhn_mlp", "--depths", "2,4,8,16", "--seeds", SEEDS,
                                  "--surrogates", "all"),
          "Deep Heaviside MLP: accuracy and gradient norms against depth"),
    Study("dhn_skip", "sweep", ("--family", "dhn_mlp", "--depths", "2,4,8,16", "--seeds", SEEDS,
                                "--surrogates", DHN_VARIANT_SURROGATES,
                                "--config.model.variant=skip"),
          "Deep Heaviside MLP with skip connections: accuracy and gradient norms against depth"),
    Study("dhn_mixed", "sweep", ("--family", "dhn_mlp", "--depths", "2,4,8,16", "--seeds", SEEDS,
                                 "--surrogates", DHN_VARIANT_SURROGATES,
                                 "--config.model.variant=mixed"),
          "Deep Heaviside MLP with a quarter of linear units per layer: accuracy and gradient "
          "norms against depth"),
    Study("alpha_beta", "sweep", ("--family", "dhn_mlp", "--alphas", "2,4,8,16",
                                  "--betas", "0.5,1,2", "--seeds", "0"),
          "HTAF α/β sweep (DHN MLP, depth 4, validation split)"),
    Study("icbm_compare", "icbm_compare", ("--seeds", SEEDS, "--backbones", "mlp,cnn",
                                           "--concepts", "32,128"),
          "ICBM: HTAF vs sigmoid and straight-through concept layers vs the standard model"),
    Study("icbm_main", "icbm", (), "ICBM main job (`make run`): concept figures"),
)

# Config overrides applied to every run of a profile. quick: the same studies
# (every surrogate, three seeds) with every run shrunk to a tenth of the
# training images for 2 epochs and 2000 test images; it ranks the surrogates
# under a small budget and is not the default configs' accuracy.
PROFILES = {
    "full": {"overrides": (), "studies": {}},
    "quick": {
        "overrides": ("--config.train_subset=6000", "--config.num_epochs=2",
                      "--config.test_subset=2000", "--config.progress=False"),
        "studies": {"alpha_beta": ("--config.validation_size", "2000")},
    },
}
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def _replace_flag(args: tuple, extra: tuple) -> list[str]:
    """``args`` with each ``--flag value`` pair of ``extra`` replacing the same flag's value
    (a ``--config.field`` pair is appended as one ``--config.field=value`` override)."""
    args = list(args)
    for flag, value in zip(extra[::2], extra[1::2]):
        if flag.startswith("--config."):
            args.append(f"{flag}={value}")
        elif flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    return args


def study_argv(study: Study, profile: str, out_root: str) -> list[str]:
    """The study's full argument list under ``profile``, writing into ``out_root/<name>``."""
    spec = PROFILES[profile]
    args = _replace_flag(study.args, spec["studies"].get(study.name, ()))
    out = os.path.join(out_root, study.name)
    if study.module == "icbm":
        return ["--workdir", out, *spec["overrides"]]
    return [*args, "--out", out, *spec["overrides"]]


def run_study(study: Study, argv: list[str]) -> int:
    if study.module == "sweep":
        from experiments import sweep
        return sweep.main(argv)
    if study.module == "icbm_compare":
        from experiments import icbm_compare
        return icbm_compare.main(argv)
    from experiments import icbm
    return icbm.main(["experiments.icbm", *argv])


def command_line(study: Study, argv: list[str]) -> str:
    prog = {"sweep": "python -m experiments.sweep", "icbm": "python -m experiments.icbm",
            "icbm_compare": "python -m experiments.icbm compare"}[study.module]
    return " ".join([prog, *argv])


# --------------------------------------------------------------------------- report

def _load(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _demote(markdown: str, levels: int = 2) -> str:
    """Study tables start with '# '; nest them under RESULTS.md's sections."""
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + levels) + " ", markdown,
                  flags=re.M)


def _study_files(out: str) -> list[str]:
    if not os.path.isdir(out):
        return []
    return sorted(f for f in os.listdir(out) if f.endswith(".md") and not f.startswith("."))


def summary_rows(out_root: str) -> list[tuple[str, str, str, str]]:
    """(model, HTAF, best other surrogate, note) for README's short table."""
    rows = []
    for name, label in (("snn_mlp", "SNN MLP"), ("snn_conv", "SNN conv"),
                        ("bnn_mlp", "BNN MLP"), ("bnn_conv", "BNN conv")):
        data = _load(os.path.join(out_root, name, f"{name}_surrogates.json"))
        if data and data.get("rows"):
            rows.append((label, *_htaf_vs_best(data["rows"]), f"seeds {_seeds(data)}"))
    for variant, study in DHN_VARIANTS:
        data = _load(os.path.join(out_root, study, "dhn_mlp_depths.json"))
        if data and data.get("rows"):
            name = "DHN MLP" if variant == "plain" else f"DHN MLP ({variant})"
            for depth in sorted({r["depth"] for r in data["rows"]}):
                at = [r for r in data["rows"] if r["depth"] == depth]
                rows.append((f"{name} depth {depth}", *_htaf_vs_best(at),
                             f"seeds {_seeds(data)}"))
    data = _load(os.path.join(out_root, "icbm_compare", "icbm_results.json"))
    if data and data.get("rows"):
        for r in data["rows"]:
            if r["variant"] != "htaf":
                continue
            std = next((s for s in data["rows"] if s["backbone"] == r["backbone"]
                        and s["variant"] == "standard"), None)
            acc = r["hard_accuracy"]
            rows.append((f"ICBM {r['backbone']} K={r['num_concepts']} (hard concepts)",
                         _pm(acc), "standard head: " + (_pm(std["hard_accuracy"]) if std else "n/a"),
                         f"within 0.01 of {{0,1}}: {_pm(r['near_binary@0.01'], 1)}%"))
    return rows


def _pm(cell: dict, digits: int = 2) -> str:
    if not cell or cell.get("mean") is None:
        return "n/a"
    return f"{cell['mean']:.{digits}f} ± {cell['std']:.{digits}f}"


def _seeds(data: dict) -> str:
    return ",".join(map(str, data.get("seeds", [])))


def _htaf_vs_best(rows: list[dict]) -> tuple[str, str]:
    htaf = next((r for r in rows if r["surrogate"] == "htaf"), None)
    others = [r for r in rows if r["surrogate"] != "htaf" and r["accuracy"]["mean"] is not None]
    best = max(others, key=lambda r: r["accuracy"]["mean"], default=None)
    return (htaf["accuracy"]["text"] if htaf else "n/a",
            f"{best['surrogate']}: {best['accuracy']['text']}" if best else "n/a")


def summary_table(out_root: str) -> str:
    rows = summary_rows(out_root)
    if not rows:
        return "_No finished study yet._\n"
    lines = ["| model | HTAF test acc % | best other surrogate (or baseline) | note |",
             "|---|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    return "\n".join(lines) + "\n"


def write_report(out_root: str, profile: str, commands: dict, seconds: float,
                 path: str = os.path.join(REPO, "RESULTS.md"), ran: tuple = ()) -> str:
    from experiments import runs
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rel_root = os.path.relpath(out_root, os.path.dirname(path))
    invocation = "make results" + ("" if profile == "full" else f" PROFILE={profile}")
    lines = ["# Results", "",
             f"Written by `{invocation}` (`python -m experiments.results --profile {profile}`) "
             f"on {date}.  ", f"Machine: {runs.machine()}.  ",
             f"Wall time of this invocation: {seconds / 60:.1f} min"
             f" ({'studies trained or reused: ' + ', '.join(ran) if ran else 'report only'}; "
             "finished runs are reused, so a rerun only trains what is missing).  ",
             "All accuracies are on real Fashion-MNIST (60k/10k), mean ± std over the seeds "
             "each table names." if profile == "full" else
             f"Profile **{profile}**: every run is shrunk ({', '.join(PROFILES[profile]['overrides'])}),"
             " so these numbers rank the surrogates under a small budget; they are not the default"
             " configs' accuracy (each config's docstring holds that, measured). The full "
             "profile is `make results`.", "",
             "## Summary", "", summary_table(out_root)]
    results_root = os.path.dirname(os.path.abspath(out_root))
    lines += _full_profile_so_far(results_root, os.path.dirname(path), profile)
    for study in STUDIES:
        if study.name not in commands:
            continue
        out = os.path.join(out_root, study.name)
        lines += [f"## {study.title}", "", f"Command: `{commands[study.name]}`", ""]
        if study.module == "icbm":
            summary = os.path.join(out, "results.md")
            if os.path.exists(summary):
                lines += [_demote(open(summary).read()), ""]
            overview = os.path.join(out, "concepts", "overview.png")
            if os.path.exists(overview):
                lines += [f"![concept overview]({rel_root}/{study.name}/concepts/overview.png)", ""]
            continue
        lines += _tables(out, os.path.dirname(path)) or ["_Not run yet._", ""]
    lines += dhn_variants_section(out_root, os.path.dirname(path))
    lines += _other_sweeps(os.path.dirname(os.path.abspath(out_root)), os.path.dirname(path))
    text = "\n".join(lines)
    with open(path, "w") as f:
        f.write(text)
    return text


def dhn_variants_section(out_root: str, report_dir: str) -> list[str]:
    """Plain vs skip vs mixed DHNs against depth, from the three depth studies: a table of
    HTAF's accuracy and the best other surrogate's, and ``dhn_variants.png`` (HTAF and
    straight-through, mean ± std over seeds). Empty until two of the studies have tables."""
    data = {v: _load(os.path.join(out_root, study, "dhn_mlp_depths.json"))
            for v, study in DHN_VARIANTS}
    data = {v: d for v, d in data.items() if d and d.get("rows")}
    if len(data) < 2:
        return []
    depths = sorted({r["depth"] for d in data.values() for r in d["rows"]})
    lines = ["## Deep Heaviside MLP: plain vs skip vs mixed against depth", "",
             "From the depth studies above (same budget, seeds as each table names): HTAF's "
             "test accuracy % and the best of the other surrogates compared there. Kong, Chen, "
             "Langer & Schmidt-Hieber (arXiv 2505.00110) show that plain deep Heaviside "
             "networks are limited in what they express, and that skip connections or some "
             "linear units per layer lift that; this is the training-side counterpart.", "",
             "| depth | " + " | ".join(f"{v}: HTAF | {v}: best other" for v in data) + " |",
             "|---|" + "---|---|" * len(data)]
    for depth in depths:
        cells = []
        for d in data.values():
            cells += list(_htaf_vs_best([r for r in d["rows"] if r["depth"] == depth]))
        lines.append(f"| {depth} | " + " | ".join(cells) + " |")
    figure = os.path.join(out_root, "dhn_variants.png")
    _plot_dhn_variants(figure, data, depths)
    lines += ["", f"![dhn_variants]({os.path.relpath(figure, report_dir)})", ""]
    return lines


def _plot_dhn_variants(path: str, data: dict, depths: list[int]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = {"plain": "tab:blue", "skip": "tab:orange", "mixed": "tab:green"}
    for variant, d in data.items():
        for surrogate, style in (("htaf", "-"), ("straight_through", ":")):
            rows = sorted((r for r in d["rows"] if r["surrogate"] == surrogate
                           and r["accuracy"]["mean"] is not None), key=lambda r: r["depth"])
            if rows:
                ax.errorbar([r["depth"] for r in rows], [r["accuracy"]["mean"] for r in rows],
                            yerr=[r["accuracy"]["std"] for r in rows], fmt="o" + style,
                            color=colors.get(variant), capsize=3,
                            label=f"{variant}, {surrogate}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.set_xlabel("hidden layers")
    ax.set_ylabel("test accuracy %")
    ax.set_title("Deep Heaviside MLP variants (solid: HTAF, dotted: straight-through)",
                 fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


FULL_SO_FAR = ("`make results` (the full profile: default configs, every surrogate, seeds "
               "0,1,2) has not yet run end to end here; these are its studies' tables with "
               "the runs finished so far, at the default budgets, written by `python -m "
               "experiments.results --tables-only`: each names its study's command and says "
               "how many of that command's runs have finished. `make results` reuses them.")


def _full_profile_so_far(results_root: str, report_dir: str, profile: str) -> list[str]:
    """In a report of a reduced profile: the full profile's studies that have tables on
    disk (runs trained at the default budgets, e.g. HTAF only so far)."""
    full_root = os.path.join(results_root, "full")
    studies = [s for s in STUDIES if s.module != "icbm"
               and _study_files(os.path.join(full_root, s.name))]
    if profile == "full" or not studies:
        return []
    lines = ["## Default budgets: full-profile runs finished so far", "", FULL_SO_FAR, "",
             summary_table(full_root)]
    for study in studies:
        lines += _tables(os.path.join(full_root, study.name), report_dir)
    return lines


def _tables(out: str, report_dir: str, levels: int = 2) -> list[str]:
    """Each markdown table in ``out`` (headings demoted) and the plot of the same name."""
    lines, rel = [], os.path.relpath(out, report_dir)
    for name in _study_files(out):
        lines += [_demote(open(os.path.join(out, name)).read(), levels), ""]
        png = name[:-3] + ".png"
        if os.path.exists(os.path.join(out, png)):
            lines += [f"![{name[:-3]}]({rel}/{png})", ""]
    return lines


def _other_sweeps(results_root: str, report_dir: str) -> list[str]:
    """Sections for the sweep tables under ``results/<folder>/`` that no profile wrote
    (single sweeps run by hand, e.g. at a reduced budget); each names its own command."""
    folders = sorted(d for d in os.listdir(results_root)
                     if d not in PROFILES and os.path.isdir(os.path.join(results_root, d))
                     and _study_files(os.path.join(results_root, d))) \
        if os.path.isdir(results_root) else []
    if not folders:
        return []
    lines = ["## Other sweeps on disk", "",
             "Run by hand, outside `make results`; each table names its command and budget.", ""]
    for folder in folders:
        lines += [f"### `results/{folder}`", ""]
        lines += _tables(os.path.join(results_root, folder), report_dir, levels=3)
    return lines


def update_readme(out_root: str, profile: str, path: str = os.path.join(REPO, "README.md")) -> bool:
    """Rewrites README's results block; False when the markers are missing."""
    text = open(path).read()
    if README_START not in text or README_END not in text:
        return False
    note = ("" if profile == "full" else
            f" Profile **{profile}** (reduced budget: "
            f"{', '.join(PROFILES[profile]['overrides'])}).")
    block = (f"{README_START}\nFrom `make results{'' if profile == 'full' else f' PROFILE={profile}'}`"
             f"; full tables, plots, machine and date in [RESULTS.md](RESULTS.md).{note}\n\n"
             f"{summary_table(out_root)}")
    full_root = os.path.join(os.path.dirname(os.path.abspath(out_root)), "full")
    if profile != "full" and summary_rows(full_root):
        block += ("\nAt the default configs' budgets (full profile, the runs finished so far; "
                  "[RESULTS.md](RESULTS.md#default-budgets-full-profile-runs-finished-so-far)):"
                  "\n\n" + summary_table(full_root))
    block += README_END
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    with open(path, "w") as f:
        f.write(text[:start] + block + text[end:])
    return True


class Status(NamedTuple):
    """A study's runs as its command plans them: how many finished, and an estimate of the
    time the rest will take (``None`` when none has finished to time)."""
    finished: int
    total: int
    seconds: list           # training seconds of the finished runs
    left_s: float | None    # estimated seconds for the unfinished runs
    borrowed: int = 0       # unfinished runs timed from another backbone's or depth's runs


def _estimate(runs_timed: list[tuple[object, float | None]]) -> tuple[float | None, int]:
    """(seconds for the unfinished runs, how many were timed from another group) from
    ``(group, seconds or None if unfinished)`` pairs: an unfinished run counts the mean of
    the finished runs of its group (backbone or DHN depth), else of the whole study."""
    finished = [t for _, t in runs_timed if t is not None]
    if not finished:
        return None, 0
    by_group: dict = {}
    for group, t in runs_timed:
        if t is not None:
            by_group.setdefault(group, []).append(t)
    overall = sum(finished) / len(finished)
    left, borrowed = 0.0, 0
    for group, t in runs_timed:
        if t is None:
            same = by_group.get(group)
            left += sum(same) / len(same) if same else overall
            borrowed += not same
    return left, borrowed


def plan_status(study: Study, argv: list[str]) -> Status:
    """The finished and planned runs of a study's command, with an estimate for the rest;
    paths in ``argv`` are relative to the working directory. Trains nothing."""
    if study.module == "icbm":
        out = argv[argv.index("--workdir") + 1]
        done = int(os.path.exists(os.path.join(out, "results.json")))
        return Status(done, 1, [], None)
    if study.module == "sweep":
        from experiments import sweep
        planned = sweep.plan(argv)["runs"]
    else:
        from experiments import icbm_compare
        planned = icbm_compare.plan(argv)["runs"]
    timed = []
    for run in planned:
        record = _load(os.path.join(run["workdir"], "results.json"))
        group = run.get("backbone", run.get("depth"))
        timed.append((group, None if record is None else float(record.get("seconds", 0.0))))
    seconds = [t for _, t in timed if t is not None]
    left_s, borrowed = _estimate(timed)
    return Status(len(seconds), len(planned), seconds, left_s, borrowed)


def dry_run_total(statuses: list[Status]) -> str:
    """One line: runs finished of all planned, and the time left where it can be estimated."""
    finished = sum(s.finished for s in statuses)
    total = sum(s.total for s in statuses)
    timed = [s.left_s for s in statuses if s.left_s and s.total > s.finished]
    untimed = sum(s.total - s.finished for s in statuses if s.left_s is None)
    line = f"total: {finished} of {total} runs finished"
    if timed:
        line += f"; ≈ {sum(timed) / 3600:.1f} h left in the studies with finished runs to time"
    if untimed:
        line += f"; {untimed} runs in studies with none finished yet (not estimated)"
    return line


def dry_run_line(name: str, status: Status) -> str:
    left = status.total - status.finished
    line = f"[{name}] {status.finished} of {status.total} runs finished"
    if left and status.left_s is not None:
        line += (f"; the {left} left ≈ {status.left_s / 3600:.1f} h at its finished runs' "
                 "times (per backbone or depth where it has several), on the machine that "
                 "ran them")
        if status.borrowed:
            line += (f"; {status.borrowed} of them timed from another depth or backbone, "
                     "so less reliable")
    elif left:
        line += f"; {left} to train (none finished yet to time)"
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.results",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--only", default="", help="comma-separated study names: "
                        + ", ".join(s.name for s in STUDIES))
    parser.add_argument("--out", default=None, help="default: results/<profile>")
    parser.add_argument("--dry-run", action="store_true",
                        help="print each study's command and how many of its runs are finished "
                        "(with a time estimate for the rest); train nothing")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite RESULTS.md and README from what is on disk")
    parser.add_argument("--tables-only", action="store_true",
                        help="train nothing: rewrite each study's own table and plot from its "
                        "finished runs (each says how many of its runs that is), e.g. for the "
                        "part of the full profile done so far; RESULTS.md is left as it is")
    args = parser.parse_args(argv)
    names = [s.name for s in STUDIES]
    only = [n for n in args.only.split(",") if n]
    unknown = [n for n in only if n not in names]
    if unknown:
        parser.error(f"unknown studies {unknown}; valid: {', '.join(names)}")
    out_root = args.out or os.path.join(REPO, "results", args.profile)
    start = time.perf_counter()
    commands, statuses = {}, []
    for study in STUDIES:
        argv_s = study_argv(study, args.profile, os.path.relpath(out_root, REPO))
        commands[study.name] = command_line(study, argv_s)
        if only and study.name not in only:
            continue
        if args.dry_run:
            cwd = os.getcwd()
            os.chdir(REPO)
            try:
                status = plan_status(study, argv_s)
            finally:
                os.chdir(cwd)
            print(f"{dry_run_line(study.name, status)}\n    {commands[study.name]}")
            statuses.append(status)
            continue
        if args.report_only or (args.tables_only and study.module == "icbm"):
            continue
        if args.tables_only:
            argv_s = [*argv_s, "--report_only"]
        print(f"\n=== [results] {study.name}: {commands[study.name]}", flush=True)
        t = time.perf_counter()
        cwd = os.getcwd()
        os.chdir(REPO)  # the studies' --out paths are relative to the repository
        try:
            code = run_study(study, argv_s)
        finally:
            os.chdir(cwd)
        if code:
            print(f"[results] {study.name} failed with status {code}", file=sys.stderr)
            return code
        print(f"[results] {study.name} done in {(time.perf_counter() - t) / 60:.1f} min",
              flush=True)
    if args.dry_run:
        print(dry_run_total(statuses))
        return 0
    if args.tables_only:
        return 0
    ran = () if args.report_only else tuple(s.name for s in STUDIES
                                            if not only or s.name in only)
    write_report(out_root, args.profile, commands, time.perf_counter() - start, ran=ran)
    updated = update_readme(out_root, args.profile)
    print(f"written: RESULTS.md{', README.md results block' if updated else ''} "
          f"({(time.perf_counter() - start) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
