"""Cells every notebook starts with: the Colab install, SMALL, and figure saving."""

# The repository a Colab user installs from. Change it here (one place) if the
# project moves; build.py writes it into every notebook.
REPO_URL = "https://github.com/htaf-jax/htaf-jax"

INSTALL = (
    "code",
    f"""
# The notebooks use htaf-jax with its [train] extra and the experiments/ folder of a
# checkout of the repository (experiments/ is not installed). In a checkout (or with
# HTAF_REPO set) that is used; in Colab or a fresh environment the repository is cloned
# and installed:  git clone {REPO_URL} && pip install -e "htaf-jax[train]"
import os, pathlib, sys
here = pathlib.Path.cwd()
root = os.environ.get("HTAF_REPO") or next(
    (str(p) for p in (here, *here.parents) if (p / "experiments" / "run.py").is_file()), None)
if root is None:
    root = "/content/htaf-jax" if os.path.isdir("/content") else str(here / "htaf-jax")
    if not os.path.isdir(root):
        !git clone -q {REPO_URL} {{root}}
sys.path.insert(0, root)
try:
    import htaf_jax.train
except ImportError:
    %pip install -q -e "{{root}}[train]"
import htaf_jax
print("htaf_jax", htaf_jax.__version__, "| repository:", root)
""",
)


def setup(extra_imports: str = "", small_note: str = "") -> tuple[str, str]:
    """The settings cell: SMALL from the environment, a figures folder, savefig."""
    return (
        "code",
        f"""
import os
import pathlib
import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import jax
import jax.numpy as jnp
import htaf_jax as H
{extra_imports.strip()}

%matplotlib inline
# tqdm's notebook bar wants ipywidgets (Colab has them); without them, no warning either.
warnings.filterwarnings("ignore", message="IProgress not found")

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
""",
    )


DATA_MD = (
    "md",
    r"""
### The dataset

The notebook trains on real Fashion-MNIST (60k/10k images, 28×28) and reads the four
original `.gz` files from one folder:

* on Debian/Ubuntu hosts, `make data` (or `sudo apt-get install dataset-fashion-mnist`) puts
  them in `/usr/share/datasets/fashion-mnist`, where `htaf_jax` looks by default;
* anywhere else, **Colab included**, download them from the Fashion-MNIST repository
  (github.com/zalandoresearch/fashion-mnist) into a folder and point `HTAF_FASHION_MNIST_DIR`
  at it before the next cell runs:

```python
!mkdir -p /content/fashion-mnist
!cd /content/fashion-mnist && for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do wget -q http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/$f.gz; done
import os; os.environ["HTAF_FASHION_MNIST_DIR"] = "/content/fashion-mnist"
```

The first use converts them once into a TFDS array_record copy under
`$TFDS_DATA_DIR` (default `~/tensorflow_datasets`); TensorFlow is not needed.
""",
)

DATA_CHECK = (
    "code",
    r"""
from htaf_jax import data as data_lib

try:
    data_lib.load_splits("fashion_mnist", train_subset=1, test_subset=1)
except data_lib.DatasetNotFoundError as e:
    raise RuntimeError(
        "Fashion-MNIST is not available, so this notebook cannot train. See 'The dataset' "
        "above: in Colab, download the four .gz files and set HTAF_FASHION_MNIST_DIR.\n" + str(e)
    ) from None
print("Fashion-MNIST is ready (TFDS data dir:", data_lib.tfds_data_dir() + ")")
""",
)
