"""NIR exchange (htaf_jax.nir): the time convention, round trips through NIR and
through NIR files, and spike-for-spike agreement with snnTorch 1.0 both ways.

Against snnTorch: networks of a few hundred neurons over 50 steps, float32,
ordinary (not dyadic) weights, so the two frameworks' matmuls may round
differently. Each comparison runs on an input where no membrane of ours lies
within MARGIN of its threshold (the spikes then cannot be decided by
rounding), and every spike must be equal.

snnTorch's importer runs a recurrent graph (its own RLeaky export included)
as a plain Leaky beside a Linear wired to the input, not as an RLeaky, so the
recurrent checks compare our import of snnTorch's RLeaky export with that
RLeaky itself.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from htaf_jax.nir import DT, Flatten, SpikingSequential, from_linen, from_nir, to_nir
from htaf_jax.nnx.spiking import ALIF, IF, LIF, RecurrentLIF, Synaptic

nir = pytest.importorskip("nir")
# snnTorch 1.0's export_to_nir calls nirtorch's extract_nir_graph, which nirtorch 2.x deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph:DeprecationWarning")

T = 50
ZERO = dict(reset="zero", reset_delay=False, spike_at_threshold=False)
MARGIN = 1e-5


def spikes_in(key, shape, p=0.3):
    return jnp.asarray(np.random.default_rng(key).uniform(size=shape) < p, jnp.float32)


def given(a):
    return lambda *_: jnp.asarray(a)


def linear(rng, n_in, n_out, gain=1.0):
    """nnx.Linear with NumPy-drawn weights (no JAX random init to compile per test)."""
    return nnx.Linear(
        n_in,
        n_out,
        rngs=RNGS,
        kernel_init=given(rng.normal(0, gain / np.sqrt(n_in), (n_in, n_out))),
        bias_init=given(rng.normal(0, 0.1, n_out)),
    )


def conv(rng, c_in, c_out, **options):
    return nnx.Conv(
        c_in,
        c_out,
        (3, 3),
        rngs=RNGS,
        **options,
        kernel_init=given(rng.normal(0, 1 / np.sqrt(9 * c_in), (3, 3, c_in, c_out))),
        bias_init=given(rng.normal(0, 0.1, c_out)),
    )


RNGS = nnx.Rngs(0)


def dense_net(seed=0, n_in=40, n_hid=300, n_out=100, synaptic=False):
    rng = np.random.default_rng(seed)
    last = (
        Synaptic(alpha=0.7, beta=0.8, threshold=1.0, **ZERO)
        if synaptic
        else LIF(beta=0.8, threshold=0.5, **ZERO)
    )
    return SpikingSequential(
        [
            linear(rng, n_in, n_hid, 2.0),
            LIF(beta=0.9, threshold=1.0, **ZERO),
            linear(rng, n_hid, n_out, 2.0),
            last,
        ]
    )


def recurrent_net(seed=0, n=100):
    rng = np.random.default_rng(seed)
    all_to_all = RecurrentLIF(all_to_all=True, in_features=n, rngs=RNGS, beta=0.9, **ZERO)
    all_to_all.recurrent_kernel[...] = rng.normal(0, 0.5 / np.sqrt(n), (n, n))
    all_to_all.recurrent_bias[...] = rng.normal(0, 0.1, n)
    one_to_one = RecurrentLIF(
        all_to_all=False, per_neuron=True, in_features=50, beta=0.85, threshold=0.5, **ZERO
    )
    one_to_one.recurrent_weight[...] = rng.uniform(-0.5, 0.5, 50)
    return SpikingSequential(
        [linear(rng, 40, n, 3.0), all_to_all, linear(rng, n, 50, 2.0), one_to_one]
    )


def conv_net(seed=0):
    rng = np.random.default_rng(seed)
    return SpikingSequential(
        [
            conv(rng, 2, 4, padding=1),
            LIF(beta=0.9, threshold=0.5, **ZERO),
            Flatten(),
            linear(rng, 8 * 8 * 4, 50, 2.0),
            LIF(beta=0.85, threshold=0.5, **ZERO),
        ]
    )


def near_threshold(net, x, margin=MARGIN):
    """Whether some membrane before reset lies within ``margin`` of θ: each neuron
    layer is rerun with θ ± margin; with the zero reset the trajectory depends on θ
    only through the spikes, so equal spikes mean no membrane in (θ − m, θ + m]."""
    h = x
    for layer in net.layers:
        if hasattr(layer, "reset"):
            spikes = []
            for shift in (-margin, margin):
                moved = nnx.clone(layer)
                moved.threshold = np.asarray(layer.threshold, np.float32) + np.float32(shift)
                spikes.append(moved(h)[0])
            if not bool(jnp.all(spikes[0] == spikes[1])):
                return True
            h, _ = layer(h)
        else:
            h = layer(h)
    return False


def clear_input(net, shape, seeds=range(20)):
    """The first random input (T, 8, *shape) on which no membrane is within MARGIN of θ."""
    for seed in seeds:
        x = spikes_in(seed, (T, 8) + tuple(shape))
        if not near_threshold(net, x):
            return x
    raise AssertionError("no input keeps every membrane MARGIN away from its threshold")


# ------------------------------------------------------------ convention --


def test_export_writes_snntorch_time_convention():
    rng = np.random.default_rng(0)
    net = SpikingSequential(
        [
            linear(rng, 3, 4),
            LIF(beta=0.9, threshold=0.7, **ZERO),
            nnx.Linear(4, 2, use_bias=False, kernel_init=given(np.ones((4, 2))), rngs=RNGS),
            IF(threshold=2.0, **ZERO),
        ]
    )
    g = to_nir(net, (3,))
    lif, if_ = g.nodes["1"], g.nodes["3"]
    assert isinstance(g.nodes["0"], nir.Affine) and isinstance(g.nodes["2"], nir.Linear)
    assert isinstance(lif, nir.LIF) and isinstance(if_, nir.IF)
    beta = np.float64(np.float32(0.9))
    np.testing.assert_allclose(lif.tau, DT / (1 - beta), rtol=1e-7)  # τ = dt/(1 − β)
    np.testing.assert_allclose(lif.r, lif.tau / DT, rtol=1e-7)  # R = τ/dt: weight 1
    np.testing.assert_array_equal(lif.v_leak, 0.0)
    np.testing.assert_array_equal(lif.v_reset, 0.0)
    np.testing.assert_array_equal(lif.v_threshold, np.float32(0.7))
    np.testing.assert_allclose(if_.r, 1 / DT)  # v += dt·R·I = I
    np.testing.assert_array_equal(g.nodes["0"].weight, np.asarray(net.layers[0].kernel[...]).T)
    assert sorted(g.edges) == sorted(
        [("input", "0"), ("0", "1"), ("1", "2"), ("2", "3"), ("3", "output")]
    )


def test_beta_round_trip_is_exact_in_float32():
    betas = np.random.default_rng(0).uniform(0.5, 0.9999, 4000).astype(np.float32)
    net = SpikingSequential([LIF(beta=betas, threshold=1.0, **ZERO)])
    back = from_nir(to_nir(net, (betas.size,))).layers[0]
    np.testing.assert_array_equal(np.asarray(back.beta), betas)


def test_import_follows_euler_steps_of_nir_equations():
    """A NIR LIF whose input weight R·dt/τ is 2 and an IF with R·dt = 0.5, against
    a float64 forward-Euler simulation of NIR's equations (fire on v > θ, v ← 0)."""
    tau, r, theta = np.array([5e-4]), np.array([10.0]), np.array([1.0])
    g = nir.NIRGraph.from_list(nir.LIF(tau=tau, r=r, v_leak=np.zeros(1), v_threshold=theta))
    currents = np.random.default_rng(1).uniform(0, 0.4, (T, 1, 1))
    g_if = nir.NIRGraph.from_list(nir.IF(r=np.array([0.5 / DT]), v_threshold=theta))
    for graph, decay, weight in ((g, 1 - DT / tau[0], r[0] * DT / tau[0]), (g_if, 1.0, 0.5)):
        v, expected = 0.0, []
        for i in currents[:, 0, 0]:
            v = decay * v + weight * i
            expected.append(float(v > theta[0]))
            v = 0.0 if v > theta[0] else v
        got = from_nir(graph)(jnp.asarray(currents, jnp.float32))
        np.testing.assert_array_equal(np.asarray(got)[:, 0, 0], expected)
        assert 0 < sum(expected) < T


# ------------------------------------------------------------ round trips --


def test_round_trip_dense_conv_and_learnable_per_neuron_params(tmp_path):
    rng = np.random.default_rng(3)
    per = LIF(
        beta=0.9,
        threshold=0.6,
        learn_beta=True,
        learn_threshold=True,
        per_neuron=True,
        in_features=(8, 8, 4),
        **ZERO,
    )
    per.beta_logit[...] = rng.normal(0, 1, (8, 8, 4))
    per.threshold[...] = rng.uniform(0.3, 1.0, (8, 8, 4))
    net = SpikingSequential(
        [
            conv(rng, 2, 4, padding="SAME"),
            per,
            Flatten(),
            LIF(beta=np.linspace(0.5, 0.95, 256), threshold=0.3, **ZERO),
            linear(rng, 256, 10),
            IF(threshold=1.5, **ZERO),
        ]
    )
    path = tmp_path / "net.nir"
    graph = to_nir(net, (8, 8, 2))
    graph.infer_types()  # nir's own type check passes
    nir.write(path, graph)
    back = from_nir(nir.read(path))
    assert [type(m) for m in back.layers] == [type(m) for m in net.layers]
    x = spikes_in(0, (T, 3, 8, 8, 2))
    for layer, ours, theirs in zip(net.layers, net.layer_outputs(x), back.layer_outputs(x)):
        np.testing.assert_array_equal(ours, theirs)
        if isinstance(layer, LIF):
            assert 0 < float(ours.mean()) < 1


def test_round_trip_recurrent_and_synaptic(tmp_path):
    net = recurrent_net()
    net.layers.append(linear(np.random.default_rng(1), 50, 20, 2.0))
    net.layers.append(Synaptic(alpha=np.linspace(0.5, 0.9, 20), beta=0.8, threshold=0.5, **ZERO))
    graph = to_nir(net, (40,))
    assert isinstance(graph.nodes["1.w_rec"], nir.Affine)  # snnTorch's RLeaky form
    assert isinstance(graph.nodes["3.w_rec"], nir.Linear)  # one-to-one: diagonal
    assert {("1", "1.w_rec"), ("1.w_rec", "1")} <= set(graph.edges)
    assert isinstance(graph.nodes["5"], nir.CubaLIF)
    graph.infer_types()
    nir.write(tmp_path / "rec.nir", graph)
    back = from_nir(nir.read(tmp_path / "rec.nir"))
    assert [type(m) for m in back.layers] == [type(m) for m in net.layers]
    assert [m.all_to_all for m in back.layers if isinstance(m, RecurrentLIF)] == [True, False]
    x = spikes_in(5, (T, 4, 40))
    for layer, ours, theirs in zip(net.layers, net.layer_outputs(x), back.layer_outputs(x)):
        np.testing.assert_array_equal(ours, theirs)
        if hasattr(layer, "reset"):
            assert 0 < float(ours.mean()) < 1


def test_direct_input_equals_repeated_input():
    net = dense_net(n_hid=30, n_out=10)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 40)), jnp.float32)
    np.testing.assert_array_equal(net(x, num_steps=T), net(jnp.broadcast_to(x, (T, 4, 40))))


# ------------------------------------------------------------ snnTorch --

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
pytest.importorskip("nirtorch")
from snntorch import utils as snn_utils  # noqa: E402
from snntorch.export_nir import export_to_nir  # noqa: E402
from snntorch.import_nir import import_from_nir  # noqa: E402

torch.set_num_threads(1)


def run_torch(model, x_steps):
    """snnTorch module with hidden state inside its neurons, run step by step on (T, B, ...)."""
    snn_utils.reset(model)
    outputs = []
    with torch.no_grad():
        for x_t in x_steps:
            out = model(torch.from_numpy(np.array(x_t)))
            outputs.append(out[0] if isinstance(out, tuple) else out)
    return torch.stack(outputs).numpy()


def nhwc_to_nchw(x):
    return np.ascontiguousarray(np.moveaxis(np.asarray(x), -1, 2))


@pytest.mark.parametrize("kind", ["dense", "conv", "synaptic"])
def test_exported_by_us_imported_by_snntorch_spikes_equal(kind):
    net = conv_net() if kind == "conv" else dense_net(synaptic=kind == "synaptic")
    shape = (8, 8, 2) if kind == "conv" else (40,)
    x = clear_input(net, shape)
    ours = np.asarray(net(x))
    model = import_from_nir(to_nir(net, shape))
    if kind == "conv":  # snnTorch's imported Flatten(start_dim=0) merges the batch axis
        theirs = np.stack([run_torch(model, nhwc_to_nchw(x)[:, b]) for b in range(x.shape[1])], 1)
    else:
        theirs = run_torch(model, x)
    assert 0.01 < ours.mean() < 0.9
    np.testing.assert_array_equal(ours, theirs)


def per_neuron(shape, **values):
    # Per-neuron tensors: a scalar snnTorch neuron exports 0-d nodes that nir's infer_types rejects.
    return {k: torch.full(shape, v) for k, v in values.items()}


def snntorch_net(kind, **options):
    torch.manual_seed(0)
    options = {"reset_mechanism": "zero", "reset_delay": False, "init_hidden": True, **options}

    def leaky(shape, beta, threshold):
        return snn.Leaky(**per_neuron(shape, beta=beta, threshold=threshold), **options)

    if kind == "conv":
        return torch.nn.Sequential(
            torch.nn.Conv2d(2, 4, 3, padding=1),
            leaky((4, 8, 8), 0.9, 0.5),
            torch.nn.Flatten(),
            torch.nn.Linear(256, 50),
            leaky((50,), 0.85, 0.5),
        )
    if kind in ("rleaky", "rleaky_one_to_one"):
        recurrence = (
            dict(all_to_all=True, linear_features=100)
            if kind == "rleaky"
            else dict(all_to_all=False, V=torch.linspace(-0.5, 0.5, 100))
        )
        model = torch.nn.Sequential(
            torch.nn.Linear(40, 100),
            snn.RLeaky(**per_neuron((100,), beta=0.9, threshold=1.0), **recurrence, **options),
            torch.nn.Linear(100, 50),
            leaky((50,), 0.8, 0.5),
        )
        with torch.no_grad():
            model[0].weight.mul_(3.0)
        return model
    last = (
        snn.Synaptic(**per_neuron((100,), alpha=0.7, beta=0.8, threshold=1.0), **options)
        if kind == "synaptic"
        else leaky((100,), 0.8, 0.5)
    )
    return torch.nn.Sequential(
        torch.nn.Linear(40, 300), leaky((300,), 0.9, 1.0), torch.nn.Linear(300, 100), last
    )


@pytest.mark.parametrize("kind", ["dense", "conv", "synaptic", "rleaky", "rleaky_one_to_one"])
def test_exported_by_snntorch_imported_by_us_spikes_equal(kind, tmp_path):
    model = snntorch_net(kind)
    shape = (8, 8, 2) if kind == "conv" else (40,)
    graph = export_to_nir(model, torch.zeros((1,) + shape[-1:] + shape[:-1]), ignore_dims=[0])
    nir.write(tmp_path / "snntorch.nir", graph)  # through a NIR file
    net = from_nir(nir.read(tmp_path / "snntorch.nir"))
    if kind.startswith("rleaky"):
        assert net.layers[1].all_to_all == (kind == "rleaky")
    x = clear_input(net, shape)
    if kind == "dense":  # the check can fire: some membrane is within 0.05 of θ
        assert near_threshold(net, x, margin=0.05)
    ours = np.asarray(net(x))
    theirs = run_torch(model, nhwc_to_nchw(x) if kind == "conv" else x)
    assert 0.01 < ours.mean() < 0.9
    np.testing.assert_array_equal(ours, theirs)


def test_snntorch_subtract_reset_export_reads_as_nir_zero_reset_like_snntorch_import():
    """NIR's LIF has no subtract reset: snnTorch writes its default Leaky (subtract,
    reset_delay=True) as a plain nir.LIF and reads it back as a zero reset. We
    read the same graph as snnTorch's importer does, spike for spike."""
    model = snntorch_net("dense", reset_mechanism="subtract", reset_delay=True)
    graph = export_to_nir(model, torch.zeros(1, 40), ignore_dims=[0])
    x = spikes_in(3, (T, 8, 40))
    net = from_nir(graph)
    assert all(m.reset == "zero" for m in net.layers if isinstance(m, LIF))
    np.testing.assert_array_equal(np.asarray(net(x)), run_torch(import_from_nir(graph), x))


# ------------------------------------------------------------ errors --


def test_unsupported_node_is_named_with_its_type():
    g = nir.NIRGraph.from_list(
        nir.Affine(weight=np.ones((3, 2)), bias=np.zeros(3)),
        nir.LI(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3)),
    )
    name = [k for k, n in g.nodes.items() if isinstance(n, nir.LI)][0]
    with pytest.raises(ValueError, match=f"node '{name}' of type LI is not supported"):
        from_nir(g)


def test_cycles_other_than_a_recurrent_weight_and_leak_are_refused():
    lif = nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "w1": nir.Affine(weight=np.eye(3), bias=np.zeros(3)),
            "lif": lif,
            "w2": nir.Linear(weight=np.eye(3)),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[("input", "w1"), ("w1", "lif"), ("lif", "w2"), ("w2", "w1"), ("lif", "output")],
    )
    with pytest.raises(ValueError, match="node 'w1' .Affine. is on a cycle"):
        from_nir(g)
    leaky = nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.ones(3), v_threshold=np.ones(3))
    with pytest.raises(ValueError, match="LIF.: v_leak ≠ 0"):
        from_nir(nir.NIRGraph.from_list(leaky))


@pytest.mark.parametrize("options", [dict(reset="subtract"), dict(reset="zero", reset_delay=True)])
def test_export_refuses_resets_nir_cannot_express(options):
    net = SpikingSequential([linear(np.random.default_rng(0), 3, 4), LIF(**options)])
    with pytest.raises(ValueError, match="layer 1 .LIF.*reset='zero', reset_delay=False"):
        to_nir(net, (3,))


def test_export_refuses_alif():
    net = SpikingSequential([linear(np.random.default_rng(0), 3, 4), ALIF(**ZERO)])
    with pytest.raises(ValueError, match=r"layer 1 \(ALIF\): NIR has no adaptive-threshold neuron"):
        to_nir(net, (3,))


def test_missing_nir_package_is_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "nir", None)
    with pytest.raises(ImportError, match="needs the 'nir' package: pip install nir"):
        to_nir([IF(**ZERO)], (3,))


@pytest.mark.slow  # eight layers, each initialised and applied (make test-slow)
def test_from_linen_equals_the_linen_layers_and_exports():
    import flax.linen as nn

    from htaf_jax.linen import spiking as linen_spiking

    modules = [
        nn.Conv(4, (3, 3), padding=1),
        Flatten(),
        nn.Dense(30),
        linen_spiking.LIF(learn_beta=True, learn_threshold=True, per_neuron=True, **ZERO),
        nn.Dense(20, use_bias=False),
        linen_spiking.RecurrentLIF(all_to_all=True, beta=0.8, threshold=0.5, **ZERO),
        nn.Dense(10),
        linen_spiking.Synaptic(alpha=0.6, learn_alpha=True, **ZERO),
    ]
    x = spikes_in(6, (20, 3, 8, 8, 2))
    h, params, linen_out = x, [], []
    for i, module in enumerate(modules):
        if isinstance(module, Flatten):
            h, p = module(h), {}
        else:
            p = module.init(jax.random.key(i), h).get("params", {})
            # Moved off their constant initial values, so per-neuron values differ.
            p = jax.tree.map(
                lambda v, i=i: v + 0.1 * jax.random.normal(jax.random.key(i), v.shape), p
            )
            h = module.apply({"params": p}, h)
            h = h[0] if isinstance(h, tuple) else h
        params.append(p)
        linen_out.append(h)
    net = from_linen(modules, params)
    for ours, theirs in zip(net.layer_outputs(x), linen_out):
        np.testing.assert_array_equal(ours, theirs)
    assert 0 < float(linen_out[-1].mean()) < 1
    back = from_nir(to_nir(net, (8, 8, 2)))
    np.testing.assert_array_equal(back(x), linen_out[-1])
