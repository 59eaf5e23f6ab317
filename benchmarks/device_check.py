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
import optax

from benchmarks import harness, htaf_throughput, pipeline
from benchmarks.snn_step import synthetic_batch
from htaf_jax.models import build_model
from htaf_jax.train import step as step_lib

# per-device batch, log2 of HTAF's array size, repeats, train steps, (SNN width, T),
# (ICBM backbone widths, concepts)
SIZES = {
    "small": dict(batch_per_device=4, log2n=14, repeats=3, steps=3, snn=(64, 4), icbm=((64,), 16)),
    "full": dict(
        batch_per_device=128, log2n=24, repeats=20, steps=30, snn=(1000, 25), icbm=((512, 256), 128)
    ),
}
DP_CHECK_STEPS = 3
DP_TOLERANCE = 1e-5  # float32 rounding of a mean over devices vs over one batch


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
    batches = [synthetic_batch(batch_per_device * n, s) for s in range(DP_CHECK_STEPS)]
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
        n,
        [synthetic_batch(batch_per_device * n)],
        steps,
        warmup=1,
        model=model,
        tx=optax.adam(1e-3),
    )
    return {
        "model": model_config,
        "devices": n,
        "global_batch": batch_per_device * n,
        "steps_per_s": r["steps_per_s"],
        "images_per_s": r["images_per_s"],
    }


def _say(text: str) -> None:
    print(text, flush=True)


def run(size: str = "full") -> dict:
    s, t0, devices = SIZES[size], time.perf_counter(), jax.devices()
    listed = [
        dict(id=d.id, kind=str(d.device_kind), platform=d.platform, process_index=d.process_index)
        for d in devices
    ]
    out: dict = {"size": size}
    out["device"] = {
        "backend": jax.default_backend(),
        "process_count": jax.process_count(),
        "device_count": len(devices),
        "local_device_count": jax.local_device_count(),
        "devices": listed,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "date_utc": harness.utc_now(),
    }
    _say(f"{len(devices)} device(s): {sorted({str(d.device_kind) for d in devices})}")
    dp = out["data_parallel"] = data_parallel_check(s["batch_per_device"])
    verdict = "ok" if dp["ok"] else "MISMATCH"
    _say(f"1 vs {dp['devices']} devices: max |Δparam| {dp['max_param_diff']:.2e} ({verdict})")
    out["htaf"] = htaf_throughput.measure(log2n=s["log2n"], repeats=s["repeats"])
    ratio = out["htaf"]["speed_ratio_htaf_over"]["jax.nn.sigmoid"]
    _say(f"htaf fwd+bwd speed ratio vs jax.nn.sigmoid: {ratio:.3f}")
    (hidden, num_steps), (widths, concepts) = s["snn"], s["icbm"]
    configs = {
        "snn_step": dict(name="snn_mlp", encoding="direct", hidden=(hidden,), num_steps=num_steps),
        "icbm_step": dict(
            name="icbm", backbone="mlp", num_concepts=concepts, backbone_kwargs={"widths": widths}
        ),
    }
    for key, config in configs.items():
        r = out[key] = step_rate(config, s["batch_per_device"], s["steps"])
        _say(f"{key}: {r['steps_per_s']:.1f} steps/s, {r['images_per_s']:.0f} images/s")
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
