"""The surrogate sweep: tables on real data, reuse of finished runs, config hashing, errors."""
import glob
import json
import os

import ml_collections
import pytest

import htaf_jax.train
from experiments import runs, sweep
from data_marks import needs_data


# A runlocal-sized DHN: 256 training images, one epoch of 4 steps.
TINY = ["--config.train_subset=256", "--config.test_subset=128", "--config.batch_size=64",
        "--config.eval_batch_size=128", "--config.num_epochs=1", "--config.model.width=32",
        "--config.checkpoint_every_steps=100", "--config.log_every_steps=2",
        "--config.progress=False", "--config.tensorboard=False"]


@pytest.fixture
def count_trainings(monkeypatch):
    calls = []
    real = htaf_jax.train.train_and_evaluate

    def counting(config, workdir):
        calls.append(workdir)
        return real(config, workdir)

    monkeypatch.setattr(htaf_jax.train, "train_and_evaluate", counting)
    return calls


@needs_data
def test_sweep_writes_tables_and_reuses_finished_runs(tmp_path, count_trainings):
    out = str(tmp_path / "out")
    argv = ["--family", "dhn_mlp", "--seeds", "0,1", "--surrogates", "htaf,atan",
            "--out", out, "--config.model.depth=2", *TINY]
    assert sweep.main(argv) == 0
    assert len(count_trainings) == 4
    result = json.load(open(os.path.join(out, "dhn_mlp_surrogates.json")))
    assert [r["surrogate"] for r in result["rows"]] == ["htaf", "atan"]
    for row in result["rows"]:
        assert row["seeds"] == [0, 1] and row["split"] == "test"
        accs = row["accuracy_per_seed"]
        assert row["accuracy"]["mean"] == pytest.approx(100 * sum(accs) / 2)
        # Each seed's figure is what its stored model scores on the 128 test images.
        for seed, acc in zip(row["seeds"], accs):
            workdir = glob.glob(os.path.join(out, "runs", f"{row['surrogate']}-s{seed}-*"))[0]
            assert acc == pytest.approx(_recomputed_accuracy(workdir), abs=1e-6)
    assert result["command"].startswith("python -m experiments.sweep --family dhn_mlp")
    assert result["budget"]["train_subset"] == 256 and result["machine"]
    text = open(os.path.join(out, "dhn_mlp_surrogates.md")).read()
    assert "| htaf |" in text and "| atan |" in text and result["command"] in text
    assert os.path.getsize(os.path.join(out, "dhn_mlp_surrogates.png")) > 1000
    assert len(glob.glob(os.path.join(out, "runs", "*", "results.json"))) == 4
    for path in glob.glob(os.path.join(out, "runs", "*", "results.json")):
        config, workdir = _parsed_back(json.load(open(path))["command"])  # this run alone
        assert workdir == os.path.dirname(path)
        stored = json.load(open(os.path.join(workdir, "config.json")))
        assert runs._trained_with(stored, runs._identity(json.loads(config.to_json())))

    mtimes = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(out, "runs", "*", "*.json"))}
    assert sweep.main(argv) == 0  # everything finished: nothing retrains
    assert len(count_trainings) == 4
    assert {p: os.path.getmtime(p) for p in mtimes} == mtimes
    assert json.load(open(os.path.join(out, "dhn_mlp_surrogates.json")))["rows"] == result["rows"]

    # --report_only: a table of the finished runs of a bigger plan, training nothing.
    assert sweep.main(argv + ["--surrogates", "htaf,atan,sigmoid", "--report_only"]) == 0
    assert len(count_trainings) == 4
    partial = json.load(open(os.path.join(out, "dhn_mlp_surrogates.json")))
    assert [r["surrogate"] for r in partial["rows"]] == ["htaf", "atan"]
    assert "--report_only" not in partial["command"] and "htaf,atan,sigmoid" in partial["command"]
    assert "**Unfinished:** 4 of the command's 6 runs have finished" in open(
        os.path.join(out, "dhn_mlp_surrogates.md")).read()
    empty = str(tmp_path / "empty")
    assert sweep.main(argv + ["--out", empty, "--report_only"]) == 0
    assert not os.path.exists(empty) and len(count_trainings) == 4

    assert sweep.main(argv + ["--config.learning_rate=0.002", "--seeds", "0",
                              "--surrogates", "atan"]) == 0
    assert len(count_trainings) == 5  # a changed field is a new run


@needs_data
def test_depth_sweep_records_layer_gradients_and_falls_back_to_hard(tmp_path, count_trainings):
    out = str(tmp_path / "depth")
    argv = ["--family", "dhn_mlp", "--depths", "1,3", "--seeds", "0", "--out", out,
            "--surrogates", "htaf,straight_through", "--config.model.mode=smooth", *TINY]
    assert sweep.main(argv) == 0
    rows = json.load(open(os.path.join(out, "dhn_mlp_depths.json")))["rows"]
    by_key = {(r["surrogate"], r["depth"]): r for r in rows}
    assert set(by_key) == {("htaf", 1), ("htaf", 3), ("straight_through", 1),
                           ("straight_through", 3)}
    for (surrogate, depth), row in by_key.items():
        assert len(row["grad_norms_init"]) == len(row["grad_norms_end"]) == depth
        assert row["mode"] == ("smooth" if surrogate == "htaf" else "hard")
    assert "no smooth form" in by_key[("straight_through", 3)]["note"]
    assert "no smooth form" in open(os.path.join(out, "dhn_mlp_depths.md")).read()
    # The norms are those of the run's own config: at its initialisation (recomputed
    # from the seed) and at its stored end state.
    from htaf_jax.train import load_config, restore_params
    for (surrogate, depth), row in by_key.items():
        workdir = glob.glob(os.path.join(out, "runs", f"{surrogate}-d{depth}-s0-*"))[0]
        config = load_config(workdir)
        assert config.model.surrogate == surrogate and config.model.mode == row["mode"]
        assert sweep.layer_grad_norms(config) == pytest.approx(row["grad_norms_init"], rel=1e-4)
        end = restore_params(workdir)
        assert sweep.layer_grad_norms(config, end.params, end.batch_stats) == pytest.approx(
            row["grad_norms_end"], rel=1e-4)
    # A known case: a depth-1 HTAF run's init norm is that of a freshly built config.
    config = sweep.run_config(_tiny_config(), "htaf", 0, depth=1)[0]
    config.model.mode = "smooth"
    assert sweep.layer_grad_norms(config) == pytest.approx(by_key[("htaf", 1)]["grad_norms_init"],
                                                           rel=1e-4)


def _recomputed_accuracy(workdir: str) -> float:
    """Test accuracy of the run's last checkpoint on its eval images, outside the engine."""
    import numpy as np
    from htaf_jax.data import load_splits
    from htaf_jax.train import load_config, restore_params
    from htaf_jax.train.restore import model_from_run
    config = load_config(workdir)
    model, _ = model_from_run(workdir)
    state = restore_params(workdir)
    variables = {"params": state.params, **({"batch_stats": state.batch_stats}
                                            if state.batch_stats else {})}
    splits = load_splits(config.dataset, config.get("data_dir"), train_subset=config.train_subset,
                         test_subset=config.test_subset, validation_size=config.validation_size)
    logits = model.apply(variables, splits.normalizer(splits.eval.images), train=False)
    return float(np.mean(np.argmax(logits, -1) == splits.eval.labels))


def _tiny_config():
    from experiments.configs import dhn_mlp
    config = dhn_mlp.get_config()
    for arg in TINY:
        key, value = arg[len("--config."):].split("=")
        node = config
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = type(node[leaf])(value == "True" if value in ("True", "False") else
                                      float(value) if "." in value else int(value))
    return config


def test_config_hash_changes_with_any_field():
    from experiments.configs import snn_mlp
    a = snn_mlp.get_config()
    b = ml_collections.ConfigDict(a.to_dict())
    assert runs.config_hash(a) == runs.config_hash(b)
    b.model.surrogate_kwargs.htaf.alpha = 8.0
    assert runs.config_hash(a) != runs.config_hash(b)
    c = ml_collections.ConfigDict(a.to_dict())
    c.seed = 1
    assert runs.config_hash(a) != runs.config_hash(c)
    assert runs.run_dir("o", "htaf", 0, a) == os.path.join("o", "runs",
                                                            f"htaf-s0-{runs.config_hash(a)}")
    d = ml_collections.ConfigDict(a.to_dict())
    d.progress, d.tensorboard, d.checkpoint_every_steps = False, False, 7
    assert runs.config_hash(a) == runs.config_hash(d)  # how a run is watched is not its identity


def test_run_dir_reuses_a_run_of_the_same_config_under_another_hash(tmp_path):
    from experiments.configs import snn_mlp
    config = snn_mlp.get_config()
    out = str(tmp_path)

    def stored(name, cfg, finished):
        path = os.path.join(out, "runs", name)
        os.makedirs(path)
        with open(os.path.join(path, "config.json"), "w") as f:
            f.write(cfg.to_json(indent=2))
        if finished:
            with open(os.path.join(path, runs.RESULTS_FILE), "w") as f:
                json.dump({"accuracy": 0.5}, f)
        return path

    quiet = ml_collections.ConfigDict(config.to_dict())
    quiet.progress = False
    other = ml_collections.ConfigDict(config.to_dict())
    other.learning_rate = 0.5
    stored("htaf-s0-00000000", other, True)        # another config: never reused
    stored("htaf-s1-11111111", quiet, True)        # another seed's label
    stored("htaf-s0-aaaaaaaa", quiet, False)       # same config, unfinished
    finished = stored("htaf-s0-bbbbbbbb", quiet, True)
    assert runs.run_dir(out, "htaf", 0, config) == finished
    assert runs.run_dir(out, "htaf", 0, other) == os.path.join(out, "runs", "htaf-s0-00000000")
    third = ml_collections.ConfigDict(config.to_dict())
    third.num_epochs = 1
    new = os.path.join(out, "runs", f"htaf-s0-{runs.config_hash(third)}")
    assert runs.run_dir(out, "htaf", 0, third) == new  # nothing matches: its own hash
    current = os.path.join(out, "runs", f"htaf-s0-{runs.config_hash(config)}")
    os.makedirs(current)  # once the current hash's folder exists, it wins
    assert runs.run_dir(out, "htaf", 0, config) == current
    assert runs.run_dir(out, "atan", 0, config).endswith(f"atan-s0-{runs.config_hash(config)}")


def test_run_dir_finds_a_run_stored_with_flat_surrogate_kwargs(tmp_path):
    # Before issue 20 the ICBM config bound HTAF's α, β flat; it now keys them by
    # unit name. The same run either way, so the finished run is found.
    from experiments.configs import icbm
    keyed = icbm.get_config()
    keyed.model.surrogate_kwargs = {"htaf": {"alpha": 16.0, "beta": 1.0}}
    flat = ml_collections.ConfigDict(keyed.to_dict())
    flat.model.surrogate_kwargs = {"alpha": 16.0, "beta": 1.0}
    path = tmp_path / "runs" / "mlp-htaf-k128-s0-00000000"
    path.mkdir(parents=True)
    (path / "config.json").write_text(flat.to_json())
    (path / runs.RESULTS_FILE).write_text("{}")
    assert runs.config_hash(keyed) != runs.config_hash(flat)
    assert runs.run_dir(str(tmp_path), "mlp-htaf-k128", 0, keyed) == str(path)
    other = ml_collections.ConfigDict(keyed.to_dict())
    other.model.surrogate_kwargs.htaf.alpha = 8.0  # another α is another run
    assert runs.run_dir(str(tmp_path), "mlp-htaf-k128", 0, other) != str(path)


def _parsed_back(command: str):
    """The config the CLI builds from a run's stored command."""
    import shlex
    from htaf_jax.train import cli
    args = shlex.split(command)
    assert args[:2] == ["python", "-m"]
    return cli.parse_flags([args[2], *args[3:]])


@pytest.mark.parametrize("argv", [
    ["--family", "snn_mlp", "--surrogates", "htaf,atan", "--config.num_epochs=2"],
    ["--family", "dhn_mlp", "--depths", "2,8", "--surrogates", "htaf,straight_through",
     "--config.model.mode=smooth", "--config.model.width=64"],
    ["--family", "dhn_mlp", "--alphas", "2,8", "--betas", "0.5"],
])
def test_each_sweep_run_has_a_command_that_rebuilds_its_config(argv, tmp_path):
    p = sweep.plan([*argv, "--seeds", "0,1", "--out", str(tmp_path)])
    assert p["config_file"] == sweep.FAMILIES[p["family"]]
    for run in p["runs"]:
        command = runs.run_command(run["config"], run["workdir"], p["config_file"])
        assert command.startswith(f"python -m experiments.train --config {p['config_file']} ")
        config, workdir = _parsed_back(command)
        assert workdir == run["workdir"]
        assert config.to_dict() == run["config"].to_dict(), command


def test_each_icbm_compare_run_has_a_command_that_rebuilds_its_config(tmp_path):
    from experiments import icbm_compare
    p = icbm_compare.plan(["--seeds", "1", "--backbones", "mlp,cnn", "--concepts", "8",
                           "--out", str(tmp_path), "--config.num_epochs=3"])
    assert {r["variant"] for r in p["runs"]} == {"standard", *icbm_compare.VARIANTS}
    for run in p["runs"]:
        module = "experiments.train" if run["variant"] == "standard" else "experiments.icbm"
        command = runs.run_command(run["config"], run["workdir"], p["config_file"], module)
        assert command.startswith(f"python -m {module} --config {p['config_file']} ")
        config, _ = _parsed_back(command)
        assert config.to_dict() == run["config"].to_dict(), command
    standard = next(r for r in p["runs"] if r["variant"] == "standard" and
                    r["backbone"] == "cnn")
    # A model dict with other fields than the config file's is set whole.
    assert "--config.model={" in runs.run_command(standard["config"], "w", p["config_file"])


def test_run_config_changes_only_the_surrogate():
    from experiments.configs import bnn_mlp
    base = bnn_mlp.get_config()
    atan, note = sweep.run_config(base, "atan", 2)
    assert atan.model.surrogate == "atan" and atan.seed == 2 and note == ""
    assert atan.model.hidden == base.model.hidden and atan.num_epochs == base.num_epochs
    # Per-name kwargs stay (used only for htaf); α/β runs set htaf's.
    assert atan.model.surrogate_kwargs.to_dict() == base.model.surrogate_kwargs.to_dict()
    ab, _ = sweep.run_config(base, "htaf", 0, alpha=8, beta=0.5)
    assert ab.model.surrogate_kwargs.to_dict() == {"htaf": {"alpha": 8.0, "beta": 0.5}}


def test_unknown_names_list_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown family 'snn'; valid families: snn_mlp, "
                                         "snn_conv, bnn_mlp, bnn_conv, dhn_mlp"):
        sweep.main(["--family", "snn", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match=r"unknown surrogate\(s\) 'arctan'; valid: all, "
                                         r"approx_sign, atan, erf"):
        sweep.main(["--family=bnn_mlp", "--surrogates", "htaf,arctan", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="--depths needs a family with a model depth field"):
        sweep.main(["--family", "bnn_mlp", "--depths", "2,4", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="--family is required; valid families: snn_mlp"):
        sweep.main(["--seeds", "0"])
    assert not os.listdir(tmp_path)


def test_table_of_an_unfinished_sweep_names_the_finished_seeds(tmp_path):
    from experiments import sweep_report
    meta = {"family": "snn_mlp", "kind": "surrogates", "command": "python -m experiments.sweep",
            "machine": "m", "date": "d", "seeds": [0, 1, 2], "changed_from_default": {},
            "budget": {k: 0 for k in ("num_epochs", "num_train_steps", "batch_size",
                                      "learning_rate", "optimizer", "schedule", "train_subset",
                                      "test_subset", "validation_size")}}
    record = {"surrogate": "htaf", "depth": None, "alpha": None, "beta": None, "split": "test",
              "accuracy": 0.9, "seconds": 1.0}
    stem = str(tmp_path / "snn_mlp_surrogates")
    sweep_report.write(stem, meta, [{**record, "seed": 1}])
    text = open(stem + ".md").read()
    assert "mean ± std over seeds 1 (" in text and "**Unfinished:** seeds 0,1,2" in text
    assert json.load(open(stem + ".json"))["seeds"] == [1]
    sweep_report.write(stem, meta, [{**record, "seed": s} for s in (0, 1, 2)])
    text = open(stem + ".md").read()
    assert "mean ± std over seeds 0,1,2 (" in text and "Unfinished" not in text
    sweep_report.write(stem, {**meta, "runs_planned": 6}, [{**record, "seed": s} for s in (0, 1, 2)])
    text = open(stem + ".md").read()  # a whole surrogate missing: every row has every seed
    assert "**Unfinished:** 3 of the command's 6 runs have finished" in text
    assert "row(s) have fewer" not in text
