"""The light install: `pip install .` with no extras gives the core, Linen and NNX
layers and nothing of the training stack, and an NNX model trains in it."""
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# (orbax-checkpoint is not here: flax itself requires it.)
TRAINING_STACK = ("tensorflow-datasets", "tensorboardx", "tqdm", "matplotlib", "ml-collections",
                  "array-record", "experiments")

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
""")


@pytest.mark.slow
def test_bare_install_has_no_training_stack_and_trains_an_nnx_model(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    # Not editable, from a copy-free build: what `pip install htaf-jax` gives.
    subprocess.run([py, "-m", "pip", "install", "-q", str(ROOT)], check=True, env=env,
                   cwd=tmp_path, timeout=600)
    listed = subprocess.run([py, "-m", "pip", "list", "--format=freeze"], check=True,
                            capture_output=True, text=True, env=env).stdout.lower()
    names = {line.split("==")[0].replace("_", "-") for line in listed.splitlines()}
    assert "htaf-jax" in names and "flax" in names and "jax" in names
    assert not names & set(TRAINING_STACK), sorted(names & set(TRAINING_STACK))
    # experiments/ is not installed as a package
    site = subprocess.run([py, "-c", "import importlib.util as u; print(u.find_spec('experiments'))"],
                          check=True, capture_output=True, text=True, env=env, cwd=tmp_path).stdout
    assert site.strip() == "None"
    run = subprocess.run([py, "-c", SCRIPT], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ENGINE: htaf_jax.train needs the [train] extra" in run.stdout


def test_core_imports_jax_only():
    """`import htaf_jax` (the core) loads no Flax and nothing of the training stack."""
    code = ("import sys, htaf_jax; bad = sorted({m.split('.')[0] for m in sys.modules} & "
            "{'flax', 'ml_collections', 'tensorflow_datasets', 'tensorboardX', 'matplotlib', "
            "'experiments'}); print(bad); assert not bad")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]


def test_linen_and_nnx_export_the_same_layers():
    import htaf_jax.linen as linen
    import htaf_jax.nnx as nnx_layers
    assert set(linen.__all__) - set(nnx_layers.__all__) == {"ModelSummary", "summarize"}
    assert set(nnx_layers.__all__) <= set(linen.__all__)
    assert {"LIF", "IF", "BinaryDense", "BinaryConv", "HeavisideDense",
            "ConceptBottleneck"} <= set(linen.__all__)
    for name in nnx_layers.__all__:
        assert getattr(linen, name).__name__ == getattr(nnx_layers, name).__name__ == name
