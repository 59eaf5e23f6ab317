"""Spiking networks: an LIF MLP and a small LIF convnet for image classification.

Images (B, H, W, C), standardised by the data pipeline, are encoded into T
steps ("direct", "rate" or "latency"; see ``htaf_jax.spiking``). Each layer's
Dense/Conv acts on all T steps as one op over (T·B, ...); with direct input
the first layer's current is computed once and fed to the neuron at each
step. The output layer's currents are read out as the mean membrane of a
non-spiking integrator ("membrane") or as output spike counts
("spike_count"). Each spiking layer sows its firing rate as
``intermediates/spike_rate_layer{i}`` (a scalar) for logging.

The rate and latency codes undo the pipeline's standardisation with
``input_mean``/``input_std`` (the defaults 0 and 1 take inputs already in
[0, 1]); the experiment configs set the dataset's values.
"""

from __future__ import annotations

from typing import Literal, Sequence

import chex
import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from htaf_jax.linen.spiking import IF, LIF, NeuronFields
from htaf_jax.models.registry import register_model
from htaf_jax.spiking import latency_encode, membrane_readout, rate_encode, spike_count_readout

__all__ = ["SpikingMLP", "SpikingConvNet"]

Encoding = Literal["direct", "rate", "latency"]
Readout = Literal["membrane", "spike_count"]


class _SpikingBase(NeuronFields):
    """Fields and helpers shared by the spiking models (not used on its own); the neuron's
    fields (beta, threshold, reset, …, surrogate) as ``htaf_jax.linen.LIF``."""

    num_classes: int = 10
    num_steps: int = 25
    encoding: Encoding = "rate"
    neuron: Literal["lif", "if"] = "lif"
    readout: Readout = "membrane"
    readout_beta: float = 0.0
    input_mean: float = 0.0
    input_std: float = 1.0

    def _encode(self, x: Array) -> tuple[Array, bool]:
        """(B, ...) → (input, time_constant); a time-constant input has no T axis."""
        if self.encoding == "direct":
            return x, True
        if self.encoding == "rate":
            return rate_encode(
                self.make_rng("sample"), x, self.num_steps, mean=self.input_mean, std=self.input_std
            ), False
        if self.encoding == "latency":
            return latency_encode(
                x, self.num_steps, mean=self.input_mean, std=self.input_std
            ), False
        raise ValueError(f"unknown encoding {self.encoding!r}")

    def _neuron(self, name: str) -> LIF:
        options = {**self.neuron_fields(), "name": name}
        if self.neuron == "if":  # no leak: β = 1, fixed
            return IF(**{k: v for k, v in options.items() if k not in ("beta", "learn_beta")})
        return LIF(**options)

    def _spike(self, index: int, currents: Array, time_constant: bool) -> Array:
        """Currents → spikes (T, B, ...), sowing this layer's firing rate."""
        spikes, _ = self._neuron(f"lif{index}")(
            currents, num_steps=self.num_steps if time_constant else None
        )
        self.sow("intermediates", f"spike_rate_layer{index}", jnp.mean(spikes))
        return spikes

    def _read_out(self, out_currents: Array, index: int) -> Array:
        if self.readout == "membrane":
            return membrane_readout(out_currents, self.readout_beta)
        if self.readout == "spike_count":
            return spike_count_readout(self._spike(index, out_currents, False))
        raise ValueError(f"unknown readout {self.readout!r}")


def _over_time(fn, x: Array, time_constant: bool) -> Array:
    """Applies a per-example op to (T, B, ...) as one op over (T·B, ...)."""
    if time_constant:
        return fn(x)
    t, b = x.shape[:2]
    y = fn(x.reshape((t * b,) + x.shape[2:]))
    return y.reshape((t, b) + y.shape[1:])


@register_model("snn_mlp")
class SpikingMLP(_SpikingBase):
    """Flatten → [Dense → (BN) → LIF] per hidden layer → Dense → readout.

    Returns logits (B, num_classes). The default is the classic 784-1000-10
    LIF MLP.
    """

    hidden: Sequence[int] = (1000,)
    use_batchnorm: bool = False

    @nn.compact
    def __call__(self, images: Array, train: bool = False) -> Array:
        chex.assert_rank(images, 4)
        x, time_constant = self._encode(images.reshape(images.shape[0], -1))
        for i, width in enumerate(self.hidden):
            cur = nn.Dense(width, name=f"dense{i}")(x)  # Dense acts on the last axis
            if self.use_batchnorm:
                cur = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn{i}")(cur)
            x = self._spike(i, cur, time_constant)
            time_constant = False
        out = nn.Dense(self.num_classes, name="head")(x)
        if time_constant:  # no hidden layer and direct input
            out = jnp.broadcast_to(out, (self.num_steps,) + out.shape)
        logits = self._read_out(out, len(self.hidden))
        chex.assert_shape(logits, (images.shape[0], self.num_classes))
        return logits


@register_model("snn_conv")
class SpikingConvNet(_SpikingBase):
    """[Conv3×3 → BN → LIF → MaxPool2] per stage → Dense → readout.

    Max pooling keeps the spikes binary. With direct input (the default here)
    the first convolution runs once, not T times.
    """

    features: Sequence[int] = (16, 32)
    num_steps: int = 4
    encoding: Encoding = "direct"

    @nn.compact
    def __call__(self, images: Array, train: bool = False) -> Array:
        chex.assert_rank(images, 4)
        x, time_constant = self._encode(images)
        for i, feats in enumerate(self.features):
            conv = nn.Conv(feats, (3, 3), padding="SAME", use_bias=False, name=f"conv{i}")
            bn = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn{i}")
            cur = _over_time(lambda v, bn=bn, conv=conv: bn(conv(v)), x, time_constant)
            spikes = self._spike(i, cur, time_constant)
            time_constant = False
            x = _over_time(lambda v: nn.max_pool(v, (2, 2), (2, 2)), spikes, False)
        x = x.reshape(x.shape[:2] + (-1,))
        out = nn.Dense(self.num_classes, name="head")(x)
        logits = self._read_out(out, len(self.features))
        chex.assert_shape(logits, (images.shape[0], self.num_classes))
        return logits
