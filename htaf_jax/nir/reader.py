"""NIR import: :func:`from_nir` (conventions in :mod:`htaf_jax.nir`)."""

from __future__ import annotations

import graphlib
import os
from typing import Any, Callable, NamedTuple

import numpy as np
from flax import nnx

from htaf_jax.nir.network import (
    DT,
    Flatten,
    SpikingSequential,
    chw_order,
    given,
    load_nir,
    to_hwc,
    tuple2,
)
from htaf_jax.nnx.spiking import IF, LIF, RecurrentLIF, Synaptic

__all__ = ["from_nir"]

# |w − 1| below this is float32 noise from τ and R = τ/dt, not a real input weight.
UNIT_WEIGHT_RTOL = 1e-5


class Recurrent(NamedTuple):
    """A neuron node and the weight node on its self-loop, read as one layer."""

    neuron: Any
    weight: Any


def fold_recurrence(nir, nodes: dict, edges: list) -> tuple[dict, list]:
    """Reads snnTorch's recurrent cycles (neuron ⇄ weight, flat or as a sub-graph) as one node."""
    nodes, edges = dict(nodes), list(edges)
    for name, node in list(nodes.items()):
        if isinstance(node, nir.NIRGraph):
            # Read by its nodes, as snnTorch's importer does (its own sub-graphs wire
            # the input to the weight): one neuron, one weight, Input and Output.
            body = [n for n in node.nodes.values() if not isinstance(n, (nir.Input, nir.Output))]
            weights = [n for n in body if isinstance(n, (nir.Affine, nir.Linear))]
            if len(body) != 2 or len(weights) != 1:
                raise ValueError(
                    f"node {name!r} (NIRGraph): only a sub-graph holding one "
                    "neuron and its recurrent weight is supported"
                )
            nodes[name] = Recurrent(next(n for n in body if n is not weights[0]), weights[0])
    for src, dst in list(edges):
        if src == dst or src not in nodes or dst not in nodes or (dst, src) not in edges:
            continue
        touching = [e for e in edges if dst in e]
        if isinstance(nodes[dst], (nir.Affine, nir.Linear)) and len(touching) == 2:
            nodes[src] = Recurrent(nodes[src], nodes.pop(dst))
            edges = [e for e in edges if dst not in e]
    return nodes, edges


def chain(nir, nodes: dict, edges: list) -> list[str]:
    """The node names from input to output of a graph that is one chain."""
    succ: dict[str, list[str]] = {}
    for src, dst in edges:
        succ.setdefault(src, []).append(dst)
    try:
        graphlib.TopologicalSorter(succ).prepare()
    except graphlib.CycleError as e:
        name = min(e.args[1], key=list(nodes).index)  # the cycle's first node in the graph
        raise ValueError(
            f"node {name!r} ({type(nodes[name]).__name__}) is on a cycle "
            "that is not a neuron's recurrent weight: not supported"
        ) from None
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise ValueError(f"from_nir needs one Input node, found {inputs}")
    order = [inputs[0]]
    while succ.get(order[-1]):
        nxt = succ[order[-1]]
        if len(nxt) > 1:
            raise ValueError(f"node {order[-1]!r} feeds {nxt}: from_nir reads a chain of layers")
        order.append(nxt[0])
    missing = set(nodes) - set(order)
    if missing:
        raise ValueError(f"nodes {sorted(missing)} are not on the input→output chain")
    return order


def neuron_param(values, perm) -> float | np.ndarray:
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
    weight_node = None
    if isinstance(node, Recurrent):
        node, weight_node = node
    what = f"node {name!r} ({type(node).__name__})"
    if not isinstance(node, (nir.LIF, nir.IF, nir.CubaLIF)):
        raise ValueError(f"{what}: only a LIF has a recurrent form (RecurrentLIF)")
    if weight_node is not None and perm is not None:
        raise ValueError(
            f"{what}: a recurrent layer right after a flatten of a conv map is not supported"
        )
    if np.any(np.asarray(node.v_reset) != 0):
        raise ValueError(f"{what}: v_reset ≠ 0 is not supported")
    if np.any(np.asarray(getattr(node, "v_leak", 0.0)) != 0):
        raise ValueError(f"{what}: v_leak ≠ 0 is not supported")
    options: dict[str, Any] = dict(
        reset="zero", reset_delay=False, spike_at_threshold=False, surrogate=surrogate
    )
    r = np.asarray(node.r, np.float64)
    if isinstance(node, nir.IF):
        beta, weight = np.ones_like(r), r * dt
    else:
        tau = np.asarray(node.tau_mem if isinstance(node, nir.CubaLIF) else node.tau, np.float64)
        beta, weight = 1.0 - dt / tau, r * dt / tau
    if isinstance(node, nir.CubaLIF):
        tau_syn = np.asarray(node.tau_syn, np.float64)
        options["alpha"] = neuron_param(1.0 - dt / tau_syn, perm)
        weight = weight * np.asarray(node.w_in, np.float64) * dt / tau_syn
    if np.any(weight <= 0):
        raise ValueError(f"{what}: the input weight (R·dt/τ, w_in·dt/τ_syn) must be > 0")
    weight = np.where(np.abs(weight - 1.0) <= UNIT_WEIGHT_RTOL, 1.0, weight)
    options["threshold"] = neuron_param(np.asarray(node.v_threshold, np.float64) / weight, perm)
    if isinstance(node, nir.IF) and weight_node is None:
        return IF(**options)
    options["beta"] = neuron_param(beta, perm)
    if isinstance(node, nir.CubaLIF):
        if weight_node is not None:
            raise ValueError(f"{what}: a recurrent CubaLIF (snnTorch's RSynaptic) is not supported")
        return Synaptic(**options)
    if weight_node is None:
        return LIF(**options)
    return recurrent_layer(nir, weight_node, options)


def recurrent_layer(nir, weight_node, options: dict) -> RecurrentLIF:
    """RecurrentLIF from the weight on a LIF's self-loop: one-to-one when it is a
    diagonal Linear (snnTorch's RLeaky(all_to_all=False)), else all-to-all."""
    w = np.asarray(weight_node.weight, np.float32)
    n = w.shape[0]
    bias = getattr(weight_node, "bias", None)
    if isinstance(weight_node, nir.Linear) and np.array_equal(w, np.diag(np.diag(w))):
        layer = RecurrentLIF(all_to_all=False, per_neuron=True, in_features=n, **options)
        layer.recurrent_weight[...] = np.diag(w)
        return layer
    layer = RecurrentLIF(all_to_all=True, in_features=n, rngs=nnx.Rngs(0), **options)
    layer.recurrent_kernel[...] = w.T
    layer.recurrent_bias[...] = np.zeros(n, np.float32) if bias is None else np.asarray(bias)
    return layer


def read_graph(graph):
    """``graph`` as a ``nir.NIRGraph``: a graph as it is, or the path of a NIR file read with
    ``nir.read``. A missing file raises FileNotFoundError, a file that is not NIR (or
    another object) ValueError/TypeError, each one line naming it."""
    nir = load_nir()
    if isinstance(graph, nir.NIRGraph):
        return graph
    if not isinstance(graph, (str, os.PathLike)):
        raise TypeError(
            f"from_nir takes a nir.NIRGraph or the path of a NIR file, got {type(graph).__name__}"
        )
    path = os.fspath(graph)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such NIR file")
    try:
        read = nir.read(path)
    except Exception as e:  # noqa: BLE001 - h5py and nir raise many kinds for a foreign file
        raise ValueError(
            f"{path} is not a NIR file ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
        ) from None
    if not isinstance(read, nir.NIRGraph):
        raise ValueError(f"{path} is not a NIR graph (it holds a {type(read).__name__})")
    return read


def from_nir(graph, *, dt: float = DT, surrogate: str | Callable = "htaf") -> SpikingSequential:
    """Builds a :class:`SpikingSequential` from a chain-shaped ``nir.NIRGraph``, or from the
    path of a NIR file (``read_graph``).

    Reads Input, Affine, Linear, Conv2d, Flatten, LIF, IF, CubaLIF and Output
    nodes, and a LIF with a weight on a loop back to itself (flat, as
    snnTorch's ``export_nir`` writes ``RLeaky``, or as a sub-graph); any other
    node (or a branch, or another cycle) raises a ValueError naming the node
    and its type. Neurons come back with ``reset="zero", reset_delay=False,
    spike_at_threshold=False`` and the given surrogate. The input is in our
    layout: (T, B, F), or (T, B, H, W, C) for a conv net.
    """
    nir, graph = load_nir(), read_graph(graph)
    nodes, edges = fold_recurrence(nir, graph.nodes, graph.edges)
    layers, perm, rngs = [], None, nnx.Rngs(0)
    for name in chain(nir, nodes, edges):
        node = nodes[name]
        kind = type(node).__name__
        if isinstance(node, (nir.Input, nir.Output)):
            continue
        if isinstance(node, (nir.LIF, nir.IF, nir.CubaLIF, Recurrent)):
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
            layers.append(
                nnx.Linear(
                    kernel.shape[0],
                    kernel.shape[1],
                    use_bias=bias is not None,
                    kernel_init=given(kernel),
                    bias_init=given(bias),
                    rngs=rngs,
                )
            )
            perm = None
        elif isinstance(node, nir.Conv2d):
            weight = np.asarray(node.weight, np.float32)  # OIHW
            pad = node.padding
            padding = pad.upper() if isinstance(pad, str) else [(p, p) for p in tuple2(pad)]
            layers.append(
                nnx.Conv(
                    weight.shape[1] * node.groups,
                    weight.shape[0],
                    weight.shape[2:],
                    strides=tuple2(node.stride),
                    padding=padding,
                    kernel_dilation=tuple2(node.dilation),
                    feature_group_count=node.groups,
                    kernel_init=given(weight.transpose(2, 3, 1, 0)),
                    bias_init=given(np.asarray(node.bias, np.float32)),
                    rngs=rngs,
                )
            )
        elif isinstance(node, nir.Flatten):
            in_shape = node.input_type.get("input")
            ndim = None if in_shape is None else len(in_shape)
            if (
                in_shape is None
                or ndim is None
                or node.start_dim != 0
                or node.end_dim % ndim != ndim - 1
            ):
                raise ValueError(
                    f"node {name!r} ({kind}): only a flatten of all of one step's "
                    f"axes (start_dim=0, end_dim=-1) with a known input shape"
                )
            if ndim == 3:
                perm = chw_order(tuple(int(d) for d in to_hwc(np.empty(in_shape)).shape))
            layers.append(Flatten())
        else:
            raise ValueError(f"node {name!r} of type {kind} is not supported by from_nir")
    return SpikingSequential(layers)
