"""Configs: command-line overrides, validation before any compilation, runlocal."""

import jax
import pytest

from experiments.configs import mlp as mlp_config
from htaf_jax.train import ConfigError, cli, prepare_config, train_and_evaluate
from htaf_jax.train import loop as loop_lib
from htaf_jax.train import step as step_lib

CONFIG = "experiments/configs/mlp.py"


@pytest.fixture
def no_compilation(monkeypatch):
    """Fails the test if the engine gets as far as reading data or building a step."""

    def reached(*args, **kwargs):
        raise AssertionError("validation should have failed before this point")

    monkeypatch.setattr(loop_lib.data_lib, "load_splits", reached)
    monkeypatch.setattr(step_lib, "make_train_step", reached)
    monkeypatch.setattr(step_lib, "make_mesh", reached)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("learning_rate", -0.1, "config.learning_rate must be > 0, got -0.1"),
        ("batch_size", 0, "config.batch_size must be > 0, got 0"),
        ("num_epochs", 0, "config.num_epochs must be >= 1, got 0"),
        ("train_subset", -5, "config.train_subset must be -1 (all) or > 0, got -5"),
        (
            "optimizer",
            "adagrad",
            "config.optimizer must be one of adam, adamw, sgd, bop, got 'adagrad'",
        ),
        ("dataset", "fashon_mnist", "config.dataset: unknown dataset 'fashon_mnist'"),
    ],
)
def test_invalid_field_fails_before_compilation(field, value, message, tmp_path, no_compilation):
    config = mlp_config.get_config()
    config[field] = value
    with pytest.raises(ConfigError) as e:
        train_and_evaluate(config, str(tmp_path))
    assert message in str(e.value)


def test_unknown_model_lists_the_registered_ones(no_compilation, tmp_path):
    config = mlp_config.get_config()
    config.model.name = "resnet9000"
    with pytest.raises(ConfigError, match=r"config.model.name: unknown model 'resnet9000'.*mlp"):
        train_and_evaluate(config, str(tmp_path))


def test_unknown_surrogate_is_rejected(no_compilation, tmp_path):
    from htaf_jax.units import list_units

    config = mlp_config.get_config()
    config.model.surrogate = "not_a_surrogate"
    with pytest.raises(ConfigError, match="config.model.surrogate: unknown unit") as e:
        train_and_evaluate(config, str(tmp_path))
    assert list_units()[0] in str(e.value)
    config.model.surrogate = "htaf"
    prepare_config(config)  # a registered name passes
    config.model.surrogate = "ste_tern"  # every unit is valid for every model
    prepare_config(config)
    config.model.surrogate = "ste_sign_typo"
    with pytest.raises(
        ConfigError,
        match=r"unknown unit 'ste_sign_typo'; valid names: "
        r".*ste_sign",
    ):
        prepare_config(config)


def test_batch_not_divisible_by_devices_names_both_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(
        loop_lib.data_lib,
        "load_splits",
        lambda *a, **k: pytest.fail("data read before the device check"),
    )
    config = mlp_config.get_config()
    config.batch_size = 101  # divisible by no fake device count but 1
    with pytest.raises(
        ConfigError,
        match=r"config.batch_size=101 is not divisible by the "
        rf"number of devices \({jax.device_count()}\)",
    ):
        train_and_evaluate(config, str(tmp_path))
    config.num_devices = 1  # the same batch is fine on one device: check passes
    with pytest.raises(BaseException, match="data read before"):
        train_and_evaluate(config, str(tmp_path))


def test_command_line_overrides_any_field():
    config, workdir = cli.parse_flags(
        [
            "train",
            "--config",
            CONFIG,
            "--workdir",
            "/tmp/x",
            "--config.num_epochs=3",
            "--config.model.hidden_sizes=(32,16)",
            "--config.learning_rate=0.01",
        ]
    )
    assert workdir == "/tmp/x"
    assert config.num_epochs == 3 and config.learning_rate == 0.01
    assert tuple(config.model.hidden_sizes) == (32, 16)


def test_cli_bad_values_exit_with_one_line(tmp_path, capsys, no_compilation):
    with pytest.raises(SystemExit) as e:
        cli.main(
            ["train", "--config", CONFIG, "--workdir", str(tmp_path), "--config.learning_rate=-0.1"]
        )
    assert e.value.code == 1
    assert capsys.readouterr().err.strip() == "error: config.learning_rate must be > 0, got -0.1"
    with pytest.raises(SystemExit) as e:
        cli.main(
            ["train", "--config", CONFIG, "--workdir", str(tmp_path), "--config.no_such_field=1"]
        )
    assert e.value.code == 2


@pytest.mark.parametrize(
    "config_file, field",
    [(CONFIG, "hiden_sizes"), ("experiments/configs/icbm.py", "concept_nosie")],
)
def test_cli_unknown_model_field_is_one_line_of_text(config_file, field, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(
            [
                "train",
                "--config",
                config_file,
                "--workdir",
                str(tmp_path),
                f"--config.model.{field}=0.5",
            ]
        )
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "\\n" not in err and "\\'" not in err
    assert err.endswith(
        f"error: --config.model.{field}: the config has no field '{field}'. "
        f'Did you mean "{field.replace("nosie", "noise").replace("hiden", "hidden")}" '
        f'instead of "{field}"?'
    )


@pytest.mark.parametrize(
    "name, field",
    [("mlp", "hiden_sizes"), ("icbm", "concept_nosie"), ("standard", "concept_noise")],
)
def test_model_field_unknown_to_the_factory_fails_before_compilation(
    name, field, tmp_path, no_compilation
):
    config = mlp_config.get_config()
    config.model = {"name": name, field: 0.5}
    with pytest.raises(ConfigError) as e:
        train_and_evaluate(config, str(tmp_path))
    text = str(e.value)
    assert text.startswith("config.model: ") and f"no fields ['{field}']" in text
    assert "its fields are" in text and "\n" not in text


def test_cli_done_line_shows_metrics_only_when_the_run_returns_them(tmp_path, capsys):
    argv = ["train", "--config", CONFIG, "--workdir", str(tmp_path)]
    assert cli.main(argv, train_fn=lambda config, workdir: {"summary": "printed by the job"}) == 0
    assert capsys.readouterr().out.strip() == f"done (workdir {tmp_path})"
    result = loop_lib.TrainResult({}, {}, {"test/accuracy": 0.5})
    assert cli.main(argv, train_fn=lambda config, workdir: result) == 0
    assert capsys.readouterr().out.strip() == f"done: test/accuracy=0.5000 (workdir {tmp_path})"


def test_runlocal_shrinks_any_config():
    config = mlp_config.get_config()
    config.runlocal = True
    small = prepare_config(config)
    assert small.train_subset == 512 and small.num_epochs == 1 and small.batch_size == 64
    assert config.train_subset == -1  # the caller's config is left alone


def test_help_lists_flags_and_the_config_it_would_run(capsys):
    with pytest.raises(SystemExit) as e:
        cli.parse_flags(["train", "--config", CONFIG, "--config.num_epochs=3", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--workdir: Directory for checkpoints and metrics." in out
    assert "--config.<field>=VALUE" in out
    assert "num_epochs: 3" in out  # the config with the command line's overrides
