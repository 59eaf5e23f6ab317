"""The ICBM main job (`make run`'s command) and its explain CLI, end to end on a
real Fashion-MNIST subset."""
import glob
import json
import os
import re

import numpy as np
import pytest

from experiments import icbm as icbm_job
from data_marks import needs_data

pytestmark = needs_data

TINY = ["--config.train_subset=512", "--config.test_subset=200", "--config.num_epochs=2",
        "--config.batch_size=64", "--config.model.backbone_kwargs.widths=(32,)",
        "--config.model.num_concepts=16", "--config.grid_concepts=2", "--config.grid_size=4",
        "--config.progress=False", "--config.tensorboard=False"]


def test_main_job_writes_its_outputs_and_explain_adds_up(tmp_path, capsys):
    workdir = str(tmp_path / "icbm")
    assert icbm_job.main(["icbm", "--workdir", workdir, *TINY]) == 0
    summary = capsys.readouterr().out
    assert "test accuracy with hard concepts" in summary and "targets:" in summary
    record = json.load(open(os.path.join(workdir, "results.json")))
    icbm, baseline = record["icbm"], record["baseline"]
    # Chance is 0.1; these bounds sit well above it and below what this tiny run
    # reaches on seeds 0, 1 and 2, so a model that does not learn fails them.
    assert icbm["hard_accuracy"] >= 0.25 and baseline["accuracy"] >= 0.4
    # The engine's eval step and the analysis score the same hard-concept model.
    assert icbm["hard_accuracy"] == pytest.approx(record["engine_metrics"]["test/accuracy"])
    assert icbm["hard_soft_gap"] == pytest.approx(
        100 * (icbm["soft_accuracy"] - icbm["hard_accuracy"]))
    # The discretisation measures, recomputed from the restored run by their definition.
    from htaf_jax import interpret
    from htaf_jax.train import load_config
    from htaf_jax.train.restore import model_from_run as rebuild
    config = load_config(workdir)
    images, labels, _ = icbm_job.load_test_set(config)
    acts = interpret.concept_activations(rebuild(workdir)[0], icbm_job.restore_variables(workdir),
                                         images)
    distance = np.minimum(np.abs(acts.soft), np.abs(1 - acts.soft))
    for eps in ("0.01", "0.1"):
        assert icbm[f"near_binary@{eps}"] == pytest.approx(np.mean(distance <= float(eps)))
    assert icbm["hard_accuracy"] == pytest.approx(np.mean(acts.logits.argmax(-1) == labels))
    assert icbm["concept_rate"] == pytest.approx(acts.hard.mean())
    # The interpretability measures (tests/test_measures.py checks their values).
    mi = icbm["interpretability"]
    assert mi["on_rate"] == pytest.approx(icbm["concept_rate"])
    assert mi["completeness"] == pytest.approx(
        (icbm["hard_accuracy"] - mi["chance_accuracy"])
        / (baseline["accuracy"] - mi["chance_accuracy"]))
    assert mi["leakage"] == pytest.approx(mi["soft_probe"] - mi["hard_probe"])
    assert "- interpretability: purity" in summary
    # The sharpening is a function of the train step the engine passes: no counter in the
    # state; the model rebuilt from the run knows the length of training it ran for.
    from htaf_jax.train.restore import load_derived, model_from_run
    assert "sharpness" not in icbm_job.restore_variables(workdir)["batch_stats"]
    model, _ = model_from_run(workdir)
    assert model.sharpen == 16.0
    assert model.total_train_steps == load_derived(workdir)["total_train_steps"] > 0
    for path in ["concepts/overview.png", "results.md", "baseline/summary.json"]:
        assert os.path.exists(os.path.join(workdir, path)), path
    assert len(glob.glob(os.path.join(workdir, "concepts", "c*_top.png"))) == 2

    assert icbm_job.main(["icbm", "explain", "--workdir", workdir, "--index", "3",
                          "--flip", "0"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"prediction: \S", text) and "true label:" in text
    # Each listed class: logit = bias + the active concepts' contributions.
    sums = re.findall(r"logit (-?\d+\.\d+) = bias (-?\d+\.\d+) \+ (-?\d+\.\d+) from", text)
    assert sums
    for logit, bias, total in sums:
        assert float(logit) == pytest.approx(float(bias) + float(total), abs=2e-3)
    assert "intervention: c0 switched" in text and "largest logit changes:" in text


def test_explain_on_a_work_dir_without_a_run_says_how_to_make_one(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        icbm_job.main(["icbm", "explain", "--workdir", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "no config.json" in err and "python -m experiments.icbm --workdir" in err


def test_compare_tables_every_model_and_reuses_finished_runs(tmp_path, capsys):
    from experiments import icbm_compare
    out = str(tmp_path / "compare")
    argv = ["--seeds", "0", "--backbones", "mlp", "--concepts", "8",
            "--variants", "standard,htaf,straight_through", "--out", out,
            *[a for a in TINY if "grid" not in a and "num_concepts" not in a]]
    assert icbm_job.main(["icbm", "compare", *argv]) == 0
    rows = json.load(open(os.path.join(out, "icbm_results.json")))["rows"]
    assert [(r["variant"], r["num_concepts"]) for r in rows] == [
        ("standard", None), ("htaf", 8), ("straight_through", 8)]
    st = rows[2]
    assert st["near_binary@0.01"]["mean"] is None  # no smooth form: n/a, not a number
    htaf = rows[1]
    htaf_run = json.load(open(glob.glob(os.path.join(out, "runs", "mlp-htaf-k8-s0-*",
                                                     "results.json"))[0]))
    assert htaf["near_binary@0.01"]["mean"] == pytest.approx(  # one seed, in %
        100 * htaf_run["near_binary@0.01"])
    assert htaf["near_binary@0.01"]["std"] == 0
    assert htaf_run["command"].startswith("python -m experiments.icbm --config ")
    assert htaf["vs_standard"]["mean"] == pytest.approx(  # points, from accuracies in %
        htaf["hard_accuracy"]["mean"] - rows[0]["hard_accuracy"]["mean"])
    assert "| mlp | straight_through | 8 |" in open(os.path.join(out, "icbm_results.md")).read()
    finished = glob.glob(os.path.join(out, "runs", "*", "results.json"))
    assert len(finished) == 3
    mtimes = {p: os.path.getmtime(p) for p in finished}
    capsys.readouterr()
    assert icbm_compare.main(argv) == 0  # all finished: nothing retrains
    assert {p: os.path.getmtime(p) for p in finished} == mtimes
    plan = icbm_compare.plan(argv)["runs"]
    assert sorted(r["workdir"] for r in plan) == sorted(os.path.dirname(p) for p in finished)
    more = argv + ["--variants", "standard,htaf,straight_through,sigmoid", "--report_only"]
    assert icbm_compare.main(more) == 0  # trains nothing, tables what has finished
    assert sorted(glob.glob(os.path.join(out, "runs", "*", "results.json"))) == sorted(finished)
    text = open(os.path.join(out, "icbm_results.md")).read()
    assert "**Unfinished:** 3 of the command's 4 runs have finished" in text
    assert "--report_only" not in text and "standard,htaf,straight_through,sigmoid" in text
