"""benchmarks/snn_peers.py at tiny sizes: every contender runs (or says why not), and
ours and Spyx's (documented and hoisted) are the same network. No timing is asserted."""
import dataclasses
import math

import numpy as np
import pytest

from benchmarks import run, snn_peers as P

SPYX_MISSING = P.spyx_unavailable_reason()


@pytest.fixture(scope="module")
def quick():
    return P.measure(quick=True, memory=False)


def test_quick_result_structure(quick):
    assert quick["quick"] is True
    assert list(quick["workloads"]) == ["snn_step", "on_512", "on_4096"]
    for name, wl in quick["workloads"].items():
        assert list(wl["contenders"]) == list(P.CONTENDERS)
        assert wl["contenders"][P.OURS]["ran"]
        for n, c in wl["contenders"].items():
            if c["ran"]:
                assert c["median_ms"] > 0 and 0 < c["min_ms"] <= c["median_ms"]
                assert math.isfinite(c["first_loss"])
                assert wl["ratio_vs_ours"][n] == pytest.approx(
                    c["median_ms"] / wl["contenders"][P.OURS]["median_ms"])
            else:
                assert c["skip_reason"]
        assert wl["ours_gflops"] > 0
    mm = quick["workloads"]["on_4096"]["matmul"]
    assert mm["gflops"] == max(mm["by_shape"].values()) > 0 and len(mm["by_shape"]) == 3
    frac = quick["matmul_fraction_ours"]["value"]
    assert frac == pytest.approx(quick["workloads"]["on_4096"]["ours_gflops"] / mm["gflops"])
    t = quick["targets"]
    assert t["matmul_fraction"]["met"] == (frac >= 0.8)
    behind = any(r <= 1.0 for wl in quick["workloads"].values()
                 for n, r in wl["ratio_vs_ours"].items() if n != P.OURS)
    assert t["ahead_of_every_contender"]["met"] == (
        not behind and not t["ahead_of_every_contender"]["skipped"])


@pytest.mark.skipif(SPYX_MISSING is not None, reason=f"spyx not importable: {SPYX_MISSING}")
def test_ours_and_spyx_are_the_same_network(quick):
    for name, wl in quick["workloads"].items():
        c = wl["contenders"]
        assert c[P.SPYX_DOC]["ran"] and c[P.SPYX_HOIST]["ran"]
        ours = c[P.OURS]["first_loss"]
        for n in (P.SPYX_DOC, P.SPYX_HOIST):
            assert c[n]["first_loss"] == pytest.approx(ours, rel=1e-5, abs=1e-5), (name, n)
    # The on task's loss is the spike count: spikes happened, and not everywhere.
    for name in ("on_512", "on_4096"):
        s = quick["workloads"][name]["spec"]
        count = quick["workloads"][name]["contenders"][P.OURS]["first_loss"]
        assert 0 < count < s["num_steps"] * s["batch"] * s["hidden"], name


def test_step_flops_by_hand():
    on = P.Workload("on", "on", 500, 16, 4096, 4096, None, 1)
    assert P.step_flops(on) == 4 * 500 * 16 * 4096 ** 2   # forward + weight grad
    mlp = P.Workload("mlp", "mlp", 25, 128, 784, 1000, 10, 1)
    assert P.step_flops(mlp) == (2 * 2 * 128 * 784 * 1000 + 3 * 2 * 25 * 128 * 1000 * 10)


def test_spyx_timing_shifts_spikes_by_one_step():
    s = np.arange(1, 7, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(P.spyx_timing(s), [[0, 0], [1, 2], [3, 4]])


def test_section_renders_targets_from_the_numbers(quick):
    md = "\n".join(run._peers_section(quick))
    assert "## SNN step vs Spyx and snnTorch" in md and "Quick mode" in md
    for n in P.CONTENDERS:
        assert f"| {n} |" in md
    assert md.count("not measured") == sum(c["ran"] for wl in quick["workloads"].values()
                                           for c in wl["contenders"].values())
    verdict = "met" if quick["targets"]["matmul_fraction"]["met"] else "missed"
    assert f"(target ≥ 0.8: {verdict})" in md


@pytest.mark.slow
def test_peak_memory_from_own_process():
    # An ON task whose step holds ≥ 64 MB of activations (T·B·n float32 currents, spikes
    # and membranes): far above the few MB by which two import-only processes differ
    # (a quick-sized step's cost is within that noise).
    w = dataclasses.replace(P.workloads(quick=True)[1], num_steps=250, batch=16, n_in=2048,
                            hidden=2048)
    m = P.peak_memory(w, [P.OURS])[P.OURS]
    assert m["baseline_mb"] > 50 and m["rss_mb"] > m["baseline_mb"] + 64
    assert m["peak_mb"] == pytest.approx(m["rss_mb"] - m["baseline_mb"]) and m["peak_mb"] > 0
