"""Cells every notebook starts with: the Colab install, SMALL, and figure saving."""

# The repository a Colab user installs from. Change it here (one place) if the
# project moves; build.py writes it into every notebook.
REPO_URL = "https://github.com/htaf-jax/htaf-jax"

INSTALL = ("code", f'''
# Installs htaf-jax the way a Colab user would, unless it is already importable
# (as in a checkout with `pip install -e .`, or in CI).
#   Colab / fresh environment:  pip install "htaf-jax @ git+{REPO_URL}"
#   From a local checkout:      pip install -e .
# Colab already has jax, flax, optax and matplotlib; pip adds the rest
# (orbax-checkpoint, ml-collections, tensorflow-datasets, tensorboardX).
try:
    import htaf_jax
except ImportError:
    %pip install -q "htaf-jax @ git+{REPO_URL}"
    import htaf_jax
print("htaf_jax", htaf_jax.__version__)
''')


def setup(extra_imports: str = "", small_note: str = "") -> tuple[str, str]:
    """The settings cell: SMALL from the environment, a figures folder, savefig."""
    return ("code", f'''
import os
import pathlib

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import jax
import jax.numpy as jnp
import htaf_jax as H
{extra_imports.strip()}

%matplotlib inline

# SMALL=1 (environment) or SMALL = True (here) runs a reduced version that
# finishes in under 2 minutes on 2 CPU cores; CI runs every notebook that way.
{small_note.strip()}
SMALL = os.environ.get("SMALL", "0").lower() in ("1", "true", "yes")

# Figures render inline and are also saved here (created next to the notebook).
FIG_DIR = pathlib.Path(os.environ.get("HTAF_FIGURES", "figures"))
FIG_DIR.mkdir(parents=True, exist_ok=True)


def savefig(fig, name):
    path = FIG_DIR / f"{{name}}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print("saved", path)


print("SMALL =", SMALL, "| devices:", jax.devices())
''')
