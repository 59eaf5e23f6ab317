"""experiments.results: study commands per profile, the report and README's block (no training)."""
import glob
import json
import os

import pytest

from experiments import icbm, results


def _sweep_json(path, rows, seeds=(0, 1, 2)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"seeds": list(seeds), "rows": rows}, f)


def _row(surrogate, mean, std=0.5, depth=None):
    return {"surrogate": surrogate, "depth": depth,
            "accuracy": {"mean": mean, "std": std, "text": f"{mean:.2f} ± {std:.2f}"}}


def test_quick_profile_shrinks_every_study_and_replaces_flags():
    by_name = {s.name: s for s in results.STUDIES}
    argv = results.study_argv(by_name["snn_conv"], "quick", "results/quick")
    assert argv[argv.index("--surrogates") + 1] == "all"  # every surrogate, like full
    assert argv[argv.index("--out") + 1] == os.path.join("results/quick", "snn_conv")
    for flag in ("--config.train_subset=6000", "--config.num_epochs=2"):
        assert flag in argv
    ab = results.study_argv(by_name["alpha_beta"], "quick", "r")
    assert "--config.validation_size=2000" in ab
    assert results._replace_flag(("--seeds", "0", "--x", "1"), ("--seeds", "0,1")) == [
        "--seeds", "0,1", "--x", "1"]  # a flag's value is replaced, not appended
    full = results.study_argv(by_name["snn_conv"], "full", "results/full")
    assert full[full.index("--surrogates") + 1] == "all"
    assert not any(a.startswith("--config.") for a in full)
    main_job = results.study_argv(by_name["icbm_main"], "full", "results/full")
    assert main_job == ["--workdir", os.path.join("results/full", "icbm_main")]


def test_the_main_job_study_records_the_command_of_its_own_run(monkeypatch, tmp_path):
    # Issue 20: the run stored its parent's sys.argv (`python -m experiments.icbm
    # --profile quick`), which does not run. The main job is stubbed: no training.
    import sys

    from experiments import icbm
    seen = []
    monkeypatch.setattr(icbm, "run", lambda config, workdir, command=None:
                        seen.append((workdir, command)) or {})
    monkeypatch.setattr(sys, "argv", ["experiments/results.py", "--profile", "quick"])
    study = {s.name: s for s in results.STUDIES}["icbm_main"]
    argv = results.study_argv(study, "quick", str(tmp_path))
    assert results.run_study(study, argv) == 0
    workdir = os.path.join(str(tmp_path), "icbm_main")
    assert seen == [(workdir, results.command_line(study, argv))]
    assert seen[0][1] == ("python -m experiments.icbm --workdir " + workdir
                          + " --config.train_subset=6000 --config.num_epochs=2"
                          " --config.test_subset=2000 --config.progress=False")


def test_the_committed_main_job_result_records_a_command_that_parses(tmp_path):
    import shlex

    from htaf_jax.train import cli
    for path in sorted(glob.glob(os.path.join(results.REPO, "results", "*", "icbm_main",
                                              "results.json"))):
        command = json.load(open(path))["command"]
        args = shlex.split(command)
        assert args[:3] == ["python", "-m", "experiments.icbm"], path
        profile = path.split(os.sep)[-3]
        study = {s.name: s for s in results.STUDIES}["icbm_main"]
        assert args[3:] == results.study_argv(study, profile, f"results/{profile}"), path
        _, workdir = cli.parse_flags(["icbm", *args[3:]], icbm.DEFAULT_CONFIG)
        assert workdir == os.path.dirname(os.path.relpath(path, results.REPO))


def test_summary_names_htaf_and_the_best_other_surrogate(tmp_path):
    _sweep_json(tmp_path / "bnn_mlp" / "bnn_mlp_surrogates.json",
                [_row("atan", 84.0), _row("htaf", 85.5), _row("sigmoid", 84.7)])
    _sweep_json(tmp_path / "dhn_depths" / "dhn_mlp_depths.json",
                [_row("htaf", 80.0, depth=16), _row("atan", 40.0, depth=16),
                 _row("htaf", 88.0, depth=2), _row("atan", 88.5, depth=2)], seeds=(0,))
    table = results.summary_table(str(tmp_path))
    lines = table.splitlines()
    assert "| BNN MLP | 85.50 ± 0.50 | sigmoid: 84.70 ± 0.50 | seeds 0,1,2 |" in lines
    depth_rows = [line for line in lines if line.startswith("| DHN")]
    assert depth_rows == ["| DHN MLP depth 2 | 88.00 ± 0.50 | atan: 88.50 ± 0.50 | seeds 0 |",
                          "| DHN MLP depth 16 | 80.00 ± 0.50 | atan: 40.00 ± 0.50 | seeds 0 |"]
    assert "SNN" not in table  # no study output, no row
    assert results.summary_table(str(tmp_path / "empty")).startswith("_No finished study")


def test_report_and_readme_block(tmp_path):
    out = tmp_path / "quick"
    _sweep_json(out / "bnn_mlp" / "bnn_mlp_surrogates.json", [_row("htaf", 85.5)])
    (out / "bnn_mlp" / "bnn_mlp_surrogates.md").write_text("# bnn_mlp table\n\n| a |\n")
    commands = {"bnn_mlp": "python -m experiments.sweep --family bnn_mlp",
                "snn_mlp": "python -m experiments.sweep --family snn_mlp"}
    report = tmp_path / "RESULTS.md"
    text = results.write_report(str(out), "quick", commands, 90.0, path=str(report))
    assert "### bnn_mlp table" in text  # the study's heading nested under its section
    assert "Command: `python -m experiments.sweep --family bnn_mlp`" in text
    assert "_Not run yet._" in text  # snn_mlp has no output
    assert "Profile **quick**" in text and "Wall time of this invocation: 1.5 min (report only;" in text
    (tmp_path / "dhn_mlp").mkdir()
    (tmp_path / "dhn_mlp" / "dhn_mlp_depths.md").write_text("# by hand\n")
    (tmp_path / "dhn_mlp" / "dhn_mlp_depths.png").write_bytes(b"")
    text = results.write_report(str(out), "quick", commands, 90.0, path=str(report))
    assert "## Other sweeps on disk" in text and "### by hand" in text
    assert "![dhn_mlp_depths](dhn_mlp/dhn_mlp_depths.png)" in text
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{results.README_START}\nold\n{results.README_END}\nrest\n")
    assert results.update_readme(str(out), "quick", path=str(readme))
    new = readme.read_text()
    assert new.startswith("intro\n") and new.endswith("rest\n") and "old" not in new
    assert "| BNN MLP | 85.50 ± 0.50 | n/a |" in new
    assert "From `make results PROFILE=quick`;" in new
    assert "At the default configs' budgets" not in new  # nothing under full/ yet
    full = tmp_path / "full"
    _sweep_json(full / "snn_mlp" / "snn_mlp_surrogates.json", [_row("htaf", 88.7, 0.1)])
    (full / "snn_mlp" / "snn_mlp_surrogates.md").write_text("# snn_mlp, HTAF so far\n")
    text = results.write_report(str(out), "quick", commands, 90.0, path=str(report))
    assert "## Default budgets: full-profile runs finished so far" in text
    assert "### snn_mlp, HTAF so far" in text and "| SNN MLP | 88.70 ± 0.10 | n/a |" in text
    assert text.index("Default budgets") < text.index("### bnn_mlp table")
    assert results.update_readme(str(out), "quick", path=str(readme))
    new = readme.read_text()
    assert "At the default configs' budgets" in new and "| SNN MLP | 88.70 ± 0.10 |" in new
    assert "Default budgets" not in results.write_report(str(full), "full", {}, 1.0,
                                                          path=str(report))
    readme.write_text("no markers\n")
    assert not results.update_readme(str(out), "quick", path=str(readme))


def test_unknown_study_is_an_error_listing_the_valid_ones(capsys):
    with pytest.raises(SystemExit):
        results.main(["--only", "snn_mlp,nope", "--dry-run"])
    err = capsys.readouterr().err
    assert "nope" in err and "dhn_depths" in err and "icbm_compare" in err


def test_dry_run_counts_the_planned_runs_that_finished(tmp_path):
    by_name = {s.name: s for s in results.STUDIES}
    study = by_name["snn_mlp"]
    argv = results.study_argv(study, "quick", str(tmp_path))
    assert results.plan_status(study, argv) == (0, 33, [], None, 0)  # 11 surrogates × 3 seeds
    from experiments import sweep
    first = sweep.plan(argv)["runs"][0]["workdir"]
    os.makedirs(first)
    with open(os.path.join(first, "results.json"), "w") as f:
        json.dump({"accuracy": 0.8, "seconds": 360.0}, f)
    os.makedirs(os.path.join(tmp_path, "snn_mlp", "runs", "htaf-s0-00000000"))  # another config
    status = results.plan_status(study, argv)
    assert status == (1, 33, [360.0], 32 * 360.0, 0)
    assert results.dry_run_line("snn_mlp", status).startswith(
        "[snn_mlp] 1 of 33 runs finished; the 32 left ≈ 3.2 h at its finished runs' times")
    assert results.dry_run_total([status, results.Status(0, 4, [], None),
                                  results.Status(2, 2, [1.0, 1.0], 0.0)]) == (
        "total: 3 of 39 runs finished; ≈ 3.2 h left in the studies with finished runs to "
        "time; 4 runs in studies with none finished yet (not estimated)")
    # Unfinished runs are timed by their own backbone's (or depth's) finished runs.
    left, borrowed = results._estimate([("mlp", 60.0), ("mlp", None), ("cnn", 1500.0),
                                        ("cnn", None), ("cnn", None), ("resnet", None)])
    assert (left, borrowed) == (60.0 + 2 * 1500.0 + (60.0 + 1500.0) / 2, 1)
    line = results.dry_run_line("icbm_compare", results.Status(2, 6, [60.0, 1500.0], left, 1))
    assert line.endswith("1 of them timed from another depth or backbone, so less reliable")
    compare = by_name["icbm_compare"]
    assert results.plan_status(compare, results.study_argv(compare, "quick", str(tmp_path)))[1] \
        == 2 * (1 + 4 * 2) * 3  # backbones × (standard + 4 variants × 2 K) × seeds


def test_tables_only_rewrites_study_tables_from_finished_runs_and_leaves_the_report(
        tmp_path, monkeypatch):
    called = []
    monkeypatch.setattr(results, "run_study", lambda study, argv: called.append(
        (study.name, argv)) or 0)
    monkeypatch.setattr(results, "write_report", lambda *a, **k: pytest.fail("report written"))
    monkeypatch.setattr(results, "update_readme", lambda *a, **k: pytest.fail("README written"))
    assert results.main(["--tables-only", "--out", str(tmp_path),
                         "--only", "snn_mlp,icbm_compare,icbm_main"]) == 0
    assert [name for name, _ in called] == ["snn_mlp", "icbm_compare"]  # the main job: no table
    assert all(argv[-1] == "--report_only" for _, argv in called)


def test_dhn_variants_section_tables_and_plots_plain_against_skip(tmp_path):
    def depth_rows(htaf16, st16):
        return [_row("htaf", 88.0, depth=2), _row("straight_through", 87.0, depth=2),
                _row("htaf", htaf16, depth=16), _row("straight_through", st16, depth=16)]

    assert results.dhn_variants_section(str(tmp_path), str(tmp_path)) == []  # nothing yet
    _sweep_json(tmp_path / "dhn_depths" / "dhn_mlp_depths.json", depth_rows(62.0, 79.5))
    assert results.dhn_variants_section(str(tmp_path), str(tmp_path)) == []  # one variant only
    _sweep_json(tmp_path / "dhn_skip" / "dhn_mlp_depths.json", depth_rows(85.0, 84.0))
    lines = results.dhn_variants_section(str(tmp_path), str(tmp_path))
    assert "| depth | plain: HTAF | plain: best other | skip: HTAF | skip: best other |" in lines
    assert ("| 16 | 62.00 ± 0.50 | straight_through: 79.50 ± 0.50 | 85.00 ± 0.50 | "
            "straight_through: 84.00 ± 0.50 |") in lines
    assert os.path.getsize(tmp_path / "dhn_variants.png") > 1000
    assert "![dhn_variants](dhn_variants.png)" in lines
    summary = results.summary_table(str(tmp_path))
    assert "| DHN MLP (skip) depth 16 | 85.00 ± 0.50 | straight_through: 84.00 ± 0.50 |" in summary
