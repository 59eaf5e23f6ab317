"""The benchmark scripts at tiny sizes, so they don't rot. No timing is asserted.

What is checked: the FLOP arithmetic against a hand count, that the JAX and snnTorch
networks have the same parameters and that their steps train, the T-scaling table's
arithmetic and its parallel scan, that the 8-device step agrees with 1 device, and that
the report renders (with and without snnTorch) from real, tiny measurements.
"""

import math

import jax
import numpy as np
import pytest

from benchmarks import (
    device_check,
    harness,
    htaf_throughput,
    packed_inference,
    pipeline,
    run,
    snn_peers,
    snn_scaling,
    snn_step,
)
from htaf_jax import data as data_lib
from htaf_jax.models import build_model
from htaf_jax.spiking import leaky_integrate

TORCH_MISSING = snn_step.torch_unavailable_reason()
needs_torch = pytest.mark.skipif(
    TORCH_MISSING is not None, reason=f"torch/snntorch not importable: {TORCH_MISSING}"
)


def test_step_flops_match_a_hand_count():
    # 784-1000-10, T=25, B=128: N = 3200 rows.
    f = snn_step.step_flops(25, 128, 1000)
    forward = 2 * 3200 * 784 * 1000 + 2 * 3200 * 1000 * 10  # 5.0816e9
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
    params = jax.eval_shape(
        model.init, {"params": jax.random.key(0), "sample": jax.random.key(1)}, images
    )["params"]
    n = sum(math.prod(p.shape) for p in jax.tree.leaves(params))
    assert n == snn_step.count_params(snn_step.layer_shapes(16)) == 784 * 16 + 16 + 16 * 10 + 10


@pytest.mark.slow  # the benchmark's training steps, run at tiny sizes
def test_jax_steps_train():
    """Each step returns its loss before the update: near ln 10 at the start, and with
    direct input (no sampling noise) the same batch's loss falls step after step."""
    images, labels = snn_step.synthetic_batch(8)
    for enc in ("rate", "direct"):
        step, shapes = snn_step.make_jax_step(snn_step.jax_model(3, 8, enc, "atan"), images, labels)
        assert shapes["dense0"]["kernel"] == (784, 8) and shapes["head"]["kernel"] == (8, 10)
        losses = [step() for _ in range(6)]  # donated buffers are replaced: calls chain
        assert all(math.isfinite(x) for x in losses)
        assert losses[0] == pytest.approx(math.log(10), abs=1.0), enc
        if enc == "direct":
            assert losses[-1] < losses[0], losses


@pytest.mark.slow  # trains the benchmark's torch network (make test-slow)
@needs_torch
def test_snntorch_network_has_our_parameters_and_trains():
    images, labels = snn_step.synthetic_batch(8)
    step, torch_shapes, encode = snn_step.make_torch_step(3, 8, images, labels)
    _, jax_shapes = snn_step.make_jax_step(snn_step.jax_model(3, 8, "rate", "atan"), images, labels)
    # torch.nn.Linear stores (out, in); flax Dense (in, out).
    assert torch_shapes == {
        "fc1.weight": jax_shapes["dense0"]["kernel"][::-1],
        "fc1.bias": jax_shapes["dense0"]["bias"],
        "fc2.weight": jax_shapes["head"]["kernel"][::-1],
        "fc2.bias": jax_shapes["head"]["bias"],
    }
    losses = [step() for _ in range(3)]
    assert all(math.isfinite(x) for x in losses)
    assert losses[0] == pytest.approx(math.log(10), abs=1.0)
    assert encode() in (0.0, 1.0)  # one rate-coded spike


@pytest.mark.slow  # compiles both scans for five decays (make test-slow)
def test_associative_scan_is_the_leaky_integrator():
    currents = jax.random.normal(jax.random.key(0), (64, 3, 5))
    for beta in (0.0, 0.5, 0.9, 1.0, np.linspace(0.1, 0.9, 5, dtype=np.float32)):
        np.testing.assert_allclose(
            snn_scaling.associative_leaky_integrate(currents, beta),
            leaky_integrate(currents, beta),
            rtol=1e-5,
            atol=1e-5,
        )


def test_lif_options_are_every_valid_combination():
    opts = snn_scaling.lif_options()
    # reset × (same-step | delayed | delayed + fire_first) × detach_reset × spike_at_threshold
    assert len(opts) == 2 * 3 * 2 * 2 == len({snn_scaling.option_label(o) for o in opts})
    assert all(o["reset_delay"] for o in opts if o["fire_first"])


@pytest.fixture(scope="module")
def scaling():
    options = snn_scaling.lif_options()[:2]  # the structure, not all 24 compilations
    return snn_scaling.measure(
        t_values=(4, 8), option_t=(4, 8), batch=2, n=8, repeats=1, option_repeats=1, options=options
    )


@pytest.mark.slow  # the benchmark's measurements, run at tiny sizes
def test_scaling_table_arithmetic(scaling):
    s = scaling
    direct = {f"{n}{snn_scaling.DIRECT}" for n in snn_scaling.NEURONS}
    rows = {*snn_scaling.NEURONS, *direct, snn_scaling.SEQUENTIAL, snn_scaling.PARALLEL}
    rows |= {snn_scaling.SPYX, snn_scaling.TORCH} - set(s["skipped"])
    assert set(s["ms_per_step"]) == rows
    for name, per in s["ms_per_step"].items():
        assert list(per) == ["4", "8"] and min(per.values()) > 0
        assert s["max_over_min"][name] == pytest.approx(max(per.values()) / min(per.values()))
    assert s["default_option"] == "subtract, same-step, detach, H(0)=1" in s["option_ms_per_step"]
    over = {k: v["8"] for k, v in s["option_ms_per_step"].items()}
    # One round: the paired ratio is the ratio of the two times.
    assert s["option_over_fastest"] == pytest.approx(
        {k: v / min(over.values()) for k, v in over.items()}
    )
    assert min(s["option_over_fastest"].values()) == 1.0
    for k, (lo, hi) in s["option_over_fastest_range"].items():
        assert lo == hi == pytest.approx(s["option_over_fastest"][k])
    dv = s["targets"]["default_vs_fastest"]
    assert dv["value"] == s["option_over_fastest"][s["default_option"]]
    assert dv["met"] == (dv["value"] <= 1.2)
    ours = [*snn_scaling.NEURONS, *sorted(direct), *s["option_ms_per_step"]]
    steep = sorted(k for k in ours if {**s["max_over_min"], **s["option_max_over_min"]}[k] > 1.3)
    assert s["targets"]["flat"] == {"target": 1.3, "met": not steep, "over": steep}
    assert s["parallel_over_sequential"]["8"] == pytest.approx(
        s["ms_per_step"][snn_scaling.PARALLEL]["8"] / s["ms_per_step"][snn_scaling.SEQUENTIAL]["8"]
    )


def _tiny_split(n=64, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.int32)
    return data_lib.ArraySplit(images, labels)


@pytest.mark.slow  # the benchmark's measurements, run at tiny sizes
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


def test_reference_config_is_the_experiment_config():
    """pipeline builds the reference run from htaf_jax alone; it must stay the run that
    experiments/configs/mlp.py configures."""
    from experiments.configs import mlp

    want, got = mlp.get_config(), pipeline.reference_config()
    assert {k: v for k, v in want.model.to_dict().items()} == {
        k: v for k, v in got.model.to_dict().items() if k != "num_classes"
    }
    for field in (
        "seed",
        "optimizer",
        "learning_rate",
        "schedule",
        "warmup_steps",
        "grad_clip_norm",
    ):
        assert got[field] == want[field], field


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
    # float32 rounding only. Adam divides out the gradient's scale, so this says that the
    # 8-way path runs and agrees; the scale itself is checked by the test below.
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
    norm = lambda t: float(optax.tree.norm(t))
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
    memory = {
        name: pipeline.step_memory(16, 1, donate)
        for name, donate in (("without donation", False), ("with donation", True))
    }
    return {
        "machine": harness.machine_info(),
        "quick": True,
        "wall_s": 1.0,
        "htaf": htaf_throughput.measure(log2n=8, repeats=2),
        "packed": packed_inference.measure(batch=8, repeats=1),
        "pipeline": {
            "batch": 16,
            "model": "mlp",
            "train_examples": 64,
            "pipeline": pipe,
            "train_step": step,
            "end_to_end": {"images_per_s": 1.0, "steps": 2},
            "pipeline_over_step": pipe["images_per_s"] / step["images_per_s"],
            "host_read": pipeline.host_read_rates(batches, steps=2, rounds=2),
            "donation": memory,
        },
    }


@pytest.mark.slow
@pytest.mark.parametrize("torch_present", [False, True])
def test_report_renders_from_tiny_measurements(
    tmp_path, monkeypatch, tiny_parts, scaling, torch_present
):
    if torch_present and TORCH_MISSING is not None:
        pytest.skip(f"torch/snntorch not importable: {TORCH_MISSING}")
    if not torch_present:  # the path a host without torch takes
        monkeypatch.setattr(
            snn_step,
            "torch_unavailable_reason",
            lambda: "ModuleNotFoundError: No module named 'torch'",
        )
    r = dict(
        tiny_parts,
        scaling=scaling,
        snn=snn_step.measure(num_steps=2, batch=4, hidden=8, repeats=1, warmup=1, matmul_n=64),
    )
    assert r["packed"]["equal_argmax"] and r["packed"]["weight_memory"]["ratio"] > 30
    md = run.render_markdown(r, "fig.png")
    assert "## Bit-packed binary inference" in md and "Same argmax on every example: **True**" in md
    assert "`make bench`" in md and r["machine"]["jax_backend"] in md and "Quick mode" in md
    # Each section in run.PARTS' order, its method paragraph from its module's docstring.
    heads = [m.__doc__.split("\n")[0] for key, (m, *_) in run.PARTS.items() if key in r]
    assert [md.index(f"## {h}") for h in heads] == sorted(md.index(f"## {h}") for h in heads)
    assert "`grad(sum(f(x)))`" in md and "`jax.lax.associative_scan`" in md
    for name in [*r["snn"]["median_ms"], *r["scaling"]["ms_per_step"]]:
        assert f"| {name} |" in md
    assert "| subtract, same-step, detach, H(0)=1 (default) |" in md
    assert "| host read every step |" in md and "Donation saves" in md
    if torch_present:
        assert "Speed-up vs snnTorch" in md
        assert r["snn"]["speedup_vs_snntorch"]["identical network (atan)"] > 0
    else:
        assert "snnTorch not run: ModuleNotFoundError" in md
        assert "speedup_vs_snntorch" not in r["snn"]
    run.plot(r, str(tmp_path / "fig.png"))
    assert (tmp_path / "fig.png").stat().st_size > 1000


def test_every_benchmark_takes_the_same_flag_library(capsys):
    args = harness.parse(
        ["--num-steps", "3", "--no-torch", "--only", "peers"],
        "usage",
        num_steps=(25, "T"),
        no_torch=(False, "x"),
        json=(None, "out"),
        only=(None, "part", ["peers"]),
    )
    assert (args.num_steps, args.no_torch, args.json, args.only) == (3, True, None, "peers")
    for bad in (["--only", "nope"], ["--repeats", "x"], ["stray"]):
        with pytest.raises(SystemExit) as e:
            harness.parse(bad, "usage", only=(None, "part", ["peers"]), repeats=(2, "n"))
        assert e.value.code == 2
    for module in (
        htaf_throughput,
        packed_inference,
        pipeline,
        run,
        snn_step,
        snn_peers,
        snn_scaling,
        device_check,
    ):
        with pytest.raises(SystemExit) as e:
            module.main(["--help"])
        assert e.value.code == 0
        assert "flags:" in capsys.readouterr().out
    # A flag per scalar keyword of measure(); tuples keep their defaults.
    with pytest.raises(SystemExit):
        snn_scaling.main(["--help"])
    out = capsys.readouterr().out
    assert "--option-repeats" in out and "--t-values" not in out


def test_no_benchmark_imports_experiments():
    import pathlib

    for path in pathlib.Path(run.__file__).parent.glob("*.py"):
        assert "experiments" not in "".join(
            ln
            for ln in path.read_text().splitlines(True)
            if ln.lstrip().startswith(("import ", "from "))
        ), path
