"""Building a Linen module from a model ConfigDict (used by the model factories)."""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping, Sequence

from htaf_jax.units import Unit, resolve_unit

__all__ = [
    "ENGINE_FIELDS",
    "SMOOTH_MODE_FIELDS",
    "bound_surrogate",
    "check_unit",
    "module_kwargs",
    "surrogate_hparams",
]

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
        raise ValueError(
            f"{field}.surrogate_kwargs sets {', '.join(flat)} without a unit "
            f"name; key every entry by unit name, e.g. {field}.surrogate_kwargs = "
            f"{{'htaf': {{'alpha': 4.0}}}}"
        )
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
        raise ValueError(
            f"{field}.surrogate={unit.name!r} has no smooth form, so it cannot "
            f"train with {field}.{smooth[0]}='smooth'; set "
            f"{field}.{smooth[0]}='hard'"
        )


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
        raise ValueError(
            f"{cls.__name__} has no fields {sorted(unknown)}; its fields are {sorted(fields)}"
        )
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items() if k in fields}
    check_field_types(cls, kwargs)
    return kwargs


def check_field_types(cls, kwargs: dict) -> None:
    """Raises a one-line ValueError naming the first value that does not fit its field's
    annotation in ``cls``: a ``Literal`` (the field's one list of choices: resets,
    encodings, concept modes, ...), bool, int, a finite float, or a sequence of ints ≥ 1."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve is not checked
        return
    for name, value in kwargs.items():
        rule = _rule(hints.get(name), value)
        if rule:
            raise ValueError(f"{name} must be {rule}, got {value!r}")


def _rule(hint, value) -> str | None:
    """What ``value`` should be to fit ``hint``, or None when it fits (or is not checked)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Literal:
        return None if value in args else f"one of {', '.join(map(str, args))}"
    if type(None) in args:  # Optional[X]: None or an X
        rest = [a for a in args if a is not type(None)]
        return None if value is None or len(rest) != 1 else _rule(rest[0], value)
    if hint is bool:
        return None if isinstance(value, bool) else "True or False"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if hint is float:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if number and math.isfinite(value) else "a finite number"
    if typing.get_origin(hint) in (Sequence, tuple, list) and args and args[0] is int:
        ok = isinstance(value, (tuple, list)) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
        )
        return None if ok else "a sequence of integers >= 1"
    return None


def _is_mapping(x) -> bool:
    return isinstance(x, Mapping) or hasattr(x, "to_dict")


def _as_dict(x) -> dict:
    if x is None:
        return {}
    return x.to_dict() if hasattr(x, "to_dict") else dict(x)
