"""The benchmark scripts at tiny sizes, so they don't rot. No timing is asserted.

What is checked: the FLOP arithmetic against a hand count, that the JAX and
snnTorch networks have the same parameters, that every step really trains,
that the 8-device step agrees with 1 device, and that the report renders
(with and without snnTorch) from real, tiny measurements.
"""
import math

import jax
import numpy as np
import pytest

from benchmarks import htaf_throughput, packed_inference, pipeline, run, snn_step
from htaf_jax import data as data_lib
from htaf_jax.models import build_model

TORCH_MISSING = snn_step.torch_unavailable_reason()
needs_torch = pytest.mark.skipif(TORCH_MISSING is not None,
                                 reason=f"torch/snntorch not importable: {TORCH_MISSING}")


def test_step_flops_match_a_hand_count():
    # 784-1000-10, T=25, B=128: N = 3200 rows.
    f = snn_step.step_flops(25, 128, 1000)
    forward = 2 * 3200 * 784 * 1000 + 2 * 3200 * 1000 * 10            # 5.0816e9
    assert f["forward"] == forward == 5_081_600_000
    assert f["nominal"] == 3 * forward
    # forward + weight grads (= forward) + input grad of the second layer only
    assert f["exact"] == 2 * forward + 2 * 3200 * 1000 * 10 == 10_227_200_000
    # direct input: first layer fwd + weight grad once over B rows; second layer as before
    assert f["direct_exact"] == 2 * 2 * 128 * 784 * 1000 + 3 * 2 * 3200 * 1000 * 10
    assert f["exact"] / f["direct_exact"] > 10  # the first layer dominates


def test_param_count_matches_the_flax_model():
    model = snn_step.jax_model(num_steps=2, hidden=16, encoding="rate", surrogate="htaf")
    images, _ = snn_step.synthetic_batch(2)
    # Shapes are all a count needs: traced, not run (eagerly, each op compiles on its own).
    params = jax.eval_shape(model.init, {"params": jax.random.key(0),
                                         "sample": jax.random.key(1)}, images)["params"]
    n = sum(math.prod(p.shape) for p in jax.tree.leaves(params))
    assert n == snn_step.count_params(snn_step.layer_shapes(16)) == 784 * 16 + 16 + 16 * 10 + 10


def test_jax_step_trains_and_direct_input_runs():
    images, labels = snn_step.synthetic_batch(4)
    for enc in ("rate", "direct"):
        step, shapes = snn_step.make_jax_step(
            snn_step.jax_model(3, 8, enc, "atan"), images, labels)
        assert shapes["dense0"]["kernel"] == (784, 8)
        assert shapes["head"]["kernel"] == (8, 10)
        step()
        step()  # donated buffers are replaced, so a second call works


@needs_torch
def test_snntorch_network_has_the_same_parameters_as_ours():
    images, labels = snn_step.synthetic_batch(4)
    step, torch_shapes = snn_step.make_torch_step(3, 8, images, labels)
    _, jax_shapes = snn_step.make_jax_step(snn_step.jax_model(3, 8, "rate", "atan"),
                                           images, labels)
    # torch.nn.Linear stores (out, in); flax Dense (in, out).
    assert torch_shapes["fc1.weight"] == jax_shapes["dense0"]["kernel"][::-1]
    assert torch_shapes["fc1.bias"] == jax_shapes["dense0"]["bias"]
    assert torch_shapes["fc2.weight"] == jax_shapes["head"]["kernel"][::-1]
    assert torch_shapes["fc2.bias"] == jax_shapes["head"]["bias"]
    assert len(torch_shapes) == 4
    step()


def _tiny_split(n=64, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.int32)
    return data_lib.ArraySplit(images, labels)


def test_host_read_and_donation_measurements(tiny_parts):
    """The host-read and donation figures of the report's measurements (tiny_parts)."""
    r = tiny_parts["pipeline"]["host_read"]
    assert set(r["steps_per_s"]) == {"host read every step", "flag read at boundaries only"}
    assert all(len(v) == 2 and min(v) > 0 for v in r["all_steps_per_s"].values())
    memory = tiny_parts["pipeline"]["donation"]
    off, on = memory["without donation"], memory["with donation"]
    assert off["alias_bytes"] == 0 and on["alias_bytes"] == on["state_bytes"] > 0
    assert off["step_bytes"] - on["step_bytes"] >= 0.9 * on["state_bytes"]
    assert on["peak"]["bytes"] > 0


def test_pipeline_rate_counts_every_image_of_an_epoch():
    split = _tiny_split(70)
    r = pipeline.pipeline_rate(split, data_lib.Normalizer.fit(split.images), 16, epochs=2)
    assert r["batches_per_epoch"] == 4  # 70 // 16, the remainder dropped
    assert r["images_per_s"] > 0


@pytest.mark.slow
@pytest.mark.eight_devices
def test_eight_device_step_agrees_with_one_device():
    assert jax.device_count() >= 8, "tests/conftest.py fakes 8 CPU devices"
    split = _tiny_split(64)
    batches = pipeline.real_batches(split, data_lib.Normalizer.fit(split.images), 16, count=4)
    steps = pipeline.CHECK_STEPS - 5  # 5 warm-up steps come first
    out = pipeline.device_scaling(batches, steps=steps)
    assert set(out) == {"1", "8"}
    key = f"max_param_diff_vs_1_after_{pipeline.CHECK_STEPS}"
    assert out["1"]["max_param_diff_vs_1"] == out["1"][key] == 0.0
    # float32 rounding only. Adam divides out the gradient's scale, so this says
    # that the 8-way path runs and agrees; the scale itself is checked by
    # test_eight_device_gradient_equals_the_full_batch_gradient.
    assert out["8"][key] < 1e-3
    assert out["8"]["steps"] == steps


def _one_sgd_step_gradient(num_devices: int, images, labels):
    """The gradient the engine's train step applies, read off one SGD step with
    learning rate 1 and no momentum (params before − params after)."""
    import optax

    from htaf_jax.train import step as step_lib
    model = build_model(pipeline.reference_config().model, num_classes=10)
    mesh = step_lib.make_mesh(num_devices)
    tx = optax.sgd(1.0)
    state = step_lib.init_state(model, tx, jax.random.key(0), images.shape[1:])
    before = jax.device_get(state.params)
    state, rng = step_lib.replicate((state, jax.random.key(1)), mesh)
    train_step = step_lib.make_train_step(model, tx, mesh)
    state, _ = train_step(state, *step_lib.shard_batch((images, labels), mesh), rng)
    grads = jax.tree.map(lambda b, a: b - np.asarray(a), before, jax.device_get(state.params))
    return model, before, grads


@pytest.mark.eight_devices
def test_eight_device_gradient_equals_the_full_batch_gradient():
    import optax
    assert jax.device_count() >= 8, "tests/conftest.py fakes 8 CPU devices"
    split = _tiny_split(32)
    images = data_lib.Normalizer.fit(split.images)(split.images)
    labels = split.labels
    model, params, one = _one_sgd_step_gradient(1, images, labels)
    _, _, eight = _one_sgd_step_gradient(8, images, labels)

    def loss(p):  # the mean cross-entropy over the whole batch, outside any mesh
        logits = model.apply({"params": p}, images, train=True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    reference = jax.jit(jax.grad(loss))(params)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(reference)]
    for got in (one, eight):
        assert jax.tree.structure(got) == jax.tree.structure(reference)
        for path, g, want in zip(paths, jax.tree.leaves(got), jax.tree.leaves(reference)):
            np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-6, err_msg=path)
    # The scale on its own: a sum over devices instead of a mean would read 8.
    norm = lambda t: float(optax.tree.norm(t))  # noqa: E731
    assert norm(eight) / norm(reference) == pytest.approx(1.0, abs=1e-4)


@pytest.fixture(scope="module")
def tiny_parts():
    """Real measurements at tiny sizes: htaf throughput and the pipeline figures."""
    split = _tiny_split(64)
    norm = data_lib.Normalizer.fit(split.images)
    step = pipeline.step_rate(1, pipeline.real_batches(split, norm, 16, count=2), steps=2)
    step.pop("params"), step.pop("params_at_check")
    pipe = pipeline.pipeline_rate(split, norm, 16, epochs=1)
    batches = pipeline.real_batches(split, norm, 16, count=2)
    host_read = pipeline.host_read_rates(batches, steps=2, rounds=2)
    memory = {name: pipeline.step_memory(16, 1, donate)
              for name, donate in (("without donation", False), ("with donation", True))}
    return {
        "machine": run.machine_info(), "quick": True, "wall_s": 1.0,
        "htaf": htaf_throughput.measure(log2n=8, repeats=2),
        "packed": packed_inference.measure(batch=8, repeats=1),
        "pipeline": {"batch": 16, "model": "mlp", "train_examples": 64, "pipeline": pipe,
                     "train_step": step, "end_to_end": {"images_per_s": 1.0, "steps": 2},
                     "pipeline_over_step": pipe["images_per_s"] / step["images_per_s"],
                     "host_read": host_read, "donation": memory},
    }


@pytest.mark.slow
@pytest.mark.parametrize("torch_present", [False, True])
def test_report_renders_from_tiny_measurements(tmp_path, monkeypatch, tiny_parts,
                                               torch_present):
    if torch_present and TORCH_MISSING is not None:
        pytest.skip(f"torch/snntorch not importable: {TORCH_MISSING}")
    if not torch_present:  # the path a host without torch takes
        monkeypatch.setattr(snn_step, "torch_unavailable_reason",
                            lambda: "ModuleNotFoundError: No module named 'torch'")
    r = dict(tiny_parts, snn=snn_step.measure(num_steps=2, batch=4, hidden=8, repeats=1,
                                              warmup=1, matmul_n=64))
    assert r["packed"]["equal_argmax"] and r["packed"]["weight_memory"]["ratio"] > 30
    md = run.render_markdown(r, "fig.png")
    assert "## Bit-packed binary inference" in md and "Same argmax on every example: **True**" in md
    assert "`make bench`" in md and r["machine"]["jax_backend"] in md
    assert "Quick mode" in md
    for name in r["snn"]["median_ms"]:
        assert f"| {name} |" in md
    assert "| host read every step |" in md and "| flag read at boundaries only |" in md
    assert "Donation saves" in md
    if torch_present:
        assert "Speed-up vs snnTorch" in md
        assert r["snn"]["speedup_vs_snntorch"]["identical network (atan)"] > 0
    else:
        assert "snnTorch not run: ModuleNotFoundError" in md
        assert "speedup_vs_snntorch" not in r["snn"]
    run.plot(r, str(tmp_path / "fig.png"))
    assert (tmp_path / "fig.png").stat().st_size > 1000


def test_every_benchmark_takes_the_same_flag_library(capsys):
    from benchmarks import cli
    args = cli.parse(["--num-steps", "3", "--no-torch", "--only", "peers"], "usage",
                     num_steps=(25, "T"), no_torch=(False, "x"), json=(None, "out"),
                     only=(None, "part", ["peers"]))
    assert (args.num_steps, args.no_torch, args.json, args.only) == (3, True, None, "peers")
    for bad in (["--only", "nope"], ["--repeats", "x"], ["stray"]):
        with pytest.raises(SystemExit) as e:
            cli.parse(bad, "usage", only=(None, "part", ["peers"]), repeats=(2, "n"))
        assert e.value.code == 2
    for module in (htaf_throughput, packed_inference, pipeline, run, snn_step):
        with pytest.raises(SystemExit) as e:
            module.main(["--help"])
        assert e.value.code == 0
        assert "flags:" in capsys.readouterr().out
