"""htaf_jax: the Heavy-Tailed Activation Function (HTAF) for JAX.

HTAF, σ(α·tanh(β·x)), is a smooth stand-in for the Heaviside step with heavy
gradient tails; its straight-through form trains spiking, binary and deep
Heaviside networks, and gives concept bottleneck models ~binary concepts.

This package is the JAX-only core: functions, registries and the pure math of
every layer (``spiking``, ``binary``, ``heaviside``, ``concepts``; ``bop``, the
binary optimizer, as an optax transform; ``units``, the one registry of
binary units: HTAF, the peers' surrogates and Larq's quantizers; ``packing``, bit-packed XNOR/popcount inference). Layers: ``htaf_jax.linen`` and ``htaf_jax.nnx`` (same names in
both); our architectures: ``htaf_jax.models``; the training engine:
``htaf_jax.train`` (``pip install 'htaf-jax[train]'``).

Every unit, HTAF's included: ``u = get_unit(name, **hparams)``; ``u(x)`` is its
hard (straight-through) form, ``u.sign`` the ±1 form of a step unit, ``u.smooth``
the smooth forward where it has one and ``u.grad`` the rule.
"""

# The pure math of every layer, one module per topic (JAX only).
import htaf_jax._larq_units  # noqa: F401  (registers Larq's quantizers as units)
from htaf_jax import binary, bop, concepts, heaviside, packing, spiking, units
from htaf_jax.functions import DEFAULT_ALPHA, DEFAULT_BETA, htaf, htaf_grad, straight_through
from htaf_jax.units import (
    StepUnit,
    Unit,
    get_unit,
    list_units,
    peak_slope_hparams,
    register_unit,
    resolve_unit,
)

__version__ = "0.3.0"

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_BETA",
    "StepUnit",
    "Unit",
    "binary",
    "bop",
    "concepts",
    "get_unit",
    "heaviside",
    "htaf",
    "htaf_grad",
    "list_units",
    "packing",
    "peak_slope_hparams",
    "register_unit",
    "resolve_unit",
    "spiking",
    "straight_through",
    "units",
]
