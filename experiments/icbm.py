"""The ICBM main job (`make run`): train the ICBM, then the standard model on the same
backbone and budget (``config.baseline``, in ``baseline/``), then measure the concepts.

    python -m experiments.icbm --workdir workdirs/icbm [--config.model.backbone=cnn]

Config: ``experiments/configs/icbm_sparse.py`` (the sparse recipe; ``icbm.py``: the dense
one) unless ``--config`` names another. Writes ``results.json``, ``results.md`` and
``concepts/*.png`` (experiments.icbm_analysis) to the work dir; explain one eval image:
``python -m experiments.icbm_explain --workdir workdirs/icbm --index 0``.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time

import ml_collections

from experiments import icbm_analysis, runs
from experiments.configs import studies
from htaf_jax._atomic import replace_on_close
from htaf_jax.train import cli, train_and_evaluate
from htaf_jax.train.distributed import is_main_process

DEFAULT_CONFIG = "experiments/configs/icbm_sparse.py"


def run(config: ml_collections.ConfigDict, workdir: str, command: str | None = None) -> dict:
    """The main job; returns the results dict written to ``workdir/results.json``.

    ``command`` (what ``results.json`` records; default: from ``sys.argv``) reproduces this
    run alone. In a multi-process run every process trains (the steps are collective), and
    only process 0 measures and writes; the others return {}.
    """
    timings, start = {}, time.perf_counter()
    result = train_and_evaluate(config, workdir)
    timings["ICBM training"] = time.perf_counter() - start
    baseline = None
    if config.get("baseline", False):  # the standard model on the same backbone and budget
        t, base = time.perf_counter(), ml_collections.ConfigDict(config.to_dict())
        base.model = ml_collections.ConfigDict(studies.standard_head(config))
        metrics = train_and_evaluate(base, os.path.join(workdir, "baseline")).metrics
        baseline = {k.split("/", 1)[1]: v for k, v in metrics.items()}
        timings["baseline training"] = time.perf_counter() - t
    if not is_main_process():
        return {}
    t = time.perf_counter()
    measured = icbm_analysis.analyse(config, result.params, result.batch_stats, workdir)
    icbm_analysis.add_completeness(measured, baseline)
    timings["analysis"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    made = runs.provenance()  # date, machine, commit
    record = {
        "model": icbm_analysis.describe_model(config.model),
        "icbm": measured,
        "baseline": baseline,
        "targets": icbm_analysis.targets(config, measured, baseline),
        "engine_metrics": result.metrics,
        "seconds": timings,
        "command": command or command_line(sys.argv),
        "config_hash": runs.config_hash(config),
        **made,
    }
    text = icbm_analysis.summarise(config, measured, baseline, timings, workdir) + "\n\n"
    text += "  \n".join(
        [f"Run alone: `{record['command']}`", *(f"{k.capitalize()}: {v}" for k, v in made.items())]
    )
    write_results(workdir, record, text)
    print(text)
    return record


def write_results(workdir: str, record: dict, text: str) -> None:
    """``results.json`` and ``results.md``, each whole or absent if the job is killed
    while writing them (a rerun writes them again)."""
    with replace_on_close(os.path.join(workdir, "results.json")) as f:
        json.dump(record, f, indent=2)
    with replace_on_close(os.path.join(workdir, "results.md")) as f:
        f.write(text + "\n")


def command_line(argv: list[str]) -> str:
    """The command that runs the job with ``argv`` (this run's arguments, not the parent's)."""
    return shlex.join(["python", "-m", "experiments.icbm", *argv[1:]])


def main(argv: list[str] | None = None) -> int:
    command = command_line(list(sys.argv if argv is None else argv))
    return cli.main(
        argv,
        default_config=DEFAULT_CONFIG,
        train_fn=lambda config, workdir: run(config, workdir, command),
    )


if __name__ == "__main__":
    sys.exit(main())
