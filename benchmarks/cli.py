"""The benchmarks' flags, with the library's flag library (absl, as every experiment
command): ``--help`` prints the module's docstring and its flags, a bad flag one line
and exit status 2."""
from __future__ import annotations

import json
import os
import sys
import types

from absl import flags


def parse(argv: list[str] | None, usage: str, **specs) -> types.SimpleNamespace:
    """``argv`` (without the program; None: ``sys.argv[1:]``) parsed against ``specs``:
    ``name=(default, help)`` or ``name=(default, help, choices)``, the flag spelled with
    '-' for '_' (``no_torch`` -> ``--no-torch``), its type that of the default (bool: a
    switch; None: a string). Returns the values by Python name."""
    from htaf_jax.train import cli
    values = flags.FlagValues()
    for name, (default, text, *choices) in specs.items():
        flag, kw = name.replace("_", "-"), {"flag_values": values}
        if choices:
            flags.DEFINE_enum(flag, default, choices[0], text, **kw)
        elif isinstance(default, bool):
            flags.DEFINE_bool(flag, default, text, **kw)
        elif isinstance(default, int):
            flags.DEFINE_integer(flag, default, text, **kw)
        else:
            flags.DEFINE_string(flag, default, text, **kw)
    prog = os.path.basename(sys.argv[0]) if argv is None else "benchmark"
    rest = cli.parse_command(values, [prog, *(sys.argv[1:] if argv is None else argv)], usage)
    if rest:
        print(f"{prog}: error: unexpected arguments {rest}", file=sys.stderr)
        sys.exit(2)
    return types.SimpleNamespace(**{n: values[n.replace("_", "-")].value for n in specs})


def write_json(path: str | None, result) -> None:
    """``result`` as indented JSON at ``path`` (nothing where it is None)."""
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=2, default=str)
