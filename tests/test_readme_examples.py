"""The code blocks of README's "Use it in your own JAX code" section run, and the
NNX and Linen examples train (their loss falls)."""
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
    return blocks


BLOCKS = _section_blocks()


def test_the_section_has_an_nnx_and_a_linen_example():
    names = " ".join(BLOCKS)
    assert "NNX" in names and "Linen" in names


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_readme_block_runs(name):
    scope: dict = {}
    exec(compile(BLOCKS[name], f"README.md: {name}", "exec"), scope)
    if "losses" in scope:
        losses = scope["losses"]
        assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
