"""The ICBM main job (`make run`'s command) and its explain CLI, end to end on a
real Fashion-MNIST subset."""

import dataclasses
import glob
import json
import os
import re

import numpy as np
import pytest
from data_marks import needs_data
from helpers import TINY_ICBM, flags

from experiments import icbm as icbm_job
from experiments import icbm_analysis, icbm_explain, run
from experiments.configs import studies

pytestmark = needs_data
TINY = flags(TINY_ICBM)


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
        100 * (icbm["soft_accuracy"] - icbm["hard_accuracy"])
    )
    # The discretisation measures, recomputed from the restored run by their definition.
    from htaf_jax import interpret
    from htaf_jax.train import load_config
    from htaf_jax.train.restore import model_from_run as rebuild

    config = load_config(workdir)
    # The targets block, as tests/test_icbm_targets.py checks it on known numbers.
    assert record["targets"] == icbm_analysis.targets(config, icbm, baseline)
    assert "hard acc − standard (pts)" in summary and "margin" in summary
    images, labels, _ = icbm_analysis.load_eval_set(config)
    acts = interpret.concept_activations(
        rebuild(workdir)[0], icbm_explain.restore_variables(workdir), images
    )
    distance = np.minimum(np.abs(acts.soft), np.abs(1 - acts.soft))
    for eps in ("0.01", "0.1"):
        assert icbm[f"near_binary@{eps}"] == pytest.approx(np.mean(distance <= float(eps)))
    assert icbm["hard_accuracy"] == pytest.approx(np.mean(acts.logits.argmax(-1) == labels))
    # Stability of a run against itself: every concept matched to itself, agreement 1,
    # chance the agreement of independent codes with its on-rates p: mean p² + (1 − p)².
    from experiments import measures

    p = np.asarray(acts.hard, np.float64).mean(axis=0)
    assert measures.stability(workdir, workdir) == pytest.approx(
        {"agreement": 1.0, "chance": float(np.mean(p**2 + (1 - p) ** 2))}
    )
    assert os.path.exists(os.path.join(workdir, "stability.json"))  # cached for the report
    assert icbm["concept_rate"] == pytest.approx(acts.hard.mean())
    # The interpretability measures (tests/test_measures.py checks their values).
    mi = icbm["interpretability"]
    assert mi["on_rate"] == pytest.approx(icbm["concept_rate"])
    assert mi["completeness"] == pytest.approx(
        (icbm["hard_accuracy"] - mi["chance_accuracy"])
        / (baseline["accuracy"] - mi["chance_accuracy"])
    )
    assert mi["leakage"] == pytest.approx(mi["soft_probe"] - mi["hard_probe"])
    assert "- interpretability: purity" in summary
    # The sharpening is a function of the train step the engine passes: no counter in the
    # state; the model rebuilt from the run knows the length of training it ran for.
    from htaf_jax.train.restore import load_derived, model_from_run

    assert "sharpness" not in icbm_explain.restore_variables(workdir)["batch_stats"]
    model, _ = model_from_run(workdir)
    assert model.sharpen == 16.0
    assert model.total_train_steps == load_derived(workdir)["total_train_steps"] > 0
    for path in ["concepts/overview.png", "results.md", "baseline/summary.json"]:
        assert os.path.exists(os.path.join(workdir, path)), path
    assert len(glob.glob(os.path.join(workdir, "concepts", "c*_top.png"))) == 2

    assert (
        icbm_explain.main(["icbm_explain", "--workdir", workdir, "--index", "3", "--flip", "0"])
        == 0
    )
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
        icbm_explain.main(["icbm_explain", "--workdir", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "no config.json" in err and "python -m experiments.icbm --workdir" in err


@pytest.mark.slow  # trains every model of the study end to end
def test_compare_study_tables_every_model_and_reuses_finished_runs(
    tmp_path, capsys, count_trainings
):
    layers = [p for p in studies.CONCEPT_LAYERS if p.label in ("htaf", "straight_through")]
    tiny = {k: v for k, v in TINY_ICBM.items() if "grid" not in k and "num_concepts" not in k}
    study = dataclasses.replace(
        studies.STUDIES["icbm_compare"],
        name="compare",
        seeds=(0,),
        points=studies.icbm_points(studies.BACKBONES[:1], layers, [8]),
        overrides={"baseline": False, **tiny},
    )
    out = str(tmp_path)
    assert run.run_study(study, "full", out) == 3
    result = json.load(open(os.path.join(out, "compare", "icbm_results.json")))
    rows = {r["label"]: r for r in result["rows"]}
    assert list(rows) == ["mlp-standard", "mlp-htaf-k8", "mlp-straight_through-k8"]
    assert rows["mlp-straight_through-k8"]["near_binary@0.01"]["mean"] is None  # no smooth form
    htaf, standard = rows["mlp-htaf-k8"], rows["mlp-standard"]
    htaf_run = json.load(
        open(glob.glob(os.path.join(out, "compare", "runs", "mlp-htaf-k8-s0-*", "results.json"))[0])
    )
    assert htaf["near_binary@0.01"]["mean"] == pytest.approx(100 * htaf_run["near_binary@0.01"])
    assert htaf["near_binary@0.01"]["std"] == 0
    assert htaf_run["command"].startswith("python -m experiments.icbm --config ")
    assert htaf["hard_accuracy_vs_standard"]["mean"] == pytest.approx(  # points
        htaf["hard_accuracy"]["mean"] - standard["hard_accuracy"]["mean"]
    )
    assert htaf["interpretability.purity"]["mean"] == pytest.approx(
        htaf_run["interpretability"]["purity"]
    )
    assert (
        "| mlp | straight_through | 8 |"
        in open(os.path.join(out, "compare", "icbm_results.md")).read()
    )
    assert len(count_trainings) == 3
    assert run.run_study(study, "full", out) == 3 and len(count_trainings) == 3  # all reused
