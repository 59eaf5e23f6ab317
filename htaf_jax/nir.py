"""NIR exchange: spiking networks to and from the Neuromorphic Intermediate Representation.

The network. A :class:`SpikingSequential` is an ordered list of Flax NNX
layers run over time, each on the whole (T, B, ...) sequence:
``nnx.Linear``, ``nnx.Conv`` (2-D), :class:`Flatten`, and the neurons of
``htaf_jax.nnx`` (a neuron passes its spikes on); :func:`from_linen` builds
one from Linen layers and their parameters. Data is in our layout,
features last (NHWC images); NIR's is channels first (CHW), so convolution
kernels (OIHW ↔ HWIO), per-neuron parameters of a conv map (CHW ↔ HWC) and
the columns of the first dense layer after a flatten are permuted on the
way; the spikes are the same.

    ours                          NIR
    LIF (β < 1) / IF (β = 1)      LIF / IF
    Synaptic                      CubaLIF
    RecurrentLIF                  LIF with an Affine (all-to-all) or a diagonal
                                  Linear (one-to-one) from its output back to
                                  its input, the cycle snnTorch writes for RLeaky
    nnx.Linear, nnx.Conv, Flatten Affine/Linear, Conv2d, Flatten
    ALIF                          none (refused)

Time. NIR is continuous: LIF is τ·v̇ = (v_leak − v) + R·I, a spike when v > θ,
then v ← v_reset; IF is v̇ = R·I; CubaLIF adds τ_syn·İ = −I + w_in·S before
it. We step it with forward Euler and step dt, as snnTorch's
``export_nir``/``import_nir`` do (dt = 1e-4, :data:`DT`)::

    v[t] = (1 − dt/τ)·v[t−1] + (dt/τ)·R·I[t]      β = 1 − dt/τ,  τ = dt/(1 − β)
    IF:    v[t] = v[t−1] + dt·R·I[t]
    CubaLIF: I[t] = (1 − dt/τ_syn)·I[t−1] + (dt/τ_syn)·w_in·S[t]   α = 1 − dt/τ_syn

Export writes R = τ/dt (IF: R = 1/dt) and w_in = τ_syn/dt, so inputs enter
with weight 1 and v_leak = v_reset = 0: exactly snnTorch's ``Leaky`` →
``nir.LIF`` and ``Synaptic`` → ``nir.CubaLIF`` mappings. Import reads a
total input weight w (R·dt/τ, times w_in·dt/τ_syn) other than 1 as the
threshold θ/w, which gives the same spikes (the membrane is linear in its
input and resets to 0), as snnTorch's importer does. τ is computed in
float64 and stored as float32 (as snnTorch stores it); β read back through
float64 is the float32 β that went out.

Neurons. NIR's neurons reset to v_reset at once and fire on v > θ, so the
neurons that round-trip are ``reset="zero", reset_delay=False,
spike_at_threshold=False`` (snnTorch's ``Leaky(reset_mechanism="zero",
reset_delay=False)``): :func:`from_nir` builds those, and :func:`to_nir`
refuses a subtract or delayed reset (NIR cannot say it). A neuron with
H(0) = 1 exports as NIR's v > θ: the two differ only when a membrane lands
exactly on θ. A β, α or θ that varies over neurons is imported as a fixed
per-neuron array (``LIF(beta=array)``), so the values stay exact.

Needs the ``nir`` package (``pip install nir``); imported when used.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import Array

from htaf_jax.nnx import spiking as nnx_spiking
from htaf_jax.nnx.spiking import ALIF, IF, LIF, RecurrentLIF, Synaptic

__all__ = ["DT", "Flatten", "SpikingSequential", "from_linen", "to_nir", "from_nir"]

DT = 1e-4  # snnTorch's export_nir/import_nir step (seconds)
NEURONS = (LIF, RecurrentLIF, Synaptic, ALIF)
# |w − 1| below this is float32 noise from τ and R = τ/dt, not a real input weight.
UNIT_WEIGHT_RTOL = 1e-5


def load_nir():
    try:
        import nir
    except ImportError as err:
        raise ImportError("htaf_jax.nir needs the 'nir' package: pip install nir") from err
    return nir


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
    import flax.linen as nn
    layers, rngs = [], nnx.Rngs(0)
    for module, p in zip(modules, params, strict=True):
        p = {k: np.asarray(v) for k, v in p.items()}
        bias = dict(use_bias=module.use_bias, bias_init=given(p.get("bias"))) \
            if isinstance(module, (nn.Dense, nn.Conv)) else {}
        if isinstance(module, Flatten):
            layers.append(module)
        elif isinstance(module, nn.Dense):
            layers.append(nnx.Linear(*p["kernel"].shape, kernel_init=given(p["kernel"]),
                                     rngs=rngs, **bias))
        elif isinstance(module, nn.Conv):
            kernel, groups = p["kernel"], module.feature_group_count
            layers.append(nnx.Conv(kernel.shape[-2] * groups, kernel.shape[-1], kernel.shape[:-2],
                                   strides=module.strides or 1, padding=module.padding,
                                   input_dilation=module.input_dilation or 1,
                                   kernel_dilation=module.kernel_dilation or 1,
                                   feature_group_count=groups, kernel_init=given(kernel),
                                   rngs=rngs, **bias))
        elif type(module).__module__ == "htaf_jax.linen.spiking":
            fields = {f.name: getattr(module, f.name) for f in dataclasses.fields(module)
                      if f.init and f.name not in ("parent", "name")}
            shapes = [v.shape for k, v in p.items() if v.ndim and k != "recurrent_kernel"]
            features = p["recurrent_kernel"].shape[:1] if "recurrent_kernel" in p else \
                (shapes[0] if shapes else None)
            layer = getattr(nnx_spiking, type(module).__name__)(**fields, in_features=features,
                                                                  rngs=rngs)
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


# ------------------------------------------------------------------ export --

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
            "to v_reset at once; export needs reset='zero', reset_delay=False")
    threshold = layer.threshold[...] if layer.learn_threshold else layer.threshold
    f32 = lambda a: a.astype(np.float32)  # noqa: E731 (NIR files hold float32, as snnTorch's)
    theta = f32(neuron_values(threshold, shape, perm))
    zeros = np.zeros_like(theta)
    beta = neuron_values(decay(layer, "beta"), shape, perm)
    if isinstance(layer, Synaptic):
        tau_syn = time_constant(neuron_values(decay(layer, "alpha"), shape, perm), what, dt)
        tau = time_constant(beta, what, dt)
        return {"": nir.CubaLIF(tau_syn=f32(tau_syn), tau_mem=f32(tau), r=f32(tau / dt),
                                v_leak=zeros, v_threshold=theta, v_reset=zeros,
                                w_in=f32(tau_syn / dt))}
    if np.all(beta == 1.0) and not isinstance(layer, RecurrentLIF):
        return {"": nir.IF(r=np.full_like(theta, 1.0 / dt), v_threshold=theta, v_reset=zeros)}
    tau = time_constant(beta, what, dt)
    node = nir.LIF(tau=f32(tau), r=f32(tau / dt), v_leak=zeros, v_threshold=theta,
                   v_reset=zeros)
    if not isinstance(layer, RecurrentLIF):
        return {"": node}
    if len(shape) != 1 or perm is not None:
        raise ValueError(f"{what}: a recurrent layer needs (N,) features, not a conv map "
                         "or its flattening (put a Linear between)")
    if layer.all_to_all:
        w_rec = nir.Affine(weight=f32(np.asarray(layer.recurrent_kernel[...]).T),
                           bias=f32(np.asarray(layer.recurrent_bias[...])))
    else:
        w_rec = nir.Linear(weight=f32(np.diag(neuron_values(layer.recurrent_weight[...],
                                                            shape, None))))
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
    return tuple(int(lo) for lo, _ in pads)


def to_nir(model: SpikingSequential | Sequence[Any], input_shape: Sequence[int],
           dt: float = DT):
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
            kernel = np.asarray(layer.kernel[...], np.float32)            # (in, out)
            weight = np.ascontiguousarray((kernel[perm] if perm is not None else kernel).T)
            node = (nir.Affine(weight=weight, bias=np.array(layer.bias[...], np.float32))
                    if layer.use_bias else nir.Linear(weight=weight))
            shape, perm = (weight.shape[0],), None
        elif isinstance(layer, nnx.Conv):
            if len(shape) != 3 or layer.kernel.ndim != 4:
                raise ValueError(f"{what}: only 2-D convolutions over (H, W, C)")
            if tuple2(layer.input_dilation) != (1, 1):
                raise ValueError(f"{what}: input_dilation has no NIR form")
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
            raise ValueError(f"{what} has no NIR export")
        nodes[name] = node
        edges.append((prev, name))
        prev = name
    nodes["output"] = nir.Output(output_type=chw_shape(shape))
    return nir.NIRGraph(nodes=nodes, edges=edges + [(prev, "output")])


# ------------------------------------------------------------------ import --

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
                raise ValueError(f"node {name!r} (NIRGraph): only a sub-graph holding one "
                                 "neuron and its recurrent weight is supported")
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
    for name in nodes:
        seen, todo = set(), list(succ.get(name, []))
        while todo:
            node = todo.pop()
            if node == name:
                raise ValueError(f"node {name!r} ({type(nodes[name]).__name__}) is on a cycle "
                                 "that is not a neuron's recurrent weight: not supported")
            if node not in seen:
                seen.add(node)
                todo.extend(succ.get(node, []))
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
        raise ValueError(f"{what}: a recurrent layer right after a flatten of a conv map "
                         "is not supported")
    if np.any(np.asarray(node.v_reset) != 0):
        raise ValueError(f"{what}: v_reset ≠ 0 is not supported")
    if np.any(np.asarray(getattr(node, "v_leak", 0.0)) != 0):
        raise ValueError(f"{what}: v_leak ≠ 0 is not supported")
    options = dict(reset="zero", reset_delay=False, spike_at_threshold=False, surrogate=surrogate)
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


def given(value):
    """An initializer that returns the imported value (no random draw to overwrite)."""
    return lambda key, shape, dtype=None: jnp.asarray(value, dtype).reshape(shape)


def from_nir(graph, *, dt: float = DT, surrogate: str | Callable = "htaf") -> SpikingSequential:
    """Builds a :class:`SpikingSequential` from a chain-shaped ``nir.NIRGraph``.

    Reads Input, Affine, Linear, Conv2d, Flatten, LIF, IF, CubaLIF and Output
    nodes, and a LIF with a weight on a loop back to itself (flat, as
    snnTorch's ``export_nir`` writes ``RLeaky``, or as a sub-graph); any other
    node (or a branch, or another cycle) raises a ValueError naming the node
    and its type. Neurons come back with ``reset="zero", reset_delay=False,
    spike_at_threshold=False`` and the given surrogate. The input is in our
    layout: (T, B, F), or (T, B, H, W, C) for a conv net.
    """
    nir = load_nir()
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
            if ndim is None or node.start_dim != 0 or node.end_dim % ndim != ndim - 1:
                raise ValueError(f"node {name!r} ({kind}): only a flatten of all of one step's "
                                 f"axes (start_dim=0, end_dim=-1) with a known input shape")
            if ndim == 3:
                perm = chw_order(tuple(int(d) for d in to_hwc(np.empty(in_shape)).shape))
            layers.append(Flatten())
        else:
            raise ValueError(f"node {name!r} of type {kind} is not supported by from_nir")
    return SpikingSequential(layers)
