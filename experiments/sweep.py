r"""HTAF against every registry surrogate, same config and budget: a resumable sweep.

    python -m experiments.sweep --family snn_mlp --seeds 0,1,2 --surrogates all \
        --out results/snn_mlp [--config.num_epochs=2 ...]
    python -m experiments.sweep --family dhn_mlp --depths 2,4,8,16 --seeds 0 \
        --surrogates htaf,atan,sigmoid --out results/dhn_mlp
    python -m experiments.sweep --family dhn_mlp --alphas 2,4,8,16 --betas 0.5,1,2 \
        --seeds 0 --out results/alpha_beta

Families: snn_mlp, snn_conv, bnn_mlp, bnn_conv, dhn_mlp (their configs in
experiments/configs/). Only ``config.model.surrogate`` changes between runs;
HTAF keeps the config's α, β and every other entry runs with its registry
defaults. An entry with no smooth forward (straight_through) cannot train in
DHN ``mode=smooth``: it trains in hard mode instead, and the table says so.

Every run has its own work dir ``OUT/runs/<label>-s<seed>-<hash>`` (see
experiments/runs.py): finished runs are reused, so rerunning the command
only trains what is missing (``--report_only`` trains nothing and writes the
table from the runs already finished). Writes ``OUT/<family>_<kind>.md``,
``.json`` and ``.png`` (kind: surrogates, depths or alpha_beta), naming the
command, machine and date. With ``--depths`` (DHN) every run also records per-layer
gradient norms ‖∂L/∂W_l‖ (hidden layer l's weights, cross-entropy on a fixed
batch of the first 1024 training images, train-mode forward) at
initialisation and after training. The α/β sweep evaluates on a validation
split (``config.validation_size``, default 10000 held-out training images).
"""
from __future__ import annotations

import datetime
import functools
import os
import sys

import ml_collections
from absl import flags
from ml_collections import config_flags

from experiments import runs
from experiments import sweep_report

FAMILIES = {name: f"experiments/configs/{name}.py"
            for name in ("snn_mlp", "snn_conv", "bnn_mlp", "bnn_conv", "dhn_mlp")}
GRAD_BATCH = 1024


def family_of(argv: list[str]) -> str:
    """The ``--family`` value from argv, checked against FAMILIES."""
    for i, arg in enumerate(argv):
        if arg.startswith("--family="):
            name = arg.split("=", 1)[1]
            break
        if arg == "--family" and i + 1 < len(argv):
            name = argv[i + 1]
            break
    else:
        raise ValueError(f"--family is required; valid families: {', '.join(FAMILIES)}")
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; valid families: {', '.join(FAMILIES)}")
    return name


def surrogate_names(spec: list[str]) -> list[str]:
    """``["all"]`` → every registry entry (HTAF first); otherwise the names, checked."""
    from htaf_jax.surrogates import list_surrogates
    known = list_surrogates()
    if spec == ["all"]:
        return ["htaf"] + [n for n in known if n != "htaf"]
    unknown = [n for n in spec if n not in known]
    if unknown:
        raise ValueError(f"unknown surrogate(s) {', '.join(map(repr, unknown))}; "
                         f"valid: all, {', '.join(known)}")
    return list(spec)


def run_config(base, surrogate: str, seed: int, depth: int | None = None,
               alpha: float | None = None, beta: float | None = None):
    """(config, note) for one run: ``base`` with the surrogate, seed (and depth, α, β) set."""
    from htaf_jax.surrogates import get_surrogate
    config = ml_collections.ConfigDict(base.to_dict())
    config.seed = seed
    model = config.model
    kwargs = model.get("surrogate_kwargs", None)
    kwargs = kwargs.to_dict() if kwargs is not None else {}
    per_name = any(isinstance(v, dict) for v in kwargs.values())
    if alpha is not None:
        kwargs = {"htaf": {**(kwargs.get("htaf", {}) if per_name else {}),
                           "alpha": float(alpha), "beta": float(beta)}}
    elif not per_name and surrogate != model.get("surrogate", "htaf"):
        kwargs = {}  # flat kwargs belong to the config's own surrogate
    model.surrogate = surrogate
    model.surrogate_kwargs = ml_collections.ConfigDict(kwargs)
    if depth is not None:
        model.depth = depth
    note = ""
    if model.get("mode", None) == "smooth" and not get_surrogate(surrogate).has_smooth:
        model.mode, note = "hard", "no smooth form: trained in hard mode"
    return config, note


@functools.lru_cache(maxsize=2)
def _grad_batch(dataset, data_dir, train_subset, validation_size):
    from htaf_jax.data import load_splits
    splits = load_splits(dataset, data_dir, train_subset=train_subset,
                         validation_size=validation_size)
    images = splits.normalizer(splits.train.images[:GRAD_BATCH])
    return images, splits.train.labels[:GRAD_BATCH].astype("int32"), splits.num_classes


def layer_grad_norms(config, params=None, batch_stats=None) -> list[float]:
    """‖∂L/∂(layer l's parameters)‖₂ for each hidden layer ``layer{l}``.

    L: mean cross-entropy of a train-mode forward on the first 1024 training
    images (fixed across runs). ``params=None``: the engine's initialisation
    for ``config.seed`` (same key split as htaf_jax.train.loop).
    """
    import jax
    import optax
    from htaf_jax.models import build_model
    from htaf_jax.train import step as step_lib
    from htaf_jax.train.config import prepare_config
    config = prepare_config(config)
    images, labels, num_classes = _grad_batch(config.dataset, config.get("data_dir"),
                                              config.train_subset, config.validation_size)
    config.model.num_classes = num_classes
    model = build_model(config.model)
    if params is None:
        init_rng = jax.random.split(jax.random.key(config.seed), 3)[0]
        state = step_lib.init_state(model, optax.identity(), init_rng, images.shape[1:])
        params, batch_stats = state.params, state.batch_stats
    rngs = {"dropout": jax.random.key(0), "sample": jax.random.key(1)}

    def loss(p):
        variables = {"params": p, "batch_stats": batch_stats} if batch_stats else {"params": p}
        logits, _ = model.apply(variables, images, train=True, rngs=rngs,
                                mutable=["batch_stats", "intermediates"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    grads = jax.grad(loss)(params)
    layers = sorted((k for k in grads if k.startswith("layer")), key=lambda k: int(k[5:]))
    return [float(optax.tree.norm(grads[k])) for k in layers]


def _measure(with_grads: bool):
    def measure(config, result, seconds: float) -> dict:
        record = runs.default_record(config, result, seconds)
        record["mode"] = config.model.get("mode", None)
        if with_grads:
            record["grad_norms_init"] = layer_grad_norms(config)
            record["grad_norms_end"] = layer_grad_norms(config, result.params,
                                                        result.batch_stats)
        return record
    return measure


def _default_config(family: str):
    import importlib
    return importlib.import_module(f"experiments.configs.{family}").get_config()


def _parse(argv: list[str]):
    from htaf_jax.train import cli
    try:
        family = family_of(argv)
    except ValueError:
        if not cli.help_requested(["sweep"] + list(argv)):
            raise
        print(__doc__.strip() + "\n\nAdd --family NAME --help for the flags and that family's config.")
        sys.exit(0)
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", FAMILIES[family], "Base config of the family.",
                                    flag_values=values, lock_config=False,
                                    sys_argv=["sweep"] + list(argv))
    flags.DEFINE_string("family", None, f"One of {', '.join(FAMILIES)}.", flag_values=values)
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.", flag_values=values)
    flags.DEFINE_list("surrogates", ["all"], "'all' or registry names.", flag_values=values)
    flags.DEFINE_list("depths", [], "DHN depths (dhn_mlp only).", flag_values=values)
    flags.DEFINE_list("alphas", [], "HTAF α grid (with --betas): α/β sweep.", flag_values=values)
    flags.DEFINE_list("betas", [], "HTAF β grid (with --alphas).", flag_values=values)
    flags.DEFINE_string("out", None, "Output folder (default results/<family>, "
                        "results/alpha_beta for the α/β sweep).", flag_values=values)
    flags.DEFINE_bool("report_only", False, "Train nothing: write the table and plot from the "
                      "runs already finished (the table says how many of the planned runs "
                      "that is).", flag_values=values)
    cli.exit_with_help_if_asked(values, ["sweep"] + list(argv), __doc__)
    values(["sweep"] + list(argv))
    if not os.path.exists(str(cli._resolve(FAMILIES[family]))):
        raise FileNotFoundError(FAMILIES[family])
    if values.depths and "depth" not in values.config.model:
        raise ValueError(f"--depths needs a family with a model depth field "
                         f"(dhn_mlp); {family} has none")
    if bool(values.alphas) != bool(values.betas):
        raise ValueError("--alphas and --betas go together")
    return family, values


def plan(argv: list[str]) -> dict:
    """What ``sweep argv`` would run, training nothing: family, kind, out, base config,
    seeds, and one entry per run (grid point, seed, config, note, work dir)."""
    family, values = _parse(argv)
    base, seeds = values.config, [int(s) for s in values.seeds]
    if values.alphas:
        kind, out = "alpha_beta", values.out or "results/alpha_beta"
        if base.validation_size <= 0:
            base.validation_size = 10000
        grid = [("htaf", None, float(a), float(b)) for a in values.alphas for b in values.betas]
    elif values.depths:
        kind, out = "depths", values.out or f"results/{family}"
        grid = [(s, int(d), None, None) for s in surrogate_names(values.surrogates)
                for d in values.depths]
    else:
        kind, out = "surrogates", values.out or f"results/{family}"
        grid = [(s, None, None, None) for s in surrogate_names(values.surrogates)]
    planned = []
    for surrogate, depth, alpha, beta in grid:
        for seed in seeds:
            config, note = run_config(base, surrogate, seed, depth, alpha, beta)
            label = surrogate + (f"-d{depth}" if depth else "") + \
                (f"-a{alpha:g}-b{beta:g}" if alpha is not None else "")
            planned.append({"surrogate": surrogate, "depth": depth, "alpha": alpha,
                            "beta": beta, "seed": seed, "note": note, "config": config,
                            "workdir": runs.run_dir(out, label, seed, config)})
    return {"family": family, "kind": kind, "out": out, "base": base, "seeds": seeds,
            "runs": planned, "report_only": values.report_only,
            "config_file": values["config"].config_filename}


def main(argv: list[str]) -> int:
    p = plan(argv)
    family, kind, out, base = p["family"], p["kind"], p["out"], p["base"]
    command = "python -m experiments.sweep " + " ".join(runs.without_report_only(argv))
    measure = _measure(with_grads=kind == "depths")
    stem = os.path.join(out, f"{family}_{kind}")
    meta = {"family": family, "kind": kind, "command": command, "machine": runs.machine(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "seeds": p["seeds"], "budget": sweep_report.budget(base),
            "changed_from_default": sweep_report.changes(base, _default_config(family)),
            "runs_planned": len(p["runs"])}
    todo = runs.to_run(p, "sweep")
    if not todo:
        return 0
    records: list[dict] = []
    for run in todo:
        workdir = run["workdir"]
        print(f"[sweep] {os.path.basename(workdir)}", flush=True)
        record = runs.train_or_reuse(run["config"], workdir, measure, command=runs.run_command(
            run["config"], workdir, p["config_file"]))
        records.append({**{k: run[k] for k in ("surrogate", "depth", "alpha", "beta", "seed",
                                                "note")},
                        "workdir": os.path.relpath(workdir, out), **record})
        sweep_report.write(stem, meta, records)
    print(open(stem + ".md").read())
    print(f"written: {stem}.md, {stem}.json, {stem}.png")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (ValueError, flags.Error) as e:
        print(f"sweep: error: {e}", file=sys.stderr)
        sys.exit(2)
