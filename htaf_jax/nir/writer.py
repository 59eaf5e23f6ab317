"""NIR export: :func:`to_nir` (conventions in :mod:`htaf_jax.nir`)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import numpy as np
from flax import nnx

from htaf_jax.nir.network import (
    DT,
    NEURONS,
    Flatten,
    SpikingSequential,
    chw_order,
    chw_shape,
    load_nir,
    to_chw,
    to_hwc,
    tuple2,
)
from htaf_jax.nnx.spiking import ALIF, RecurrentLIF, Synaptic

__all__ = ["to_nir"]


def neuron_values(value, shape: tuple[int, ...], perm) -> np.ndarray:
    """A scalar or per-neuron (our layout) array → NIR's layout and order, as the float32
    value the layer computes with, widened to float64 for the time constants."""
    a = to_chw(np.broadcast_to(np.asarray(value, np.float32).astype(np.float64), shape))
    return np.ascontiguousarray(a.ravel()[perm] if perm is not None else a)


def decay(layer, name: str):
    """A neuron's decay (``beta``/``alpha``): σ(logit) when learnable, else the value."""
    logit = getattr(layer, f"{name}_logit", None)
    return jax.nn.sigmoid(logit[...]) if logit is not None else getattr(layer, name)


def time_constant(value: np.ndarray, what: str, dt: float) -> np.ndarray:
    if np.any(value >= 1.0) or np.any(value <= 0.0):
        raise ValueError(f"{what}: export needs 0 < decay < 1")
    return dt / (1.0 - value)


def export_neuron(nir, layer, shape: tuple[int, ...], perm, what: str, dt: float) -> dict:
    """A neuron's NIR node(s): {"": node} or, for a recurrent one, also {".w_rec": weight}."""
    if isinstance(layer, ALIF):
        raise ValueError(f"{what}: NIR has no adaptive-threshold neuron")
    if layer.reset != "zero" or layer.reset_delay:
        raise ValueError(
            f"{what}: reset={layer.reset!r}, reset_delay={layer.reset_delay}: NIR neurons reset "
            "to v_reset at once; export needs reset='zero', reset_delay=False"
        )
    threshold = layer.threshold[...] if layer.learn_threshold else layer.threshold
    f32 = lambda a: a.astype(np.float32)  # noqa: E731 (NIR files hold float32, as snnTorch's)
    theta = f32(neuron_values(threshold, shape, perm))
    zeros = np.zeros_like(theta)
    beta = neuron_values(decay(layer, "beta"), shape, perm)
    if isinstance(layer, Synaptic):
        tau_syn = time_constant(neuron_values(decay(layer, "alpha"), shape, perm), what, dt)
        tau = time_constant(beta, what, dt)
        return {
            "": nir.CubaLIF(
                tau_syn=f32(tau_syn),
                tau_mem=f32(tau),
                r=f32(tau / dt),
                v_leak=zeros,
                v_threshold=theta,
                v_reset=zeros,
                w_in=f32(tau_syn / dt),
            )
        }
    if np.all(beta == 1.0) and not isinstance(layer, RecurrentLIF):
        return {"": nir.IF(r=np.full_like(theta, 1.0 / dt), v_threshold=theta, v_reset=zeros)}
    tau = time_constant(beta, what, dt)
    node = nir.LIF(tau=f32(tau), r=f32(tau / dt), v_leak=zeros, v_threshold=theta, v_reset=zeros)
    if not isinstance(layer, RecurrentLIF):
        return {"": node}
    if len(shape) != 1 or perm is not None:
        raise ValueError(
            f"{what}: a recurrent layer needs (N,) features, not a conv map "
            "or its flattening (put a Linear between)"
        )
    if layer.all_to_all:  # pyright: ignore[reportAttributeAccessIssue]
        w_rec = nir.Affine(
            weight=f32(np.asarray(layer.recurrent_kernel[...]).T),
            bias=f32(np.asarray(layer.recurrent_bias[...])),
        )
    else:
        w_rec = nir.Linear(
            weight=f32(np.diag(neuron_values(layer.recurrent_weight[...], shape, None)))
        )
    return {"": node, ".w_rec": w_rec}


def conv_padding(layer: nnx.Conv, shape_hw: tuple[int, int]) -> tuple[int, int]:
    """The conv's padding as NIR's symmetric (ph, pw); asymmetric padding is refused."""
    pads = layer.padding
    if isinstance(pads, str):
        kernel = np.asarray(layer.kernel.shape[:2])
        eff = tuple((kernel - 1) * np.asarray(tuple2(layer.kernel_dilation)) + 1)
        pads = jax.lax.padtype_to_pads(shape_hw, eff, tuple2(layer.strides), pads)
    elif isinstance(pads, int):
        pads = [(pads, pads)] * 2
    pads = [(p, p) if isinstance(p, int) else tuple(p) for p in pads]
    if any(lo != hi for lo, hi in pads):
        raise ValueError(f"conv padding {pads} is asymmetric; NIR's Conv2d pads both sides alike")
    return tuple(int(lo) for lo, _ in pads)  # pyright: ignore[reportReturnType]


def to_nir(model: SpikingSequential | Sequence[Any], input_shape: Sequence[int], dt: float = DT):
    """Writes a spiking network as a ``nir.NIRGraph``: a chain input → "0" → "1" → … → output.

    Args:
      model: a :class:`SpikingSequential`, or its list of layers (``nnx.Linear``,
        2-D ``nnx.Conv``, :class:`Flatten`, ``htaf_jax.nnx`` neurons).
      input_shape: one step's input shape in our layout, (F,) or (H, W, C).
      dt: the step of the time convention (module docstring).

    Returns:
      The graph (node per layer as in the module docstring's table; a
      recurrent layer "i" adds node "i.w_rec" and the edges i ⇄ i.w_rec).
    """
    nir = load_nir()
    layers = list(model.layers) if isinstance(model, SpikingSequential) else list(model)
    shape, perm = tuple(int(d) for d in input_shape), None
    nodes, edges, prev = {"input": nir.Input(input_type=chw_shape(shape))}, [], "input"
    for i, layer in enumerate(layers):
        name, what = str(i), f"layer {i} ({type(layer).__name__})"
        if isinstance(layer, NEURONS):
            parts = export_neuron(nir, layer, shape, perm, what, dt)
            if ".w_rec" in parts:
                edges += [(name, name + ".w_rec"), (name + ".w_rec", name)]
                nodes[name + ".w_rec"] = parts[".w_rec"]
            node = parts[""]
        elif isinstance(layer, Flatten):
            node = nir.Flatten(input_type={"input": chw_shape(shape)}, start_dim=0, end_dim=-1)
            perm = chw_order(shape) if len(shape) == 3 else perm
            shape = (math.prod(shape),)
        elif isinstance(layer, nnx.Linear):
            kernel = np.asarray(layer.kernel[...], np.float32)  # (in, out)
            weight = np.ascontiguousarray((kernel[perm] if perm is not None else kernel).T)
            node = (
                nir.Affine(weight=weight, bias=np.array(layer.bias[...], np.float32))  # pyright: ignore[reportOptionalSubscript]
                if layer.use_bias
                else nir.Linear(weight=weight)
            )
            shape, perm = (weight.shape[0],), None
        elif isinstance(layer, nnx.Conv):
            if len(shape) != 3 or layer.kernel.ndim != 4:
                raise ValueError(f"{what}: only 2-D convolutions over (H, W, C)")
            if tuple2(layer.input_dilation) != (1, 1):
                raise ValueError(f"{what}: input_dilation has no NIR form")
            weight = np.asarray(layer.kernel[...], np.float32).transpose(3, 2, 0, 1)
            bias = (
                np.array(layer.bias[...], np.float32)  # pyright: ignore[reportOptionalSubscript]
                if layer.use_bias
                else np.zeros(weight.shape[0], np.float32)
            )
            node = nir.Conv2d(
                input_shape=shape[:2],
                weight=np.ascontiguousarray(weight),
                stride=tuple2(layer.strides),
                padding=conv_padding(layer, shape[:2]),
                dilation=tuple2(layer.kernel_dilation),
                groups=layer.feature_group_count,
                bias=bias,
            )
            shape = tuple(int(d) for d in to_hwc(np.empty(node.output_type["output"])).shape)
        else:
            raise ValueError(f"{what} has no NIR export")
        nodes[name] = node
        edges.append((prev, name))
        prev = name
    nodes["output"] = nir.Output(output_type=chw_shape(shape))
    return nir.NIRGraph(nodes=nodes, edges=edges + [(prev, "output")])
