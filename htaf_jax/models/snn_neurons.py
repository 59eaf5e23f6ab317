"""Spiking neurons (LIF, IF), input encoders and readouts.

Time is the leading axis: a layer's input currents are (T, B, ...) and all T
steps are computed at once by the parameterised op before the neuron; only
the neuron's elementwise dynamics run in a ``lax.scan`` (SpikingJelly's
multi-step mode). The scan body is a pure function closing over arrays, never
a Linen submodule: calling a submodule inside a raw ``lax.scan`` leaks a
tracer.

Neuron equations, per step t (SpikingJelly's charge → fire → reset order):

    U'[t] = β·U[t−1] + I[t]                 charge (IF: β = 1)
    S[t]  = H(U'[t] − θ)                    fire; H(0) = 1, surrogate backward
    U[t]  = U'[t] − S[t]·θ                  reset="subtract" (soft reset)
    U[t]  = U'[t]·(1 − S[t])                reset="zero"     (hard reset to 0)

with U[−1] = 0. ``detach_reset`` stops the gradient through S in the reset
term (SpikingJelly's ``detach_reset``), so only the firing path carries a
surrogate gradient. snnTorch's ``Leaky`` subtracts the previous step's reset
after decaying (U[t] = β·U[t−1] + I[t] − S[t−1]·θ); the two differ by a
factor β on the subtracted threshold.
"""
from __future__ import annotations

import math
from typing import Callable, Literal

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from htaf_jax.models.binary_units import heaviside_unit

__all__ = [
    "LIF", "IF", "lif_dynamics", "leaky_integrate",
    "direct_encode", "rate_encode", "latency_encode", "to_intensity",
    "membrane_readout", "spike_count_readout",
    "FASHION_MNIST_MEAN", "FASHION_MNIST_STD",
]

# The data pipeline standardises pixels x ∈ [0, 1] to (x − mean)/std with these.
FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530

Reset = Literal["subtract", "zero"]


def _zeros_like_varying(x: Array) -> Array:
    """Zeros shaped like x, varying over the same manual mesh axes (inside shard_map a
    scan carry must match the per-device type of what the body adds to it)."""
    zeros = jnp.zeros_like(x)
    vma = tuple(getattr(jax.typeof(x), "vma", ()) or ())
    return jax.lax.pcast(zeros, vma, to="varying") if vma else zeros


def lif_dynamics(currents: Array, *, beta, threshold, spike_fn: Callable[[Array], Array],
                 reset: Reset = "subtract", detach_reset: bool = True,
                 num_steps: int | None = None) -> tuple[Array, Array]:
    """Runs the LIF equations above; returns (spikes, membrane after reset).

    Args:
      currents: (T, B, ...) input currents, or, when ``num_steps`` is given, one
        time-constant current (B, ...) applied at every step (direct input: the
        layer before computed it once rather than T times).
      beta: decay, a scalar or an array broadcasting against one step (B, ...).
      threshold: θ, same broadcasting as ``beta``.
      spike_fn: x → {0, 1} with a surrogate gradient.
      reset: "subtract" or "zero".
      detach_reset: stop the gradient through the spike in the reset term.
      num_steps: T for a time-constant current; None for a (T, B, ...) one.

    Returns:
      spikes and membrane potentials, both (T, B, ...).
    """
    if reset not in ("subtract", "zero"):
        raise ValueError(f"reset must be 'subtract' or 'zero', got {reset!r}")

    def step(mem, cur):
        mem = beta * mem + cur
        spike = spike_fn(mem - threshold)
        r = jax.lax.stop_gradient(spike) if detach_reset else spike
        mem = mem - r * threshold if reset == "subtract" else mem * (1.0 - r)
        return mem, (spike, mem)

    mem0 = _zeros_like_varying(currents if num_steps is not None else currents[0])
    if num_steps is None:
        _, (spikes, mems) = jax.lax.scan(step, mem0, currents)
    else:
        _, (spikes, mems) = jax.lax.scan(lambda m, _: step(m, currents), mem0,
                                         None, length=num_steps)
    return spikes, mems


def leaky_integrate(currents: Array, beta: float) -> Array:
    """Non-spiking leaky integrator U[t] = β·U[t−1] + I[t]; (T, B, ...) → (T, B, ...)."""
    def step(mem, cur):
        mem = beta * mem + cur
        return mem, mem
    _, mems = jax.lax.scan(step, _zeros_like_varying(currents[0]), currents)
    return mems


class LIF(nn.Module):
    """Leaky integrate-and-fire neurons over a whole (T, B, ...) sequence.

    Attributes:
      beta: decay β ∈ (0, 1]; 1 gives an IF neuron.
      threshold: firing threshold θ (initial value when learnable).
      reset: "subtract" (soft) or "zero" (hard).
      detach_reset: no gradient through the reset term.
      learn_beta: learn β, parameterised as β = σ(logit) so it stays in (0, 1).
      learn_threshold: learn θ.
      per_neuron: learnable β/θ per neuron (shape of one step's features)
        rather than one shared scalar.
      surrogate: binary unit (registry name, ``Surrogate`` or callable).
    """
    beta: float = 0.9
    threshold: float = 1.0
    reset: Reset = "subtract"
    detach_reset: bool = True
    learn_beta: bool = False
    learn_threshold: bool = False
    per_neuron: bool = False
    surrogate: str | Callable = "htaf"

    @nn.compact
    def __call__(self, currents: Array, num_steps: int | None = None) -> tuple[Array, Array]:
        """currents (T, B, ...) [or (B, ...) with ``num_steps``] → (spikes, membrane), (T, B, ...)."""
        features = currents.shape[1:] if num_steps is not None else currents.shape[2:]
        shape = tuple(features) if self.per_neuron else ()
        beta = jnp.asarray(self.beta, currents.dtype)
        if self.learn_beta:
            if not 0.0 < self.beta < 1.0:
                raise ValueError(f"a learnable decay needs 0 < beta < 1, got {self.beta}")
            logit0 = math.log(self.beta / (1.0 - self.beta))
            beta = jax.nn.sigmoid(self.param("beta_logit", nn.initializers.constant(logit0), shape))
        threshold = jnp.asarray(self.threshold, currents.dtype)
        if self.learn_threshold:
            threshold = self.param("threshold", nn.initializers.constant(self.threshold), shape)
        spikes, mems = lif_dynamics(
            currents, beta=beta, threshold=threshold, spike_fn=heaviside_unit(self.surrogate),
            reset=self.reset, detach_reset=self.detach_reset, num_steps=num_steps)
        chex.assert_equal_shape([spikes, mems])
        return spikes, mems


class IF(LIF):
    """Integrate-and-fire neurons: LIF without leak (β = 1, not learnable)."""
    beta: float = 1.0

    def __post_init__(self):
        if self.beta != 1.0 or self.learn_beta:
            raise ValueError("IF neurons have beta = 1 and no learnable decay; use LIF")
        super().__post_init__()


# ----------------------------------------------------------------------------
# Encoders. Inputs are images standardised by the data pipeline; the rate and
# latency codes need intensities in [0, 1], recovered by undoing that
# standardisation (x·std + mean) and clipping. A user whose images are already
# in [0, 1] passes mean=0, std=1.


def to_intensity(x: Array, mean: float = FASHION_MNIST_MEAN,
                 std: float = FASHION_MNIST_STD) -> Array:
    """Standardised pixels → intensities in [0, 1]."""
    return jnp.clip(x * std + mean, 0.0, 1.0)


def direct_encode(x: Array) -> Array:
    """Direct (constant-current) coding: the input itself, at every step.

    Returned without a time axis on purpose: the first layer computes its
    current once and the neuron receives it at each of T steps.
    """
    return x


def rate_encode(key: Array, x: Array, num_steps: int, mean: float = FASHION_MNIST_MEAN,
                std: float = FASHION_MNIST_STD) -> Array:
    """Rate coding: at each step a pixel spikes with probability = its intensity.

    (B, ...) → (T, B, ...) float spikes in {0, 1}, drawn with ``key``.

    Each 32-bit random word gives two 16-bit uniforms u, and a pixel spikes
    when u < round(65536·p): the spike probability is p to within 2^-17
    (exactly 0 and 1 at p = 0 and 1), for half the random words that
    ``jax.random.bernoulli`` draws. On CPU, where the counter-based PRNG is the
    rate code's cost, this is 2.3× faster (benchmarks/snn_step.py).
    """
    p = to_intensity(x, mean, std)
    words = jax.random.bits(key, ((num_steps + 1) // 2,) + x.shape, jnp.uint32)
    uniforms = jnp.concatenate([words & 0xFFFF, words >> 16])[:num_steps]
    threshold = jnp.round(p * 65536.0).astype(jnp.uint32)
    return (uniforms < threshold).astype(x.dtype)


def latency_encode(x: Array, num_steps: int, mean: float = FASHION_MNIST_MEAN,
                   std: float = FASHION_MNIST_STD) -> Array:
    """Latency coding: one spike per pixel, brighter pixels earlier.

    A pixel of intensity p fires once at step round((1 − p)·(T − 1)) (linear
    code, as snnTorch's ``spikegen.latency(linear=True)``); a pixel with
    p = 0 never fires. (B, ...) → (T, B, ...).
    """
    p = to_intensity(x, mean, std)
    t_fire = jnp.round((1.0 - p) * (num_steps - 1))
    steps = jnp.arange(num_steps, dtype=x.dtype).reshape((num_steps,) + (1,) * x.ndim)
    return ((steps == t_fire[None]) & (p[None] > 0.0)).astype(x.dtype)


# ----------------------------------------------------------------------------
# Readouts: (T, B, C) → logits (B, C).

def membrane_readout(currents: Array, beta: float = 0.0) -> Array:
    """Mean over time of a non-spiking leaky integrator's membrane (β = 0: mean current)."""
    mems = currents if beta == 0.0 else leaky_integrate(currents, beta)
    return jnp.mean(mems, axis=0)


def spike_count_readout(spikes: Array) -> Array:
    """Spike count per output neuron over the T steps."""
    return jnp.sum(spikes, axis=0)
