"""Neurons whose step needs the previous spike inside it (recurrent LIF, ALIF), the
synaptic neuron, and the helpers the layers share.

The recurrent LIF and ALIF run one scan that autodiff differentiates: its
carry is one step's state (membrane, previous spike, adaptation), so time and
memory grow linearly in T. The synaptic neuron's current does not depend on
the spikes, so it is integrated first and feeds the LIF of
:mod:`htaf_jax.spiking.lif`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from htaf_jax.spiking.lif import (
    NeuronOptions,
    SpikeFn,
    check_options,
    lif_dynamics,
    threshold_spike,
)
from htaf_jax.spiking.readouts import leaky_integrate


def _stateful_scan(
    currents: Array,
    num_steps: int | None,
    *,
    beta,
    threshold,
    spike_fn: SpikeFn,
    options: NeuronOptions,
    recurrent: Callable[[Array], Array] | None = None,
    adaptation: tuple[ArrayLike, ArrayLike] | None = None,
) -> tuple[Array, Array]:
    """The LIF step plus a recurrent current from S[t−1] and/or an adaptive
    threshold θ + γ·a[t], scanned over time and differentiated by autodiff."""
    check_options(options.reset, options.reset_delay, options.fire_first)
    subtract = options.reset == "subtract"
    dtype = currents.dtype  # a scan carry cannot change type: parameters compute in it
    beta, threshold = jnp.asarray(beta, dtype), jnp.asarray(threshold, dtype)
    if adaptation is not None:
        adaptation = tuple(jnp.asarray(a, dtype) for a in adaptation)  # pyright: ignore[reportAssignmentType]

    def held(s):
        return jax.lax.stop_gradient(s) if options.detach_reset else s

    def fire(mem, thr):
        return threshold_spike(spike_fn, mem - thr, options.spike_at_threshold)

    # fire_first recomputes the previous spike from the carried state instead.
    keep_spike = not options.fire_first

    def step(carry, cur):
        mem, prev, adapt = carry
        if options.fire_first:  # the delayed update's S[t−1], from U[t−1] and a[t−1]
            prev = fire(mem, threshold if adaptation is None else threshold + adaptation[1] * adapt)
        if recurrent is not None:
            cur = cur + recurrent(prev).astype(dtype)
        thr = threshold
        if adaptation is not None:
            rho, gamma = adaptation
            adapt = rho * adapt + (1.0 - rho) * prev
            thr = threshold + gamma * adapt
        if options.reset_delay:
            r = held(prev)
            mem = beta * mem + cur - r * thr if subtract else beta * (1.0 - r) * mem + cur
            spike = prev if options.fire_first else fire(mem, thr)
        else:
            mem = beta * mem + cur
            spike = fire(mem, thr)
            r = held(spike)
            mem = mem - r * thr if subtract else mem * (1.0 - r)
        return (mem, spike if keep_spike else None, adapt), (spike, mem)

    zeros = jnp.zeros_like(currents if num_steps is not None else currents[0])
    init = (zeros, zeros if keep_spike else None, zeros if adaptation is not None else None)
    if num_steps is None:
        _, (spikes, mems) = jax.lax.scan(step, init, currents)
    else:  # a time-constant current: closed over, not broadcast to T steps
        _, (spikes, mems) = jax.lax.scan(
            lambda c, _: step(c, currents), init, None, length=num_steps
        )
    return spikes, mems


def recurrent_lif_dynamics(
    currents: Array,
    *,
    recurrent: Callable[[Array], Array],
    beta: ArrayLike,
    threshold: ArrayLike,
    spike_fn: SpikeFn,
    num_steps: int | None = None,
    **options,
) -> tuple[Array, Array]:
    """Recurrent LIF: the LIF update with input I[t] + R(S[t−1]), S[−1] = 0.

    ``recurrent`` maps one step's spikes (B, ...) to a current of the same
    shape: all-to-all ``s @ W + b`` or one-to-one ``V·s`` (snnTorch's
    ``RLeaky(all_to_all=...)``). It runs inside the scan, so it must be a pure
    function of arrays (no Linen submodule). Options as :func:`lif_dynamics`.
    """
    return _stateful_scan(
        currents,
        num_steps,
        beta=beta,
        threshold=threshold,
        spike_fn=spike_fn,
        options=NeuronOptions(**options),
        recurrent=recurrent,
    )


def synaptic_dynamics(
    currents: Array,
    *,
    alpha: ArrayLike,
    beta: ArrayLike,
    threshold: ArrayLike,
    spike_fn: SpikeFn,
    num_steps: int | None = None,
    **options,
) -> tuple[Array, Array]:
    """Current-based synaptic LIF: a synaptic current with its own decay α feeds the LIF.

        I_syn[t] = α·I_syn[t−1] + I[t],  I_syn[−1] = 0
        then the LIF update with input I_syn[t]

    (snnTorch's ``Synaptic``). The synaptic current does not depend on the
    spikes, so it is computed before the neuron's scan
    (``leaky_integrate(currents, alpha)``). Options as :func:`lif_dynamics`.
    """
    return lif_dynamics(
        leaky_integrate(currents, alpha, num_steps),
        beta=beta,
        threshold=threshold,
        spike_fn=spike_fn,
        **options,
    )


def alif_dynamics(
    currents: Array,
    *,
    beta: ArrayLike,
    threshold: ArrayLike,
    adapt_decay: ArrayLike,
    adapt_scale: ArrayLike,
    spike_fn: SpikeFn,
    num_steps: int | None = None,
    **options,
) -> tuple[Array, Array]:
    """Adaptive-threshold LIF (ALIF; Bellec et al. 2018, "Long short-term memory
    and learning-to-learn in networks of spiking neurons"):

        a[t] = ρ·a[t−1] + (1 − ρ)·S[t−1],  a[−1] = 0     (adaptation)
        A[t] = θ + γ·a[t]                                 (threshold)
        then the LIF update with A[t] in place of θ, in the firing test and the reset

    ρ = ``adapt_decay`` (Bellec's ρ = exp(−δt/τ_a)), γ = ``adapt_scale``
    (Bellec's β); each a scalar or an array broadcasting against one step
    (B, ...), like β and θ, so a layer can pass learnable ones (the Linen and
    NNX ``ALIF`` learn ρ as σ(logit) and γ as is). The adaptation's gradient
    flows through S[t−1] (no detach), and to ρ and γ through a[t] and A[t]
    (in the reset term too, where S itself may be detached). Options as
    :func:`lif_dynamics`.
    """
    return _stateful_scan(
        currents,
        num_steps,
        beta=beta,
        threshold=threshold,
        spike_fn=spike_fn,
        options=NeuronOptions(**options),
        adaptation=(adapt_decay, adapt_scale),
    )


def neuron_param_shape(features: Sequence[int], per_neuron: bool) -> tuple[int, ...]:
    """Shape of a learnable β, θ, α, ρ or γ: one per neuron (one step's feature shape) or shared ()."""
    return tuple(features) if per_neuron else ()
