"""Checks the devices of a new host: what they are, that the data-parallel step on
all local devices equals the one-device step, and how fast the main kernels run.

    python -m benchmarks.device_check                 # full sizes; the first thing to run on a GPU/TPU host
    python -m benchmarks.device_check --small         # seconds on a CPU (what `make test` runs)
    make device-check

Writes one JSON (default ``results/device_check/<backend>.json``): the device
description, the 1-vs-N check (max |Δparam| after a few SGD steps, whose size
follows the gradient's scale, so a wrong gradient average shows), HTAF
forward+backward throughput against ``jax.nn.sigmoid``, and the steps/s and
images/s of the SNN and ICBM train steps on all local devices.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time

import jax
import numpy as np
import optax

from benchmarks import cli, htaf_throughput
from htaf_jax.models import build_model
from htaf_jax.train import step as step_lib

SIZES = {
    "small": {"batch_per_device": 4, "log2n": 14, "repeats": 3, "steps": 3,
              "snn": {"hidden": (64,), "num_steps": 4}, "icbm": {"widths": (64,), "concepts": 16}},
    "full": {"batch_per_device": 128, "log2n": 24, "repeats": 20, "steps": 30,
             "snn": {"hidden": (1000,), "num_steps": 25}, "icbm": {"widths": (512, 256),
                                                                   "concepts": 128}},
}
IMAGE_SHAPE = (28, 28, 1)
DP_CHECK_STEPS = 3
DP_TOLERANCE = 1e-5  # float32 rounding of a mean over devices vs over one batch


def describe_devices() -> dict:
    devices = jax.devices()
    return {"backend": jax.default_backend(), "process_count": jax.process_count(),
            "device_count": len(devices), "local_device_count": jax.local_device_count(),
            "devices": [{"id": d.id, "kind": str(d.device_kind), "platform": d.platform,
                         "process_index": d.process_index} for d in devices],
            "jax": jax.__version__, "python": platform.python_version(),
            "host": platform.node(), "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def _batch(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n,) + IMAGE_SHAPE).astype(np.float32),
            rng.integers(0, 10, n).astype(np.int32))


def _trained(model, tx, num_devices: int, batches, steps: int):
    mesh = step_lib.make_mesh(num_devices)
    state = step_lib.init_state(model, tx, jax.random.key(0), IMAGE_SHAPE)
    state, rng = step_lib.replicate((state, jax.random.key(1)), mesh)
    train_step = step_lib.make_train_step(model, tx, mesh)
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
    many = _trained(model, tx, n, batches, DP_CHECK_STEPS)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(one),
                                                           jax.tree.leaves(many)))
    moved = _trained(model, tx, 1, batches, 0)
    change = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(one),
                                                             jax.tree.leaves(moved)))
    return {"devices": n, "steps": DP_CHECK_STEPS, "optimizer": "sgd(0.5)",
            "max_param_diff": diff, "max_param_change": change, "tolerance": DP_TOLERANCE,
            "ok": diff <= DP_TOLERANCE * max(1.0, change)}


def step_rate(model_config: dict, batch_per_device: int, steps: int) -> dict:
    """Steps/s and images/s of the engine's train step on all local devices."""
    n = jax.local_device_count()
    model = build_model(model_config, num_classes=10, total_train_steps=steps + 2)
    tx = optax.adam(1e-3)
    mesh = step_lib.make_mesh(n)
    state = step_lib.init_state(model, tx, jax.random.key(0), IMAGE_SHAPE)
    state, rng = step_lib.replicate((state, jax.random.key(1)), mesh)
    train_step = step_lib.make_train_step(model, tx, mesh)
    batch = step_lib.shard_batch(_batch(batch_per_device * n), mesh)
    state, _ = train_step(state, *batch, rng)  # compile
    jax.block_until_ready(state)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        state, _ = train_step(state, *batch, rng)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {"model": model_config, "devices": n, "global_batch": batch_per_device * n,
            "median_step_s": median, "steps_per_s": 1.0 / median,
            "images_per_s": batch_per_device * n / median}


def run(size: str = "full") -> dict:
    s = SIZES[size]
    t0 = time.perf_counter()
    out = {"size": size, "device": describe_devices()}
    print(f"{out['device']['device_count']} device(s): "
          f"{sorted({d['kind'] for d in out['device']['devices']})}", flush=True)
    out["data_parallel"] = data_parallel_check(s["batch_per_device"])
    print(f"1 vs {out['data_parallel']['devices']} devices: max |Δparam| "
          f"{out['data_parallel']['max_param_diff']:.2e} "
          f"({'ok' if out['data_parallel']['ok'] else 'MISMATCH'})", flush=True)
    out["htaf"] = htaf_throughput.measure(log2n=s["log2n"], repeats=s["repeats"])
    print("htaf fwd+bwd speed ratio vs jax.nn.sigmoid: "
          f"{out['htaf']['speed_ratio_htaf_over']['jax.nn.sigmoid']:.3f}", flush=True)
    snn = {"name": "snn_mlp", "encoding": "direct", **s["snn"]}
    icbm = {"name": "icbm", "backbone": "mlp", "backbone_kwargs": {"widths": s["icbm"]["widths"]},
            "num_concepts": s["icbm"]["concepts"]}
    for key, config in (("snn_step", snn), ("icbm_step", icbm)):
        out[key] = step_rate(config, s["batch_per_device"], s["steps"])
        print(f"{key}: {out[key]['steps_per_s']:.1f} steps/s, "
              f"{out[key]['images_per_s']:.0f} images/s", flush=True)
    out["wall_s"] = time.perf_counter() - t0
    return out


def main(argv=None) -> dict:
    args = cli.parse(argv, __doc__, small=(False, "tiny sizes (seconds on a CPU)"),
                     out=(None, "JSON path (default results/device_check/<backend>[_small].json)"))
    result = run("small" if args.small else "full")
    path = args.out or os.path.join(
        "results", "device_check",
        f"{jax.default_backend()}{'_small' if args.small else ''}.json")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2, default=str)
    print(f"wrote {path}")
    if not result["data_parallel"]["ok"]:
        raise SystemExit("the data-parallel step does not equal the one-device step")
    return result


if __name__ == "__main__":
    main()
