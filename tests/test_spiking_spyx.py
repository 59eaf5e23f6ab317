"""Spyx 1.0's LIF next to ours: its ordering, checked step for step.

Spyx's ``nn.LIF.__call__(x, V)`` fires on the membrane it is given, before
adding the step's input, then leaks, adds the input and subtracts the spike:

    S[t] = H(V[t−1] − θ);   V[t] = β·V[t−1] + x[t] − S[t]·θ

That is our ``fire_first=True`` ordering (the ``reset_delay=True`` update with
each spike emitted one step earlier): V[t] is our U[t], and its reset term keeps
the spike's gradient (our ``detach_reset=False``). Skipped when Spyx is not
installed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from htaf_jax.linen.spiking import LIF

T, B, N = 50, 4, 300
BETA = 0.875


def test_spyx_lif_is_our_fire_first_ordering():
    spyx_nn = pytest.importorskip("spyx.nn")
    spyx_axn = pytest.importorskip("spyx.axn")
    from flax import nnx

    activation = spyx_axn.arctan()  # used by both: the same H(0) = 0 and surrogate
    theirs = spyx_nn.LIF((N,), beta=BETA, threshold=1.0, activation=activation, rngs=nnx.Rngs(0))
    ours = LIF(
        beta=BETA,
        threshold=1.0,
        reset_delay=True,
        fire_first=True,
        detach_reset=False,
        spike_at_threshold=False,
        surrogate=activation,
    )
    rng = np.random.default_rng(0)
    currents = jnp.asarray(rng.normal(0.3, 0.5, (T, B, N)).astype(np.float32))
    w_spike, w_mem = (jnp.asarray(rng.normal(size=(T, B, N)).astype(np.float32)) for _ in range(2))

    def spyx_run(x):
        def step(v, x_t):
            s, v = theirs(x_t, v)
            return v, (s, v)

        _, (spikes, mems) = jax.lax.scan(step, theirs.initial_state(B), x)
        return spikes, mems

    def loss(run):
        def f(x):
            spikes, mems = run(x)
            return jnp.sum(spikes * w_spike) + jnp.sum(mems * w_mem), (spikes, mems)

        return jax.jit(jax.grad(f, has_aux=True))(currents)

    their_grad, (their_spikes, their_mems) = loss(spyx_run)
    our_grad, (our_spikes, our_mems) = loss(lambda x: ours.apply({}, x))

    assert 0.05 < float(their_spikes.mean()) < 0.6
    np.testing.assert_array_equal(their_spikes[0], 0.0)
    np.testing.assert_array_equal(np.asarray(our_spikes), np.asarray(their_spikes))
    np.testing.assert_allclose(np.asarray(our_mems), np.asarray(their_mems), atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(our_grad), np.asarray(their_grad), atol=1e-5 * float(jnp.abs(their_grad).max())
    )
