"""A recurrent spiking network for event data (frames over time, e.g. SHD).

Input (B, T, ...): T time steps of any per-step shape, flattened to
(B, T, C) (the engine's event batches are (B, T, C): the leading axis is the
one sharded over devices) and put time first. Per hidden layer: a Dense over
all T steps at once (one matmul over (T·B, C)) → :class:`RecurrentLIF`
(all-to-all recurrence by default, as snnTorch's ``RLeaky``; only the
elementwise dynamics and the recurrent matmul are scanned). The output
layer's currents are read out as the mean membrane of a non-spiking
integrator over the T steps (``readout="membrane"``; ``readout_beta`` = 0 is
the mean current) or as output spike counts (``"spike_count"``). Each hidden
layer sows its firing rate as ``intermediates/spike_rate_layer{i}``.
"""

from __future__ import annotations

from typing import Literal, Sequence

import chex
import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from htaf_jax.linen.spiking import LIF, NeuronFields, RecurrentLIF
from htaf_jax.models.registry import register_model
from htaf_jax.spiking import membrane_readout, spike_count_readout

__all__ = ["RecurrentSNN"]


@register_model("rsnn")
class RecurrentSNN(NeuronFields):
    """(B, T, ...) → [Dense → RecurrentLIF] per hidden layer → Dense → readout over T.

    Returns logits (B, num_classes). Neuron fields as ``htaf_jax.linen.LIF``;
    ``all_to_all``/``recurrent_init`` as ``RecurrentLIF``.
    """

    num_classes: int = 20
    hidden: Sequence[int] = (200,)
    all_to_all: bool = True
    recurrent_init: float = 1.0
    readout: Literal["membrane", "spike_count"] = "membrane"
    readout_beta: float = 0.0

    @nn.compact
    def __call__(self, frames: Array, train: bool = False) -> Array:
        if frames.ndim < 3:
            raise ValueError(f"RecurrentSNN takes frames (B, T, ...), got shape {frames.shape}")
        b, t = frames.shape[:2]
        x = jnp.swapaxes(frames.reshape(b, t, -1), 0, 1)  # (T, B, C)
        for i, width in enumerate(self.hidden):
            cur = nn.Dense(width, name=f"dense{i}")(x)
            x, _ = RecurrentLIF(
                all_to_all=self.all_to_all,
                recurrent_init=self.recurrent_init,
                name=f"rlif{i}",
                **self.neuron_fields(),
            )(cur)
            self.sow("intermediates", f"spike_rate_layer{i}", jnp.mean(x))
        out = nn.Dense(self.num_classes, name="head")(x)
        if self.readout == "membrane":
            logits = membrane_readout(out, self.readout_beta)
        elif self.readout == "spike_count":
            spikes, _ = LIF(name=f"lif{len(self.hidden)}", **self.neuron_fields())(out)
            self.sow("intermediates", f"spike_rate_layer{len(self.hidden)}", jnp.mean(spikes))
            logits = spike_count_readout(spikes)
        else:
            raise ValueError(f"unknown readout {self.readout!r}")
        chex.assert_shape(logits, (b, self.num_classes))
        return logits
