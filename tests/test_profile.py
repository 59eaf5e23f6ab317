"""config.profile_steps writes a jax.profiler trace into the work dir; steps/s and
images/s are logged with the train metrics (JSON lines and TensorBoard)."""

import glob
import gzip
import json
import os

import pytest
from data_marks import needs_data

from experiments.configs import mlp as mlp_config
from htaf_jax.train import ConfigError, cli, prepare_config, train_and_evaluate
from htaf_jax.train.config import parse_profile_steps
from htaf_jax.train.metrics import read_metrics


def test_profile_steps_are_parsed_and_checked():
    assert parse_profile_steps("") is None
    assert parse_profile_steps("3,5") == (3, 5) == parse_profile_steps(" 3, 5")
    assert parse_profile_steps((0, 1)) == (0, 1)
    config, _ = cli.parse_flags(
        [
            "train",
            "--config",
            "experiments/configs/mlp.py",
            "--workdir",
            "unused",
            "--config.profile_steps=1,3",
        ]
    )
    assert parse_profile_steps(config.profile_steps) == (1, 3)
    for bad, message in (
        ("5,3", "0 <= a < b"),
        ("3", "'a,b'"),
        ("a,b", "'a,b'"),
        ("-1,2", "0 <= a < b"),
    ):
        config = mlp_config.get_config()
        config.profile_steps = bad
        with pytest.raises(ConfigError, match=f"config.profile_steps must be .*{message}"):
            prepare_config(config)


@needs_data
def test_a_tiny_run_writes_a_trace_of_the_chosen_steps(tmp_path):
    config = mlp_config.get_config()
    config.update(
        dict(
            train_subset=128,
            test_subset=64,
            batch_size=32,
            eval_batch_size=64,
            num_epochs=1,
            log_every_steps=2,
            progress=False,
            profile_steps="1,3",
        )
    )
    config.model.hidden_sizes = (16,)
    train_and_evaluate(config, str(tmp_path))
    runs = glob.glob(str(tmp_path / "profile" / "plugins" / "profile" / "*"))
    assert len(runs) == 1, "one trace, started once and stopped once"
    assert glob.glob(os.path.join(runs[0], "*.xplane.pb"))  # TensorBoard's profile plugin
    perfetto = glob.glob(os.path.join(runs[0], "*.trace.json.gz"))  # ui.perfetto.dev
    assert perfetto
    executed = 0
    for path in perfetto:
        with gzip.open(path) as f:
            names = [e.get("name", "") for e in json.load(f)["traceEvents"]]
        executed = max(
            executed, names.count("CommonPjRtLoadedExecutable::Execute (jit_train_step)")
        )
    assert executed == 2  # steps 1 and 2 of 0..3 (and per device: "[d] ...Execute")

    train = [r for r in read_metrics(str(tmp_path)) if r["split"] == "train"]
    assert [r["step"] for r in train] == [2, 4]
    for r in train:
        assert r["steps_per_sec"] > 0
        assert r["images_per_sec"] == pytest.approx(32 * r["steps_per_sec"])
    events = b"".join(
        open(p, "rb").read() for p in glob.glob(str(tmp_path / "tensorboard" / "events.out.*"))
    )
    assert b"train/steps_per_sec" in events and b"train/images_per_sec" in events
