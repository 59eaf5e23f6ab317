"""Binarised weights and quantized dense/conv products: the pure math of binary layers.

A binary layer keeps real-valued latent weights W and computes with a
quantized copy q(W); the backward pass is the quantizer's rule (a surrogate
gradient). With a sign quantizer,

    q(W) = sign(W) ∈ {−1, +1},  sign(0) = +1,   ∂q/∂W = 2·grad(W)

where ``grad`` is the step unit's derivative of H (``htaf_jax.units``):
sign = 2H − 1. With straight-through ``"ste_hardtanh"`` this is BinaryNet's
1[|W| ≤ 1] (Courbariaux, Hubara et al. 2016). With ``use_scale`` the product
is scaled per output channel by a = mean|W| over the inputs (XNOR-Net,
Rastegari et al. 2016):

    y = (q_in(x) ⊛ sign(W)) · a + b          a_o = mean_{i} |W_{i,o}|

The scale is applied after the ±1 product, as XNOR-Net does: with ±1 inputs
the product is an exact integer sum, so a tie is exactly 0 and binarises to
+1 whatever the kernel's magnitudes (``htaf_jax.packing`` relies on it).

Kernels have their output channels on the last axis: (in, out) for dense,
(kh, kw, in, out) (HWIO) for convolutions over NHWC inputs, as Flax stores them.
"""

from __future__ import annotations

import typing
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from htaf_jax.units import StepUnit, resolve_unit

__all__ = [
    "LATENT_KERNEL",
    "binarize_weights",
    "channel_scale",
    "check_input_features",
    "clip_latent_kernels",
    "constrained",
    "kernel_name",
    "quantized_conv",
    "quantized_dense",
    "sign_quantizer",
    "weight_clip",
]

# Parameter name of every quantized kernel (the real-valued latent weights),
# in Linen and NNX alike; packing and the model summary look for it.
LATENT_KERNEL = "latent_kernel"

Quantize = Callable[[Array], Array]


def check_input_features(layer: str, expected: int, x: ArrayLike) -> None:
    """Raises ValueError in the layer's terms when ``x``'s last axis is not the ``expected``
    input features (``"BinaryDense expects 8 input features, got 5"``), instead of
    JAX's dot_general/conv shape error. Static shapes: free under jit."""
    got = jnp.shape(x)[-1] if jnp.ndim(x) else None
    if got != expected:
        raise ValueError(
            f"{layer} expects {expected} input features, got {got} "
            f"(input shape {tuple(jnp.shape(x))})"
        )


@typing.overload
def sign_quantizer(unit: None) -> None: ...
@typing.overload
def sign_quantizer(unit: Any = "htaf") -> Quantize: ...
def sign_quantizer(unit: Any = "htaf") -> Quantize | None:
    """What a binary layer applies for ``unit`` (a registry name, a ``Unit``, a
    callable or None): a step unit's ±1 form x ↦ sign(x) (sign(0) = +1, backward
    2·grad(x)); any other unit (ternary, k-bit, Larq's {0, 1} ``ste_heaviside``, a
    callable) as it is; None for None (real-valued)."""
    u = resolve_unit(unit)
    return u.sign if isinstance(u, StepUnit) else u


def channel_scale(kernel: ArrayLike) -> Array:
    """XNOR-Net's per-output-channel scale a = mean|W| over every axis but the last.

    (..., out) → (out,). Its gradient is the true one, sign(W)/n.
    """
    kernel = jnp.asarray(kernel)
    return jnp.mean(jnp.abs(kernel), axis=tuple(range(kernel.ndim - 1)))


def binarize_weights(
    kernel: ArrayLike, surrogate: Any = "htaf", use_scale: bool = False
) -> tuple[Array, Array | None]:
    """(sign(W), a or None): the ±1 kernel and, with ``use_scale``, a = mean|W| per output channel.

    >>> signs, scale = binarize_weights(jnp.array([[0.5, -0.2], [-1.5, 0.0]]), use_scale=True)
    >>> signs
    Array([[ 1., -1.],
           [-1.,  1.]], dtype=float32)
    >>> scale
    Array([1. , 0.1], dtype=float32)
    """
    kernel = jnp.asarray(kernel)
    signs = sign_quantizer(surrogate)(kernel)
    return signs, (channel_scale(kernel) if use_scale else None)


def kernel_name(kernel_quantizer: Any) -> str:
    """``latent_kernel`` for a quantized kernel, ``kernel`` for a real one."""
    return "kernel" if kernel_quantizer is None else LATENT_KERNEL


def weight_clip(kernel: ArrayLike, clip_value: float = 1.0) -> Array:
    """clip(W, −c, c): Larq's ``weight_clip`` constraint (c = 1)."""
    return jnp.clip(jnp.asarray(kernel), -clip_value, clip_value)


_CONSTRAINTS = {"weight_clip": weight_clip}


def constrained(kernel: ArrayLike, constraint: Any) -> Array:
    """The kernel the forward pass uses: c(W), with an identity backward.

    Larq projects variables onto the constraint after each update; JAX
    parameters have no constraints, so a layer applies c in its forward pass
    (same forward as Larq) and passes the gradient straight through, so the
    latent weights beyond the range still learn. To also keep the stored
    latent weights in range, as Larq does, apply ``clip_latent_kernels`` to
    the parameters after each update. ``constraint``: None, "weight_clip" or
    a callable ``W -> c(W)``.
    """
    kernel = jnp.asarray(kernel)
    if constraint is None:
        return kernel
    if isinstance(constraint, str):
        if constraint not in _CONSTRAINTS:
            raise ValueError(
                f"unknown kernel constraint {constraint!r}; valid names: "
                f"{', '.join(sorted(_CONSTRAINTS))} (or a callable)"
            )
        constraint = _CONSTRAINTS[constraint]
    return kernel + jax.lax.stop_gradient(constraint(kernel) - kernel)


def clip_latent_kernels(params: Any, clip_value: float = 1.0) -> Any:
    """``params`` with every ``latent_kernel`` leaf clipped to [−c, c] (Larq's
    projection after an update; other leaves unchanged)."""

    def clip(path, leaf):
        last = path[-1]
        name = getattr(last, "key", getattr(last, "name", None))
        return weight_clip(leaf, clip_value) if name == LATENT_KERNEL else leaf

    return jax.tree_util.tree_map_with_path(clip, params)


def _quantize(x: Array, quantizer: Quantize | None) -> Array:
    return x if quantizer is None else quantizer(x)


def _finish(y: Array, scale: Array | None, bias: ArrayLike | None) -> Array:
    if scale is not None:
        y = y * scale
    if bias is not None:
        y = y + bias
    return y


def quantized_dense(
    x: ArrayLike,
    kernel: ArrayLike,
    *,
    input_quantizer: Quantize | None = None,
    kernel_quantizer: Quantize | None = None,
    use_scale: bool = False,
    bias: ArrayLike | None = None,
) -> Array:
    """y = (q_in(x) @ q_k(W)) · a + b.

    Args:
      x: (..., in) inputs.
      kernel: (in, out) latent weights.
      input_quantizer, kernel_quantizer: ``Array -> Array`` (None: identity).
      use_scale: multiply by a = mean|W| per output channel (XNOR-Net).
      bias: (out,) or None.
    Returns:
      (..., out).
    """
    kernel = jnp.asarray(kernel)
    y = _quantize(jnp.asarray(x), input_quantizer) @ _quantize(kernel, kernel_quantizer)
    return _finish(y, channel_scale(kernel) if use_scale else None, bias)


def quantized_conv(
    x: ArrayLike,
    kernel: ArrayLike,
    *,
    strides: Sequence[int] = (1, 1),
    padding: str | Sequence[tuple[int, int]] = "SAME",
    input_quantizer: Quantize | None = None,
    kernel_quantizer: Quantize | None = None,
    use_scale: bool = False,
    bias: ArrayLike | None = None,
) -> Array:
    """2-D convolution y = (q_in(x) ⊛ q_k(W)) · a + b over NHWC inputs, HWIO kernel.

    Args:
      x: (N, H, W, C_in). kernel: (kh, kw, C_in, C_out). bias: (C_out,) or None.
      strides, padding: as ``jax.lax.conv_general_dilated``.
    Returns:
      (N, H', W', C_out).

    ``"SAME"`` padding pads q_in(x) with zeros, which are not ±1: as in Larq,
    a binary layer's border pixels see real zeros.
    """
    x, kernel = jnp.asarray(x), jnp.asarray(kernel)
    if x.ndim != 4 or kernel.ndim != 4:
        raise ValueError(
            f"quantized_conv takes NHWC inputs and HWIO kernels, got shapes "
            f"{x.shape} and {kernel.shape}"
        )
    y = jax.lax.conv_general_dilated(
        _quantize(x, input_quantizer),
        _quantize(kernel, kernel_quantizer),
        tuple(strides),
        padding if isinstance(padding, str) else tuple(map(tuple, padding)),  # pyright: ignore[reportArgumentType]
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return _finish(y, channel_scale(kernel) if use_scale else None, bias)
