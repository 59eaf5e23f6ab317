"""An NNX layer's fields, declared once in a dataclass: its Linen twin, or a field spec.

NNX layers take their fields as constructor arguments; these read them, their defaults
and the signature ``help()`` and the docs show from the dataclass that declares them.
"""

from __future__ import annotations

import dataclasses
import inspect


def fields_of(spec: type) -> dict:
    """``spec``'s fields and their defaults (``dataclasses.MISSING``: required)."""
    skip = ("parent", "name")  # a Linen module's own
    return {f.name: f.default for f in dataclasses.fields(spec) if f.init and f.name not in skip}


def signature(spec: type, positional=(), before=(), after=()) -> inspect.Signature:
    """``before`` (positional), ``spec``'s fields (those in ``positional`` also by
    position), then ``after``: (name, default) pairs, keyword-only."""
    P = inspect.Parameter
    params = [P(name, P.POSITIONAL_OR_KEYWORD) for name in before]
    for f in dataclasses.fields(spec):
        if f.name in fields_of(spec):
            kind = P.POSITIONAL_OR_KEYWORD if f.name in positional else P.KEYWORD_ONLY
            default = P.empty if f.default is dataclasses.MISSING else f.default
            params.append(P(f.name, kind, default=default, annotation=f.type))
    return inspect.Signature(params + [P(n, P.KEYWORD_ONLY, default=d) for n, d in after])


def bind(layer: object, spec: type, args: tuple, given: dict, positional=()) -> dict:
    """The layer's field values: ``args`` by position (in ``positional``'s order), ``given``
    by name, the others their defaults; an unknown or a missing field raises TypeError."""
    defaults, name = fields_of(spec), type(layer).__name__
    slots = [n for n in defaults if n in positional]
    if len(args) > len(slots):
        raise TypeError(f"{name} takes {len(slots)} fields by position ({', '.join(slots)})")
    given = {**dict(zip(slots, args)), **given}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise TypeError(
            f"{name} got unknown field(s) {', '.join(unknown)}; valid: {', '.join(defaults)}"
        )
    values = {**defaults, **given}
    missing = [n for n, v in values.items() if v is dataclasses.MISSING]
    if missing:
        raise TypeError(f"{name} needs {', '.join(missing)}")
    return values
