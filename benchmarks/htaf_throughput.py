"""Forward+backward throughput of htaf vs jax.nn.sigmoid vs plain autodiff of
the same composite, side by side in one run.

    python -m benchmarks.htaf_throughput [--log2n 24] [--repeats 20] [--json OUT]

Each contender computes grad(sum(f(x))) on the same 2^log2n float32 array,
jitted; we report the median of interleaved repeats (rounds alternate between
contenders, so a noisy neighbour hurts all of them alike) and ratios to htaf.
"""
from __future__ import annotations

import platform
import statistics
import time

import jax
import jax.numpy as jnp

from benchmarks import cli
import htaf_jax as H


def contenders(alpha: float = 4.0, beta: float = 1.0):
    k = alpha * beta
    return {
        "htaf (custom VJP)": lambda x: H.htaf(x, alpha, beta),
        "composite autodiff": lambda x: jax.nn.sigmoid(alpha * jnp.tanh(beta * x)),
        "jax.nn.sigmoid": lambda x: jax.nn.sigmoid(k * x),
    }


def measure(log2n: int = 24, repeats: int = 20, seed: int = 0) -> dict:
    n = 2**log2n
    x = jax.random.normal(jax.random.key(seed), (n,), jnp.float32) * 4.0
    fns = {
        name: jax.jit(jax.value_and_grad(lambda v, f=f: jnp.sum(f(v))))
        for name, f in contenders().items()
    }
    for f in fns.values():  # compile and warm up
        jax.block_until_ready(f(x))
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(x))
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    ref = med["htaf (custom VJP)"]
    return {
        "n": n,
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.default_backend(),
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
        "median_s": med,
        "values_per_s": {name: n / t for name, t in med.items()},
        # > 1 means htaf is faster than the contender
        "speed_ratio_htaf_over": {name: t / ref for name, t in med.items()},
    }


def main(argv=None):
    args = cli.parse(argv, __doc__, log2n=(24, "log2 of the number of values"),
                     repeats=(20, "timed repeats (median)"),
                     json=(None, "also write the result here"))
    r = measure(args.log2n, args.repeats)
    print(f"fwd+bwd on 2^{args.log2n} float32 values, {r['platform']} ({r['device']}), median of {args.repeats}")
    for name, t in r["median_s"].items():
        print(f"  {name:22s} {t * 1e3:9.2f} ms  {r['values_per_s'][name] / 1e6:9.1f} M values/s  "
              f"htaf speed ratio {r['speed_ratio_htaf_over'][name]:.3f}")
    cli.write_json(args.json, r)
    return r


if __name__ == "__main__":
    main()
