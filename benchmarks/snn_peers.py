"""Our SNN step next to Spyx's (as documented and hoisted) and snnTorch's, with peak memory.

    python -m benchmarks.snn_peers [--quick] [--no-memory] [--json OUT]

Two workloads, each timed with its contenders interleaved round by round
(``snn_step.time_interleaved``: warm-up excluded, medians; the order rotates
each round, so no contender always runs right after the same one). A contender's time
relative to ours is the median over rounds of its time over ours in the same
round (paired: a slow stretch of a shared machine slows a whole round):

- ``snn_step``: the project's SNN training step, the 784-1000-10 LIF MLP
  (β = 0.9, θ = 1, subtract reset), T = 25, batch 128, direct input (the
  standardised image is the current at every step), mean over time of the
  output layer's currents, cross-entropy, one Adam (lr 1e-3) update.
- ``on_512``, ``on_4096``: the Open Neuromorphic framework benchmark's task,
  one Linear(n, n) + LIF layer, batch 16, T = 500, Gaussian input, forward +
  backward of the summed output spikes (gradients of the Linear's weights; no
  optimizer, as there).

Contenders, all starting from the same weights:

- ``ours (htaf_jax)``: ``flax.linen.Dense`` + ``htaf_jax.linen.spiking.LIF``,
  one ``jax.jit``'d step (params and Adam state donated). The Dense runs over
  all T steps as one op; with direct input it runs once (the LIF gets
  ``num_steps``). The LIF takes the options that reproduce Spyx 1.0's
  ``nn.LIF`` (``reset_delay=True, fire_first=True, detach_reset=False,
  spike_at_threshold=False``; see ``htaf_jax.spiking``), so that it and both
  Spyx contenders compute the same network: the test checks that their losses
  on the same weights agree.
  atan surrogate (α = 2).
- ``spyx (documented)``: Spyx 1.0 (Flax NNX) as its docs write a network:
  ``spyx.nn.Sequential(nnx.Linear, spyx.nn.LIF, [nnx.Linear])`` driven by
  ``spyx.nn.run`` (a ``lax.scan`` with the Linears inside the time loop),
  ``spyx.axn.arctan()`` surrogate, ``nnx.Optimizer`` + ``nnx.jit`` +
  ``nnx.value_and_grad``; the input is the time-major (T, B, ...) sequence
  (the direct image repeated T times). Its LIF's fixed β is an ``nnx.Param``
  and is trained along (one scalar: no measurable work).
- ``spyx (hoisted)``: the same modules, the Linear applied to all T steps at
  once, then ``spyx.nn.run`` over the LIF alone.
- ``snntorch``: snnTorch 1.x ``snn.Leaky`` (atan surrogate) and
  ``torch.nn.Linear`` in the tutorials' per-step loop (``snn_step.snntorch_model``
  for the MLP), ``torch.optim.Adam``; torch uses as many threads as JAX has
  cores. snnTorch's ``Leaky`` fires on the membrane after this step's input
  (Spyx before), so its spikes differ; its work per step is the same.

A contender whose framework does not import is skipped with the reason.

Peak memory: each contender runs again in its own subprocess (build, then its
warm-up calls: compilation and 2 steps for JAX, 1 step for torch) and reports
its peak RSS; a baseline subprocess per framework imports the same modules,
starts the framework's runtime and holds the same inputs. Peak MB = contender
− baseline: the step's buffers, the framework's working memory and (for JAX)
compilation. The peak is the process's VmHWM (``ru_maxrss`` where /proc is
absent: on Linux it keeps the parent's RSS at the fork).

Matmul throughput: at the largest Open Neuromorphic size, float32
``jnp.dot`` s of three shapes (2048³, the Linear's forward (T·B, n, n) and
weight-gradient (n, T·B, n) shapes) are timed in the same rounds, each sample
about one forward dot's FLOPs (2048³ runs 16 times back to back); the best
throughput of any shape in any round (its fastest call) is the machine's
measured peak. Our fraction of it = exact matmul FLOPs of our step (forward
2·T·B·n² + weight gradient 2·T·B·n²; the input needs no gradient) / our
fastest step of the same rounds / that peak: best against best, so a noisy
neighbour cannot push it above 1 (medians taken while the load varies can).
Two readings beside it: round by round, our step's rate over the fastest dot
of the same round (its median and range: how much the headline owes to one
quiet moment); and the ceiling, the fraction our step would reach if it took
exactly its fastest forward and weight-gradient dots (the step's shapes run
slower than the square dot, so even a step that is nothing but its dots
stays below 1).
Beyond the matmuls: each JAX contender's fastest step minus the fastest
forward and weight-gradient ``jnp.dot`` s of its shapes, the time its
framework controls (the LIF scan forward and backward, the loss, copies) when
both frameworks call the same XLA dot.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import cli, snn_step
from htaf_jax.linen.spiking import LIF

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BETA, THRESHOLD, LR = 0.9, 1.0, 1e-3
OURS, SPYX_DOC, SPYX_HOIST, TORCH = ("ours (htaf_jax)", "spyx (documented)", "spyx (hoisted)",
                                     "snntorch")
CONTENDERS = (OURS, SPYX_DOC, SPYX_HOIST, TORCH)
FRAMEWORK = {OURS: "jax", SPYX_DOC: "spyx", SPYX_HOIST: "spyx", TORCH: "torch"}
# Our LIF with these options is Spyx 1.0's nn.LIF.
SPYX_ORDER = dict(reset_delay=True, fire_first=True, detach_reset=False,
                  spike_at_threshold=False)
TARGETS = {"matmul_fraction": 0.8}
# Untimed calls before the rounds (the first compiles).
WARMUP = {"jax": 2, "spyx": 2, "torch": 1}


@dataclass(frozen=True)
class Workload:
    """``kind`` "mlp": direct-input in-hidden-out training step (Adam); "on": Linear(n, n)
    + LIF, forward+backward of the summed spikes."""
    name: str
    kind: str
    num_steps: int
    batch: int
    n_in: int
    hidden: int
    n_out: int | None
    repeats: int
    label: str = ""

    def shapes(self) -> list[tuple[int, int]]:
        return [(self.n_in, self.hidden)] + ([(self.hidden, self.n_out)] if self.n_out else [])


def workloads(quick: bool = False) -> list[Workload]:
    """The issue's sizes, or tiny ones that check the code runs (``quick``)."""
    if quick:
        return [Workload("snn_step", "mlp", 3, 8, snn_step.INPUT, 32, snn_step.CLASSES, 2,
                         "SNN step 784-32-10, T = 3, B = 8"),
                Workload("on_512", "on", 5, 4, 16, 16, None, 2, "Linear + LIF, n = 16"),
                Workload("on_4096", "on", 5, 4, 32, 32, None, 2, "Linear + LIF, n = 32")]
    return [Workload("snn_step", "mlp", 25, 128, snn_step.INPUT, 1000, snn_step.CLASSES, 15,
                     "SNN step 784-1000-10, T = 25, B = 128, direct input, Adam"),
            Workload("on_512", "on", 500, 16, 512, 512, None, 7,
                     "Open Neuromorphic task, n = 512 (T = 500, B = 16, fwd+bwd)"),
            Workload("on_4096", "on", 500, 16, 4096, 4096, None, 7,
                     "Open Neuromorphic task, n = 4096 (T = 500, B = 16, fwd+bwd)")]


def step_flops(w: Workload) -> float:
    """Exact matmul FLOPs of our step (weight grads of every layer, input grads of all
    but the first; a time-constant input's first layer once, over B rows)."""
    rows = w.num_steps * w.batch
    (a0, b0), rest = w.shapes()[0], w.shapes()[1:]
    first_rows = w.batch if w.kind == "mlp" else rows
    return float(2 * 2 * first_rows * a0 * b0 + sum(3 * 2 * rows * a * b for a, b in rest))


# ----------------------------------------------------------------------------- inputs


def make_weights(w: Workload, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel (in, out), bias (out,)) per layer, torch.nn.Linear's default
    U(±1/√in), float32: every contender starts from these."""
    rng = np.random.default_rng(seed)
    out = []
    for a, b in w.shapes():
        bound = 1.0 / np.sqrt(a)
        out.append((rng.uniform(-bound, bound, (a, b)).astype(np.float32),
                    rng.uniform(-bound, bound, (b,)).astype(np.float32)))
    return out


def make_inputs(w: Workload, seed: int = 0) -> dict[str, np.ndarray]:
    """mlp: standardised images x (B, 784) and labels; on: Gaussian x (T, B, n)."""
    if w.kind == "mlp":
        images, labels = snn_step.synthetic_batch(w.batch, seed)
        return {"x": images.reshape(w.batch, -1), "y": labels}
    x = np.random.default_rng(seed).normal(size=(w.num_steps, w.batch, w.n_in))
    return {"x": x.astype(np.float32)}


def _ce(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


# ----------------------------------------------------------------------------- ours


class OursNet(nn.Module):
    """Dense → LIF (Spyx's ordering) → [Dense → mean over time]."""
    hidden: int
    n_out: int | None
    num_steps: int
    time_constant: bool  # x is (B, in), the current of every step

    @nn.compact
    def __call__(self, x):
        cur = nn.Dense(self.hidden, name="fc1")(x)
        spikes, _ = LIF(beta=BETA, threshold=THRESHOLD, surrogate="atan", **SPYX_ORDER)(
            cur, num_steps=self.num_steps if self.time_constant else None)
        if self.n_out is None:
            return spikes
        return jnp.mean(nn.Dense(self.n_out, name="fc2")(spikes), axis=0)


def make_ours(w: Workload, weights, inputs) -> Callable[[], float]:
    """One jitted step of ours; each call returns its loss (before the update)."""
    net = OursNet(w.hidden, w.n_out, w.num_steps, time_constant=w.kind == "mlp")
    params = {f"fc{i + 1}": {"kernel": jnp.asarray(k), "bias": jnp.asarray(b)}
              for i, (k, b) in enumerate(weights)}
    x = jnp.asarray(inputs["x"])
    if w.kind == "on":
        grad = jax.jit(jax.value_and_grad(lambda p, x: jnp.sum(net.apply({"params": p}, x))))

        def run_on():
            loss, g = grad(params, x)
            jax.block_until_ready(g)
            return float(loss)
        return run_on

    y, tx = jnp.asarray(inputs["y"]), optax.adam(LR)
    state = {"params": params, "opt": tx.init(params)}

    @partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt, x, y):
        loss, grads = jax.value_and_grad(lambda p: _ce(net.apply({"params": p}, x), y))(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss

    def run_mlp():
        state["params"], state["opt"], loss = step(state["params"], state["opt"], x, y)
        return float(loss)
    return run_mlp


# ----------------------------------------------------------------------------- Spyx


def spyx_unavailable_reason() -> str | None:
    try:
        import spyx  # noqa: F401
    except Exception as e:  # ImportError, or a broken install
        return f"{type(e).__name__}: {e}"
    return None


def _spyx_modules(w: Workload, weights):
    """(Linear layers, LIF) with our weights."""
    import spyx
    from flax import nnx
    rngs = nnx.Rngs(0)
    linears = [nnx.Linear(k.shape[0], k.shape[1], rngs=rngs,
                          kernel_init=lambda *_, k=k: jnp.asarray(k),
                          bias_init=lambda *_, b=b: jnp.asarray(b))
               for k, b in weights]
    # β as a float32 scalar: a Python float makes a weakly typed Param that Adam's
    # first update retypes, and the step would compile again.
    lif = spyx.nn.LIF((w.hidden,), beta=np.float32(BETA), threshold=THRESHOLD,
                      activation=spyx.axn.arctan(), rngs=rngs)
    return linears, lif


def make_spyx(w: Workload, weights, inputs, hoisted: bool) -> Callable[[], float]:
    """Spyx's step, documented (Linears inside ``spyx.nn.run``) or hoisted."""
    import spyx
    from flax import nnx
    linears, lif = _spyx_modules(w, weights)
    if hoisted:
        class Hoisted(nnx.Module):
            def __init__(self, linears, lif):
                self.linears, self.lif = nnx.List(linears), lif

            def __call__(self, x):  # (T, B, in) → last layer's output (T, B, ...)
                spikes, _ = spyx.nn.run(self.lif, self.linears[0](x))
                return self.linears[1](spikes) if len(self.linears) > 1 else spikes
        model = Hoisted(linears, lif)

        def forward(m, x):
            return m(x)
    else:
        model = spyx.nn.Sequential(linears[0], lif, *linears[1:])

        def forward(m, x):
            return spyx.nn.run(m, x)[0]

    x = jnp.asarray(inputs["x"])
    if w.kind == "on":
        @nnx.jit
        def grad_step(model, x):
            return nnx.value_and_grad(lambda m: jnp.sum(forward(m, x)))(model)

        def run_on():
            loss, g = grad_step(model, x)
            jax.block_until_ready(g)
            return float(loss)
        return run_on

    x_seq = jnp.broadcast_to(x, (w.num_steps,) + x.shape) + 0.0  # a materialised sequence
    y = jnp.asarray(inputs["y"])
    opt = nnx.Optimizer(model, optax.adam(LR), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, opt, x, y):
        loss, grads = nnx.value_and_grad(lambda m: _ce(forward(m, x).mean(0), y))(model)
        opt.update(model, grads)
        return loss

    return lambda: float(train_step(model, opt, x_seq, y))


# ----------------------------------------------------------------------------- snnTorch


def make_torch(w: Workload, weights, inputs) -> Callable[[], float]:
    """snnTorch's tutorial loop; torch threads = JAX's cores."""
    import snntorch as snn
    import torch
    from snntorch import surrogate
    torch.set_num_threads(snn_step.cpu_threads())
    if w.kind == "mlp":
        net = snn_step.snntorch_model(w.num_steps, w.hidden)
        layers = [net.fc1, net.fc2]
        x = torch.from_numpy(inputs["x"])
        x_seq = x.expand(w.num_steps, *x.shape)  # fc1(x) at every step, as tutorial 5 does
    else:
        class LinearLIF(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = torch.nn.Linear(w.n_in, w.hidden)
                self.lif1 = snn.Leaky(beta=BETA, threshold=THRESHOLD,
                                      reset_mechanism="subtract",
                                      spike_grad=surrogate.atan(alpha=2.0))

            def forward(self, x):  # (T, B, n) → spikes (T, B, n)
                mem, out = self.lif1.reset_mem(), []
                for t in range(x.shape[0]):
                    spk, mem = self.lif1(self.fc1(x[t]), mem)
                    out.append(spk)
                return torch.stack(out)
        net = LinearLIF()
        layers = [net.fc1]
        x_seq = torch.from_numpy(inputs["x"])
    with torch.no_grad():
        for layer, (k, b) in zip(layers, weights):
            layer.weight.copy_(torch.from_numpy(k.T.copy()))
            layer.bias.copy_(torch.from_numpy(b))
    if w.kind == "on":
        def run_on():
            net.zero_grad(set_to_none=True)
            loss = net(x_seq).sum()
            loss.backward()
            return loss.item()
        return run_on

    opt = torch.optim.Adam(net.parameters(), lr=LR)
    y, loss_fn = torch.from_numpy(inputs["y"].astype(np.int64)), torch.nn.CrossEntropyLoss()

    def run_mlp():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x_seq), y)
        loss.backward()
        opt.step()
        return loss.item()
    return run_mlp


# ----------------------------------------------------------------------------- contenders


def unavailable(name: str) -> str | None:
    """Why a contender cannot run here, or None."""
    if FRAMEWORK[name] == "spyx":
        return spyx_unavailable_reason()
    if FRAMEWORK[name] == "torch":
        return snn_step.torch_unavailable_reason()
    return None


def build(name: str, w: Workload, weights, inputs) -> Callable[[], float]:
    if name == OURS:
        return make_ours(w, weights, inputs)
    if name in (SPYX_DOC, SPYX_HOIST):
        return make_spyx(w, weights, inputs, hoisted=name == SPYX_HOIST)
    if name == TORCH:
        return make_torch(w, weights, inputs)
    raise ValueError(f"unknown contender {name!r}; known: {CONTENDERS}")


# ----------------------------------------------------------------------------- memory


def _maxrss_mb() -> float:
    """This process's peak RSS: VmHWM, the high-water mark of its own address space.
    ``ru_maxrss`` would do where /proc is missing, but on Linux it also counts the
    parent's RSS at the fork (it survives exec), which is the whole benchmark run."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def child(spec: dict, contender: str) -> dict:
    """In a fresh process: the baseline of a framework ("baseline:jax", ...) or one
    contender built and run for its warm-up calls (compilation and steps); returns its
    peak RSS."""
    w = Workload(**spec)
    weights, inputs = make_weights(w), make_inputs(w)
    if contender.startswith("baseline:"):
        framework = contender.split(":", 1)[1]
        if framework == "torch":
            import snntorch  # noqa: F401
            import torch
            torch.set_num_threads(snn_step.cpu_threads())
            (torch.ones(2) + 1).sum().item()
        else:
            if framework == "spyx":
                import spyx  # noqa: F401
            jax.block_until_ready(jnp.ones(2) + 1)
        return {"rss_mb": _maxrss_mb()}
    fn = build(contender, w, weights, inputs)
    losses = [fn() for _ in range(WARMUP[FRAMEWORK[contender]])]
    return {"rss_mb": _maxrss_mb(), "losses": losses}


def run_child(spec: dict, contender: str, timeout: float = 900) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.snn_peers", "--child",
                          json.dumps(spec), "--contender", contender],
                         cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"memory subprocess for {contender} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_memory(w: Workload, names: list[str]) -> dict[str, dict]:
    """{contender: {peak_mb, rss_mb, baseline_mb}} from one subprocess each."""
    spec = asdict(w)
    base = {fw: run_child(spec, f"baseline:{fw}")["rss_mb"]
            for fw in sorted({FRAMEWORK[n] for n in names})}
    out = {}
    for n in names:
        rss = run_child(spec, n)["rss_mb"]
        out[n] = {"peak_mb": rss - base[FRAMEWORK[n]], "rss_mb": rss,
                  "baseline_mb": base[FRAMEWORK[n]]}
    return out


# ----------------------------------------------------------------------------- the run


def matmul_components(w: Workload, square: int) -> dict[str, tuple[Callable, float]]:
    """The three dots, each timed sample about one forward dot's FLOPs: the square dot
    runs ``k`` times back to back per sample (the fastest of many short samples would
    catch quiet moments a step-long one cannot)."""
    rows = w.num_steps * w.batch
    k = max(1, round(rows * w.n_in * w.hidden / square ** 3))
    out = {f"matmul {w.n_in}x{rows}x{w.hidden} (weight grad)": (w.n_in, rows, w.hidden),
           f"matmul {rows}x{w.n_in}x{w.hidden} (forward)": (rows, w.n_in, w.hidden)}
    out = {name: snn_step.make_matmul(*s) for name, s in out.items()}
    dot, flops = snn_step.make_matmul(square, square, square)

    def repeated():
        for _ in range(k):
            dot()
    return {f"matmul {square}x{square}x{square} (x{k} per sample)": (repeated, k * flops),
            **out}


def measure_workload(w: Workload, memory: bool = True, matmul_square: int | None = None,
                     warmup: dict[str, int] = WARMUP) -> dict:
    weights, inputs = make_weights(w), make_inputs(w)
    fns, result = {}, {"spec": asdict(w), "flops_ours": step_flops(w), "contenders": {}}
    for name in CONTENDERS:
        reason = unavailable(name)
        if reason is None:
            fns[name] = build(name, w, weights, inputs)
        else:
            result["contenders"][name] = {"ran": False, "skip_reason": reason}
    first_loss = {name: fn() for name, fn in fns.items()}  # the first warm-up call
    for name, fn in fns.items():
        for _ in range(warmup[FRAMEWORK[name]] - 1):
            fn()
    mm = matmul_components(w, matmul_square) if matmul_square else {}
    for f, _ in mm.values():
        f()
    timed = dict(fns, **{name: f for name, (f, _) in mm.items()})
    times = snn_step.time_interleaved(timed, w.repeats, warmup=0, rotate=True)
    for name in fns:
        ts = times[name]
        result["contenders"][name] = {"ran": True, "median_ms": statistics.median(ts) * 1e3,
                                      "min_ms": min(ts) * 1e3, "first_loss": first_loss[name]}
    result["contenders"] = {n: result["contenders"][n] for n in CONTENDERS}
    if mm:
        gflops = {name: f / min(times[name]) / 1e9 for name, (_, f) in mm.items()}
        best = max(gflops, key=gflops.get)
        result["matmul"] = {"best": best, "gflops": gflops[best], "by_shape": gflops}
    # Paired: each round's time over ours in the same round, then the median of those
    # ratios (a slow stretch of the machine slows a whole round, not one contender).
    paired = {n: [t / o for t, o in zip(times[n], times[OURS])] for n in fns}
    result["ratio_vs_ours"] = {n: statistics.median(r) for n, r in paired.items()}
    result["ratio_range_vs_ours"] = {n: [min(r), max(r)] for n, r in paired.items()}
    if mm:
        # What a JAX contender spends beyond its two matmuls (forward, weight gradient),
        # fastest against fastest: the part a framework controls at a matmul-bound size.
        dots = sum(min(times[name]) for name in mm
                   if name.endswith(("(forward)", "(weight grad)")))
        result["beyond_matmuls_ms"] = {n: (min(times[n]) - dots) * 1e3 for n in fns
                                       if FRAMEWORK[n] != "torch"}
        # Our fraction if the step took exactly its two fastest dots (the shapes' own bound),
        # and round by round: our step's rate over the fastest dot rate of the same round.
        result["matmul"]["ceiling_fraction"] = result["flops_ours"] / dots / 1e9 / gflops[best]
        per_round = [result["flops_ours"] / t_ours / max(f / times[name][r]
                                                      for name, (_, f) in mm.items())
                     for r, t_ours in enumerate(times[OURS])]
        result["matmul"]["fraction_by_round"] = per_round
    result["ours_gflops"] = (result["flops_ours"] / (result["contenders"][OURS]["min_ms"] / 1e3)
                             / 1e9)
    if memory:
        for n, m in peak_memory(w, list(fns)).items():
            result["contenders"][n].update(m)
    return result


def measure(quick: bool = False, memory: bool = True) -> dict:
    """Every workload (``quick``: tiny sizes); targets computed from the numbers."""
    t0 = time.perf_counter()
    ws = workloads(quick)
    out = {"quick": quick, "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "cpu_threads": snn_step.cpu_threads(),
           "jax_device": f"{jax.default_backend()} ({jax.devices()[0].device_kind})",
           "versions": _versions(), "load_avg_1m_at_start": _load_avg(), "workloads": {}}
    for w in ws:
        print(f"  {w.label} ...", file=sys.stderr, flush=True)
        out["workloads"][w.name] = measure_workload(
            w, memory=memory, warmup={fw: 1 for fw in WARMUP} if quick else WARMUP,
            matmul_square=(64 if quick else 2048) if w is ws[-1] else None)
    last = out["workloads"][ws[-1].name]
    fraction = last["ours_gflops"] / last["matmul"]["gflops"]
    behind = {name: [n for n, r in wl["ratio_vs_ours"].items() if n != OURS and r <= 1.0]
              for name, wl in out["workloads"].items()}
    skipped = sorted({n for wl in out["workloads"].values()
                      for n, c in wl["contenders"].items() if not c["ran"]})
    rounds = last["matmul"]["fraction_by_round"]
    out["matmul_fraction_ours"] = {"workload": ws[-1].name, "value": fraction,
                                   "paired_median": statistics.median(rounds),
                                   "paired_range": [min(rounds), max(rounds)],
                                   "ceiling": last["matmul"]["ceiling_fraction"]}
    out["targets"] = {
        "ahead_of_every_contender": {"met": not any(behind.values()) and not skipped,
                                     "not_ahead_of": behind, "skipped": skipped},
        "matmul_fraction": {"target": TARGETS["matmul_fraction"], "value": fraction,
                            "met": fraction >= TARGETS["matmul_fraction"]}}
    out["load_avg_1m_at_end"] = _load_avg()
    out["wall_s"] = time.perf_counter() - t0
    return out


def _load_avg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _versions() -> dict[str, str]:
    out = {}
    for mod in ("jax", "flax", "spyx", "torch", "snntorch"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            out[mod] = "not installed"
    return out


def main(argv=None):
    args = cli.parse(argv, __doc__, quick=(False, "tiny sizes, 2 repeats"),
                     no_memory=(False, "skip the memory subprocesses"),
                     json=(None, "also write the result here"),
                     child=(None, "internal: one memory measurement (a workload's JSON)"),
                     contender=(None, "internal: the contender --child measures"))
    if args.child:
        print(json.dumps(child(json.loads(args.child), args.contender)))
        return None
    r = measure(quick=args.quick, memory=not args.no_memory)
    for name, wl in r["workloads"].items():
        print(f"{name}: {wl['spec']['label']}")
        for n, c in wl["contenders"].items():
            if not c["ran"]:
                print(f"  {n:20s} not run: {c['skip_reason']}")
                continue
            mem = f"{c['peak_mb']:8.0f} MB" if "peak_mb" in c else ""
            print(f"  {n:20s} {c['median_ms']:10.2f} ms  {wl['ratio_vs_ours'][n]:6.2f}x  {mem}")
    print(f"ours at {r['matmul_fraction_ours']['value']:.2f} of matmul throughput; "
          f"targets: {json.dumps(r['targets'])}")
    cli.write_json(args.json, r)
    return r


if __name__ == "__main__":
    main()
