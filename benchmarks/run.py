"""Runs every benchmark in one process and writes BENCHMARKS.md, its JSON and a figure.

    make bench                       # installs the bench extra (torch CPU, snntorch), then this
    python -m benchmarks.run [--out BENCHMARKS.md] [--quick]

Parts (each its own module, runnable alone):
  benchmarks.htaf_throughput  htaf fwd+bwd vs jax.nn.sigmoid vs autodiff of the composite
  benchmarks.snn_step         SNN training step vs snnTorch, vs the matmul peak, direct input
  benchmarks.pipeline         input pipeline vs train step images/s; 1 vs 8 faked devices
  benchmarks.snn_peers        SNN step vs Spyx (documented, hoisted) and snnTorch, with peak
                              memory, on our SNN step and the Open Neuromorphic task

``--only peers`` runs that one part and rewrites BENCHMARKS.md from it and the
other parts' numbers already in the JSON.

Runs unchanged on a GPU/TPU host (JAX's default backend; snnTorch goes to CUDA
when JAX is on a GPU and torch sees one) and records the device it ran on.
Without torch/snntorch the snnTorch column says why instead of failing.
Writes ``--out`` (BENCHMARKS.md), ``benchmarks/results.json`` (all raw numbers)
and ``benchmarks/figures/benchmarks.png``.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

import jax

from benchmarks import cli, htaf_throughput, packed_inference, pipeline, snn_peers, snn_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = "make bench"
TARGETS = {"htaf_vs_autodiff": 0.95, "snntorch_speedup": 1.3, "matmul_fraction": 0.85}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except Exception:
        return "not installed"


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
        return head + (" (+ uncommitted changes)" if dirty.strip() else "") if head else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine_info() -> dict:
    dev = jax.devices()[0]
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_model(), "cpu_threads": snn_step.cpu_threads(),
        "python": platform.python_version(), "platform": platform.platform(),
        "jax": jax.__version__, "jaxlib": _version("jaxlib"), "flax": _version("flax"),
        "optax": _version("optax"), "torch": _version("torch"),
        "snntorch": _version("snntorch"),
        "jax_backend": jax.default_backend(), "jax_device_kind": str(dev.device_kind),
        "jax_device_count": jax.device_count(), "git_commit": git_commit(),
        "load_avg_1m_at_start": _load_avg(),
    }


def _load_avg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def run_all(quick: bool = False) -> dict:
    """Every benchmark at its issue's size (``quick``: tiny sizes, for tests)."""
    t0 = time.perf_counter()
    out = {"machine": machine_info(), "quick": quick}
    print("htaf throughput ...", flush=True)
    out["htaf"] = htaf_throughput.measure(log2n=12 if quick else 24, repeats=3 if quick else 20)
    print("snn step ...", flush=True)
    out["snn"] = (snn_step.measure(num_steps=3, batch=8, hidden=32, repeats=2, warmup=1,
                                   matmul_n=256) if quick else snn_step.measure(repeats=20))
    print("pipeline ...", flush=True)
    out["pipeline"] = (pipeline.measure(batch=32, steps=3, epochs=1) if quick
                       else pipeline.measure(batch=128, steps=200, epochs=3))
    print("packed inference ...", flush=True)
    out["packed"] = (packed_inference.measure(batch=16, repeats=2) if quick
                     else packed_inference.measure(batch=1000, repeats=20))
    print("snn peers ...", flush=True)
    out["peers"] = snn_peers.measure(quick=quick, memory=not quick)
    out["wall_s"] = time.perf_counter() - t0
    out["load_avg_1m_at_end"] = _load_avg()
    return out


# ----------------------------------------------------------------------------- report


def _fmt(x) -> str:
    return "?" if x is None else f"{x:.2f}"


def _verdict(value: float, target: float) -> str:
    return "meets target" if value >= target else "misses target"


def render_markdown(r: dict, figure: str | None = None) -> str:
    m, h, s, p = r["machine"], r["htaf"], r["snn"], r["pipeline"]
    L = ["# Benchmarks", "",
         f"Written by `{COMMAND}` (`python -m benchmarks.run`) on {m['date_utc']}, commit "
         f"{m['git_commit']}; all raw numbers in `benchmarks/results.json`. Every figure is a "
         "ratio of timings taken in the same run, contenders interleaved round by round, "
         "warm-up (compilation) excluded, medians of the repeats.", ""]
    if r.get("quick"):
        L += ["**Quick mode (tiny sizes): these numbers check that the scripts run; they "
              "measure nothing.**", ""]
    L += ["| machine | |", "|---|---|",
          f"| CPU | {m['cpu']}, {m['cpu_threads']} threads available |",
          f"| JAX device | {m['jax_backend']} ({m['jax_device_kind']}) × {m['jax_device_count']} |",
          f"| versions | Python {m['python']}, jax {m['jax']}, jaxlib {m['jaxlib']}, flax "
          f"{m['flax']}, optax {m['optax']}, torch {m['torch']}, snntorch {m['snntorch']} |",
          f"| OS | {m['platform']} |",
          f"| wall time of the benchmarks | {r['wall_s']:.0f} s |",
          f"| 1-min load average at start / end | {_fmt(m.get('load_avg_1m_at_start'))} / "
          f"{_fmt(r.get('load_avg_1m_at_end'))} |", "",
          "Other processes may share these cores (the load average says how much): ratios "
          "hold up to that, since contenders alternate round by round, but absolute times "
          "do not.", ""]
    if m["jax_backend"] == "cpu":
        L += ["No GPU was available to this run: every column is CPU. On a GPU host the same "
              "command runs unchanged and records its device here.", ""]
    if figure:
        L += [f"![benchmarks]({figure})", ""]

    # HTAF
    ref = h["median_s"]["htaf (custom VJP)"]
    ratio = h["speed_ratio_htaf_over"]["composite autodiff"]
    L += ["## HTAF forward+backward", "",
          f"`grad(sum(f(x)))` on 2^{h['n'].bit_length() - 1} float32 values, jitted, "
          f"{h['platform']} ({h['device']}). Speed ratio = contender's time / htaf's time "
          "(> 1: htaf is faster).", "",
          "| contender | median ms | M values/s | speed ratio |", "|---|---:|---:|---:|"]
    for name, t in h["median_s"].items():
        L.append(f"| {name} | {t * 1e3:.2f} | {h['values_per_s'][name] / 1e6:.1f} | "
                 f"{t / ref:.3f} |")
    L += ["", f"- htaf vs autodiff of the composite: **{ratio:.3f}** (target ≥ "
          f"{TARGETS['htaf_vs_autodiff']}: {_verdict(ratio, TARGETS['htaf_vs_autodiff'])}). "
          "The custom VJP also keeps the tail gradient that autodiff rounds to 0.",
          f"- htaf vs jax.nn.sigmoid: {h['speed_ratio_htaf_over']['jax.nn.sigmoid']:.3f} "
          "(HTAF computes a tanh and an exp forward and a stable sech² backward; the sigmoid "
          "one exp).", ""]

    # SNN
    L += _snn_section(s)
    L += _pipeline_section(p)
    if "packed" in r:
        L += _packed_section(r["packed"])
    if "peers" in r:
        L += _peers_section(r["peers"])
    L += ["## Reproduce", "", f"    {COMMAND}", "",
          "or one part: `python -m benchmarks.snn_step`, `python -m benchmarks.htaf_throughput`, "
          "`python -m benchmarks.pipeline`, `python -m benchmarks.snn_peers` (each takes "
          "`--help`); `python -m benchmarks.run --only peers` reruns the peers part and "
          "rewrites this file with it.", ""]
    return "\n".join(L)


def _packed_section(k: dict) -> list[str]:
    """Bit-packed XNOR/popcount inference against the float forward of the same BinaryMLP."""
    mem = k["weight_memory"]
    L = ["## Bit-packed binary inference", "",
         f"BinaryMLP 784-1024-1024-10 (±1 weights, XNOR-Net scales, BatchNorm), batch "
         f"{k['batch']}, {k['device']}: the float forward with hard binarisation against "
         "`htaf_jax.models.bnn_export.packed_mlp_logits` (±1 activations packed 32 to a uint32 "
         "word, `bitwise_xor` + `population_count`). Median of "
         f"{k['repeats']} interleaved rounds.", "",
         "| | float ms | packed ms | packed speed-up |", "|---|---:|---:|---:|",
         f"| whole MLP | {k['mlp_seconds']['float'] * 1e3:.2f} | "
         f"{k['mlp_seconds']['packed'] * 1e3:.2f} | {k['mlp_packed_speedup']:.2f}× |",
         f"| one 1024→1024 binary layer | {k['layer_seconds']['float'] * 1e3:.2f} | "
         f"{k['layer_seconds']['packed'] * 1e3:.2f} | {k['layer_packed_speedup']:.2f}× |", "",
         f"- Same argmax on every example: **{k['equal_argmax']}**; largest |logit difference| "
         f"{k['max_abs_logit_difference']:.2e} (the real-valued scales and BatchNorm round "
         "differently; the ±1 sums are exact integers).",
         f"- Weight memory: {mem['ratio']:.1f}× smaller packed ({mem['ratio_with_scales']:.1f}× "
         "counting the float32 per-channel scales).", ""]
    return L


def _snn_section(s: dict) -> list[str]:
    f, mm = s["flops"], s["matmul"]
    t = s["torch"]
    L = ["## SNN training step vs snnTorch", "",
         f"784-{s['hidden']}-10 LIF MLP (β = 0.9, θ = 1, subtract reset), T = {s['num_steps']}, "
         f"batch {s['batch']}, rate-coded input drawn inside the step, mean-membrane readout, "
         f"cross-entropy, Adam; {s['params']:,} parameters in each framework. JAX on "
         f"{s['jax_device']}; "
         + (f"snnTorch {t['snntorch']} on torch {t['torch']} ({t['device']}, "
            f"{t['threads']} threads)." if t["available"]
            else f"snnTorch not run: {t['reason']}.") + f" Median of {s['repeats']} steps.", "",
         "| contender | median ms | min ms | GFLOP/s | fraction of matmul peak |",
         "|---|---:|---:|---:|---:|"]
    for name, ms in s["median_ms"].items():
        L.append(f"| {name} | {ms:.1f} | {s['min_ms'][name]:.1f} | "
                 f"{s['achieved_gflops'][name]:.1f} | {s['fraction_of_matmul'][name]:.2f} |")
    if not t["available"]:
        L.append(f"| snntorch atan (rate) | not run: {t['reason']} | | | |")
    shapes = ", ".join(f"{g:.1f} ({name.removeprefix('matmul ')})"
                       for name, g in mm["by_shape"].items())
    L += ["", f"Matmul peak, same rounds: **{mm['gflops']:.1f} GFLOP/s**, the best of float32 "
          f"`jnp.dot` throughputs {shapes}. Step FLOPs (matmuls): forward "
          f"{f['forward'] / 1e9:.2f} G; forward+backward {f['exact'] / 1e9:.2f} G exact (the "
          f"input spikes need no gradient) vs {f['nominal'] / 1e9:.2f} G by the nominal 3 × "
          f"forward; direct input {f['direct_exact'] / 1e9:.2f} G. GFLOP/s above use the exact "
          "count.", ""]
    ours = s["median_ms"]["jax atan (rate)"]
    if "speedup_vs_snntorch" in s:
        sp = s["speedup_vs_snntorch"]
        v = sp["identical network (atan)"]
        L.append(f"- **Speed-up vs snnTorch, identical network (atan): {v:.2f}×** "
                 f"({s['median_ms']['snntorch atan (rate)']:.1f} ms / {ours:.1f} ms; target ≥ "
                 f"{TARGETS['snntorch_speedup']}×: {_verdict(v, TARGETS['snntorch_speedup'])}); "
                 f"with HTAF as the surrogate: {sp['htaf']:.2f}×.")
    frac = s["fraction_of_matmul"]["jax atan (rate)"]
    L.append(f"- **Fraction of matmul throughput: {frac:.2f}** (target ≥ "
             f"{TARGETS['matmul_fraction']}: {_verdict(frac, TARGETS['matmul_fraction'])}).")
    enc, b = s["encode_ms"], s["bound_ms"]
    L.append(f"- Where a JAX step's time goes (components timed alone, same rounds): matmuls "
             f"at peak {b['matmuls at peak']:.1f} ms + Bernoulli rate code "
             f"{b['rate encode']:.1f} ms (threefry, counter-based"
             + (f"; torch's `spikegen.rate`: {enc['torch rate encode only']:.1f} ms"
                if "torch rate encode only" in enc else "")
             + f") + LIF scan forward+backward {b['LIF scan fwd+bwd']:.1f} ms "
             f"({s['num_steps']} sequential elementwise steps each way) = "
             f"{sum(b.values()):.1f} ms, of a measured {ours:.1f} ms; the rest is Adam, the "
             "readout, loss and smaller ops. Without the rate code the step would be at "
             f"{s['fraction_of_matmul_without_encode']['jax atan (rate)']:.2f} of the matmul "
             "peak.")
    L.append(f"- **Direct (constant-current) input: {s['direct_speedup']:.2f}× faster** than "
             f"rate input (the first layer's matmul runs once, not T times; the matmul FLOPs "
             f"drop {s['direct_flop_ratio']:.1f}×).")
    L.append(f"- HTAF vs atan surrogate inside the step: {s['htaf_vs_atan_cost']:.3f}× the time "
             "(the surrogates differ only in elementwise work).")
    L.append("")
    return L


def _peers_section(q: dict) -> list[str]:
    """Our SNN step next to Spyx's and snnTorch's on both workloads, with peak memory."""
    v, mf = q["versions"], q["matmul_fraction_ours"]
    t = q["targets"]
    L = ["## SNN step vs Spyx and snnTorch", "",
         f"Measured {q['date_utc']} by `python -m benchmarks.snn_peers` (part of `{COMMAND}`), "
         f"JAX on {q['jax_device']}, {q['cpu_threads']} threads; jax {v['jax']}, flax "
         f"{v['flax']}, spyx {v['spyx']}, torch {v['torch']}, snntorch {v['snntorch']}; 1-min "
         f"load average {_fmt(q.get('load_avg_1m_at_start'))} at start, "
         f"{_fmt(q.get('load_avg_1m_at_end'))} at end, {q['wall_s']:.0f} s.", ""]
    if q.get("quick"):
        L += ["**Quick mode (tiny sizes): these numbers check that the script runs.**", ""]
    L += ["Every contender starts from the same weights and runs the same network: ours "
          "(`htaf_jax.linen.spiking.LIF` with the options that reproduce Spyx's LIF), Spyx 1.0 "
          "as its docs write it (`nnx.Linear` inside `spyx.nn.run`) and with the Linear hoisted "
          "out of time, and snnTorch's tutorial loop (its `Leaky` fires one step earlier; same "
          "work). Contenders interleaved round by round, the order rotating each round (no "
          "contender always runs right after the same one), warm-up excluded; peak MB = peak "
          "RSS of the contender in its own process (build, compile, steps) minus that of a process that "
          "imports the framework and holds the same inputs. Module docstring: "
          "`benchmarks/snn_peers.py`.", "",
          "× ours' time (paired): the median over rounds of the contender's time over ours in "
          "the same round (above 1: slower than ours), with the lowest and highest round in "
          "brackets.", "",
          "| workload | contender | median ms | min ms | × ours' time (paired) | peak MB | "
          "first loss |", "|---|---|---:|---:|---:|---:|---:|"]
    for wl in q["workloads"].values():
        label = wl["spec"]["label"]
        for name, c in wl["contenders"].items():
            if not c["ran"]:
                L.append(f"| {label} | {name} | not run: {c['skip_reason']} | | | | |")
                continue
            mem = f"{c['peak_mb']:.0f}" if "peak_mb" in c else "not measured"
            span = wl.get("ratio_range_vs_ours", {}).get(name)
            ratio = f"{wl['ratio_vs_ours'][name]:.2f}" + (
                f" ({span[0]:.2f}–{span[1]:.2f})" if span and name != snn_peers.OURS else "")
            L.append(f"| {label} | {name} | {c['median_ms']:.1f} | {c['min_ms']:.1f} | "
                     f"{ratio} | {mem} | {c['first_loss']:.6g} |")
    last = q["workloads"][mf["workload"]]
    mm = last["matmul"]
    shapes = ", ".join(f"{g:.1f} ({name.removeprefix('matmul ')})"
                       for name, g in mm["by_shape"].items())
    ahead = t["ahead_of_every_contender"]
    behind = "; ".join(f"{w}: {', '.join(ns)}" for w, ns in ahead["not_ahead_of"].items() if ns)
    L += ["", f"- **Ahead of every contender on both workloads: "
          f"{'met' if ahead['met'] else 'missed'}**"
          + (f" (not ahead of: {behind})" if behind else "")
          + (f" (not run: {', '.join(ahead['skipped'])})" if ahead["skipped"] else "") + ".",
          f"- **Fraction of matmul throughput at {last['spec']['label'].split(' (')[0]}: "
          f"{mf['value']:.2f}** (target ≥ {t['matmul_fraction']['target']}: "
          f"{'met' if t['matmul_fraction']['met'] else 'missed'}): our step's "
          f"{last['flops_ours'] / 1e9:.1f} GFLOP of matmuls (forward + weight gradient) in "
          f"{last['contenders'][snn_peers.OURS]['min_ms']:.0f} ms (our fastest step) = "
          f"{last['ours_gflops']:.1f} GFLOP/s, against the fastest float32 `jnp.dot` of the "
          f"same rounds, {mm['gflops']:.1f} GFLOP/s (by shape: {shapes}). Round by round "
          f"(our step's rate over the fastest dot of the same round): median "
          f"{mf['paired_median']:.2f} ({mf['paired_range'][0]:.2f}–{mf['paired_range'][1]:.2f})"
          f". The bound the step's shapes set, were it to take exactly its two fastest dots: "
          f"{mf['ceiling']:.2f}.",
          *_beyond_matmuls(last),
          "- The first-loss column is each step's loss on the shared starting weights: ours "
          "and both Spyx forms compute the same network (tests/test_snn_peers.py checks it to "
          "1e-5); snnTorch's differs by its firing order.", ""]
    return L


def _beyond_matmuls(last: dict) -> list[str]:
    """The bullet on what each JAX contender spends beyond its step's two matmuls."""
    beyond = last.get("beyond_matmuls_ms")
    if not beyond:
        return []
    return [f"- Beyond the matmuls at {last['spec']['label'].split(' (')[0]}: fastest step "
            "minus the fastest forward and weight-gradient `jnp.dot` s of its shapes: "
            + ", ".join(f"{n} {ms:.0f} ms" for n, ms in beyond.items())
            + ". Every JAX contender calls the same XLA dot; this is the time its framework "
            "controls (LIF scan forward and backward, loss, copies)."]


def _pipeline_section(p: dict) -> list[str]:
    pipe, st, e2e = p["pipeline"], p["train_step"], p["end_to_end"]
    L = ["## Input pipeline vs train step", "",
         f"{p['model']}, batch {p['batch']}, real Fashion-MNIST ({p['train_examples']:,} train "
         f"images), the engine's train step (`shard_map` over a 1-device mesh, chex checks) on "
         f"{st['device_kind']}.", "",
         "| stage | images/s |", "|---|---:|",
         f"| host pipeline (`train_batches`: shuffle, normalise, batch), median of "
         f"{pipe['epochs']} epochs | {pipe['images_per_s']:,.0f} |",
         f"| train step, batches already on device ({st['steps']} steps) | "
         f"{st['images_per_s']:,.0f} ({st['steps_per_s']:.1f} steps/s) |",
         f"| end to end: pipeline → `shard_batch` → step | {e2e['images_per_s']:,.0f} |", "",
         f"- The host pipeline delivers **{p['pipeline_over_step']:.1f}×** the images the step "
         "consumes: it is not the bottleneck.", ""]
    if "host_read" in p:
        L += _engine_step_section(p)
    if "device_scaling" in p:
        L += ["## Train steps/s on 1 and 8 faked CPU devices", "",
              "Same step and model, global batch "
              f"{p['batch']}, in a subprocess with "
              "`XLA_FLAGS=--xla_force_host_platform_device_count=8`. **The 8 faked devices "
              "share the same CPU cores**, so this checks that the data-parallel path runs and "
              "agrees with one device, not that it is faster.", "",
              f"| devices | steps/s | images/s | max abs param diff vs 1 device after "
              f"{pipeline.CHECK_STEPS} steps | … after all steps |",
              "|---:|---:|---:|---:|---:|"]
        key = f"max_param_diff_vs_1_after_{pipeline.CHECK_STEPS}"
        for n, d in p["device_scaling"].items():
            early = f"{d[key]:.1e}" if key in d else "n/a (fewer steps)"
            L.append(f"| {n} | {d['steps_per_s']:.1f} | {d['images_per_s']:,.0f} | {early} | "
                     f"{d['max_param_diff_vs_1']:.1e} |")
        steps = next(iter(p["device_scaling"].values()))["steps"]
        L += ["", f"All steps = {steps + 5} Adam steps on the same batches. 8 devices sum "
              "per-device gradients in another order; Adam divides each update by √v, so "
              "float32 rounding in tiny gradients becomes update-sized differences that "
              "grow with the number of steps (at most lr per step).", ""]
    return L


def _mib(n: float) -> str:
    return f"{n / 2 ** 20:.2f} MiB"


def _engine_step_section(p: dict) -> list[str]:
    h, d = p["host_read"], p["donation"]
    rates = h["steps_per_s"]
    L = ["## Train step: host read per step, donated state", "",
         f"The same MLP step, batch {p['batch']}, one device. Steps/s with a host read of "
         "the non-finite flag after every step (`check_every_step=True`) and without it (the "
         f"loop reads the flag at log/checkpoint boundaries): {h['rounds']} rounds of "
         f"{h['steps']} steps each, the two alternating, medians.", "",
         "| step | steps/s |", "|---|---:|"]
    L += [f"| {name} | {rate:.1f} |" for name, rate in rates.items()]
    L += ["", f"- Without the per-step read: **{h['speedup_without_read']:.2f}×** the steps/s. "
          "On a CPU the device is the host, so the read costs little; on a GPU/TPU it stops "
          "the host from queueing the next step while the device runs this one.", "",
          "Memory of the step without and with the train state donated (`donate_argnums`): "
          "XLA's analysis of the compiled step (live at once = arguments + outputs − aliased "
          "+ temporaries) and the peak the runtime saw, each variant in a fresh process.", "",
          "| | state | aliased | temporaries | live during the step | runtime peak |",
          "|---|---:|---:|---:|---:|---:|"]
    for name, m in d.items():
        L.append(f"| {name} | {_mib(m['state_bytes'])} | {_mib(m['alias_bytes'])} | "
                 f"{_mib(m['temp_bytes'])} | {_mib(m['step_bytes'])} | "
                 f"{_mib(m['peak']['bytes'])} ({m['peak']['source']}) |")
    off, on = d["without donation"], d["with donation"]
    L += ["", f"- Donation saves **{_mib(off['step_bytes'] - on['step_bytes'])}** of "
          f"{_mib(off['step_bytes'])} live during the step (the state is "
          f"{_mib(on['state_bytes'])}: parameters and Adam's two moments). A process's peak "
          "RSS also counts the runtime, the compiler and the data, so on a CPU the saving is "
          "lost in it; device `memory_stats` on a GPU/TPU show it.", ""]
    return L


def plot(r: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, h = r["snn"], r["htaf"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    names = list(s["median_ms"])
    ax = axes[0]
    ax.barh(names, [s["median_ms"][n] for n in names],
            color=["C0" if n.startswith("jax") else "C3" for n in names])
    bound = s["bound_ms"]["matmuls at peak"]
    ax.axvline(bound, color="k", ls="--", lw=1)
    ax.text(bound, len(names) - 0.5, " matmul-bound (rate)", fontsize=8, va="center")
    ax.set_xlabel("ms per training step (median)")
    ax.set_title(f"SNN step 784-{s['hidden']}-10, T={s['num_steps']}, B={s['batch']}",
                 fontsize=10)
    ax.invert_yaxis()
    ax = axes[1]
    hn = list(h["median_s"])
    ax.barh(hn, [h["values_per_s"][n] / 1e6 for n in hn], color="C0")
    ax.set_xlabel("M values/s, forward+backward")
    ax.set_title(f"activation on 2^{h['n'].bit_length() - 1} float32", fontsize=10)
    ax.invert_yaxis()
    m = r["machine"]
    fig.suptitle(f"{COMMAND} — {m['jax_backend']} ({m['cpu'] if m['jax_backend'] == 'cpu' else m['jax_device_kind']}), "
                 f"{m['date_utc']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = cli.parse(
        argv, __doc__, out=(os.path.join(ROOT, "BENCHMARKS.md"), "the report"),
        json=(os.path.join(ROOT, "benchmarks", "results.json"), "every number measured"),
        figure=(os.path.join(ROOT, "benchmarks", "figures", "benchmarks.png"), "the plot"),
        quick=(False, "tiny sizes: checks the scripts run"),
        only=(None, "run this part alone; the other parts' numbers come from --json",
              ["peers"]))
    for path in (args.out, args.json, args.figure):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if args.only:
        with open(args.json) as f:
            r = json.load(f)
        if bool(r.get("quick")) != args.quick:
            raise SystemExit(f"{args.json} holds a {'quick' if r.get('quick') else 'full'} run; "
                             "run the same mode or all parts")
        print("snn peers ...", flush=True)
        r["peers"] = snn_peers.measure(quick=args.quick, memory=not args.quick)
    else:
        r = run_all(quick=args.quick)
    with open(args.json, "w") as f:
        json.dump(r, f, indent=2)
    if not args.only:
        plot(r, args.figure)
    rel = os.path.relpath(args.figure, os.path.dirname(os.path.abspath(args.out)))
    with open(args.out, "w") as f:
        f.write(render_markdown(r, rel))
    wall = r["peers"]["wall_s"] if args.only else r["wall_s"]
    print(f"wrote {args.out}, {args.json}" + ("" if args.only else f", {args.figure}")
          + f" in {wall:.0f} s", file=sys.stderr)
    return r


if __name__ == "__main__":
    main()
