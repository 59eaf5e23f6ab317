"""Sphinx configuration: `make docs` builds the site into docs/_build/html (ignored),
failing on any warning: a broken cross-reference (nitpicky), a public name the API
reference leaves out (_ext/public_api.py), a page whose code raises. Pages are MyST
Markdown; those with code cells (concepts, guides) are executed by myst-nb at build time,
so their outputs and figures come from the code beside them. The notebooks are rendered
from notebooks/*.ipynb (see _notebooks below)."""
import json
import os
import pathlib
import shutil
import sys

import htaf_jax

DOCS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

project = "htaf-jax"
release = version = htaf_jax.__version__
extensions = [
    "myst_nb",                 # MyST Markdown, and executes text notebooks at build
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",     # Args:/Returns: sections in docstrings
    "sphinx.ext.mathjax",
    "public_api",              # every name in __all__ documented, or the build fails
    "plain_math",              # |x| and **kwargs in docstrings print as written
]
# MathJax from the site itself, not a CDN: the pages render their math offline (and
# tests/test_docs.py checks they do). jupyter-server-mathjax ships MathJax 2.7's files.
# Its fonts there are STIX-Web only; myst's MathJax 3 settings are left out.
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
myst_update_mathjax = False
mathjax2_config = {
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                "processEscapes": True, "processClass": "math|output_area",
                "ignoreClass": "document"},
    "HTML-CSS": {"availableFonts": ["STIX-Web"], "preferredFont": "STIX-Web",
                 "webFont": "STIX-Web", "imageFont": None},
}
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
exclude_patterns = ["_build", "_notebooks", "CONTRACTS.md", "jupyter_execute"]  # CONTRACTS.md: internal
# The notebooks are written for Colab: their headings skip levels and a setup cell shows
# shell lines (!wget) in a python block.
suppress_warnings = ["myst.header", "misc.highlighting_failure"]
html_theme = "sphinx_book_theme"
html_title = f"htaf-jax {version}"
autodoc_member_order = "bysource"
autodoc_typehints = "description"

# A reference to one of our names that does not resolve is a warning (so an error).
# Names of other libraries (jax, flax, optax, numpy, typing) are not checked: their
# inventories would need a download at build time.
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(?!htaf_jax\.).*"),
                        (r"py:.*", r"htaf_jax\..*\._\w+")]  # private types in signatures

public_api_modules = ["htaf_jax", "htaf_jax.linen", "htaf_jax.nnx", "htaf_jax.nir",
                      "htaf_jax.train", "htaf_jax.data", "htaf_jax.interpret",
                      "htaf_jax.models"]

# A cell that raises fails the build; outputs are recomputed on every build.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 300
# Pages run on one CPU device, as a user's laptop would, and can import experiments/.
ROOT = DOCS.parent
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["XLA_FLAGS"] = " ".join(
    f for f in os.environ.get("XLA_FLAGS", "").split()
    if not f.startswith("--xla_force_host_platform_device_count"))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

# The notebooks (notebooks/*.ipynb, committed without outputs) are copied into
# docs/notebooks/ (ignored) and rendered with outputs from a SMALL=1 run: the run
# tests/test_notebooks.py keeps when HTAF_NOTEBOOK_OUT names a folder (.ci/run points it
# at docs/_notebooks, so CI runs each notebook once), used when its code matches the
# committed notebook; otherwise the notebook is executed here, with SMALL=1.
_NB_RUNS = pathlib.Path(os.environ.get("HTAF_NOTEBOOK_OUT", DOCS / "_notebooks"))
os.environ.update(SMALL="1", HTAF_REPO=str(ROOT),
                  HTAF_FIGURES=str(DOCS / "_build" / "notebook_figures"))


def _code(path: pathlib.Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def _copy_notebooks() -> list[str]:
    """Copies every notebook into docs/notebooks/; returns those that need no execution."""
    out = DOCS / "notebooks"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    ran = []
    for source in sorted((ROOT / "notebooks").glob("*.ipynb")):
        run = _NB_RUNS / source.stem / source.name
        if run.is_file() and _code(run) == _code(source):
            shutil.copyfile(run, out / source.name)
            ran.append(f"notebooks/{source.name}")
        else:
            shutil.copyfile(source, out / source.name)
    return ran


nb_execution_excludepatterns = _copy_notebooks()


def _copy_mathjax(app, exception) -> None:
    import jupyter_server_mathjax

    if exception is None and app.builder.format == "html":
        static = pathlib.Path(jupyter_server_mathjax.__file__).parent / "static"
        shutil.copytree(static, pathlib.Path(app.outdir) / "_static" / "mathjax",
                        dirs_exist_ok=True)


def setup(app):
    app.connect("build-finished", _copy_mathjax)
