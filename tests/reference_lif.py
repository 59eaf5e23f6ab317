"""The LIF as a plain scan that autodiff differentiates: the slow, obvious reference
the library's hand-written-gradient scan (htaf_jax.spiking.lif) is tested against.
Written from the equations of htaf_jax.spiking's docstring, nothing shared with it
beyond the spike function."""

import jax
import jax.numpy as jnp

from htaf_jax.spiking import threshold_spike


def reference_lif(
    currents,
    *,
    beta,
    threshold,
    spike_fn,
    reset="subtract",
    detach_reset=True,
    reset_delay=False,
    spike_at_threshold=True,
    fire_first=False,
    num_steps=None,
):
    if num_steps is not None:
        currents = jnp.broadcast_to(currents, (num_steps,) + currents.shape)
    subtract = reset == "subtract"
    beta = jnp.asarray(beta, currents.dtype)
    threshold = jnp.asarray(threshold, currents.dtype)

    def fire(u):
        return threshold_spike(spike_fn, u - threshold, spike_at_threshold)

    def held(s):
        return jax.lax.stop_gradient(s) if detach_reset else s

    def step(carry, cur):
        mem, prev = carry
        if fire_first:
            s = fire(mem)
            r = held(s)
            mem = beta * mem + cur - r * threshold if subtract else beta * (1 - r) * mem + cur
        elif reset_delay:
            r = held(prev)
            mem = beta * mem + cur - r * threshold if subtract else beta * (1 - r) * mem + cur
            s = fire(mem)
        else:
            v = beta * mem + cur
            s = fire(v)
            r = held(s)
            mem = v - r * threshold if subtract else v * (1 - r)
        return (mem, s), (s, mem)

    zeros = jnp.zeros_like(currents[0])
    _, (spikes, mems) = jax.lax.scan(step, (zeros, zeros), currents)
    return spikes, mems
