"""Input encoders: direct, rate and latency codes over T steps.

Rate and latency codes need intensities p ∈ [0, 1]. Inputs arrive
standardised by the caller's pipeline as (p − mean)/std; the caller passes
that mean and std (0 and 1 for inputs already in [0, 1]).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike


def to_intensity(x: ArrayLike, mean: ArrayLike, std: ArrayLike) -> Array:
    """Standardised inputs → intensities p = clip(x·std + mean, 0, 1)."""
    return jnp.clip(jnp.asarray(x) * std + mean, 0.0, 1.0)


def direct_encode(x: Array) -> Array:
    """Direct (constant-current) coding: the input itself, at every step.

    Returned without a time axis on purpose: the first layer computes its
    current once and the neuron receives it at each of T steps
    (``lif_dynamics(..., num_steps=T)``).
    """
    return x


def rate_encode(key: Array, x: Array, num_steps: int, *, mean: ArrayLike, std: ArrayLike) -> Array:
    """Rate coding: at each step an input spikes with probability p, its intensity.

    (B, ...) → (T, B, ...) float spikes in {0, 1}, drawn with ``key``
    (snnTorch's ``spikegen.rate``). Each 32-bit random word gives two 16-bit
    uniforms u, and an input spikes when u < round(65536·p): the probability
    is p to within 2^-17 (exactly 0 and 1 at p = 0 and 1), from half the
    random words ``jax.random.bernoulli`` draws (the PRNG is the code's cost).
    """
    p = to_intensity(x, mean, std)
    words = jax.random.bits(key, ((num_steps + 1) // 2,) + x.shape, jnp.uint32)
    uniforms = jnp.concatenate([words & 0xFFFF, words >> 16])[:num_steps]
    level = jnp.round(p * 65536.0).astype(jnp.uint32)
    return (uniforms < level).astype(x.dtype)


def latency_encode(x: Array, num_steps: int, *, mean: ArrayLike, std: ArrayLike) -> Array:
    """Latency coding: one spike per input, brighter ones earlier.

    An input of intensity p fires once, at step round((1 − p)·(T − 1)) (the
    linear code of snnTorch's ``spikegen.latency(linear=True)``); p = 0 never
    fires. (B, ...) → (T, B, ...).
    """
    p = to_intensity(x, mean, std)
    t_fire = jnp.round((1.0 - p) * (num_steps - 1))
    steps = jnp.arange(num_steps, dtype=x.dtype).reshape((num_steps,) + (1,) * x.ndim)
    return ((steps == t_fire[None]) & (p[None] > 0.0)).astype(x.dtype)
