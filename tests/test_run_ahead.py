"""The train step lets the host run ahead of the devices, but only MAX_IN_FLIGHT steps:
an unbounded queue of collectives deadlocked XLA's CPU runtime on 8 faked devices."""

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from benchmarks import pipeline
    from htaf_jax.models import build_model
    from htaf_jax.train import step as step_lib
    from htaf_jax.train.optim import make_optimizer
    config = pipeline.reference_config(100)
    mesh = step_lib.make_mesh(8)
    model = build_model(config.model, num_classes=10)
    tx = make_optimizer(config, 100)
    state = step_lib.init_state(model, tx, jax.random.key(0), (28, 28, 1))
    state, rng = step_lib.replicate((state, jax.random.key(1)), mesh)
    train_step = step_lib.make_train_step(model, tx, mesh)
    rs = np.random.default_rng(0)
    batch = step_lib.shard_batch((rs.normal(size=(128, 28, 28, 1)).astype(np.float32),
                                  rs.integers(0, 10, 128).astype(np.int32)), mesh)
    for i in range(205):
        state, metrics = train_step(state, *batch, rng)
        if i == 19:  # a host read mid-loop, as the benchmark's 1-vs-N check makes
            jax.device_get(state.params)
    print("steps", int(jax.device_get(state.step)))
""")


@pytest.mark.slow
def test_a_long_queue_of_steps_on_8_devices_finishes():
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu"
    )
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "steps 205" in run.stdout
