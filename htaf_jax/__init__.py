"""htaf_jax: the Heavy-Tailed Activation Function (HTAF) for JAX/Flax.

HTAF, σ(α·tanh(β·x)), is a smooth stand-in for the Heaviside step with heavy
gradient tails; its straight-through form trains spiking, binary and deep
Heaviside networks, and gives concept bottleneck models ~binary concepts.
"""
from htaf_jax.functions import (
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    heaviside,
    htaf,
    htaf_grad,
    htaf_heaviside,
    htaf_sign,
)
from htaf_jax.surrogates import (
    Surrogate,
    get_surrogate,
    list_surrogates,
    register_surrogate,
    resolve_surrogate,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_BETA",
    "Surrogate",
    "get_surrogate",
    "heaviside",
    "htaf",
    "htaf_grad",
    "htaf_heaviside",
    "htaf_sign",
    "list_surrogates",
    "register_surrogate",
    "resolve_surrogate",
]
