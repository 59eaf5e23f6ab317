"""Mutation testing of the core modules against their fast tests (issue 36, item 6).

    python tests/mutation.py                    # every module, writes results/mutation/
    python tests/mutation.py --modules bop      # some modules (the others keep their results)
    python tests/mutation.py --survivors        # rerun only the mutants that survived

Not part of ``make test``: it runs each module's fast tests once per mutant (minutes).

A small AST mutation tester of our own (mutmut's operators, not mutmut: mutmut 3 rewrites
every function into a trampoline, which ``jax.custom_vjp`` and ``jit`` do not survive, and
mutmut 2 runs a new process per mutant). The mutants, on the source text with the line
numbers kept: arithmetic (+ −, * /, ** *, // /, << >>, & |), comparisons (< <=, > >=,
== !=, is / is not, in / not in), `and` / `or`, `not x` → x, unary minus dropped,
numbers n → n + 1, True / False swapped, and an elementwise call dropped (abs, sign,
square, stop_gradient, round, maximum, minimum, where's condition kept: f(a, ...) → a).
Strings (messages, names), docstrings, annotations and ``raise`` statements are not
mutated.

One process. A mutant inside a function body (a ``def`` or a ``lambda``: nearly all) is
installed by swapping the ``__code__`` of every live function object compiled from that
body, then ``jax.clear_caches()``; the tests run in-process with ``pytest.main``, XLA's
compiled programs read back from a persistent compilation cache where they did not
change. A mutant outside any body (a default, a module constant) runs in a subprocess on
a copy of the tree, and so does one in a function no test calls (it may run at import
time: all the module's test files then). Each mutant runs only the tests that call the
mutated function (a call map recorded first, caches cleared before each test so every
test traces what it uses), fastest first, stopping at the first failure. A mutant is
killed when a test fails, errors or times out.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import gc
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "mutation"

# Each core module and its fast tests (``-m "not slow"``).
MODULES = {
    "functions": (
        "htaf_jax/functions.py",
        ["tests/test_functions.py", "tests/test_surrogates.py", "tests/test_cotangents.py"],
    ),
    "units": (
        "htaf_jax/units.py",
        [
            "tests/test_surrogates.py",
            "tests/test_quantizers.py",
            "tests/test_cotangents.py",
            "tests/test_config_units.py",
        ],
    ),
    "lif": (
        "htaf_jax/spiking/lif.py",
        ["tests/test_snn.py", "tests/test_layers_spiking.py", "tests/test_cotangents.py"],
    ),
    "neurons": (
        "htaf_jax/spiking/neurons.py",
        [
            "tests/test_snn.py",
            "tests/test_layers_spiking.py",
            "tests/test_spiking_snntorch.py",
            "tests/test_cotangents.py",
        ],
    ),
    "spiking_fields": (
        "htaf_jax/spiking/fields.py",
        ["tests/test_layers_spiking.py", "tests/test_snn.py", "tests/test_nir.py"],
    ),
    "encoders": (
        "htaf_jax/spiking/encoders.py",
        ["tests/test_snn.py", "tests/test_layers_spiking.py"],
    ),
    "readouts": (
        "htaf_jax/spiking/readouts.py",
        ["tests/test_snn.py", "tests/test_layers_spiking.py"],
    ),
    "binary": (
        "htaf_jax/binary.py",
        ["tests/test_bnn.py", "tests/test_layers_binary.py", "tests/test_cotangents.py"],
    ),
    "concepts": (
        "htaf_jax/concepts.py",
        ["tests/test_layers_concepts.py", "tests/test_cotangents.py"],
    ),
    "packing": ("htaf_jax/packing.py", ["tests/test_packing.py", "tests/test_bnn.py"]),
    "bop": ("htaf_jax/bop.py", ["tests/test_bop.py"]),
}
PYTEST_ARGS = [
    "-x",
    "-q",
    "-p",
    "no:xdist",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:randomly",
    "-m",
    "not slow",
    "-o",
    "timeout=120",
    "-W",
    "ignore::pytest.PytestWarning",
]

BINOPS = {
    ast.Add: ("+", "-"),
    ast.Sub: ("-", "+"),
    ast.Mult: ("*", "/"),
    ast.Div: ("/", "*"),
    ast.Pow: ("**", "*"),
    ast.FloorDiv: ("//", "/"),
    ast.LShift: ("<<", ">>"),
    ast.RShift: (">>", "<<"),
    ast.BitAnd: ("&", "|"),
    ast.BitOr: ("|", "&"),
    ast.BitXor: ("^", "|"),
    ast.Mod: ("%", "//"),
}
CMPOPS = {
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
    ast.Is: ("is", "is not"),
    ast.IsNot: ("is not", "is"),
    ast.In: ("in", "not in"),
    ast.NotIn: ("not in", "in"),
}
DROPPABLE_CALLS = {"abs", "sign", "square", "stop_gradient", "round", "maximum", "minimum"}


@dataclasses.dataclass
class Mutant:
    module: str
    line: int
    start: int  # byte offsets of the replaced span in the file
    end: int
    new: str
    old: str
    kind: str
    scope: tuple  # (name, first line) of the enclosing bodies, outermost first

    @property
    def key(self) -> str:
        return f"{self.module}:{self.start}:{self.end}:{self.new}"


# ------------------------------------------------------------------ generation --
def _offsets(src: bytes):
    starts, pos = [0], 0
    for line in src.split(b"\n")[:-1]:
        pos += len(line) + 1
        starts.append(pos)
    return lambda lineno, col: starts[lineno - 1] + col


def _skipped_nodes(tree):
    """Docstrings, annotations, raise statements, f-strings, __all__."""
    skip = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            skip.add(id(body[0]))
        if isinstance(node, (ast.Raise, ast.JoinedStr)):
            skip.add(id(node))
        for field in ("annotation", "returns"):
            if getattr(node, field, None) is not None:
                skip.add(id(getattr(node, field)))
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", "") == "__all__" for t in node.targets
        ):
            skip.add(id(node))
        if isinstance(node, ast.AnnAssign) and node.annotation is not None:
            skip.add(id(node.annotation))
    return skip


def generate(module: str, path: Path) -> list[Mutant]:
    src = path.read_bytes()
    tree = ast.parse(src)
    at = _offsets(src)
    skip = _skipped_nodes(tree)
    mutants: list[Mutant] = []

    def span(node):
        return at(node.lineno, node.col_offset), at(node.end_lineno, node.end_col_offset)

    def add(node, start, end, new, kind, scope):
        old = src[start:end].decode()
        if new != old:
            mutants.append(Mutant(module, node.lineno, start, end, new, old, kind, scope))

    def op_in_gap(a, b, token):
        """The span of ``token`` in the source between nodes a and b (outside comments)."""
        lo, hi = span(a)[1], span(b)[0]
        gap = src[lo:hi].decode()
        code = re.sub(r"#[^\n]*", lambda m: " " * len(m.group()), gap)
        pat = (
            r"\b" + r"\s+".join(map(re.escape, token.split())) + r"\b"
            if token[0].isalpha()
            else re.escape(token) + (r"(?![=*/<>])" if token in "<>*/" else "")
        )
        m = re.search(pat, code)
        if m is None:
            return None
        return lo + len(gap[: m.start()].encode()), lo + len(gap[: m.end()].encode())

    def visit(node, scope, skipped, prefix=""):
        skipped = skipped or id(node) in skip
        if isinstance(node, ast.ClassDef):
            for d in node.decorator_list + node.bases + node.keywords:
                visit(d, scope, skipped, prefix)
            for child in node.body:
                visit(child, scope, skipped, prefix + node.name + ".")
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            # defaults and decorators are evaluated outside the body
            args = node.args
            for d in args.defaults + [d for d in args.kw_defaults if d is not None]:
                visit(d, scope, skipped, prefix)
            for d in getattr(node, "decorator_list", []):
                visit(d, scope, skipped, prefix)
            qualname = prefix + getattr(node, "name", "<lambda>")
            # the key of its code object: co_firstlineno is the first decorator's line
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            inner = scope + ((qualname, first),)
            for child in node.body if isinstance(node.body, list) else [node.body]:
                visit(child, inner, skipped, qualname + ".<locals>.")
            return
        if not skipped:
            mutate(node, scope)
        for child in ast.iter_child_nodes(node):
            visit(child, scope, skipped, prefix)

    def mutate(node, scope):
        if isinstance(node, ast.BinOp) and type(node.op) in BINOPS:
            tok, new = BINOPS[type(node.op)]
            where = op_in_gap(node.left, node.right, tok)
            if where:
                add(node, *where, new, f"{tok} → {new}", scope)
        elif isinstance(node, ast.Compare):
            left = node.left
            for op, right in zip(node.ops, node.comparators):
                tok, new = CMPOPS[type(op)]
                where = op_in_gap(left, right, tok)
                if where:
                    add(node, *where, new, f"{tok} → {new}", scope)
                left = right
        elif isinstance(node, ast.BoolOp):
            tok, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
            for a, b in zip(node.values, node.values[1:]):
                where = op_in_gap(a, b, tok)
                if where:
                    add(node, *where, new, f"{tok} → {new}", scope)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
            start, _ = span(node)
            m = re.match(rb"-\s*|not\s*", src[start:])
            add(
                node,
                start,
                start + m.end(),
                "",
                "drop " + ("−" if isinstance(node.op, ast.USub) else "not"),
                scope,
            )
        elif isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool):
                add(node, *span(node), repr(not v), f"{v} → {not v}", scope)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                add(node, *span(node), repr(v + 1), f"{v!r} → {v + 1!r}", scope)
        elif isinstance(node, ast.Call) and node.args and not isinstance(node.args[0], ast.Starred):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in DROPPABLE_CALLS:
                start, end = span(node)
                a0, a1 = span(node.args[0])
                lost = src[start:end].count(b"\n") - src[a0:a1].count(b"\n")
                add(
                    node,
                    start,
                    end,
                    "(" + src[a0:a1].decode() + "\n" * lost + ")",
                    f"{name}(a, …) → a",
                    scope,
                )

    visit(tree, (), False)
    return mutants


def apply(src: bytes, m: Mutant) -> bytes:
    return src[: m.start] + m.new.encode() + src[m.end :]


# ------------------------------------------------------------- installing code --
def _codes(code: types.CodeType, out: dict):
    key = (code.co_qualname, code.co_firstlineno)
    out[key] = None if key in out else code  # None: two bodies share the key
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _codes(c, out)
    return out


class Swapper:
    """Installs a mutant by swapping the __code__ of the live functions of its body."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.src = path.read_bytes()
        self.funcs: dict[tuple, list] = {}
        for obj in gc.get_objects():
            if isinstance(obj, types.FunctionType) and obj.__code__.co_filename == self.path:
                key = (obj.__code__.co_qualname, obj.__code__.co_firstlineno)
                self.funcs.setdefault(key, []).append(obj)

    @contextlib.contextmanager
    def installed(self, m: Mutant):
        new = _codes(compile(apply(self.src, m), self.path, "exec"), {})
        swapped = []
        try:
            for key in m.scope:  # outermost live function first; nested ones come with it
                if new.get(key) is None:
                    raise LookupError(f"{key} names no body, or two")
                for f in self.funcs.get(key, []):
                    swapped.append((f, f.__code__))
                    f.__code__ = new[key]
            if not swapped:
                raise LookupError(f"no live function for {m.scope}")
            yield
        finally:
            for f, code in reversed(swapped):
                f.__code__ = code


# ------------------------------------------------------------------- running --
class CallMap:
    """pytest plugin: which tests call which functions of the target files, and how long
    each test takes (caches cleared before each, so each test traces what it uses)."""

    def __init__(self, files):
        self.files = {str(f) for f in files}
        self.calls: dict[tuple, set] = {}
        self.seconds: dict[str, float] = {}
        self.failed: list[str] = []

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        import threading

        import jax

        jax.clear_caches()
        nodeid, files, calls = item.nodeid, self.files, self.calls

        def tracer(frame, event, arg):
            code = frame.f_code
            if event == "call" and code.co_filename in files:
                calls.setdefault(
                    (code.co_filename, code.co_qualname, code.co_firstlineno), set()
                ).add(nodeid)

        sys.setprofile(tracer)
        threading.setprofile(tracer)
        try:
            return (yield)
        finally:
            sys.setprofile(None)
            threading.setprofile(None)

    def pytest_runtest_logreport(self, report):
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration
        if report.failed:
            self.failed.append(report.nodeid)


def run_pytest(args, plugins=()) -> int:
    import jax

    jax.clear_caches()
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        return int(pytest.main(PYTEST_ARGS + list(args), plugins=list(plugins)))


def run_subprocess(m: Mutant, path: Path, tests: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="htaf-mutant-") as tmp:
        for part in ("htaf_jax", "tests", "pyproject.toml", "experiments"):
            src = ROOT / part
            (shutil.copytree if src.is_dir() else shutil.copy)(src, Path(tmp) / part)
        target = Path(tmp) / path.relative_to(ROOT)
        target.write_bytes(apply(path.read_bytes(), m))
        env = {**os.environ, "PYTHONPATH": tmp}
        try:
            return subprocess.run(
                [sys.executable, "-m", "pytest", *PYTEST_ARGS, *tests],
                cwd=tmp,
                env=env,
                capture_output=True,
                timeout=900,
            ).returncode
        except subprocess.TimeoutExpired:
            return 124


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modules", nargs="*", default=list(MODULES))
    parser.add_argument(
        "--survivors", action="store_true", help="rerun only the mutants that survived the last run"
    )
    args = parser.parse_args()
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    # tests/conftest.py's settings, made here as jax is imported before it (2 devices)
    os.environ.setdefault("HTAF_TEST_DEVICES", "2")
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_"
        "device_count=2 --xla_backend_optimization_level=0"
    ).strip()
    os.environ.update(
        JAX_PLATFORMS="cpu",
        TF_CPP_MIN_LOG_LEVEL="3",
        JAX_COMPILATION_CACHE_DIR=os.path.join(tempfile.gettempdir(), "htaf-mutation-xla-cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )  # no size limit: with one, every write scans the whole cache under a file lock
    OUT.mkdir(parents=True, exist_ok=True)
    store = OUT / "mutants.json"
    results = json.loads(store.read_text()) if store.exists() else {}

    for name in args.modules:
        rel, tests = MODULES[name]
        tests = [t for t in tests if (ROOT / t).exists()]
        path = ROOT / rel
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        previous = results.get(name, {})
        if previous.get("digest") != digest:
            previous = {}
        mutants = generate(name, path)
        t0 = time.time()
        callmap = CallMap([path])
        rc = run_pytest(tests, [callmap])
        if rc != 0:
            sys.exit(f"{name}: the unmutated tests fail ({callmap.failed}); fix them first")
        speed = callmap.seconds
        swapper = Swapper(path)
        outcome = dict(previous.get("mutants", {}))
        for i, m in enumerate(mutants):
            if m.key in outcome and (not args.survivors or outcome[m.key]["status"] != "survived"):
                continue
            if m.scope:
                covering = callmap.calls.get((str(path),) + m.scope[-1], set())
            else:
                covering = {t for ts in callmap.calls.values() for t in ts}
            covering = sorted(covering, key=lambda t: speed.get(t, 0.0))
            t1 = time.time()
            if not covering:  # perhaps called at import time: every test file then
                rc = run_subprocess(m, path, tests)
                status = "survived" if rc == 0 else "killed"
                note = "no test calls it in a test: its test files in a subprocess"
            elif m.scope:
                try:
                    with swapper.installed(m):
                        rc = run_pytest(covering)
                    note = f"{len(covering)} tests in-process"
                except (ValueError, LookupError) as e:  # a body that cannot be swapped
                    rc = run_subprocess(m, path, covering)
                    note = f"{len(covering)} tests in a subprocess ({e})"
                status = "survived" if rc == 0 else "killed"
            else:
                rc = run_subprocess(m, path, sorted({t.split("::")[0] for t in covering}))
                status = "survived" if rc == 0 else "killed"
                note = "module level: a subprocess"
            outcome[m.key] = {
                "status": status,
                "line": m.line,
                "kind": m.kind,
                "old": m.old,
                "new": m.new,
                "rc": rc,
                "note": note,
                "seconds": round(time.time() - t1, 1),
            }
            print(
                f"{name} {i + 1}/{len(mutants)} line {m.line} {m.kind}: {status} "
                f"({time.time() - t1:.1f} s)",
                flush=True,
            )
            results[name] = {"digest": digest, "tests": tests, "mutants": outcome}
            store.write_text(json.dumps(results, indent=1, ensure_ascii=False))
        live = {m.key for m in mutants}
        outcome = {k: v for k, v in outcome.items() if k in live}
        results[name] = {
            "digest": digest,
            "tests": tests,
            "mutants": outcome,
            "seconds": round(time.time() - t0),
        }
        store.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    write_report(results, " ".join(sys.argv[1:]))


def write_report(results: dict, argv: str):
    lines = [
        "# Mutation testing of the core modules",
        "",
        "Written by `python tests/mutation.py` (see its docstring for the operators and how "
        "mutants run); this run's arguments: `" + (argv or "(none)") + "`. Raw results: "
        "`mutants.json`.",
        "",
        "| module | tests | mutants | killed | survived | score |",
        "|---|---|---|---|---|---|",
    ]
    total = killed = 0
    for name in MODULES:
        if name not in results:
            continue
        r = results[name]
        outs = list(r["mutants"].values())
        k = sum(o["status"] == "killed" for o in outs)
        total, killed = total + len(outs), killed + k
        tests = ", ".join(Path(t).name for t in r["tests"])
        lines.append(
            f"| {MODULES[name][0]} | {tests} | {len(outs)} | {k} | {len(outs) - k} | "
            f"{100 * k / max(len(outs), 1):.1f}% |"
        )
    lines.append(
        f"| **all** | | {total} | {killed} | {total - killed} | "
        f"**{100 * killed / max(total, 1):.1f}%** |"
    )
    lines += ["", "## Survivors", ""]
    for name in MODULES:
        for o in (results.get(name, {}).get("mutants", {})).values():
            if o["status"] == "survived":
                lines.append(
                    f"- `{MODULES[name][0]}:{o['line']}` {o['kind']}: "
                    f"`{o['old']}` → `{o['new'] or '(removed)'}` ({o['note']})"
                )
    (OUT / "mutation.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
