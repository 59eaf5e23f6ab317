"""Any registry unit from any experiment config's command line.

Each config under experiments/configs that has a ``model.surrogate`` is parsed
with ``--config.model.surrogate=<unit>`` exactly as the CLI parses it, and its
model is built and traced (``jax.eval_shape`` of ``init`` and of a train-mode
forward: no training, no compilation): the chosen unit must carry its own
registry defaults, not the hyperparameters the config binds to HTAF, and a
unit that cannot train as configured fails validation in one line.
"""

import glob
import inspect
import os

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from htaf_jax.models import build_model
from htaf_jax.models.config_fields import (
    SMOOTH_MODE_FIELDS,
    bound_surrogate,
    module_kwargs,
    surrogate_hparams,
)
from htaf_jax.train import ConfigError, cli, validate_config
from htaf_jax.units import StepUnit, get_unit, list_units, resolve_unit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(
    os.path.relpath(p, REPO)
    for p in glob.glob(os.path.join(REPO, "experiments", "configs", "*.py"))
    if "def get_config" in open(p).read()
)


def _parse(path: str, *overrides: str) -> ml_collections.ConfigDict:
    config, _ = cli.parse_flags(["train", "--config", path, "--workdir", "unused", *overrides])
    return config


def _unit_configs() -> list[str]:
    return [p for p in CONFIGS if "surrogate" in _parse(p).model]


def test_every_binary_model_config_is_covered():
    # The configs this test runs over; a new config with a unit joins automatically.
    names = {os.path.basename(p)[:-3] for p in _unit_configs()}
    assert {"icbm", "snn_mlp", "snn_conv", "bnn_mlp", "bnn_conv", "dhn_mlp"} <= names


def _trace_training_forward(model) -> None:
    """Init and a train-mode forward, traced only (``jax.eval_shape``): no compilation."""
    images = jnp.zeros((2, 28, 28, 1), jnp.float32)
    rngs = {name: jax.random.key(i) for i, name in enumerate(("params", "dropout", "sample"))}
    step = {"step": 0} if "step" in inspect.signature(type(model).__call__).parameters else {}
    variables = jax.eval_shape(lambda x: model.init(rngs, x, train=False), images)
    logits, _ = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=True, rngs=rngs, mutable=True, **step),
        variables,
        images,
    )
    assert logits.shape == (2, 10)


@pytest.mark.parametrize("unit", ["atan", "sigmoid"])  # both have an alpha of their own
@pytest.mark.parametrize("path", _unit_configs())
def test_a_non_default_unit_builds_with_its_own_defaults(path, unit):
    default = _parse(path)
    config = _parse(path, f"--config.model.surrogate={unit}")
    assert default.model.surrogate != unit
    validate_config(config)
    assert surrogate_hparams(config.model) == {}  # HTAF's α, β stay with HTAF
    model = build_model(config.model, num_classes=10, total_train_steps=100)
    chosen = resolve_unit(model.surrogate)
    assert chosen.name == unit
    assert chosen.kwargs == get_unit(unit).kwargs
    _trace_training_forward(model)


@pytest.mark.parametrize("path", _unit_configs())
def test_every_registry_unit_trains_or_fails_in_one_line(path):
    for unit in list_units():
        config = _parse(path, f"--config.model.surrogate={unit}")
        smooth = [f for f in SMOOTH_MODE_FIELDS if config.model.get(f, None) == "smooth"]
        if smooth and not get_unit(unit).has_smooth:
            with pytest.raises(ConfigError) as e:
                validate_config(config)
            assert str(e.value) == (
                f"config.model.surrogate={unit!r} has no smooth form, so it cannot train with "
                f"config.model.{smooth[0]}='smooth'; set config.model.{smooth[0]}='hard'"
            )
            config.model[smooth[0]] = "hard"
        validate_config(config)
        _trace_training_forward(build_model(config.model, num_classes=10, total_train_steps=100))


@pytest.mark.parametrize("path", _unit_configs())
def test_the_configs_own_unit_keeps_the_configs_hyperparameters(path):
    config = _parse(path)
    name = config.model.surrogate
    wanted = surrogate_hparams(config.model)
    model = build_model(config.model, num_classes=10, total_train_steps=100)
    assert resolve_unit(model.surrogate).kwargs == get_unit(name, **wanted).kwargs


def test_flat_hyperparameters_fail_in_one_line_naming_the_field():
    model = ml_collections.ConfigDict(
        {"surrogate": "atan", "surrogate_kwargs": {"alpha": 16.0, "beta": 1.0}}
    )
    with pytest.raises(ValueError) as e:
        surrogate_hparams(model)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("model.surrogate_kwargs sets alpha, beta without a unit name")
    # Through the engine's validation it is a ConfigError (one line from the CLI).
    config = _parse("experiments/configs/mlp.py")
    config.model.surrogate = "atan"
    config.model.surrogate_kwargs = {"alpha": 16.0, "beta": 1.0}
    with pytest.raises(ConfigError, match=r"^config\.model\.surrogate_kwargs sets alpha"):
        validate_config(config)
    config.model.surrogate_kwargs = {"atan": {"alpha": 16.0, "beta": 1.0}}
    with pytest.raises(
        ConfigError,
        match=r"^config\.model\.surrogate: unit 'atan' got "
        r"unknown hyperparameter\(s\) \['beta'\]",
    ):
        validate_config(config)


def test_keyed_hyperparameters_are_bound_once():
    model = ml_collections.ConfigDict(
        {"surrogate": "sigmoid", "surrogate_kwargs": {"sigmoid": {"alpha": 8.0}}}
    )
    bound = bound_surrogate(model)
    assert isinstance(bound, StepUnit) and bound.kwargs == {"alpha": 8.0}


def test_keyed_hyperparameters_bind_only_to_their_unit():
    model = ml_collections.ConfigDict(
        {
            "surrogate": "htaf",
            "surrogate_kwargs": {"htaf": {"alpha": 16.0, "beta": 1.0}, "atan": {"alpha": 3.0}},
        }
    )
    assert bound_surrogate(model).kwargs == {"alpha": 16.0, "beta": 1.0}
    model.surrogate = "atan"
    assert bound_surrogate(model).kwargs == {"alpha": 3.0}
    model.surrogate = "triangle"
    assert bound_surrogate(model) == get_unit("triangle")  # its registry defaults
    model.surrogate_kwargs.gamma = 0.5
    with pytest.raises(ValueError, match=r"sets gamma without a unit name"):
        surrogate_hparams(model)


def test_module_kwargs_still_rejects_unknown_fields():
    from htaf_jax.models.dhn import HeavisideMLP

    config = ml_collections.ConfigDict({"name": "dhn_mlp", "depth": 2, "widht": 8})
    with pytest.raises(ValueError, match=r"HeavisideMLP has no fields \['widht'\]"):
        module_kwargs(HeavisideMLP, config)


def test_a_smooth_dhn_with_a_straight_through_unit_is_one_configerror(tmp_path, capsys):
    config = _parse(
        "experiments/configs/dhn_mlp.py",
        "--config.model.mode=smooth",
        "--config.model.surrogate=straight_through",
    )
    with pytest.raises(
        ConfigError,
        match=r"^config\.model\.surrogate='straight_through' has "
        r"no smooth form, so it cannot train with "
        r"config\.model\.mode='smooth'",
    ):
        validate_config(config)
    with pytest.raises(SystemExit) as e:  # the CLI: one line, status 1, before any data
        cli.main(
            [
                "train",
                "--config",
                "experiments/configs/icbm.py",
                "--workdir",
                str(tmp_path),
                "--config.model.surrogate=straight_through",
            ]
        )
    assert e.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: config.model.surrogate='straight_through' has no smooth")
    assert len(err.splitlines()) == 1
