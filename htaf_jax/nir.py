"""NIR exchange: spiking networks to and from the Neuromorphic Intermediate Representation.

The network. A :class:`SpikingSequential` is an ordered list of Flax NNX
layers run over time, each on the whole (T, B, ...) sequence:
``nnx.Linear``, ``nnx.Conv`` (2-D), :class:`Flatten`, and the neurons
``htaf_jax.nnx.LIF`` / ``IF`` (a neuron passes its spikes on). Data is in our
layout, features last (NHWC images); NIR's is channels first (CHW), so
convolution kernels (OIHW ↔ HWIO), per-neuron parameters of a conv map
(CHW ↔ HWC) and the columns of the first dense layer after a flatten (CHW
↔ HWC order) are permuted on the way; the spikes are the same.

Time. NIR is continuous: LIF is τ·v̇ = (v_leak − v) + R·I, a spike when v > θ,
then v ← v_reset; IF is v̇ = R·I. We step it with forward Euler and step dt,
as snnTorch's ``export_nir``/``import_nir`` do (dt = 1e-4, :data:`DT`)::

    v[t] = (1 − dt/τ)·v[t−1] + (dt/τ)·R·I[t]      β = 1 − dt/τ,  τ = dt/(1 − β)
    IF:    v[t] = v[t−1] + dt·R·I[t]

Export writes R = τ/dt (IF: R = 1/dt), so the input enters with weight 1 and
v_leak = v_reset = 0, exactly snnTorch's ``Leaky`` → ``nir.LIF`` mapping.
Import reads a weight w = R·dt/τ (IF: R·dt) other than 1 as the threshold
θ/w, which gives the same spikes (the membrane is linear in its input and
resets to 0), as snnTorch's importer does. τ is computed in float64 and
stored as float32 (as snnTorch stores it); β read back through float64 is
the float32 β that went out.

Neurons. NIR's neurons reset to v_reset at once and fire on v > θ, so the
LIF/IF that round-trip are ``reset="zero", reset_delay=False,
spike_at_threshold=False`` (snnTorch's ``Leaky(reset_mechanism="zero",
reset_delay=False)``): :func:`from_nir` builds those, and :func:`to_nir`
refuses a subtract or delayed reset (NIR cannot say it). A neuron with
H(0) = 1 exports as NIR's v > θ: the two differ only when a membrane lands
exactly on θ. A β or θ that varies over neurons is imported as a fixed
per-neuron array (``LIF(beta=array)``), so the values stay exact.

Needs the ``nir`` package (``pip install nir``); imported when used.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import Array

from htaf_jax.nnx.spiking import IF, LIF

__all__ = ["DT", "Flatten", "SpikingSequential", "to_nir", "from_nir"]

DT = 1e-4  # snnTorch's export_nir/import_nir step (seconds)
# |w − 1| below this is float32 noise from τ and R = τ/dt, not a real input weight.
UNIT_WEIGHT_RTOL = 1e-5


def load_nir():
    try:
        import nir
    except ImportError as err:
        raise ImportError("htaf_jax.nir needs the 'nir' package: pip install nir") from err
    return nir


class Flatten(nnx.Module):
    """(T, B, d1, d2, ...) → (T, B, d1·d2·...): flattens one step's features (row-major, our layout)."""

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
            if isinstance(layer, LIF):
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


# ------------------------------------------------------------------ layout --

def chw_order(shape_hwc: Sequence[int]) -> np.ndarray:
    """perm with nir_vector = our_vector[perm] for a flattened (H, W, C) map."""
    return np.arange(math.prod(shape_hwc)).reshape(shape_hwc).transpose(2, 0, 1).ravel()


def to_chw(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, -1, 0) if a.ndim == 3 else a


def to_hwc(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, 0, -1) if a.ndim == 3 else a


def tuple2(v) -> tuple[int, int]:
    v = np.atleast_1d(np.asarray(v)).astype(int).tolist()
    return (v[0], v[0]) if len(v) == 1 else tuple(v)


# ------------------------------------------------------------------ export --

def neuron_values(value, shape: tuple[int, ...], perm) -> np.ndarray:
    """A scalar or per-neuron (our layout) array → float32 in NIR's layout and order."""
    a = np.broadcast_to(np.asarray(value, np.float64), shape)
    a = to_chw(a)
    return np.ascontiguousarray(a.ravel()[perm] if perm is not None else a, np.float32)


def export_neuron(nir, layer: LIF, shape: tuple[int, ...], perm, name: str, dt: float):
    if layer.reset != "zero" or layer.reset_delay:
        raise ValueError(
            f"layer {name} ({type(layer).__name__}): reset={layer.reset!r}, "
            f"reset_delay={layer.reset_delay}: NIR neurons reset to v_reset at once; export "
            "needs reset='zero', reset_delay=False")
    beta = (jax.nn.sigmoid(layer.beta_logit[...]) if layer.learn_beta else layer.beta)
    threshold = layer.threshold[...] if layer.learn_threshold else layer.threshold
    theta = neuron_values(threshold, shape, perm)
    zeros = np.zeros_like(theta)
    beta = neuron_values(beta, shape, perm).astype(np.float64)
    if np.all(beta == 1.0):
        return nir.IF(r=np.full_like(theta, 1.0 / dt), v_threshold=theta, v_reset=zeros)
    if np.any(beta >= 1.0) or np.any(beta <= 0.0):
        raise ValueError(f"layer {name} (LIF): export needs 0 < beta < 1 (or beta = 1 for IF)")
    tau = dt / (1.0 - beta)
    return nir.LIF(tau=tau.astype(np.float32), r=(tau / dt).astype(np.float32),
                   v_leak=zeros, v_threshold=theta, v_reset=zeros)


def conv_padding(layer: nnx.Conv, shape_hw: tuple[int, int]) -> tuple[int, int]:
    """The conv's padding as NIR's symmetric (ph, pw); asymmetric padding is refused."""
    pads = layer.padding
    if isinstance(pads, str):
        kernel = np.asarray(layer.kernel.shape[:2])
        dil = np.asarray(tuple2(layer.kernel_dilation))
        eff = tuple((kernel - 1) * dil + 1)
        pads = jax.lax.padtype_to_pads(shape_hw, eff, tuple2(layer.strides), pads)
    elif isinstance(pads, int):
        pads = [(pads, pads)] * 2
    pads = [(p, p) if isinstance(p, int) else tuple(p) for p in pads]
    if any(lo != hi for lo, hi in pads):
        raise ValueError(f"conv padding {pads} is asymmetric; NIR's Conv2d pads both sides alike")
    return tuple(int(lo) for lo, _ in pads)


def to_nir(model: SpikingSequential | Sequence[Any], input_shape: Sequence[int],
           dt: float = DT):
    """Writes a spiking network as a ``nir.NIRGraph``: a chain input → "0" → "1" → … → output.

    Args:
      model: a :class:`SpikingSequential`, or its list of layers (``nnx.Linear``,
        2-D ``nnx.Conv``, :class:`Flatten`, ``htaf_jax.nnx.LIF``/``IF``).
      input_shape: one step's input shape in our layout, (F,) or (H, W, C).
      dt: the step of the time convention (module docstring).

    Returns:
      The graph; Dense → ``Affine``/``Linear``, Conv → ``Conv2d``, LIF → ``LIF``
      (β = 1: ``IF``), IF → ``IF``, Flatten → ``Flatten``.
    """
    nir = load_nir()
    layers = list(model.layers) if isinstance(model, SpikingSequential) else list(model)
    shape, perm = tuple(int(d) for d in input_shape), None
    nodes = {"input": nir.Input(input_type=np.array(to_chw(np.empty(shape)).shape))}
    for i, layer in enumerate(layers):
        name = str(i)
        if isinstance(layer, LIF):
            node = export_neuron(nir, layer, shape, perm, name, dt)
        elif isinstance(layer, Flatten):
            node = nir.Flatten(input_type={"input": np.array(to_chw(np.empty(shape)).shape)},
                               start_dim=0, end_dim=-1)
            perm = chw_order(shape) if len(shape) == 3 else perm
            shape = (math.prod(shape),)
        elif isinstance(layer, nnx.Linear):
            kernel = np.asarray(layer.kernel[...], np.float32)            # (in, out)
            if perm is not None:
                kernel = kernel[perm]
            weight = np.ascontiguousarray(kernel.T)
            node = (nir.Affine(weight=weight, bias=np.array(layer.bias[...], np.float32))
                    if layer.use_bias else nir.Linear(weight=weight))
            shape, perm = (weight.shape[0],), None
        elif isinstance(layer, nnx.Conv):
            if len(shape) != 3 or layer.kernel.ndim != 4:
                raise ValueError(f"layer {name} (Conv): only 2-D convolutions over (H, W, C)")
            if tuple2(layer.input_dilation) != (1, 1):
                raise ValueError(f"layer {name} (Conv): input_dilation has no NIR form")
            weight = np.asarray(layer.kernel[...], np.float32).transpose(3, 2, 0, 1)
            bias = (np.array(layer.bias[...], np.float32) if layer.use_bias
                    else np.zeros(weight.shape[0], np.float32))
            node = nir.Conv2d(input_shape=shape[:2], weight=np.ascontiguousarray(weight),
                              stride=tuple2(layer.strides),
                              padding=conv_padding(layer, shape[:2]),
                              dilation=tuple2(layer.kernel_dilation),
                              groups=layer.feature_group_count, bias=bias)
            shape = tuple(int(d) for d in to_hwc(np.empty(node.output_type["output"])).shape)
        else:
            raise ValueError(f"layer {name}: {type(layer).__name__} has no NIR export")
        nodes[name] = node
    nodes["output"] = nir.Output(output_type=np.array(to_chw(np.empty(shape)).shape))
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])))


# ------------------------------------------------------------------ import --

def chain(nir, graph) -> list[str]:
    """The node names from input to output of a graph that is one chain."""
    succ: dict[str, list[str]] = {}
    for src, dst in graph.edges:
        succ.setdefault(src, []).append(dst)
    for name in graph.nodes:
        seen, todo = set(), list(succ.get(name, []))
        while todo:
            node = todo.pop()
            if node == name:
                raise ValueError(f"node {name!r} ({type(graph.nodes[name]).__name__}) is on a "
                                 "cycle (a recurrent connection): not supported")
            if node not in seen:
                seen.add(node)
                todo.extend(succ.get(node, []))
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise ValueError(f"from_nir needs one Input node, found {inputs}")
    order = [inputs[0]]
    while succ.get(order[-1]):
        nxt = succ[order[-1]]
        if len(nxt) > 1:
            raise ValueError(f"node {order[-1]!r} feeds {nxt}: from_nir reads a chain of layers")
        order.append(nxt[0])
    missing = set(graph.nodes) - set(order)
    if missing:
        raise ValueError(f"nodes {sorted(missing)} are not on the input→output chain")
    return order


def neuron_param(values: np.ndarray, perm) -> float | np.ndarray:
    """NIR per-neuron values → a float when all equal, else an array in our layout."""
    values = np.asarray(values, np.float64)
    flat = values.ravel()
    if np.all(flat == flat[0]):
        return float(np.float32(flat[0]))
    if perm is not None:
        ours = np.empty_like(flat)
        ours[perm] = flat
        return ours.astype(np.float32)
    return to_hwc(values).astype(np.float32)


def import_neuron(nir, node, name: str, perm, dt: float, surrogate):
    kind = type(node).__name__
    if np.any(np.asarray(node.v_reset) != 0):
        raise ValueError(f"node {name!r} ({kind}): v_reset ≠ 0 is not supported")
    if isinstance(node, nir.LIF):
        if np.any(np.asarray(node.v_leak) != 0):
            raise ValueError(f"node {name!r} ({kind}): v_leak ≠ 0 is not supported")
        tau = np.asarray(node.tau, np.float64)
        beta, weight = 1.0 - dt / tau, np.asarray(node.r, np.float64) * dt / tau
    else:
        beta, weight = np.ones_like(np.asarray(node.r, np.float64)), np.asarray(node.r) * dt
    if np.any(weight <= 0):
        raise ValueError(f"node {name!r} ({kind}): the input weight R·dt/τ must be > 0")
    weight = np.where(np.abs(weight - 1.0) <= UNIT_WEIGHT_RTOL, 1.0, weight)
    threshold = np.asarray(node.v_threshold, np.float64) / weight
    options = dict(threshold=neuron_param(threshold, perm), reset="zero", reset_delay=False,
                   spike_at_threshold=False, surrogate=surrogate)
    if isinstance(node, nir.IF):
        return IF(**options)
    return LIF(beta=neuron_param(beta, perm), **options)


def given(value):
    """An initializer that returns the imported value (no random draw to overwrite)."""
    return lambda key, shape, dtype=None: jnp.asarray(value, dtype).reshape(shape)


def from_nir(graph, *, dt: float = DT, surrogate: str | Callable = "htaf") -> SpikingSequential:
    """Builds a :class:`SpikingSequential` from a chain-shaped ``nir.NIRGraph``.

    Reads Input, Affine, Linear, Conv2d, Flatten, LIF, IF and Output nodes; any
    other node (or a branch or a cycle) raises a ValueError naming the node and
    its type. Neurons come back as ``LIF``/``IF`` with ``reset="zero",
    reset_delay=False, spike_at_threshold=False`` and the given surrogate.
    The input is in our layout: (T, B, F), or (T, B, H, W, C) for a conv net.
    """
    nir = load_nir()
    layers, perm, rngs = [], None, nnx.Rngs(0)
    for name in chain(nir, graph):
        node = graph.nodes[name]
        kind = type(node).__name__
        if isinstance(node, (nir.Input, nir.Output)):
            continue
        if isinstance(node, (nir.LIF, nir.IF)):
            layers.append(import_neuron(nir, node, name, perm, dt, surrogate))
        elif isinstance(node, (nir.Affine, nir.Linear)):
            weight = np.asarray(node.weight, np.float32)
            if weight.ndim != 2:
                raise ValueError(f"node {name!r} ({kind}): weight must be 2-D")
            kernel = weight.T
            if perm is not None:
                kernel = np.empty_like(kernel)
                kernel[perm] = weight.T
            bias = np.asarray(node.bias, np.float32) if isinstance(node, nir.Affine) else None
            layers.append(nnx.Linear(kernel.shape[0], kernel.shape[1], use_bias=bias is not None,
                                     kernel_init=given(kernel), bias_init=given(bias), rngs=rngs))
            perm = None
        elif isinstance(node, nir.Conv2d):
            weight = np.asarray(node.weight, np.float32)                # OIHW
            pad = node.padding
            padding = pad.upper() if isinstance(pad, str) else [(p, p) for p in tuple2(pad)]
            layers.append(nnx.Conv(weight.shape[1] * node.groups, weight.shape[0], weight.shape[2:],
                                   strides=tuple2(node.stride), padding=padding,
                                   kernel_dilation=tuple2(node.dilation),
                                   feature_group_count=node.groups,
                                   kernel_init=given(weight.transpose(2, 3, 1, 0)),
                                   bias_init=given(np.asarray(node.bias, np.float32)), rngs=rngs))
        elif isinstance(node, nir.Flatten):
            in_shape = node.input_type.get("input")
            ndim = None if in_shape is None else len(in_shape)
            end = node.end_dim % ndim if ndim else node.end_dim
            if ndim is None or node.start_dim != 0 or end != ndim - 1:
                raise ValueError(f"node {name!r} ({kind}): only a flatten of all of one step's "
                                 f"axes (start_dim=0, end_dim=-1) with a known input shape")
            if ndim == 3:
                perm = chw_order(tuple(int(d) for d in to_hwc(np.empty(in_shape)).shape))
            layers.append(Flatten())
        else:
            raise ValueError(f"node {name!r} of type {kind} is not supported by from_nir")
    return SpikingSequential(layers)
