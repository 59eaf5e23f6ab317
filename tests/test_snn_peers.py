"""benchmarks/snn_peers.py at tiny sizes: every contender runs (or says why not), and
ours and Spyx's (documented and hoisted) are the same network. No timing is asserted."""
import dataclasses
import math

import pytest

from benchmarks import run, snn_peers as P

SPYX_MISSING = P.spyx_unavailable_reason()


@pytest.fixture(scope="module")
def quick():
    return P.measure(quick=True, memory=False)


def test_quick_result_structure(quick):
    assert quick["quick"] is True
    assert list(quick["workloads"]) == ["snn_step", "on_512", "on_4096"]
    for wl in quick["workloads"].values():
        assert list(wl["contenders"]) == list(P.CONTENDERS)
        assert wl["contenders"][P.OURS]["ran"]
        for n, c in wl["contenders"].items():
            if c["ran"]:
                assert c["median_ms"] > 0 and 0 < c["min_ms"] <= c["median_ms"]
                assert math.isfinite(c["first_loss"])
                assert wl["ratio_vs_ours"][n] > 0
            else:
                assert c["skip_reason"]
        assert wl["ours_gflops"] > 0
    assert quick["workloads"]["on_4096"]["ratio_vs_ours"][P.OURS] == 1.0
    beyond = quick["workloads"]["on_4096"]["beyond_matmuls_ms"]
    assert P.OURS in beyond and P.TORCH not in beyond
    assert all("beyond_matmuls_ms" not in quick["workloads"][n] for n in ("snn_step", "on_512"))
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


def test_ratio_is_paired_and_beyond_matmuls_subtracts_the_fastest_dots(monkeypatch):
    # Round 2 is slow for everyone. Paired ratios (1.5, 2, 0.95) give 1.5; the ratio of
    # the medians would give 1.9 / 2 = 0.95.
    w = P.Workload("on", "on", 2, 1, 2, 2, None, 3)
    rounds = {P.OURS: [1.0, 4.0, 2.0], P.SPYX_HOIST: [1.5, 8.0, 1.9],
              "matmul 2x2x2": [0.1] * 3, "matmul 2x2x2 (forward)": [0.3, 0.2, 0.4],
              "matmul 2x2x2 (weight grad)": [0.5, 0.6, 0.3]}
    monkeypatch.setattr(P, "CONTENDERS", (P.OURS, P.SPYX_HOIST))
    monkeypatch.setattr(P, "unavailable", lambda name: None)
    monkeypatch.setattr(P, "build", lambda name, *a: lambda: 0.0)
    monkeypatch.setattr(P, "matmul_components", lambda w, sq: {
        name: (lambda: None, 1.0) for name in rounds if name.startswith("matmul")})
    monkeypatch.setattr(P.snn_step, "time_interleaved", lambda fns, repeats, warmup, rotate: {
        name: rounds[name] for name in fns})
    r = P.measure_workload(w, memory=False, matmul_square=2)
    assert r["ratio_vs_ours"] == {P.OURS: 1.0, P.SPYX_HOIST: pytest.approx(1.5)}
    assert r["ratio_range_vs_ours"][P.SPYX_HOIST] == pytest.approx([0.95, 2.0])
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
    times = P.snn_step.time_interleaved(fns, repeats=4, warmup=0, rotate=True)
    assert calls == list("abc" "bca" "cab" "abc")
    assert all(len(t) == 4 for t in times.values())
    calls.clear()
    P.snn_step.time_interleaved(fns, repeats=2, warmup=0)
    assert calls == list("abcabc")


def test_square_dot_samples_about_one_forward_dot(monkeypatch):
    calls = []
    monkeypatch.setattr(P.snn_step, "make_matmul", lambda m, k, n: (
        lambda: calls.append((m, k, n)), 2.0 * m * k * n))
    w = P.Workload("on", "on", 500, 16, 4096, 4096, None, 1)
    comps = P.matmul_components(w, 2048)
    name = "matmul 2048x2048x2048 (x16 per sample)"   # 8000·4096² / 2048³ = 15.6
    fn, flops = comps[name]
    fn()
    assert calls == [(2048, 2048, 2048)] * 16 and flops == 16 * 2.0 * 2048 ** 3
    assert {n for n in comps if n.endswith(("(forward)", "(weight grad)"))} == {
        "matmul 8000x4096x4096 (forward)", "matmul 4096x8000x4096 (weight grad)"}


def test_step_flops_by_hand():
    on = P.Workload("on", "on", 500, 16, 4096, 4096, None, 1)
    assert P.step_flops(on) == 4 * 500 * 16 * 4096 ** 2   # forward + weight grad
    mlp = P.Workload("mlp", "mlp", 25, 128, 784, 1000, 10, 1)
    assert P.step_flops(mlp) == (2 * 2 * 128 * 784 * 1000 + 3 * 2 * 25 * 128 * 1000 * 10)


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
