"""The first command on a new host: what its devices are, that the data-parallel step on
all local devices equals the one-device step, and how fast the main kernels run.

    python -m benchmarks.device_check [--small] [--out JSON]     # or: make device-check

Writes ``results/device_check/<backend>[_small].json``: the devices, the 1-vs-N check
(max |Δparam| after a few SGD steps, whose size follows the gradient's scale, so a wrong
gradient average shows), HTAF forward+backward against ``jax.nn.sigmoid``, and the
steps/s and images/s of the SNN and ICBM train steps on all local devices. ``--small``:
seconds on a CPU.
"""

from __future__ import annotations

import os
import platform
import time

import jax
import numpy as np
import optax

from benchmarks import harness, htaf_throughput, pipeline
from htaf_jax.models import build_model
from htaf_jax.train import step as step_lib

SIZES = {
    "small": {
        "batch_per_device": 4,
        "log2n": 14,
        "repeats": 3,
        "steps": 3,
        "snn": {"hidden": (64,), "num_steps": 4},
        "icbm": {"widths": (64,), "concepts": 16},
    },
    "full": {
        "batch_per_device": 128,
        "log2n": 24,
        "repeats": 20,
        "steps": 30,
        "snn": {"hidden": (1000,), "num_steps": 25},
        "icbm": {"widths": (512, 256), "concepts": 128},
    },
}
IMAGE_SHAPE = (28, 28, 1)
DP_CHECK_STEPS = 3
DP_TOLERANCE = 1e-5  # float32 rounding of a mean over devices vs over one batch


def _batch(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n,) + IMAGE_SHAPE).astype(np.float32),
        rng.integers(0, 10, n).astype(np.int32),
    )


def _trained(model, tx, num_devices: int, batches, steps: int):
    mesh, train_step, state, rng = pipeline.setup(num_devices, model=model, tx=tx)
    for i in range(steps):
        state, _ = train_step(state, *step_lib.shard_batch(batches[i % len(batches)], mesh), rng)
    return jax.device_get(state.params)


def data_parallel_check(batch_per_device: int) -> dict:
    """Params after a few SGD steps on 1 device vs on every local device, same global batches."""
    n = jax.local_device_count()
    model = build_model({"name": "mlp", "hidden_sizes": (64,)}, num_classes=10)
    tx = optax.sgd(0.5)
    batches = [_batch(batch_per_device * n, seed=s) for s in range(DP_CHECK_STEPS)]
    one = _trained(model, tx, 1, batches, DP_CHECK_STEPS)
    diff = pipeline.max_param_diff(one, _trained(model, tx, n, batches, DP_CHECK_STEPS))
    change = pipeline.max_param_diff(one, _trained(model, tx, 1, batches, 0))
    return {
        "devices": n,
        "steps": DP_CHECK_STEPS,
        "optimizer": "sgd(0.5)",
        "max_param_diff": diff,
        "max_param_change": change,
        "tolerance": DP_TOLERANCE,
        "ok": diff <= DP_TOLERANCE * max(1.0, change),
    }


def step_rate(model_config: dict, batch_per_device: int, steps: int) -> dict:
    """Steps/s and images/s of the engine's train step on all local devices."""
    n = jax.local_device_count()
    model = build_model(model_config, num_classes=10, total_train_steps=steps + 2)
    r = pipeline.step_rate(
        n, [_batch(batch_per_device * n)], steps, warmup=1, model=model, tx=optax.adam(1e-3)
    )
    return {
        "model": model_config,
        "devices": n,
        "global_batch": batch_per_device * n,
        "steps_per_s": r["steps_per_s"],
        "images_per_s": r["images_per_s"],
    }


def run(size: str = "full") -> dict:
    s, t0 = SIZES[size], time.perf_counter()
    devices = jax.devices()
    out = {
        "size": size,
        "device": {
            "backend": jax.default_backend(),
            "process_count": jax.process_count(),
            "device_count": len(devices),
            "local_device_count": jax.local_device_count(),
            "devices": [
                {
                    "id": d.id,
                    "kind": str(d.device_kind),
                    "platform": d.platform,
                    "process_index": d.process_index,
                }
                for d in devices
            ],
            "jax": jax.__version__,
            "python": platform.python_version(),
            "host": platform.node(),
            "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        },
    }
    print(f"{len(devices)} device(s): {sorted({str(d.device_kind) for d in devices})}", flush=True)
    dp = out["data_parallel"] = data_parallel_check(s["batch_per_device"])
    print(
        f"1 vs {dp['devices']} devices: max |Δparam| {dp['max_param_diff']:.2e} "
        f"({'ok' if dp['ok'] else 'MISMATCH'})",
        flush=True,
    )
    out["htaf"] = htaf_throughput.measure(log2n=s["log2n"], repeats=s["repeats"])
    print(
        "htaf fwd+bwd speed ratio vs jax.nn.sigmoid: "
        f"{out['htaf']['speed_ratio_htaf_over']['jax.nn.sigmoid']:.3f}",
        flush=True,
    )
    configs = {
        "snn_step": {"name": "snn_mlp", "encoding": "direct", **s["snn"]},
        "icbm_step": {
            "name": "icbm",
            "backbone": "mlp",
            "num_concepts": s["icbm"]["concepts"],
            "backbone_kwargs": {"widths": s["icbm"]["widths"]},
        },
    }
    for key, config in configs.items():
        out[key] = step_rate(config, s["batch_per_device"], s["steps"])
        print(
            f"{key}: {out[key]['steps_per_s']:.1f} steps/s, "
            f"{out[key]['images_per_s']:.0f} images/s",
            flush=True,
        )
    out["wall_s"] = time.perf_counter() - t0
    return out


def main(argv=None) -> dict:
    args = harness.parse(
        argv,
        __doc__,
        small=(False, "tiny sizes (seconds on a CPU)"),
        out=(None, "JSON path (default results/device_check/<backend>[_small].json)"),
    )
    result = run("small" if args.small else "full")
    path = args.out or os.path.join(
        "results", "device_check", f"{jax.default_backend()}{'_small' if args.small else ''}.json"
    )
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    harness.write_json(path, result)
    print(f"wrote {path}")
    if not result["data_parallel"]["ok"]:
        raise SystemExit("the data-parallel step does not equal the one-device step")
    return result


if __name__ == "__main__":
    main()
