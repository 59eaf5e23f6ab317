"""Our LIF against snnTorch's ``Leaky`` on the same weights and inputs, spike for spike.

A two-layer network (100 → 300 → 100, LIF after each layer), 50 steps, batch 4,
float32. Weights and inputs are multiples of 2^-8 and 2^-4 so both frameworks'
matmuls are exact whatever their summation order: the comparison is of the
neuron updates, not of matmul rounding. Skipped when snnTorch is not installed
(it needs torch).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from htaf_jax.linen.spiking import LIF

T, B, N_IN, N_HID, N_OUT = 50, 4, 100, 300, 100
BETA = 0.875


def _network(weight_scale: float, bias: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)

    def dyadic(a, bits):
        return (np.round(a * 2**bits) / 2**bits).astype(np.float32)

    w1 = dyadic(rng.normal(0, 0.3 * weight_scale, (N_HID, N_IN)), 8)
    b1 = dyadic(rng.normal(bias, 0.1, N_HID), 8)
    w2 = dyadic(rng.normal(0, 0.15 * weight_scale, (N_OUT, N_HID)), 8)
    b2 = dyadic(rng.normal(bias, 0.1, N_OUT), 8)
    x = dyadic(rng.uniform(0, 1, (T, B, N_IN)), 4)
    w_loss = rng.normal(size=(T, B, N_OUT)).astype(np.float32)
    return (w1, b1, w2, b2), x, w_loss


def _snntorch(weights, x, w_loss, reset, reset_delay):
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from snntorch import surrogate

    torch.manual_seed(0)
    w1, b1, w2, b2 = (torch.tensor(a, requires_grad=True) for a in weights)
    neurons = [
        snn.Leaky(
            beta=BETA,
            threshold=1.0,
            reset_mechanism=reset,
            reset_delay=reset_delay,
            spike_grad=surrogate.atan(alpha=2.0),
        )
        for _ in range(2)
    ]
    mem1, mem2 = (n.reset_mem() for n in neurons)
    trace = {"s1": [], "m1": [], "s2": [], "m2": []}
    for t in range(T):  # snnTorch's per-step loop, as its tutorials write it
        s1, mem1 = neurons[0](torch.tensor(x[t]) @ w1.T + b1, mem1)
        s2, mem2 = neurons[1](s1 @ w2.T + b2, mem2)
        for k, v in zip(trace, (s1, mem1, s2, mem2)):
            trace[k].append(v)
    trace = {k: torch.stack(v) for k, v in trace.items()}
    w = torch.tensor(w_loss)
    loss = torch.sum(trace["s2"] * w) + torch.sum(trace["m2"] * w)
    loss.backward()
    out = {k: v.detach().numpy() for k, v in trace.items()}
    return out, (w1.grad.numpy(), w2.grad.numpy())


def _ours(weights, x, w_loss, reset, reset_delay, detach_reset=True):
    lif = LIF(
        beta=BETA,
        threshold=1.0,
        reset=reset,
        reset_delay=reset_delay,
        detach_reset=detach_reset,
        spike_at_threshold=False,
        surrogate="atan",
    )  # snnTorch's default spike_grad, atan(alpha=2)

    def run(w1, w2):
        _, b1, _, b2 = weights
        s1, m1 = lif.apply({}, jnp.asarray(x) @ w1.T + b1)
        s2, m2 = lif.apply({}, s1 @ w2.T + b2)
        loss = jnp.sum(s2 * w_loss) + jnp.sum(m2 * w_loss)
        return loss, {"s1": s1, "m1": m1, "s2": s2, "m2": m2}

    grads, out = jax.jit(jax.grad(run, argnums=(0, 1), has_aux=True))(weights[0], weights[2])
    return jax.tree.map(np.asarray, out), jax.tree.map(np.asarray, grads)


# snnTorch detaches the reset it applies one step late (``mem_reset`` returns a
# detached R) but not the same-step one (``spk − R`` keeps spk's gradient): its
# reset_delay=False is our detach_reset=False.
@pytest.mark.parametrize(
    "reset,reset_delay,network",
    [
        ("subtract", True, (1.0, 0.0)),  # snnTorch's defaults
        ("zero", True, (1.0, 0.0)),
        ("zero", False, (1.0, 0.0)),
        ("subtract", False, (0.1, 0.2)),  # weaker input: see test_snntorch_no_delay_subtract_quirk
    ],
)
def test_lif_matches_snntorch_leaky_spike_for_spike(reset, reset_delay, network):
    weights, x, w_loss = _network(*network)
    theirs, their_grads = _snntorch(weights, x, w_loss, reset, reset_delay)
    ours, our_grads = _ours(weights, x, w_loss, reset, reset_delay, detach_reset=reset_delay)
    if not reset_delay and reset == "subtract":
        assert theirs["m1"].max() < 1.0 and theirs["m2"].max() < 1.0  # the regime compared
    for layer in ("1", "2"):
        spikes = theirs["s" + layer]
        assert 0.05 < spikes.mean() < 0.6  # a real test: many spikes, many silences
        np.testing.assert_array_equal(ours["s" + layer], spikes)  # every spike
        np.testing.assert_allclose(ours["m" + layer], theirs["m" + layer], atol=1e-5)
    for ours_g, theirs_g in zip(our_grads, their_grads):  # BPTT through atan
        np.testing.assert_allclose(ours_g, theirs_g, atol=1e-5 * np.abs(theirs_g).max())


def test_snntorch_no_delay_subtract_quirk():
    """snnTorch's ``Leaky(reset_delay=False)`` with a subtract reset recomputes a
    pending reset R = H(U[t−1] − θ) from the carried membrane and subtracts R·θ
    before its firing test (adding it back after): a neuron whose membrane stays
    ≥ θ after its reset needs V ≥ 2θ to fire again. Our ``reset_delay=False`` has
    no such term; with strong input the two differ, and only there."""
    weights, x, w_loss = _network(1.0)
    theirs, _ = _snntorch(weights, x, w_loss, "subtract", False)
    ours, _ = _ours(weights, x, w_loss, "subtract", False)
    carried = np.concatenate([np.zeros_like(theirs["m1"][:1]), theirs["m1"][:-1]])
    differ = ours["s1"] != theirs["s1"]
    assert differ.any()
    first = differ & (np.cumsum(differ, axis=0) == 1)  # each neuron's first mismatch
    assert np.all(carried[first] >= 1.0)


def _dyadic(a, bits):
    return (np.round(a * 2**bits) / 2**bits).astype(np.float32)


@pytest.mark.parametrize("neuron", ["Synaptic", "RLeaky"])
def test_synaptic_and_recurrent_match_snntorch(neuron):
    """snnTorch's ``Synaptic`` and ``RLeaky`` (all-to-all, their defaults: subtract,
    reset_delay) against ours with the same options, spike for spike."""
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from htaf_jax.linen.spiking import RecurrentLIF, Synaptic

    rng = np.random.default_rng(1)
    scale = 0.3 if neuron == "Synaptic" else 1.0  # its current accumulates over steps
    currents = _dyadic(rng.normal(0.3, 0.5, (T, B, N_HID)) * scale, 6)
    options = dict(
        beta=BETA, threshold=1.0, reset_delay=True, spike_at_threshold=False, surrogate="atan"
    )
    if neuron == "Synaptic":
        theirs = snn.Synaptic(alpha=0.75, beta=BETA)
        state = theirs.reset_mem()
        ours = Synaptic(alpha=0.75, **options)
        params = {}
    else:
        theirs = snn.RLeaky(beta=BETA, linear_features=N_HID)
        w = _dyadic(rng.normal(0, 0.05, (N_HID, N_HID)), 8)
        b = _dyadic(rng.normal(0, 0.05, N_HID), 8)
        with torch.no_grad():
            theirs.recurrent.weight.copy_(torch.tensor(w))
            theirs.recurrent.bias.copy_(torch.tensor(b))
        state = theirs.reset_mem()
        ours = RecurrentLIF(**options)
        params = {"params": {"recurrent_kernel": w.T, "recurrent_bias": b}}
    spikes, mems = [], []
    with torch.no_grad():
        for t in range(T):
            if neuron == "Synaptic":
                spk, syn, mem = theirs(torch.tensor(currents[t]), *state)
                state = (syn, mem)
            else:
                spk, mem = theirs(torch.tensor(currents[t]), *state)
                state = (spk, mem)
            spikes.append(spk.numpy())
            mems.append(mem.numpy())
    our_spikes, our_mems = ours.apply(params, jnp.asarray(currents))
    assert 0.05 < np.mean(spikes) < 0.6
    np.testing.assert_array_equal(np.asarray(our_spikes), np.stack(spikes))
    np.testing.assert_allclose(np.asarray(our_mems), np.stack(mems), atol=1e-5)
