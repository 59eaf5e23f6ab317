"""The Colab notebooks: each runs top to bottom with SMALL=1, as CI runs them,
and the committed files carry no outputs and match notebooks/build.py.

Each notebook runs in a fresh kernel (the ``python3`` spec ipykernel installs
into the venv, so the kernel is this interpreter), with a temporary working
directory (figures and work dirs land there) and one CPU device, as in Colab:
the 8 faked devices of tests/conftest.py are taken out of the kernel's XLA_FLAGS.
"""
import os
import pathlib
import subprocess
import sys

import nbformat
import pytest

from htaf_jax import data as data_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 300

HAS_DATA = os.path.isfile(os.path.join(
    os.environ.get(data_lib.FASHION_MNIST_DIR_ENV, data_lib.DEFAULT_FASHION_MNIST_DIR),
    "train-images-idx3-ubyte.gz"))
NEEDS_DATA = {"02_snn_fashion_mnist.ipynb", "03_icbm_explore.ipynb"}


def _kernel_env(workdir: pathlib.Path) -> dict:
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    env["XLA_FLAGS"] = " ".join(flags)
    env.update(SMALL="1", HTAF_FIGURES=str(workdir / "figures"))
    return env


def _errors(nb) -> list[str]:
    return [f"cell {i}: {o.get('ename')}: {o.get('evalue')}"
            for i, cell in enumerate(nb.cells) for o in cell.get("outputs", [])
            if o.get("output_type") == "error"]


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"01_htaf_tour.ipynb"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_with_small_settings(path, tmp_path):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    if path.name in NEEDS_DATA and not HAS_DATA:
        pytest.skip("Fashion-MNIST not installed (`make data`, or sudo apt-get install "
                    "dataset-fashion-mnist)")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute(env=_kernel_env(tmp_path))
    except CellExecutionError as e:
        pytest.fail(f"{path.name} failed under SMALL=1:\n{e}", pytrace=False)
    assert not _errors(nb)
    figures = sorted((tmp_path / "figures").glob("*.png"))
    assert figures, f"{path.name} saved no figures"
    assert all(f.stat().st_size > 1000 for f in figures)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name} cell {i} has outputs; rebuild with python notebooks/build.py")


def test_notebooks_match_their_generator():
    result = subprocess.run([sys.executable, str(NOTEBOOK_DIR / "build.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
