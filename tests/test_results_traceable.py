"""Every table RESULTS.md and README show can be remade today: each ``Command:`` line parses
with experiments.run's flags and names a study whose stored table holds only runs that
today's planner plans; a table made by earlier code is shown only under a label naming the
commit that made it and a command of today's that remakes it, and never in README."""

import glob
import json
import os
import re
import shlex
import subprocess

import pytest
from helpers import parsed_back

from experiments import report, run, runs
from experiments.configs import studies
from htaf_jax.train import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = re.compile(r"^Command: `([^`]*)`", re.M)
EARLIER = re.compile(
    r"^\*\*Made at commit (\S+) by code that no longer plans these runs\*\*; "
    r"rerun with `([^`]*)`",
    re.M,
)


def _parsed(command: str) -> tuple[str, str]:
    """(study or 'all', profile) of an ``experiments.run`` command, parsed by its flags."""
    argv = shlex.split(command)
    if argv[:3] != ["python", "-m", "experiments.run"]:
        raise ValueError("not python -m experiments.run")
    values = run.flag_values()
    names = cli.parse_command(values, ["run", *argv[3:]], "")  # a bad flag: SystemExit(2)
    if len(names) != 1 or names[0] not in ("all", *studies.STUDIES):
        raise ValueError(f"no study {names}")
    return names[0], values.profile


def problems(text: str, results: str) -> list[str]:
    """What is wrong with the commands of ``text`` (a RESULTS.md or README) against the
    tables under ``results/<profile>/``."""
    found = []
    for command in COMMAND.findall(text):
        try:
            name, profile = _parsed(command)
        except (ValueError, SystemExit) as e:
            found.append(f"{command}: not a command of today's runner ({e})")
            continue
        study = studies.STUDIES.get(name)
        if study and run.recognised(study, profile, os.path.join(results, profile)) is False:
            found.append(f"{command}: its table holds runs today's planner does not plan")
    for commit, command in EARLIER.findall(text):
        name, profile = _parsed(command)
        if run.recognised(studies.STUDIES[name], profile, os.path.join(results, profile)):
            found.append(f"{command}: labelled as made at {commit}, but its runs are planned")
    return found


@pytest.fixture(scope="module")
def results_md() -> str:
    return open(os.path.join(REPO, "RESULTS.md")).read()


def test_every_command_of_results_and_readme_remakes_the_table_it_heads(results_md):
    readme = open(os.path.join(REPO, "README.md")).read()
    assert COMMAND.findall(results_md)
    assert problems(results_md, os.path.join(REPO, "results")) == []
    assert problems(readme, os.path.join(REPO, "results")) == []


def test_tables_of_earlier_code_are_labelled_and_not_in_readme(results_md):
    roots = {p: os.path.join(REPO, "results", p) for p in studies.PROFILES}
    stale = run.stale_tables(roots)
    labelled = {(c, _parsed(command)) for c, command in EARLIER.findall(results_md)}
    for (root, name), commit in stale.items():
        assert (commit, (name, os.path.basename(root))) in labelled, (root, name)
        # The commit the label names is one of this repository's.
        assert (
            subprocess.run(["git", "-C", REPO, "cat-file", "-e", f"{commit}^{{commit}}"]).returncode
            == 0
        )
    block = open(os.path.join(REPO, "README.md")).read().split(report.README_START)[1]
    block = block.split(report.README_END)[0]
    quick = {name for (root, name) in stale if os.path.basename(root) == "quick"}
    full = {name for (root, name) in stale if os.path.basename(root) == "full"}
    summaries = block.split("At the default configs' budgets")
    for names, part in zip((quick, full), summaries):
        rows = [line for line in part.splitlines() if line.startswith("| ")]
        assert not [
            r for r in rows for n in names if r.startswith(f"| {n} ") or r.startswith(f"| {n}|")
        ]


def test_the_check_catches_an_old_command_and_a_table_todays_planner_does_not_plan(tmp_path):
    sweep = "Command: `python -m experiments.sweep --family snn_mlp --seeds 0,1,2`"
    assert "not a command of today's runner" in problems(sweep, str(tmp_path))[0]
    table = tmp_path / "quick" / "snn_mlp" / "snn_mlp_surrogates.json"
    os.makedirs(table.parent)
    table.write_text('{"runs": [{"workdir": "runs/htaf-s0-5d17a700"}]}')
    today = "Command: `python -m experiments.run snn_mlp --profile quick`"
    assert problems(today, str(tmp_path)) == [
        "python -m experiments.run snn_mlp --profile quick: its table holds runs today's "
        "planner does not plan"
    ]
    label = (
        "**Made at commit 1378619 by code that no longer plans these runs**; rerun with "
        "`python -m experiments.run snn_mlp --profile quick`."
    )
    assert problems(label, str(tmp_path)) == []
    assert problems("Command: `python -m experiments.run snn_mlp --profile slow`", str(tmp_path))


def test_each_stored_run_names_a_command_that_rebuilds_the_config_it_was_keyed_by():
    # A run's table keeps its record; the command beside it must build today the config whose
    # hash names the run (a default changed since it trained: the command says the old value).
    checked = 0
    for table in glob.glob(os.path.join(REPO, "results", "*", "*", "*.json")):
        data = json.load(open(table))
        if not isinstance(data, dict) or data.get("study") not in studies.STUDIES:
            continue
        study, profile = studies.STUDIES[data["study"]], data.get("profile")
        root = os.path.join(REPO, "results", profile or "")
        if study.measure == "icbm_job" or not run.recognised(study, profile, root):
            continue  # the job's folder is not keyed; earlier code's tables are labelled
        keyed = [r for r in data.get("runs", []) if r.get("workdir") and r.get("command")]
        for record in keyed[:: max(1, len(keyed) // 4)]:  # a few per table, first included
            config, _ = parsed_back(record["command"])
            assert runs.config_hash(config) == record["workdir"].rsplit("-", 1)[1], record[
                "command"
            ]
            checked += 1
    assert checked > 50
