"""benchmarks.device_check on the 8 faked CPU devices, at its small size."""

import json

import jax
import optax
import pytest

from benchmarks import device_check

pytestmark = pytest.mark.eight_devices  # every test here runs on 8 fake devices


@pytest.mark.slow
def test_device_check_writes_its_json(tmp_path):
    out = tmp_path / "check.json"
    device_check.main(["--small", "--out", str(out)])
    r = json.loads(out.read_text())
    assert r["device"]["backend"] == "cpu" and r["device"]["local_device_count"] == 8
    assert len(r["device"]["devices"]) == 8
    dp = r["data_parallel"]
    assert dp["devices"] == 8 and dp["ok"] and dp["max_param_diff"] <= dp["tolerance"]
    assert dp["max_param_change"] > 1e-3  # the steps moved the parameters
    for key in ("snn_step", "icbm_step"):
        assert r[key]["devices"] == 8 and r[key]["global_batch"] == 32
        assert r[key]["steps_per_s"] > 0
    assert set(r["htaf"]["speed_ratio_htaf_over"]) >= {"jax.nn.sigmoid"}


def test_the_check_sees_a_wrong_gradient_scale():
    """An 8× gradient (pmean on top of the implicit psum) moves SGD's parameters 8×
    as far: far outside the check's tolerance."""
    model = device_check.build_model({"name": "mlp", "hidden_sizes": (16,)}, num_classes=10)
    batches = [device_check.synthetic_batch(32, s) for s in range(2)]
    right = device_check._trained(model, optax.sgd(0.5), 8, batches, 2)
    wrong = device_check._trained(model, optax.sgd(4.0), 8, batches, 2)
    diff = max(
        float(abs(a - b).max()) for a, b in zip(jax.tree.leaves(right), jax.tree.leaves(wrong))
    )
    assert diff > 1e3 * device_check.DP_TOLERANCE
