"""A fuzzed command line: for every config under experiments/configs, hypothesis draws an
override of any of its fields (a valid value from the field's declared choices and ranges,
or an invalid one: wrong type, out of range, unknown name, empty, NaN) and runs the
command line on it. Every draw either passes every check made before the data is read
(``loop.check_run``), or exits with status 1 or 2 and one line naming the field; no
traceback reaches the user. A bounded sample of valid draws also trains one step.

Declared choices and ranges: ``htaf_jax.train.config.FIELDS`` for the engine's fields,
the model's annotations (``Literal`` choices, bool, int, float, sequences of ints) for
``config.model.*``; other fields (an experiment's own) are drawn around their default.

Budget: the default profile draws ``VALIDATION_DRAWS`` command lines and trains
``TRAINED_DRAWS`` (well under 60 s on 2 CPU cores); ``HYPOTHESIS_PROFILE=long`` draws 40x
as many for a run outside CI.
"""

import glob
import importlib
import math
import os
import typing

import pytest

hypothesis = pytest.importorskip("hypothesis")
from data_marks import needs_data  # noqa: E402
from helpers import QUIET  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from htaf_jax.train import cli, loop  # noqa: E402
from htaf_jax.train import config as config_lib  # noqa: E402

VALIDATION_DRAWS, TRAINED_DRAWS = 150, 3
for _name, _scale in (("default", 1), ("long", 40)):
    settings.register_profile(
        _name,
        deadline=None,
        derandomize=_name == "default",
        suppress_health_check=list(HealthCheck),
        print_blob=True,
        max_examples=VALIDATION_DRAWS * _scale,
    )
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
SCALE = 40 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 1

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(
    os.path.basename(p)[:-3]
    for p in glob.glob(f"{REPO}/experiments/configs/*.py")
    if os.path.basename(p) not in ("__init__.py", "studies.py")
)
KINDS = ("valid", "wrong_type", "out_of_range", "unknown_name", "empty", "nan")
# A runlocal-sized model per config, for the draws that train one step.
SMALL = {
    "mlp": {"model.hidden_sizes": (16,)},
    "snn_mlp": {"model.hidden": (16,), "model.num_steps": 2},
    "bnn_mlp": {"model.hidden": (16,)},
    "dhn_mlp": {"model.width": 16, "model.depth": 2},
    "icbm": {"model.backbone_kwargs.widths": (16,), "model.num_concepts": 8},
    "icbm_sparse": {"model.backbone_kwargs.widths": (16,), "model.num_concepts": 8},
}
ONE_STEP = {
    "train_subset": 128,
    "test_subset": 64,
    "batch_size": 32,
    "eval_batch_size": 64,
    "num_train_steps": 1,
    "num_epochs": 1,
    "log_every_steps": 1,
    "checkpoint_every_steps": 100,
    **QUIET,
}


def _config(name):
    return importlib.import_module(f"experiments.configs.{name}").get_config()


def _leaves(node, prefix=""):
    out = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        if hasattr(value, "items"):
            out += _leaves(value, path + ".")
        else:
            out.append(path)
    return out


FIELDS_OF = {name: _leaves(_config(name)) for name in CONFIGS}


def _model_hint(name, path):
    if not path.startswith("model.") or path.count(".") != 1:
        return None
    from htaf_jax.models import build_model

    try:
        return typing.get_type_hints(type(build_model(_config(name).model))).get(path[6:])
    except Exception:  # noqa: BLE001 - a field without a resolvable annotation
        return None


def _text(value) -> str:
    """The command-line text of a value (ml_collections parses it back)."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return str(value)


@st.composite
def overrides(draw, names=CONFIGS, kinds=KINDS):
    """(config name, dotted field, kind, command-line text of the value)."""
    name = draw(st.sampled_from(names))
    path = draw(st.sampled_from(FIELDS_OF[name]))
    kind = draw(st.sampled_from(kinds))
    default = _config(name)
    for part in path.split("."):
        default = default[part]
    spec = config_lib.FIELDS.get(path)
    hint = _model_hint(name, path)
    literal = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None
    if kind == "valid":
        if isinstance(spec, config_lib.Choice):
            value = draw(st.sampled_from(spec.values))
        elif isinstance(spec, config_lib.Number):
            high = spec.high if spec.high is not None else spec.low + 64
            value = (
                draw(st.integers(int(spec.low) + spec.strict, int(high)))
                if spec.integer
                else draw(st.floats(spec.low, high, exclude_min=spec.strict))
            )
        elif isinstance(spec, config_lib.Flag) or isinstance(default, bool):
            value = draw(st.booleans())
        elif literal:
            value = draw(st.sampled_from(literal))
        else:
            value = default
    elif kind == "wrong_type":
        value = draw(st.sampled_from(["abc", "1.5", "True", "(1,", "[]"]))
    elif kind == "out_of_range":
        low = spec.low if isinstance(spec, config_lib.Number) else 0
        value = draw(st.sampled_from([low - 1, -7, 10**12, float("inf"), -1e-9]))
    elif kind == "unknown_name":
        value = draw(st.sampled_from(["bogus", "htaf_typo", "ADAM", "none"]))
    elif kind == "empty":
        value = ""
    else:
        value = float("nan")
    return name, path, kind, _text(value)


def _run(name, path, text, workdir, train_fn, extra=()):
    argv = [
        "train",
        "--config",
        f"experiments/configs/{name}.py",
        "--workdir",
        str(workdir),
        *extra,
        f"--config.{path}={text}",
    ]
    try:
        return cli.main(argv, train_fn=train_fn), ""
    except SystemExit as e:
        return e.code, ""


def _check_outcome(code, err, path, label):
    """Runs (0) or exits 1/2 with one line that names the field."""
    assert code in (0, 1, 2), (label, code, err)
    if code == 0:
        return
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, (label, err)
    leaf = path.split(".")[-1]
    assert leaf in lines[0], (label, lines[0])


@given(draw=overrides())
def test_every_drawn_override_passes_the_checks_or_is_one_line_naming_the_field(
    draw, tmp_path_factory, capsys
):
    name, path, kind, text = draw
    workdir = tmp_path_factory.mktemp("fuzz")
    code, _ = _run(
        name, path, text, workdir, lambda config, w: (loop.check_run(config, w), None)[1]
    )
    err = capsys.readouterr().err
    _check_outcome(code, err, path, f"{name} --config.{path}={text!r} ({kind})")


@needs_data
@settings(max_examples=TRAINED_DRAWS * SCALE)
@given(draw=overrides(names=sorted(SMALL), kinds=("valid",)))
def test_a_sample_of_valid_draws_trains_one_step(draw, tmp_path_factory, capsys):
    name, path, kind, text = draw
    workdir = tmp_path_factory.mktemp("fuzz_train")
    extra = [f"--config.{k}={v}" for k, v in {**ONE_STEP, **SMALL[name]}.items() if k != path]
    code, _ = _run(name, path, text, workdir, loop.train_and_evaluate, extra)
    err = capsys.readouterr().err
    _check_outcome(code, err, path, f"{name} --config.{path}={text!r}")
