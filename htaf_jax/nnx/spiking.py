"""Spiking neuron layers (Flax NNX): ``LIF`` and ``IF`` over a whole sequence.

Thin over :mod:`htaf_jax.spiking`, whose docstring gives the update equations;
the same classes, fields, defaults and parameter names (``beta_logit``,
``threshold``) as ``htaf_jax.linen.spiking``. NNX creates parameters when the
module is built, so a layer with per-neuron learnable β or θ takes
``in_features`` (one step's feature shape, without time and batch). The
neurons behave the same in train and eval mode.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax import Array

from htaf_jax import spiking
from htaf_jax.surrogates import resolve_surrogate

__all__ = ["LIF", "IF"]


class LIF(nnx.Module):
    """Leaky integrate-and-fire neurons: currents (T, B, ...) → (spikes, membrane).

    Call with currents (T, B, ...), or with one time-constant current (B, ...)
    and ``num_steps=T`` (direct input). Both outputs are (T, B, ...).
    Fields as ``htaf_jax.linen.LIF`` (see there); additionally ``in_features``
    (an int or a shape; needed only with ``per_neuron`` and a learnable β or θ)
    ``param_dtype`` and ``rngs`` (unused: the parameters start from constants; accepted so
    every layer is built the same way).
    """

    def __init__(self, *, beta: float = 0.9, threshold: float = 1.0,
                 reset: spiking.Reset = "subtract", detach_reset: bool = True,
                 reset_delay: bool = False, spike_at_threshold: bool = True,
                 learn_beta: bool = False, learn_threshold: bool = False,
                 per_neuron: bool = False, surrogate: str | Callable = "htaf",
                 in_features: int | Sequence[int] | None = None,
                 param_dtype=jnp.float32, rngs: nnx.Rngs | None = None):
        del rngs
        spiking.check_reset(reset)
        self.beta = beta
        self.reset, self.detach_reset = reset, detach_reset
        self.reset_delay, self.spike_at_threshold = reset_delay, spike_at_threshold
        self.learn_beta, self.learn_threshold = learn_beta, learn_threshold
        self.per_neuron, self.surrogate = per_neuron, surrogate
        if per_neuron and (learn_beta or learn_threshold) and in_features is None:
            raise ValueError(f"{type(self).__name__}(per_neuron=True) with a learnable beta or "
                             "threshold needs in_features (one step's feature shape)")
        if isinstance(in_features, int):
            in_features = (in_features,)
        shape = spiking.neuron_param_shape(in_features or (), per_neuron)
        if learn_beta:
            self.beta_logit = nnx.Param(jnp.full(shape, spiking.decay_to_logit(beta), param_dtype))
        # θ is the Param when learnable (the Linen parameter's name), else the float.
        self.threshold = (nnx.Param(jnp.full(shape, threshold, param_dtype)) if learn_threshold
                          else threshold)

    def __call__(self, currents: Array, num_steps: int | None = None) -> tuple[Array, Array]:
        beta = jnp.asarray(self.beta, currents.dtype)
        if self.learn_beta:
            beta = jax.nn.sigmoid(self.beta_logit[...])
        threshold = (self.threshold[...] if self.learn_threshold
                     else jnp.asarray(self.threshold, currents.dtype))
        return spiking.lif_dynamics(
            currents, beta=beta, threshold=threshold, spike_fn=resolve_surrogate(self.surrogate),
            reset=self.reset, detach_reset=self.detach_reset, reset_delay=self.reset_delay,
            spike_at_threshold=self.spike_at_threshold, num_steps=num_steps)


class IF(LIF):
    """Integrate-and-fire neurons: ``LIF`` without leak (β = 1, not learnable)."""

    def __init__(self, *, beta: float = 1.0, learn_beta: bool = False, **kwargs):
        if beta != 1.0 or learn_beta:
            raise ValueError("IF neurons have beta = 1 and no learnable decay; use LIF")
        super().__init__(beta=1.0, **kwargs)
