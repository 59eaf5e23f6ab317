"""Sphinx configuration: `make docs` builds the site into docs/_build/html (ignored),
failing on any warning: a broken cross-reference (nitpicky), a public name the API
reference leaves out (_ext/public_api.py), a page whose code raises. Pages are MyST
Markdown; those with code cells (concepts, guides) are executed by myst-nb at build time,
so their outputs and figures come from the code beside them. The notebooks are rendered
from notebooks/*.ipynb (see _notebooks below)."""
import os
import pathlib
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
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
exclude_patterns = ["_build", "CONTRACTS.md", "jupyter_execute"]  # CONTRACTS.md: internal
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
# Pages run on one CPU device, as a user's laptop would.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
