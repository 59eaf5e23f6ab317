"""Spiking neuron layers (Flax Linen): LIF, IF, recurrent LIF, synaptic, ALIF.

Each layer maps input currents (T, B, ...) over a whole sequence to
(spikes, membrane), both (T, B, ...); with one time-constant current (B, ...)
pass ``num_steps=T`` (direct input). Thin over :mod:`htaf_jax.spiking`, whose
docstring gives the update equations and the options that reproduce
snnTorch's ``Leaky``; ``htaf_jax.nnx.spiking`` has the same classes, fields,
defaults and parameter names.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from htaf_jax import spiking
from htaf_jax.units import resolve_unit

__all__ = ["LIF", "IF", "RecurrentLIF", "Synaptic", "ALIF", "NeuronFields"]


def _with_fields(spec: type[spiking.LIFFields], base: type) -> type:
    """``base`` with ``spec``'s own fields (its additions and changed defaults) as
    dataclass fields: the fields are declared once, in :mod:`htaf_jax.spiking.fields`."""
    own = spec.own()
    namespace = {
        "__annotations__": {f.name: f.type for f in own},
        "__module__": __name__,
        "spec": spec,  # a class attribute (not annotated), not a field
        **{f.name: f.default for f in own},
    }
    return type(f"_{spec.__name__}", (base,), namespace)


class NeuronFields(_with_fields(spiking.LIFFields, nn.Module)):
    """The fields every neuron shares (documented on ``LIF``), for the neurons and for the
    models that pass them on (``neuron_fields()``: their values by name)."""

    def neuron_fields(self) -> dict:
        return {f: getattr(self, f) for f in NEURON_FIELDS}


NEURON_FIELDS = spiking.LIFFields.names()


class _Neuron(NeuronFields):
    """Parameters and helpers every neuron shares."""

    param_dtype: Any = jnp.float32

    def __post_init__(self):
        spiking.build_fields(
            self.spec,
            type(self).__name__,  # checks the values
            {n: getattr(self, n) for n in self.spec.names()},
        )
        super().__post_init__()

    def _features(self, currents: Array, num_steps: int | None) -> tuple[int, ...]:
        return tuple(currents.shape[1:] if num_steps is not None else currents.shape[2:])

    def _decay(self, name: str, value: float, learn: bool, shape, dtype) -> Array | float:
        """A decay in [0, 1]; learnable as σ(``name``) so it stays in (0, 1), else the
        value as given (a Python number: the neurons skip its gradient)."""
        if not learn:
            return value
        logit = spiking.decay_to_logit(value, name.removesuffix("_logit"))
        init = nn.initializers.constant(logit)
        return jax.nn.sigmoid(self.param(name, init, shape, self.param_dtype))

    def _common(self, currents: Array, num_steps: int | None) -> dict:
        """β, θ (parameters when learnable), the spike function and the reset options."""
        shape = spiking.neuron_param_shape(self._features(currents, num_steps), self.per_neuron)
        threshold = self.threshold
        if self.learn_threshold:
            threshold = self.param(
                "threshold", nn.initializers.constant(self.threshold), shape, self.param_dtype
            )
        return dict(
            beta=self._decay("beta_logit", self.beta, self.learn_beta, shape, currents.dtype),
            threshold=threshold,
            spike_fn=resolve_unit(self.surrogate),
            num_steps=num_steps,
            **{name: getattr(self, name) for name in spiking.NeuronOptions._fields},
        )


class LIF(_Neuron):
    """Leaky integrate-and-fire neurons: currents (T, B, ...) → (spikes, membrane).

    The membrane is the state carried to the next step; the update for each option, and
    the reset's gradient, are in :mod:`htaf_jax.spiking`.

    Attributes:
      beta: decay β ∈ [0, 1] (the initial value when learnable, then in (0, 1)).
      threshold: firing threshold θ > 0 (the initial value when learnable).
      reset: "subtract" (soft) or "zero" (hard).
      detach_reset: no gradient through the spike in the reset term.
      reset_delay: apply a spike's reset at the next step, as snnTorch's
        ``Leaky`` does by default.
      spike_at_threshold: H(0) = 1 (fire at U = θ); False: snnTorch's H(0) = 0.
      fire_first: fire on the membrane carried in, before the step's input is
        added (Spyx's ``nn.LIF``); needs ``reset_delay``.
      learn_beta: learn β as σ(``beta_logit``), so it stays in (0, 1).
      learn_threshold: learn θ (parameter ``threshold``).
      per_neuron: a learnable β/θ (and the other neurons' learnable α, ρ, γ) per
        neuron (one step's feature shape) rather than one shared scalar.
      surrogate: the spike function: a registry name, a ``Unit`` or a callable
        x → {0, 1} with its own gradient.
      param_dtype: dtype of the learnable parameters.
    """

    @nn.compact
    def __call__(self, currents: Array, num_steps: int | None = None) -> tuple[Array, Array]:
        return spiking.lif_dynamics(currents, **self._common(currents, num_steps))


class IF(_with_fields(spiking.IFFields, LIF)):
    """Integrate-and-fire neurons: ``LIF`` without leak (β = 1, not learnable)."""


class RecurrentLIF(_with_fields(spiking.RecurrentLIFFields, _Neuron)):
    """LIF whose input also gets its own previous spikes: I[t] + R(S[t−1]).

    ``all_to_all=True``: R(s) = s @ W + b over the last axis (parameters
    ``recurrent_kernel`` (N, N), LeCun-normal, and ``recurrent_bias`` (N,),
    zeros); on feature maps this is a 1×1 recurrence over channels.
    ``all_to_all=False``: R(s) = V·s, one weight per neuron with ``per_neuron``
    or one shared (``recurrent_weight``, starting at ``recurrent_init``).
    snnTorch's ``RLeaky``; LIF's fields and update otherwise
    (:func:`htaf_jax.spiking.recurrent_lif_dynamics`). snnTorch's zero reset
    also zeroes that step's input (U = (1 − S_prev)·(β·U + I + R)); ours resets
    as the LIF does.
    """

    @nn.compact
    def __call__(self, currents: Array, num_steps: int | None = None) -> tuple[Array, Array]:
        common = self._common(currents, num_steps)
        if self.all_to_all:
            n = currents.shape[-1]
            kernel = self.param(
                "recurrent_kernel", nn.initializers.lecun_normal(), (n, n), self.param_dtype
            )
            bias = self.param("recurrent_bias", nn.initializers.zeros, (n,), self.param_dtype)
            recurrent = lambda s: s @ kernel + bias  # noqa: E731
        else:
            shape = spiking.neuron_param_shape(self._features(currents, num_steps), self.per_neuron)
            weight = self.param(
                "recurrent_weight",
                nn.initializers.constant(self.recurrent_init),
                shape,
                self.param_dtype,
            )
            recurrent = lambda s: weight * s  # noqa: E731
        return spiking.recurrent_lif_dynamics(currents, recurrent=recurrent, **common)


class Synaptic(_with_fields(spiking.SynapticFields, _Neuron)):
    """Current-based synaptic LIF: I_syn = α·I_syn + I feeds the LIF (snnTorch's
    ``Synaptic``; :func:`htaf_jax.spiking.synaptic_dynamics`). As with
    ``RecurrentLIF``, snnTorch's delayed zero reset also zeroes that step's
    input ((1 − S_prev)·(β·U + I_syn)); ours resets as the LIF does.

    Its attributes are LIF's and:

    Attributes:
      alpha: synaptic decay α ∈ [0, 1] (the initial value when learnable).
      learn_alpha: learn α as σ(``alpha_logit``), per neuron with ``per_neuron``.
    """

    @nn.compact
    def __call__(self, currents: Array, num_steps: int | None = None) -> tuple[Array, Array]:
        shape = spiking.neuron_param_shape(self._features(currents, num_steps), self.per_neuron)
        alpha = self._decay("alpha_logit", self.alpha, self.learn_alpha, shape, currents.dtype)
        return spiking.synaptic_dynamics(currents, alpha=alpha, **self._common(currents, num_steps))


class ALIF(_with_fields(spiking.ALIFFields, _Neuron)):
    """Adaptive-threshold LIF (Bellec et al. 2018): the LIF with threshold
    A[t] = θ + γ·a[t], a[t] = ρ·a[t−1] + (1 − ρ)·S[t−1], a[−1] = 0, in the
    firing test and the reset (:func:`htaf_jax.spiking.alif_dynamics`).

    Its attributes are LIF's (``threshold`` is the baseline θ) and:

    Attributes:
      adapt_decay: ρ ∈ [0, 1), the adaptation's decay per step (the initial
        value when learnable, then in (0, 1)).
      adapt_scale: γ, how far one unit of adaptation raises the threshold
        (the initial value when learnable).
      learn_adapt_decay: learn ρ as σ(``adapt_decay_logit``), so it stays in (0, 1).
      learn_adapt_scale: learn γ (parameter ``adapt_scale``, unconstrained as θ is).
        Both learned values are per neuron with ``per_neuron``.
    """

    @nn.compact
    def __call__(self, currents: Array, num_steps: int | None = None) -> tuple[Array, Array]:
        shape = spiking.neuron_param_shape(self._features(currents, num_steps), self.per_neuron)
        adapt_decay = self._decay(
            "adapt_decay_logit", self.adapt_decay, self.learn_adapt_decay, shape, currents.dtype
        )
        adapt_scale = jnp.asarray(self.adapt_scale, currents.dtype)
        if self.learn_adapt_scale:
            adapt_scale = self.param(
                "adapt_scale", nn.initializers.constant(self.adapt_scale), shape, self.param_dtype
            )
        return spiking.alif_dynamics(
            currents,
            adapt_decay=adapt_decay,
            adapt_scale=adapt_scale,
            **self._common(currents, num_steps),
        )
