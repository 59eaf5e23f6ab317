"""The ICBM main job (`make run`'s command) and its explain CLI, end to end on a
real Fashion-MNIST subset."""
import glob
import json
import os
import re

import pytest

from experiments import icbm as icbm_job
from data_marks import needs_data

pytestmark = needs_data

TINY = ["--config.train_subset=512", "--config.test_subset=200", "--config.num_epochs=2",
        "--config.batch_size=64", "--config.model.backbone_kwargs.widths=(32,)",
        "--config.model.num_concepts=16", "--config.grid_concepts=2", "--config.grid_size=4",
        "--config.progress=False", "--config.tensorboard=False"]


def test_main_job_writes_its_outputs_and_explain_adds_up(tmp_path, capsys):
    workdir = str(tmp_path / "icbm")
    assert icbm_job.main(["icbm", "--workdir", workdir, *TINY]) == 0
    summary = capsys.readouterr().out
    assert "test accuracy with hard concepts" in summary and "targets:" in summary
    record = json.load(open(os.path.join(workdir, "results.json")))
    icbm, baseline = record["icbm"], record["baseline"]
    assert 0.1 < icbm["hard_accuracy"] <= 1 and 0.1 < baseline["accuracy"] <= 1
    assert 0 <= icbm["near_binary@0.01"] <= icbm["near_binary@0.1"] <= 1
    # The sharpening schedule ran to its end: the state holds s = config's sharpen.
    restored = icbm_job.restore_variables(workdir)
    assert float(restored["batch_stats"]["sharpness"]) == pytest.approx(16.0, rel=1e-5)
    for path in ["concepts/overview.png", "results.md", "baseline/summary.json"]:
        assert os.path.exists(os.path.join(workdir, path)), path
    assert len(glob.glob(os.path.join(workdir, "concepts", "c*_top.png"))) == 2

    assert icbm_job.main(["icbm", "explain", "--workdir", workdir, "--index", "3",
                          "--flip", "0"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"prediction: \S", text) and "true label:" in text
    # Each listed class: logit = bias + the active concepts' contributions.
    sums = re.findall(r"logit (-?\d+\.\d+) = bias (-?\d+\.\d+) \+ (-?\d+\.\d+) from", text)
    assert sums
    for logit, bias, total in sums:
        assert float(logit) == pytest.approx(float(bias) + float(total), abs=2e-3)
    assert "intervention: c0 switched" in text and "largest logit changes:" in text


def test_explain_on_a_work_dir_without_a_run_says_how_to_make_one(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        icbm_job.main(["icbm", "explain", "--workdir", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "no config.json" in err and "python -m experiments.icbm --workdir" in err
