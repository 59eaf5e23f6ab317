"""The sharpness studies (issue 37, experiments.sharpness): matched peak slopes, the runs
they plan, the dead-gradient share and the finding computed from the table's rows."""

import dataclasses
import glob
import json
import os
from importlib import import_module

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from data_marks import needs_data
from helpers import TINY_DHN, parsed_back

from experiments import measures, run, sharpness, tables
from experiments.configs import studies
from htaf_jax.models import build_model
from htaf_jax.units import get_unit, peak_slope_hparams

NAMES = ("sharpness_snn", "sharpness_bnn", "sharpness_dhn")
CURVES = ("htaf_a", "htaf_b", *sharpness.UNITS)


def _fd_peak(unit) -> float:
    """max over a fine grid of the smooth form's central finite difference (float64)."""
    with jax.enable_x64():
        x = jnp.linspace(-4.0, 4.0, 160_001, dtype=jnp.float64)  # holds x = 0, every peak
        h = 1e-6
        return float(jnp.max((unit.smooth(x + h) - unit.smooth(x - h)) / (2 * h)))


@pytest.mark.parametrize("k", sharpness.SLOPES)
@pytest.mark.parametrize(
    "unit, fixed",
    [("htaf", {"beta": 1.0}), ("htaf", {"alpha": 4.0})] + [(u, {}) for u in sharpness.UNITS],
)
def test_the_peak_slope_formula_gives_a_finite_difference_peak_of_k(unit, fixed, k):
    u = get_unit(unit, **peak_slope_hparams(unit, k, **fixed))
    assert u.peak_slope == pytest.approx(k, rel=1e-12)
    assert _fd_peak(u) == pytest.approx(k, rel=1e-4)


def test_fast_sigmoid_has_peak_one_whatever_its_slope_and_mass_one_at_slope_two():
    for slope in (0.5, 2.0, 25.0):
        u = get_unit("fast_sigmoid", slope=slope)
        assert u.peak_slope == 1.0 and _fd_peak(u) == pytest.approx(1.0, rel=1e-4)
    with pytest.raises(ValueError, match="peak slope is 1"):
        peak_slope_hparams("fast_sigmoid", 2.0)
    u = get_unit("fast_sigmoid", **sharpness.FAST_SIGMOID)  # the study's one point
    with jax.enable_x64():  # its smooth form runs from 0 to 1, as every other unit's
        ends = u.smooth(jnp.array([-1e9, 1e9], jnp.float64))
    np.testing.assert_allclose(ends, [0.0, 1.0], atol=1e-8)


def test_each_study_plans_every_unit_at_every_slope_on_its_model():
    models = {"sharpness_snn": "snn_mlp", "sharpness_bnn": "bnn_mlp", "sharpness_dhn": "dhn_mlp"}
    for name in NAMES:
        study = studies.STUDIES[name]
        assert (study.split, study.measure, study.plot) == ("validation", "dead_share", "lines")
        assert study.finding is sharpness.finding
        planned = run.plan(study, "full", "r")  # the quick budget whatever the profile
        assert len(planned) == (len(CURVES) * len(sharpness.SLOPES) + 1) * 3
        assert {r.name for r in planned} == {
            *(f"{c}-k{k:g}-s{s}" for c in CURVES for k in sharpness.SLOPES for s in (0, 1, 2)),
            *(f"fast_sigmoid-k1-s{s}" for s in (0, 1, 2)),
        }
        assert len(run.plan(study, "full", "r", only=["*-s0"])) == len(planned) // 3
        for r in planned:
            c = r.config
            assert c.model.name == models[name]
            assert (c.num_epochs, c.train_subset, c.test_subset) == (2, 6000, 2000)
            assert c.validation_size == studies.PROFILES["full"]["validation_size"]
            assert r.coords == {"surrogate": r.label.rsplit("-k", 1)[0], "peak_slope": c_k(r)}
            if name == "sharpness_dhn":
                assert (c.model.depth, c.model.variant) == (8, "plain")
        for r in planned[::17]:  # the stored command rebuilds the config
            assert parsed_back(r.command)[0].to_dict() == r.config.to_dict()


def c_k(r) -> float:
    return float(r.label.rsplit("-k", 1)[1])


def test_the_unit_each_run_builds_has_the_points_peak_slope_by_finite_differences():
    peaks: dict = {}
    for name in NAMES:
        for r in run.plan(studies.STUDIES[name], "quick", "r", only=["*-s0"]):
            unit = build_model(r.config.model, num_classes=10).surrogate
            assert unit.kwargs == r.config.model.surrogate_kwargs[unit.name].to_dict()
            if r.coords["surrogate"] == "htaf_a":
                assert unit.kwargs["beta"] == 1.0
            if r.coords["surrogate"] == "htaf_b":
                assert unit.kwargs["alpha"] == 4.0
            if unit not in peaks:
                peaks[unit] = _fd_peak(unit)
            assert peaks[unit] == pytest.approx(r.coords["peak_slope"], rel=1e-4), r.name


def test_dead_shares_match_closed_forms_on_a_hand_made_array():
    x = jnp.linspace(-2.0, 2.0, 400_001)
    share = lambda u: float(jnp.mean(measures.dead(u, x)))  # noqa: E731
    below = measures.DEAD_BELOW
    # sigmoid σ'/peak = 4p(1 − p), p = σ(αx): dead where |αx| > logit(p*), 4p*(1 − p*) = below
    p = (1 - np.sqrt(1 - below)) / 2
    for alpha in (8.0, 32.0):  # edges inside the array
        edge = -np.log(p / (1 - p)) / alpha
        assert share(get_unit("sigmoid", alpha=alpha)) == pytest.approx(1 - edge / 2, abs=1e-4)
    # rectangle: 0 outside |x| < w/2; triangle γ(1 − |x|): dead where |x| > 1 − below
    assert share(get_unit("rectangle", width=0.5)) == pytest.approx(1 - 0.5 / 4, abs=1e-4)
    assert share(get_unit("triangle", gamma=8.0)) == pytest.approx(1 - (1 - below) / 2, abs=1e-4)
    # piecewise_exp e^(−α|x|): dead where |x| > ln(1/below)/α
    assert share(get_unit("piecewise_exp", alpha=8.0)) == pytest.approx(
        1 - np.log(1 / below) / 8.0 / 2, abs=1e-4
    )
    # atan 1/(1 + (π/2·αx)²): dead where |x| > √(1/below − 1)·2/(πα)
    assert share(get_unit("atan", alpha=64.0)) == pytest.approx(
        1 - np.sqrt(1 / below - 1) * 2 / (np.pi * 64.0) / 2, abs=1e-4
    )


def _tiny(name: str, **model):
    """The study's model config with ``model``'s fields changed."""
    c = import_module(f"experiments.configs.{studies.STUDIES[f'sharpness_{name}'].config}")
    config = c.get_config()
    config.model.update(model)
    return config


@pytest.mark.parametrize(
    "name, model",
    [
        ("dhn", {"depth": 3, "width": 16}),
        ("dhn", {"depth": 2, "width": 16, "variant": "mixed"}),
        ("bnn", {"hidden": (16, 8)}),
        ("snn", {"hidden": (16,), "num_steps": 6}),
        ("snn", {"hidden": (16,), "num_steps": 6, "reset_delay": True}),
    ],
)
def test_unit_inputs_are_what_the_units_read(name, model):
    c = _tiny(name, **model)
    net = build_model(c.model, num_classes=10)
    images = jax.random.normal(jax.random.key(0), (8, 28, 28, 1))
    variables = net.init({"params": jax.random.key(1)}, images)
    xs = measures.unit_inputs(net, variables, images)
    _, state = net.apply(variables, images, capture_intermediates=True, mutable=["intermediates"])
    got = state["intermediates"]
    if name == "dhn":  # each layer's output is H of its Heaviside units' inputs
        n = round(net._linear_fraction * net.width)
        assert len(xs) == net.depth and xs[0].shape == (8, net.width - n)
        for i, x in enumerate(xs):
            h = got[f"layer{i}"]["__call__"][0][..., n:]
            np.testing.assert_array_equal(h, (x >= 0).astype(h.dtype))
    elif name == "bnn":  # the sown share of +1 signs
        assert [x.shape for x in xs] == [(8, 16), (8, 8)]
        for i, x in enumerate(xs):
            assert float(got[f"positive_rate_layer{i}"][0]) == pytest.approx(
                float(jnp.mean(x >= 0))
            )
    else:  # V − θ from the layer's currents by the LIF equations, in float64
        (x,) = xs
        cur = np.asarray(got["dense0"]["__call__"][0], np.float64)
        theta, u, s, vs = net.threshold, np.zeros_like(cur), np.zeros_like(cur), []
        for _ in range(net.num_steps):
            if net.reset_delay:  # S[t − 1] resets at t; S[t] = H(U[t] − θ)
                u = net.beta * u + cur - s * theta
                v = u
            else:  # V[t] = βU[t − 1] + I; U[t] = V[t] − S[t]·θ
                v = net.beta * u + cur
                u = v - (v >= theta) * theta
            s = (v >= theta).astype(np.float64)
            vs.append(v)
        np.testing.assert_allclose(x, np.stack(vs) - theta, atol=1e-5)
        spikes = got["lif0"]["__call__"][0][0]
        np.testing.assert_array_equal(spikes, (x >= 0).astype(spikes.dtype))


def test_unit_inputs_refuse_a_model_they_cannot_read():
    c = _tiny("snn", hidden=(8,), num_steps=2, reset="zero")
    net = build_model(c.model, num_classes=10)
    images = jnp.zeros((2, 28, 28, 1))
    with pytest.raises(ValueError, match="no capture of the unit inputs of SpikingMLP"):
        measures.unit_inputs(net, net.init({"params": jax.random.key(0)}, images), images)


def _records(drops: dict[str, float], std: float = 0.1) -> list[dict]:
    """Three seeds per point; unit u peaks at 85 % at k = 1 and falls linearly in log k to
    85 − drops[u] at k = 32 (flat below k = 1); fast_sigmoid at k = 1 only."""
    out = []
    for u, drop in drops.items():
        for k in sharpness.SLOPES if u != "fast_sigmoid" else (1.0,):
            acc = 85.0 - drop * max(0.0, np.log2(k)) / 5
            for s, e in zip((0, 1, 2), (-std, 0.0, std)):
                coords = {"surrogate": u, "peak_slope": k}
                out.append(
                    {
                        "label": f"{u}-k{k:g}",
                        "coords": coords,
                        **coords,
                        "seed": s,
                        "split": "validation",
                        "accuracy": (acc + e) / 100,
                        "dead_share": 0.01 * k,
                        "grad_norms_init": [1.0 / k],
                        "seconds": 1.0,
                    }
                )
    return out


def _finding(drops: dict[str, float], std: float = 0.1) -> list[str]:
    study = studies.STUDIES["sharpness_dhn"]
    return study.finding(tables.rows(study, _records(drops, std)))


def test_the_finding_says_htaf_is_flatter_when_it_is():
    lines = _finding(
        {"htaf_a": 0.5, "htaf_b": 2.0, "sigmoid": 6.0, "atan": 3.0, "fast_sigmoid": 0.0}
    )
    assert lines[0] == (
        "- htaf_a: best 85.00 % at k=0.5; within 1 pt of it at k = 0.5–32; at k=32: "
        "84.50 ± 0.10 %, 0.50 pts below its best, dead-gradient share 32.0 %; ‖g_0‖ at init "
        "2.00e+00 (k=0.5) → 3.12e-02 (k=32)."
    )
    sigmoid = next(line for line in lines if line.startswith("- sigmoid:"))
    assert "within 1 pt of it at k = 0.5–1;" in sigmoid  # 85, 85, then 83.8 at k = 2
    assert "at k=32: 79.00 ± 0.10 %, 6.00 pts below its best" in sigmoid
    assert any(
        line.startswith("- fast_sigmoid: best 85.00 % at k=1 (its only slope)") for line in lines
    )
    assert any("fast_sigmoid: one slope only, not in the comparison" in line for line in lines)
    a = next(line for line in lines if line.startswith("- htaf_a: drops"))
    assert a == (
        "- htaf_a: drops 0.50 pts from its best to k=32. Against every other unit: the "
        "flattest, atan, drops 3.00 pts; htaf_a is flatter, by 2.50 pts (flatter than 2 of "
        "the 2; the difference is beyond the seeds' spread, 0.20 pts)."
    )
    b = next(line for line in lines if line.startswith("- htaf_b: drops"))
    assert "htaf_b is flatter, by 1.00 pts (flatter than 2 of the 2;" in b


def test_the_finding_says_htaf_is_not_flatter_when_it_is_not():
    drops = {"htaf_a": 8.0, "htaf_b": 2.5, "sigmoid": 6.0, "atan": 1.5, "triangle": 0.5}
    lines = _finding(drops, std=1.0)
    a = next(line for line in lines if line.startswith("- htaf_a: drops"))
    assert (
        "Against every other unit: the flattest, triangle, drops 0.50 pts; htaf_a is not "
        "flatter: 7.50 pts more drop (flatter than 0 of the 3; the difference is beyond the "
        "seeds' spread, 2.00 pts). Against the units whose reach narrows as k grows (not "
        "triangle: a height at a fixed width): the flattest, atan, drops 1.50 pts; htaf_a is "
        "not flatter: 6.50 pts more drop (flatter than 0 of the 2;"
    ) in a
    b = next(line for line in lines if line.startswith("- htaf_b: drops"))
    assert (
        "atan, drops 1.50 pts; htaf_b is not flatter: 1.00 pts more drop (flatter than 1 of the 2; the difference is within the seeds' spread, 2.00 pts)."
        in b
    )
    one_seed = [r for r in _records(drops) if r["seed"] == 0]
    study = studies.STUDIES["sharpness_dhn"]
    lines = study.finding(tables.rows(study, one_seed))
    assert "one seed so far: no seed spread to compare with" in lines[-1]
    assert _finding({}) == []


@needs_data
@pytest.mark.slow
def test_a_sharpness_run_records_its_dead_share_and_initial_gradient(tmp_path):
    study = studies.STUDIES["sharpness_dhn"]
    tiny = dataclasses.replace(
        study,
        name="tiny",
        points=tuple(p for p in study.points if p.label in ("sigmoid-k1", "sigmoid-k32")),
        seeds=(0,),
        overrides={**TINY_DHN, "model.depth": 2},
    )
    assert run.run_study(tiny, "quick", str(tmp_path)) == 2
    table = json.load(open(tmp_path / "tiny" / "tiny.json"))
    from htaf_jax.train import load_config, restore_params

    for record in table["runs"]:
        assert set(record) >= {"accuracy", "dead_share", "dead_share_layers", "grad_norms_init"}
        assert len(record["dead_share_layers"]) == len(record["grad_norms_init"]) == 2
        workdir = glob.glob(str(tmp_path / "tiny" / "runs" / f"{record['label']}-s0-*"))[0]
        config, end = load_config(workdir), restore_params(workdir)
        again = measures.dead_shares(config, end.params, end.batch_stats)
        assert again["dead_share"] == pytest.approx(record["dead_share"])
    by = {r["label"]: r for r in table["rows"]}
    assert by["sigmoid-k32"]["dead_share"]["mean"] > by["sigmoid-k1"]["dead_share"]["mean"]
    md = open(tmp_path / "tiny" / "tiny.md").read()
    assert "| surrogate | peak_slope | acc % | dead % | ‖g_0‖ init | train s |" in md
    assert "Computed from the table:" in md and os.path.exists(tmp_path / "tiny" / "tiny.png")
