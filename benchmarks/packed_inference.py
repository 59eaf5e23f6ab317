"""Packed XNOR/popcount inference vs the float forward of the same binary network.

    python -m benchmarks.packed_inference [--batch 1000] [--repeats 20] [--json OUT]

Two comparisons in one run, both jitted, on this machine's JAX backend:

- ``BinaryMLP(hidden=(1024, 1024))`` on 28×28 inputs: the float forward
  (``model.apply``) vs ``bnn_export.packed_mlp_logits`` (the first layer reads
  real pixels, so it is a float product in both);
- one hidden layer, 1024 ±1 inputs → 1024 outputs: a float32 matmul with the
  ±1 kernel vs ``packing.packed_dense`` on packed words.

Weight memory: float32 latent kernels vs their packed sign bits (plus the
per-channel float32 scales). The logits are checked equal before timing.
Whichever is faster is reported as measured: XLA's CPU matmul is highly
tuned, while the popcount path runs as generic elementwise ops.
"""
from __future__ import annotations

import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import cli
from htaf_jax import packing as P
from htaf_jax.binary import quantized_dense, sign_quantizer
from htaf_jax.models.bnn import BinaryMLP
from htaf_jax.models.bnn_export import (pack_binary_mlp, pack_binary_params, packed_memory_report,
                                        packed_mlp_logits)


def _median_times(fns: dict, args: dict, repeats: int) -> dict[str, float]:
    for name, f in fns.items():                      # compile and warm up
        jax.block_until_ready(f(*args[name]))
    times = {name: [] for name in fns}
    for _ in range(repeats):                         # interleaved: noise hits both alike
        for name, f in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(*args[name]))
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def measure(batch: int = 1000, repeats: int = 20, seed: int = 0) -> dict:
    key = jax.random.key(seed)
    images = jax.random.normal(key, (batch, 28, 28, 1))
    model = BinaryMLP(hidden=(1024, 1024))
    variables = jax.jit(lambda k: model.init(k, images[:2], train=False))(key)
    # Non-trivial running statistics, as a trained network has.
    variables = {**variables, "batch_stats": jax.tree.map(
        lambda v: v + jax.random.uniform(key, v.shape), variables["batch_stats"])}
    float_fn = jax.jit(lambda v, x: model.apply(v, x, train=False))
    packed = jax.jit(lambda v: pack_binary_mlp(model, v))(variables)
    packed_fn = jax.jit(packed_mlp_logits)
    float_logits, packed_logits = float_fn(variables, images), packed_fn(packed, images)
    equal_argmax = bool(jnp.all(jnp.argmax(float_logits, -1) == jnp.argmax(packed_logits, -1)))
    max_logit_diff = float(jnp.max(jnp.abs(float_logits - packed_logits)))
    net = _median_times({"float": float_fn, "packed": packed_fn},
                        {"float": (variables, images), "packed": (packed, images)}, repeats)

    kernel = variables["params"]["dense1"]["latent_kernel"]
    acts = jnp.where(jax.random.bernoulli(key, 0.5, (batch, 1024)), 1.0, -1.0)
    layer = P.pack_dense_kernel(kernel, use_scale=True)
    sign = sign_quantizer("htaf")
    one = _median_times(
        {"float": jax.jit(lambda a, w: quantized_dense(a, w, kernel_quantizer=sign, use_scale=True)),
         "packed": jax.jit(P.packed_dense)},
        {"float": (acts, kernel), "packed": (P.pack_signs(acts), layer)}, repeats)

    memory = packed_memory_report(variables["params"],
                                  pack_binary_params(variables["params"], np.uint32))
    return {
        "device": str(jax.devices()[0].device_kind), "batch": batch, "repeats": repeats,
        "equal_argmax": equal_argmax, "max_abs_logit_difference": max_logit_diff,
        "mlp_seconds": net, "mlp_packed_speedup": net["float"] / net["packed"],
        "layer_seconds": one, "layer_packed_speedup": one["float"] / one["packed"],
        "weight_memory": memory,
    }


def main(argv=None) -> dict:
    args = cli.parse(argv, __doc__, batch=(1000, "images per forward"),
                     repeats=(20, "timed repeats (median)"),
                     json=(None, "also write the results here"))
    result = measure(args.batch, args.repeats)
    print(json.dumps(result, indent=2))
    cli.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
