"""SNN training step: our JAX step next to snnTorch's, and against the machine's matmul peak.

    python -m benchmarks.snn_step [--num-steps 25] [--batch 128] [--hidden 1000]
                                  [--repeats 15] [--json OUT]

The network is the classic 784-1000-10 LIF MLP (β = 0.9, θ = 1, subtract
reset), T = 25 steps, batch 128, rate-coded input (Bernoulli, drawn inside the
step), read out as the mean over time of the output layer's currents, trained
by cross-entropy and Adam (lr 1e-3). Contenders, all timed in one run with
rounds interleaved (a noisy neighbour hurts all alike), warm-up excluded,
median of ``repeats``:

- ``jax htaf (rate)``: ``htaf_jax.models.SpikingMLP`` (the module the SNN
  experiment trains), one ``jax.jit``'d value_and_grad + ``optax.adam`` step.
- ``jax atan (rate)``: the same with the atan surrogate (α = 2), the rule
  snnTorch uses: the identical network.
- ``jax htaf (direct)``: constant-current input; the first layer's matmul
  runs once instead of T times (``SpikingMLP`` does that by itself).
- ``snntorch atan (rate)``: snnTorch 1.x ``snn.Leaky`` with
  ``surrogate.atan()``, ``torch.nn.Linear`` layers, ``spikegen.rate`` input,
  the per-step loop of snnTorch's tutorials, ``torch.optim.Adam``; torch uses
  as many threads as JAX has cores. Skipped, with the reason recorded, when
  torch or snntorch is not importable.

The two LIF updates differ only in when the subtractive reset lands (see
``htaf_jax.spiking``); the work per step is the same.

FLOPs (matmuls only; elementwise work is O(T·B·H), ~1000× less): with
L = [(784, 1000), (1000, 10)] and N = T·B rows,

    forward           2·N·Σ a·b
    nominal fwd+bwd   3 × forward (forward, input grad, weight grad per layer)
    exact   fwd+bwd   forward + weight grads 2·N·Σ a·b + input grads for all
                      but the first layer (the input spikes need no gradient)

The achieved fraction is (exact FLOPs / step time) over the machine's matmul
peak: the best throughput among float32 ``jnp.dot`` s of three shapes (2048³,
and the step's own layer-1 forward and weight-gradient shapes), timed in the
same rounds as the steps. Also timed there, to show where a step's time goes:
the Bernoulli rate code alone and the LIF scan's forward+backward alone.
"""
from __future__ import annotations

import os
import statistics
import time
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import cli
from htaf_jax.models.snn import SpikingMLP
from htaf_jax.spiking import lif_dynamics, rate_encode
from htaf_jax.units import get_unit as get_surrogate

INPUT = 784
CLASSES = 10
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530


def layer_shapes(hidden: int = 1000) -> list[tuple[int, int]]:
    return [(INPUT, hidden), (hidden, CLASSES)]


def step_flops(num_steps: int, batch: int, hidden: int = 1000) -> dict[str, float]:
    """Matmul FLOPs of one training step of the INPUT-hidden-10 MLP (see module doc)."""
    shapes = layer_shapes(hidden)
    rows = num_steps * batch
    forward = sum(2 * rows * a * b for a, b in shapes)
    weight_grads = forward
    input_grads = sum(2 * rows * a * b for a, b in shapes[1:])
    # Direct input: the first layer sees one (B, 784) input, not T of them.
    a0, b0 = shapes[0]
    direct_first = 2 * 2 * batch * a0 * b0  # its forward and weight grad, once each
    rest = sum(2 * rows * a * b for a, b in shapes[1:])
    return {
        "forward": float(forward),
        "nominal": float(3 * forward),
        "exact": float(forward + weight_grads + input_grads),
        "direct_exact": float(direct_first + 3 * rest),
    }


def count_params(shapes: list[tuple[int, int]]) -> int:
    return sum(a * b + b for a, b in shapes)


def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def synthetic_batch(batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standardised images (B, 28, 28, 1) from uniform intensities, and labels (B,).

    The step's cost does not depend on pixel values (every matmul is dense),
    so the benchmark needs no dataset.
    """
    rng = np.random.default_rng(seed)
    intensity = rng.uniform(0.0, 1.0, (batch, 28, 28, 1)).astype(np.float32)
    images = (intensity - FMNIST_MEAN) / FMNIST_STD
    labels = rng.integers(0, CLASSES, batch).astype(np.int32)
    return images, labels


def make_matmul(m: int, k: int, n: int) -> tuple[Callable[[], None], float]:
    """(one jitted float32 (m, k) @ (k, n) ``jnp.dot``, its FLOPs)."""
    ka, kb = jax.random.split(jax.random.key(1))
    a = jax.random.normal(ka, (m, k), jnp.float32)
    b = jax.random.normal(kb, (k, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    return (lambda: jax.block_until_ready(dot(a, b))), 2.0 * m * k * n


def matmul_shapes(num_steps: int, batch: int, hidden: int, square: int = 2048
                  ) -> dict[str, tuple[int, int, int]]:
    """Shapes whose best throughput is taken as the machine's matmul peak: a large
    square one and the step's own first-layer forward and weight-gradient shapes."""
    rows = num_steps * batch
    return {f"matmul {square}x{square}x{square}": (square, square, square),
            f"matmul {rows}x{INPUT}x{hidden} (layer-1 forward)": (rows, INPUT, hidden),
            f"matmul {INPUT}x{rows}x{hidden} (layer-1 weight grad)": (INPUT, rows, hidden)}


# ----------------------------------------------------------------------------- JAX


def jax_model(num_steps: int, hidden: int, encoding: str, surrogate: str) -> SpikingMLP:
    return SpikingMLP(hidden=(hidden,), num_steps=num_steps, encoding=encoding,
                      surrogate=surrogate, beta=0.9, threshold=1.0, reset="subtract",
                      readout="membrane", input_mean=FMNIST_MEAN, input_std=FMNIST_STD)


def make_jax_step(model: SpikingMLP, images: np.ndarray, labels: np.ndarray, seed: int = 0):
    """Returns (run_one_step, params): run_one_step() does one jitted training step."""
    tx = optax.adam(1e-3)
    key = jax.random.key(seed)
    params = model.init({"params": key, "sample": key}, jnp.asarray(images[:2]))["params"]
    opt_state = tx.init(params)

    @partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt_state, images, labels, key):
        def loss_fn(p):
            logits = model.apply({"params": p}, images, train=True, rngs={"sample": key})
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    x, y = jnp.asarray(images), jnp.asarray(labels)
    state = {"params": params, "opt_state": opt_state, "i": 0}
    shapes = jax.tree.map(lambda p: p.shape, params)

    def run_one_step():
        state["i"] += 1
        k = jax.random.fold_in(key, state["i"])
        state["params"], state["opt_state"], loss = step(state["params"], state["opt_state"],
                                                         x, y, k)
        jax.block_until_ready(loss)

    return run_one_step, shapes


def make_jax_encode(num_steps: int, images: np.ndarray) -> Callable[[], None]:
    """One jitted call of the model's Bernoulli rate encoder on the batch."""
    encode = jax.jit(lambda k, x: rate_encode(k, x.reshape(len(x), -1), num_steps,
                                              mean=FMNIST_MEAN, std=FMNIST_STD))
    x, key, i = jnp.asarray(images), jax.random.key(7), [0]

    def run():
        i[0] += 1
        jax.block_until_ready(encode(jax.random.fold_in(key, i[0]), x))
    return run


def make_jax_lif(num_steps: int, batch: int, hidden: int, surrogate: str = "atan"
                 ) -> Callable[[], None]:
    """Forward+backward of the LIF dynamics alone (the ``lax.scan``) on (T, B, H) currents."""
    spike_fn = get_surrogate(surrogate)
    currents = jax.random.normal(jax.random.key(3), (num_steps, batch, hidden)) + 0.5
    weights = jax.random.normal(jax.random.key(4), currents.shape)

    def loss(c):
        spikes, _ = lif_dynamics(c, beta=0.9, threshold=1.0, spike_fn=spike_fn)
        return jnp.sum(spikes * weights)
    grad = jax.jit(jax.grad(loss))
    return lambda: jax.block_until_ready(grad(currents))


# ----------------------------------------------------------------------------- snnTorch


def torch_unavailable_reason() -> str | None:
    """None when torch and snntorch import, else why not."""
    try:
        import snntorch  # noqa: F401
        import torch  # noqa: F401
    except Exception as e:  # ImportError, or a broken install
        return f"{type(e).__name__}: {e}"
    return None


def snntorch_model(num_steps: int, hidden: int):
    """The same network in snnTorch: Linear → Leaky(atan) → Linear → mean over time."""
    import snntorch as snn
    import torch
    from snntorch import surrogate

    class SnnTorchMLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(INPUT, hidden)
            self.lif1 = snn.Leaky(beta=0.9, threshold=1.0, reset_mechanism="subtract",
                                  spike_grad=surrogate.atan(alpha=2.0))
            self.fc2 = torch.nn.Linear(hidden, CLASSES)

        def forward(self, spikes):  # (T, B, 784) → logits (B, 10)
            mem1 = self.lif1.reset_mem()
            outs = []
            for t in range(num_steps):
                spk1, mem1 = self.lif1(self.fc1(spikes[t]), mem1)
                outs.append(self.fc2(spk1))
            return torch.stack(outs).mean(0)

    return SnnTorchMLP()


def make_torch_step(num_steps: int, hidden: int, images: np.ndarray, labels: np.ndarray,
                    seed: int = 0, device: str = "cpu"):
    """Returns (run_one_step, param shapes {name: shape}) for the snnTorch contender."""
    import torch
    from snntorch import spikegen

    torch.manual_seed(seed)
    net = snntorch_model(num_steps, hidden).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    intensity = torch.from_numpy(
        np.clip(images.reshape(len(images), -1) * FMNIST_STD + FMNIST_MEAN, 0, 1)).to(device)
    y = torch.from_numpy(labels.astype(np.int64)).to(device)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run_one_step():
        spikes = spikegen.rate(intensity, num_steps=num_steps)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(spikes), y)
        loss.backward()
        opt.step()
        loss.item()  # waits for the device, like block_until_ready
        if device != "cpu":
            torch.cuda.synchronize()

    shapes = {n: tuple(p.shape) for n, p in net.named_parameters()}
    return run_one_step, shapes


def make_torch_encode(num_steps: int, images: np.ndarray, device: str = "cpu"
                      ) -> Callable[[], None]:
    """One ``snntorch.spikegen.rate`` call on the batch."""
    import torch
    from snntorch import spikegen
    intensity = torch.from_numpy(
        np.clip(images.reshape(len(images), -1) * FMNIST_STD + FMNIST_MEAN, 0, 1)).to(device)

    def run():
        spikes = spikegen.rate(intensity, num_steps=num_steps)
        spikes[0, 0, 0].item()
    return run


# ----------------------------------------------------------------------------- the run


def time_interleaved(contenders: dict[str, Callable[[], object]], repeats: int,
                     warmup: int, rotate: bool = False) -> dict[str, list[float]]:
    """Seconds per call of each contender: ``warmup`` untimed calls each (compilation),
    then ``repeats`` rounds in which every contender runs once, in turn (a noisy
    neighbour slows all alike). ``rotate``: round r starts at the r-th contender, so
    none always follows the same one (a step can pay for its predecessor, e.g. for
    thread pools still spinning)."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    items = list(contenders.items())
    for r in range(repeats):
        k = r % len(items) if rotate else 0
        for name, fn in items[k:] + items[:k]:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def measure(num_steps: int = 25, batch: int = 128, hidden: int = 1000, repeats: int = 15,
            warmup: int = 3, matmul_n: int = 2048, include_torch: bool = True) -> dict:
    images, labels = synthetic_batch(batch)
    contenders: dict[str, Callable[[], None]] = {}
    for name, enc, surr in [("jax htaf (rate)", "rate", "htaf"),
                            ("jax atan (rate)", "rate", "atan"),
                            ("jax htaf (direct)", "direct", "htaf")]:
        contenders[name], _ = make_jax_step(jax_model(num_steps, hidden, enc, surr),
                                            images, labels)
    threads = cpu_threads()
    device = "cpu"
    torch_info: dict = {"available": False, "reason": torch_unavailable_reason()}
    if include_torch and torch_info["reason"] is None:
        import snntorch
        import torch
        if jax.default_backend() == "gpu" and torch.cuda.is_available():
            device = "cuda"
        torch.set_num_threads(threads)
        contenders["snntorch atan (rate)"], _ = make_torch_step(num_steps, hidden, images,
                                                                labels, device=device)
        torch_info = {"available": True, "torch": torch.__version__,
                      "snntorch": snntorch.__version__, "device": device,
                      "threads": torch.get_num_threads()}
    elif not include_torch:
        torch_info["reason"] = "not requested (--no-torch)"

    # Components, timed in the same rounds: the Bernoulli rate code, the LIF scan,
    # and matmuls whose best throughput is the machine's peak.
    components = {"jax rate encode only": make_jax_encode(num_steps, images),
                  "jax LIF scan fwd+bwd only": make_jax_lif(num_steps, batch, hidden)}
    if "snntorch atan (rate)" in contenders:
        components["torch rate encode only"] = make_torch_encode(num_steps, images, device)
    mm_flops = {}
    for name, shape in matmul_shapes(num_steps, batch, hidden, matmul_n).items():
        components[name], mm_flops[name] = make_matmul(*shape)
    contenders.update(components)

    times = time_interleaved(contenders, repeats, warmup)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    component_ms = {name: med.pop(name) * 1e3 for name in components}
    for name in components:
        times.pop(name)
    matmul_gflops = {name: f / (component_ms[name] / 1e3) / 1e9 for name, f in mm_flops.items()}
    best = max(matmul_gflops, key=matmul_gflops.get)
    mm = {"best": best, "gflops": matmul_gflops[best], "by_shape": matmul_gflops}
    encode_ms = {k: v for k, v in component_ms.items() if "encode" in k}
    flops = step_flops(num_steps, batch, hidden)
    ours = med["jax atan (rate)"]
    achieved = {
        name: (flops["direct_exact"] if "direct" in name else flops["exact"]) / t / 1e9
        for name, t in med.items()}
    result = {
        "num_steps": num_steps, "batch": batch, "hidden": hidden, "repeats": repeats,
        "cpu_threads": threads, "torch": torch_info,
        "params": count_params(layer_shapes(hidden)),
        "median_ms": {k: v * 1e3 for k, v in med.items()},
        "min_ms": {k: min(v) * 1e3 for k, v in times.items()},
        "jax_device": f"{jax.default_backend()} ({jax.devices()[0].device_kind})",
        "flops": flops, "matmul": mm, "component_ms": component_ms,
        "achieved_gflops": achieved,
        "fraction_of_matmul": {k: v / mm["gflops"] for k, v in achieved.items()},
        "encode_ms": encode_ms,
        # What the step would reach if the rate code cost nothing.
        "fraction_of_matmul_without_encode": {
            k: flops["exact"] / (med[k] - encode_ms["jax rate encode only"] / 1e3) / 1e9
            / mm["gflops"] for k in ("jax htaf (rate)", "jax atan (rate)")},
        # Step time if its matmuls ran at peak, plus the encode and the LIF scan.
        "bound_ms": {"matmuls at peak": flops["exact"] / mm["gflops"] / 1e6,
                     "rate encode": component_ms["jax rate encode only"],
                     "LIF scan fwd+bwd": component_ms["jax LIF scan fwd+bwd only"]},
        "direct_speedup": med["jax htaf (rate)"] / med["jax htaf (direct)"],
        "direct_flop_ratio": flops["exact"] / flops["direct_exact"],
        "htaf_vs_atan_cost": med["jax htaf (rate)"] / ours,
    }
    if "snntorch atan (rate)" in med:
        t_torch = med["snntorch atan (rate)"]
        result["speedup_vs_snntorch"] = {"identical network (atan)": t_torch / ours,
                                         "htaf": t_torch / med["jax htaf (rate)"]}
    return result


def main(argv=None):
    args = cli.parse(argv, __doc__, num_steps=(25, "time steps T"), batch=(128, "batch size"),
                     hidden=(1000, "hidden LIF neurons"), repeats=(15, "timed repeats (median)"),
                     no_torch=(False, "leave snnTorch out"),
                     json=(None, "also write the result here"))
    r = measure(args.num_steps, args.batch, args.hidden, args.repeats,
                include_torch=not args.no_torch)
    print(f"SNN step 784-{args.hidden}-10, T={args.num_steps}, batch {args.batch}, "
          f"{jax.default_backend()} ({jax.devices()[0].device_kind}), median of {args.repeats}")
    for name, t in r["median_ms"].items():
        print(f"  {name:22s} {t:9.2f} ms  {r['achieved_gflops'][name]:7.1f} GFLOP/s  "
              f"{100 * r['fraction_of_matmul'][name]:5.1f}% of matmul")
    for name, g in r["matmul"]["by_shape"].items():
        print(f"  {name}: {g:.1f} GFLOP/s")
    for name, ms in r["component_ms"].items():
        print(f"  {name}: {ms:.2f} ms")
    print(f"  direct-input speed-up: {r['direct_speedup']:.2f}x")
    if "speedup_vs_snntorch" in r:
        print(f"  speed-up vs snnTorch: {r['speedup_vs_snntorch']}")
    else:
        print(f"  snnTorch: {r['torch']['reason']}")
    cli.write_json(args.json, r)
    return r


if __name__ == "__main__":
    main()
