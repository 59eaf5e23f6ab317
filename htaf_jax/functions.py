"""HTAF, the Heavy-Tailed Activation Function, and the straight-through primitive.

    htaf(x; α, β)  = σ(α · tanh(β · x))
    htaf'(x; α, β) = α β · σ(u) σ(−u) · sech²(β x),      u = α tanh(β x)

Reference: Park, Kim, Lee, Park, Kong, Kim, "A Composite Activation Function
for Learning Stable Binary Representations", arXiv 2605.11558 (2026). The
paper's exact parameterisation could not be read when this was written; its
abstract says "sigmoid hyperbolic tangent composite", and this is the literal
composite.

Why a custom VJP: in float32, tanh(βx) rounds to ±1 once |βx| ≳ 9, so the
autodiff derivative 1 − tanh² is exactly 0 there and the heavy tail, the whole
point of HTAF, is lost. The rule below computes

    sech²(βx)    = 4 e^(−2|βx|) / (1 + e^(−2|βx|))²     (no cancellation)
    σ(u)(1−σ(u)) = σ(u) · σ(−u)                        (no cancellation)

so the derivative is positive and accurate out to |βx| ≈ 40 in float32.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

# Defaults: peak slope αβ/4 = 1, the same peak slope as the peers' defaults
# (SpikingJelly sigmoid α=4, snnTorch/SpikingJelly atan α=2, snnTorch fast
# sigmoid), so swapping surrogates does not silently change the gradient
# scale; and α = 4 > 2, the regime where HTAF's tails are heavier than a
# sigmoid's of equal peak slope. Outputs sit in (σ(−4), σ(4)) = (0.018, 0.982).
# The experiments' α/β sweeps (`python -m experiments.run alpha_beta`, and the
# other α/β studies of experiments/configs/studies.py) are where a better default
# would be found.
DEFAULT_ALPHA = 4.0
DEFAULT_BETA = 1.0

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_BETA",
    "htaf",
    "htaf_grad",
    "straight_through",
    "check_positive",
]


def check_positive(name: str, value: Any) -> None:
    """Eagerly validates a hyperparameter given as a Python number.

    Traced or array values pass through unchecked (they may be learned or
    scheduled); a Python number must be finite and > 0.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _compute_dtype(*xs: ArrayLike) -> jnp.dtype:
    # Half-precision inputs are computed in float32 and cast back: the rule's
    # exponentials underflow early in bf16/f16 otherwise.
    dtype = jnp.result_type(*xs)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"htaf and the units take floating-point inputs, got {dtype}")
    return jnp.promote_types(dtype, jnp.float32)


def _wide(fn: Callable[..., Array], x: ArrayLike, hparams: dict) -> Array:
    """fn(x, **hparams) in float32 or wider (bfloat16 underflows early), in x's dtype."""
    x = jnp.asarray(x)
    return fn(x.astype(_compute_dtype(x)), **hparams).astype(x.dtype)


def _terms(x: Array, alpha: Array, beta: Array):
    """(σ(u), t, σ(u)σ(−u), sech²(βx), htaf'(x)) with u = α tanh(βx).

    Each factor is computed without cancellation, from t and σ(u), which the
    forward materialises anyway, and one exponential:
      σ(u)σ(−u) = e^(−|u|) σ(|u|)²,    σ(|u|) = σ(u) if u ≥ 0 else 1 − σ(u)
      sech²(z)  = e^(−2|z|) (1 + |t|)²    (from 1/(1 + e^(−2|z|)) = (1 + |t|)/2)
    so htaf' = exp(log αβ − |u| − 2|z|) · (σ(|u|)(1 + |t|))². Folding log αβ into
    the exponent keeps the tail value out of the subnormals that CPUs flush.
    """
    z = beta * x
    t = jnp.tanh(z)
    u = alpha * t
    s = jax.nn.sigmoid(u)
    sig_abs = jnp.where(u >= 0, s, 1.0 - s)
    abs_t, abs_u, abs_z = jnp.abs(t), jnp.abs(u), jnp.abs(z)
    ssm = jnp.exp(-abs_u) * jnp.square(sig_abs)
    sech2 = jnp.exp(-2.0 * abs_z) * jnp.square(1.0 + abs_t)
    dsdx = jnp.exp(jnp.log(alpha * beta) - abs_u - 2.0 * abs_z) * jnp.square(
        sig_abs * (1.0 + abs_t)
    )
    return s, t, ssm, sech2, dsdx


def varying_axes(v: Array) -> frozenset[str]:
    """The ``shard_map`` mesh axes ``v`` varies over (empty outside ``shard_map``)."""
    mat = getattr(jax.typeof(v), "manual_axis_type", None)
    return getattr(mat, "varying", frozenset())


def _cotangent_like(g: Array, primal: Array) -> Array:
    """Sums a cotangent down to the shape of a broadcast operand and, inside
    ``shard_map``, to its device-varying type: a replicated α or β used with
    sharded x gets the psum of the per-device cotangents, the transpose of the
    implicit replicated-to-varying cast."""
    g = _unbroadcast(g, primal.shape).astype(primal.dtype)
    extra = tuple(sorted(varying_axes(g) - varying_axes(primal)))
    if extra:
        g = jax.lax.psum(g, extra)
    missing = tuple(sorted(varying_axes(primal) - varying_axes(g)))
    if missing:
        g = jax.lax.pcast(g, missing, to="varying")
    return g


def _unbroadcast(g: Array, shape: tuple[int, ...]) -> Array:
    """Sums a cotangent down to the shape of a broadcast operand."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1
    )
    return jnp.sum(g, axis=axes, keepdims=False).reshape(shape)


@jax.custom_vjp
def _htaf(x: Array, alpha: Array, beta: Array) -> Array:
    cdt = _compute_dtype(x, alpha, beta)
    z = beta.astype(cdt) * x.astype(cdt)
    out = jax.nn.sigmoid(alpha.astype(cdt) * jnp.tanh(z))
    return out.astype(jnp.result_type(x, alpha, beta))


def _htaf_fwd(x, alpha, beta):
    # Residuals are computed here, where the forward already has them; under
    # jit, XLA drops the ones whose cotangent nobody asks for and fuses the
    # rest with the backward multiply.
    cdt = _compute_dtype(x, alpha, beta)
    xc, a, b = x.astype(cdt), alpha.astype(cdt), beta.astype(cdt)
    s, t, ssm, sech2, dsdx = _terms(xc, a, b)
    return s.astype(jnp.result_type(x, alpha, beta)), (x, alpha, beta, t, ssm, sech2, dsdx)


def _htaf_bwd(res, g):
    x, alpha, beta, t, ssm, sech2, dsdx = res
    cdt = t.dtype
    a, gc = alpha.astype(cdt), g.astype(cdt)
    dx = gc * dsdx
    da = gc * ssm * t
    # x · sech²(βx) is 0 · ∞ at x = ±∞: use a finite stand-in inside the where.
    xc = x.astype(cdt)
    x_finite = jnp.where(jnp.isinf(xc), 0.0, xc)
    db = gc * ((a * ssm) * (x_finite * sech2))
    return (_cotangent_like(dx, x), _cotangent_like(da, alpha), _cotangent_like(db, beta))


_htaf.defvjp(_htaf_fwd, _htaf_bwd)


@jax.jit
def _htaf_jit(x, alpha, beta):
    return _htaf(x, alpha, beta)


def htaf(x: ArrayLike, alpha: ArrayLike = DEFAULT_ALPHA, beta: ArrayLike = DEFAULT_BETA) -> Array:
    r"""Heavy-Tailed Activation Function, σ(α·tanh(β·x)), with a stable custom VJP.

    Args:
      x: input array (any floating dtype; bfloat16/float16 are computed in
        float32 and returned in their own dtype).
      alpha: α > 0, sets the gradient mass near 0 and the rails σ(±α). A Python
        number is validated eagerly; an array (broadcastable to ``x``) may be
        traced, and then receives its true cotangent.
      beta: β > 0, sets the tail: far from 0 the derivative decays like
        e^(−2β|x|) whatever α is.

    Returns:
      σ(α·tanh(β·x)), same shape as ``x``.

    The derivative is αβ·σ(u)σ(−u)·sech²(βx), u = α·tanh(βx); its peak is αβ/4
    at x = 0. ±inf map to the rails σ(±α) with gradient 0; NaN propagates.

    >>> import jax.numpy as jnp
    >>> float(htaf(jnp.float32(0.0)))
    0.5
    >>> round(float(jax.grad(htaf)(0.0)), 6)  # peak slope αβ/4 with α=4, β=1
    1.0

    Reference: arXiv 2605.11558 (Park et al., 2026).
    """
    check_positive("alpha", alpha)
    check_positive("beta", beta)
    x = jnp.asarray(x)
    _compute_dtype(x)
    return _htaf_jit(x, jnp.asarray(alpha), jnp.asarray(beta))


def htaf_grad(
    x: ArrayLike, alpha: ArrayLike = DEFAULT_ALPHA, beta: ArrayLike = DEFAULT_BETA
) -> Array:
    """The closed-form derivative d htaf / dx, computed stably (see module doc)."""
    check_positive("alpha", alpha)
    check_positive("beta", beta)
    x, a, b = jnp.asarray(x), jnp.asarray(alpha), jnp.asarray(beta)
    cdt = _compute_dtype(x, a, b)
    dsdx = _terms(x.astype(cdt), a.astype(cdt), b.astype(cdt))[-1]
    return dsdx.astype(jnp.result_type(x, a, b))


def _step(x: Array, fire_at_zero: bool = True) -> Array:
    # H(0) = 1, as SpikingJelly's heaviside (x >= 0), or 0 (x > 0); NaN propagates.
    h = x >= 0 if fire_at_zero else x > 0
    return jnp.where(jnp.isnan(x), x, h.astype(x.dtype))


def _heaviside(x: Array, **_) -> Array:
    return _step(x)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _straight_through(forward: Callable, grad: Callable, x: Array, hparams: dict) -> Array:
    return forward(x, **hparams)


def _st_fwd(forward, grad, x, hparams):
    return forward(x, **hparams), (x, hparams)


def _st_bwd(forward, grad, res, g):
    x, hparams = res
    # The levels do not move with the hyperparameters: their cotangents are zero.
    dx = g * _wide(grad, x, hparams).astype(g.dtype)
    return _cotangent_like(dx, x), jax.tree.map(jnp.zeros_like, hparams)


_straight_through.defvjp(_st_fwd, _st_bwd)


def straight_through(
    x: ArrayLike,
    grad: Callable[..., Array],
    forward: Callable[..., Array] = _heaviside,
    **hparams: ArrayLike | None,
) -> Array:
    """A forward of few levels, a chosen derivative backward: the one straight-through
    primitive that builds every unit of :mod:`htaf_jax.units` (spikes, binary
    activations, quantizers, hard concepts), as Spyx's ``custom(bwd, fwd)``.

    Forward ``forward(x, **hparams)``, by default H(x) ∈ {0, 1} with H(0) = 1
    (SpikingJelly's convention; snnTorch's heaviside gives H(0) = 0), NaN
    propagating. Backward ``g · grad(x, **hparams)`` for x (computed in float32 or
    wider), and zero for every hyperparameter (the levels do not depend on them).

    Args:
      x: floating-point input (any shape).
      grad: ``grad(x, **hparams) -> Array``, the pseudo-derivative.
      forward: ``forward(x, **hparams) -> Array`` in x's dtype; module-level functions
        keep jit's cache (a new lambda per call retraces).
      **hparams: Python numbers, arrays (possibly traced) or None.

    >>> import jax.numpy as jnp
    >>> straight_through(jnp.array([-1.0, 0.0, 2.0]), lambda v: jnp.ones_like(v))
    Array([0., 1., 1.], dtype=float32)
    """
    x = jnp.asarray(x)
    _compute_dtype(x)
    return _straight_through(
        forward, grad, x, {k: None if v is None else jnp.asarray(v) for k, v in hparams.items()}
    )
