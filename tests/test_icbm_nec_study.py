"""The icbm_nec study end to end on a real Fashion-MNIST subset: a tiny ICBM and its
standard model trained by the runner, the NEC curve, the random-code row its record holds,
the further tables and figures; and icbm_explain at a NEC."""

import dataclasses
import json
import os

import numpy as np
import pytest
from data_marks import needs_data
from helpers import TINY_ICBM

from experiments import icbm_explain, icbm_nec, run
from experiments.configs import icbm_sparse, studies
from htaf_jax.data.sources import read_split
from htaf_jax.train import load_config, restore_params

pytestmark = needs_data


def test_nec_data_evaluates_on_the_validation_split_a_run_held_out():
    config = icbm_sparse.get_config()
    config.train_subset, config.test_subset = 300, 50
    _, y_train, _, y_test, names = icbm_nec.data(config)
    assert (len(y_train), len(y_test), len(names)) == (300, 50, 10)
    np.testing.assert_array_equal(y_test, read_split(config.dataset, "test", None, 0, 50).labels)
    config.validation_size = 100  # a validation run: the last 100 training images, 50 read
    _, y_fit, _, y_eval, _ = icbm_nec.data(config)
    np.testing.assert_array_equal(y_fit, y_train)
    held_out = read_split(config.dataset, "train", None, 60000 - 100, 60000 - 50).labels
    np.testing.assert_array_equal(y_eval, held_out)


@pytest.mark.slow  # trains the study's runs end to end
def test_nec_study_tables_the_curve_the_random_row_and_the_rest(tmp_path, capsys):
    study = dataclasses.replace(
        studies.STUDIES["icbm_nec"],
        seeds=(0,),
        points=tuple(
            p for p in studies.STUDIES["icbm_nec"].points if p.label in ("mlp-standard", "mlp-htaf")
        ),
        overrides={**studies.STUDIES["icbm_nec"].overrides, **TINY_ICBM},
    )
    # Two runs tabled, and the random-code rows the HTAF run's record holds.
    assert run.run_study(study, "quick", str(tmp_path)) == 4
    table = json.load(open(tmp_path / "icbm_nec" / "icbm_nec.json"))
    rows = {r["variant"]: r for r in table["rows"]}
    assert set(rows) == {"standard", "htaf", "random", "random_signed"}
    htaf = next(r for r in table["runs"] if r["label"] == "mlp-htaf")
    k, classes = TINY_ICBM["model.num_concepts"], 10
    for key in icbm_nec.nec_key(None), "1", "5":
        entry = htaf["nec"][key]
        assert 0.0 <= entry["accuracy"] <= 1.0
        # A NEC head has at most NEC weights per class (the non-negative refit may zero some).
        assert entry["weights"] <= (k if key == "all" else int(key)) * classes
    assert htaf["nec"]["1"]["weights"] >= 1
    # The random code: same K, the ICBM's on-rates (on the training images; the test
    # split's rate is near it), a row of its own that names the run it came from.
    random_run = next(r for r in table["runs"] if r["label"] == "mlp-random")
    assert random_run["derived_from"] == htaf["workdir"] and "workdir" not in random_run
    assert random_run["on_rate"] == pytest.approx(htaf["concept_rate"], abs=0.05)
    signed = next(r for r in table["runs"] if r["label"] == "mlp-random_signed")
    assert signed["on_rate"] == random_run["on_rate"]  # the same code, another head
    assert htaf["collisions"]["all"]["concepts"] == k
    assert 0.0 <= htaf["collisions"]["all"]["ceiling"] <= 1.0
    curve = htaf["interventions"]["own_head"]
    assert curve["informed"][0] == curve["random"][0] == 0.0  # mispredicted images only
    assert len(curve["informed"]) == icbm_nec.INTERVENE_MAX + 1
    # Informed order is greedy on the true class's margin: never behind random by much.
    assert curve["informed"][-1] >= curve["random"][-1] - 0.05
    # A choosing study's measure: the curve at the NECs asked for, and the same NECs cut
    # from the trained head alone (λ = 0 only: never ahead of the choice on the held-out
    # sixth it was made on).
    workdir = str(tmp_path / htaf["workdir"])
    restored = restore_params(workdir)
    light = icbm_nec.measure(
        load_config(workdir), restored.params, restored.batch_stats, necs=(5, None), details=False
    )
    assert set(light) == {"nec", "nec_cut"} and set(light["nec"]) == {"5", "all"}
    assert set(light["nec_cut"]) == {"5", "all"}
    assert light["nec"]["5"]["accuracy"] == pytest.approx(htaf["nec"]["5"]["accuracy"])
    for key in "5", "all":
        assert light["nec_cut"][key]["l1"] == 0.0
        assert (
            light["nec_cut"][key]["validation_accuracy"] <= light["nec"][key]["validation_accuracy"]
        )
    text = open(tmp_path / "icbm_nec" / "icbm_nec.md").read()
    for heading in (
        "## Explanations at NEC=5",
        "## Interventions",
        "## Code collisions",
        "## Refit choices",
    ):
        assert heading in text
    # The chosen λ of each NEC, as its run's record holds it.
    choices = next(r for r in table["rows"] if r["variant"] == "htaf")
    assert choices["nec.5.l1"]["per_seed"] == [htaf["nec"]["5"]["l1"]]
    assert "| λ NEC=5 |" in text
    for png in ("icbm_nec_nec.png", "icbm_nec_interventions.png"):
        assert os.path.getsize(tmp_path / "icbm_nec" / png) > 0
    # A fresh clone: the table's records stand in for the removed runs, random row included.
    for name in os.listdir(tmp_path / "icbm_nec" / "runs"):
        os.remove(tmp_path / "icbm_nec" / "runs" / name / "results.json")
    assert run.run_study(study, "quick", str(tmp_path), report_only=True) == 4
    again = json.load(open(tmp_path / "icbm_nec" / "icbm_nec.json"))
    assert {r["variant"] for r in again["rows"]} == set(rows)
    # icbm_explain at NEC=2: the deciding concepts come from the cut head, with figures.
    capsys.readouterr()
    assert (
        icbm_explain.main(
            ["icbm_explain", "--workdir", workdir, "--index", "0", "--nec", "2", "--figures"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "head cut to NEC=2" in out and "decided by" in out
    assert os.path.exists(os.path.join(workdir, "concepts", "nec2", "classes.png"))
    assert np.isfinite(float(out.split("accuracy ")[1].split("%")[0]))
