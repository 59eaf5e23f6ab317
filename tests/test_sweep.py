"""The study runner (experiments.run): the runs it plans, their commands, training a tiny
study end to end, reusing finished runs, tables from the runs' JSON, config hashing."""

import dataclasses
import glob
import json
import os
import struct

import ml_collections
import pytest
from data_marks import needs_data
from helpers import TINY_DHN, eval_accuracy, parsed_back

from experiments import measures, run, runs, tables
from experiments.configs import dhn_mlp, studies

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _planned(name: str, profile: str) -> set[tuple[str, str]]:
    out = os.path.join("results", profile)
    return {
        (
            r.name if r.seed is None or r.name == "icbm_main" else os.path.basename(r.workdir),
            runs.config_hash(r.config),
        )
        for r in run.plan(studies.STUDIES[name], profile, out)
    }


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_every_study_of_before_plans_the_same_runs(profile):
    # tests/data/planned_runs.json: what `make results` planned before the runner was
    # rewritten, run name and config hash of every run of every study; changed only where a
    # study's plan changed on purpose (alpha_beta's seeds 0-2, dhn_mlp's β = 0.5, the DHN
    # depth studies' units at their validation slopes).
    before = json.load(open(os.path.join(REPO, "tests", "data", "planned_runs.json")))[profile]
    for name, entries in before.items():
        assert _planned(name, profile) == {(e["run"], e["hash"]) for e in entries}, name


def test_studies_record_their_split_and_selection_studies_read_validation():
    by_split = {s.name: s.split for s in studies.STUDIES.values()}
    for name in ("alpha_beta", "dhn_alpha_beta", "icbm_recipe"):
        assert by_split[name] == "validation"
        for r in run.plan(studies.STUDIES[name], "quick", "r")[:2]:
            assert r.config.validation_size == studies.PROFILES["quick"]["validation_size"]
    assert by_split["snn_mlp"] == by_split["icbm_compare"] == "test"
    plain = run.plan(studies.STUDIES["snn_mlp"], "full", "r")[0]
    assert plain.config.validation_size == 0


def test_the_depth_alpha_beta_study_is_alpha_by_beta_at_depths_8_and_16():
    planned = run.plan(studies.STUDIES["dhn_alpha_beta"], "full", "r")
    assert len(planned) == 2 * 4 * 4 * 3
    seen = {
        (
            r.config.model.depth,
            r.config.model.surrogate_kwargs.htaf.alpha,
            r.config.model.surrogate_kwargs.htaf.beta,
            r.seed,
        )
        for r in planned
    }
    assert seen == {
        (d, a, b, s)
        for d in (8, 16)
        for a in (1.0, 2.0, 4.0, 8.0)
        for b in (0.25, 0.5, 1.0, 2.0)
        for s in (0, 1, 2)
    }
    for r in planned:  # the quick budget whatever the profile; plain hard-trained DHN
        assert (r.config.num_epochs, r.config.train_subset) == (2, 6000)
        assert (r.config.model.variant, r.config.model.surrogate) == ("plain", "htaf")
    assert studies.STUDIES["dhn_alpha_beta"].measure == "grad_norms"


@pytest.mark.parametrize("name", ["snn_mlp", "dhn_skip", "alpha_beta", "icbm_compare", "icbm_main"])
def test_each_run_has_a_command_that_rebuilds_its_config(name):
    study = studies.STUDIES[name]
    for r in run.plan(study, "quick", os.path.join("results", "quick"))[::7]:
        module = "experiments.icbm" if r.config.model.name == "icbm" else "experiments.train"
        assert r.command.startswith(f"python -m {module} --config {run.config_file(study)} ")
        config, workdir = parsed_back(r.command)
        assert workdir == os.path.relpath(r.workdir)
        assert config.to_dict() == r.config.to_dict(), r.command


def test_only_selects_runs_by_label_pattern():
    planned = run.plan(
        studies.STUDIES["icbm_compare"], "full", "r", only=["mlp-htaf*", "mlp-standard"]
    )
    assert {r.label for r in planned} == {
        "mlp-standard",
        "mlp-htaf-k32",
        "mlp-htaf-k128",
        "mlp-htaf_hard-k32",
        "mlp-htaf_hard-k128",
    }
    standard = next(r for r in planned if r.label == "mlp-standard")
    assert standard.config.model.to_dict() == {
        "name": "standard",
        "backbone": "mlp",
        "backbone_kwargs": {"widths": (512, 256)},
        "hidden": 0,
    }


def _tiny_study(points, **kw) -> studies.Study:
    return studies.Study(
        "tiny",
        "A tiny DHN study",
        "dhn_mlp",
        tuple(points),
        seeds=(0, 1),
        overrides={**TINY_DHN, "model.depth": 2},
        **kw,
    )


@pytest.mark.slow  # trains a study's runs end to end, then reruns it
@needs_data
def test_a_study_trains_tables_and_reuses_finished_runs(tmp_path, count_trainings):
    study = _tiny_study(studies.units(["htaf", "atan"]))
    out = str(tmp_path)
    assert run.run_study(study, "full", out) == 4
    assert len(count_trainings) == 4
    result = json.load(open(os.path.join(out, "tiny", "tiny.json")))
    assert [r["surrogate"] for r in result["rows"]] == ["htaf", "atan"]
    assert result["split"] == "test" and result["runs_planned"] == 4
    assert result["command"] == "python -m experiments.run tiny --profile full"
    for row in result["rows"]:
        assert row["seeds"] == [0, 1]
        cell = row["accuracy"]
        assert cell["mean"] == pytest.approx(sum(cell["per_seed"]) / 2)
        for seed, acc in zip(row["seeds"], cell["per_seed"]):  # the stored model's score
            workdir = glob.glob(os.path.join(out, "tiny", "runs", f"{row['label']}-s{seed}-*"))
            assert acc == pytest.approx(100 * eval_accuracy(workdir[0]), abs=1e-4)
    for path in glob.glob(os.path.join(out, "tiny", "runs", "*", "results.json")):
        config, workdir = parsed_back(json.load(open(path))["command"])  # this run alone
        assert os.path.abspath(workdir) == os.path.dirname(path)
        assert runs.config_hash(config) == os.path.basename(workdir).rsplit("-", 1)[1]
    with open(os.path.join(out, "tiny", "tiny.png"), "rb") as f:  # 8 × 4 in at 110 dpi
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (880, 440)

    mtimes = {
        p: os.path.getmtime(p) for p in glob.glob(os.path.join(out, "tiny", "runs", "*", "*.json"))
    }
    assert run.run_study(study, "full", out) == 4 and len(count_trainings) == 4
    assert {p: os.path.getmtime(p) for p in mtimes} == mtimes
    # --report-only over a bigger plan: the finished runs tabled, nothing trained.
    bigger = _tiny_study(studies.units(["htaf", "atan", "sigmoid"]))
    assert run.run_study(bigger, "full", out, report_only=True) == 4
    assert len(count_trainings) == 4
    partial = json.load(open(os.path.join(out, "tiny", "tiny.json")))
    assert partial["runs_planned"] == 6 and len(partial["runs"]) == 4
    assert (
        "**Unfinished:** 4 of the 6 planned runs"
        in open(os.path.join(out, "tiny", "tiny.md")).read()
    )
    # --only trains its runs alone, and the table still holds every finished run.
    assert run.run_study(bigger, "full", out, only=["sigmoid-s0"]) == 5
    assert len(count_trainings) == 5
    partial = json.load(open(os.path.join(out, "tiny", "tiny.json")))
    assert len(partial["runs"]) == 5 and partial["runs_planned"] == 6
    assert partial["command"] == "python -m experiments.run tiny --profile full"
    # --remeasure: the selected finished run measured again from its last checkpoint and
    # final metrics, nothing trained or evaluated (its other files untouched), its training
    # time kept; the other runs left as they were.
    path = glob.glob(os.path.join(out, "tiny", "runs", "atan-s1-*", "results.json"))[0]
    before = json.load(open(path))
    others = {p: os.path.getmtime(p) for p in mtimes if p != path}
    assert run.run_study(bigger, "full", out, only=["atan-s1"], remeasure=True) == 5
    assert len(count_trainings) == 5  # restored, not trained
    after = json.load(open(path))
    assert after["seconds"] == before["seconds"] and after["accuracy"] == before["accuracy"]
    assert after["date"] >= before["date"] and os.path.getmtime(path) > mtimes[path]
    assert {p: os.path.getmtime(p) for p in others} == others
    assert run.run_study(bigger, "full", str(tmp_path / "empty"), report_only=True) == 0
    assert not os.path.exists(tmp_path / "empty")  # no finished run: no table
    changed = dataclasses.replace(study, overrides={**study.overrides, "learning_rate": 0.002})
    run.run_study(changed, "full", out, only=["atan"])
    assert len(count_trainings) == 7  # a changed field is a new run (both seeds)


@pytest.mark.parametrize("resumed_from", [0, 40])
def test_a_run_resumed_from_another_process_records_no_training_time(
    tmp_path, monkeypatch, resumed_from
):
    # The run's training time is this call's only when it trained from step 0.
    def fake_train(config, workdir):
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump({"step": 92, "resumed_from_step": resumed_from}, f)
        return None

    monkeypatch.setattr(runs.train, "train_and_evaluate", fake_train)
    record = runs.train_or_reuse(
        ml_collections.ConfigDict(), str(tmp_path), lambda c, r, s: {"seconds": s}, "cmd"
    )
    assert (record["seconds"] is None) == (resumed_from > 0)
    assert json.load(open(tmp_path / runs.RESULTS_FILE))["seconds"] == record["seconds"]


def test_a_smooth_mode_for_a_unit_without_one_is_refused_when_the_study_is_planned(capsys):
    """No silent fallback to hard training: the plan names the study, the run and the field."""
    from htaf_jax.train import ConfigError

    study = _tiny_study(studies.units(["htaf", "straight_through"]))
    study = dataclasses.replace(
        study, seeds=(0,), overrides={**study.overrides, "model.mode": "smooth"}
    )
    with pytest.raises(ConfigError) as e:
        run.plan(study, "full", "/nonexistent")
    assert str(e.value) == (
        "study tiny, run straight_through: config.model.surrogate='straight_through' has no "
        "smooth form, so it cannot train with config.model.mode='smooth'; set "
        "config.model.mode='hard'"
    )


@pytest.mark.slow  # trains and measures several runs end to end
@needs_data
def test_gradient_norms_are_those_of_the_runs_config(tmp_path, count_trainings):
    depths = studies.axis("depth", [1, 3], "model.depth", "d{}")
    hard_st = [
        studies.Point(
            "straight_through",
            {"surrogate": "straight_through"},
            {"model.surrogate": "straight_through", "model.mode": "hard"},
        )
    ]
    study = _tiny_study(
        studies.grid(studies.units(["htaf"]) + hard_st, depths),
        measure="grad_norms",
        columns=studies.GRAD_COLUMNS,
        plot="lines",
    )
    study = dataclasses.replace(
        study, seeds=(0,), overrides={**study.overrides, "model.mode": "smooth"}
    )
    run.run_study(study, "full", str(tmp_path))
    rows = {r["label"]: r for r in json.load(open(tmp_path / "tiny" / "tiny.json"))["rows"]}
    assert set(rows) == {"htaf-d1", "htaf-d3", "straight_through-d1", "straight_through-d3"}
    from htaf_jax.train import load_config, restore_params

    for label, row in rows.items():
        workdir = glob.glob(str(tmp_path / "tiny" / "runs" / f"{label}-s0-*"))[0]
        record = json.load(open(os.path.join(workdir, "results.json")))
        config = load_config(workdir)
        assert config.model.mode == ("hard" if label.startswith("straight") else "smooth")
        assert len(record["grad_norms_init"]) == config.model.depth
        assert measures.layer_grad_norms(config) == pytest.approx(
            record["grad_norms_init"], rel=1e-4
        )
        end = restore_params(workdir)
        assert measures.layer_grad_norms(config, end.params, end.batch_stats) == pytest.approx(
            record["grad_norms_end"], rel=1e-4
        )
        assert row["grad_norms_end[-1]"]["mean"] == pytest.approx(record["grad_norms_end"][-1])


def test_table_rows_differences_and_unfinished_note(tmp_path):
    study = studies.STUDIES["icbm_compare"]
    standard, htaf = studies.STANDARD.coords, {"variant": "htaf", "num_concepts": 8}

    def rec(coords, label, seed, acc):
        return {
            "label": label,
            "coords": {"backbone": "mlp", **coords},
            "backbone": "mlp",
            **coords,
            "seed": seed,
            "hard_accuracy": acc,
            "seconds": 1.0,
            "interpretability": {"purity": 0.5},
        }

    records = [
        rec(standard, "mlp-standard", 0, 0.90),
        rec(standard, "mlp-standard", 1, 0.80),
        rec(htaf, "mlp-htaf-k8", 0, 0.85),
        rec(htaf, "mlp-htaf-k8", 1, 0.79),
    ]
    rows = {r["label"]: r for r in tables.rows(study, records)}
    delta = rows["mlp-htaf-k8"]["hard_accuracy_vs_standard"]
    assert delta["per_seed"] == pytest.approx([-5.0, -1.0]) and delta["mean"] == pytest.approx(-3)
    assert delta["std"] == pytest.approx(2 * 2**0.5)
    assert rows["mlp-standard"]["hard_accuracy_vs_standard"]["mean"] is None
    assert rows["mlp-htaf-k8"]["interpretability.purity"]["text"] == "0.500 ± 0.000"
    assert rows["mlp-htaf-k8"]["near_binary@0.01"]["text"] == "n/a"
    meta = {
        "command": "c",
        "machine": "m",
        "date": "d",
        "split": "test",
        "config": "f",
        "overrides": {},
        "runs_planned": 6,
        "validation_size": 0,
    }
    tables.write(str(tmp_path / "t"), study, meta, records)
    text = open(tmp_path / "t.md").read()
    assert "**Unfinished:** 4 of the 6 planned runs" in text
    assert json.load(open(tmp_path / "t.json"))["rows"] == json.loads(
        json.dumps(list(rows.values()))
    )
    # A row derived from the runs' records (a random code per run) counts no runs.
    derived = [{**rec(htaf, "mlp-random", s, 0.5), "derived_from": f"w{s}"} for s in (0, 1)]
    tables.write(str(tmp_path / "t"), study, meta, records + derived)
    assert "**Unfinished:** 4 of the 6 planned runs" in open(tmp_path / "t.md").read()


def test_config_hash_changes_with_any_field_but_not_how_a_run_is_watched():
    from experiments.configs import snn_mlp

    a = snn_mlp.get_config()
    b = ml_collections.ConfigDict(a.to_dict())
    assert runs.config_hash(a) == runs.config_hash(b)
    b.model.surrogate_kwargs.htaf.alpha = 8.0
    assert runs.config_hash(a) != runs.config_hash(b)
    assert runs.run_dir("o", "htaf", 0, a) == os.path.join(
        "o", "runs", f"htaf-s0-{runs.config_hash(a)}"
    )
    d = ml_collections.ConfigDict(a.to_dict())
    d.progress, d.tensorboard, d.checkpoint_every_steps = False, False, 7
    assert runs.config_hash(a) == runs.config_hash(d)


def test_run_dir_reuses_a_run_of_the_same_config_under_another_hash(tmp_path):
    from experiments.configs import snn_mlp

    config = snn_mlp.get_config()
    out = str(tmp_path)

    def stored(name, cfg, finished):
        path = tmp_path / "runs" / name
        path.mkdir(parents=True)
        (path / "config.json").write_text(cfg.to_json())
        if finished:
            (path / runs.RESULTS_FILE).write_text("{}")
        return str(path)

    quiet, other = (ml_collections.ConfigDict(config.to_dict()) for _ in range(2))
    quiet.progress, other.learning_rate = False, 0.5
    stored("htaf-s0-00000000", other, True)  # another config: never reused
    stored("htaf-s1-11111111", quiet, True)  # another seed's label
    stored("htaf-s0-aaaaaaaa", quiet, False)  # same config, unfinished
    finished = stored("htaf-s0-bbbbbbbb", quiet, True)
    assert runs.run_dir(out, "htaf", 0, config) == finished
    current = os.path.join(out, "runs", f"htaf-s0-{runs.config_hash(config)}")
    os.makedirs(current)  # once the current hash's folder exists, it wins
    assert runs.run_dir(out, "htaf", 0, config) == current


def test_profile_steps_is_watched_and_a_profiled_run_is_found_without_it(tmp_path):
    """profile_steps changes how a run is watched, not its numbers: the same hash, and a
    profiled run stored under an older hash is reused by the unprofiled config."""
    from experiments.configs import snn_mlp

    config = snn_mlp.get_config()
    profiled = ml_collections.ConfigDict(config.to_dict())
    profiled.profile_steps = "3,5"
    assert "profile_steps" in runs.WATCH_FIELDS
    assert runs.config_hash(profiled) == runs.config_hash(config)
    path = tmp_path / "runs" / "htaf-s0-00000000"
    path.mkdir(parents=True)
    (path / "config.json").write_text(profiled.to_json())
    assert runs.run_dir(str(tmp_path), "htaf", 0, config) == str(path)
    config.half_precision = True  # a bfloat16 run is another run
    assert runs.run_dir(str(tmp_path), "htaf", 0, config) != str(path)
    flipped = ml_collections.ConfigDict(profiled.to_dict())
    flipped.augment_flip = True  # unhashed at its default, yet an augmented run is another run
    (path / "config.json").write_text(flipped.to_json())
    assert runs.run_dir(str(tmp_path), "htaf", 0, snn_mlp.get_config()) != str(path)


def test_model_field_added_later_is_unhashed_only_at_its_default():
    """model.react joined the binary ResNet's config after its runs: at False the hash is
    the one without the field; at True it is another run."""
    from experiments.configs import bnn_resnet

    config = bnn_resnet.get_config()
    assert config.model.react is False
    older = ml_collections.ConfigDict(config.to_dict())
    del older.model["react"]
    assert runs.config_hash(config) == runs.config_hash(older)
    config.model.react = True
    assert runs.config_hash(config) != runs.config_hash(older)


def test_vs_column_finds_a_reference_row_without_the_shared_axis():
    """The standard model has no on-rate cap: every capped ICBM row compares with it,
    and a row that matches exactly wins over a less specific one."""
    std = [{"coords": {"backbone": "mlp", "variant": "standard", "num_concepts": None}}]
    exact = [
        {
            "coords": {
                "backbone": "mlp",
                "variant": "standard",
                "num_concepts": None,
                "on_rate_cap": 0.25,
            }
        }
    ]
    want = {"backbone": "mlp", "variant": "standard", "num_concepts": None, "on_rate_cap": 0.35}
    own = {"variant": "standard", "num_concepts": None}
    assert tables._reference([std], want, own) is std
    assert tables._reference([std, exact], {**want, "on_rate_cap": 0.25}, own) is exact
    assert tables._reference([exact], want, own) == []
    # A study without a standard row (an α/β sweep) has no reference: a row is not its own.
    icbm = [{"coords": {"alpha": 16.0, "beta": 1.0}}]
    assert tables._reference([icbm], {"alpha": 16.0, "beta": 1.0, **own}, own) == []


def test_the_binary_resnet_study_is_the_three_units_over_three_seeds():
    planned = [r for r in run.plan(studies.STUDIES["bnn_resnet"], "full", "r") if r.split == "test"]
    assert {(r.config.model.name, r.config.model.surrogate, r.seed) for r in planned} == {
        ("bnn_resnet", u, s) for u in ("htaf", "ste_sign", "approx_sign") for s in (0, 1, 2)
    }
    assert all(r.config.validation_size == 0 for r in planned)
    # --only picks runs by label (every seed) or by name (one seed); each unit's tuning runs
    # (tests/test_tuning.py) are labelled after it.
    only = run.plan(studies.STUDIES["bnn_resnet"], "full", "r", ["htaf-s1", "approx*"])
    assert [r.name for r in only] == [
        "htaf-s1",
        *(f"approx_sign-learning_rate{lr:g}-s0" for lr in studies.BNN_RESNET_LRS),
        "approx_sign-s0",
        "approx_sign-s1",
        "approx_sign-s2",
    ]


def test_the_depth_sweeps_finding_bins_rows_by_theoretical_gain():
    cell = lambda m: {"mean": m, "std": 0.0, "text": f"{m:.2f} ± 0.00"}  # noqa: E731
    htaf = dhn_mlp.get_config().model.surrogate_kwargs.htaf  # the default's row is named
    a0, b0 = float(htaf.alpha), float(htaf.beta)
    rows = [
        {"depth": 16, "alpha": a, "beta": b, "accuracy": cell(acc), "gain_theory": cell(r)}
        for a, b, acc, r in (
            (a0, b0, 60.0, 0.97),
            (8.0, 0.25, 80.0, 0.68),
            (2.0, 0.5, 70.0, 0.5),
            (8.0, 2.0, 20.0, 2.0),
        )
    ]
    assert studies.gain_finding(rows) == [
        "- depth 16: mean acc by r theory: 0.3 ≤ r < 0.9: 75.00 % (2 rows); 0.9 ≤ r < 1.1: "
        "60.00 % (1 rows); r ≥ 1.1: 20.00 % (1 rows). Best α=8, β=0.25 (r 0.68): 80.00 ± 0.00 "
        f"%; default α={a0:g}, β={b0:g} (r 0.97): 60.00 ± 0.00 %."
    ]


def test_the_depth_studies_run_every_unit_at_its_validation_slope():
    # studies.DHN_SLOPES: each unit with a slope at its best peak slope of sharpness_dhn;
    # HTAF at dhn_mlp's shape; a unit without a slope, or at its default, is not overridden.
    peak = {"atan": lambda a: a / 2, "sigmoid": lambda a: a / 4, "rectangle": lambda w: 1 / w}
    for name in ("dhn_depths", "dhn_skip", "dhn_mixed"):
        for r in run.plan(studies.STUDIES[name], "quick", "r"):
            unit, kwargs = r.config.model.surrogate, r.config.model.surrogate_kwargs
            if unit in peak:
                (value,) = kwargs[unit].values()
                assert peak[unit](value) == pytest.approx(studies.DHN_SLOPES[unit])
            elif unit == "htaf":
                assert kwargs.to_dict() == dhn_mlp.get_config().model.surrogate_kwargs.to_dict()
            elif unit not in studies.DHN_SLOPES:
                assert unit not in kwargs


def test_the_nec_mask_finding_reads_percent_means_and_skips_rows_without_both():
    cell = lambda m: {"mean": m, "std": 0.0, "text": f"{m:.2f} ± 0.00"}  # noqa: E731
    rows = [
        {"variant": "htaf", "nec.5.accuracy": cell(81.68), "nec_cut.5.accuracy": cell(80.83)},
        {"variant": "standard", "nec.5.accuracy": cell(82.9), "nec_cut.5.accuracy": None},
    ]
    assert studies.mask_finding(rows) == [
        "- htaf: 81.68 % with the L1 path on offer, 80.83 % cut from the trained head (+0.85 pts)."
    ]


def test_the_nec_finding_names_the_target_and_the_best_other_row_at_nec_5():
    cell = lambda m: {"mean": m, "std": 0.0, "text": f"{m:.2f} ± 0.00"}  # noqa: E731
    rows = [
        {"backbone": "mlp", "variant": v, "nec5_or_dense": cell(a), "nec.5.accuracy": cell(b)}
        for v, a, b in (
            ("standard", 85.1, 83.0),
            ("htaf", 83.0, 83.0),
            ("random", 78.0, 78.0),
            ("random_signed", 80.5, 80.5),
            ("straight_through", 84.5, 84.5),
        )
    ]
    assert measures.nec_finding(rows) == [
        "- mlp: HTAF at NEC=5 83.00 %; standard (dense) 85.10 %: Δ -2.10 pts (target ≥ −1.0: "
        "not met); random code at NEC=5 78.00 %: HTAF +5.00 pts (target ≥ +5: met); with a "
        "signed head 80.50 % (HTAF +2.50 pts); best other at NEC=5: straight_through 84.50 %."
    ]
