"""The deep-Heaviside unit: a hidden unit that is the step H(z) ∈ {0, 1}.

Deep Heaviside networks (DHNs) compute h = H(z) in every hidden layer.
Kong, Chen, Langer & Schmidt-Hieber ("On the expressivity of deep Heaviside
networks", arXiv 2505.00110) show that plain DHNs are limited in what they can
express and that skip connections, or some linear units per layer, fix that;
the "mixed" form here keeps a fraction of each layer's units linear:

    h_c = z_c                  for c < n_lin = round(linear_fraction · C)
    h_c = u(z_c)               otherwise

where the unit u is, for a unit s (``htaf_jax.units``):

- ``smooth=True``:  s.smooth(z), whose derivative is s.grad (HTAF:
  σ(α·tanh(β·z))). Training a DHN this way and evaluating it with H is the
  smooth-training mode;
- ``smooth=False``: H(z) forward (H(0) = 1), s.grad backward: the hard,
  straight-through mode, and the form every DHN is evaluated with.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from htaf_jax.units import resolve_unit

__all__ = ["Mode", "backward_gain", "check_mode", "linear_count", "mixed_units"]

# How a DHN layer trains: "smooth" units (the surrogate's smooth forward) or
# "hard" ones (H forward, surrogate backward). Evaluation is always hard.
Mode = Literal["smooth", "hard"]


def check_mode(mode: str) -> None:
    """Raises ValueError unless ``mode`` is "smooth" or "hard"."""
    if mode not in get_args(Mode):
        raise ValueError(f"mode must be one of {', '.join(get_args(Mode))}, got {mode!r}")


def linear_count(channels: int, linear_fraction: float) -> int:
    """n_lin = round(linear_fraction · channels): how many units stay linear.

    >>> linear_count(256, 0.25)
    64
    """
    if not 0.0 <= linear_fraction <= 1.0:
        raise ValueError(f"linear_fraction must be in [0, 1], got {linear_fraction}")
    return int(round(linear_fraction * channels))


def mixed_units(
    z: ArrayLike, surrogate: Any = "htaf", smooth: bool = False, linear_fraction: float = 0.0
) -> Array:
    """h = [z_{:n_lin}, u(z_{n_lin:})] along the last (channel) axis; (..., C) → (..., C).

    u(z) is the unit's hard form, or with ``smooth`` its smooth form (ValueError
    for a unit without one). ``linear_fraction=0``: a plain DHN layer.
    """
    z = jnp.asarray(z)
    unit = resolve_unit(surrogate)
    h = unit.smooth(z) if smooth else unit(z)
    n_linear = linear_count(z.shape[-1], linear_fraction)
    if n_linear == 0:
        return h
    return jnp.concatenate([z[..., :n_linear], h[..., n_linear:]], axis=-1)


def backward_gain(surrogate: Any = "htaf", **hparams: float) -> float:
    """r = 2·√E[s'(z)²], z ~ N(0, 1): the factor by which one plain DHN layer
    (z = BN(W h), h = H(z) forward, s' backward) scales a back-propagated
    gradient's norm at initialisation, so that hidden layer l's weight
    gradient is about r^(L−1−l) times the last hidden layer's (l ≥ 1).

    Derivation (mean-field, large width and batch, i.i.d. weights): train-mode
    BatchNorm makes z ≈ N(0, 1), so h ~ Bernoulli(½) with Var(h) = ¼ and
    Var(W h) = n·Var(W)/4 over the batch. Back through BN and Wᵀ,
    ‖∂L/∂h‖² = n·Var(W)·‖∂L/∂z‖² / Var(W h) = 4‖∂L/∂z‖²; through the unit,
    ‖∂L/∂z‖² = E[s'(z)²]·‖∂L/∂h‖². A layer's weight gradient is ∂L/∂(W h)
    times the layer input (the same norm for every binary layer), so the
    gradient norm falls (r < 1) or grows (r > 1) geometrically with depth.
    Layer 0 reads the real-valued input, and the mean-centring of BN's
    backward pass is left out. E[s'²] by a Riemann sum on |z| ≤ 10 (step 5e−4).

    Straight-through (s' = 1) gives r = 2. For HTAF, E[s'²] grows with α and
    β (about α²β/16 while α is small: peak slope αβ/4 over a width ~1/β), so a
    flat unit lets the gradient vanish with depth and a steep one explodes it;
    r = 1 is the line between.
    """
    s = resolve_unit(surrogate, **hparams)
    z, dz = np.linspace(-10.0, 10.0, 40_001, retstep=True)
    grads = np.asarray(s.grad(jnp.asarray(z, jnp.float32)), np.float64)
    density = np.exp(-0.5 * z**2) / np.sqrt(2.0 * np.pi)
    return float(2.0 * np.sqrt(np.sum(grads**2 * density) * dz))
