"""The three forms of a binary unit that the SNN, BNN and DHN models use.

Every model stores ``surrogate: str | Callable`` and resolves it here, so a
registry name, a ``Surrogate`` or a user's own callable all work:

- ``heaviside_unit(spec)``: x → {0, 1} (H(0) = 1), surrogate backward.
- ``sign_unit(spec)``: x → {−1, +1} (sign(0) = +1), backward 2·grad. For a raw
  callable f (not a ``Surrogate``) this is ``2·f(x) − 1``, which has exactly
  that forward and backward.
- ``smooth_unit(spec)``: the smooth forward (HTAF: σ(α·tanh(β·x))), or None
  when the entry has none (straight-through estimators, raw callables).
"""
from __future__ import annotations

from typing import Callable

from jax import Array

from htaf_jax.surrogates import resolve_surrogate

__all__ = ["heaviside_unit", "sign_unit", "smooth_unit"]

Unit = Callable[[Array], Array]


def heaviside_unit(spec) -> Unit:
    """H(x) forward with the surrogate's gradient."""
    return resolve_surrogate(spec)


def sign_unit(spec) -> Unit:
    """sign(x) ∈ {−1, +1} forward (sign(0) = +1), backward 2·grad(x)."""
    s = resolve_surrogate(spec)
    sign = getattr(s, "sign", None)
    if sign is not None:
        return sign
    return lambda x: 2.0 * s(x) - 1.0


def smooth_unit(spec) -> Unit | None:
    """The smooth forward whose derivative is the surrogate gradient, or None."""
    s = resolve_surrogate(spec)
    return s.smooth if getattr(s, "has_smooth", False) else None
