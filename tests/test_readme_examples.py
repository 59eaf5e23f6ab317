"""The code blocks of README's "Use it in your own JAX code" section run, the NNX and
Linen examples train (their loss falls), and a block followed by an "Output" block
prints exactly that."""

import contextlib
import io
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _section_blocks() -> dict[str, str]:
    text = README.read_text()
    section = text.split("## Use it in your own JAX code", 1)[1].split("\n## ", 1)[0]
    blocks, heading = {}, "intro"
    for part in re.split(r"(^### .*$)", section, flags=re.M):
        if part.startswith("### "):
            heading = part[4:].strip()
            continue
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", part, flags=re.S)):
            blocks[f"{heading} #{i}"] = code
            shown = re.search(
                re.escape(code) + r"```\n\nOutput[^\n]*\n\n```text\n(.*?)```", part, flags=re.S
            )
            if shown:
                OUTPUTS[f"{heading} #{i}"] = shown.group(1)
    return blocks


OUTPUTS: dict[str, str] = {}


BLOCKS = _section_blocks()


def test_the_section_has_an_nnx_and_a_linen_example_and_a_checked_output():
    names = " ".join(BLOCKS)
    assert "NNX" in names and "Linen" in names
    assert any("summary" in name for name in OUTPUTS)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_readme_block_runs(name):
    scope: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(BLOCKS[name], f"README.md: {name}", "exec"), scope)
    if name in OUTPUTS:
        assert printed.getvalue() == OUTPUTS[name]
    if "losses" in scope:
        losses = scope["losses"]
        assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
