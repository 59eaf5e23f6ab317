"""benchmarks/snn_peers.py at tiny sizes: every contender runs (or says why not), each peer
computes the same loss and gradients as ours in its firing order, with the same
surrogate backward, and the report follows the numbers. No timing is asserted."""

import dataclasses
import math

import numpy as np
import pytest

from benchmarks import harness, snn_step
from benchmarks import snn_peers as P

SPYX_MISSING = harness.unavailable("spyx")
TORCH_MISSING = snn_step.torch_unavailable_reason()
needs_spyx = pytest.mark.skipif(SPYX_MISSING is not None, reason=f"no spyx: {SPYX_MISSING}")


@pytest.fixture(scope="module")
def quick():
    return P.measure(quick=True, memory=False)


@pytest.mark.slow  # the peers benchmark run at tiny sizes
def test_quick_result_structure(quick):
    assert quick["quick"] is True
    assert list(quick["workloads"]) == ["snn_step", "on_512", "on_4096"]
    for name, wl in quick["workloads"].items():
        # Spyx's documented form applies the first Linear at every step: not equal work
        # on the direct-input SNN step, so it runs on the Open Neuromorphic task only.
        expected = [c for c in P.CONTENDERS if name != "snn_step" or c != P.SPYX_DOC]
        assert list(wl["contenders"]) == expected
        for n, c in wl["contenders"].items():
            if not c["ran"]:
                assert c["skip_reason"]
                continue
            assert 0 < c["min_ms"] <= c["median_ms"] and math.isfinite(c["first_loss"])
            for key in ("vs_ours", "vs_ours_spyx"):
                lo, hi = wl[f"ratio_range_{key}"][n]
                assert 0 < lo <= wl[f"ratio_{key}"][n] <= hi
            assert wl["ratio_vs_ours"][P.OURS] == wl["ratio_vs_ours_spyx"][P.OURS_SPYX] == 1.0
    last = quick["workloads"]["on_4096"]
    assert set(last["beyond_matmuls_ms"]) == {
        n for n in last["contenders"] if P.FRAMEWORK[n] != "torch"
    }
    assert all("matmul" not in quick["workloads"][n] for n in ("snn_step", "on_512"))
    mm = last["matmul"]
    assert mm["gflops"] == max(mm["by_shape"].values()) > 0 and len(mm["by_shape"]) == 3
    frac = quick["matmul_fraction_ours"]["value"]
    assert frac == pytest.approx(last["ours_gflops"] / mm["gflops"])
    t = quick["targets"]
    assert t["matmul_fraction"]["met"] == (frac >= 0.8)
    # The target is about our default against the peers; our other row does not count.
    behind = {
        w: sorted(n for n, r in wl["ratio_vs_ours"].items() if P.FRAMEWORK[n] != "jax" and r <= 1.0)
        for w, wl in quick["workloads"].items()
    }
    assert {
        w: sorted(ns) for w, ns in t["ahead_of_every_contender"]["not_ahead_of"].items()
    } == behind
    assert t["ahead_of_every_contender"]["met"] == (
        not any(behind.values()) and not t["ahead_of_every_contender"]["skipped"]
    )


def test_our_default_row_runs_the_layer_defaults():
    """The default row is what a user gets: htaf_jax.linen.LIF() with nothing set, whose
    β and θ are the peers' 0.9 and 1."""
    from htaf_jax.linen import LIF

    lif = LIF()
    assert (lif.beta, lif.threshold, lif.reset, lif.reset_delay, lif.surrogate) == (
        P.BETA,
        P.THRESHOLD,
        "subtract",
        False,
        "htaf",
    )
    w = P.workloads(quick=True)[1]
    assert P.OursNet(w.hidden, w.n_out, w.num_steps, ()).lif_options == ()


def _grads(name, w, options=None, **kw):
    weights, inputs = P.make_weights(w), P.make_inputs(w)
    if options is not None:
        return P.make_ours(w, weights, inputs, options)[1]()
    if name in (P.SPYX_DOC, P.SPYX_HOIST):
        return P.make_spyx(w, weights, inputs, hoisted=name == P.SPYX_HOIST, **kw)[1]()
    return P.build(name, w, weights, inputs)[1]()


def _assert_same(got, want, what):
    (loss, g), (loss_ours, g_ours) = got, want
    assert loss == pytest.approx(loss_ours, rel=1e-5, abs=1e-5), what
    assert set(g) == set(g_ours), what
    for k in g_ours:
        np.testing.assert_allclose(g[k], g_ours[k], rtol=1e-4, atol=1e-6, err_msg=f"{what} {k}")


@pytest.mark.parametrize("workload", ["snn_step", "on_512"])
def test_each_peer_has_our_loss_and_gradients_in_its_firing_order(workload):
    w = {x.name: x for x in P.workloads(quick=True)}[workload]
    spyx = _grads(None, w, P.SPYX_ORDER)
    assert any(np.abs(v).max() > 0 for v in spyx[1].values())  # the gradient reaches the weights
    peers = [(n, spyx) for n in w.contenders() if P.FRAMEWORK[n] == "spyx" and not SPYX_MISSING]
    if TORCH_MISSING is None:
        peers.append((P.TORCH, _grads(None, w, P.SNNTORCH_ORDER)))
    for name, ours in peers:
        _assert_same(_grads(name, w), ours, f"{workload}: {name}")


@needs_spyx
def test_spyx_stock_arctan_would_not_match():
    """Spyx's own arctan (any k) has another backward than our atan: the gradient test
    above would catch a contender that used it."""
    import spyx

    w = P.workloads(quick=True)[1]
    ours = _grads(None, w, P.SPYX_ORDER)
    for k in (1.0, 2.0):
        loss, g = _grads(P.SPYX_HOIST, w, activation=spyx.axn.arctan(k))
        assert loss == pytest.approx(ours[0])  # the same forward
        assert not np.allclose(g["fc1.kernel"], ours[1]["fc1.kernel"], rtol=1e-2)


def test_ratio_is_paired_and_beyond_matmuls_subtracts_the_fastest_dots(monkeypatch):
    # Round 2 is slow for everyone. Paired ratios (1.5, 2, 0.95) give 1.5; the ratio of
    # the medians would give 1.9 / 2 = 0.95.
    w = P.Workload("on", 2, 1, 2, 2, None, 3)
    rounds = {
        P.OURS: [1.0, 4.0, 2.0],
        P.OURS_SPYX: [1.0, 2.0, 4.0],
        P.SPYX_HOIST: [1.5, 8.0, 1.9],
        "matmul 2x2x2": [0.1] * 3,
        "matmul 2x2x2 (forward)": [0.3, 0.2, 0.4],
        "matmul 2x2x2 (weight grad)": [0.5, 0.6, 0.3],
    }
    monkeypatch.setattr(P, "CONTENDERS", (P.OURS, P.OURS_SPYX, P.SPYX_HOIST))
    monkeypatch.setattr(P, "unavailable", lambda name: None)
    monkeypatch.setattr(P, "build", lambda name, *a: (lambda: 0.0, lambda: (7.0, {})))
    monkeypatch.setattr(
        P,
        "matmul_components",
        lambda w, sq: {name: (lambda: None, 1.0) for name in rounds if name.startswith("matmul")},
    )
    monkeypatch.setattr(
        P.harness,
        "time_interleaved",
        lambda fns, repeats, rotate: {name: rounds[name] for name in fns},
    )
    r = P.measure_workload(w, memory=False, matmul_square=2)
    assert r["ratio_vs_ours"][P.SPYX_HOIST] == pytest.approx(1.5)
    assert r["ratio_range_vs_ours"][P.SPYX_HOIST] == pytest.approx([0.95, 2.0])
    assert r["ratio_vs_ours_spyx"][P.SPYX_HOIST] == pytest.approx(1.5)  # 1.5, 4, 0.475
    assert r["contenders"][P.SPYX_HOIST]["first_loss"] == 7.0
    assert r["beyond_matmuls_ms"][P.OURS] == pytest.approx((1.0 - 0.2 - 0.3) * 1e3)
    assert r["beyond_matmuls_ms"][P.SPYX_HOIST] == pytest.approx((1.5 - 0.2 - 0.3) * 1e3)
    # Every dot is 1 FLOP here and our step 32 (step_flops). The ceiling: our FLOPs in the
    # two fastest dots' time (0.2 + 0.3 s) over the best rate (1 / 0.1 s); each round: our
    # rate over the fastest dot of that round (the square one, 10 FLOP/s, every round).
    assert P.step_flops(w) == 32
    assert r["matmul"]["ceiling_fraction"] == pytest.approx(32 / 0.5 / 10)
    assert r["matmul"]["fraction_by_round"] == pytest.approx([3.2, 0.8, 1.6])


def test_rotated_rounds_start_at_each_contender_in_turn():
    calls = []
    fns = {n: (lambda n=n: calls.append(n)) for n in "abc"}
    times = harness.time_interleaved(fns, repeats=4, rotate=True)
    assert calls == list("abcbcacababc")
    assert all(len(t) == 4 for t in times.values())
    calls.clear()
    harness.time_interleaved(fns, repeats=2, warmup=1)
    assert calls == list("abcabcabc")


def test_square_dot_samples_about_one_forward_dot(monkeypatch):
    made = []

    def make_matmul(m, k, n, times=1):
        made.append((m, k, n, times))
        return (lambda: None), 2.0 * m * k * n * times

    monkeypatch.setattr(P.harness, "make_matmul", make_matmul)
    comps = P.matmul_components(P.Workload("on", 500, 16, 4096, 4096, None, 1), 2048)
    assert (2048, 2048, 2048, 16) in made  # 8000·4096² / 2048³ = 15.6
    assert comps["matmul 2048x2048x2048 (x16 per sample)"][1] == 16 * 2.0 * 2048**3
    assert {n for n in comps if n.endswith(("(forward)", "(weight grad)"))} == {
        "matmul 8000x4096x4096 (forward)",
        "matmul 4096x8000x4096 (weight grad)",
    }


def test_step_flops_by_hand():
    on = P.Workload("on", 500, 16, 4096, 4096, None, 1)
    assert on.kind == "on" and P.step_flops(on) == 4 * 500 * 16 * 4096**2  # fwd + weight grad
    mlp = P.Workload("mlp", 25, 128, 784, 1000, 10, 1)
    # with direct input the first layer runs once, over B rows, for every contender
    assert P.step_flops(mlp) == (2 * 2 * 128 * 784 * 1000 + 3 * 2 * 25 * 128 * 1000 * 10)


@pytest.mark.slow  # the peers benchmark run at tiny sizes
def test_section_renders_targets_from_the_numbers(quick):
    md = "\n".join(P.section(quick))
    assert md.startswith("## SNN step vs Spyx and snnTorch") and "Quick mode" in md
    assert "**Equal work**" in md and "`axn.custom`" in md  # the method, from the docstring
    for n in P.CONTENDERS:
        assert f"| {n} |" in md
    assert md.count(P.LINEAR_MLP) == len(quick["workloads"]["snn_step"]["contenders"])
    assert md.count("not measured") == sum(
        c["ran"] for wl in quick["workloads"].values() for c in wl["contenders"].values()
    )
    verdict = "met" if quick["targets"]["matmul_fraction"]["met"] else "missed"
    assert f"(target ≥ 0.8: {verdict})" in md


@pytest.mark.slow
def test_peak_memory_from_own_process():
    # An ON task whose step holds ≥ 64 MB of activations (T·B·n float32 currents, spikes
    # and membranes): far above the few MB by which two import-only processes differ.
    w = dataclasses.replace(
        P.workloads(quick=True)[1], num_steps=250, batch=16, n_in=2048, hidden=2048
    )
    m = P.peak_memory(w, [P.OURS_SPYX])[P.OURS_SPYX]
    assert m["baseline_mb"] > 50 and m["rss_mb"] > m["baseline_mb"] + 64
    assert m["peak_mb"] == pytest.approx(m["rss_mb"] - m["baseline_mb"]) and m["peak_mb"] > 0
