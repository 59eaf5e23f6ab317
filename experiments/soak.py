"""Kill soak of the ICBM main job: SIGKILL at random moments, rerun, same results.

    python -m experiments.soak [--kills 20] [--chains 4] [--seed 0] \
        [--workdir workdirs/soak] [--out results/soak]

Runs the job (``python -m experiments.icbm``, shrunk by SHRINK) once uninterrupted, then
``--chains`` fresh work dirs, each killed ``kills / chains`` times with SIGKILL and rerun
with the same command after each kill until a run finishes. The kills of a chain are, in
order: at a random moment of a fresh run; a random delay after a train step's record
(ICBM or baseline); twice when a checkpoint save is in flight (orbax's temporary step
directory has appeared); in the analysis (a random delay after the baseline finished, or
while a concept figure is being written). After each kill every JSON, JSON-lines and PNG
file in the work dir is checked whole, and the rerun must not fail. A finished chain
must equal the uninterrupted run: metrics.jsonl (timings aside), summary.json's step and
metrics, results.json (its seconds aside), results.md (its wall-time line aside), the
concept PNGs byte for byte, and the final params and batch_stats of the ICBM and its
baseline. Writes ``soak.json`` and ``soak.md`` to ``--out``; exits 1 if anything differs.
Not part of ``make test`` (a few minutes with a warm compilation cache, more on a busy
machine). Compiled programs are cached in ``<workdir>/xla_cache`` across the reruns.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
from absl import logging as absl_logging

from experiments.runs import machine
from htaf_jax._atomic import replace_on_close
from htaf_jax.train import restore_params
from htaf_jax.train.metrics import TIMING_FIELDS, read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A job of about half a minute here with a warm cache: 32 steps per model, a checkpoint
# every 4 steps (8 saves each), a small analysis. Not runlocal, whose 8 steps per model
# leave two saves each and little to kill in.
SHRINK = {
    "train_subset": 1024,
    "test_subset": 256,
    "num_epochs": 2,
    "batch_size": 64,
    "log_every_steps": 2,
    "checkpoint_every_steps": 4,
    "keep_checkpoints": 3,
    "grid_concepts": 3,
    "grid_size": 8,
    "progress": False,
}
HALF_WRITTEN = ".orbax-checkpoint-tmp"
POLL_SECONDS = 0.002
LAUNCH_TIMEOUT = 900.0


def job_command(workdir: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "experiments.icbm",
        "--workdir",
        workdir,
        *(f"--config.{k}={v}" for k, v in SHRINK.items()),
    ]


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _train_steps(workdir: str) -> int:
    """The last train step in ``workdir/metrics.jsonl`` (0 if none)."""
    try:
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            lines = f.read().split("\n")[:-1]
    except OSError:
        return 0
    steps = [json.loads(line)["step"] for line in lines if '"split": "train"' in line]
    return max(steps, default=0)


class Watch:
    """What the monitor reads off a job's work dir while it runs (process ``pid``)."""

    def __init__(self, workdir: str, started: float, pid: int):
        self.workdir, self.baseline = workdir, os.path.join(workdir, "baseline")
        self.started, self.pid = started, pid
        self.first_steps = (_train_steps(workdir), _train_steps(self.baseline))
        # Left by an earlier kill: the job removes these; they are not its saves.
        self.old_saves = set(self._saves())

    def _saves(self):
        for name, folder in (("ICBM", self.workdir), ("baseline", self.baseline)):
            for entry in _listdir(os.path.join(folder, "checkpoints")):
                if HALF_WRITTEN in entry:
                    yield name, entry

    def saving(self) -> str | None:
        for name, entry in self._saves():
            if (name, entry) not in self.old_saves:
                return f"{name} checkpoint save (step {entry.split('.')[0]})"
        return None

    def writing_file(self) -> str | None:
        for folder in (self.workdir, os.path.join(self.workdir, "concepts"), self.baseline):
            for entry in _listdir(folder):
                if entry.startswith(".") and entry.endswith(f".tmp-{self.pid}"):
                    rel = os.path.relpath(
                        os.path.join(folder, entry.split(".tmp-")[0][1:]), self.workdir
                    )
                    return f"writing {rel}"
        return None

    def fresh(self, *parts: str) -> bool:
        return _mtime(os.path.join(self.workdir, *parts)) >= self.started

    def new_steps(self) -> bool:
        now = (_train_steps(self.workdir), _train_steps(self.baseline))
        return now[0] > self.first_steps[0] or now[1] > self.first_steps[1]

    def phase(self) -> str:
        """The job's phase, from what it has written since it started."""
        saving, writing = self.saving(), self.writing_file()
        if saving:
            return saving
        if self.fresh("baseline", "summary.json"):
            return "analysis" + (f" ({writing})" if writing else "")
        if writing:
            return writing
        if self.fresh("baseline", "metrics.jsonl"):
            return f"baseline training (last logged step {_train_steps(self.baseline)})"
        if self.fresh("summary.json") or self.fresh("baseline", "config.json"):
            return "baseline start-up"
        if self.fresh("metrics.jsonl"):
            return f"ICBM training (last logged step {_train_steps(self.workdir)})"
        return "start-up (imports, data, restore)"


def trigger(kind: str, rng: random.Random, reference: dict):
    """A function of (watch, seconds since launch) that says when to kill, or None."""
    if kind == "random moment":  # in start-up or training (the analysis has its own)
        at = rng.uniform(1.0, 0.6 * (reference["wall"] - reference["analysis"]))
        return lambda w, t: t >= at
    if kind == "after a train step":
        delay, state = rng.uniform(0.0, 0.3), {}

        def after_step(w, t):
            if "seen" not in state and w.new_steps():
                state["seen"] = t
            return "seen" in state and t >= state["seen"] + delay

        return after_step
    if kind == "during a checkpoint save":
        # A random moment of a save: the first one still in flight that long after it
        # appeared (a shorter wait each time one finishes first).
        state = {"delay": rng.uniform(0.0, 0.05)}

        def in_save(w, t):
            if w.saving() is None:
                if "seen" in state:
                    state.pop("seen")
                    state["delay"] /= 2
                return False
            state.setdefault("seen", t)
            return t >= state["seen"] + state["delay"]

        return in_save
    if kind == "in the analysis":
        delay, state = rng.uniform(0.0, 0.9 * reference["analysis"]), {}

        def in_analysis(w, t):
            if "seen" not in state and w.fresh("baseline", "summary.json"):
                state["seen"] = t
            return "seen" in state and t >= state["seen"] + delay

        return in_analysis
    if kind == "while a figure is written":
        return lambda w, t: (w.writing_file() or "").startswith("writing concepts/")
    raise ValueError(kind)


def chain_plan(rng: random.Random, kills: int) -> list[str]:
    """The kinds of kill of one chain, in the order the job passes through them."""
    middle = ["after a train step", "during a checkpoint save", "during a checkpoint save"]
    plan = ["random moment"] + [middle[i % 3] for i in range(max(kills - 2, 0))]
    plan.append(rng.choice(["in the analysis", "while a figure is written"]))
    return plan[:kills]


def launch(workdir: str, log: str, env: dict, kill_when=None) -> dict:
    """Runs the job once; with ``kill_when``, SIGKILLs it when that says so."""
    started = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            job_command(workdir), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        watch = Watch(workdir, started, proc.pid)
        record = {"killed": False}
        while proc.poll() is None:
            elapsed = time.time() - started
            if elapsed > LAUNCH_TIMEOUT:
                proc.kill()
                proc.wait()
                return {"rc": None, "timed_out": True, "seconds": elapsed, "killed": False}
            if kill_when is not None and kill_when(watch, elapsed):
                phase = watch.phase()
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                record = {"killed": True, "moment": round(elapsed, 3), "phase": phase}
                break
            time.sleep(POLL_SECONDS)
    text = open(log).read()
    record.update(
        rc=proc.returncode,
        seconds=round(time.time() - started, 3),
        traceback="Traceback (most recent call last)" in text,
        warnings=[line for line in text.splitlines() if line.startswith("warning: ")],
    )
    return record


def torn_files(workdir: str) -> list[str]:
    """Files in ``workdir`` that are not whole: JSON that does not parse, a JSON-lines
    record that does not, a PNG without its end chunk."""
    torn = []
    for path in glob.glob(os.path.join(workdir, "**", "*"), recursive=True):
        name = os.path.relpath(path, workdir)
        if any(
            part.startswith("checkpoints") or part == "tensorboard" for part in name.split(os.sep)
        ) or not os.path.isfile(path):
            continue  # orbax's and TensorBoard's files: their readers judge those
        try:
            if path.endswith(".json"):
                json.load(open(path))
            elif path.endswith(".jsonl"):
                [json.loads(line) for line in open(path).read().split("\n")[:-1]]
                if open(path).read()[-1:] not in ("", "\n"):
                    torn.append(name + " (last line cut short)")
            elif path.endswith(".png"):
                data = open(path, "rb").read()
                if not (data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82")):
                    torn.append(name)
        except (ValueError, OSError):
            torn.append(name)
    return sorted(torn)


def _untimed_metrics(workdir: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in read_metrics(workdir)]


def _text(path: str, workdir: str) -> str:
    return (
        open(path)
        .read()
        .replace(os.path.abspath(workdir), "<workdir>")
        .replace(os.path.relpath(workdir, REPO), "<workdir>")
    )


def compare(workdir: str, reference: str) -> dict:
    """Each output of a finished chain against the uninterrupted run: name -> equal."""

    absl_logging.set_verbosity(absl_logging.ERROR)  # orbax's read-only notices
    out = {}
    for sub in ("", "baseline"):
        mine, ref, tag = os.path.join(workdir, sub), os.path.join(reference, sub), sub or "icbm"
        out[f"{tag} metrics.jsonl"] = _untimed_metrics(mine) == _untimed_metrics(ref)
        a, b = (json.load(open(os.path.join(d, "summary.json"))) for d in (mine, ref))
        out[f"{tag} summary.json step+metrics"] = (a["step"], a["metrics"]) == (
            b["step"],
            b["metrics"],
        )
        pa, pb = restore_params(mine), restore_params(ref)
        leaves = lambda r: [np.asarray(x) for x in _leaves((r.params, r.batch_stats))]  # noqa
        out[f"{tag} final params+batch_stats"] = all(
            x.shape == y.shape and np.array_equal(x, y)
            for x, y in zip(leaves(pa), leaves(pb), strict=True)
        )
    a, b = (json.loads(_text(os.path.join(d, "results.json"), d)) for d in (workdir, reference))
    a.pop("seconds"), b.pop("seconds")
    out["results.json (seconds aside)"] = a == b
    a, b = (
        [
            line
            for line in _text(os.path.join(d, "results.md"), d).splitlines()
            if not line.startswith("- wall time")
        ]
        for d in (workdir, reference)
    )
    out["results.md (wall time aside)"] = a == b
    pngs = sorted(os.listdir(os.path.join(reference, "concepts")))
    out[f"concepts/*.png ({len(pngs)}) byte-equal"] = pngs == sorted(
        p for p in os.listdir(os.path.join(workdir, "concepts")) if p.endswith(".png")
    ) and all(
        open(os.path.join(workdir, "concepts", p), "rb").read()
        == open(os.path.join(reference, "concepts", p), "rb").read()
        for p in pngs
    )
    return out


def _leaves(tree):
    return jax.tree.leaves(tree)


def write_report(out_dir: str, report: dict) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with replace_on_close(os.path.join(out_dir, "soak.json")) as f:
        json.dump(report, f, indent=2)
    kills = [k for c in report["chains"] for k in c["kills"]]
    done = [k for k in kills if k["killed"]]
    lines = [
        "# Kill soak of the ICBM main job",
        "",
        f"Written by `{report['command']}` on {report['machine']}, "
        f"{report['date']}; {report['minutes']:.1f} min.",
        "",
        f"The job: `{' '.join(report['job'])}`; uninterrupted it took "
        f"{report['reference']['wall']:.1f} s here (analysis "
        f"{report['reference']['analysis']:.1f} s).",
        "",
        f"**{len(done)} of {len(kills)} planned kills landed** (SIGKILL); "
        f"reruns that resumed without an error: "
        f"{sum(k['resume_ok'] for k in done)} of {len(done)}; files found torn after a "
        f"kill: {sum(bool(k['torn']) for k in done)}; chains whose final results equal "
        f"the uninterrupted run's: {sum(c['equal'] for c in report['chains'])} of "
        f"{len(report['chains'])}.",
        "",
        "Phase: what the job was doing when the kill landed, read off its work dir. "
        "Checkpoints: the step directories on disk after the kill (ICBM / baseline). "
        "Left behind: orbax's temporary step directories and our temporary files "
        "that the kill cut short. Rerun: the next launch of the same command resumed "
        "and ran on (to the next kill or to the end) without an error.",
        "",
        "| # | chain | kill | moment (s into the launch) | phase at the kill | "
        "checkpoints | left behind | torn files | rerun | rerun's warnings |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, k in enumerate(kills, 1):
        left = ", ".join(k.get("left", [])) or "–"
        steps = k.get("checkpoints")
        steps = (
            " / ".join(",".join(map(str, steps[t])) or "none" for t in ("icbm", "baseline"))
            if steps
            else "–"
        )
        warn = (
            "<br>".join(w.replace(report["workdir"], "…") for w in k.get("rerun_warnings", []))
            or "–"
        )
        lines.append(
            f"| {n} | {k['chain']} | {k['kind']} | {k.get('moment', '–')} | "
            f"{k.get('phase', 'not killed: the job finished first')} | {steps} | {left} | "
            f"{', '.join(k.get('torn', [])) or 'none'} | "
            f"{'ok' if k.get('resume_ok') else 'FAILED' if k['killed'] else '–'} | {warn} |"
        )
    lines += ["", "Final results of each chain against the uninterrupted run:", ""]
    for c in report["chains"]:
        same = [name for name, ok in c["comparison"].items() if ok]
        differ = [name for name, ok in c["comparison"].items() if not ok]
        lines.append(
            f"- chain {c['chain']} ({c['launches']} launches, final rc {c['final_rc']}): "
            + ("equal: " + ", ".join(same) if not differ else "DIFFERENT: " + ", ".join(differ))
        )
    with replace_on_close(os.path.join(out_dir, "soak.md")) as f:
        f.write("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="workdirs/soak")
    parser.add_argument("--out", default="results/soak")
    args = parser.parse_args(argv)
    if args.kills < args.chains or args.chains < 1:
        parser.error("--kills must be >= --chains >= 1")

    workdir = os.path.abspath(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    env = dict(os.environ)
    env.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(workdir, "xla_cache"))
    env.update(
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
        PYTHONPATH=os.pathsep.join([REPO, env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    start, rng = time.time(), random.Random(args.seed)

    # The uninterrupted run, twice: the first fills the compilation cache, the second
    # (the reference) times a launch as the reruns will see it.
    launch(os.path.join(workdir, "warmup"), os.path.join(workdir, "warmup.log"), env)
    reference = os.path.join(workdir, "reference")
    ref = launch(reference, os.path.join(workdir, "reference.log"), env)
    if ref["rc"] != 0:
        print(
            f"soak: the uninterrupted run failed (rc {ref['rc']}); see {workdir}/reference.log",
            file=sys.stderr,
        )
        return 1
    seconds = json.load(open(os.path.join(reference, "results.json")))["seconds"]
    timing = {"wall": ref["seconds"], "analysis": seconds["analysis"]}
    print(f"soak: uninterrupted run {timing['wall']:.1f} s", flush=True)

    per_chain = [
        args.kills // args.chains + (c < args.kills % args.chains) for c in range(args.chains)
    ]
    chains = []
    for c, count in enumerate(per_chain):
        folder = os.path.join(workdir, f"chain{c}")
        kills, launches = [], 0
        for kind in chain_plan(rng, count):
            result = launch(
                folder,
                os.path.join(workdir, f"chain{c}-{launches}.log"),
                env,
                trigger(kind, rng, timing),
            )
            launches += 1
            entry = {
                "chain": c,
                "kind": kind,
                **{k: result[k] for k in ("killed", "moment", "phase") if k in result},
            }
            if result["killed"]:
                entry["torn"] = torn_files(folder)
                entry["checkpoints"] = {
                    tag: sorted(
                        (
                            int(n)
                            for n in _listdir(os.path.join(folder, sub, "checkpoints"))
                            if n.isdigit()
                        )
                    )
                    for tag, sub in (("icbm", ""), ("baseline", "baseline"))
                }
                entry["left"] = sorted(
                    os.path.relpath(p, folder)
                    for p in glob.glob(
                        os.path.join(folder, "**", f"*{HALF_WRITTEN}*"), recursive=True
                    )
                    + glob.glob(os.path.join(folder, "**", ".*.tmp-*"), recursive=True)
                )
            else:
                entry["rc"] = result["rc"]
            if kills:  # this launch is the rerun after the previous kill
                _judge_rerun(kills[-1], result)
            kills.append(entry)
            print(
                f"soak: chain {c} kill {len(kills)} ({kind}): "
                f"{entry.get('phase', 'not killed')} at {entry.get('moment')} s",
                flush=True,
            )
        final = launch(folder, os.path.join(workdir, f"chain{c}-{launches}.log"), env)
        launches += 1
        _judge_rerun(kills[-1], final)
        comparison = compare(folder, reference) if final["rc"] == 0 else {"finished": False}
        chains.append(
            {
                "chain": c,
                "kills": kills,
                "launches": launches,
                "final_rc": final["rc"],
                "comparison": comparison,
                "equal": all(comparison.values()),
            }
        )
        print(f"soak: chain {c} final rc {final['rc']}, equal: {chains[-1]['equal']}", flush=True)

    report = {
        "command": "python -m experiments.soak " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "minutes": (time.time() - start) / 60,
        "job": ["python", *job_command("<workdir>")[1:]],
        "workdir": workdir,
        "seed": args.seed,
        "reference": timing,
        "chains": chains,
    }
    write_report(args.out, report)
    ok = (
        all(c["equal"] for c in chains)
        and all(k["resume_ok"] for c in chains for k in c["kills"] if k["killed"])
        and not any(k.get("torn") for c in chains for k in c["kills"])
    )
    print(f"soak: {'all equal' if ok else 'DIFFERENCES'}; report in {args.out}/soak.md")
    return 0 if ok else 1


def _judge_rerun(kill: dict, rerun: dict) -> None:
    """The run after a kill resumed if it finished, or ran on until our next kill, with no
    traceback; its one-line warnings (checkpoints skipped) are kept."""
    if not kill["killed"]:
        kill["resume_ok"] = None
        return
    kill["resume_ok"] = (rerun["rc"] == 0 or rerun["killed"]) and not rerun["traceback"]
    kill["rerun_warnings"] = rerun["warnings"]


if __name__ == "__main__":
    sys.exit(main())
