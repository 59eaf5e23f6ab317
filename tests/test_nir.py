"""NIR exchange (htaf_jax.nir): the time convention, round trips through NIR and
through NIR files, and spike-for-spike agreement with snnTorch 1.0 both ways.

Against snnTorch: networks of a few hundred neurons over 50 steps, float32,
ordinary (not dyadic) weights, so the two frameworks' matmuls may round
differently. Each comparison also checks that no membrane of ours lies within
MARGIN of its threshold: the spikes then cannot be decided by rounding, and
every one must be equal.
"""
import numpy as np
import pytest

import jax
import jax.numpy as jnp
from flax import nnx

from htaf_jax.nir import DT, Flatten, SpikingSequential, from_nir, to_nir
from htaf_jax.nnx.spiking import IF, LIF

nir = pytest.importorskip("nir")

T = 50
ZERO = dict(reset="zero", reset_delay=False, spike_at_threshold=False)
MARGIN = 1e-5


def spikes_in(key, shape, p=0.3):
    return jnp.asarray(np.random.default_rng(key).uniform(size=shape) < p, jnp.float32)


def given(a):
    return lambda *_: jnp.asarray(a)


def linear(rng, n_in, n_out, gain=1.0):
    """nnx.Linear with NumPy-drawn weights (no JAX random init to compile per test)."""
    return nnx.Linear(n_in, n_out, rngs=RNGS,
                      kernel_init=given(rng.normal(0, gain / np.sqrt(n_in), (n_in, n_out))),
                      bias_init=given(rng.normal(0, 0.1, n_out)))


def conv(rng, c_in, c_out, **options):
    return nnx.Conv(c_in, c_out, (3, 3), rngs=RNGS, **options,
                    kernel_init=given(rng.normal(0, 1 / np.sqrt(9 * c_in), (3, 3, c_in, c_out))),
                    bias_init=given(rng.normal(0, 0.1, c_out)))


RNGS = nnx.Rngs(0)


def dense_net(seed=0, n_in=40, n_hid=300, n_out=100):
    rng = np.random.default_rng(seed)
    return SpikingSequential([
        linear(rng, n_in, n_hid, 2.0), LIF(beta=0.9, threshold=1.0, **ZERO),
        linear(rng, n_hid, n_out, 2.0), LIF(beta=0.8, threshold=0.5, **ZERO)])


def conv_net(seed=0):
    rng = np.random.default_rng(seed)
    return SpikingSequential([
        conv(rng, 2, 4, padding=1), LIF(beta=0.9, threshold=0.5, **ZERO),
        Flatten(), linear(rng, 8 * 8 * 4, 50, 2.0), LIF(beta=0.85, threshold=0.5, **ZERO)])


def neuron_margin(net, x):
    """Smallest |V − θ| over every neuron and step, V the membrane before reset."""
    margins = []
    h, timed = x, True
    for layer in net.layers:
        if isinstance(layer, LIF):
            beta = jnp.asarray(layer.beta, jnp.float32)
            def step(mem, cur):
                v = beta * mem + cur
                return jnp.where(v > layer.threshold, 0.0, v), v
            _, v = jax.lax.scan(step, jnp.zeros_like(h[0]), h)
            margins.append(float(jnp.min(jnp.abs(v - layer.threshold))))
            h, _ = layer(h)
        else:
            h = layer(h)
    return min(margins)


def clear_input(net, shape, seeds=range(20)):
    """The first random input (T, 8, *shape) on which no membrane is within MARGIN of θ."""
    for seed in seeds:
        x = spikes_in(seed, (T, 8) + tuple(shape))
        if neuron_margin(net, x) > MARGIN:
            return x
    raise AssertionError("no input keeps every membrane MARGIN away from its threshold")


# ------------------------------------------------------------ convention --

def test_export_writes_snntorch_time_convention():
    rng = np.random.default_rng(0)
    net = SpikingSequential([linear(rng, 3, 4), LIF(beta=0.9, threshold=0.7, **ZERO),
                             nnx.Linear(4, 2, use_bias=False, kernel_init=given(np.ones((4, 2))),
                                        rngs=RNGS),
                             IF(threshold=2.0, **ZERO)])
    g = to_nir(net, (3,))
    lif, if_ = g.nodes["1"], g.nodes["3"]
    assert isinstance(g.nodes["0"], nir.Affine) and isinstance(g.nodes["2"], nir.Linear)
    assert isinstance(lif, nir.LIF) and isinstance(if_, nir.IF)
    beta = np.float64(np.float32(0.9))
    np.testing.assert_allclose(lif.tau, DT / (1 - beta), rtol=1e-7)        # τ = dt/(1 − β)
    np.testing.assert_allclose(lif.r, lif.tau / DT, rtol=1e-7)             # R = τ/dt: weight 1
    np.testing.assert_array_equal(lif.v_leak, 0.0)
    np.testing.assert_array_equal(lif.v_reset, 0.0)
    np.testing.assert_array_equal(lif.v_threshold, np.float32(0.7))
    np.testing.assert_allclose(if_.r, 1 / DT)                              # v += dt·R·I = I
    np.testing.assert_array_equal(g.nodes["0"].weight, np.asarray(net.layers[0].kernel[...]).T)
    assert sorted(g.edges) == sorted([("input", "0"), ("0", "1"), ("1", "2"), ("2", "3"),
                                      ("3", "output")])


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
    for graph, decay, weight in ((g, 1 - DT / tau[0], r[0] * DT / tau[0]),
                                 (g_if, 1.0, 0.5)):
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
    per = LIF(beta=0.9, threshold=0.6, learn_beta=True, learn_threshold=True, per_neuron=True,
              in_features=(8, 8, 4), **ZERO)
    per.beta_logit[...] = rng.normal(0, 1, (8, 8, 4))
    per.threshold[...] = rng.uniform(0.3, 1.0, (8, 8, 4))
    net = SpikingSequential([
        conv(rng, 2, 4, padding="SAME"), per, Flatten(),
        LIF(beta=np.linspace(0.5, 0.95, 256), threshold=0.3, **ZERO),
        linear(rng, 256, 10), IF(threshold=1.5, **ZERO)])
    path = tmp_path / "net.nir"
    nir.write(path, to_nir(net, (8, 8, 2)))
    back = from_nir(nir.read(path))
    assert [type(m) for m in back.layers] == [type(m) for m in net.layers]
    x = spikes_in(0, (T, 3, 8, 8, 2))
    for layer, ours, theirs in zip(net.layers, net.layer_outputs(x), back.layer_outputs(x)):
        np.testing.assert_array_equal(ours, theirs)
        if isinstance(layer, LIF):
            assert 0 < float(ours.mean()) < 1


def test_direct_input_equals_repeated_input():
    net, x = dense_net(n_hid=30, n_out=10), jnp.asarray(np.random.default_rng(0).normal(size=(4, 40)))
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


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_exported_by_us_imported_by_snntorch_spikes_equal(kind):
    net = dense_net() if kind == "dense" else conv_net()
    shape = (40,) if kind == "dense" else (8, 8, 2)
    x = clear_input(net, shape)
    ours = np.asarray(net(x))
    model = import_from_nir(to_nir(net, shape))
    if kind == "dense":
        theirs = run_torch(model, x)
    else:  # snnTorch's imported Flatten(start_dim=0) would merge the batch axis: one sample at a time
        theirs = np.stack([run_torch(model, nhwc_to_nchw(x)[:, b]) for b in range(x.shape[1])], 1)
    assert 0.01 < ours.mean() < 0.9
    np.testing.assert_array_equal(ours, theirs)


def snntorch_leaky(shape, beta, threshold, **options):
    options = {"reset_mechanism": "zero", "reset_delay": False, **options}
    # Per-neuron tensors: a scalar Leaky exports 0-d LIF nodes that nir's infer_types rejects.
    return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, threshold),
                     init_hidden=True, **options)


def snntorch_net(kind, **options):
    torch.manual_seed(0)
    if kind == "dense":
        return torch.nn.Sequential(
            torch.nn.Linear(40, 300), snntorch_leaky((300,), 0.9, 1.0, **options),
            torch.nn.Linear(300, 100), snntorch_leaky((100,), 0.8, 0.5, **options))
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), snntorch_leaky((4, 8, 8), 0.9, 0.5, **options),
        torch.nn.Flatten(), torch.nn.Linear(256, 50), snntorch_leaky((50,), 0.85, 0.5, **options))


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_exported_by_snntorch_imported_by_us_spikes_equal(kind):
    model = snntorch_net(kind)
    shape = (40,) if kind == "dense" else (8, 8, 2)
    graph = export_to_nir(model, torch.zeros((1,) + shape[-1:] + shape[:-1]), ignore_dims=[0])
    net = from_nir(graph)
    x = clear_input(net, shape)
    ours = np.asarray(net(x))
    theirs = run_torch(model, x if kind == "dense" else nhwc_to_nchw(x))
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
    g = nir.NIRGraph.from_list(nir.Affine(weight=np.ones((3, 2)), bias=np.zeros(3)),
                               nir.LI(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3)))
    name = [k for k, n in g.nodes.items() if isinstance(n, nir.LI)][0]
    with pytest.raises(ValueError, match=f"node '{name}' of type LI is not supported"):
        from_nir(g)


def test_recurrent_cycle_and_leak_are_refused():
    lif = nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([3])), "lif": lif,
                            "w": nir.Linear(weight=np.eye(3)),
                            "output": nir.Output(output_type=np.array([3]))},
                     edges=[("input", "lif"), ("lif", "w"), ("w", "lif"), ("lif", "output")])
    with pytest.raises(ValueError, match="node 'lif' .LIF. is on a cycle"):
        from_nir(g)
    leaky = nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.ones(3), v_threshold=np.ones(3))
    with pytest.raises(ValueError, match="LIF.: v_leak ≠ 0"):
        from_nir(nir.NIRGraph.from_list(leaky))


@pytest.mark.parametrize("options", [dict(reset="subtract"), dict(reset="zero", reset_delay=True)])
def test_export_refuses_resets_nir_cannot_express(options):
    net = SpikingSequential([linear(np.random.default_rng(0), 3, 4), LIF(**options)])
    with pytest.raises(ValueError, match="layer 1 .LIF.*reset='zero', reset_delay=False"):
        to_nir(net, (3,))


def test_missing_nir_package_is_one_line(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "nir", None)
    with pytest.raises(ImportError, match="needs the 'nir' package: pip install nir"):
        to_nir([IF(**ZERO)], (3,))
