"""Flax Linen models, looked up by name: ``build_model(config.model)``.

Each model family lives in its own module and registers a factory with
``@register_model(name)``; see docs/CONTRACTS.md for the call convention.
"""

from htaf_jax.models.registry import build_model, list_models, register_model

__all__ = ["build_model", "list_models", "register_model"]
