"""htaf_jax: the Heavy-Tailed Activation Function (HTAF) for JAX.

HTAF, σ(α·tanh(β·x)), is a smooth stand-in for the Heaviside step with heavy
gradient tails; its straight-through form trains spiking, binary and deep
Heaviside networks, and gives concept bottleneck models ~binary concepts.

This package is the JAX-only core: functions, registries and the pure math of
every layer (``spiking``, ``binary``, ``heaviside``, ``concepts``; ``bop``, the
binary optimizer, as an optax transform; ``quantizers``, Larq's quantizer set;
``packing``, bit-packed XNOR/popcount inference). Layers: ``htaf_jax.linen`` and ``htaf_jax.nnx`` (same names in
both); our architectures: ``htaf_jax.models``; the training engine:
``htaf_jax.train`` (``pip install 'htaf-jax[train]'``).

Hard forms of every unit, HTAF's included: ``get_surrogate(name, **hparams)``
gives an object whose ``heaviside`` (== ``__call__``) and ``sign`` are the
straight-through forms, ``smooth`` the smooth forward and ``grad`` the rule.
"""
from htaf_jax.functions import (
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    htaf,
    htaf_grad,
    straight_through,
)
from htaf_jax.surrogates import (
    Surrogate,
    get_surrogate,
    list_surrogates,
    register_surrogate,
    resolve_surrogate,
)
# The pure math of every layer, one module per topic (JAX only).
from htaf_jax import binary, bop, concepts, heaviside, packing, quantizers, spiking  # noqa: E402
from htaf_jax.quantizers import (  # noqa: E402
    Quantizer,
    get_quantizer,
    list_quantizers,
    register_quantizer,
    resolve_quantizer,
)

__version__ = "0.3.0"

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_BETA",
    "Quantizer",
    "Surrogate",
    "binary",
    "bop",
    "concepts",
    "get_quantizer",
    "get_surrogate",
    "heaviside",
    "htaf",
    "htaf_grad",
    "list_quantizers",
    "list_surrogates",
    "packing",
    "quantizers",
    "register_quantizer",
    "register_surrogate",
    "resolve_quantizer",
    "resolve_surrogate",
    "spiking",
    "straight_through",
]
