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
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from flax import traverse_util

from htaf_jax.binary import LATENT_KERNEL

__all__ = ["PackedKernel", "pack_bits", "unpack_bits", "pack_binary_params",
           "unpack_params", "packed_memory_report"]


class PackedKernel(NamedTuple):
    bits: np.ndarray        # uint8 or uint32, ceil(size / word bits) words
    shape: tuple[int, ...]  # the kernel's shape
    scale: np.ndarray       # float32 (out_channels,): mean|W| per output channel


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
        scale = np.mean(np.abs(kernel), axis=tuple(range(kernel.ndim - 1))).astype(np.float32)
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
