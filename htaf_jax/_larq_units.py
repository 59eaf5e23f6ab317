"""Larq's quantizers (larq/quantizers.py, v0.13), entries of the unit registry.

Registered in :mod:`htaf_jax.units` (the one registry) when ``htaf_jax`` is imported.
``ste_sign``, ``approx_sign`` and ``swish_sign`` are step units (Larq's quantizer is
their ``.sign``); the others have levels of their own, each forward built with
:func:`htaf_jax.functions.straight_through`:

- ``ste_heaviside(clip_value=1)``: 1[x > 0] (H(0) = 0), backward 1[|x| ≤ c];
- ``magnitude_aware_sign(clip_value=1)``: a·sign(x), backward a·1[|x| ≤ c],
  a = sg(mean|x|) over every axis but the last (sg: stop-gradient);
- ``ste_tern(threshold_value=0.05, ternary_weight_networks=False, clip_value=1)``:
  sign(x)·1[|x| ≥ Δ], backward 1[|x| ≤ c]; TWN: Δ = 0.7·sg(mean|x|);
- ``dorefa(k_bit=2)``: round(clip(x, 0, 1)·n)/n, n = 2^k − 1 (half to even, as
  ``tf.round``), backward 1[0 ≤ x ≤ 1].

Clipped rules are inclusive (Larq's ``less_equal``); clip_value=None: no clip.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from htaf_jax import functions as F
from htaf_jax.units import _smooth_abs, register_unit

_LARQ = "Larq (larq/quantizers.py, v0.13)"


def _clip_rule(x, clip_value=None, **_):
    return jnp.ones_like(x) if clip_value is None else (jnp.abs(x) <= clip_value).astype(x.dtype)


register_unit(
    "ste_sign",
    lambda x, clip_value: 0.5 * _clip_rule(x, clip_value),
    smooth=lambda x, clip_value: (
        0.5 + 0.5 * (x if clip_value is None else jnp.clip(x, -clip_value, clip_value))
    ),
    defaults={"clip_value": 1.0},
    citation=f"BinaryNet's clipped STE: Hubara/Courbariaux et al., NeurIPS 2016; {_LARQ} "
    "ste_sign (clip_value=1.0) is .sign, gradient 1[|x| ≤ c]. Formerly 'ste_hardtanh'.",
)
register_unit(
    "approx_sign",
    lambda x: jnp.maximum(0.0, 1 - jnp.abs(x)),
    smooth=lambda x: _smooth_abs(x, lambda a: a - a * a / 2),
    citation=f"ApproxSign, piecewise quadratic: Liu et al., ECCV 2018 (Bi-Real "
    f"Net); {_LARQ} approx_sign is .sign, gradient 2 − 2|x| on |x| ≤ 1.",
)


def _swish_sign_rule(x, beta):  # β(2 − βx·tanh(βx/2)) / (2(1 + cosh βx)), via e^(−|βx|)
    u = jnp.clip(beta * x, -200.0, 200.0)  # e^(−200) is 0 in float32: no inf·0
    e = jnp.exp(-jnp.abs(u))
    return beta * (2.0 - u * jnp.tanh(u / 2)) * e / jnp.square(1.0 + e)


register_unit(
    "swish_sign",
    _swish_sign_rule,
    defaults={"beta": 5.0},
    smooth=lambda x, beta: (lambda u: jax.nn.sigmoid(u) * (1 + u * jax.nn.sigmoid(-u)))(
        jnp.clip(beta * x, -200.0, 200.0)
    ),
    citation=f"SignSwish 2σ(βx)(1 + βx(1 − σ(βx))) − 1, Darabi et al., arXiv "
    f"1812.11800 (BNN+); {_LARQ} swish_sign (beta=5.0) is .sign, gradient peak β.",
)


def sign(x, **_):
    """sign(x) ∈ {−1, +1} with sign(0) = +1 (Larq's ``math.sign``), in x's dtype."""
    return jnp.where(x >= 0, 1.0, -1.0).astype(x.dtype)


def _open_step(x, **_):
    return (x > 0).astype(x.dtype)  # Larq math.heaviside = sign(relu(x)): H(0) = 0


def _tern(x, threshold, **_):
    # Larq: sign(sign(x + Δ) + sign(x − Δ)); ±Δ itself maps to ±1.
    return jnp.sign(jnp.sign(x + threshold) + jnp.sign(x - threshold)).astype(x.dtype)


def _dorefa_levels(x, levels):
    return jnp.round(jnp.clip(x, 0.0, 1.0) * levels) / levels


def _unit_interval(x, **_):
    return ((x >= 0.0) & (x <= 1.0)).astype(x.dtype)


def _magnitude_aware_sign(x, clip_value):
    scale = jax.lax.stop_gradient(jnp.mean(jnp.abs(x), axis=tuple(range(x.ndim - 1))))
    return scale * F.straight_through(x, _clip_rule, sign, clip_value=clip_value)


def _ste_tern(x, threshold_value, ternary_weight_networks, clip_value):
    threshold = (
        0.7 * jax.lax.stop_gradient(jnp.mean(jnp.abs(x)))
        if ternary_weight_networks
        else jnp.asarray(threshold_value, x.dtype)
    )
    return F.straight_through(x, _clip_rule, _tern, threshold=threshold, clip_value=clip_value)


def _dorefa(x, k_bit, mode):
    if not (isinstance(k_bit, int) and k_bit >= 1):
        raise ValueError(f"dorefa: k_bit must be an integer ≥ 1, got {k_bit!r}")
    levels = jnp.asarray(2**k_bit - 1, x.dtype)
    if mode == "activations":
        return F.straight_through(x, _unit_interval, _dorefa_levels, levels=levels)
    if mode == "weights":  # w' = tanh(x)/(2·sg(max|tanh x|)) + 0.5, identity for the rounding
        limited = jnp.tanh(x)
        divisor = 2.0 * jax.lax.stop_gradient(jnp.max(jnp.abs(limited)))
        normed = jnp.where(divisor > 0, limited / jnp.where(divisor > 0, divisor, 1.0), 0.0) + 0.5
        return 2.0 * F.straight_through(normed, _clip_rule, _dorefa_levels, levels=levels) - 1.0
    raise ValueError(f"dorefa: mode must be 'activations' or 'weights', got {mode!r}")


register_unit(
    "ste_heaviside",
    hard=lambda x, clip_value: F.straight_through(x, _clip_rule, _open_step, clip_value=clip_value),
    defaults={"clip_value": 1.0},
    citation=f"{_LARQ} ste_heaviside (H(0) = 0)",
)
register_unit(
    "magnitude_aware_sign",
    hard=_magnitude_aware_sign,
    defaults={"clip_value": 1.0},
    citation=f"Liu et al. 2018 (Bi-Real Net); {_LARQ} MagnitudeAwareSign",
)
register_unit(
    "ste_tern",
    hard=_ste_tern,
    bits=2,
    defaults={"threshold_value": 0.05, "ternary_weight_networks": False, "clip_value": 1.0},
    citation=f"Li & Liu 2016 (TWN, arXiv 1605.04711); {_LARQ} ste_tern",
)
register_unit(
    "dorefa",
    hard=_dorefa,
    bits=lambda k_bit, mode: k_bit,
    defaults={"k_bit": 2, "mode": "activations"},
    citation=f"Zhou et al. 2016 (DoReFa-Net, arXiv 1606.06160); {_LARQ} DoReFa",
)
