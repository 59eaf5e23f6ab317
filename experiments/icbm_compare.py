r"""ICBM comparison: the standard model vs ICBMs with HTAF, sigmoid and
straight-through concept layers, over backbones, concept counts and seeds.

    python -m experiments.icbm compare --out results/icbm --seeds 0,1,2 \
        --backbones mlp,cnn --concepts 32,128

Every run trains in its own work dir ``OUT/runs/<backbone>-<variant>[-k<K>]-s<seed>-<hash>``
(the hash covers every field that changes what a run computes, so a changed
setting never reuses an old run); a run whose ``results.json`` exists is
reused, so an interrupted sweep resumes where it stopped. Writes
``OUT/icbm_results.md`` and ``.json``: mean ± std over seeds. Any config
field can be overridden for all runs, e.g. ``--config.num_epochs=4``;
``--report_only`` trains nothing and writes the tables from the runs already
finished.
"""
from __future__ import annotations

import datetime
import json
import os
import sys

import ml_collections
from absl import flags
from ml_collections import config_flags

from experiments import icbm as icbm_lib
from experiments import runs

# Concept layer per variant; everything else (backbone, optimiser, budget,
# concept noise) comes from the config, so only the binary unit changes.
VARIANTS = {
    "htaf": {"surrogate": "htaf", "concept_mode": "smooth"},  # config's α, β
    "htaf_hard": {"surrogate": "htaf", "concept_mode": "hard"},
    "sigmoid": {"surrogate": "sigmoid", "surrogate_kwargs": {}, "concept_mode": "smooth"},
    "straight_through": {"surrogate": "straight_through", "surrogate_kwargs": {},
                         "concept_mode": "hard"},
}
COLUMNS = [("hard_accuracy", "hard acc %", 100), ("vs_standard", "Δ vs standard (pts)", 1),
           ("hard_soft_gap", "soft − hard (pts)", 1), ("near_binary@0.01", "within 0.01 %", 100),
           ("near_binary@0.1", "within 0.1 %", 100), ("seconds", "train s", 1)]


def run_config(base, backbone: str, variant: str, num_concepts: int, seed: int):
    config = ml_collections.ConfigDict(base.to_dict())
    config.seed, config.baseline = seed, False
    config.model.backbone = backbone
    if backbone != base.model.backbone:
        config.model.backbone_kwargs = ml_collections.ConfigDict()  # that backbone's defaults
    config.model.num_concepts = num_concepts
    if variant == "standard":
        return icbm_lib.baseline_config(config)
    for key, value in VARIANTS[variant].items():
        config.model[key] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value
    return config


def run_dir(out: str, config, backbone: str, variant: str, num_concepts: int, seed: int) -> str:
    k = "" if variant == "standard" else f"-k{num_concepts}"
    return runs.run_dir(out, f"{backbone}-{variant}{k}", seed, config)


def _record(config, result, seconds: float) -> dict:
    split = next(iter(result.metrics)).split("/")[0]
    record = {"model": icbm_lib.describe_model(config.model), "seconds": seconds,
              "hard_accuracy": result.metrics[f"{split}/accuracy"]}
    if config.model.name == "icbm":
        measured = icbm_lib.analyse(config, result.params, result.batch_stats, None, grids=False)
        measured.pop("class_concepts")
        record.update(measured)
    return record


def train_one(config, workdir: str, config_file: str = icbm_lib.DEFAULT_CONFIG) -> dict:
    """Trains (or reuses, see experiments/runs.py) one run; returns its measurements.

    The run stores the command that trains it alone: the ICBM main job (without
    the baseline, measuring the concepts), or the engine for the standard model."""
    module = "experiments.icbm" if config.model.name == "icbm" else "experiments.train"
    return runs.train_or_reuse(config, workdir, _record,
                               command=runs.run_command(config, workdir, config_file, module))


def table(records: dict, seeds, command: str, planned: int | None = None) -> tuple[str, list[dict]]:
    """Markdown table and JSON rows, one per (backbone, variant, K); with ``planned`` (the
    command's number of runs) a table of fewer finished runs says it is unfinished."""
    rows, lines = [], []
    header = "| backbone | model | K | " + " | ".join(c[1] for c in COLUMNS) + " | seeds |"
    lines += [header, "|" + "---|" * (4 + len(COLUMNS))]
    for (backbone, variant, k), by_seed in records.items():
        standard = records.get((backbone, "standard", None), {})
        row = {"backbone": backbone, "variant": variant, "num_concepts": k,
               "seeds": sorted(by_seed)}
        cells = []
        for key, _, scale in COLUMNS:
            if key == "vs_standard":
                values = [100 * (r["hard_accuracy"] - standard[s]["hard_accuracy"])
                          for s, r in by_seed.items() if s in standard] if variant != "standard" else []
            else:
                values = [r.get(key) for r in by_seed.values()]
            mean, std, text = runs.mean_std(values, scale)
            row[key] = {"mean": mean, "std": std}
            cells.append(text)
        rows.append(row)
        lines.append(f"| {backbone} | {variant} | {k or '—'} | " + " | ".join(cells)
                     + f" | {len(by_seed)} |")
    intro = [f"# ICBM comparison (mean ± std over seeds {','.join(map(str, seeds))})", "",
             f"Command: `{command}`  ",
             f"Config: `{icbm_lib.DEFAULT_CONFIG}` with the command's overrides  ",
             f"Machine: {runs.machine()}  ",
             f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}", "",
             "hard acc: test accuracy with hard concepts z ∈ {0,1}^K (the standard model: its "
             "accuracy); soft − hard: accuracy with the smooth concept form minus hard; within ε: "
             "share of test concept activations (smooth form) within ε of {0,1}; n/a: the "
             "straight-through layer has no smooth form (it trains and predicts hard).", ""]
    done = sum(len(by_seed) for by_seed in records.values())
    if planned is not None and done < planned:
        intro += [f"**Unfinished:** {runs.unfinished_runs(done, planned)} (the seeds column "
                  "counts each row's); rerunning the command trains only the missing runs.", ""]
    return "\n".join(intro + lines) + "\n", rows


def plan(argv: list[str]) -> dict:
    """What ``icbm compare argv`` would run, training nothing: out, seeds, and one entry
    per run (backbone, variant, K, seed, config, work dir)."""
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", icbm_lib.DEFAULT_CONFIG, "Base ICBM config.",
                                    flag_values=values, lock_config=False,
                                    sys_argv=["icbm compare"] + list(argv))
    flags.DEFINE_string("out", "results/icbm", "Output folder.", flag_values=values)
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.", flag_values=values)
    flags.DEFINE_list("backbones", ["mlp", "cnn"], "Backbones.", flag_values=values)
    flags.DEFINE_list("concepts", ["32", "128"], "Concept counts K.", flag_values=values)
    flags.DEFINE_list("variants", ["standard"] + list(VARIANTS), "Models.", flag_values=values)
    flags.DEFINE_bool("report_only", False, "Train nothing: write the table from the runs "
                      "already finished (it says how many of the planned runs that is).",
                      flag_values=values)
    from htaf_jax.train import cli
    cli.exit_with_help_if_asked(values, ["icbm compare"] + list(argv), __doc__)
    values(["icbm compare"] + list(argv))
    base = values.config
    config_path = cli._resolve(icbm_lib.DEFAULT_CONFIG)
    if not os.path.exists(str(config_path)):
        raise FileNotFoundError(config_path)
    seeds = [int(s) for s in values.seeds]
    planned = []
    for backbone in values.backbones:
        for variant in values.variants:
            ks = [None] if variant == "standard" else [int(k) for k in values.concepts]
            for k in ks:
                for seed in seeds:
                    config = run_config(base, backbone, variant, k or base.model.num_concepts, seed)
                    planned.append({"backbone": backbone, "variant": variant, "k": k,
                                    "seed": seed, "config": config,
                                    "workdir": run_dir(values.out, config, backbone, variant,
                                                       k or 0, seed)})
    return {"out": values.out, "seeds": seeds, "runs": planned, "report_only": values.report_only,
            "config_file": values["config"].config_filename}


def main(argv: list[str]) -> int:
    p = plan(argv)
    out, seeds = p["out"], p["seeds"]
    command = "python -m experiments.icbm compare " + " ".join(runs.without_report_only(argv))
    todo = runs.to_run(p, "icbm compare")
    if not todo:
        return 0
    records: dict = {}
    for run in todo:
        print(f"[icbm compare] {os.path.basename(run['workdir'])}", flush=True)
        record = train_one(run["config"], run["workdir"], p["config_file"])
        records.setdefault((run["backbone"], run["variant"], run["k"]), {})[run["seed"]] = record
        text, rows = table(records, seeds, command, planned=len(p["runs"]))
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "icbm_results.md"), "w") as f:
            f.write(text)
        with open(os.path.join(out, "icbm_results.json"), "w") as f:
            json.dump({"command": command, "rows": rows}, f, indent=2)
    print(text)
    print(f"written: {out}/icbm_results.md, {out}/icbm_results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
