"""Flax Linen layers over the pure-JAX core (``htaf_jax``).

Same names, fields and defaults as ``htaf_jax.nnx``; both call the same core
functions, and ``tests/test_layers_*.py`` checks that they agree.
"""

from htaf_jax.linen.binary import BinaryConv, BinaryDense, QuantConv, QuantDense
from htaf_jax.linen.concepts import ConceptBottleneck
from htaf_jax.linen.heaviside import HeavisideDense
from htaf_jax.linen.spiking import ALIF, IF, LIF, RecurrentLIF, Synaptic
from htaf_jax.linen.summary import ModelSummary, summarize

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
    # Linen only: a Larq-style summary by bit width (lq.models.summary).
    "ModelSummary",
    "summarize",
]
