"""SNN step vs Spyx and snnTorch

    python -m benchmarks.snn_peers [--quick] [--no-memory] [--json OUT]

Two workloads: the SNN step (784-1000-10 LIF MLP, β = 0.9, θ = 1, subtract reset, T =
25, batch 128, direct input, mean over time of the output layer, cross-entropy, one Adam
step) and the Open Neuromorphic framework benchmark's task (Linear(n, n) + LIF, batch 16,
T = 500, Gaussian input, forward + backward of the summed spikes, no optimizer).

Every contender starts from the same weights. Ours twice: the ``htaf_jax.linen.LIF``
defaults (subtract reset in the same step, HTAF) and the options that are Spyx 1.0's
``nn.LIF`` (``reset_delay=True, fire_first=True, detach_reset=False,
spike_at_threshold=False``, atan). Spyx as its docs write it (``nnx.Linear`` inside
``spyx.nn.run``) and with the Linear hoisted out of time; snnTorch's tutorial loop (its
``Leaky`` fires one step later than Spyx's). **Equal work**: the column *Linear* says
where each first layer runs; on the SNN step every contender applies it once to the (B,
784) image and feeds that current to each step (Spyx's documented form, which applies it
at each step, runs on the Open Neuromorphic task only). **Equal surrogates**: every atan
backward is 1/(1 + (πx)²) (Spyx's ``arctan(k)`` is 1/(π(1 + (kπx)²)), which no k
matches, so Spyx gets that rule through its own ``axn.custom``); tests/test_snn_peers.py
checks each peer's loss and gradients against ours in the same firing order.

Contenders interleaved round by round, the order rotating, warm-up excluded. × ours
(paired): the median over rounds of the contender's time over ours (default, or Spyx's
order) in the same round (above 1: slower than ours), lowest and highest round in
brackets. Peak MB: peak RSS of the contender in its own process (build, compile, warm-up
steps) minus that of a process that imports the framework and holds the same inputs.
At the largest size, float32 ``jnp.dot`` s of three shapes (2048³ repeated to about one
forward dot, and the Linear's forward and weight-gradient shapes) run in the same rounds:
the fastest call of any is the machine's matmul peak, and our default step's fraction of
it is its exact matmul FLOPs (forward + weight gradient) over its fastest step.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import time
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks import harness, snn_step
from htaf_jax.linen import LIF

BETA, THRESHOLD = 0.9, 1.0
OURS, OURS_SPYX = "ours, default LIF (htaf)", "ours, Spyx's order (atan)"
SPYX_DOC, SPYX_HOIST, TORCH = "spyx (documented)", "spyx (hoisted)", "snntorch"
CONTENDERS = (OURS, OURS_SPYX, SPYX_DOC, SPYX_HOIST, TORCH)
FRAMEWORK = {OURS: "jax", OURS_SPYX: "jax", SPYX_DOC: "spyx", SPYX_HOIST: "spyx", TORCH: "torch"}
SNNTORCH_ORDER = dict(
    reset_delay=True, detach_reset=True, spike_at_threshold=False, surrogate="atan"
)
SPYX_ORDER = dict(SNNTORCH_ORDER, fire_first=True, detach_reset=False)  # fires one step earlier
LINEAR_MLP = "once on (B, 784), broadcast over T"  # where the first layer runs
LINEAR_ON = {SPYX_DOC: "inside the time loop", TORCH: "inside the time loop"}
TARGETS = {"matmul_fraction": 0.8}
QUICK_NOTE = ["**Quick mode (tiny sizes): these numbers check that the script runs.**", ""]
WARMUP = {"jax": 2, "spyx": 2, "torch": 1}  # calls before the rounds (the first compiles)


@dataclasses.dataclass(frozen=True)
class Workload:
    """With ``n_out`` ("mlp"): direct-input in-hidden-out training step (Adam); without
    ("on"): Linear(n, n) + LIF, forward+backward of the summed spikes."""

    name: str
    num_steps: int
    batch: int
    n_in: int
    hidden: int
    n_out: int | None
    repeats: int
    label: str = ""

    @property
    def kind(self) -> str:
        return "mlp" if self.n_out else "on"

    def shapes(self) -> list[tuple[int, int]]:
        return [(self.n_in, self.hidden)] + ([(self.hidden, self.n_out)] if self.n_out else [])

    def contenders(self) -> tuple[str, ...]:  # Spyx's documented form applies the Linear
        return tuple(c for c in CONTENDERS if self.kind == "on" or c != SPYX_DOC)  # T times


def workloads(quick: bool = False) -> list[Workload]:
    """The issue's sizes, or tiny ones that check the code runs (``quick``)."""
    sizes = {  # T, B, n_in, hidden, n_out, repeats
        "snn_step": (3, 8, 784, 32, 10, 2) if quick else (25, 128, 784, 1000, 10, 15),
        "on_512": (5, 4, 16, 16, None, 2) if quick else (500, 16, 512, 512, None, 7),
        "on_4096": (5, 4, 32, 32, None, 2) if quick else (500, 16, 4096, 4096, None, 5),
    }
    out = []
    for name, (t, b, n_in, n, n_out, repeats) in sizes.items():
        label = (
            f"SNN step {n_in}-{n}-{n_out}, T = {t}, B = {b}, direct input, Adam"
            if n_out
            else f"Open Neuromorphic task, n = {n} (T = {t}, B = {b}, fwd+bwd)"
        )
        out.append(Workload(name, t, b, n_in, n, n_out, repeats, label))
    return out


def step_flops(w: Workload) -> float:
    """Exact matmul FLOPs of one step (weight grads of every layer, input grads of all
    but the first; a time-constant input's first layer once, over B rows)."""
    rows = w.num_steps * w.batch
    (a0, b0), rest = w.shapes()[0], w.shapes()[1:]
    first_rows = w.batch if w.kind == "mlp" else rows
    return float(2 * 2 * first_rows * a0 * b0 + sum(3 * 2 * rows * a * b for a, b in rest))


def make_weights(w: Workload, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel (in, out), bias (out,)) per layer, torch.nn.Linear's U(±1/√in), float32."""
    rng = np.random.default_rng(seed)
    u = lambda a, shape: rng.uniform(-(a**-0.5), a**-0.5, shape).astype(np.float32)  # noqa: E731
    return [(u(a, (a, b)), u(a, (b,))) for a, b in w.shapes()]


def make_inputs(w: Workload, seed: int = 0) -> dict[str, np.ndarray]:
    """mlp: standardised images x (B, 784) and labels y; on: Gaussian x (T, B, n)."""
    if w.kind == "mlp":
        images, labels = snn_step.synthetic_batch(w.batch, seed)
        return {"x": images.reshape(w.batch, -1), "y": labels}
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(w.num_steps, w.batch, w.n_in)).astype(np.float32)}


# A contender is (step, grads): step() runs one timed step and returns its loss;
# grads() returns (loss, {"fc1.kernel" (in, out), "fc1.bias", ...}) at the current weights.
Contender = tuple[Callable[[], float], Callable[[], tuple[float, dict]]]


class OursNet(nn.Module):
    """Dense → LIF → [Dense → mean over time]."""

    hidden: int
    n_out: int | None
    num_steps: int
    lif_options: tuple  # (name, value) pairs; {} is the LIF's defaults

    @nn.compact
    def __call__(self, x):  # x: (T, B, in), or (B, in) for every step when n_out is set
        spikes, _ = LIF(**dict(self.lif_options))(
            nn.Dense(self.hidden, name="fc1")(x), num_steps=self.num_steps if self.n_out else None
        )
        return spikes if self.n_out is None else nn.Dense(self.n_out, name="fc2")(spikes).mean(0)


def _loss(w: Workload, out: Callable) -> Callable:
    """The workload's loss of a network output ``out(model, x)``: the summed spikes (on),
    or the cross-entropy of the mean over time (mlp; ``out`` already averaged for ours)."""
    if w.kind == "on":
        return lambda m, x, y: jnp.sum(out(m, x))
    return lambda m, x, y: snn_step.cross_entropy(out(m, x), y)


def make_ours(w: Workload, weights, inputs, options: dict) -> Contender:
    net = OursNet(w.hidden, w.n_out, w.num_steps, tuple(sorted(options.items())))
    params = {
        f"fc{i + 1}": {"kernel": jnp.asarray(k), "bias": jnp.asarray(b)}
        for i, (k, b) in enumerate(weights)
    }
    x, y = jnp.asarray(inputs["x"]), jnp.asarray(inputs.get("y", 0))
    loss_fn = _loss(w, lambda p, x: net.apply({"params": p}, x))
    grad = jax.jit(jax.value_and_grad(loss_fn))
    if w.kind == "on":
        step = lambda: float(jax.block_until_ready(grad(params, x, y))[0])  # noqa: E731
        state = [params]
    else:  # x and y are arguments, not constants folded into the compiled step
        step, state = snn_step.adam_steps(loss_fn, params, lambda: (x, y))

    def grads():
        loss, g = grad(state[0], x, y)
        return float(loss), {f"{n}.{k}": np.asarray(v) for n, d in g.items() for k, v in d.items()}

    return step, grads


def make_spyx(w: Workload, weights, inputs, hoisted: bool, activation=None) -> Contender:
    """Spyx 1.0 (Flax NNX): documented (``Sequential(Linear, LIF)`` in ``spyx.nn.run``) or
    hoisted (the Linear over all steps at once, ``spyx.nn.run`` over the LIF alone), with
    our atan's backward unless ``activation`` says otherwise."""
    import spyx  # a peer (the bench extra): imported only to time it

    rngs = nnx.Rngs(0)
    fcs = [
        nnx.Linear(
            *k.shape,
            rngs=rngs,
            kernel_init=lambda *_, k=k: jnp.asarray(k),
            bias_init=lambda *_, b=b: jnp.asarray(b),
        )
        for k, b in weights
    ]
    # Our atan's backward, 1/(1 + (πx)²), with Spyx's own primitive and Heaviside (H(0) = 0).
    atan = activation or spyx.axn.custom(lambda v: 1 / (1 + (jnp.pi * v) ** 2), spyx.axn.heaviside)
    # β a float32 scalar: a Python float makes a weakly typed Param that Adam's first
    # update retypes, and the step would compile again. Spyx trains it along (one scalar).
    lif = spyx.nn.LIF(
        (w.hidden,), beta=np.float32(BETA), threshold=THRESHOLD, activation=atan, rngs=rngs
    )

    class Hoisted(nnx.Module):
        def __init__(self):
            self.fc1, self.lif, self.fc2 = fcs[0], lif, (fcs[1] if len(fcs) > 1 else None)

        def __call__(self, x):  # → the last layer's output, (T, B, ...)
            cur = self.fc1(x)
            if w.kind == "mlp":  # one current for every step
                cur = jnp.broadcast_to(cur, (w.num_steps,) + cur.shape)
            spikes, _ = spyx.nn.run(self.lif, cur)
            return spikes if self.fc2 is None else self.fc2(spikes)

    model = Hoisted() if hoisted else spyx.nn.Sequential(*fcs[:1], lif, *fcs[1:])
    x, y = jnp.asarray(inputs["x"]), jnp.asarray(inputs.get("y", 0))
    out = (lambda m, x: m(x)) if hoisted else (lambda m, x: spyx.nn.run(m, x)[0])
    loss_fn = _loss(w, out if w.kind == "on" else lambda m, x: out(m, x).mean(0))
    grad = nnx.jit(lambda m, x, y: nnx.value_and_grad(loss_fn)(m, x, y))

    def grads():
        loss, g = grad(model, x, y)
        flat = [
            (p, np.asarray(v[...])) for p, v in nnx.to_flat_state(g) if p[-1] in ("kernel", "bias")
        ]
        layers = list(dict.fromkeys(p[:-1] for p, _ in flat))
        return float(loss), {f"fc{layers.index(p[:-1]) + 1}.{p[-1]}": v for p, v in flat}

    if w.kind == "on":
        return (lambda: float(jax.block_until_ready(grad(model, x, y))[0])), grads
    opt = nnx.Optimizer(model, optax.adam(snn_step.LR), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, opt, x, y):
        loss, g = nnx.value_and_grad(loss_fn)(model, x, y)
        opt.update(model, g)
        return loss

    return (lambda: float(train_step(model, opt, x, y))), grads


def make_torch(w: Workload, weights, inputs) -> Contender:
    """snnTorch's tutorial loop (``snn_step.snntorch_model``); torch threads = JAX's cores."""
    import torch  # a peer (the bench extra): imported only to time it

    torch.set_num_threads(harness.cpu_threads())
    net = snn_step.snntorch_model(
        w.num_steps, w.n_in, w.hidden, w.n_out, hoist_first=w.kind == "mlp"
    )
    layers = [net.fc1] + ([net.fc2] if w.n_out else [])
    with torch.no_grad():
        for layer, (k, b) in zip(layers, weights):
            layer.weight.copy_(torch.from_numpy(k.T.copy()))
            layer.bias.copy_(torch.from_numpy(b))
    x, y = torch.from_numpy(inputs["x"]), torch.from_numpy(inputs.get("y", np.zeros(1, int)))
    opt = torch.optim.Adam(net.parameters(), lr=snn_step.LR) if w.kind == "mlp" else None

    def backward():
        net.zero_grad(set_to_none=True)
        out = net(x)
        loss = out.sum() if opt is None else torch.nn.functional.cross_entropy(out, y.long())
        loss.backward()
        return loss.item()

    def grads():
        return backward(), {
            f"fc{i + 1}.{n}": p.grad.numpy().T if n == "kernel" else p.grad.numpy()
            for i, fc in enumerate(layers)
            for n, p in (("kernel", fc.weight), ("bias", fc.bias))
        }

    def step():
        loss = backward()
        if opt is not None:
            opt.step()
        return loss

    return step, grads


def unavailable(name: str) -> str | None:
    """Why a contender cannot run here, or None."""
    framework = FRAMEWORK[name]
    if framework == "torch":
        return snn_step.torch_unavailable_reason()
    return harness.unavailable("spyx") if framework == "spyx" else None


def build(name: str, w: Workload, weights, inputs) -> Contender:
    if name in (OURS, OURS_SPYX):
        return make_ours(w, weights, inputs, {} if name == OURS else SPYX_ORDER)
    if name in (SPYX_DOC, SPYX_HOIST):
        return make_spyx(w, weights, inputs, hoisted=name == SPYX_HOIST)
    if name == TORCH:
        return make_torch(w, weights, inputs)
    raise ValueError(f"unknown contender {name!r}; known: {CONTENDERS}")


# ----------------------------------------------------------------------------- memory


def child(spec: dict, contender: str) -> dict:
    """In a fresh process: a framework's baseline ("baseline:jax", ...: its imports, its
    runtime started, the same inputs) or one contender built and run for its warm-up
    calls; the process's peak RSS."""
    w = Workload(**spec)
    weights, inputs = make_weights(w), make_inputs(w)
    if contender == "baseline:torch":
        import snntorch  # noqa: F401
        import torch  # a peer (the bench extra): imported only to time it

        torch.set_num_threads(harness.cpu_threads())
        (torch.ones(2) + 1).sum().item()
    elif contender.startswith("baseline:"):
        if contender == "baseline:spyx":
            import spyx  # noqa: F401
        jax.block_until_ready(jnp.ones(2) + 1)
    else:
        step, _ = build(contender, w, weights, inputs)
        for _ in range(WARMUP[FRAMEWORK[contender]]):
            step()
    return {"rss_mb": harness.peak_rss_mb()}


def peak_memory(w: Workload, names: list[str]) -> dict[str, dict]:
    """{contender: {peak_mb, rss_mb, baseline_mb}} from one subprocess each."""
    spec = json.dumps(dataclasses.asdict(w))
    rss = lambda name: harness.in_subprocess(  # noqa: E731
        "snn_peers", ["--child", spec, "--contender", name]
    )["rss_mb"]
    base = {fw: rss(f"baseline:{fw}") for fw in sorted({FRAMEWORK[n] for n in names})}
    out = {n: {"rss_mb": rss(n), "baseline_mb": base[FRAMEWORK[n]]} for n in names}
    return {n: dict(m, peak_mb=m["rss_mb"] - m["baseline_mb"]) for n, m in out.items()}


# ----------------------------------------------------------------------------- the run


def matmul_components(w: Workload, square: int) -> dict[str, tuple[Callable, float]]:
    """The Linear's forward and weight-gradient dots, and the square dot ``k`` times back
    to back, so that each sample is about one forward dot's FLOPs."""
    rows, s = w.num_steps * w.batch, square
    k = max(1, round(rows * w.n_in * w.hidden / s**3))
    return {
        f"matmul {s}x{s}x{s} (x{k} per sample)": harness.make_matmul(s, s, s, k),
        f"matmul {w.n_in}x{rows}x{w.hidden} (weight grad)": harness.make_matmul(
            w.n_in, rows, w.hidden
        ),
        f"matmul {rows}x{w.n_in}x{w.hidden} (forward)": harness.make_matmul(rows, w.n_in, w.hidden),
    }


def measure_workload(w: Workload, memory: bool = True, matmul_square: int | None = None) -> dict:
    weights, inputs = make_weights(w), make_inputs(w)
    fns, r = {}, {"spec": dataclasses.asdict(w), "flops_ours": step_flops(w), "contenders": {}}
    for name in w.contenders():
        reason = unavailable(name)
        r["contenders"][name] = {"ran": reason is None, "skip_reason": reason}
        if reason is None:
            fns[name] = build(name, w, weights, inputs)
    # The first warm-up call: the loss on the shared starting weights.
    first_loss = {name: grads()[0] for name, (_, grads) in fns.items()}
    for name, (step, _) in fns.items():
        for _ in range(WARMUP[FRAMEWORK[name]] - 1):
            step()
    mm = matmul_components(w, matmul_square) if matmul_square else {}
    for f, _ in mm.values():
        f()
    times = harness.time_interleaved(
        {**{n: s for n, (s, _) in fns.items()}, **{n: f for n, (f, _) in mm.items()}},
        w.repeats,
        rotate=True,
    )
    for name in fns:
        ms = [t * 1e3 for t in times[name]]
        r["contenders"][name] = dict(
            ran=True, median_ms=statistics.median(ms), min_ms=min(ms), first_loss=first_loss[name]
        )
    for ref, key in ((OURS, "vs_ours"), (OURS_SPYX, "vs_ours_spyx")):
        r[f"ratio_{key}"], r[f"ratio_range_{key}"] = harness.paired({n: times[n] for n in fns}, ref)
    r["ours_gflops"] = r["flops_ours"] / (r["contenders"][OURS]["min_ms"] / 1e3) / 1e9
    if mm:
        gflops = {name: f / min(times[name]) / 1e9 for name, (_, f) in mm.items()}
        best = max(gflops, key=gflops.get)
        # The step's own two dots, fastest against fastest: beyond them is what a JAX
        # contender's framework controls.
        dots = sum(min(times[n]) for n in mm if n.endswith(("(forward)", "(weight grad)")))
        r["beyond_matmuls_ms"] = {
            n: (min(times[n]) - dots) * 1e3 for n in fns if FRAMEWORK[n] != "torch"
        }
        r["matmul"] = {
            "best": best,
            "gflops": gflops[best],
            "by_shape": gflops,
            "ceiling_fraction": r["flops_ours"] / dots / 1e9 / gflops[best],
            "fraction_by_round": [  # our rate over the fastest dot of its round
                r["flops_ours"] / t / max(f / times[n][i] for n, (_, f) in mm.items())
                for i, t in enumerate(times[OURS])
            ],
        }
    if memory:
        for n, m in peak_memory(w, list(fns)).items():
            r["contenders"][n].update(m)
    return r


def measure(quick: bool = False, memory: bool = True) -> dict:
    """Every workload (``quick``: tiny sizes); targets computed from the numbers."""
    t0, ws = time.perf_counter(), workloads(quick)
    out = {"quick": quick, **harness.stamp("jax", "flax", "spyx", "torch", "snntorch")}
    out["workloads"] = {}
    for w in ws:
        print(f"  {w.label} ...", file=sys.stderr, flush=True)
        square = (64 if quick else 2048) if w is ws[-1] else None
        out["workloads"][w.name] = measure_workload(w, memory, square)
    last = out["workloads"][ws[-1].name]
    fraction, rounds = (
        last["ours_gflops"] / last["matmul"]["gflops"],
        last["matmul"]["fraction_by_round"],
    )
    behind = {
        name: [n for n, v in wl["ratio_vs_ours"].items() if FRAMEWORK[n] != "jax" and v <= 1]
        for name, wl in out["workloads"].items()
    }
    skipped = sorted(
        {n for wl in out["workloads"].values() for n, c in wl["contenders"].items() if not c["ran"]}
    )
    out["matmul_fraction_ours"] = {
        "workload": ws[-1].name,
        "value": fraction,
        "paired_median": statistics.median(rounds),
        "paired_range": [min(rounds), max(rounds)],
        "ceiling": last["matmul"]["ceiling_fraction"],
    }
    target = TARGETS["matmul_fraction"]
    out["targets"] = {
        "ahead_of_every_contender": {
            "met": not any(behind.values()) and not skipped,
            "not_ahead_of": behind,
            "skipped": skipped,
        },
        "matmul_fraction": {"target": target, "value": fraction, "met": fraction >= target},
    }
    out["load_avg_1m_at_end"], out["wall_s"] = harness.load_avg(), time.perf_counter() - t0
    return out


def _ratio(wl: dict, key: str, name: str) -> str:
    return harness.paired_text(wl[f"ratio_{key}"][name], wl[f"ratio_range_{key}"][name])


def _row(wl: dict, name: str, c: dict) -> list:
    if not c["ran"]:
        return [f"not run: {c['skip_reason']}"] + [""] * 5
    peak = f"{c['peak_mb']:.0f}" if "peak_mb" in c else "not measured"
    ratios = [_ratio(wl, "vs_ours", name), _ratio(wl, "vs_ours_spyx", name)]
    return [f"{c['median_ms']:.1f}", f"{c['min_ms']:.1f}", *ratios, peak, f"{c['first_loss']:.6g}"]


def section(q: dict) -> list[str]:
    v, mf, t = q["versions"], q["matmul_fraction_ours"], q["targets"]
    rows = []
    for wl in q["workloads"].values():
        label, on = wl["spec"]["label"], wl["spec"]["n_out"] is None
        for name, c in wl["contenders"].items():
            where = LINEAR_ON.get(name, "over all T at once") if on else LINEAR_MLP
            rows.append([label, name, where, *_row(wl, name, c)])
    last = q["workloads"][mf["workload"]]
    mm, at = last["matmul"], last["spec"]["label"].split(" (")[0]
    shapes = ", ".join(f"{g:.1f} ({n.removeprefix('matmul ')})" for n, g in mm["by_shape"].items())
    ahead, frac = t["ahead_of_every_contender"], t["matmul_fraction"]
    behind = "; ".join(f"{w}: {', '.join(ns)}" for w, ns in ahead["not_ahead_of"].items() if ns)
    header = "workload | contender | Linear | median ms | min ms | × ours default (paired) | "
    header += "× ours Spyx's order (paired) | peak MB | first loss"
    return [
        *harness.title(__doc__),
        f"Measured {q['date_utc']} by `python -m benchmarks.snn_peers` (part of `make "
        f"bench`), JAX on {q['jax_device']}, {q['cpu_threads']} threads; jax {v['jax']}, "
        f"flax {v['flax']}, spyx {v['spyx']}, torch {v['torch']}, snntorch {v['snntorch']}; "
        f"1-min load average {harness.fmt(q['load_avg_1m_at_start'])} at start, "
        f"{harness.fmt(q['load_avg_1m_at_end'])} at end, {q['wall_s']:.0f} s.",
        "",
        *(QUICK_NOTE if q.get("quick") else []),
        *harness.method(__doc__),
        *harness.table(header, rows, right_from=3),
        "",
        f"- **Our default LIF ahead of every peer on every workload: "
        f"{'met' if ahead['met'] else 'missed'}**"
        + (f" (not ahead of: {behind})" if behind else "")
        + (f" (not run: {', '.join(ahead['skipped'])})" if ahead["skipped"] else "")
        + ".",
        f"- **Fraction of matmul throughput at {at}: {mf['value']:.2f}** (target ≥ "
        f"{frac['target']}: {'met' if frac['met'] else 'missed'}): our default step's "
        f"{last['flops_ours'] / 1e9:.1f} GFLOP of matmuls (forward + weight gradient) in "
        f"{last['contenders'][OURS]['min_ms']:.0f} ms (its fastest step) = "
        f"{last['ours_gflops']:.1f} GFLOP/s, against the fastest float32 `jnp.dot` of the "
        f"same rounds, {mm['gflops']:.1f} GFLOP/s (by shape: {shapes}). Round by round (our "
        f"step's rate over the fastest dot of its round): median {mf['paired_median']:.2f} "
        f"({mf['paired_range'][0]:.2f}–{mf['paired_range'][1]:.2f}). The bound the step's "
        f"shapes set, were it to take exactly its two fastest dots: {mf['ceiling']:.2f}.",
        f"- Beyond the matmuls at {at}: fastest step minus the fastest forward and "
        "weight-gradient `jnp.dot` s of its shapes: "
        + ", ".join(f"{n} {ms:.0f} ms" for n, ms in last["beyond_matmuls_ms"].items())
        + ". Every JAX contender calls the same XLA dot; this is the time its framework "
        "controls (LIF scan forward and backward, loss, copies).",
        "- First loss: each step's loss on the shared starting weights; ours in Spyx's "
        "order and both Spyx forms compute the same network, our default and snnTorch "
        "differ from it by their firing order.",
        "",
    ]


def main(argv=None):
    args = harness.parse(
        argv,
        __doc__,
        quick=(False, "tiny sizes, 2 repeats"),
        no_memory=(False, "skip the memory subprocesses"),
        json=(None, "also write the result here"),
        child=(None, "internal: one memory measurement (a workload's JSON)"),
        contender=(None, "internal: the contender --child measures"),
    )
    if args.child:
        r = child(json.loads(args.child), args.contender)
    else:
        r = measure(quick=args.quick, memory=not args.no_memory)
        print("\n".join(section(r)))
    harness.write_json(args.json, r)
    return r


if __name__ == "__main__":
    main()
