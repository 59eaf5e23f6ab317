"""What every benchmark shares: flags, the machine, paired timing, subprocesses, JSON and
Markdown. A benchmark module is ``measure(...) -> dict`` (JSON-able numbers), ``section(r)
-> list[str]`` (its part of BENCHMARKS.md) and ``main`` (``harness.main``: a flag per
keyword of ``measure``); ``benchmarks.run`` runs them all and writes the report."""

from __future__ import annotations

import inspect
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from typing import Callable

import jax
import jax.numpy as jnp
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERSIONS = ("jax", "jaxlib", "flax", "optax", "spyx", "torch", "snntorch")  # the report's


def parse(argv: list[str] | None, usage: str, **specs) -> types.SimpleNamespace:
    """``argv`` (without the program; None: ``sys.argv[1:]``) parsed against ``specs``:
    ``name=(default, help[, choices])``, spelled with '-' for '_', typed by the default
    (bool: a switch; None: a string). ``--help`` prints ``usage`` and the flags (absl, as
    every experiment command); a bad flag prints one line and exits with status 2."""
    from htaf_jax.train import cli  # the engine extra: only commands need it

    values = flags.FlagValues()
    define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float}
    for name, (default, text, *choices) in specs.items():
        flag, kw = name.replace("_", "-"), {"flag_values": values}
        if choices:
            flags.DEFINE_enum(flag, default, choices[0], text, **kw)
        else:
            define.get(type(default), flags.DEFINE_string)(flag, default, text, **kw)
    prog = os.path.basename(sys.argv[0]) if argv is None else "benchmark"
    rest = cli.parse_command(values, [prog, *(sys.argv[1:] if argv is None else argv)], usage)
    if rest:
        print(f"{prog}: error: unexpected arguments {rest}", file=sys.stderr)
        sys.exit(2)
    return types.SimpleNamespace(**{n: values[n.replace("_", "-")].value for n in specs})


def main(argv, usage: str, measure: Callable[..., dict], section: Callable[[dict], list[str]]):
    """A benchmark's command: a flag per scalar keyword of ``measure`` (tuples stay at
    their defaults) and ``--json``; prints the section, writes the JSON."""
    params = {
        n: (p.default, n.replace("_", " "))
        for n, p in inspect.signature(measure).parameters.items()
        if isinstance(p.default, (bool, int, float, str))
    }
    args = vars(parse(argv, usage, **params, json=(None, "also write the result here")))
    path = args.pop("json")
    r = measure(**args)
    print("\n".join(section(r)))
    write_json(path, r)
    return r


def write_json(path: str | None, result) -> None:
    """``result`` as indented JSON at ``path`` (nothing where it is None)."""
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=2, default=str)


def in_subprocess(module: str, args: list[str], env=None, timeout: float = 900) -> dict:
    """``python -m benchmarks.<module> *args --json OUT`` in a fresh process (its own peak
    memory, its own devices); the JSON it wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        proc = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{module}", *args, "--json", out],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"benchmarks.{module} {' '.join(args)} failed ({proc.returncode}):"
                f"\n{proc.stderr[-3000:]}"
            )
        with open(out) as f:
            return json.load(f)


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM, the high-water mark of its own address space (on
    Linux ``ru_maxrss``, the fallback, also keeps the parent's RSS at the fork)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def unavailable(module: str) -> str | None:
    """None when ``module`` (a peer framework) imports, else why not."""
    try:
        __import__(module)
    except Exception as e:  # ImportError, or a broken install
        return f"{type(e).__name__}: {e}"
    return None


# ----------------------------------------------------------------------------- the machine


def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_avg() -> float | None:
    """The 1-minute load average (other processes on these cores), None where unknown."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def utc_now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def stamp(*modules: str) -> dict:
    """When and where a part ran (a part rerun alone says so in its own section)."""
    return {
        "date_utc": utc_now(),
        "cpu_threads": cpu_threads(),
        "jax_device": jax_device(),
        "versions": versions(*modules),
        "load_avg_1m_at_start": load_avg(),
    }


def versions(*modules: str) -> dict[str, str]:
    return {m: "not installed" if unavailable(m) else __import__(m).__version__ for m in modules}


def jax_device() -> str:
    return f"{jax.default_backend()} ({jax.devices()[0].device_kind})"


def machine_info() -> dict:
    """The host, the versions and the commit a run measured."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    try:
        git = lambda *a: subprocess.run(
            ["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        head, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "-uno")
        commit = (head + (" (+ uncommitted changes)" if dirty else "")) if head else "?"
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    return {
        "date_utc": utc_now(),
        "cpu": cpu,
        "cpu_threads": cpu_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions(*VERSIONS),
        "jax_backend": jax.default_backend(),
        "jax_device_kind": str(jax.devices()[0].device_kind),
        "jax_device_count": jax.device_count(),
        "git_commit": commit,
        "load_avg_1m_at_start": load_avg(),
    }


# ----------------------------------------------------------------------------- timing


def time_interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 0, rotate: bool = False
) -> dict[str, list[float]]:
    """Seconds per call of each function: ``warmup`` untimed calls each (compilation),
    then ``repeats`` rounds in which every one runs once, in turn, so a noisy neighbour
    slows all alike. ``rotate``: round r starts at the r-th function, so none always
    follows the same one (a step can pay for its predecessor's spinning thread pool)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    items = list(fns.items())
    for r in range(repeats):
        k = r % len(items) if rotate else 0
        for name, fn in items[k:] + items[:k]:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def time_calls(calls: dict[str, tuple[Callable, tuple]], repeats: int) -> dict[str, float]:
    """Median seconds of each ``fn(*args)`` (waited for), one warm-up call each, rounds
    interleaved (``time_interleaved``)."""
    fns = {n: lambda f=f, a=a: jax.block_until_ready(f(*a)) for n, (f, a) in calls.items()}
    return medians(time_interleaved(fns, repeats, 1))


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(ts) for name, ts in times.items()}


def paired(times: dict[str, list[float]], ref: str) -> tuple[dict, dict]:
    """Each function's time over ``ref``'s in the same round: (median, [min, max]) of those
    ratios per name. A slow stretch of a shared machine slows a whole round, so this holds
    where the ratio of medians would not."""
    ratios = {n: [t / o for t, o in zip(ts, times[ref])] for n, ts in times.items()}
    return medians(ratios), {n: [min(r), max(r)] for n, r in ratios.items()}


def make_matmul(m: int, k: int, n: int, times: int = 1) -> tuple[Callable[[], None], float]:
    """(``times`` jitted float32 (m, k) @ (k, n) ``jnp.dot`` s back to back, their FLOPs)."""
    ka, kb = jax.random.split(jax.random.key(1))
    a, b = jax.random.normal(ka, (m, k)), jax.random.normal(kb, (k, n))
    dot = jax.jit(jnp.dot)
    return (
        lambda: [jax.block_until_ready(dot(a, b)) for _ in range(times)]
    ), 2.0 * m * k * n * times


# ----------------------------------------------------------------------------- Markdown


def title(doc: str) -> list[str]:
    """A section's heading: its module docstring's first line."""
    return ["## " + doc.split("\n")[0], ""]


def method(doc: str) -> list[str]:
    """A module docstring's paragraphs after its title and command lines, as Markdown: the
    report says how a benchmark measures in the words of its module, once."""
    paras = [
        " ".join(ln.strip() for ln in p.splitlines())
        for p in doc.split("\n\n")[1:]
        if not p.startswith("    ")
    ]
    return [line for p in paras for line in (p.replace("``", "`"), "")]


def paired_text(ratio: float, lo_hi) -> str:
    """A paired ratio (``paired``) as "1.10 (0.98–1.21)": the median, then the lowest and
    highest round (left out where they are equal: one round)."""
    lo, hi = lo_hi
    return f"{ratio:.2f}" + (f" ({lo:.2f}–{hi:.2f})" if lo != hi else "")


def fmt(x, spec: str = ".2f") -> str:
    return "?" if x is None else format(x, spec)


def verdict(met: bool, words=("meets target", "misses target")) -> str:
    return words[not met]


def table(header: str | list[str], rows: list[list], right_from: int = 1) -> list[str]:
    """A Markdown table (``header``: its cells, or one string "a | b | c"); columns from
    ``right_from`` on are right-aligned (numbers)."""
    header = header.split(" | ") if isinstance(header, str) else header
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(align) + "|",
        *("| " + " | ".join(str(c) for c in row) + " |" for row in rows),
    ]
