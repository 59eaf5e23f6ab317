"""What a SIGKILL can leave in a work dir, constructed by hand, and what a rerun does with
it: a half-written checkpoint (orbax's temporary directory), a newest step that is listed
but unusable (an array file truncated or damaged, its metadata or progress record gone),
files the job writes cut off mid-write. ``python -m experiments.soak`` kills the real job
at random moments; these pin each case."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from experiments.configs import mlp as mlp_config
from htaf_jax._atomic import replace_on_close
from htaf_jax.train import restore_params, train_and_evaluate
from htaf_jax.train.checkpoint import Checkpoints, UnusableCheckpointError, state_checksum
from htaf_jax.train.metrics import TIMING_FIELDS, read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A read that fails on a damaged array file leaves orbax's reads of the other arrays as
# coroutines never awaited; Python reports them when collected. Nothing is lost.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def tiny_config():
    config = mlp_config.get_config()
    config.update(
        dict(
            train_subset=256,
            test_subset=100,
            batch_size=32,
            eval_batch_size=64,
            num_epochs=2,
            checkpoint_every_steps=4,
            keep_checkpoints=5,
            log_every_steps=4,
            progress=False,
            tensorboard=False,
        )
    )
    config.model.hidden_sizes = (16,)
    return config


def untimed(records):
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


def assert_same_params(a, b):
    import jax

    flat_a, flat_b = jax.tree.leaves_with_path(a), jax.tree.leaves_with_path(b)
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
    for (path, x), (_, y) in zip(flat_a, flat_b):
        np.testing.assert_array_equal(x, y, err_msg=str(path))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("uninterrupted"))
    return workdir, train_and_evaluate(tiny_config(), workdir)


def copy_of(finished_run, tmp_path) -> str:
    workdir = str(tmp_path / "run")
    shutil.copytree(finished_run[0], workdir)
    return workdir


def largest_array_file(step_dir: str) -> str:
    files = glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True)
    return max(files, key=os.path.getsize)


def truncate(step_dir):
    path = largest_array_file(step_dir)
    os.truncate(path, os.path.getsize(path) // 2)


def overwrite_middle(step_dir):
    path = largest_array_file(step_dir)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    open(path, "wb").write(bytes(data))


def drop_metadata(step_dir):
    os.remove(os.path.join(step_dir, "state", "_METADATA"))


def wrong_checksum(step_dir):
    # The arrays read back fine but are not the ones saved: what the checksum is for.
    path = os.path.join(step_dir, "progress", "metadata")
    record = json.load(open(path))
    record["checksum"] = (record["checksum"] + 1) % 2**32
    json.dump(record, open(path, "w"))


def drop_progress(step_dir):
    os.remove(os.path.join(step_dir, "progress", "metadata"))


DAMAGE = {
    "truncated array file": (truncate, "reading it failed"),
    "overwritten array file": (overwrite_middle, ""),
    "no array metadata": (drop_metadata, "state/_METADATA is missing"),
    "arrays differ from the checksum": (wrong_checksum, "checksum"),
    "no progress record": (drop_progress, "reading it failed"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_an_unusable_newest_checkpoint_is_named_set_aside_and_the_previous_one_used(
    finished_run, tmp_path, capsys, case
):
    damage, reason = DAMAGE[case]
    workdir = copy_of(finished_run, tmp_path)
    newest = os.path.join(workdir, "checkpoints", "16")
    damage(newest)
    result = train_and_evaluate(tiny_config(), workdir)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "unusable" in line]
    assert len(lines) == 1, err
    assert f"checkpoint {newest} is unusable (" in lines[0] and reason in lines[0]
    aside = os.path.join(workdir, "checkpoints.unusable", "16")
    assert f"set aside in {aside}, falling back to the previous checkpoint" in lines[0]
    assert os.path.isdir(aside)
    # Resumed from step 12 and trained 13..16 again: the same run, bit for bit.
    summary = json.load(open(os.path.join(workdir, "summary.json")))
    assert summary["resumed_from_step"] == 12
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["12", "16", "4", "8"]
    assert_same_params(result.params, finished_run[1].params)
    assert result.metrics == finished_run[1].metrics
    assert untimed(read_metrics(workdir)) == untimed(read_metrics(finished_run[0]))


def test_with_no_usable_checkpoint_the_run_starts_over(finished_run, tmp_path, capsys):
    workdir = copy_of(finished_run, tmp_path)
    for step in ("4", "8", "12", "16"):
        drop_metadata(os.path.join(workdir, "checkpoints", step))
    result = train_and_evaluate(tiny_config(), workdir)
    err = capsys.readouterr().err
    assert err.count("is unusable (") == 4
    assert (
        f"no usable checkpoint in {os.path.join(workdir, 'checkpoints')}: training from "
        "the start" in err
    )
    assert json.load(open(os.path.join(workdir, "summary.json")))["resumed_from_step"] == 0
    assert_same_params(result.params, finished_run[1].params)


def test_a_half_written_checkpoint_is_named_removed_and_skipped(finished_run, tmp_path, capsys):
    workdir = copy_of(finished_run, tmp_path)
    # What a SIGKILL during orbax's save leaves: the step's temporary directory.
    partial = os.path.join(workdir, "checkpoints", "20.orbax-checkpoint-tmp-1700000000")
    os.makedirs(os.path.join(partial, "state"))
    open(os.path.join(partial, "state", "_METADATA"), "wb").write(b'{"tree_meta')
    checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), every_steps=4, keep=5)
    assert checkpoints.manager.all_steps() == [4, 8, 12, 16]
    checkpoints.close()
    err = capsys.readouterr().err
    assert err.strip() == (
        f"warning: checkpoint {partial} was left half-written by an "
        "interrupted save: skipped and removed"
    )
    assert not os.path.exists(partial)
    assert_same_params(restore_params(workdir).params, finished_run[1].params)


def test_restore_params_skips_an_unusable_newest_step(finished_run, tmp_path, capsys):
    workdir = copy_of(finished_run, tmp_path)
    newest = os.path.join(workdir, "checkpoints", "16")
    truncate(newest)
    restored = restore_params(workdir)
    err = capsys.readouterr().err
    assert f"warning: checkpoint {newest} is unusable (reading it failed" in err
    assert "skipped, falling back to the previous checkpoint" in err
    assert os.path.isdir(newest)  # a reader moves nothing
    expected = restore_params(workdir, step=12)
    assert_same_params(restored.params, expected.params)
    with pytest.raises(UnusableCheckpointError, match=f"checkpoint {newest} is unusable"):
        restore_params(workdir, step=16)


def test_the_state_checksum_sees_one_flipped_bit_and_not_the_nesting():
    import jax.numpy as jnp

    tree = {
        "a": jnp.arange(6, dtype=jnp.float32).reshape(2, 3),
        "b": (jnp.ones(3, jnp.int32), jnp.array([True, False])),
        "c": jnp.array([1, 2], jnp.uint32),
    }
    base = state_checksum(tree)
    assert (
        state_checksum({"x": [tree["c"], tree["b"][1]], "y": {"0": tree["b"][0], "1": tree["a"]}})
        == base
    )
    flipped = np.asarray(tree["a"]).copy()
    flipped.view(np.uint32)[1, 2] ^= 1 << 7
    assert state_checksum({**tree, "a": jnp.asarray(flipped)}) != base
    swapped = jnp.asarray(np.asarray(tree["a"]).ravel()[::-1].reshape(2, 3))
    assert state_checksum({**tree, "a": swapped}) != base


def test_rerunning_a_finished_run_adds_no_second_final_record(finished_run, tmp_path):
    workdir = copy_of(finished_run, tmp_path)
    before = untimed(read_metrics(workdir))
    train_and_evaluate(tiny_config(), workdir)  # a kill after the last save: rerun
    assert untimed(read_metrics(workdir)) == before


def test_a_metrics_line_cut_short_is_not_read_as_a_record(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 4, "split": "train"}\n{"step": 8, "spl')
    assert read_metrics(str(tmp_path)) == [{"step": 4, "split": "train"}]


KILLED_MID_WRITE = r"""
import os, signal, sys
sys.path.insert(0, {repo!r})
from htaf_jax._atomic import replace_on_close
with replace_on_close({path!r}) as f:
    f.write("new " * 1000)
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_file_killed_mid_write_keeps_its_old_content(tmp_path):
    path = str(tmp_path / "results.json")
    open(path, "w").write('{"old": true}')
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MID_WRITE.format(repo=REPO, path=path)])
    assert proc.wait() == -signal.SIGKILL
    assert open(path).read() == '{"old": true}'
    with pytest.raises(RuntimeError, match="failed mid-write"):
        with replace_on_close(path) as f:
            f.write("half")
            raise RuntimeError("failed mid-write")
    assert open(path).read() == '{"old": true}'
    # The kill's leftover (nothing reads it); the failed write cleaned up after itself.
    assert sorted(os.listdir(tmp_path)) == [f".results.json.tmp-{proc.pid}", "results.json"]
    with replace_on_close(path) as f:
        f.write("new")
    assert open(path).read() == "new"


def test_the_icbm_job_and_its_figures_write_whole_files_only(tmp_path, monkeypatch):
    """results.json/md and the concept PNGs go through replace_on_close: an error (as a
    kill) in the middle of writing leaves the files as they were."""
    import json as json_module

    from experiments import icbm as icbm_job
    from htaf_jax.interpret import grids

    workdir = str(tmp_path)
    icbm_job.write_results(workdir, {"accuracy": 0.5}, "old")

    def dump_then_fail(record, f, **kwargs):
        f.write('{"accuracy": ')
        raise KeyboardInterrupt

    monkeypatch.setattr(icbm_job.json, "dump", dump_then_fail)
    with pytest.raises(KeyboardInterrupt):
        icbm_job.write_results(workdir, {"accuracy": 0.9}, "new")
    monkeypatch.setattr(icbm_job.json, "dump", json_module.dump)
    assert json.load(open(os.path.join(workdir, "results.json"))) == {"accuracy": 0.5}
    assert open(os.path.join(workdir, "results.md")).read() == "old\n"
    assert sorted(os.listdir(workdir)) == ["results.json", "results.md"]

    png = os.path.join(workdir, "overview.png")
    images, pre = np.zeros((4, 8, 8, 1)), np.arange(8.0).reshape(4, 2)
    grids.save_concept_overview(png, images, pre, [0, 1], n=2)
    old = open(png, "rb").read()
    assert old.startswith(b"\x89PNG") and old.endswith(b"IEND\xaeB`\x82")
    from matplotlib.figure import Figure

    real = Figure.savefig

    def half_then_fail(self, f, **kwargs):
        f.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        grids.save_concept_overview(png, images, pre[::-1], [0, 1], n=2)
    monkeypatch.setattr(Figure, "savefig", real)
    assert open(png, "rb").read() == old
