"""Readouts of a spiking network's last layer, and the non-spiking leaky integrator."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike


def leaky_integrate(currents: Array, beta: ArrayLike, num_steps: int | None = None) -> Array:
    """Non-spiking leaky integrator U[t] = β·U[t−1] + I[t], U[−1] = 0.

    (T, B, ...) → (T, B, ...); with ``num_steps``, one (B, ...) current for T steps
    (closed over by the scan, so its gradient is summed in the scan's carry).
    """
    beta = jnp.asarray(beta, currents.dtype)

    def step(mem, cur):
        mem = beta * mem + cur
        return mem, mem

    if num_steps is not None:
        zeros = jnp.zeros_like(currents)
        return jax.lax.scan(lambda m, _: step(m, currents), zeros, None, length=num_steps)[1]
    return jax.lax.scan(step, jnp.zeros_like(currents[0]), currents)[1]


def membrane_readout(currents: Array, beta: float = 0.0) -> Array:
    """(T, B, C) → (B, C): mean over time of a non-spiking leaky integrator's
    membrane (:func:`leaky_integrate`); β = 0 is the mean current."""
    mems = currents if beta == 0.0 else leaky_integrate(currents, beta)
    return jnp.mean(mems, axis=0)


def spike_count_readout(spikes: Array) -> Array:
    """(T, B, C) → (B, C): spike count per output neuron over the T steps."""
    return jnp.sum(spikes, axis=0)
