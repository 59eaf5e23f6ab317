"""Building a Linen module from a model ConfigDict (used by the model factories)."""
from __future__ import annotations

from collections.abc import Mapping

from htaf_jax.units import Unit, resolve_unit

__all__ = ["ENGINE_FIELDS", "SMOOTH_MODE_FIELDS", "bound_surrogate", "check_unit",
           "module_kwargs", "surrogate_hparams"]

# Set in ``config.model`` by the engine (htaf_jax.train.loop) for every model;
# a module without such a field simply does not receive it.
ENGINE_FIELDS = frozenset({"total_train_steps"})
# Model fields that choose the unit's training form, "smooth" or "hard" (DHN, ICBM).
SMOOTH_MODE_FIELDS = ("mode", "concept_mode")


def surrogate_hparams(config, field: str = "model") -> dict:
    """The hyperparameters ``config.surrogate_kwargs`` binds to the chosen ``surrogate``.

    Keyed by unit name (``{"htaf": {"alpha": 16.0, "beta": 1.0}}``): the entry of
    the chosen unit is used and every other unit takes its registry defaults, so
    ``--config.model.surrogate=atan`` runs atan as its peers define it. A flat
    dict (``{"alpha": 4.0}``) raises a one-line ValueError naming the field.
    """
    hparams = _as_dict(config.get("surrogate_kwargs", None))
    flat = sorted(k for k, v in hparams.items() if not _is_mapping(v))
    if flat:
        raise ValueError(f"{field}.surrogate_kwargs sets {', '.join(flat)} without a unit "
                         f"name; key every entry by unit name, e.g. {field}.surrogate_kwargs = "
                         f"{{'htaf': {{'alpha': 4.0}}}}")
    name = config.get("surrogate", "htaf")
    return _as_dict(hparams.get(name)) if isinstance(name, str) else {}


def check_unit(config, field: str = "model") -> None:
    """Raises a one-line ValueError naming the field when the config's unit cannot
    train as configured: an unknown name, hyperparameters it does not take, or a
    smooth training form (``SMOOTH_MODE_FIELDS``) for a unit without one."""
    hparams = surrogate_hparams(config, field)
    try:
        unit = resolve_unit(config.get("surrogate", "htaf"), **hparams)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{field}.surrogate: {e}") from None
    smooth = [f for f in SMOOTH_MODE_FIELDS if config.get(f, None) == "smooth"]
    if smooth and not unit.has_smooth:
        raise ValueError(f"{field}.surrogate={unit.name!r} has no smooth form, so it cannot "
                         f"train with {field}.{smooth[0]}='smooth'; set "
                         f"{field}.{smooth[0]}='hard'")


def bound_surrogate(config, field: str = "model") -> Unit:
    """``config.surrogate`` (a registry name, a Unit or a callable) resolved once, with
    the hyperparameters ``surrogate_hparams`` gives."""
    return resolve_unit(config.get("surrogate", "htaf"), **surrogate_hparams(config, field))


def module_kwargs(cls, config) -> dict:
    """The config's entries as keyword arguments of ``cls``.

    ``name`` (the registry key) is dropped, lists become tuples (Linen fields
    should be hashable), and an entry that is not a field of ``cls`` raises, so
    a typo in a config or on the command line fails loudly (except the
    ``ENGINE_FIELDS`` the engine sets for every model).

    A ``surrogate`` field is resolved here, once, to a ``Unit`` with the
    hyperparameters of ``surrogate_kwargs`` (keyed by unit name).
    """
    fields = set(cls.__dataclass_fields__) - {"parent", "name"}
    cfg = dict(config)
    cfg.pop("surrogate_kwargs", None)
    if "surrogate" in fields:
        cfg["surrogate"] = bound_surrogate(config)
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
