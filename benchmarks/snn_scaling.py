"""Spiking neurons: cost per time step against T

    python -m benchmarks.snn_scaling [--repeats 5] [--option-repeats 7] [--json OUT]

Forward+backward (``jax.value_and_grad`` of the summed spikes with respect to the
currents and the layer's parameters; of a weighted sum for the leaky integrator) of one
layer over (T, B, n) currents, or one (B, n) current for T steps (direct input,
``num_steps=T``; the gradient is the current's), jitted. Ours: the ``htaf_jax.linen``
neurons with their defaults (subtract reset in the same step, HTAF); Spyx 1.0's ``nn.LIF`` in
``spyx.nn.run`` (its default surrogate) and snnTorch's ``Leaky`` in its tutorial loop;
``htaf_jax.spiking.leaky_integrate`` (a sequential ``lax.scan``) beside the same
recurrence as a ``jax.lax.associative_scan``. Every (row, T) of a table is timed in the
same rounds (interleaved, rotating); ms per step = median / T, and its max/min over T is
1 when the cost is linear in T.
"""

from __future__ import annotations

import itertools
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks import harness
from htaf_jax import linen
from htaf_jax.spiking import leaky_integrate

T_VALUES, OPTION_T = (125, 250, 500, 1000), (125, 1000)
NEURONS = ("LIF", "IF", "Synaptic", "RecurrentLIF", "ALIF")
SPYX, TORCH = "spyx LIF", "snntorch Leaky"
SEQUENTIAL, PARALLEL = "leaky_integrate (lax.scan)", "leaky_integrate (associative_scan)"
DIRECT = ", direct input"  # one (B, n) current for T steps (num_steps=T)
FLAT_TARGET, DEFAULT_TARGET = 1.3, 1.2  # max/min per step over T; default / fastest option


def associative_leaky_integrate(currents: jax.Array, beta) -> jax.Array:
    """U[t] = β·U[t−1] + I[t], U[−1] = 0, as a parallel prefix scan over the affine maps
    U ↦ a·U + b: composing (a_i, b_i) then (a_j, b_j) gives (a_j·a_i, a_j·b_i + b_j)."""
    decay = jnp.broadcast_to(jnp.asarray(beta, currents.dtype), currents.shape)
    return jax.lax.associative_scan(
        lambda p, q: (p[0] * q[0], q[0] * p[1] + q[1]), (decay, currents)
    )[1]


def lif_options() -> list[dict]:
    """Every valid combination of the LIF's reset and firing options (fire_first needs
    reset_delay)."""
    return [
        dict(reset=r, reset_delay=d, fire_first=f, detach_reset=dr, spike_at_threshold=s)
        for r, d, f, dr, s in itertools.product(
            ("subtract", "zero"), (False, True), (False, True), (True, False), (True, False)
        )
        if d or not f
    ]


def option_label(o: dict) -> str:
    return ", ".join(
        [o["reset"], "delayed" if o["reset_delay"] else "same-step"]
        + ["fire_first"] * o["fire_first"]
        + ["detach" if o["detach_reset"] else "no detach"]
        + ["H(0)=1" if o["spike_at_threshold"] else "H(0)=0"]
    )


def _ours(module: linen.LIF, currents: jax.Array, steps: int | None = None) -> Callable[[], None]:
    """``steps``: direct input, one (B, n) current for that many steps."""
    params = module.init(jax.random.key(0), currents[:2], steps)
    loss = lambda p, c: jnp.sum(module.apply(p, c, steps)[0])
    grad = jax.jit(jax.value_and_grad(loss, (0, 1)))
    return lambda: jax.block_until_ready(grad(params, currents))


def _integrator(fn, currents: jax.Array) -> Callable[[], None]:
    # The weights are an argument: the gradient of this linear map does not depend on the
    # currents, and XLA would fold a closed-over constant's into the compiled program.
    weights = jnp.linspace(-1.0, 1.0, currents.size).reshape(currents.shape)
    grad = jax.jit(jax.value_and_grad(lambda c, w: jnp.sum(fn(c, 0.9) * w)))
    return lambda: jax.block_until_ready(grad(currents, weights))


def _spyx(currents: jax.Array) -> Callable[[], None]:
    import spyx  # a peer (the bench extra): imported only to time it

    lif = spyx.nn.LIF(currents.shape[2:], beta=np.float32(0.9), rngs=nnx.Rngs(0))
    grad = nnx.jit(
        lambda m, c: nnx.value_and_grad(lambda m, c: jnp.sum(spyx.nn.run(m, c)[0]), argnums=(0, 1))(
            m, c
        )
    )
    return lambda: jax.block_until_ready(grad(lif, currents))


def _torch(currents: np.ndarray) -> Callable[[], None]:
    import snntorch as snn  # a peer (the bench extra): imported only to time it
    import torch  # a peer (the bench extra): imported only to time it

    torch.set_num_threads(harness.cpu_threads())
    lif, x = snn.Leaky(beta=0.9), torch.from_numpy(currents).requires_grad_()

    def run():
        mem, out = lif.reset_mem(), []
        for t in range(x.shape[0]):
            spk, mem = lif(x[t], mem)
            out.append(spk)
        torch.stack(out).sum().backward()
        x.grad = None

    return run


def _per_step(fns: dict, repeats: int) -> tuple[dict[str, dict[str, float]], dict]:
    """({row: {T: ms per step}}, the seconds of every "row@T" per round) from one
    interleaved timing of every (row, T)."""
    times = harness.time_interleaved(
        {f"{row}@{t}": fn for (row, t), fn in fns.items()}, repeats, warmup=1, rotate=True
    )
    out: dict[str, dict[str, float]] = {}
    for row, t in fns:
        out.setdefault(row, {})[str(t)] = statistics.median(times[f"{row}@{t}"]) / t * 1e3
    return out, times


def measure(
    t_values=T_VALUES,
    option_t=OPTION_T,
    batch: int = 16,
    n: int = 512,
    repeats: int = 5,
    option_repeats: int = 7,
    peers: bool = True,
    options: list[dict] | None = None,
) -> dict:
    """The two tables (module docstring); ``options``: the LIF option combinations of the
    second (default: every one, ``lif_options``)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    longest = (0.5 * rng.normal(size=(max(t_values + option_t), batch, n)) + 0.3).astype(np.float32)
    cur = {t: jnp.asarray(longest[:t]) for t in set(t_values + option_t)}
    skipped = (
        {SPYX: harness.unavailable("spyx"), TORCH: harness.unavailable("snntorch")} if peers else {}
    )
    fns = {}
    for t in t_values:
        for name in NEURONS:
            fns[name, t] = _ours(getattr(linen, name)(), cur[t])
        for name in NEURONS:
            fns[f"{name}{DIRECT}", t] = _ours(getattr(linen, name)(), cur[t][0], t)
        fns[SEQUENTIAL, t] = _integrator(leaky_integrate, cur[t])
        fns[PARALLEL, t] = _integrator(associative_leaky_integrate, cur[t])
        if peers and skipped[SPYX] is None:
            fns[SPYX, t] = _spyx(cur[t])
        if peers and skipped[TORCH] is None:
            fns[TORCH, t] = _torch(longest[:t])
    rows, _ = _per_step(fns, repeats)
    options = {option_label(o): o for o in (options or lif_options())}
    by_option = {
        (k, t): _ours(linen.LIF(**o), cur[t]) for k, o in options.items() for t in option_t
    }
    opt_rows, opt_times = _per_step(by_option, option_repeats)
    flat = {k: max(v.values()) / min(v.values()) for k, v in {**rows, **opt_rows}.items()}
    at = str(max(option_t))  # JSON keys are strings
    fastest = min(opt_rows, key=lambda k: opt_rows[k][at])
    # Each option's time over the fastest's in the same round, median over rounds: a slow
    # stretch of the machine slows a whole round, not one row.
    over, over_range = harness.paired({k: opt_times[f"{k}@{at}"] for k in opt_rows}, fastest)
    default = option_label({k: getattr(linen.LIF(), k) for k in lif_options()[0]})
    ours = [*NEURONS, *(f"{n}{DIRECT}" for n in NEURONS), *options]
    steep = sorted(k for k in ours if flat[k] > FLAT_TARGET)
    vs_default = over.get(default)
    return {
        "date_utc": harness.utc_now(),
        "load_avg_1m": harness.load_avg(),
        "wall_s": time.perf_counter() - t0,
        "batch": batch,
        "n": n,
        "t_values": list(t_values),
        "option_t": list(option_t),
        "repeats": repeats,
        "option_repeats": option_repeats,
        "jax_device": harness.jax_device(),
        "skipped": {k: v for k, v in skipped.items() if v},
        "ms_per_step": rows,
        "max_over_min": {k: flat[k] for k in rows},
        "options": options,
        "default_option": default,
        "option_ms_per_step": opt_rows,
        "option_max_over_min": {k: flat[k] for k in opt_rows},
        "option_over_fastest": over,
        "option_over_fastest_range": over_range,
        "parallel_over_sequential": {
            str(t): rows[PARALLEL][str(t)] / rows[SEQUENTIAL][str(t)] for t in t_values
        },
        "targets": {
            "flat": {"target": FLAT_TARGET, "met": not steep, "over": steep},
            "default_vs_fastest": {
                "target": DEFAULT_TARGET,
                "value": vs_default,
                "met": vs_default is not None and vs_default <= DEFAULT_TARGET,
            },
        },
    }


def section(s: dict) -> list[str]:
    ts, ots, tg = s["t_values"], s["option_t"], s["targets"]
    ms = lambda v: f"{v:.4f}" if v < 0.1 else f"{v:.3f}"
    rows = [
        [name, *(ms(per[str(t)]) for t in ts), f"{s['max_over_min'][name]:.2f}"]
        for name, per in s["ms_per_step"].items()
    ]
    rows += [[name, f"not run: {why}", *[""] * len(ts)] for name, why in s["skipped"].items()]
    opt = [
        [
            label + (" (default)" if label == s["default_option"] else ""),
            *(ms(per[str(t)]) for t in ots),
            f"{s['option_max_over_min'][label]:.2f}",
            harness.paired_text(
                s["option_over_fastest"][label], s["option_over_fastest_range"][label]
            ),
        ]
        for label, per in s["option_ms_per_step"].items()
    ]
    dv, flat = tg["default_vs_fastest"], tg["flat"]
    per_t, at = [f"T = {t}" for t in ots], f" at T = {max(ots)}"
    return [
        *harness.title(__doc__),
        f"B = {s['batch']}, n = {s['n']}, {s['jax_device']}, {s['repeats']} rounds; measured "
        f"{s['date_utc']} by `python -m benchmarks.snn_scaling` (part of `make bench`), "
        f"1-min load average {harness.fmt(s['load_avg_1m'])} at the end, {s['wall_s']:.0f} s.",
        "",
        *harness.method(__doc__),
        *harness.table(["ms per step", *(f"T = {t}" for t in ts), "max/min per step over T"], rows),
        "",
        f"- **Every neuron of ours flat within {flat['target']}× over T (the option "
        f"combinations below included): {'met' if flat['met'] else 'missed'}**"
        + (f" (over: {'; '.join(flat['over'])})" if flat["over"] else "")
        + ".",
        "- Associative over sequential scan of the leaky integrator, time ratio (below 1: "
        "the parallel scan pays): "
        + ", ".join(f"{s['parallel_over_sequential'][str(t)]:.2f} at T = {t}" for t in ts)
        + ".",
        "",
        f"Our LIF in every combination of its options at T = {' and '.join(map(str, ots))}, "
        f"{s['option_repeats']} rounds, all in the same rounds; × fastest (paired): at T = "
        f"{max(ots)}, the median over rounds of the combination's time over the fastest's "
        "(by median) in the same round, lowest and highest round in brackets.",
        "",
        *harness.table(
            ["LIF options", *per_t, "max/min per step over T", f"× fastest (paired){at}"], opt
        ),
        "",
        f"- **Default options within {dv['target']}× of the fastest at T = {max(ots)}: "
        f"{harness.fmt(dv['value'])}× ({'met' if dv['met'] else 'missed'})**.",
        "",
    ]


def main(argv=None):
    return harness.main(argv, __doc__, measure, section)


if __name__ == "__main__":
    main()
