"""Sphinx configuration: `make docs` builds the site into docs/_build/html (ignored),
failing on any warning. Pages are MyST Markdown; pages with code cells (concepts.md) are
executed by myst-nb at build time, so their figures come from the code beside them."""
import htaf_jax

project = "htaf-jax"
release = version = htaf_jax.__version__
extensions = [
    "myst_nb",                 # MyST Markdown, and executes text notebooks at build
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",     # Args:/Returns: sections in docstrings
    "sphinx.ext.mathjax",
]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
exclude_patterns = ["_build", "CONTRACTS.md"]   # CONTRACTS.md: internal, for developers
html_theme = "sphinx_book_theme"
html_title = f"htaf-jax {version}"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# A cell that raises fails the build; outputs are recomputed on every build.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 300
