"""The ICBM job's targets block (results.json "targets", the summary's targets lines),
computed from known numbers."""

import json

import ml_collections
import pytest

from experiments import icbm_analysis

ICBM = {
    "split": "test",
    "hard_accuracy": 0.8950,
    "soft_accuracy": 0.8957,
    "hard_soft_gap": 0.07,
    "near_binary@0.01": 0.9924,
    "near_binary@0.1": 0.9964,
    "concept_rate": 0.118,
    "dead_concepts": 0,
    "always_on_concepts": 0,
    "interpretability": {
        "purity": 0.6,
        "purity_random": 0.12,
        "explanation_size": 9.5,
        "completeness": 0.98,
        "leakage": 0.001,
    },
}
BASELINE = {"accuracy": 0.9037}


def _config(backbone="mlp"):
    config = ml_collections.ConfigDict(
        {"dataset": "fashion_mnist", "num_epochs": 16, "batch_size": 128, "seed": 0}
    )
    config.model = ml_collections.ConfigDict(
        {
            "name": "icbm",
            "backbone": backbone,
            "num_concepts": 512,
            "surrogate": "htaf",
            "concept_mode": "smooth",
        }
    )
    return config


def _by_name(targets):
    return {t["name"]: t for t in json.loads(json.dumps(targets))}  # as results.json holds it


def test_targets_values_margins_and_verdicts_from_known_numbers():
    t = _by_name(icbm_analysis.targets(_config(), ICBM, BASELINE))
    expected = {  # name: (value, target, margin, pass)
        "hard acc − standard (pts)": (-0.87, "≥ -0.5", -0.37, False),
        "within 0.01 of {0,1} (%)": (99.24, "≥ 99", 0.24, True),
        "mean on-rate (%)": (11.8, "≤ 15", 3.2, True),
        "purity / random code's": (5.0, "≥ 2", 3.0, True),
        "|soft − hard| (pts)": (0.07, "≤ 0.3", 0.23, True),
    }
    assert list(t) == list(expected)
    for name, (value, target, margin, ok) in expected.items():
        assert t[name]["value"] == pytest.approx(value, abs=1e-9), name
        assert t[name]["margin"] == pytest.approx(margin, abs=1e-9), name
        assert (t[name]["target"], t[name]["pass"]) == (target, ok), name


def test_cnn_allows_less_and_a_missing_baseline_is_not_a_pass():
    cnn = _by_name(icbm_analysis.targets(_config("cnn"), ICBM, BASELINE))
    assert cnn["hard acc − standard (pts)"]["margin"] == pytest.approx(-0.57, abs=1e-9)
    alone = _by_name(icbm_analysis.targets(_config(), ICBM, None))
    assert alone["hard acc − standard (pts)"] == {
        "name": "hard acc − standard (pts)",
        "value": None,
        "target": "≥ -0.5",
        "pass": False,
        "margin": None,
    }
    level = _by_name(icbm_analysis.targets(_config(), ICBM, {"accuracy": 0.8995}))
    assert level["hard acc − standard (pts)"]["pass"]  # exactly −0.5 pts meets ≥ −0.5


def test_summary_prints_each_target_with_its_verdict_and_margin():
    text = icbm_analysis.summarise(_config(), ICBM, BASELINE, {"total": 60.0}, "/tmp/w")
    assert "  - hard acc − standard (pts): -0.87 (target ≥ -0.5): NO, margin -0.37" in text
    assert "  - mean on-rate (%): 11.80 (target ≤ 15): PASS, margin +3.20" in text
    assert "  - purity / random code's: 5.00 (target ≥ 2): PASS, margin +3.00" in text
    assert "purity 0.600 (random code, same on-rates: 0.120)" in text
