"""Bop, the binary optimizer, as an optax transform (Helwegen et al., NeurIPS 2019).

Bop keeps no latent weights: a binary weight w ∈ {−1, +1} flips when an
exponential moving average of its gradient is strong enough and points the
same way as the weight (so that flipping it lowers the loss)::

    m_t = m_{t−1} + γ (g_t − m_{t−1})
    w_t = sign(−sign(w_{t−1} m_t − τ) · w_{t−1})      sign(0) = +1 outside,
                                                     sign(0) = 0 inside

that is, w flips iff w·m_t > τ. Defaults τ = 1e-8, γ = 1e-4, as Larq's
``lq.optimizers.Bop`` (Helwegen et al., "Latent Weights Do Not Exist:
Rethinking Binarized Neural Network Optimization", NeurIPS 2019). A weight
that is not yet ±1 (a fresh initialisation) is set to its sign on the first
update, as Larq's does.

Real-valued parameters (BatchNorm, biases, full-precision layers) need another
optimizer: :func:`bop_with` combines Bop on the binary weights with any optax
transform on the rest, by the labels of :func:`binary_labels` (every
parameter named ``latent_kernel``, the name the binary layers give their
kernels).

    tx = bop_with(optax.adam(1e-3))
    opt_state = tx.init(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    flip_ratio(opt_state)        # share of binary weights flipped by that update
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import Array

from htaf_jax._larq_units import sign as _sign_plus  # sign(0) = +1 (Larq's math.sign)
from htaf_jax.binary import LATENT_KERNEL

__all__ = ["BINARY", "BopState", "REAL", "binary_labels", "bop", "bop_with", "flip_ratio"]

BINARY, REAL = "binary", "real"


class BopState(NamedTuple):
    momentum: Any  # same tree as the params: the gradient average m
    flipped: Array  # int32 scalar: weights flipped by the last update
    count: Array  # int32 scalar: binary weights this transform owns


def bop(threshold: float = 1e-8, gamma: float = 1e-4) -> optax.GradientTransformation:
    """The Bop update on every leaf it is given (use :func:`bop_with` to give it the
    binary weights only)."""

    def init(params):
        count = sum(int(p.size) for p in jax.tree.leaves(params))
        return BopState(
            jax.tree.map(jnp.zeros_like, params),
            jnp.zeros((), jnp.int32),
            jnp.asarray(count, jnp.int32),
        )

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("bop needs the params: call tx.update(grads, state, params)")
        momentum = jax.tree.map(lambda m, g: m + gamma * (g - m), state.momentum, grads)
        new = jax.tree.map(
            lambda w, m: _sign_plus(-jnp.sign(w * m - threshold) * w), params, momentum
        )
        flipped = sum(
            jnp.sum(jnp.sign(w) * n < 0)
            for w, n in zip(jax.tree.leaves(params), jax.tree.leaves(new))
        )
        updates = jax.tree.map(lambda n, w: n - w, new, params)
        return updates, BopState(momentum, jnp.asarray(flipped, jnp.int32), state.count)

    return optax.GradientTransformation(init, update)


def _is_binary(path) -> bool:
    """The path names ``latent_kernel``: its last dict or attribute key (an NNX
    ``Param`` is a pytree node whose array sits one key deeper, under ``value``, when
    ``nnx.Optimizer`` initialises its state, and a leaf when it updates: the label
    must be the same both times)."""
    names = [getattr(k, "key", getattr(k, "name", None)) for k in path]
    names = [n for n in names if isinstance(n, str) and n != "value"]
    return bool(names) and names[-1] == LATENT_KERNEL


def binary_labels(params, is_binary: Callable[[tuple], bool] = _is_binary):
    """``"binary"`` for every leaf whose path ends in ``latent_kernel`` (or for which
    ``is_binary(path)`` holds), ``"real"`` for the rest."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: BINARY if is_binary(path) else REAL, params
    )


def bop_with(
    real_optimizer: optax.GradientTransformation,
    threshold: float = 1e-8,
    gamma: float = 1e-4,
    labels: Callable = binary_labels,
) -> optax.GradientTransformation:
    """Bop on the binary weights, ``real_optimizer`` on everything else."""
    return optax.multi_transform({BINARY: bop(threshold, gamma), REAL: real_optimizer}, labels)


def bop_states(opt_state) -> list[BopState]:
    """The :func:`bop` states inside an optax state (none for another optimizer)."""
    leaves = jax.tree.leaves(opt_state, is_leaf=lambda s: isinstance(s, BopState))
    return [s for s in leaves if isinstance(s, BopState)]


def flip_ratio(opt_state) -> Array:
    """Share of binary weights the last update flipped (Larq's ``FlipRatio``),
    found in a :func:`bop` state or in any optax state that contains one."""
    states = bop_states(opt_state)
    if not states:
        raise ValueError("no Bop state in this optimizer state")
    flipped = sum(s.flipped for s in states)
    count = sum(s.count for s in states)
    return flipped / jnp.maximum(count, 1)
