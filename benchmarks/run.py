"""Runs every benchmark in one process and writes BENCHMARKS.md, its JSON and a figure.

    make bench                  # installs the bench extra (torch CPU, snntorch, spyx), then:
    python -m benchmarks.run [--out BENCHMARKS.md] [--quick] [--only PART]

Each part is a module and a command of its own (``python -m benchmarks.<part>``).
``--only PART`` reruns one part and rewrites BENCHMARKS.md from it and the others' numbers
in the JSON. Runs unchanged on a GPU/TPU host (JAX's default backend) and records its
device; a peer framework that does not import is reported as not run.
"""

from __future__ import annotations

import json
import os
import time

from benchmarks import (
    harness,
    htaf_throughput,
    packed_inference,
    pipeline,
    snn_peers,
    snn_scaling,
    snn_step,
)

COMMAND = "make bench"
QUICK_NOTE = [
    "**Quick mode (tiny sizes): these numbers check that the scripts run; they measure nothing.**",
    "",
]
# JSON key: (module, full-size run, quick run: tiny sizes that check the code runs).
PARTS = {
    "htaf": (htaf_throughput, htaf_throughput.measure, lambda: htaf_throughput.measure(12, 3)),
    "snn": (
        snn_step,
        lambda: snn_step.measure(repeats=20),
        lambda: snn_step.measure(3, 8, 32, repeats=2, warmup=1, matmul_n=256),
    ),
    "pipeline": (pipeline, pipeline.measure, lambda: pipeline.measure(32, 3, 1, rounds=2)),
    "packed": (packed_inference, packed_inference.measure, lambda: packed_inference.measure(16, 2)),
    "peers": (snn_peers, snn_peers.measure, lambda: snn_peers.measure(True, False)),
    "scaling": (
        snn_scaling,
        snn_scaling.measure,
        lambda: snn_scaling.measure((4, 8), (4, 8), 2, 8, repeats=1, option_repeats=1),
    ),
}
PART_OF = {m.__name__.removeprefix("benchmarks."): key for key, (m, *_) in PARTS.items()}


def run_all(quick: bool = False, only: str | None = None, previous: dict | None = None) -> dict:
    """Every part (``quick``: tiny sizes), or ``only`` one added to ``previous``, whose
    machine and wall time stay the full run's (such a part says when it was measured)."""
    t0 = time.perf_counter()
    out = previous or {"machine": harness.machine_info(), "quick": quick}
    for key, (module, full, small) in PARTS.items():
        if only in (None, key):
            print(f"{module.__name__} ...", flush=True)
            out[key] = small() if quick else full()
    if only is None:
        out["wall_s"], out["load_avg_1m_at_end"] = time.perf_counter() - t0, harness.load_avg()
    return out


def render_markdown(r: dict, figure: str | None = None) -> str:
    m = r["machine"]
    versions = ", ".join(f"{k} {m.get(k, '?')}" for k in harness.VERSIONS)
    load = f"{harness.fmt(m['load_avg_1m_at_start'])} / {harness.fmt(r.get('load_avg_1m_at_end'))}"
    machine = {
        "CPU": f"{m['cpu']}, {m['cpu_threads']} threads available",
        "JAX device": f"{m['jax_backend']} ({m['jax_device_kind']}) × {m['jax_device_count']}",
        "versions": f"Python {m['python']}, {versions}",
        "OS": m["platform"],
        "wall time of the benchmarks": f"{r['wall_s']:.0f} s",
        "1-min load average at start / end": load,
    }
    L = [
        "# Benchmarks",
        "",
        f"Written by `{COMMAND}` (`python -m benchmarks.run`) on {m['date_utc']}, commit "
        f"{m['git_commit']}; all raw numbers in `benchmarks/results.json`. Every figure is a "
        "ratio of timings taken in the same run, contenders interleaved round by round, "
        "warm-up (compilation) excluded, medians of the repeats.",
        "",
        *(QUICK_NOTE if r.get("quick") else []),
        *harness.table(["machine", ""], [list(row) for row in machine.items()], 2),
        "",
        "Other processes may share these cores (the load average says how much): ratios "
        "hold up to that, since contenders alternate round by round, but absolute times do "
        "not.",
        "",
    ]
    if m["jax_backend"] == "cpu":
        L += [
            "No GPU was available to this run: every column is CPU. On a GPU host the same "
            "command runs unchanged and records its device here.",
            "",
        ]
    L += [f"![benchmarks]({figure})", ""] if figure else []
    for key, (module, *_) in PARTS.items():
        L += module.section(r[key]) if key in r else []
    parts = ", ".join(f"`python -m benchmarks.{name}`" for name in PART_OF)
    return "\n".join(
        L
        + ["## Reproduce", "", f"    {COMMAND}", ""]
        + [
            f"or one part: {parts} (each takes `--help`); `python -m benchmarks.run --only "
            "PART` reruns one part and rewrites this file.",
            "",
        ]
    )


def plot(r: dict, path: str) -> None:
    import matplotlib  # the figure only: the numbers need no plotting library

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after use("Agg")

    s, h, m = r["snn"], r["htaf"], r["machine"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8))
    names, bound = list(s["median_ms"]), s["bound_ms"]["matmuls at peak"]
    ax.barh(
        names,
        [s["median_ms"][n] for n in names],
        color=["C0" if n.startswith("jax") else "C3" for n in names],
    )
    ax.axvline(bound, color="k", ls="--", lw=1)
    ax.text(bound, len(names) - 0.5, " matmul-bound (rate)", fontsize=8, va="center")
    ax.set_xlabel("ms per training step (median)")
    ax.set_title(f"SNN step 784-{s['hidden']}-10, T={s['num_steps']}, B={s['batch']}", fontsize=10)
    bx.barh(list(h["median_s"]), [v / 1e6 for v in h["values_per_s"].values()], color="C0")
    bx.set_xlabel("M values/s, forward+backward")
    bx.set_title(f"activation on 2^{h['n'].bit_length() - 1} float32", fontsize=10)
    ax.invert_yaxis(), bx.invert_yaxis()
    device = m["cpu"] if m["jax_backend"] == "cpu" else m["jax_device_kind"]
    fig.suptitle(f"{COMMAND} — {m['jax_backend']} ({device}), {m['date_utc']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = harness.parse(
        argv,
        __doc__,
        out=(os.path.join(harness.ROOT, "BENCHMARKS.md"), "the report"),
        json=(os.path.join(harness.ROOT, "benchmarks", "results.json"), "every number measured"),
        figure=(os.path.join(harness.ROOT, "benchmarks", "figures", "benchmarks.png"), "the plot"),
        quick=(False, "tiny sizes: checks the scripts run"),
        only=(None, "rerun this part alone; the others' numbers come from --json", list(PART_OF)),
    )
    previous = None
    if args.only:
        with open(args.json) as f:
            previous = json.load(f)
        if bool(previous.get("quick")) != args.quick:
            raise SystemExit(
                f"{args.json} holds a {'quick' if previous.get('quick') else 'full'} "
                "run; run the same mode or all parts"
            )
    r = run_all(args.quick, args.only and PART_OF[args.only], previous)
    for path in (args.out, args.json, args.figure):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    harness.write_json(args.json, r)
    plot(r, args.figure)
    with open(args.out, "w") as f:
        f.write(
            render_markdown(
                r, os.path.relpath(args.figure, os.path.dirname(os.path.abspath(args.out)))
            )
        )
    print(f"wrote {args.out}, {args.json}, {args.figure}")
    return r


if __name__ == "__main__":
    main()
