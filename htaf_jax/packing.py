"""Bit packing and XNOR/popcount inference for binary (±1) layers.

A ±1 vector of length n is stored as ⌈n/32⌉ uint32 words, bit j of word k
holding element 32k + j (1 for +1, i.e. x ≥ 0, as sign(0) = +1; 0 for −1;
padding bits 0). For ±1 vectors a, w of length n,

    a · w = n − 2 · popcount(bits(a) XOR bits(w))

since a_i w_i = +1 exactly where the bits agree; zero padding bits agree and
add nothing. This is the XNOR-Net / BinaryNet inference kernel (Rastegari et
al. 2016; Courbariaux et al. 2016) written with ``jnp.bitwise_xor`` and
``jax.lax.population_count``. The integer sum is exact, and so is the float32
sum the float forward computes on ±1 inputs (n < 2^24), so a packed layer
reproduces the float layer's pre-activations bit for bit.

Shapes: activations (B, n) → bits (B, W); a dense kernel (n, O) → bits
(O, W) (one packed row per output), W = ⌈n/32⌉.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from htaf_jax.binary import _finish, channel_scale

__all__ = [
    "PackedDense",
    "WORD_BITS",
    "batchnorm_inference",
    "pack_dense_kernel",
    "pack_signs",
    "packed_dense",
    "unpack_signs",
    "xnor_popcount_dot",
]

WORD_BITS = 32


def pack_signs(x: ArrayLike) -> Array:
    """(..., n) real values → (..., ⌈n/32⌉) uint32, bit = 1 where x ≥ 0 (+1).

    >>> pack_signs(jnp.array([1.0, -1.0, 1.0, 1.0]))
    Array([13], dtype=uint32)
    """
    x = jnp.asarray(x)
    n = x.shape[-1]
    bits = (x >= 0).astype(jnp.uint32)
    bits = jnp.pad(bits, [(0, 0)] * (x.ndim - 1) + [(0, -n % WORD_BITS)])
    bits = bits.reshape(*x.shape[:-1], -1, WORD_BITS)
    weights = jnp.left_shift(jnp.uint32(1), jnp.arange(WORD_BITS, dtype=jnp.uint32))
    # Distinct powers of two: the sum is the bitwise OR.
    return jnp.sum(bits * weights, axis=-1, dtype=jnp.uint32)


def unpack_signs(words: ArrayLike, n: int, dtype=jnp.float32) -> Array:
    """Inverse of ``pack_signs``: (..., W) uint32 → (..., n) values in {−1, +1}."""
    words = jnp.asarray(words, jnp.uint32)
    shifts = jnp.arange(WORD_BITS, dtype=jnp.uint32)
    bits = jnp.right_shift(words[..., None], shifts) & jnp.uint32(1)
    bits = bits.reshape(*words.shape[:-1], -1)[..., :n]
    return jnp.where(bits == 1, 1.0, -1.0).astype(dtype)


def xnor_popcount_dot(a_bits: ArrayLike, w_bits: ArrayLike, n: int) -> Array:
    """(B, W) and (O, W) packed ±1 vectors of length n → (B, O) int32 dot products.

    n − 2·Σ_words popcount(a XOR w). The words are scanned one at a time, so
    memory stays O(B·O).
    """
    a_bits, w_bits = jnp.asarray(a_bits, jnp.uint32), jnp.asarray(w_bits, jnp.uint32)
    if a_bits.shape[-1] != w_bits.shape[-1]:
        raise ValueError(f"packed widths differ: {a_bits.shape} vs {w_bits.shape}")

    def add_word(mismatches, words):
        a, w = words
        diff = jax.lax.population_count(jnp.bitwise_xor(a[:, None], w[None, :]))
        return mismatches + diff.astype(jnp.int32), None

    zeros = jnp.zeros((a_bits.shape[0], w_bits.shape[0]), jnp.int32)
    mismatches, _ = jax.lax.scan(add_word, zeros, (a_bits.T, w_bits.T))
    return jnp.int32(n) - 2 * mismatches


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["bits", "scale", "bias"], meta_fields=["n_in"]
)
@dataclasses.dataclass(frozen=True)
class PackedDense:
    """A binary dense layer for packed inference: y = (a · sign(W)) · scale + bias.

    A pytree whose input width is static, so it passes through ``jax.jit``.
    """

    bits: Array  # (out, ⌈n/32⌉) uint32: sign(W) rows, bit 1 for +1
    n_in: int  # n, the input width
    scale: Array | None  # (out,) float32: mean|W| per output (XNOR-Net), or None
    bias: Array | None  # (out,) or None


def pack_dense_kernel(
    kernel: ArrayLike, use_scale: bool, bias: ArrayLike | None = None
) -> PackedDense:
    """A latent (n, out) kernel → ``PackedDense`` (its sign bits, and mean|W| if ``use_scale``)."""
    kernel = jnp.asarray(kernel, jnp.float32)
    scale = channel_scale(kernel) if use_scale else None
    return PackedDense(
        pack_signs(kernel.T), kernel.shape[0], scale, None if bias is None else jnp.asarray(bias)
    )


def packed_dense(a_bits: ArrayLike, layer: PackedDense, dtype=jnp.float32) -> Array:
    """Packed ±1 activations (B, W) → (B, out) pre-activations, as the float layer's.

    The product is the exact integer XNOR/popcount sum; scale and bias are
    applied in float after it, in the order ``htaf_jax.binary`` applies them.
    """
    return _finish(
        xnor_popcount_dot(a_bits, layer.bits, layer.n_in).astype(dtype), layer.scale, layer.bias
    )


def batchnorm_inference(
    y: ArrayLike,
    mean: ArrayLike,
    var: ArrayLike,
    scale: ArrayLike | None,
    bias: ArrayLike | None,
    epsilon: float = 1e-5,
) -> Array:
    """BatchNorm with running statistics, (y − μ)·(γ / √(σ² + ε)) + β, in the
    operation order Flax uses, so its result matches a Flax forward's."""
    mul = jax.lax.rsqrt(jnp.asarray(var) + epsilon)
    if scale is not None:
        mul = mul * scale
    y = (jnp.asarray(y) - mean) * mul
    return y if bias is None else y + bias
