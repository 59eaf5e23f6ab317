"""The dry run's time estimate (experiments.estimate): the nearest timed runs of the same model
and budget, machine factors, other budgets by images × epochs, and the runs of old tables."""

import json
import os

import pytest

from experiments import estimate, run
from experiments.configs import studies

HERE, XEON = "this box", "x86_64, 2 CPU cores (Xeon), jax 0.10.2 on cpu"


def _config(name="snn_mlp", unit="htaf", epochs=2, train=6000, **more) -> dict:
    return {
        "dataset": "fashion_mnist",
        "model.name": name,
        "model.surrogate": unit,
        "num_epochs": epochs,
        "train_subset": train,
        "test_subset": 2000,
        "num_train_steps": -1,
        "validation_size": 0,
        "batch_size": 128,
        "seed": 0,
        **more,
    }


def _timed(seconds, machine=HERE, source="s (quick)", **config) -> estimate.Timed:
    return estimate.Timed(source, seconds, _config(**config), machine, "2026-12-01 10:00 UTC")


def test_the_nearest_runs_of_the_same_model_and_budget_give_the_estimate():
    pool = [
        _timed(10.0, unit="htaf"),
        _timed(20.0, unit="htaf", seed=1),  # another seed: as near
        _timed(99.0, unit="atan", depth=3),  # two fields apart
        _timed(500.0, name="bnn_mlp"),  # another model
        _timed(700.0, epochs=20),  # another budget
    ]
    e = estimate.estimate(_config(unit="htaf", seed=2), pool, HERE)
    assert (e.seconds, e.basis, len(e.sources)) == (15.0, "nearest", 2)
    e = estimate.estimate(_config(unit="erf"), pool, HERE)  # one field from both htaf runs
    assert e.seconds == 15.0
    # On a tie, the runs timed on this machine.
    e = estimate.estimate(_config(), [*pool[:2], _timed(1.0, XEON)], HERE)
    assert e.seconds == 15.0
    # A time of an unrecorded machine only where the model has no other.
    unrecorded = _timed(1.0, None, unit="atan")
    assert estimate.estimate(_config(unit="atan"), [*pool[:2], unrecorded], HERE).seconds == 15.0
    assert estimate.estimate(_config(unit="atan"), [unrecorded], HERE).seconds == 1.0


def test_times_from_another_machine_are_scaled_by_its_pairs():
    pool = [
        _timed(30.0, HERE, unit="htaf"),
        _timed(10.0, XEON, unit="htaf"),  # the pair: here 3× slower
        _timed(5.0, XEON, unit="atan"),
    ]
    factors = estimate.machine_factors(pool, HERE)
    assert factors[XEON][("snn_mlp", None)] == (3.0, 1)
    assert factors[XEON][None] == (3.0, 1)
    e = estimate.estimate(_config(unit="atan"), pool, HERE, factors)
    assert (e.seconds, e.sources[0].machine) == (15.0, XEON)
    # A model without pairs on that machine: the machine's median over models.
    e = estimate.estimate(_config(name="bnn_mlp"), [*pool, _timed(2.0, XEON, name="bnn_mlp")], HERE)
    assert e.seconds == 6.0
    text = estimate.describe([(_config(unit="atan"), e)], HERE, factors)
    assert "×3.00 for this machine (1 pairs)" in text and "(Xeon)" in text


def test_other_budgets_by_images_times_epochs_and_untimed_models():
    pool = [_timed(20.0, epochs=2, train=6000), _timed(60.0, epochs=10, train=6000)]
    # Inside the timed budgets: the line through them (10 s + 5 s per 6000 image·epochs).
    e = estimate.estimate(_config(epochs=4, train=6000), pool, HERE)
    assert (e.basis, e.seconds) == ("fit", pytest.approx(30.0))
    # Outside: in proportion to the closest budget's times.
    assert estimate.estimate(_config(epochs=10, train=60000), pool, HERE).seconds == 600.0
    assert estimate.estimate(_config(epochs=1, train=-1), pool, HERE).seconds == pytest.approx(60)
    e = estimate.estimate(_config(name="dhn_mlp"), pool, HERE)
    assert (e.seconds, e.basis) == (None, "none")
    assert "1 not estimated (no run of dhn_mlp timed)" in estimate.describe(
        [(_config(name="dhn_mlp"), e)], HERE, {}
    )
    assert estimate.work(_config(train=6000, validation_size=2000)) == 4000 * 2


def test_the_records_of_a_table_of_earlier_code_time_todays_runs(tmp_path, capsys):
    """An old table's records (work dirs of another hash, no label field) stand for the
    runs of the same label and seed that today's planner makes: they are not finished, but
    they time them."""
    study = studies.STUDIES["snn_mlp"]
    os.makedirs(tmp_path / "snn_mlp")
    records = [
        {"surrogate": u, "seed": s, "workdir": f"runs/{u}-s{s}-5d17a700", "seconds": 8.0}
        for u in studies.ALL_UNITS
        for s in (0, 1, 2)
    ]
    with open(tmp_path / "snn_mlp" / "snn_mlp_surrogates.json", "w") as f:
        json.dump({"machine": XEON, "date": "2026-11-28 13:17 UTC", "runs": records}, f)
    pool = run.timed_runs({"quick": str(tmp_path)})
    assert len(pool) == 33 and {t.source for t in pool} == {"snn_mlp (quick)"}
    assert all(t.config["train_subset"] == 6000 for t in pool)
    assert run.dry_run(study, "quick", str(tmp_path)) == (0, 33, 33 * 8.0)
    out = capsys.readouterr().out
    assert out.startswith(
        "[snn_mlp] 0 of 33 runs finished; the 33 left ≈ 4 min: 33 from the nearest timed runs "
        "of the same model and budget [snn_mlp (quick), 2026-11-28, 2 CPU cores (Xeon), unscaled]"
    )
