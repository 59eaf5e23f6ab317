"""Spiking neuron layers (Flax NNX): LIF, IF, recurrent LIF, synaptic, ALIF.

The same classes, fields, defaults and parameter names as
``htaf_jax.linen.spiking`` (see there and :mod:`htaf_jax.spiking` for the
equations), over the same core functions. NNX creates parameters when the
module is built, so a layer takes ``in_features`` (one step's feature shape,
without time and batch, an int or a tuple) where a parameter's shape needs it:
per-neuron learnable β/θ/α/ρ/γ, a recurrent kernel. ``rngs`` initialises the
recurrent kernel; the other parameters start from constants. The neurons
behave the same in train and eval mode.
"""

# The neurons take their fields from the spec (htaf_jax.spiking.fields) when built, so a type
# checker cannot see them as attributes: that one check is off in this file.
# pyright: reportAttributeAccessIssue=false
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax import Array

from htaf_jax import spiking
from htaf_jax.nnx._fields import signature
from htaf_jax.units import resolve_unit

__all__ = ["LIF", "IF", "RecurrentLIF", "Synaptic", "ALIF"]


class _Neuron(nnx.Module):
    """Fields and parameters every neuron shares (documented on linen ``LIF``): the
    keyword arguments are the neuron's field spec (:mod:`htaf_jax.spiking.fields`),
    plus ``param_dtype``, ``in_features`` and ``rngs``."""

    spec = spiking.LIFFields

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        after = [("param_dtype", jnp.float32), ("in_features", None), ("rngs", None)]
        cls.__signature__ = signature(cls.spec, after=after)

    def __init__(
        self,
        *,
        param_dtype=jnp.float32,
        in_features: int | Sequence[int] | None = None,
        rngs: nnx.Rngs | None = None,
        **fields,
    ):
        values = spiking.build_fields(self.spec, type(self).__name__, fields).values()
        # θ and γ are the Param when learnable (the Linen parameters' names), else the float.
        as_param = {
            n
            for n, learn in (("threshold", "learn_threshold"), ("adapt_scale", "learn_adapt_scale"))
            if values.get(learn)
        }
        for name, value in values.items():
            if name not in as_param:
                setattr(self, name, value)
        self.param_dtype = param_dtype
        self.in_features = (in_features,) if isinstance(in_features, int) else in_features
        for name in as_param:
            setattr(self, name, nnx.Param(jnp.full(self._shape(), values[name], param_dtype)))
        if self.learn_beta:
            self.beta_logit = self._logit_param(self.beta)

    def _shape(self) -> tuple[int, ...]:
        if self.per_neuron and self.in_features is None:
            raise ValueError(
                f"{type(self).__name__}(per_neuron=True) with a learnable "
                "parameter needs in_features (one step's feature shape)"
            )
        return spiking.neuron_param_shape(self.in_features or (), self.per_neuron)

    def _logit_param(self, decay: float, name: str = "beta") -> nnx.Param:
        return nnx.Param(
            jnp.full(self._shape(), spiking.decay_to_logit(decay, name), self.param_dtype)
        )

    def _common(self, currents: Array, num_steps: int | None) -> dict:
        # Constants stay Python numbers: the neurons skip their gradient.
        beta = jax.nn.sigmoid(self.beta_logit[...]) if self.learn_beta else self.beta
        threshold = self.threshold[...] if self.learn_threshold else self.threshold
        return dict(
            beta=beta,
            threshold=threshold,
            spike_fn=resolve_unit(self.surrogate),
            num_steps=num_steps,
            **{name: getattr(self, name) for name in spiking.NeuronOptions._fields},
        )


class LIF(_Neuron):
    """Leaky integrate-and-fire neurons: currents (T, B, ...) → (spikes, membrane).

    Fields as ``htaf_jax.linen.LIF``; additionally ``in_features`` (needed only
    with ``per_neuron`` and a learnable β or θ) and ``rngs`` (unused).
    """

    def __call__(self, currents: Array, num_steps: int | None = None) -> tuple[Array, Array]:
        return spiking.lif_dynamics(currents, **self._common(currents, num_steps))


class IF(LIF):
    """Integrate-and-fire neurons: ``LIF`` without leak (β = 1, not learnable)."""

    spec = spiking.IFFields


class RecurrentLIF(_Neuron):
    """LIF with input I[t] + R(S[t−1]), as ``htaf_jax.linen.RecurrentLIF``.

    ``all_to_all=True`` needs ``in_features`` (N = its last entry) and ``rngs``
    for the (N, N) kernel.
    """

    spec = spiking.RecurrentLIFFields

    def __init__(self, *, rngs: nnx.Rngs | None = None, **kwargs):
        super().__init__(rngs=rngs, **kwargs)
        if self.all_to_all:
            if self.in_features is None or rngs is None:
                raise ValueError(
                    "RecurrentLIF(all_to_all=True) needs in_features and rngs "
                    "for its (N, N) recurrent kernel"
                )
            n = self.in_features[-1]
            self.recurrent_kernel = nnx.Param(
                jax.nn.initializers.lecun_normal()(rngs.params(), (n, n), self.param_dtype)
            )
            self.recurrent_bias = nnx.Param(jnp.zeros((n,), self.param_dtype))
        else:
            self.recurrent_weight = nnx.Param(
                jnp.full(self._shape(), self.recurrent_init, self.param_dtype)
            )

    def __call__(self, currents: Array, num_steps: int | None = None) -> tuple[Array, Array]:
        if self.all_to_all:
            kernel, bias = self.recurrent_kernel[...], self.recurrent_bias[...]
            recurrent = lambda s: s @ kernel + bias  # noqa: E731
        else:
            weight = self.recurrent_weight[...]
            recurrent = lambda s: weight * s  # noqa: E731
        return spiking.recurrent_lif_dynamics(
            currents, recurrent=recurrent, **self._common(currents, num_steps)
        )


class Synaptic(_Neuron):
    """Current-based synaptic LIF, as ``htaf_jax.linen.Synaptic``."""

    spec = spiking.SynapticFields

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.learn_alpha:
            self.alpha_logit = self._logit_param(self.alpha, "alpha")

    def __call__(self, currents: Array, num_steps: int | None = None) -> tuple[Array, Array]:
        alpha = (
            jax.nn.sigmoid(self.alpha_logit[...])
            if self.learn_alpha
            else jnp.asarray(self.alpha, currents.dtype)
        )
        return spiking.synaptic_dynamics(currents, alpha=alpha, **self._common(currents, num_steps))


class ALIF(_Neuron):
    """Adaptive-threshold LIF (Bellec et al. 2018), as ``htaf_jax.linen.ALIF``:
    ρ learnable as σ(``adapt_decay_logit``), γ as the Param ``adapt_scale``."""

    spec = spiking.ALIFFields

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.learn_adapt_decay:
            self.adapt_decay_logit = self._logit_param(self.adapt_decay, "adapt_decay")

    def __call__(self, currents: Array, num_steps: int | None = None) -> tuple[Array, Array]:
        adapt_decay = (
            jax.nn.sigmoid(self.adapt_decay_logit[...])
            if self.learn_adapt_decay
            else jnp.asarray(self.adapt_decay, currents.dtype)
        )
        adapt_scale = (
            self.adapt_scale[...]
            if self.learn_adapt_scale
            else jnp.asarray(self.adapt_scale, currents.dtype)
        )
        return spiking.alif_dynamics(
            currents,
            adapt_decay=adapt_decay,
            adapt_scale=adapt_scale,
            **self._common(currents, num_steps),
        )
