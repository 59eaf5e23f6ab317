"""The deep-Heaviside unit: a hidden unit that is the step H(z) ∈ {0, 1}.

Deep Heaviside networks (DHNs) compute h = H(z) in every hidden layer.
Kong, Chen, Langer & Schmidt-Hieber ("On the expressivity of deep Heaviside
networks", arXiv 2505.00110) show that plain DHNs are limited in what they can
express and that skip connections, or some linear units per layer, fix that;
the "mixed" form here keeps a fraction of each layer's units linear:

    h_c = z_c                  for c < n_lin = round(linear_fraction · C)
    h_c = u(z_c)               otherwise

where the unit u is, for a surrogate s (``htaf_jax.surrogates``):

- ``smooth=True``:  s.smooth(z), whose derivative is s.grad (HTAF:
  σ(α·tanh(β·z))). Training a DHN this way and evaluating it with H is the
  smooth-training mode;
- ``smooth=False``: H(z) forward (H(0) = 1), s.grad backward: the hard,
  straight-through mode, and the form every DHN is evaluated with.
"""
from __future__ import annotations

from typing import Any, Literal

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from htaf_jax.surrogates import resolve_surrogate

__all__ = ["Mode", "check_mode", "heaviside_unit", "linear_count", "mixed_units"]

# How a DHN layer trains: "smooth" units (the surrogate's smooth forward) or
# "hard" ones (H forward, surrogate backward). Evaluation is always hard.
Mode = Literal["smooth", "hard"]


def check_mode(mode: str) -> None:
    """Raises ValueError unless ``mode`` is "smooth" or "hard"."""
    if mode not in ("smooth", "hard"):
        raise ValueError(f"mode must be smooth or hard, got {mode!r}")


def linear_count(channels: int, linear_fraction: float) -> int:
    """n_lin = round(linear_fraction · channels): how many units stay linear.

    >>> linear_count(256, 0.25)
    64
    """
    if not 0.0 <= linear_fraction <= 1.0:
        raise ValueError(f"linear_fraction must be in [0, 1], got {linear_fraction}")
    return int(round(linear_fraction * channels))


def heaviside_unit(z: ArrayLike, surrogate: Any = "htaf", smooth: bool = False) -> Array:
    """u(z): H(z) with the surrogate's backward, or its smooth forward (``smooth``).

    Any shape. Raises ValueError when ``smooth`` is asked of a surrogate that
    has none (the straight-through entries, a plain callable).
    """
    s = resolve_surrogate(surrogate)
    if not smooth:
        return s.heaviside(z)
    if not getattr(s, "has_smooth", False):
        raise ValueError(f"surrogate {getattr(s, 'name', s)!r} has no smooth forward; "
                         "train it with the hard unit (mode='hard')")
    return s.smooth(z)


def mixed_units(z: ArrayLike, surrogate: Any = "htaf", smooth: bool = False,
                linear_fraction: float = 0.0) -> Array:
    """h = [z_{:n_lin}, u(z_{n_lin:})] along the last (channel) axis; (..., C) → (..., C).

    With ``linear_fraction=0`` this is ``heaviside_unit`` (a plain DHN layer).
    """
    z = jnp.asarray(z)
    h = heaviside_unit(z, surrogate, smooth)
    n_linear = linear_count(z.shape[-1], linear_fraction)
    if n_linear == 0:
        return h
    return jnp.concatenate([z[..., :n_linear], h[..., n_linear:]], axis=-1)
