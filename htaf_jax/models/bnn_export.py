"""Exporting a trained binary network's ±1 kernels as packed bits.

Each ``latent_kernel`` (float32, 32 bits a weight) becomes one bit a weight
(1 for +1, i.e. W ≥ 0, since sign(0) = +1), packed little-endian into uint8
or uint32 words, plus its per-output-channel scale a = mean|W| (float32, one
per output channel). ``unpack_params`` rebuilds a latent kernel ±a that gives
the same forward pass as the trained one, so inference from the export is
exact: sign(±a) = ±1 and mean|±a| = a.

    packed = pack_binary_params(variables["params"])
    report = packed_memory_report(variables["params"], packed)   # ~32×
    params = unpack_params(variables["params"], packed)

``pack_binary_mlp`` / ``packed_mlp_logits`` run a trained ``BinaryMLP`` on
packed bits: every hidden layer is an XNOR/popcount product on packed ±1
activations (``htaf_jax.packing``), giving the float forward's logits.

    packed = pack_binary_mlp(model, variables)
    logits = packed_mlp_logits(packed, images)      # == model.apply(variables, images)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from jax import Array

from htaf_jax import packing as P
from htaf_jax.binary import LATENT_KERNEL, channel_scale
from htaf_jax.models.bnn import BinaryMLP

__all__ = [
    "PackedKernel",
    "PackedMLP",
    "pack_bits",
    "unpack_bits",
    "pack_binary_params",
    "unpack_params",
    "packed_memory_report",
    "pack_binary_mlp",
    "packed_mlp_logits",
]


class PackedKernel(NamedTuple):
    bits: np.ndarray  # uint8 or uint32, ceil(size / word bits) words
    shape: tuple[int, ...]  # the kernel's shape
    scale: np.ndarray  # float32 (out_channels,): mean|W| per output channel


def pack_bits(signs_positive: np.ndarray, dtype=np.uint8) -> np.ndarray:
    """Booleans (any shape) → packed words, flattened in C order, little-endian bits."""
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.uint8), np.dtype(np.uint32)):
        raise ValueError(f"pack into uint8 or uint32, not {dtype}")
    packed = np.packbits(np.asarray(signs_positive, bool).ravel(), bitorder="little")
    if dtype == np.uint32:
        packed = np.pad(packed, (0, -packed.size % 4)).view("<u4").astype(np.uint32)
    return packed


def unpack_bits(words: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of ``pack_bits``: packed words → booleans of ``shape``."""
    as_bytes = np.ascontiguousarray(words).astype(words.dtype.newbyteorder("<")).view(np.uint8)
    size = int(np.prod(shape))
    return np.unpackbits(as_bytes, count=size, bitorder="little").astype(bool).reshape(shape)


def _is_latent(path: tuple[str, ...]) -> bool:
    return path[-1] == LATENT_KERNEL


def pack_binary_params(params: Any, dtype=np.uint8) -> dict[tuple[str, ...], PackedKernel]:
    """Every binary kernel in ``params`` → a ``PackedKernel``, keyed by its path."""
    flat = traverse_util.flatten_dict(params)
    out = {}
    for path, kernel in flat.items():
        if not _is_latent(path):
            continue
        kernel = np.asarray(kernel, np.float32)
        scale = np.asarray(channel_scale(kernel), np.float32)
        out[path] = PackedKernel(pack_bits(kernel >= 0, dtype), kernel.shape, scale)
    if not out:
        raise ValueError(f"no '{LATENT_KERNEL}' parameters found: not a binary network")
    return out


def unpack_params(params: Any, packed: dict[tuple[str, ...], PackedKernel]) -> Any:
    """``params`` with each binary kernel replaced by ±scale rebuilt from its bits."""
    flat = dict(traverse_util.flatten_dict(params))
    for path, pk in packed.items():
        signs = np.where(unpack_bits(pk.bits, pk.shape), 1.0, -1.0).astype(np.float32)
        flat[path] = signs * pk.scale
    return traverse_util.unflatten_dict(flat)


def packed_memory_report(params: Any, packed: dict[tuple[str, ...], PackedKernel]) -> dict:
    """Bytes of the float32 binary kernels vs their packed bits (and scales)."""
    flat = traverse_util.flatten_dict(params)
    float_bytes = sum(np.asarray(flat[p]).astype(np.float32).nbytes for p in packed)
    bit_bytes = sum(pk.bits.nbytes for pk in packed.values())
    scale_bytes = sum(pk.scale.nbytes for pk in packed.values())
    return {
        "float32_bytes": int(float_bytes),
        "packed_bytes": int(bit_bytes),
        "scale_bytes": int(scale_bytes),
        "ratio": float_bytes / bit_bytes,
        "ratio_with_scales": float_bytes / (bit_bytes + scale_bytes),
    }


class _BN(NamedTuple):
    mean: Array
    var: Array
    scale: Array
    bias: Array


class PackedMLP(NamedTuple):
    """A ``BinaryMLP`` ready for packed inference."""

    layers: tuple[P.PackedDense, ...]  # hidden layers, then a binary head
    norms: tuple[_BN, ...]  # the BatchNorm after each (head_bn last)
    head: tuple[Array, Array] | None  # (kernel, bias) of a full-precision head


def pack_binary_mlp(model: BinaryMLP, variables: Any) -> PackedMLP:
    """Packs a ``BinaryMLP``'s kernels (sign bits + scales) and BatchNorm statistics."""
    params, stats = variables["params"], variables["batch_stats"]

    def bn(name):
        return _BN(
            stats[name]["mean"], stats[name]["var"], params[name]["scale"], params[name]["bias"]
        )

    names = [f"dense{i}" for i in range(len(model.hidden))]
    norms = [bn(f"bn{i}") for i in range(len(model.hidden))]
    head = None
    if model.full_precision_head:
        head = (params["head"]["kernel"], params["head"]["bias"])
    else:
        names.append("head")
        norms.append(bn("head_bn"))
    layers = tuple(P.pack_dense_kernel(params[n][LATENT_KERNEL], model.use_scale) for n in names)
    return PackedMLP(layers, tuple(norms), head)


def packed_mlp_logits(packed: PackedMLP, images: Array) -> Array:
    """(B, H, W, C) images → (B, classes) logits, hidden layers on packed bits.

    The first layer reads the real-valued image, as the float model does, so
    its product is a float one with the ±1 weights decoded from their bits;
    every later binary layer multiplies packed ±1 activations by XNOR/popcount.
    """
    x = jnp.asarray(images).reshape(images.shape[0], -1)
    first = packed.layers[0]
    signs = P.unpack_signs(first.bits, first.n_in).T  # (n, out) in ±1
    y = x @ signs
    y = y if first.scale is None else y * first.scale
    for i, layer in enumerate(packed.layers):
        if i > 0:
            y = P.packed_dense(bits, layer)  # noqa: F821 (bound by the iteration before)
        y = P.batchnorm_inference(y, *packed.norms[i])
        if i < len(packed.layers) - 1 or packed.head is not None:
            bits = P.pack_signs(y)  # sign(0) = +1
    if packed.head is None:
        return y
    kernel, bias = packed.head
    return P.unpack_signs(bits, kernel.shape[0]) @ kernel + bias
