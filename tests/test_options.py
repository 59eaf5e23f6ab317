"""Every option a list declares, or the README, a config comment or a --help text
advertises, passes config validation and trains one step through the command line.

The lists are the ones the code acts on (optim.OPTIMIZERS, optim.SCHEDULES, the
models' Literal fields, data.sources.LOCAL_DATASETS): a value added to one is walked
here without editing this file.
"""

import json
import os
import re
import typing

import numpy as np
import pytest
from data_marks import needs_data
from helpers import QUIET, flags

from htaf_jax.train import ConfigError, cli, optim, prepare_config

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
# One step of a runlocal-sized model, quiet.
ONE_STEP = {
    "train_subset": 128,
    "test_subset": 64,
    "batch_size": 32,
    "eval_batch_size": 64,
    "num_train_steps": 1,
    "log_every_steps": 1,
    "checkpoint_every_steps": 100,
    **QUIET,
}
SMALL = {
    "mlp": {"model.hidden_sizes": (16,)},
    "bnn_mlp": {"model.hidden": (16,)},
    "snn_mlp": {"model.hidden": (16,), "model.num_steps": 2},
    "icbm": {"model.backbone_kwargs.widths": (16,), "model.num_concepts": 8},
}


def _literal_choices(model_name: str, field: str) -> tuple:
    from htaf_jax.models import build_model

    config = _config(model_name)
    hint = typing.get_type_hints(type(build_model(config.model)))[field]
    assert typing.get_origin(hint) is typing.Literal, (model_name, field, hint)
    return typing.get_args(hint)


def _config(name: str):
    import importlib

    return importlib.import_module(f"experiments.configs.{name}").get_config()


def _train_one_step(name: str, overrides: dict, workdir) -> list[dict]:
    """Runs ``python -m experiments.train`` for one step; returns its metrics records."""
    argv = [
        "train",
        "--config",
        f"experiments/configs/{name}.py",
        "--workdir",
        str(workdir),
        *flags({**ONE_STEP, **SMALL[name], **overrides}),
    ]
    assert cli.main(argv) == 0
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


LISTS = [  # (config, field, values): every declared list of choices, trained one step each
    ("mlp", "optimizer", tuple(optim.OPTIMIZERS)),
    ("mlp", "schedule", tuple(optim.SCHEDULES)),
    ("snn_mlp", "model.reset", _literal_choices("snn_mlp", "reset")),
    ("icbm", "model.concept_mode", _literal_choices("icbm", "concept_mode")),
]
CASES = [(name, field, value) for name, field, values in LISTS for value in values]
# Lists the config comments advertise besides (validated; the SNN tests train them).
MORE = [
    ("snn_mlp", "model.encoding", _literal_choices("snn_mlp", "encoding")),
    ("snn_mlp", "model.readout", _literal_choices("snn_mlp", "readout")),
    ("snn_mlp", "model.neuron", _literal_choices("snn_mlp", "neuron")),
    ("dhn_mlp", "model.variant", _literal_choices("dhn_mlp", "variant")),
    ("dhn_mlp", "model.mode", _literal_choices("dhn_mlp", "mode")),
]
VALIDATED = CASES + [(name, field, value) for name, field, values in MORE for value in values]


def test_the_lists_are_the_ones_the_code_acts_on():
    assert tuple(optim.OPTIMIZERS) == ("adam", "adamw", "sgd", "bop")
    assert tuple(optim.SCHEDULES) == ("constant", "cosine")
    assert dict((f, v) for _, f, v in LISTS[2:]) == {
        "model.reset": ("subtract", "zero"),
        "model.concept_mode": ("smooth", "hard"),
    }
    from htaf_jax.train.config import FIELDS

    assert FIELDS["optimizer"].values == tuple(optim.OPTIMIZERS)
    assert FIELDS["schedule"].values == tuple(optim.SCHEDULES)


@pytest.mark.parametrize("name, field, value", VALIDATED)
def test_every_listed_value_passes_validation(name, field, value):
    config = _config(name)
    node, *path = [config, *field.split(".")]
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    prepare_config(config)
    unknown = f"{value}_typo"
    node[path[-1]] = unknown
    from htaf_jax.train.loop import check_model_config

    with pytest.raises(
        ConfigError, match=re.escape(path[-1]) + r".*must be one of .*" + re.escape(repr(unknown))
    ):
        check_model_config(prepare_config(config))


@needs_data
@pytest.mark.parametrize("name, field, value", CASES)
def test_every_listed_value_trains_one_step(name, field, value, tmp_path):
    records = _train_one_step(name, {field: value}, tmp_path)
    train = [r for r in records if r["split"] == "train"]
    assert train and np.isfinite(train[0]["loss"])
    with open(tmp_path / "config.json") as f:
        stored = json.load(f)
    for part in field.split("."):
        stored = stored[part]
    assert stored == value


@needs_data
def test_bop_trains_from_the_command_line_and_logs_flip_ratio(tmp_path, capsys):
    """The README's `--config.optimizer=bop`: Bop on the binary weights, flips logged."""
    records = _train_one_step(
        "bnn_mlp",
        {"optimizer": "bop", "num_train_steps": 2, "bop_threshold": 0.0, "bop_gamma": 0.5},
        tmp_path,
    )
    train = [r for r in records if r["split"] == "train"]
    ratios = [r["flip_ratio"] for r in train]
    # a zero threshold and gamma 0.5 flip some binary weights at every step, never all
    assert len(ratios) == 2 and all(0.0 < r < 1.0 for r in ratios), ratios
    adam = _train_one_step("bnn_mlp", {"num_train_steps": 2}, tmp_path / "adam")
    assert all("flip_ratio" not in r for r in adam)  # logged for Bop only
    assert "done: test/loss=" in capsys.readouterr().out


def test_every_backbone_the_icbm_config_names_builds():
    from htaf_jax.models import backbones, build_model

    config = _config("icbm")
    for name in backbones._BACKBONES:
        config.model.backbone, config.model.backbone_kwargs = name, {}
        build_model(prepare_config(config).model)
    config.model.backbone = "resnet9"
    from htaf_jax.train.loop import check_model_config

    with pytest.raises(ConfigError, match=r"config.model: unknown backbone 'resnet9'; choose "):
        check_model_config(prepare_config(config))


def test_bop_fields_are_checked():
    config = _config("bnn_mlp")
    config.optimizer, config.bop_gamma = "bop", 0.0
    with pytest.raises(ConfigError, match=r"^config.bop_gamma must be in \(0, 1\], got 0.0$"):
        prepare_config(config)


def test_the_datasets_list_names_what_validation_accepts():
    from htaf_jax.data.sources import LOCAL_DATASETS, TFDS_EXAMPLES

    config = _config("mlp")
    for name in (*LOCAL_DATASETS, *TFDS_EXAMPLES):
        config.dataset = name
        prepare_config(config)
    config.dataset = "fashon_mnist"
    with pytest.raises(ConfigError) as e:
        prepare_config(config)
    assert str(e.value) == (
        "config.dataset: unknown dataset 'fashon_mnist'; use "
        "'fashion_mnist' or 'shd' or a TFDS name such as "
        "mnist, cifar10, kmnist, emnist, svhn_cropped"
    )


def _readme_overrides() -> list[str]:
    with open(README) as f:
        return sorted(set(re.findall(r"--config\.[A-Za-z_.]+=[^\s`\\)]+", f.read())))


def test_readme_config_examples_parse_and_validate():
    """Each `--config.field=value` the README shows is a field of a config and a valid value."""
    examples = _readme_overrides()
    assert "--config.optimizer=bop" in examples and len(examples) >= 8, examples
    for example in examples:
        field = example.split("=", 1)[0][len("--config.") :]
        name = {"model.surrogate": "snn_mlp", "model.backbone": "icbm"}.get(field, "mlp")
        config, _ = cli.parse_flags(
            ["train", "--config", f"experiments/configs/{name}.py", "--workdir", "/unused", example]
        )
        prepare_config(config)
