"""Docstrings write their formulas as plain text (``|x| ≤ 1``, ``f(x, **hparams)``), which
reads well in ``help()`` and in the source; in reStructuredText ``|x|`` would be a
substitution and ``**hparams`` the start of bold text. Outside literal blocks, doctests and
inline code, this escapes ``|`` and a ``*``/``**`` that opens a name, so they print as
written."""

from __future__ import annotations

import re

_CODE = re.compile(r"(``.+?``|:[\w:]+:`[^`]+`|`[^`]+`_?)")
_STAR = re.compile(r"(?<![\w*\\])(\*\*?)(?=\w+\b(?!\*))")
_LITERAL_DIRECTIVE = re.compile(r"\.\. (math|code|code-block|highlight|doctest|testcode)::")
_GRID = re.compile(r"^\s*[+|].*[+|]\s*$")


def _escape(text: str) -> str:
    parts = _CODE.split(text)
    for i in range(0, len(parts), 2):  # the even parts are outside code
        parts[i] = _STAR.sub(lambda m: "\\*" * len(m.group(1)), parts[i].replace("|", "\\|"))
    return "".join(parts)


def escape_plain_math(app, what, name, obj, options, lines: list[str]) -> None:
    literal_indent = None  # inside a literal block: the indent of the line that opened it
    doctest = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if not stripped or indent > literal_indent:
                continue
            literal_indent = None
        if doctest:
            if stripped:
                continue
            doctest = False
        if stripped.startswith(">>>"):
            doctest = True
            continue
        if stripped.startswith("..") or _GRID.match(line):
            if _LITERAL_DIRECTIVE.match(stripped):
                literal_indent = indent
            continue
        lines[i] = _escape(line)
        if stripped.endswith("::"):
            literal_indent = indent


def setup(app):
    app.connect("autodoc-process-docstring", escape_plain_math)
    return {"parallel_read_safe": True}
