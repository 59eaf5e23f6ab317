"""Input pipeline vs train step

    python -m benchmarks.pipeline [--batch 128] [--steps 200] [--json OUT]

The engine's reference model (experiments/configs/mlp.py: Dense-ReLU MLP 784-256-128-10,
Adam) on real Fashion-MNIST: the host pipeline (``htaf_jax.data.train_batches``: seeded
shuffle, uint8 → normalised float32 by table lookup, batch) over whole epochs; the
engine's train step (``shard_map`` over a 1-device mesh, chex checks) on batches already
on the device; and both end to end (pipeline → ``shard_batch`` → step).
"""

from __future__ import annotations

import os
import statistics
import time

import jax
import ml_collections
import numpy as np

from benchmarks import harness, snn_step
from htaf_jax import data as data_lib
from htaf_jax.models import build_model
from htaf_jax.train import step as step_lib
from htaf_jax.train.optim import make_optimizer

FAKE_DEVICES = 8
CHECK_STEPS = 20  # the 1-vs-N parameter comparison is made after this many steps
MODEL = {"name": "mlp", "hidden_sizes": (256, 128), "batch_norm": False, "dropout_rate": 0.0}


def reference_config(total_steps: int = 1000) -> ml_collections.ConfigDict:
    """The reference run's model and optimizer fields (experiments/configs/mlp.py on
    base.py's defaults), as ``build_model`` and ``make_optimizer`` read them."""
    return ml_collections.ConfigDict(
        dict(
            seed=0,
            model=dict(MODEL, num_classes=10),
            num_train_steps=total_steps,
            optimizer="adam",
            learning_rate=1e-3,
            schedule="cosine",
            warmup_steps=0,
            grad_clip_norm=0.0,
        )
    )


def pipeline_rate(split, normalizer, batch: int, epochs: int = 3) -> dict:
    """Images/s of ``train_batches`` (median over ``epochs`` passes)."""
    rates = []
    for epoch in range(epochs):
        n, t0 = 0, time.perf_counter()
        for images, _ in data_lib.train_batches(split, normalizer, batch, seed=0, epoch=epoch):
            n += len(images)
        rates.append(n / (time.perf_counter() - t0))
    return {
        "images_per_s": statistics.median(rates),
        "epochs": epochs,
        "batches_per_epoch": n // batch,
    }


def setup(num_devices: int, total_steps: int = 10**6, model=None, tx=None, **step_options):
    """(mesh, the engine's train step, replicated state, rng) of ``model`` and ``tx``, by
    default the reference run's."""
    config = reference_config(total_steps)
    mesh = step_lib.make_mesh(num_devices)
    model = model or build_model(config.model)
    tx = tx or make_optimizer(config, total_steps)
    state = step_lib.init_state(model, tx, jax.random.key(0), (28, 28, 1))
    state, rng = step_lib.replicate((state, jax.random.key(1)), mesh)
    return mesh, step_lib.make_train_step(model, tx, mesh, **step_options), state, rng


def host_read_rates(batches, steps: int, rounds: int = 5) -> dict:
    """Steps/s with and without a host read of the non-finite flag after each step: both
    built and warmed up, then rounds of ``steps`` steps of each (order alternating)."""
    variants = {"host read every step": True, "flag read at boundaries only": False}
    runs = {}
    for name, check in variants.items():
        mesh, train_step, state, rng = setup(1, check_every_step=check)
        sharded = [step_lib.shard_batch(b, mesh) for b in batches]
        runs[name] = [train_step, train_step(state, *sharded[0], rng)[0], rng, sharded]
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        for name in list(variants) if r % 2 == 0 else list(variants)[::-1]:
            train_step, state, rng, sharded = runs[name]
            jax.block_until_ready(state)
            t0 = time.perf_counter()
            for i in range(steps):
                state, _ = train_step(state, *sharded[i % len(sharded)], rng)
            if step_lib.first_nonfinite_step(state) is not None:  # as the loop, at a boundary
                raise FloatingPointError("the benchmark's step went non-finite")
            rates[name].append(steps / (time.perf_counter() - t0))
            runs[name][1] = state
    med = {name: statistics.median(v) for name, v in rates.items()}
    return {
        "steps": steps,
        "rounds": rounds,
        "steps_per_s": med,
        "all_steps_per_s": rates,
        "speedup_without_read": med["flag read at boundaries only"] / med["host read every step"],
    }


def step_memory(batch: int, steps: int, donate: bool) -> dict:
    """The compiled step's memory analysis and the peak after ``steps`` steps, in this process."""
    mesh, train_step, state, rng = setup(1, donate=donate)
    data = step_lib.shard_batch(snn_step.synthetic_batch(batch), mesh)
    a = train_step.jitted.lower(state, *data, rng).compile().memory_analysis()
    for _ in range(steps):
        state, _ = train_step(state, *data, rng)
    jax.block_until_ready(state)
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        peak = ("device memory_stats peak_bytes_in_use", stats["peak_bytes_in_use"])
    else:
        peak = ("process peak RSS (no device memory stats)", harness.peak_rss_mb() * 2**20)
    r = {"donate": donate, "state_bytes": sum(x.nbytes for x in jax.tree.leaves(state))}
    r |= {
        f"{k}_bytes": getattr(a, f"{k}_size_in_bytes")
        for k in ("argument", "output", "alias", "temp")
    }
    # live at once during the step: inputs, outputs not written in place, temporaries
    r["step_bytes"] = r["argument_bytes"] + r["output_bytes"] - r["alias_bytes"] + r["temp_bytes"]
    r["peak"] = {"source": peak[0], "bytes": int(peak[1])}
    return r | {"device_kind": str(mesh.devices.flat[0].device_kind)}


def step_rate(num_devices: int, batches, steps: int, warmup: int = 5, **model_tx) -> dict:
    """Steps/s of the train step (``model_tx``: another model and tx than the reference
    run's) over ``num_devices`` devices, cycling through ``batches`` (sharded before
    timing); the parameters after ``CHECK_STEPS`` and after all steps."""
    mesh, train_step, state, rng = setup(num_devices, steps + warmup, **model_tx)
    sharded = [step_lib.shard_batch(b, mesh) for b in batches]
    checked = None
    for i in range(warmup):
        state, _ = train_step(state, *sharded[i % len(sharded)], rng)
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for i in range(steps):
        state, _ = train_step(state, *sharded[(warmup + i) % len(sharded)], rng)
        if warmup + i + 1 == CHECK_STEPS:  # one host copy inside the timed loop; ~1 ms
            checked = jax.device_get(state.params)
    jax.block_until_ready(state)
    seconds, batch = time.perf_counter() - t0, len(batches[0][0])
    return {
        "devices": num_devices,
        "steps": steps,
        "steps_per_s": steps / seconds,
        "images_per_s": steps * batch / seconds,
        "device_kind": str(mesh.devices.flat[0].device_kind),
        "params": jax.device_get(state.params),
        "params_at_check": checked,
    }


def end_to_end_rate(split, normalizer, batch: int, steps: int) -> dict:
    """Images/s of pipeline → shard_batch → step on one device, as the loop runs them."""
    mesh, train_step, state, rng = setup(1, steps + 1)
    it = data_lib.train_batches(split, normalizer, batch, seed=0, epoch=0)
    state, _ = train_step(state, *step_lib.shard_batch(next(it), mesh), rng)  # compile
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, _ = train_step(state, *step_lib.shard_batch(next(it), mesh), rng)
    jax.block_until_ready(state)
    return {"images_per_s": steps * batch / (time.perf_counter() - t0), "steps": steps}


def max_param_diff(a, b) -> float:
    diffs = jax.tree.map(lambda x, y: np.max(np.abs(np.asarray(x) - np.asarray(y))), a, b)
    return float(max(jax.tree.leaves(diffs)))


def device_scaling(batches, steps: int, device_counts=(1, FAKE_DEVICES)) -> dict:
    """In this process: steps/s for each device count, and max |Δparam| vs the first."""
    runs = [step_rate(n, batches, steps) for n in device_counts]
    base, base_check = runs[0]["params"], runs[0]["params_at_check"]
    for r in runs:
        r["max_param_diff_vs_1"] = max_param_diff(base, r.pop("params"))
        at_check = r.pop("params_at_check")
        if at_check is not None:
            r[f"max_param_diff_vs_1_after_{CHECK_STEPS}"] = max_param_diff(base_check, at_check)
    return {str(r["devices"]): r for r in runs}


def real_batches(split, normalizer, batch: int, count: int = 8):
    it = data_lib.train_batches(split, normalizer, batch, seed=0, epoch=0)
    return [next(it) for _ in range(count)]


def measure(
    batch: int = 128, steps: int = 200, epochs: int = 3, scaling: bool = True, rounds: int = 5
) -> dict:
    splits = data_lib.load_splits("fashion_mnist")
    batches = real_batches(splits.train, splits.normalizer, batch)
    pipe = pipeline_rate(splits.train, splits.normalizer, batch, epochs)
    one = step_rate(1, batches, steps)
    one.pop("params"), one.pop("params_at_check")
    r = {
        "batch": batch,
        "model": "mlp 784-256-128-10 (experiments/configs/mlp.py)",
        "train_examples": int(len(splits.train.labels)),
        "pipeline": pipe,
        "train_step": one,
        "end_to_end": end_to_end_rate(splits.train, splits.normalizer, batch, steps),
        "pipeline_over_step": pipe["images_per_s"] / one["images_per_s"],
        "host_read": host_read_rates(batches, steps, rounds),
        # each in a fresh process: peaks only grow
        "donation": {
            f"with{'' if d else 'out'} donation": harness.in_subprocess(
                "pipeline",
                ["--memory-only", "--donate", str(int(d)), "--batch", str(batch), "--steps", "20"],
            )
            for d in (False, True)
        },
    }
    if scaling:
        flag = f"--xla_force_host_platform_device_count={FAKE_DEVICES}"
        xla = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
        env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=xla)
        r["device_scaling"] = harness.in_subprocess(
            "pipeline", ["--scaling-only", "--batch", str(batch), "--steps", str(steps)], env
        )
    return r


def _mib(n: float) -> str:
    return f"{n / 2**20:.2f} MiB"


def _memory_row(name: str, m: dict) -> list[str]:
    sizes = [_mib(m[k]) for k in ("state_bytes", "alias_bytes", "temp_bytes", "step_bytes")]
    return [name, *sizes, f"{_mib(m['peak']['bytes'])} ({m['peak']['source']})"]


def _scaling_row(devices: str, r: dict) -> list[str]:
    key = f"max_param_diff_vs_1_after_{CHECK_STEPS}"
    at_check = f"{r[key]:.1e}" if key in r else "n/a (fewer steps)"
    speed = [f"{r['steps_per_s']:.1f}", f"{r['images_per_s']:,.0f}"]
    return [devices, *speed, at_check, f"{r['max_param_diff_vs_1']:.1e}"]


def section(p: dict) -> list[str]:
    pipe, st, e2e, h, d = (
        p[k] for k in ("pipeline", "train_step", "end_to_end", "host_read", "donation")
    )
    off, on = d["without donation"], d["with donation"]
    L = [
        *harness.title(__doc__),
        f"Batch {p['batch']}, {p['train_examples']:,} train images, {st['device_kind']}.",
        "",
        *harness.method(__doc__),
        *harness.table(
            ["stage", "images/s"],
            [
                [
                    f"host pipeline, median of {pipe['epochs']} epochs",
                    f"{pipe['images_per_s']:,.0f}",
                ],
                [
                    f"train step, batches already on device ({st['steps']} steps)",
                    f"{st['images_per_s']:,.0f} ({st['steps_per_s']:.1f} steps/s)",
                ],
                ["end to end: pipeline → `shard_batch` → step", f"{e2e['images_per_s']:,.0f}"],
            ],
        ),
        "",
        f"- The host pipeline delivers **{p['pipeline_over_step']:.1f}×** the images the step "
        "consumes: it is not the bottleneck.",
        "",
        "## Train step: host read per step, donated state",
        "",
        "The same step, one device. Steps/s with a host read of the non-finite flag after "
        "every step (`check_every_step=True`) and without it (the loop reads it at "
        f"log/checkpoint boundaries): {h['rounds']} rounds of {h['steps']} steps, the two "
        "alternating, medians.",
        "",
        *harness.table(["step", "steps/s"], [[n, f"{v:.1f}"] for n, v in h["steps_per_s"].items()]),
        "",
        f"- Without the per-step read: **{h['speedup_without_read']:.2f}×** the steps/s. On "
        "a CPU the device is the host, so the read costs little; on a GPU/TPU it stops the host "
        "from queueing the next step while the device runs this one.",
        "",
        "Memory of the step without and with the train state donated (`donate_argnums`), each "
        "in a fresh process: XLA's analysis of the compiled step (live at once = arguments + "
        "outputs − aliased + temporaries) and the peak the runtime saw.",
        "",
        *harness.table(
            " | state | aliased | temporaries | live during the step | runtime peak",
            [_memory_row(n, m) for n, m in d.items()],
        ),
        "",
        f"- Donation saves **{_mib(off['step_bytes'] - on['step_bytes'])}** of "
        f"{_mib(off['step_bytes'])} live during the step (the state, parameters and Adam's two "
        f"moments, is {_mib(on['state_bytes'])}). A process's peak RSS also counts the runtime, "
        "the compiler and the data, so on a CPU the saving is lost in it; device "
        "`memory_stats` on a GPU/TPU show it.",
        "",
    ]
    if "device_scaling" in p:
        L += [
            "## Train steps/s on 1 and 8 faked CPU devices",
            "",
            f"Same step and model, global batch {p['batch']}, in a subprocess with "
            "`XLA_FLAGS=--xla_force_host_platform_device_count=8`. **The 8 faked devices "
            "share the same CPU cores**, so this checks that the data-parallel path runs and "
            "agrees with one device, not that it is faster.",
            "",
            *harness.table(
                "devices | steps/s | images/s | max abs param diff vs 1 device after "
                f"{CHECK_STEPS} steps | … after all steps",
                [_scaling_row(n, r) for n, r in p["device_scaling"].items()],
                0,
            ),
            "",
            f"All steps = {next(iter(p['device_scaling'].values()))['steps'] + 5} Adam steps "
            "on the same batches. 8 devices sum per-device gradients in another order; Adam "
            "divides each update by √v, so float32 rounding in tiny gradients becomes "
            "update-sized differences that grow with the number of steps (at most lr per "
            "step).",
            "",
        ]
    return L


def main(argv=None):
    args = harness.parse(
        argv,
        __doc__,
        batch=(128, "batch size"),
        steps=(200, "timed steps"),
        epochs=(3, "pipeline passes (median)"),
        scaling_only=(False, "only the 1-vs-8 device part, in this process (needs 8 devices)"),
        memory_only=(False, "only the step's memory, in this process (with --donate 0|1)"),
        donate=(1, "1: donate the state to the step, 0: not"),
        json=(None, "also write the result here"),
    )
    if args.memory_only:
        r = step_memory(args.batch, args.steps, bool(args.donate))
    elif args.scaling_only:
        splits = data_lib.load_splits("fashion_mnist", train_subset=args.batch * 8)
        r = device_scaling(real_batches(splits.train, splits.normalizer, args.batch), args.steps)
    else:
        r = measure(args.batch, args.steps, args.epochs)
        print("\n".join(section(r)))
    harness.write_json(args.json, r)
    return r


if __name__ == "__main__":
    main()
