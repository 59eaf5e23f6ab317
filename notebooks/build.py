"""Writes the Colab notebooks in this folder from the cell sources below.

    python notebooks/build.py          # rewrite every notebook (outputs empty)
    python notebooks/build.py --check  # exit 1 if a committed notebook differs

The notebooks are generated so they stay reviewable as plain Python and so the
committed .ipynb files never carry outputs (no stale numbers in git). Edit the
cell sources here, not the .ipynb files. tests/test_notebooks.py executes every
notebook with SMALL=1 and checks the committed files match this script.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cells import binary, icbm, snn, tour  # noqa: E402

NOTEBOOKS = {
    "01_htaf_tour.ipynb": tour.CELLS,
    "02_snn_train.ipynb": snn.CELLS,
    "03_icbm_explore.ipynb": icbm.CELLS,
    "04_binary_and_heaviside.ipynb": binary.CELLS,
}

METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
    "colab": {"provenance": []},
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = new_notebook(metadata=METADATA)
    for i, (kind, source) in enumerate(cells):
        make = new_markdown_cell if kind == "md" else new_code_cell
        cell = make(source.strip("\n"))
        cell["id"] = f"cell-{i:02d}"  # stable ids: rebuilding gives byte-identical files
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(cells) -> str:
    return nbformat.writes(build(cells)) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if a committed notebook differs from this script"
    )
    args = parser.parse_args()
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = HERE / name
        text = render(cells)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print("out of date (run python notebooks/build.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
