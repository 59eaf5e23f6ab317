"""Building a Linen module from a model ConfigDict (used by the model factories)."""
from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ENGINE_FIELDS", "module_kwargs"]

# Set in ``config.model`` by the engine (htaf_jax.train.loop) for every model;
# a module without such a field simply does not receive it.
ENGINE_FIELDS = frozenset({"total_train_steps"})


def module_kwargs(cls, config) -> dict:
    """The config's entries as keyword arguments of ``cls``.

    ``name`` (the registry key) is dropped, lists become tuples (Linen fields
    should be hashable), and an entry that is not a field of ``cls`` raises, so
    a typo in a config or on the command line fails loudly (except the
    ``ENGINE_FIELDS`` the engine sets for every model).

    An optional ``surrogate_kwargs`` binds hyperparameters to the ``surrogate``
    name, either flat (``{"alpha": 4.0}``, for that surrogate) or per name
    (``{"htaf": {"alpha": 4.0, "beta": 1.0}}``: used only when the surrogate is
    htaf, so ``--config.model.surrogate=atan`` runs atan with its defaults).
    """
    from htaf_jax.surrogates import resolve_surrogate
    fields = set(cls.__dataclass_fields__) - {"parent", "name"}
    cfg = dict(config)
    hparams = _as_dict(cfg.pop("surrogate_kwargs", None))
    name = cfg.get("surrogate", "htaf")
    if any(_is_mapping(v) for v in hparams.values()):
        hparams = _as_dict(hparams.get(name)) if isinstance(name, str) else {}
    if hparams:
        cfg["surrogate"] = resolve_surrogate(name, **hparams)
    unknown = set(cfg) - fields - {"name"} - ENGINE_FIELDS
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {sorted(unknown)}; "
                         f"its fields are {sorted(fields)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items() if k in fields}


def _is_mapping(x) -> bool:
    return isinstance(x, Mapping) or hasattr(x, "to_dict")


def _as_dict(x) -> dict:
    if x is None:
        return {}
    return x.to_dict() if hasattr(x, "to_dict") else dict(x)
