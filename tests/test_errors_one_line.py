"""Bad inputs a user meets first get one line naming what is wrong, never a traceback:
config files, work dirs, NIR paths, binary layers given the wrong input size."""

import errno
import os

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from htaf_jax.train import cli
from htaf_jax.train import workdir as workdir_lib

CONFIG = "experiments/configs/mlp.py"


def _fails(argv, capsys, code, train_fn=None):
    with pytest.raises(SystemExit) as e:
        cli.main(argv, train_fn=train_fn or (lambda c, w: pytest.fail("should not train")))
    assert e.value.code == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_missing_config_file_is_one_line_listing_the_configs(tmp_path, capsys):
    err = _fails(
        ["train", "--config", "experiments/configs/nope.py", "--workdir", str(tmp_path)], capsys, 2
    )
    assert err.startswith(
        "train: error: --config experiments/configs/nope.py: no such file "
        "(configs: experiments/configs/base.py, "
    )
    assert "experiments/configs/snn_mlp.py" in err and "studies.py" not in err


@pytest.mark.parametrize(
    "text, message",
    [
        ("x = (\n", "the config file failed to load: SyntaxError: '(' was never closed"),
        ("x = 1\n", "the file has no get_config() function"),
        (
            "def get_config():\n    return 1 / 0\n",
            "the config file failed to load: ZeroDivisionError: division by zero",
        ),
    ],
)
def test_a_broken_config_file_is_one_line_naming_it(text, message, tmp_path, capsys):
    path = tmp_path / "my_config.py"
    path.write_text(text)
    err = _fails(["train", "--config", str(path), "--workdir", str(tmp_path / "w")], capsys, 2)
    assert err.startswith(f"train: error: --config {path}: {message}")


def test_workdir_naming_a_file_is_one_line(tmp_path, capsys, monkeypatch):
    from htaf_jax.train import train_and_evaluate

    _no_data(monkeypatch)
    path = tmp_path / "afile"
    path.write_text("")
    err = _fails(
        ["train", "--config", CONFIG, "--workdir", str(path), "--config.runlocal=True"],
        capsys,
        1,
        train_and_evaluate,
    )
    assert (
        err == f"error: --workdir {path} is a file, not a directory; name a directory "
        f"(it is created if missing)"
    )
    err = _fails(
        ["train", "--config", CONFIG, "--workdir", str(path / "run")], capsys, 1, train_and_evaluate
    )
    assert err == f"error: --workdir {path / 'run'}: a part of the path is a file, not a directory"


def _no_data(monkeypatch):
    from htaf_jax.train import loop

    monkeypatch.setattr(
        loop.data_lib,
        "load_splits",
        lambda *a, **k: pytest.fail("the work dir is checked before the data"),
    )


@pytest.mark.parametrize(
    "code, reason",
    [
        (errno.EROFS, "read-only file system"),
        (errno.EACCES, "permission denied"),
        (errno.ENOSPC, "no space left on the device"),
    ],
)
def test_an_unwritable_workdir_is_one_line_before_the_data_is_read(
    code, reason, tmp_path, capsys, monkeypatch
):
    from htaf_jax.train import train_and_evaluate

    _no_data(monkeypatch)

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(workdir_lib.tempfile, "TemporaryFile", refuse)
    with pytest.raises(SystemExit) as e:
        cli.main(
            ["train", "--config", CONFIG, "--workdir", str(tmp_path / "run")],
            train_fn=train_and_evaluate,
        )
    assert e.value.code == 1
    assert capsys.readouterr().err.strip() == f"error: cannot write to {tmp_path / 'run'}: {reason}"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to a read-only folder")
def test_a_read_only_folder_is_one_line(tmp_path, capsys, monkeypatch):
    from htaf_jax.train import train_and_evaluate

    _no_data(monkeypatch)
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    with pytest.raises(SystemExit):
        cli.main(
            ["train", "--config", CONFIG, "--workdir", str(folder / "run")],
            train_fn=train_and_evaluate,
        )
    assert (
        capsys.readouterr().err.strip()
        == f"error: cannot write to {folder / 'run'}: permission denied"
    )


def test_a_full_disk_is_one_line(tmp_path, monkeypatch):
    class Full:
        f_bavail, f_frsize = 1, 4096

    monkeypatch.setattr(workdir_lib.os, "statvfs", lambda path: Full)
    with pytest.raises(workdir_lib.WorkdirError) as e:
        workdir_lib.prepare_workdir(str(tmp_path))
    assert str(e.value) == f"cannot write to {tmp_path}: no space left on the device"


def test_a_disk_filling_during_the_run_is_one_line(tmp_path, capsys):
    def fill(config, workdir):
        raise OSError(errno.ENOSPC, "No space left on device", f"{workdir}/checkpoints/4")

    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--config", CONFIG, "--workdir", str(tmp_path)], train_fn=fill)
    assert e.value.code == 1
    assert (
        capsys.readouterr().err.strip()
        == f"error: cannot write to {tmp_path}/checkpoints/4: no space left on the device"
    )


def test_from_nir_takes_a_path_and_says_when_a_file_is_not_nir(tmp_path):
    pytest.importorskip("nir")
    import htaf_jax.nnx as hnn
    from htaf_jax.nir import SpikingSequential, from_nir, to_nir

    net = SpikingSequential(
        [
            nnx.Linear(4, 3, rngs=nnx.Rngs(0)),
            hnn.LIF(beta=0.9, reset="zero", spike_at_threshold=False),
        ]
    )
    import nir

    path = tmp_path / "net.nir"
    nir.write(str(path), to_nir(net, input_shape=(4,)))
    x = jax.random.normal(jax.random.key(0), (5, 2, 4))
    from_graph = from_nir(nir.read(str(path)))
    for loaded in (from_nir(str(path)), from_nir(path)):  # str or PathLike
        assert jnp.array_equal(
            loaded(x)[0] if isinstance(loaded(x), tuple) else loaded(x),
            from_graph(x)[0] if isinstance(from_graph(x), tuple) else from_graph(x),
        )
    garbage = tmp_path / "garbage.nir"
    garbage.write_bytes(b"not an hdf5 file")
    with pytest.raises(ValueError, match=rf"^{garbage} is not a NIR file \(OSError: "):
        from_nir(str(garbage))
    with pytest.raises(FileNotFoundError, match=rf"^{tmp_path / 'none.nir'}: no such NIR file$"):
        from_nir(str(tmp_path / "none.nir"))
    with pytest.raises(
        TypeError, match="^from_nir takes a nir.NIRGraph or the path of a NIR file, got int$"
    ):
        from_nir(3)


def test_binary_layers_name_a_wrong_input_size_in_their_terms():
    import htaf_jax.linen as hln
    import htaf_jax.nnx as hnn

    rngs = nnx.Rngs(0)
    with pytest.raises(
        ValueError,
        match=r"^BinaryDense expects 8 input features, got 5 "
        r"\(input shape \(2, 5\)\)$",
    ):
        hnn.BinaryDense(8, 4, rngs=rngs)(jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="^BinaryConv expects 3 input features, got 2 "):
        hnn.BinaryConv(3, 4, rngs=rngs)(jnp.ones((1, 6, 6, 2)))
    with pytest.raises(ValueError, match="^QuantDense expects 8 input features, got 5 "):
        hnn.QuantDense(8, 4, rngs=rngs)(jnp.ones((2, 5)))
    dense = hln.BinaryDense(4)
    variables = dense.init(jax.random.key(0), jnp.ones((2, 8)))
    assert dense.apply(variables, jnp.ones((2, 8))).shape == (2, 4)
    with pytest.raises(ValueError, match="^BinaryDense expects 8 input features, got 5 "):
        dense.apply(variables, jnp.ones((2, 5)))
    conv = hln.BinaryConv(4)
    variables = conv.init(jax.random.key(0), jnp.ones((1, 6, 6, 3)))
    with pytest.raises(ValueError, match="^BinaryConv expects 3 input features, got 2 "):
        conv.apply(variables, jnp.ones((1, 6, 6, 2)))
    quant = hln.QuantConv(4, kernel_quantizer="ste_sign")
    variables = quant.init(jax.random.key(0), jnp.ones((1, 6, 6, 3)))
    with pytest.raises(ValueError, match="^QuantConv expects 3 input features, got 1 "):
        quant.apply(variables, jnp.ones((1, 6, 6, 1)))
