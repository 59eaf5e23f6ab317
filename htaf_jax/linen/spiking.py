"""Spiking neuron layers (Flax Linen): ``LIF`` and ``IF`` over a whole sequence.

Thin over :mod:`htaf_jax.spiking`, whose docstring gives the update equations;
``htaf_jax.nnx.spiking`` has the same classes, fields, defaults and parameter
names (``beta_logit``, ``threshold``).
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from htaf_jax import spiking
from htaf_jax.surrogates import resolve_surrogate

__all__ = ["LIF", "IF"]


class LIF(nn.Module):
    """Leaky integrate-and-fire neurons: currents (T, B, ...) → (spikes, membrane).

    Call with currents (T, B, ...), or with one time-constant current (B, ...)
    and ``num_steps=T`` (direct input). Both outputs are (T, B, ...); the
    membrane is the state carried to the next step. Per step, from U = 0:

      reset_delay=False (default): V = β·U + I  (leak, then input);
        S = H(V − θ)  (fire);  U = V − S·θ (subtract) or V·(1 − S) (zero).
      reset_delay=True (snnTorch): U = β·U + I − S_prev·θ (subtract) or
        β·(1 − S_prev)·U + I (zero);  S = H(U − θ).

    The reset's gradient is cut (``detach_reset``) or flows through the
    surrogate; :mod:`htaf_jax.spiking` gives the details and the options that
    reproduce snnTorch's ``Leaky``.

    Attributes:
      beta: decay β ∈ (0, 1] (the initial value when learnable).
      threshold: firing threshold θ (the initial value when learnable).
      reset: "subtract" (soft) or "zero" (hard).
      detach_reset: no gradient through the spike in the reset term.
      reset_delay: apply a spike's reset at the next step, as snnTorch's
        ``Leaky`` does by default.
      spike_at_threshold: H(0) = 1 (fire at U = θ); False: snnTorch's H(0) = 0.
      learn_beta: learn β as σ(``beta_logit``), so it stays in (0, 1).
      learn_threshold: learn θ (parameter ``threshold``).
      per_neuron: a learnable β/θ per neuron (one step's feature shape)
        rather than one shared scalar.
      surrogate: the spike function: a registry name, a ``Surrogate`` or a
        callable x → {0, 1} with its own gradient.
      param_dtype: dtype of the learnable β logit and θ.
    """
    beta: float = 0.9
    threshold: float = 1.0
    reset: spiking.Reset = "subtract"
    detach_reset: bool = True
    reset_delay: bool = False
    spike_at_threshold: bool = True
    learn_beta: bool = False
    learn_threshold: bool = False
    per_neuron: bool = False
    surrogate: str | Callable = "htaf"
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        spiking.check_reset(self.reset)
        if self.learn_beta:
            spiking.decay_to_logit(self.beta)  # raises unless 0 < β < 1
        super().__post_init__()

    @nn.compact
    def __call__(self, currents: Array, num_steps: int | None = None) -> tuple[Array, Array]:
        features = currents.shape[1:] if num_steps is not None else currents.shape[2:]
        shape = spiking.neuron_param_shape(features, self.per_neuron)
        beta = jnp.asarray(self.beta, currents.dtype)
        if self.learn_beta:
            logit = self.param("beta_logit", nn.initializers.constant(
                spiking.decay_to_logit(self.beta)), shape, self.param_dtype)
            beta = jax.nn.sigmoid(logit)
        threshold = jnp.asarray(self.threshold, currents.dtype)
        if self.learn_threshold:
            threshold = self.param("threshold", nn.initializers.constant(self.threshold),
                                   shape, self.param_dtype)
        return spiking.lif_dynamics(
            currents, beta=beta, threshold=threshold, spike_fn=resolve_surrogate(self.surrogate),
            reset=self.reset, detach_reset=self.detach_reset, reset_delay=self.reset_delay,
            spike_at_threshold=self.spike_at_threshold, num_steps=num_steps)


class IF(LIF):
    """Integrate-and-fire neurons: ``LIF`` without leak (β = 1, not learnable)."""
    beta: float = 1.0

    def __post_init__(self):
        if self.beta != 1.0 or self.learn_beta:
            raise ValueError("IF neurons have beta = 1 and no learnable decay; use LIF")
        super().__post_init__()
