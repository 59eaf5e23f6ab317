"""The network NIR graphs are read into and written from: :class:`SpikingSequential`.

Also the layout conversions both directions share (our features-last layout,
NIR's channels-first one). See :mod:`htaf_jax.nir` for the conventions.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import Array

from htaf_jax.nnx import spiking as nnx_spiking
from htaf_jax.nnx.spiking import ALIF, LIF, RecurrentLIF, Synaptic

__all__ = ["DT", "Flatten", "SpikingSequential", "from_linen"]

DT = 1e-4  # snnTorch's export_nir/import_nir step (seconds)
NEURONS = (LIF, RecurrentLIF, Synaptic, ALIF)


def load_nir():
    try:
        import nir  # optional (the test extra): the message says how to get it
    except ImportError as err:
        raise ImportError("htaf_jax.nir needs the 'nir' package: pip install nir") from err
    return nir


def given(value):
    """An initializer that returns the imported value (no random draw to overwrite)."""
    return lambda key, shape, dtype=None: jnp.asarray(value, dtype).reshape(shape)


class Flatten(nnx.Module):
    """(T, B, d1, d2, ...) → (T, B, d1·d2·...): one step's features, row-major in our layout."""

    def __call__(self, x: Array, time_axis: bool = True) -> Array:
        lead = 2 if time_axis else 1
        return x.reshape(x.shape[:lead] + (-1,))


class SpikingSequential(nnx.Module):
    """Layers run in order over a whole sequence; what :func:`from_nir` builds.

    ``model(x)`` takes (T, B, ...) inputs (features last) and returns the last
    layer's output, (T, B, ...): spikes when it is a neuron. With ``num_steps=T``
    it takes one time-constant input (B, ...): the layers before the first
    neuron run once and that neuron receives their output at every step
    (direct input). ``model.layer_outputs(x)`` returns every layer's output.
    """

    def __init__(self, layers: Sequence[Any]):
        self.layers = nnx.List(list(layers))

    def layer_outputs(self, x: Array, num_steps: int | None = None) -> list[Array]:
        outputs, timed = [], num_steps is None
        for layer in self.layers:
            if isinstance(layer, NEURONS):
                x, _ = layer(x, num_steps=None if timed else num_steps)
                timed = True
            elif isinstance(layer, Flatten):
                x = layer(x, time_axis=timed)
            else:
                x = layer(x)
            outputs.append(x)
        return outputs

    def __call__(self, x: Array, num_steps: int | None = None) -> Array:
        return self.layer_outputs(x, num_steps)[-1]


def from_linen(modules: Sequence[Any], params: Sequence[Mapping[str, Any]]) -> SpikingSequential:
    """The :class:`SpikingSequential` of a Linen layer list and its parameters.

    ``modules``: ``nn.Dense``, ``nn.Conv``, ``htaf_jax.linen`` neurons and
    :class:`Flatten`, in order; ``params``: each one's own parameter dict
    (``variables["params"][name]``, ``{}`` when it has none). The Linen and NNX
    neurons share field and parameter names, so fields and values carry over.
    """
    layers, rngs = [], nnx.Rngs(0)
    for module, p in zip(modules, params, strict=True):
        p = {k: np.asarray(v) for k, v in p.items()}
        bias: dict[str, Any] = (
            dict(use_bias=module.use_bias, bias_init=given(p.get("bias")))
            if isinstance(module, (nn.Dense, nn.Conv))
            else {}
        )
        if isinstance(module, Flatten):
            layers.append(module)
        elif isinstance(module, nn.Dense):
            layers.append(
                nnx.Linear(*p["kernel"].shape, kernel_init=given(p["kernel"]), rngs=rngs, **bias)
            )
        elif isinstance(module, nn.Conv):
            kernel, groups = p["kernel"], module.feature_group_count
            layers.append(
                nnx.Conv(
                    kernel.shape[-2] * groups,
                    kernel.shape[-1],
                    kernel.shape[:-2],
                    strides=module.strides or 1,
                    padding=module.padding,
                    input_dilation=module.input_dilation or 1,
                    kernel_dilation=module.kernel_dilation or 1,
                    feature_group_count=groups,
                    kernel_init=given(kernel),
                    rngs=rngs,
                    **bias,
                )
            )
        elif type(module).__module__ == "htaf_jax.linen.spiking":
            fields = {
                f.name: getattr(module, f.name)
                for f in dataclasses.fields(module)
                if f.init and f.name not in ("parent", "name")
            }
            shapes = [v.shape for k, v in p.items() if v.ndim and k != "recurrent_kernel"]
            features = (
                p["recurrent_kernel"].shape[:1]
                if "recurrent_kernel" in p
                else (shapes[0] if shapes else None)
            )
            layer = getattr(nnx_spiking, type(module).__name__)(
                **fields, in_features=features, rngs=rngs
            )
            for name, value in p.items():
                getattr(layer, name)[...] = value
            layers.append(layer)
        else:
            raise ValueError(f"{type(module).__name__} has no NNX counterpart here")
    return SpikingSequential(layers)


# ------------------------------------------------------------------ layout --


def chw_order(shape_hwc: Sequence[int]) -> np.ndarray:
    """perm with nir_vector = our_vector[perm] for a flattened (H, W, C) map."""
    return np.arange(math.prod(shape_hwc)).reshape(shape_hwc).transpose(2, 0, 1).ravel()


def to_chw(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, -1, 0) if a.ndim == 3 else a


def to_hwc(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, 0, -1) if a.ndim == 3 else a


def chw_shape(shape: Sequence[int]) -> np.ndarray:
    return np.array(to_chw(np.empty(shape)).shape)


def tuple2(v) -> tuple[int, int]:
    v = np.atleast_1d(np.asarray(v)).astype(int).tolist()
    return (v[0], v[0]) if len(v) == 1 else tuple(v)
