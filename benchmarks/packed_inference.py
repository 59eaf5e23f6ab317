"""Bit-packed binary inference

    python -m benchmarks.packed_inference [--batch 1000] [--repeats 20] [--json OUT]

``BinaryMLP`` 784-1024-1024-10 (±1 weights, XNOR-Net scales, BatchNorm): the float
forward with hard binarisation against ``htaf_jax.models.bnn_export.packed_mlp_logits``
(±1 activations packed 32 to a uint32 word, ``bitwise_xor`` + ``population_count``; the
first layer reads real pixels, a float product in both); and one 1024→1024 binary layer,
a float32 matmul with the ±1 kernel against ``packing.packed_dense``. Jitted, rounds
interleaved, medians; the logits are compared before timing. Whichever is faster is
reported as measured.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import harness
from htaf_jax import packing as P
from htaf_jax.binary import quantized_dense, sign_quantizer
from htaf_jax.models.bnn import BinaryMLP
from htaf_jax.models.bnn_export import (
    pack_binary_mlp,
    pack_binary_params,
    packed_memory_report,
    packed_mlp_logits,
)


def measure(batch: int = 1000, repeats: int = 20) -> dict:
    key = jax.random.key(0)
    images = jax.random.normal(key, (batch, 28, 28, 1))
    model = BinaryMLP(hidden=(1024, 1024))
    variables = jax.jit(lambda k: model.init(k, images[:2], train=False))(key)
    # Non-trivial running statistics, as a trained network has.
    variables = {
        **variables,
        "batch_stats": jax.tree.map(
            lambda v: v + jax.random.uniform(key, v.shape), variables["batch_stats"]
        ),
    }
    float_fn = jax.jit(lambda v, x: model.apply(v, x, train=False))
    packed = jax.jit(lambda v: pack_binary_mlp(model, v))(variables)
    packed_fn = jax.jit(packed_mlp_logits)
    float_logits, packed_logits = float_fn(variables, images), packed_fn(packed, images)
    net = harness.time_calls(
        {"float": (float_fn, (variables, images)), "packed": (packed_fn, (packed, images))}, repeats
    )
    kernel = variables["params"]["dense1"]["latent_kernel"]
    acts = jnp.where(jax.random.bernoulli(key, 0.5, (batch, 1024)), 1.0, -1.0)
    sign = sign_quantizer("htaf")
    float_layer = jax.jit(lambda a, w: quantized_dense(a, w, kernel_quantizer=sign, use_scale=True))
    packed_args = (P.pack_signs(acts), P.pack_dense_kernel(kernel, use_scale=True))
    one = harness.time_calls(
        {"float": (float_layer, (acts, kernel)), "packed": (jax.jit(P.packed_dense), packed_args)},
        repeats,
    )
    return {
        "device": str(jax.devices()[0].device_kind),
        "batch": batch,
        "repeats": repeats,
        "equal_argmax": bool(
            jnp.all(jnp.argmax(float_logits, -1) == jnp.argmax(packed_logits, -1))
        ),
        "max_abs_logit_difference": float(jnp.max(jnp.abs(float_logits - packed_logits))),
        "mlp_seconds": net,
        "mlp_packed_speedup": net["float"] / net["packed"],
        "layer_seconds": one,
        "layer_packed_speedup": one["float"] / one["packed"],
        "weight_memory": packed_memory_report(
            variables["params"], pack_binary_params(variables["params"], np.uint32)
        ),
    }


def section(k: dict) -> list[str]:
    mem = k["weight_memory"]
    rows = [
        [
            name,
            f"{k[part]['float'] * 1e3:.2f}",
            f"{k[part]['packed'] * 1e3:.2f}",
            f"{k[part.replace('seconds', 'packed_speedup')]:.2f}×",
        ]
        for name, part in (
            ("whole MLP", "mlp_seconds"),
            ("one 1024→1024 binary layer", "layer_seconds"),
        )
    ]
    return [
        *harness.title(__doc__),
        f"Batch {k['batch']}, {k['device']}, {k['repeats']} rounds.",
        "",
        *harness.method(__doc__),
        *harness.table(["", "float ms", "packed ms", "packed speed-up"], rows),
        "",
        f"- Same argmax on every example: **{k['equal_argmax']}**; largest |logit "
        f"difference| {k['max_abs_logit_difference']:.2e} (the real-valued scales and "
        "BatchNorm round differently; the ±1 sums are exact integers).",
        f"- Weight memory: {mem['ratio']:.1f}× smaller packed "
        f"({mem['ratio_with_scales']:.1f}× counting the float32 per-channel scales).",
        "",
    ]


def main(argv=None):
    return harness.main(argv, __doc__, measure, section)


if __name__ == "__main__":
    main()
