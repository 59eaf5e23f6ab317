"""Per-unit tuning in a comparison study (``Study.tune``): each unit's validation runs over
one grid, then its test runs with the value of its best one, recorded in the table. Planning
and picking only: the runs' records are written by hand, nothing trains."""

import json
import os

import pytest
from helpers import TINY_DHN

from experiments import report, run, tables
from experiments.configs import studies
from experiments.study import Study, tuned, tuning_points

GRID = (1e-3, 2e-3)


def _study() -> Study:
    return Study(
        "tiny_tune",
        "A tiny tuned comparison",
        "dhn_mlp",
        tuple(studies.units(["htaf", "atan"])),
        seeds=(0, 1),
        overrides={**TINY_DHN, "model.depth": 2},
        tune={"learning_rate": GRID},
    )


def _finish(r, accuracy: float, split: str) -> None:
    os.makedirs(r.workdir, exist_ok=True)
    with open(os.path.join(r.workdir, "results.json"), "w") as f:
        json.dump({"split": split, "accuracy": accuracy, "seconds": 1.0}, f)


def test_tuning_points_and_the_pick():
    study = _study()
    htaf = study.points[0]
    points = tuning_points(study, htaf)
    assert [p.label for p in points] == ["htaf-learning_rate0.001", "htaf-learning_rate0.002"]
    assert points[1].coords == {"surrogate": "htaf", "learning_rate": 2e-3}
    assert points[1].overrides == {"model.surrogate": "htaf", "learning_rate": 2e-3}
    assert tuned(study, htaf, [0.8, None]) is None  # one still running
    best = tuned(study, htaf, [0.8, 0.85])
    assert (best.label, best.coords["learning_rate"], best.overrides["learning_rate"]) == (
        "htaf",
        2e-3,
        2e-3,
    )
    assert tuned(study, htaf, [0.9, 0.9]).coords["learning_rate"] == 1e-3  # a tie: the first
    assert study.keys == ["surrogate", "learning_rate"] and study.num_runs == 2 * (2 + 2)


def test_test_runs_wait_for_their_units_tuning_runs_and_take_its_pick(tmp_path, count_trainings):
    study, out = _study(), str(tmp_path)
    planned = run.plan(study, "quick", out)
    trials = [r for r in planned if r.split == "validation"]
    assert [r.name for r in trials] == [
        "htaf-learning_rate0.001-s0",
        "htaf-learning_rate0.002-s0",
        "atan-learning_rate0.001-s0",
        "atan-learning_rate0.002-s0",
    ]
    assert all(
        r.config.validation_size == studies.PROFILES["quick"]["validation_size"] for r in trials
    )
    assert [r.config.learning_rate for r in trials] == [*GRID, *GRID]
    pending = [r for r in planned if r.split == "test"]
    assert [r.name for r in pending] == ["htaf-s0", "htaf-s1", "atan-s0", "atan-s1"]
    assert all(r.workdir is None and r.command == "" for r in pending)
    # The dry run counts them as left and estimates them with the config's own value.
    assert run.dry_run(study, "quick", out)[:2] == (0, 8)

    for r, accuracy in zip(trials, (0.80, 0.85, 0.90, 0.90)):
        if r.label != "atan-learning_rate0.002":
            _finish(r, accuracy, "validation")
    planned = run.plan(study, "quick", out)
    by_name = {r.name: r for r in planned}
    assert by_name["htaf-s1"].config.learning_rate == 2e-3
    assert by_name["htaf-s1"].coords == {"surrogate": "htaf", "learning_rate": 2e-3}
    assert by_name["htaf-s1"].config.validation_size == 0 and by_name["htaf-s1"].workdir
    assert "--config.learning_rate=0.002" in by_name["htaf-s1"].command
    assert by_name["atan-s0"].workdir is None  # one of its tuning runs is not finished
    _finish(trials[3], 0.90, "validation")  # atan: a tie, the first value of the grid
    by_name = {r.name: r for r in run.plan(study, "quick", out)}
    assert by_name["atan-s0"].config.learning_rate == 1e-3
    assert not count_trainings


def test_the_table_records_each_units_pick_and_the_summary_reads_its_test_runs(
    tmp_path, monkeypatch, count_trainings
):
    study, out = _study(), str(tmp_path)
    monkeypatch.setitem(studies.STUDIES, study.name, study)
    for r, accuracy in zip(
        [r for r in run.plan(study, "quick", out) if r.split == "validation"],
        (0.80, 0.85, 0.90, 0.70),
    ):
        _finish(r, accuracy, "validation")
    tested = [r for r in run.plan(study, "quick", out) if r.split == "test"]
    for r, accuracy in zip(tested, (0.84, 0.86, 0.83, 0.83)):
        _finish(r, accuracy, "test")
    assert run.run_study(study, "quick", out, report_only=True) == 8
    assert not count_trainings
    stem = os.path.join(out, study.name, study.name)
    table = json.load(open(stem + ".json"))
    assert table["tune"] == {"learning_rate": list(GRID)}
    rows = {r["label"]: r for r in table["rows"]}
    assert rows["htaf"]["learning_rate"] == 2e-3 and rows["atan"]["learning_rate"] == 1e-3
    assert rows["htaf-learning_rate0.001"]["split"] == "validation"
    assert rows["htaf-learning_rate0.001"]["note"] == "tuning run (validation split)"
    md = open(stem + ".md").read()
    assert "- htaf: learning_rate=0.002 (validation acc %: 0.001: 80.00, 0.002: 85.00)" in md
    assert "- atan: learning_rate=0.001 (validation acc %: 0.001: 90.00, 0.002: 70.00)" in md
    # README's summary: HTAF's and atan's test rows, not the tuning runs.
    summary = report.summary_table(out)
    assert "| tiny_tune | 85.00 ± 1.41 | atan: 83.00 ± 0.00 | — | 0,1 |" in summary
    assert summary.count("tiny_tune") == 1
    assert tables.tuning_lines(study, table["rows"])[0].startswith(
        "Tuned per row on the validation split (seed 0;"
    )

    # A fresh clone (the runs' folders gone, the table kept): the picks come from the
    # table's records, and every run counts as finished.
    for r in run.plan(study, "quick", out):
        os.remove(os.path.join(r.workdir, "results.json"))
    planned = run.plan(study, "quick", out)
    assert all(r.workdir for r in planned)
    assert run.dry_run(study, "quick", out)[:2] == (8, 8)
    assert run.recognised(study, "quick", out) is True


def test_the_binary_resnet_comparison_tunes_every_units_rate_on_one_grid():
    study = studies.STUDIES["bnn_resnet"]
    assert study.tune == {"learning_rate": studies.BNN_RESNET_LRS}
    planned = run.plan(study, "full", "r")
    trials = [r for r in planned if r.split == "validation"]
    assert {(r.config.model.surrogate, r.config.learning_rate, r.seed) for r in trials} == {
        (u, lr, 0) for u in ("htaf", "ste_sign", "approx_sign") for lr in studies.BNN_RESNET_LRS
    }
    assert all(r.config.validation_size == 10000 for r in trials)
    assert {(r.config.model.surrogate, r.seed) for r in planned if r.split == "test"} == {
        (u, s) for u in ("htaf", "ste_sign", "approx_sign") for s in (0, 1, 2)
    }


@pytest.mark.parametrize("name", [n for n, s in studies.STUDIES.items() if s.tune])
def test_a_tuned_study_compares_units_on_the_test_split(name):
    study = studies.STUDIES[name]
    assert study.split == "test" and study.seeds and study.columns[0].key == "accuracy"
