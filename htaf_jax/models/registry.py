"""The model registry: a name in ``config.model.name`` → a Flax Linen module.

    @register_model("mlp")
    def _mlp(model_config: ConfigDict) -> nn.Module: ...

    model = build_model(config.model)
    model = build_model(config.model, num_classes=10, total_train_steps=1000)

The second form is how the engine gives a model what it derives from the data
and the run (``DERIVED_FIELDS``): they go into a copy of the config, never into
the caller's, so a stored config holds only what a person chose.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, TypeVar

import flax.linen as nn

from htaf_jax.models.config_fields import module_kwargs

# A model config: an ml_collections.ConfigDict (the engine's) or a plain mapping.
ModelFactory = Callable[[Any], nn.Module]
_F = TypeVar("_F", bound=Callable)

# What the engine derives and passes to build_model: the number of classes of
# the data and the length of training (for schedules that depend on the train
# step, e.g. the ICBM's sharpening). A factory whose module has no such field
# drops it (htaf_jax.models.config_fields.ENGINE_FIELDS).
DERIVED_FIELDS = ("num_classes", "total_train_steps")

_REGISTRY: dict[str, ModelFactory] = {}
# Modules that register models when imported; importing them lazily keeps
# `import htaf_jax.models` cheap and lets each model family live in its own file.
_MODEL_MODULES = ("mlp", "snn", "rsnn", "bnn", "bnn_resnet", "dhn", "icbm")


def register_model(name: str) -> Callable[[_F], _F]:
    """Decorator registering ``fn(model_config) -> nn.Module`` under ``name``, or a Linen
    Module class, then built by ``cls(**config_fields.module_kwargs(cls, model_config))``.

    ``model_config`` is a ConfigDict (or mapping) holding ``name`` and the
    model's fields; the factory should reject a field it does not know
    (``config_fields.module_kwargs`` does)."""

    def wrap(fn: _F) -> _F:
        obj: Any = fn  # a class or a function (no narrowing of fn's type)
        factory = _module_factory(obj) if inspect.isclass(obj) else obj
        existing = _REGISTRY.get(name, factory)
        if (existing.__module__, existing.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(
                f"model {name!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        _REGISTRY[name] = factory
        return fn

    return wrap


def _module_factory(cls: type) -> ModelFactory:
    def factory(model_config) -> nn.Module:
        return cls(**module_kwargs(cls, model_config))

    factory.__module__, factory.__qualname__ = cls.__module__, cls.__qualname__
    return factory


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
        raise ValueError(
            f"config.model.name: unknown model {name!r}; "
            f"registered models: {', '.join(list_models())}"
        )
    return _REGISTRY[name]


def build_model(model_config, **derived) -> nn.Module:
    """Builds the module named by ``model_config.name`` from the rest of the config.

    ``derived`` (``DERIVED_FIELDS`` only: ``num_classes``, ``total_train_steps``)
    are set in a copy of ``model_config``, overriding the config's values; the
    caller's config is left as it is. A field the model does not know raises
    ValueError naming the valid ones.
    """
    unknown = sorted(set(derived) - set(DERIVED_FIELDS))
    if unknown:
        raise TypeError(
            f"build_model: unknown derived fields {unknown}; valid: {', '.join(DERIVED_FIELDS)}"
        )
    fields = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
    fields.update({k: v for k, v in derived.items() if v is not None})
    if "name" not in fields:
        raise ValueError(
            "config.model.name is missing: the registered model to build "
            f"({', '.join(list_models())})"
        )
    return get_model_factory(fields["name"])(_config_like(model_config, fields))


def _config_like(model_config, fields: dict):
    """``fields`` as the same kind of object as ``model_config`` (a ConfigDict stays one,
    so factories may read ``config.field``)."""
    if hasattr(model_config, "to_dict"):
        return type(model_config)(fields)
    return fields
