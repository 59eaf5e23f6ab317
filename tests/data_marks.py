"""``needs_data``: skip a test where real Fashion-MNIST is neither installed (Debian's
dataset-fashion-mnist) nor prepared in the TFDS data dir."""

import glob
import os

import pytest

from htaf_jax.data import DEFAULT_FASHION_MNIST_DIR

HAS_DATA = bool(
    os.path.exists(os.path.join(DEFAULT_FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz"))
    or glob.glob(os.path.expanduser("~/tensorflow_datasets/htaf_fashion_mnist/*"))
)
needs_data = pytest.mark.skipif(
    not HAS_DATA, reason="Fashion-MNIST not installed (sudo apt-get install dataset-fashion-mnist)"
)
