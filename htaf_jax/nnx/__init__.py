"""Flax NNX layers over the pure-JAX core (``htaf_jax``).

Same names, fields and defaults as ``htaf_jax.linen``; both call the same core
functions, and ``tests/test_layers_*.py`` checks that they agree.
"""

from htaf_jax.nnx.binary import BinaryConv, BinaryDense, QuantConv, QuantDense
from htaf_jax.nnx.concepts import ConceptBottleneck
from htaf_jax.nnx.heaviside import HeavisideDense
from htaf_jax.nnx.spiking import ALIF, IF, LIF, RecurrentLIF, Synaptic

__all__ = [
    "ALIF",
    "BinaryConv",
    "BinaryDense",
    "ConceptBottleneck",
    "HeavisideDense",
    "IF",
    "LIF",
    "QuantConv",
    "QuantDense",
    "RecurrentLIF",
    "Synaptic",
]
