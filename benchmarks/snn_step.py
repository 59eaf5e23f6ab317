"""SNN training step vs snnTorch

    python -m benchmarks.snn_step [--num-steps 25] [--batch 128] [--hidden 1000]
                                  [--repeats 15] [--noinclude-torch] [--json OUT]

The 784-1000-10 LIF MLP (β = 0.9, θ = 1, subtract reset), rate-coded input drawn inside
the step, mean-membrane readout, cross-entropy, Adam (lr 1e-3), the same parameters in
each framework: ``htaf_jax.models.SpikingMLP`` (the module the SNN experiment trains)
with HTAF or atan (α = 2, snnTorch's rule: the identical network), and with direct
(constant-current) input, where its first layer runs once instead of T times; snnTorch's
``snn.Leaky`` with ``spikegen.rate`` in its tutorials' per-step loop, as many torch
threads as JAX has cores (its reset lands one step later; same work). Rounds
interleaved, warm-up excluded, medians.

FLOPs are the matmuls': forward 2·N·Σ in·out (N = T·B rows); exact forward+backward adds
the weight gradients and the input gradients of all but the first layer (the input
spikes need none); nominal is 3 × forward. GFLOP/s use the exact count. The matmul peak
is the best float32 ``jnp.dot`` throughput of three shapes (2048³ and the step's layer-1
forward and weight-gradient shapes) timed in the same rounds, as are the rate code alone
and the LIF layer's forward+backward alone.
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import harness
from htaf_jax.linen import LIF
from htaf_jax.models.snn import SpikingMLP
from htaf_jax.spiking import rate_encode

INPUT, CLASSES = 784, 10
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530
LR = 1e-3  # Adam's, in every framework
TARGETS = {"snntorch_speedup": 1.3, "matmul_fraction": 0.85}
OURS, TORCH = "jax atan (rate)", "snntorch atan (rate)"


def layer_shapes(hidden: int = 1000) -> list[tuple[int, int]]:
    return [(INPUT, hidden), (hidden, CLASSES)]


def step_flops(num_steps: int, batch: int, hidden: int = 1000) -> dict[str, float]:
    """Matmul FLOPs of one training step of the INPUT-hidden-10 MLP (module docstring)."""
    (a0, b0), (a1, b1) = layer_shapes(hidden)
    rows = num_steps * batch
    forward = 2 * rows * (a0 * b0 + a1 * b1)
    return {
        "forward": float(forward),
        "nominal": float(3 * forward),
        "exact": float(2 * forward + 2 * rows * a1 * b1),
        # direct input: the first layer's forward and weight grad once, over B rows
        "direct_exact": float(2 * 2 * batch * a0 * b0 + 3 * 2 * rows * a1 * b1),
    }


def count_params(shapes: list[tuple[int, int]]) -> int:
    return sum(a * b + b for a, b in shapes)


def synthetic_batch(batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standardised images (B, 28, 28, 1) of uniform intensities, and labels (B,): every
    matmul is dense, so the cost does not depend on the pixels and no dataset is needed."""
    rng = np.random.default_rng(seed)
    intensity = rng.uniform(0.0, 1.0, (batch, 28, 28, 1)).astype(np.float32)
    return (intensity - FMNIST_MEAN) / FMNIST_STD, rng.integers(0, CLASSES, batch).astype(np.int32)


def jax_model(num_steps: int, hidden: int, encoding: str, surrogate: str) -> SpikingMLP:
    return SpikingMLP(
        hidden=(hidden,),
        num_steps=num_steps,
        encoding=encoding,
        surrogate=surrogate,
        beta=0.9,
        threshold=1.0,
        reset="subtract",
        readout="membrane",
        input_mean=FMNIST_MEAN,
        input_std=FMNIST_STD,
    )


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def adam_steps(loss_fn: Callable, params, args: Callable[[], tuple]) -> tuple[Callable, list]:
    """(run, state): ``run()`` is one jitted Adam step of ``loss_fn(params, *args())`` on the
    donated ``state = [params, opt_state]``; it returns the loss before the update."""
    tx = optax.adam(LR)
    state = [params, tx.init(params)]

    @partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt_state, *a):
        loss, grads = jax.value_and_grad(loss_fn)(params, *a)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def run():
        state[0], state[1], loss = step(*state, *args())
        return float(loss)

    return run, state


def make_jax_step(model: SpikingMLP, images: np.ndarray, labels: np.ndarray, seed: int = 0):
    """(run_one_step, param shapes); each call does one jitted step and returns its loss."""
    key = jax.random.key(seed)
    params = model.init({"params": key, "sample": key}, jnp.asarray(images[:2]))["params"]

    def loss_fn(p, x, y, k):
        return cross_entropy(model.apply({"params": p}, x, train=True, rngs={"sample": k}), y)

    x, y, keys = jnp.asarray(images), jnp.asarray(labels), itertools.count(1)
    run, _ = adam_steps(loss_fn, params, lambda: (x, y, jax.random.fold_in(key, next(keys))))
    return run, jax.tree.map(lambda p: p.shape, params)


def make_components(num_steps: int, batch: int, hidden: int, images: np.ndarray) -> dict:
    """The rate code alone, and the step's LIF layer forward+backward alone on (T, B, H)."""
    encode = jax.jit(
        lambda k, x: rate_encode(
            k, x.reshape(len(x), -1), num_steps, mean=FMNIST_MEAN, std=FMNIST_STD
        )
    )
    lif = LIF(beta=0.9, threshold=1.0, surrogate="atan")
    currents = jax.random.normal(jax.random.key(3), (num_steps, batch, hidden)) + 0.5
    weights = jax.random.normal(jax.random.key(4), currents.shape)
    grad = jax.jit(jax.grad(lambda c, w: jnp.sum(lif.apply({}, c)[0] * w)))
    x, keys = jnp.asarray(images), iter(jax.random.split(jax.random.key(7), 10**4))
    return {
        "jax rate encode only": lambda: jax.block_until_ready(encode(next(keys), x)),
        "jax LIF scan fwd+bwd only": lambda: jax.block_until_ready(grad(currents, weights)),
    }


def torch_unavailable_reason() -> str | None:
    """None when torch and snntorch import, else why not."""
    return harness.unavailable("torch") or harness.unavailable("snntorch")


def snntorch_model(
    num_steps: int, n_in: int, hidden: int, n_out: int | None = None, hoist_first: bool = False
):
    """Linear → ``snn.Leaky`` (β = 0.9, θ = 1, subtract, atan α = 2) → [Linear → mean over
    time] in snnTorch's tutorials' per-step loop, on x (T, B, n_in); ``hoist_first``: x is
    one (B, n_in) input for every step and the first Linear runs once, as a user of snnTorch
    could write it. Without ``n_out`` it returns the spikes (T, B, hidden)."""
    import snntorch as snn  # a peer (the bench extra): imported only to time it
    import torch  # a peer (the bench extra): imported only to time it
    from snntorch import surrogate  # a peer (the bench extra): imported only to time it

    class SnnTorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(n_in, hidden)
            self.lif1 = snn.Leaky(
                beta=0.9,
                threshold=1.0,
                reset_mechanism="subtract",
                spike_grad=surrogate.atan(alpha=2.0),
            )
            self.fc2 = torch.nn.Linear(hidden, n_out) if n_out else None

        def forward(self, x):
            mem, outs = self.lif1.reset_mem(), []
            cur = self.fc1(x) if hoist_first else None
            for t in range(num_steps):
                spk, mem = self.lif1(cur if hoist_first else self.fc1(x[t]), mem)
                outs.append(spk if self.fc2 is None else self.fc2(spk))
            return torch.stack(outs) if self.fc2 is None else torch.stack(outs).mean(0)

    return SnnTorchNet()


def make_torch_step(
    num_steps: int,
    hidden: int,
    images: np.ndarray,
    labels: np.ndarray,
    seed: int = 0,
    device: str = "cpu",
):
    """(run_one_step, param shapes {name: shape}, the rate code alone) of snnTorch."""
    import torch  # a peer (the bench extra): imported only to time it
    from snntorch import spikegen  # a peer (the bench extra): imported only to time it

    torch.manual_seed(seed)
    net = snntorch_model(num_steps, INPUT, hidden, CLASSES).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    intensity = torch.from_numpy(
        np.clip(images.reshape(len(images), -1) * FMNIST_STD + FMNIST_MEAN, 0, 1)
    ).to(device)
    y = torch.from_numpy(labels.astype(np.int64)).to(device)

    def run_one_step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(spikegen.rate(intensity, num_steps)), y)
        loss.backward()
        opt.step()
        return loss.item()  # waits for the device, like block_until_ready

    return (
        run_one_step,
        {n: tuple(p.shape) for n, p in net.named_parameters()},
        lambda: spikegen.rate(intensity, num_steps=num_steps)[0, 0, 0].item(),
    )


def measure(
    num_steps: int = 25,
    batch: int = 128,
    hidden: int = 1000,
    repeats: int = 15,
    warmup: int = 3,
    matmul_n: int = 2048,
    include_torch: bool = True,
) -> dict:
    images, labels = synthetic_batch(batch)
    steps = {
        name: make_jax_step(jax_model(num_steps, hidden, enc, surr), images, labels)[0]
        for name, enc, surr in [
            ("jax htaf (rate)", "rate", "htaf"),
            (OURS, "rate", "atan"),
            ("jax htaf (direct)", "direct", "htaf"),
        ]
    }
    comps = make_components(num_steps, batch, hidden, images)
    reason = torch_unavailable_reason() if include_torch else "not requested (--noinclude-torch)"
    torch_info: dict = {"available": False, "reason": reason}
    if reason is None:
        import torch  # a peer (the bench extra): imported only to time it

        device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
        torch.set_num_threads(harness.cpu_threads())
        steps[TORCH], _, comps["torch rate encode only"] = make_torch_step(
            num_steps, hidden, images, labels, device=device
        )
        torch_info = {
            "available": True,
            **harness.versions("torch", "snntorch"),
            "device": device,
            "threads": torch.get_num_threads(),
        }
    rows = num_steps * batch
    dots = {
        f"matmul {m}x{k}x{n}{what}": harness.make_matmul(m, k, n)
        for m, k, n, what in [
            (matmul_n, matmul_n, matmul_n, ""),
            (rows, INPUT, hidden, " (layer-1 forward)"),
            (INPUT, rows, hidden, " (layer-1 weight grad)"),
        ]
    }
    times = harness.time_interleaved(
        {**steps, **comps, **{n: f for n, (f, _) in dots.items()}}, repeats, warmup
    )
    med = {n: t * 1e3 for n, t in harness.medians(times).items()}
    gflops = {n: flops / med[n] / 1e6 for n, (_, flops) in dots.items()}
    peak, flops = max(gflops.values()), step_flops(num_steps, batch, hidden)
    achieved = {
        n: flops["direct_exact" if "direct" in n else "exact"] / med[n] / 1e6 for n in steps
    }
    bound = {
        "matmuls at peak": flops["exact"] / peak / 1e6,
        "rate encode": med["jax rate encode only"],
        "LIF scan fwd+bwd": med["jax LIF scan fwd+bwd only"],
    }
    r = {
        "num_steps": num_steps,
        "batch": batch,
        "hidden": hidden,
        "repeats": repeats,
        "torch": torch_info,
        "params": count_params(layer_shapes(hidden)),
        "jax_device": harness.jax_device(),
        "median_ms": {n: med[n] for n in steps},
        "min_ms": {n: min(times[n]) * 1e3 for n in steps},
        "flops": flops,
        "matmul": {"best": max(gflops, key=gflops.get), "gflops": peak, "by_shape": gflops},
        "component_ms": {n: med[n] for n in [*comps, *dots]},
        "achieved_gflops": achieved,
        "fraction_of_matmul": {n: v / peak for n, v in achieved.items()},
        "encode_ms": {n: med[n] for n in comps if "encode" in n},
        "bound_ms": bound,
        # what the step would reach if the rate code cost nothing
        "fraction_of_matmul_without_encode": {
            n: flops["exact"] / (med[n] - bound["rate encode"]) / 1e6 / peak
            for n in ("jax htaf (rate)", OURS)
        },
        "direct_speedup": med["jax htaf (rate)"] / med["jax htaf (direct)"],
        "direct_flop_ratio": flops["exact"] / flops["direct_exact"],
        "htaf_vs_atan_cost": med["jax htaf (rate)"] / med[OURS],
    }
    if TORCH in med:
        r["speedup_vs_snntorch"] = {
            "identical network (atan)": med[TORCH] / med[OURS],
            "htaf": med[TORCH] / med["jax htaf (rate)"],
        }
    return r


def section(s: dict) -> list[str]:
    f, mm, t, b, enc = s["flops"], s["matmul"], s["torch"], s["bound_ms"], s["encode_ms"]
    rows = [
        [
            n,
            f"{ms:.1f}",
            f"{s['min_ms'][n]:.1f}",
            f"{s['achieved_gflops'][n]:.1f}",
            f"{s['fraction_of_matmul'][n]:.2f}",
        ]
        for n, ms in s["median_ms"].items()
    ]
    rows += [] if t["available"] else [[TORCH, f"not run: {t['reason']}", "", "", ""]]
    ours, frac = s["median_ms"][OURS], s["fraction_of_matmul"][OURS]
    sp, goal = s.get("speedup_vs_snntorch"), TARGETS["snntorch_speedup"]
    return [
        *harness.title(__doc__),
        f"784-{s['hidden']}-10, T = {s['num_steps']}, batch {s['batch']}, {s['params']:,} "
        f"parameters; JAX on {s['jax_device']}; "
        + (
            f"snnTorch {t['snntorch']} on torch {t['torch']} ({t['device']}, {t['threads']} "
            "threads)"
            if t["available"]
            else f"snnTorch not run: {t['reason']}"
        )
        + f"; median of {s['repeats']} steps.",
        "",
        *harness.method(__doc__),
        *harness.table(
            ["contender", "median ms", "min ms", "GFLOP/s", "fraction of matmul peak"], rows
        ),
        "",
        f"Matmul peak, same rounds: **{mm['gflops']:.1f} GFLOP/s** (by shape: "
        + ", ".join(f"{g:.1f} ({n.removeprefix('matmul ')})" for n, g in mm["by_shape"].items())
        + f"). Step FLOPs: forward {f['forward'] / 1e9:.2f} G; forward+backward "
        f"{f['exact'] / 1e9:.2f} G exact vs {f['nominal'] / 1e9:.2f} G nominal; direct input "
        f"{f['direct_exact'] / 1e9:.2f} G.",
        "",
        *(
            [
                f"- **Speed-up vs snnTorch, identical network (atan): "
                f"{sp['identical network (atan)']:.2f}×** ({s['median_ms'][TORCH]:.1f} ms / "
                f"{ours:.1f} ms; target ≥ {goal}×: "
                f"{harness.verdict(sp['identical network (atan)'] >= goal)}); with HTAF as the "
                f"surrogate: {sp['htaf']:.2f}×."
            ]
            if sp
            else []
        ),
        f"- **Fraction of matmul throughput: {frac:.2f}** (target ≥ "
        f"{TARGETS['matmul_fraction']}: {harness.verdict(frac >= TARGETS['matmul_fraction'])}).",
        f"- Where a JAX step's time goes (components timed alone, same rounds): matmuls at "
        f"peak {b['matmuls at peak']:.1f} ms + Bernoulli rate code {b['rate encode']:.1f} ms "
        "(threefry"
        + (
            f"; torch's `spikegen.rate`: {enc['torch rate encode only']:.1f} ms"
            if "torch rate encode only" in enc
            else ""
        )
        + f") + LIF scan forward+backward {b['LIF scan fwd+bwd']:.1f} ms = "
        f"{sum(b.values()):.1f} ms, of a measured {ours:.1f} ms; the rest is Adam, the "
        "readout, loss and smaller ops. Without the rate code the step would be at "
        f"{s['fraction_of_matmul_without_encode'][OURS]:.2f} of the matmul peak.",
        f"- **Direct (constant-current) input: {s['direct_speedup']:.2f}× faster** than rate "
        f"input (matmul FLOPs {s['direct_flop_ratio']:.1f}× fewer).",
        f"- HTAF vs atan surrogate inside the step: {s['htaf_vs_atan_cost']:.3f}× the time "
        "(the surrogates differ only in elementwise work).",
        "",
    ]


def main(argv=None):
    return harness.main(argv, __doc__, measure, section)


if __name__ == "__main__":
    main()
