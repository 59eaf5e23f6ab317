"""Building a Linen module from a model ConfigDict (used by the model factories)."""
from __future__ import annotations

__all__ = ["module_kwargs"]


def module_kwargs(cls, config) -> dict:
    """The config's entries as keyword arguments of ``cls``.

    ``name`` (the registry key) is dropped, lists become tuples (Linen fields
    should be hashable), and an entry that is not a field of ``cls`` raises, so
    a typo in a config or on the command line fails loudly.
    """
    fields = set(cls.__dataclass_fields__) - {"parent", "name"}
    cfg = dict(config)
    unknown = set(cfg) - fields - {"name"}
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {sorted(unknown)}; "
                         f"its fields are {sorted(fields)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items() if k in fields}
