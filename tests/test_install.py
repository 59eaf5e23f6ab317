"""The light install: `pip install .` with no extras gives the core, Linen and NNX
layers and nothing of the training stack, and an NNX model trains in it."""

import email
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# (orbax-checkpoint is not here: flax itself requires it.)
TRAINING_STACK = (
    "tensorflow-datasets",
    "tensorboardx",
    "tqdm",
    "matplotlib",
    "ml-collections",
    "array-record",
    "experiments",
)

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, optax
    from flax import nnx
    import htaf_jax as H, htaf_jax.linen, htaf_jax.nnx as hnnx, htaf_jax.models

    try:
        import htaf_jax.train
    except ImportError as e:
        msg = str(e)
        assert "[train]" in msg and "\\n" not in msg, msg
        print("ENGINE:", msg)
    else:
        raise SystemExit("htaf_jax.train imported without the [train] extra")

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.dense = hnnx.BinaryDense(16, 32, rngs=rngs)
            self.norm = nnx.BatchNorm(32, rngs=rngs)
            self.lif = hnnx.LIF(beta=0.9)
            self.head = nnx.Linear(32, 2, rngs=rngs)
        def __call__(self, x):                       # x: (T, B, 16)
            spikes, _ = self.lif(self.norm(self.dense(x)))
            return self.head(spikes.mean(0))

    model = Net(nnx.Rngs(0))
    opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    x = jax.random.normal(jax.random.key(1), (8, 64, 16))
    y = (x.mean((0, 2)) > 0).astype(jnp.int32)

    @nnx.jit
    def step(model, opt):
        def loss_fn(m):
            return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt)) for _ in range(30)]
    assert losses[-1] < 0.8 * losses[0], losses
    print("LOSS", losses[0], losses[-1])
    print("VERSION", H.__version__)
""")


def _source_version() -> str:
    """``__version__`` as written in the checkout's htaf_jax/__init__.py (read, not imported,
    as the build reads it)."""
    text = (ROOT / "htaf_jax" / "__init__.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"$', text, re.M).group(1)


def _check_wheel_contents(wheel: pathlib.Path) -> None:
    """The wheel carries the checkout's one version, the PEP 561 marker, the license text
    and the SPDX license expression."""
    version = _source_version()
    assert wheel.name.startswith(f"htaf_jax-{version}-"), wheel.name
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = email.message_from_bytes(
            z.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        )
    assert "htaf_jax/py.typed" in names, names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert meta["Version"] == version, meta["Version"]
    assert meta["License-Expression"] == "Apache-2.0", meta["License-Expression"]
    assert not [n for n in names if n.startswith(("experiments/", "tests/", "benchmarks/"))]


def _base_closure(wheel: pathlib.Path) -> dict:
    """The distributions ``pip install htaf-jax`` (no extras) needs: the wheel's own
    requirements, evaluated without any extra, followed through the dependencies' metadata
    (and the extras a requirement names on them) in this interpreter's environment, which
    satisfies them all. ``{name: importlib.metadata.Distribution}``."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        own = email.message_from_bytes(z.read(meta)).get_all("Requires-Dist") or []
    closure, todo = {}, [(r, "") for r in own]
    while todo:
        text, extra = todo.pop()
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        todo += [(r, e) for e in req.extras for r in metadata.distribution(name).requires or []]
        if name not in closure:
            closure[name] = dist = metadata.distribution(name)
            todo += [(r, "") for r in dist.requires or []]
    return closure


def _link_distributions(dists, farm: pathlib.Path) -> None:
    """Symlinks each distribution's top-level files (packages, modules, .dist-info) into
    ``farm``: a site directory holding these distributions and nothing else."""
    farm.mkdir()
    for dist in dists:
        for top in {pathlib.PurePath(str(f)).parts[0] for f in dist.files or []}:
            source = pathlib.Path(str(dist.locate_file(top)))
            if top != ".." and source.exists() and not (farm / top).exists():
                (farm / top).symlink_to(source)


@pytest.mark.slow
def test_bare_install_has_no_training_stack_and_trains_an_nnx_model(tmp_path):
    """What ``pip install htaf-jax`` gives, without downloading and unpacking jaxlib & co.
    into a new venv: the package itself is built into a wheel and installed (not editable)
    with ``--no-deps`` into a fresh venv that sees no other site-packages; its dependencies
    are the closure of the wheel's own Requires-Dist (no extras), made visible through a
    .pth file by symlinking exactly those distributions out of this environment. That
    closure must hold no part of the training stack, and in that interpreter
    htaf_jax.train must fail with the [train] message while an NNX model trains."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("htaf_jax-*.whl")
    _check_wheel_contents(wheel)
    closure = _base_closure(wheel)
    assert {"jax", "jaxlib", "flax", "optax", "chex", "numpy"} <= set(closure)
    assert not set(closure) & set(TRAINING_STACK), sorted(set(closure) & set(TRAINING_STACK))

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            py,
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    _link_distributions(closure.values(), tmp_path / "deps")
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.strip()
    (pathlib.Path(site) / "htaf_base_deps.pth").write_text(str(tmp_path / "deps") + "\n")

    # What that interpreter sees: the package (installed, not this checkout), its base
    # dependencies, and neither the training stack nor experiments/.
    seen = subprocess.run(
        [py, "-c", SEEN], check=True, capture_output=True, text=True, env=env, cwd=tmp_path
    ).stdout.splitlines()
    names = set(seen[0].split())
    assert {"htaf-jax", "flax", "jax"} <= names, sorted(names)
    assert not names & set(TRAINING_STACK), sorted(names & set(TRAINING_STACK))
    assert seen[1] == "None None None None None None", seen  # no training module, no experiments
    assert seen[2].startswith(site), seen  # htaf_jax from the venv, not from ROOT
    run = subprocess.run(
        [py, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ENGINE: htaf_jax.train needs the [train] extra" in run.stdout
    assert f"VERSION {_source_version()}" in run.stdout, run.stdout


SEEN = textwrap.dedent("""
    import importlib.metadata as m, importlib.util as u
    print(" ".join(sorted(d.metadata["Name"].lower().replace("_", "-") for d in m.distributions())))
    print(*(u.find_spec(n) for n in ("tensorflow_datasets", "tensorboardX", "tqdm", "matplotlib",
                                     "ml_collections", "experiments")))
    print(u.find_spec("htaf_jax").origin)
""")


def test_core_imports_jax_only():
    """`import htaf_jax` (the core) loads no Flax and nothing of the training stack."""
    code = (
        "import sys, htaf_jax; bad = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'flax', 'ml_collections', 'tensorflow_datasets', 'tensorboardX', 'matplotlib', "
        "'experiments'}); print(bad); assert not bad"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]


def test_linen_and_nnx_export_the_same_layers():
    import htaf_jax.linen as linen
    import htaf_jax.nnx as nnx_layers

    assert set(linen.__all__) - set(nnx_layers.__all__) == {"ModelSummary", "summarize"}
    assert set(nnx_layers.__all__) <= set(linen.__all__)
    assert {"LIF", "IF", "BinaryDense", "BinaryConv", "HeavisideDense", "ConceptBottleneck"} <= set(
        linen.__all__
    )
    for name in nnx_layers.__all__:
        assert getattr(linen, name).__name__ == getattr(nnx_layers, name).__name__ == name


def test_one_version():
    """The build reads htaf_jax.__version__ (no second copy in pyproject.toml), and the
    changelog's top entry is that version."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "htaf_jax.__version__"}
    top = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M).group(1)
    assert top == _source_version(), (top, _source_version())


@pytest.mark.slow
def test_sdist_and_wheel_pass_twine_check(tmp_path):
    """``python -m build`` as a release runs it (the sdist, then the wheel built from the
    unpacked sdist, so the sdist is complete), without build isolation so it needs no
    download; ``twine check --strict`` accepts both; the wheel has the version and files."""
    pytest.importorskip("build")
    pytest.importorskip("twine")
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "-o", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
        timeout=300,
    )
    (wheel,) = out.glob("htaf_jax-*.whl")
    (sdist,) = out.glob("htaf_jax-*.tar.gz")
    _check_wheel_contents(wheel)
    assert sdist.name == f"htaf_jax-{_source_version()}.tar.gz"
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
