"""The results command (``python -m experiments.run``): its flags, --list and --dry-run,
RESULTS.md and README's block from the studies' JSON tables (no training)."""

import glob
import json
import os
import sys

import pytest
from helpers import parsed_back

from experiments import icbm, report, run, runs, tables
from experiments.configs import studies

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _table(root, name, rows, seeds=(0, 1, 2)):
    study = studies.STUDIES[name]
    path = root / name / f"{study.table or name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seeds": list(seeds), "rows": rows}))


def _row(surrogate, mean, std=0.5, depth=None, seeds=(0, 1, 2)):
    return {
        "surrogate": surrogate,
        "depth": depth,
        "seeds": list(seeds),
        "accuracy": {"mean": mean, "std": std},
    }


def test_summary_puts_the_best_other_unit_beside_htaf(tmp_path):
    _table(tmp_path, "bnn_mlp", [_row("atan", 84.0), _row("htaf", 85.5), _row("sigmoid", 84.7)])
    _table(
        tmp_path,
        "dhn_depths",
        [
            _row("htaf", 80.0, depth=16, seeds=(0,)),
            _row("atan", 40.0, depth=16, seeds=(0,)),
            _row("htaf", 88.0, depth=2, seeds=(0,)),
            _row("atan", 88.5, depth=2, seeds=(0,)),
        ],
    )
    _table(tmp_path, "alpha_beta", [_row("htaf", 70.0)])  # selection study: not summarised
    icbm_row = lambda v, k, acc: {
        "backbone": "mlp",
        "variant": v,
        "num_concepts": k,  # noqa
        "seeds": [0],
        "hard_accuracy": {"mean": acc, "std": 0.1},
    }
    _table(
        tmp_path,
        "icbm_compare",
        [
            icbm_row("standard", None, 90.0),
            icbm_row("htaf", 32, 88.0),
            icbm_row("straight_through", 32, 89.0),
        ],
    )
    lines = report.summary_table(str(tmp_path)).splitlines()
    assert "| bnn_mlp | 85.50 ± 0.50 | sigmoid: 84.70 ± 0.50 | — | 0,1,2 |" in lines
    assert [line for line in lines if line.startswith("| dhn")] == [
        "| dhn_depths depth=16 | 80.00 ± 0.50 | atan: 40.00 ± 0.50 | — | 0 |",
        "| dhn_depths depth=2 | 88.00 ± 0.50 | atan: 88.50 ± 0.50 | — | 0 |",
    ]
    assert (
        "| icbm_compare backbone=mlp, num_concepts=32 | 88.00 ± 0.10 | "
        "straight_through: 89.00 ± 0.10 | standard: 90.00 ± 0.10 | 0 |"
    ) in lines
    assert not any("alpha_beta" in line or "snn" in line for line in lines)
    assert report.summary_table(str(tmp_path / "none")).startswith("_No finished study")


def test_report_embeds_tables_and_readme_block_is_the_reports_summary(tmp_path):
    out = tmp_path / "results" / "quick"
    _table(out, "bnn_mlp", [_row("htaf", 85.5)])
    (out / "bnn_mlp" / "bnn_mlp_surrogates.md").write_text("# bnn_mlp table\n\n| a |\n")
    (tmp_path / "results" / "by_hand").mkdir()
    (tmp_path / "results" / "by_hand" / "t.md").write_text("# by hand\n")
    path = report.write(str(out), "quick", 90.0, trained=False, path=str(tmp_path / "R.md"))
    text = open(path).read()
    assert "### bnn_mlp table" in text  # the study's heading nested under its section
    assert "Command: `python -m experiments.run bnn_mlp --profile quick`" in text
    assert "_Not run yet._" in text and "Profile **quick**" in text
    assert "# by hand" not in text  # folders no study writes are not reported
    assert "At the default configs' budgets" not in text  # nothing under full/
    _table(tmp_path / "results" / "full", "snn_mlp", [_row("htaf", 88.7, 0.1)])
    text = open(report.write(str(out), "quick", 90.0, path=path)).read()
    assert "At the default configs' budgets (full profile" in text
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.README_START}\nold\n{report.README_END}\nrest\n")
    assert report.update_readme(path, str(readme))
    new = readme.read_text()
    assert new.startswith("intro\n") and new.endswith("rest\n") and "old" not in new
    summary = text.split("## Summary\n", 1)[1].split("\n## ", 1)[0].strip()
    assert summary in new and "| bnn_mlp | 85.50 ± 0.50 | n/a | — | 0,1,2 |" in new
    assert "| snn_mlp | 88.70 ± 0.10 |" in new
    readme.write_text("no markers\n")
    assert not report.update_readme(path, str(readme))


def test_the_icbm_job_study_records_the_command_of_its_own_run(monkeypatch, tmp_path):
    # Issue 20: the run stored its parent's sys.argv, which does not run.
    seen = []
    monkeypatch.setattr(
        icbm, "run", lambda config, workdir, command=None: seen.append((workdir, command)) or {}
    )
    monkeypatch.setattr(sys, "argv", ["experiments/run.py", "icbm_main", "--profile", "quick"])
    run.run_study(studies.STUDIES["icbm_main"], "quick", str(tmp_path))
    (planned,) = run.plan(studies.STUDIES["icbm_main"], "quick", str(tmp_path))
    assert seen == [(str(tmp_path / "icbm_main"), planned.command)]
    config, workdir = parsed_back(planned.command)
    assert workdir == str(tmp_path / "icbm_main")
    assert planned.command.startswith("python -m experiments.icbm --config experiments/")
    assert config.to_dict() == planned.config.to_dict()


def test_the_committed_main_job_results_record_a_command_of_that_run():
    paths = glob.glob(os.path.join(REPO, "results", "*", "icbm_main", "results.json"))
    assert paths
    for path in paths:
        args = json.load(open(path))["command"].split()
        assert args[:3] == ["python", "-m", "experiments.icbm"], path
        from htaf_jax.train import cli

        config, workdir = cli.parse_flags(["icbm", *args[3:]], icbm.DEFAULT_CONFIG)
        assert workdir == os.path.dirname(os.path.relpath(path, REPO))
        (planned,) = run.plan(
            studies.STUDIES["icbm_main"],
            path.split(os.sep)[-3],
            os.path.dirname(os.path.dirname(path)),
        )
        assert runs.config_hash(config) == runs.config_hash(planned.config), path
        # ... and of today's config file (a changed default changes the hash, not the command)
        assert json.load(open(path))["config_hash"] == runs.config_hash(planned.config), path


def test_a_main_job_folder_of_another_config_is_not_taken_for_this_one(tmp_path, monkeypatch):
    monkeypatch.setattr(icbm, "run", lambda *a, **k: pytest.fail("must not train over it"))
    (planned,) = run.plan(studies.STUDIES["icbm_main"], "quick", str(tmp_path))
    os.makedirs(planned.workdir)
    for stored in ({"command": planned.command}, {"config_hash": "0" * 8}):
        with open(os.path.join(planned.workdir, "results.json"), "w") as f:
            json.dump(stored, f)
        with pytest.raises(
            SystemExit, match=f"holds the job of another config.*rm -r {planned.workdir}"
        ):
            run.run_study(studies.STUDIES["icbm_main"], "quick", str(tmp_path))
    with open(os.path.join(planned.workdir, "results.json"), "w") as f:
        json.dump({"config_hash": runs.config_hash(planned.config), "icbm": {}}, f)
    assert run.run_study(studies.STUDIES["icbm_main"], "quick", str(tmp_path)) == 1


def test_flags_list_and_errors(capsys):
    assert run.main(["run", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == list(studies.STUDIES)
    assert any(
        line.split()[:4] == ["dhn_alpha_beta", "96", "runs", "validation"] for line in listed
    )
    assert run.main(["run", "snn_mlp", "nope"]) == 2
    assert run.main(["run", "nope"]) == 2
    assert "studies: snn_mlp, snn_conv" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        run.main(["run", "--profile", "slow"])
    assert e.value.code == 2 and "--profile" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        run.main(["run", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--[no]dry-run: Print each study's" in out
    assert "studies: all, snn_mlp" in out


def test_dry_run_counts_finished_runs_and_estimates_the_rest(tmp_path, capsys):
    study = studies.STUDIES["snn_mlp"]
    assert run.dry_run(study, "quick", str(tmp_path)) == (0, 33, 0.0)
    assert "33 not estimated (no run of snn_mlp timed)" in capsys.readouterr().out
    first = run.plan(study, "quick", str(tmp_path))[0].workdir
    os.makedirs(first)
    with open(os.path.join(first, "results.json"), "w") as f:
        json.dump({"accuracy": 0.8, "seconds": 360.0, "machine": runs.machine()}, f)
    os.makedirs(tmp_path / "snn_mlp" / "runs" / "htaf-s0-00000000")  # another config
    capsys.readouterr()
    assert run.dry_run(study, "quick", str(tmp_path)) == (1, 33, 32 * 360.0)
    assert capsys.readouterr().out.startswith(
        "[snn_mlp] 1 of 33 runs finished; the 32 left ≈ 3.2 h: 32 from the nearest timed runs "
        "of the same model and budget [snn_mlp (quick), date not recorded, this machine]"
    )
    assert run.main(["run", "all", "--dry-run", "--profile", "quick", "--out", str(tmp_path)]) == 0
    total = sum(s.num_runs for s in studies.STUDIES.values())
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"total: 1 of {total} runs ")


def test_report_only_all_rewrites_the_report_and_trains_nothing(
    tmp_path, monkeypatch, count_trainings
):
    """Tables from their records, training nothing; a table of earlier code (its runs not
    planned today) is labelled in RESULTS.md and left out of the summary and README."""
    (tmp_path / "README.md").write_text(f"{report.README_START}\n{report.README_END}\n")
    monkeypatch.setattr(report, "REPO", str(tmp_path))
    out = tmp_path / "results" / "quick"
    records = [
        {
            "label": r.label,
            "coords": r.coords,
            **r.coords,
            "seed": r.seed,
            "workdir": os.path.relpath(r.workdir, out),
            "accuracy": {"htaf": 0.85, "atan": 0.845}[r.label] + 0.005 * r.seed,
            "seconds": 9.0,
        }
        for r in run.plan(studies.STUDIES["snn_mlp"], "quick", str(out), ["htaf", "atan"])
    ]
    _table(out, "snn_mlp", [])
    path = out / "snn_mlp" / "snn_mlp_surrogates.json"
    path.write_text(json.dumps({"date": "d", "machine": "m", "commit": "abc1234", "runs": records}))
    _table(out, "bnn_mlp", [_row("htaf", 80.0), _row("atan", 79.0)])  # rows of earlier code
    assert run.main(["run", "all", "--report-only", "--profile", "quick", "--out", str(out)]) == 0
    assert not count_trainings
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| snn_mlp | 85.50 ± 0.50 | atan: 85.00 ± 0.50 |" in text
    assert "| snn_mlp | 85.50 ± 0.50 |" in (tmp_path / "README.md").read_text()
    table = json.load(open(path))
    assert table["rows"][0]["accuracy"]["mean"] == pytest.approx(85.5)
    assert (table["date"], table["machine"], table["commit"]) == ("d", "m", "abc1234")
    assert "Commit: abc1234  " in (out / "snn_mlp" / "snn_mlp_surrogates.md").read_text()
    assert "| bnn_mlp |" not in text and "| bnn_mlp |" not in (tmp_path / "README.md").read_text()
    assert "Left out: the tables of bnn_mlp, made at earlier commits" in text
    assert (
        "**Made at commit unknown by code that no longer plans these runs**; rerun with "
        "`python -m experiments.run bnn_mlp --profile quick`." in text
    )


def test_records_in_a_table_stand_for_runs_whose_folders_are_gone(
    tmp_path, count_trainings, capsys
):
    """A fresh clone has the tables' JSON (each run's record, by work dir) but no runs: a
    planned run whose record is there under the same config hash is neither trained nor
    counted as missing, and the table is rewritten from the records with today's columns.
    An α/β sweep has no standard row, so its Δ column is n/a, not a row's difference to
    itself."""
    study = studies.STUDIES["icbm_alpha_beta"]
    planned = run.plan(study, "full", str(tmp_path))
    meta = {
        "study": study.name,
        "title": "old title",
        "command": "c",
        "machine": "m",
        "date": "d",
        "split": "validation",
        "validation_size": 10,
        "config": "x",
        "overrides": {},
        "seeds": [0],
        "runs_planned": len(planned),
    }
    records = [
        {
            "label": r.label,
            "coords": r.coords,
            **r.coords,
            "seed": 0,
            "note": "",
            "workdir": os.path.relpath(r.workdir, tmp_path),
            "hard_accuracy": acc,
            "seconds": 5.0,
        }
        for r, acc in zip(planned, (0.9, 0.91, 0.5, 0.5, 0.5))
    ]
    stem = tmp_path / study.name / study.name
    tables.write(str(stem), study, meta, records[:2])
    (stem.with_suffix(".md")).write_text("stale")
    assert run.dry_run(study, "full", str(tmp_path))[:2] == (2, 5)
    assert run.run_study(study, "full", str(tmp_path), report_only=True) == 2
    assert not count_trainings
    md = (stem.with_suffix(".md")).read_text()
    assert md.startswith(f"# {study.title}\n") and "| 8.0 | 1.0 | 91.00 ± 0.00 | n/a |" in md
    table = json.load(open(stem.with_suffix(".json")))
    assert table["rows"][1]["hard_accuracy"]["mean"] == 91.0
    assert (table["date"], table["machine"]) == ("d", "m")  # when and where they were measured
    assert "_measured" not in table["runs"][0]
    assert "a8-b1-s0 (record in its table)" in capsys.readouterr().out


def test_choices_table_says_which_split_chose_each_default_and_whether_it_agrees(tmp_path):
    epochs = studies.default_of("snn_conv", "num_epochs")
    _table(
        tmp_path / "full",
        "snn_conv_epochs",
        [
            {"epochs": epochs, "seeds": [0], "accuracy": {"mean": 90.0, "std": 0.0}},
            {"epochs": epochs - 1, "seeds": [0], "accuracy": {"mean": 90.5, "std": 0.0}},
        ],
    )
    recipe = {
        k: studies.default_of("icbm", p)
        for k, p in (
            ("num_concepts", "model.num_concepts"),
            ("concept_noise", "model.concept_noise"),
            ("sharpen", "model.sharpen"),
            ("epochs", "num_epochs"),
        )
    }
    icbm_row = lambda acc, near, **change: {  # noqa: E731
        **recipe,
        **change,
        "seeds": [0],
        "hard_accuracy": {"mean": acc, "std": 0.0},
        "near_binary@0.01": {"mean": near, "std": 0.0},
    }
    _table(
        tmp_path / "full",
        "icbm_recipe",
        [
            {
                "variant": "standard",
                "num_concepts": None,
                "seeds": [0],
                "hard_accuracy": {"mean": 95.0, "std": 0.0},
            },  # no recipe: left out
            icbm_row(89.0, 99.5),
            icbm_row(89.9, 98.0, concept_noise=7.0),  # misses the target
            icbm_row(89.4, 99.2, sharpen=99.0),
            icbm_row(99.0, 99.9, sharpen=5.0, epochs=1),
        ],
    )
    _table(tmp_path / "quick", "alpha_beta", [_row("htaf", 80.0)])  # no α column: n/a
    lines = report.choices_table(str(tmp_path / "full"), str(tmp_path / "quick")).splitlines()
    n, x = recipe["concept_noise"], recipe["sharpen"]
    assert (
        f"| snn_conv: num_epochs | {epochs} | snn_conv_epochs (validation, full) | "
        f"epochs={epochs}: 90.00 ± 0.00 | epochs={epochs - 1}: 90.50 ± 0.00 | **no** |"
    ) in lines
    assert (
        f"| icbm: model.concept_noise | {n} | icbm_recipe (validation, full) | "
        f"concept_noise={n}: 89.00 ± 0.00 | concept_noise={n}: 89.00 ± 0.00 | yes |"
    ) in lines
    assert (
        f"| icbm: model.sharpen | {x} | icbm_recipe (validation, full) | sharpen={x}: "
        "89.00 ± 0.00 | sharpen=99.0: 89.40 ± 0.00 | **no** |"
    ) in lines
    assert any(  # chosen on validation by a study now, not yet run here
        line.startswith("| icbm: model.surrogate_kwargs.htaf.alpha | 16.0 | icbm_dense_choices ")
        for line in lines
    )
    beta = studies.default_of("dhn_mlp", "model.surrogate_kwargs.htaf.beta")
    assert (
        f"| dhn_mlp: model.surrogate_kwargs.htaf.beta | {beta} | alpha_beta (validation, "
        "quick) | n/a | n/a | n/a |"
    ) in lines


def _cell(mean: float) -> dict:
    return {"mean": mean, "std": 0.0, "text": f"{mean:.2f} ± 0.00"}


def test_a_choosing_studys_finding_names_the_value_its_rows_pick():
    epochs = studies.default_of("snn_conv", "num_epochs")
    finding = studies.STUDIES["snn_conv_epochs"].finding
    rows = [{"epochs": e, "accuracy": _cell(a)} for e, a in ((6, 90.6), (5, 90.2), (4, 89.8))]
    assert finding(rows) == [
        f"- snn_conv: num_epochs: chosen epochs={epochs} (90.60 ± 0.00 acc %), the config's default"
    ]
    rows[1]["accuracy"] = _cell(91.0)
    assert finding(rows) == [
        "- snn_conv: num_epochs: chosen epochs=5 (91.00 ± 0.00 acc %); the config's default is "
        f"{epochs} (epochs={epochs} (90.60 ± 0.00 acc %)): change it in "
        "experiments/configs/snn_conv.py"
    ]
    # The dense ICBM: one field at a time, the others at their defaults, among the rows that
    # meet the binary target.
    study = studies.STUDIES["icbm_dense_choices"]
    default = study.points[0].coords
    assert default == {
        k: studies.default_of("icbm", p) for k, p in studies.DENSE_ICBM_FIELDS.items()
    }
    assert [p.label for p in study.points] == [
        "default",
        "alpha8",
        "alpha32",
        "beta0.5",
        "beta2",
        "sharpen_fraction0.5",
        "sharpen_fraction0.75",
        "learning_rate0.001",
        "learning_rate0.004",
    ]

    def row(acc, near, **change):
        return {**default, **change, "hard_accuracy": _cell(acc), "near_binary@0.01": _cell(near)}

    lines = study.finding(
        [
            row(85.0, 99.5),
            row(86.0, 99.6, alpha=8.0),
            row(87.0, 90.0, alpha=32.0),  # misses the binary target
            row(84.0, 99.5, beta=0.5),
            row(90.0, 99.9, beta=2.0, alpha=8.0),  # two fields changed: no field's row
        ]
    )
    assert lines[0] == (
        "- icbm: model.surrogate_kwargs.htaf.alpha: chosen alpha=8.0 (86.00 ± 0.00 hard acc %); "
        "the config's default is 16.0 (alpha=16.0 (85.00 ± 0.00 hard acc %)): change it in "
        "experiments/configs/icbm.py"
    )
    assert lines[1].startswith("- icbm: model.surrogate_kwargs.htaf.beta: chosen beta=1.0 ")
    assert len(lines) == 4
    # A better mean inside the seeds' spread does not move the default; outside it, it does.
    noisy = lambda acc, std, **change: {  # noqa: E731
        **row(acc, 99.5, **change),
        "hard_accuracy": {"mean": acc, "std": std, "text": f"{acc:.2f} ± {std:.2f}"},
    }
    rate = "- icbm: learning_rate: chosen learning_rate="
    inside = study.finding([noisy(85.0, 0.1), noisy(85.2, 0.3, learning_rate=1e-3)])
    assert inside[3].startswith(rate + "0.002 (85.00 ± 0.10 hard acc %), the config's default;")
    assert inside[3].endswith(
        "learning_rate=0.001 (85.20 ± 0.30 hard acc %) is within the seeds' std"
    )
    outside = study.finding([noisy(85.0, 0.1), noisy(85.4, 0.3, learning_rate=1e-3)])
    assert outside[3].startswith(rate + "0.001 (85.40 ± 0.30 hard acc %); the config's default")
    planned = run.plan(study, "quick", "r")
    assert len(planned) == 9 * 3 and {r.split for r in planned} == {"validation"}
    lr = next(r for r in planned if r.label == "learning_rate0.004")
    assert (lr.config.learning_rate, lr.config.model.sharpen_fraction) == (4e-3, 1.0)
    assert studies.CHOSEN_BY[("bnn_resnet", "learning_rate")] == ("bnn_resnet_lr", "learning_rate")
    assert [p.coords["learning_rate"] for p in studies.STUDIES["bnn_resnet_lr"].points] == list(
        studies.BNN_RESNET_LRS
    )
