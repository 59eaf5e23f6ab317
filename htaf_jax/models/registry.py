"""The model registry: a name in ``config.model.name`` → a Flax Linen module.

    @register_model("mlp")
    def _mlp(model_config: ConfigDict) -> nn.Module: ...

    model = build_model(config.model)
"""
from __future__ import annotations

import importlib
from typing import Callable

import flax.linen as nn
import ml_collections

ModelFactory = Callable[[ml_collections.ConfigDict], nn.Module]

_REGISTRY: dict[str, ModelFactory] = {}
# Modules that register models when imported; importing them lazily keeps
# `import htaf_jax.models` cheap and lets each model family live in its own file.
_MODEL_MODULES = ("mlp", "snn", "bnn", "dhn", "icbm")


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering ``fn(model_config) -> nn.Module`` under ``name``."""
    def wrap(fn: ModelFactory) -> ModelFactory:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            existing = _REGISTRY[name]
            if (existing.__module__, existing.__qualname__) != (fn.__module__, fn.__qualname__):
                raise ValueError(f"model {name!r} is already registered by "
                                 f"{existing.__module__}.{existing.__qualname__}")
        _REGISTRY[name] = fn
        return fn
    return wrap


def _import_model_modules() -> None:
    for module in _MODEL_MODULES:
        try:
            importlib.import_module(f"htaf_jax.models.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"htaf_jax.models.{module}":
                raise  # a real missing dependency inside an existing module


def list_models() -> list[str]:
    """Registered model names, sorted."""
    _import_model_modules()
    return sorted(_REGISTRY)


def get_model_factory(name: str) -> ModelFactory:
    if name not in _REGISTRY:
        _import_model_modules()
    if name not in _REGISTRY:
        raise ValueError(f"config.model.name: unknown model {name!r}; "
                         f"registered models: {', '.join(list_models())}")
    return _REGISTRY[name]


def build_model(model_config: ml_collections.ConfigDict) -> nn.Module:
    """Builds the module named by ``model_config.name`` from the rest of the config."""
    return get_model_factory(model_config.name)(model_config)
