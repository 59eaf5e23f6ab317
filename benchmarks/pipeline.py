"""Host input pipeline images/s next to the train step's, and train steps/s on 1 and 8 devices.

    python -m benchmarks.pipeline [--batch 128] [--steps 200] [--json OUT]

Three figures for the engine's reference model (experiments/configs/mlp.py:
Dense-ReLU MLP 784-256-128-10, Adam, batch 128) on real Fashion-MNIST:

- host pipeline: ``htaf_jax.data.train_batches`` over whole epochs (seeded
  shuffle, uint8 → normalised float32 by table lookup), images/s;
- train step: the engine's ``make_train_step`` (shard_map over a one-device
  mesh, chex checks) on batches already on the device, images/s;
- end to end: pipeline + ``shard_batch`` + step, as the training loop runs them.

Two properties of the step itself, on one device:

- host read: steps/s with a host read of the non-finite flag after every step
  (``check_every_step=True``, the engine's earlier form) and without it (the
  loop reads it at log/checkpoint boundaries), same run, rounds interleaved;
- donation: the compiled step's memory (XLA's memory analysis: arguments,
  outputs, aliased bytes, temporaries) and the peak the runtime saw (device
  ``memory_stats()`` peak where JAX exposes it, else the process's peak RSS,
  each in a fresh process) without and with the state donated.

Then steps/s of the same step on meshes of 1 and 8 devices, in a subprocess
with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` on CPU. The faked
devices share the same CPU cores, so this checks that the 8-way data-parallel
path runs and agrees with one device (max |Δparam| after the same steps on
the same batches, after 20 steps and after all), not that it is faster.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

from benchmarks import cli
from htaf_jax import data as data_lib
from htaf_jax.models import build_model
from htaf_jax.train import step as step_lib
from htaf_jax.train.optim import make_optimizer

FAKE_DEVICES = 8


def reference_config(total_steps: int = 1000):
    from experiments.configs import mlp
    config = mlp.get_config()
    config.model.num_classes = 10
    config.num_train_steps = total_steps
    return config


def pipeline_rate(split: data_lib.ArraySplit, normalizer, batch: int, epochs: int = 3,
                  max_batches: int | None = None) -> dict:
    """Images/s of ``train_batches`` (median over ``epochs`` passes)."""
    rates = []
    for epoch in range(epochs):
        n, t0 = 0, time.perf_counter()
        for i, (images, _) in enumerate(data_lib.train_batches(split, normalizer, batch,
                                                               seed=0, epoch=epoch)):
            n += len(images)
            if max_batches is not None and i + 1 >= max_batches:
                break
        rates.append(n / (time.perf_counter() - t0))
    return {"images_per_s": statistics.median(rates), "epochs": epochs,
            "batches_per_epoch": n // batch}


def _setup(num_devices: int, batch: int, total_steps: int, **step_options):
    config = reference_config(total_steps)
    mesh = step_lib.make_mesh(num_devices)
    model = build_model(config.model)
    tx = make_optimizer(config, total_steps)
    init_rng, rng = jax.random.split(jax.random.key(config.seed))
    state = step_lib.init_state(model, tx, init_rng, (28, 28, 1))
    state, rng = step_lib.replicate((state, rng), mesh)
    return mesh, step_lib.make_train_step(model, tx, mesh, **step_options), state, rng


def host_read_rates(batches, steps: int, rounds: int = 5) -> dict:
    """Steps/s with and without a host read of the non-finite flag after each step.

    Both steps are built once and warmed up; each round times ``steps`` steps
    of one, then of the other (the order alternates), so load on shared cores
    falls on both. Medians over the rounds.
    """
    variants = {"host read every step": True, "flag read at boundaries only": False}
    runs = {}
    for name, check in variants.items():
        mesh, train_step, state, rng = _setup(1, len(batches[0][0]), 10 ** 6,
                                              check_every_step=check)
        sharded = [step_lib.shard_batch(b, mesh) for b in batches]
        state, _ = train_step(state, *sharded[0], rng)  # compile
        runs[name] = [train_step, state, rng, sharded]
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        for name in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
            train_step, state, rng, sharded = runs[name]
            jax.block_until_ready(state)
            t0 = time.perf_counter()
            for i in range(steps):
                state, _ = train_step(state, *sharded[i % len(sharded)], rng)
            if step_lib.first_nonfinite_step(state) is not None:  # what the loop does at a boundary
                raise FloatingPointError("the benchmark's step went non-finite")
            rates[name].append(steps / (time.perf_counter() - t0))
            runs[name][1] = state
    medians = {name: statistics.median(v) for name, v in rates.items()}
    return {"steps": steps, "rounds": rounds, "steps_per_s": medians,
            "all_steps_per_s": rates,
            "speedup_without_read": (medians["flag read at boundaries only"]
                                     / medians["host read every step"])}


def _peak_memory() -> dict:
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return {"source": "device memory_stats peak_bytes_in_use",
                "bytes": int(stats["peak_bytes_in_use"])}
    import resource  # ru_maxrss is in KiB on Linux
    return {"source": "process peak RSS (no device memory stats)",
            "bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024}


def step_memory(batch: int, steps: int, donate: bool) -> dict:
    """The compiled step's memory analysis and the peak after ``steps`` steps, in this process."""
    mesh, train_step, state, rng = _setup(1, batch, 10 ** 6, donate=donate)
    rows = np.random.default_rng(0)
    data = step_lib.shard_batch((rows.normal(size=(batch, 28, 28, 1)).astype(np.float32),
                                 rows.integers(0, 10, batch).astype(np.int32)), mesh)
    a = train_step.jitted.lower(state, *data, rng).compile().memory_analysis()
    for _ in range(steps):
        state, _ = train_step(state, *data, rng)
    jax.block_until_ready(state)
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))
    return {"donate": donate, "state_bytes": state_bytes,
            "argument_bytes": a.argument_size_in_bytes, "output_bytes": a.output_size_in_bytes,
            "alias_bytes": a.alias_size_in_bytes, "temp_bytes": a.temp_size_in_bytes,
            # live at once during the step: inputs, outputs not written in place, temporaries
            "step_bytes": (a.argument_size_in_bytes + a.output_size_in_bytes
                           - a.alias_size_in_bytes + a.temp_size_in_bytes),
            "peak": _peak_memory(), "device_kind": str(mesh.devices.flat[0].device_kind)}


def _subprocess(args: list[str], timeout: float, env=None) -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        proc = subprocess.run([sys.executable, "-m", "benchmarks.pipeline", *args, "--json", out],
                              cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"benchmarks.pipeline {' '.join(args)} failed "
                               f"({proc.returncode}):\n{proc.stderr[-3000:]}")
        with open(out) as f:
            return json.load(f)


def donation_memory(batch: int, steps: int = 20, timeout: float = 600) -> dict:
    """``step_memory`` without and with donation, each in a fresh process (peaks only grow)."""
    return {("with donation" if donate else "without donation"):
            _subprocess(["--memory-only", "--donate", str(int(donate)), "--batch", str(batch),
                         "--steps", str(steps)], timeout)
            for donate in (False, True)}


CHECK_STEPS = 20  # the 1-vs-N parameter comparison is made after this many steps


def step_rate(num_devices: int, batches: list[tuple[np.ndarray, np.ndarray]], steps: int,
              warmup: int = 5) -> dict:
    """Steps/s of the engine's train step over ``num_devices`` devices.

    Cycles through ``batches`` (already normalised), each sharded once before
    timing. Returns the rate, and the parameters after ``CHECK_STEPS`` steps
    and after all ``warmup + steps`` (for the 1-vs-N check).
    """
    mesh, train_step, state, rng = _setup(num_devices, len(batches[0][0]), steps + warmup)
    sharded = [step_lib.shard_batch((x, y), mesh) for x, y in batches]
    checked = None
    for i in range(warmup):
        state, metrics = train_step(state, *sharded[i % len(sharded)], rng)
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for i in range(steps):
        state, metrics = train_step(state, *sharded[(warmup + i) % len(sharded)], rng)
        if warmup + i + 1 == CHECK_STEPS:  # one host copy inside the timed loop; ~1 ms
            checked = jax.device_get(state.params)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - t0
    batch = len(batches[0][0])
    return {"devices": num_devices, "steps": steps, "steps_per_s": steps / seconds,
            "images_per_s": steps * batch / seconds,
            "device_kind": str(mesh.devices.flat[0].device_kind),
            "params": jax.device_get(state.params), "params_at_check": checked}


def end_to_end_rate(split, normalizer, batch: int, steps: int) -> dict:
    """Images/s of pipeline → shard_batch → step on one device, as the loop runs them."""
    mesh, train_step, state, rng = _setup(1, batch, steps + 1)
    it = data_lib.train_batches(split, normalizer, batch, seed=0, epoch=0)
    state, _ = train_step(state, *step_lib.shard_batch(next(it), mesh), rng)  # compile
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, _ = train_step(state, *step_lib.shard_batch(next(it), mesh), rng)
    jax.block_until_ready(state)
    return {"images_per_s": steps * batch / (time.perf_counter() - t0), "steps": steps}


def max_param_diff(a, b) -> float:
    return float(max(np.max(np.abs(np.asarray(x) - np.asarray(y)))
                     for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))))


def device_scaling(batches, steps: int, device_counts=(1, FAKE_DEVICES)) -> dict:
    """In this process: steps/s for each device count, and max |Δparam| vs the first."""
    runs = [step_rate(n, batches, steps) for n in device_counts]
    base, base_check = runs[0]["params"], runs[0]["params_at_check"]
    out = {}
    for r in runs:
        r["max_param_diff_vs_1"] = max_param_diff(base, r.pop("params"))
        at_check = r.pop("params_at_check")
        if at_check is not None:
            r[f"max_param_diff_vs_1_after_{CHECK_STEPS}"] = max_param_diff(base_check, at_check)
        out[str(r["devices"])] = r
    return out


def device_scaling_subprocess(batch: int, steps: int, timeout: float = 600) -> dict:
    """Runs ``device_scaling`` in a fresh process with 8 faked CPU devices."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={FAKE_DEVICES}").strip()
    env["JAX_PLATFORMS"] = "cpu"
    return _subprocess(["--scaling-only", "--batch", str(batch), "--steps", str(steps)],
                       timeout, env)


def real_batches(split, normalizer, batch: int, count: int = 8):
    it = data_lib.train_batches(split, normalizer, batch, seed=0, epoch=0)
    return [next(it) for _ in range(count)]


def measure(batch: int = 128, steps: int = 200, epochs: int = 3, scaling: bool = True,
            rounds: int = 5) -> dict:
    splits = data_lib.load_splits("fashion_mnist")
    batches = real_batches(splits.train, splits.normalizer, batch)
    pipe = pipeline_rate(splits.train, splits.normalizer, batch, epochs)
    one = step_rate(1, batches, steps)
    one.pop("params"), one.pop("params_at_check")
    e2e = end_to_end_rate(splits.train, splits.normalizer, batch, steps)
    result = {
        "batch": batch, "model": "mlp 784-256-128-10 (experiments/configs/mlp.py)",
        "train_examples": int(len(splits.train.labels)),
        "pipeline": pipe, "train_step": one, "end_to_end": e2e,
        "pipeline_over_step": pipe["images_per_s"] / one["images_per_s"],
        "host_read": host_read_rates(batches, steps, rounds),
        "donation": donation_memory(batch),
    }
    if scaling:
        result["device_scaling"] = device_scaling_subprocess(batch, steps)
    return result


def main(argv=None):
    args = cli.parse(
        argv, __doc__, batch=(128, "batch size"), steps=(200, "timed steps"),
        epochs=(3, "pipeline passes (median)"),
        scaling_only=(False, "only the 1-vs-8 device part, in this process (needs 8 devices)"),
        memory_only=(False, "only the step's memory, in this process (with --donate 0|1)"),
        donate=(1, "1: donate the state to the step, 0: not"),
        json=(None, "also write the result here"))
    if args.memory_only:
        r = step_memory(args.batch, args.steps, bool(args.donate))
    elif args.scaling_only:
        splits = data_lib.load_splits("fashion_mnist", train_subset=args.batch * 8)
        r = device_scaling(real_batches(splits.train, splits.normalizer, args.batch),
                           args.steps)
    else:
        r = measure(args.batch, args.steps, args.epochs)
    print(json.dumps(r, indent=2))
    cli.write_json(args.json, r)
    return r


if __name__ == "__main__":
    main()
