"""Tables (markdown + JSON) and plots for ``experiments.sweep``.

``write(stem, meta, records)`` groups the per-run records by surrogate (and
depth, or α/β), writes ``stem.md``, ``stem.json`` and ``stem.png``; it is
called after every finished run, so the files always show what is done.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict

from experiments import runs

BUDGET_FIELDS = ("num_epochs", "num_train_steps", "batch_size", "learning_rate", "optimizer",
                 "schedule", "train_subset", "test_subset", "validation_size")


def budget(config) -> dict:
    """The fields that set a run's budget and data, plus the model config."""
    out = {k: config.get(k) for k in BUDGET_FIELDS}
    out["model"] = config.model.to_dict()
    return out


def changes(config, default) -> dict:
    """{dotted field: [value here, default value]} for every field that differs."""
    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
        return out
    here, there = flat(config.to_dict()), flat(default.to_dict())
    return {k: [here.get(k), there.get(k)] for k in sorted(set(here) | set(there))
            if here.get(k) != there.get(k)}


def _group(records: list[dict]) -> dict:
    groups: dict = defaultdict(list)
    for r in records:
        groups[(r["surrogate"], r["depth"], r["alpha"], r["beta"])].append(r)
    return groups


def rows(records: list[dict]) -> list[dict]:
    """One row per (surrogate, depth, α, β): accuracy mean ± std (in %) over seeds."""
    out = []
    for (surrogate, depth, alpha, beta), group in _group(records).items():
        acc_mean, acc_std, acc_text = runs.mean_std([r["accuracy"] for r in group], 100)
        sec_mean, _, _ = runs.mean_std([r["seconds"] for r in group])
        row = {"surrogate": surrogate, "depth": depth, "alpha": alpha, "beta": beta,
               "split": group[0]["split"], "mode": group[0].get("mode"),
               "note": group[0].get("note", ""), "seeds": [r["seed"] for r in group],
               "accuracy": {"mean": acc_mean, "std": acc_std, "text": acc_text},
               "accuracy_per_seed": [r["accuracy"] for r in group],
               "train_seconds_mean": sec_mean}
        if "grad_norms_init" in group[0]:
            for when in ("init", "end"):
                norms = [r[f"grad_norms_{when}"] for r in group]
                row[f"grad_norms_{when}"] = [sum(n[l] for n in norms) / len(norms)
                                             for l in range(len(norms[0]))]
        out.append(row)
    return out


def _unfinished(meta: dict, table_rows: list[dict]) -> str:
    """A warning when the sweep is unfinished: fewer runs than planned (whole rows may be
    missing) or some row lacking some requested seed."""
    requested = meta.get("seeds_requested", meta["seeds"])
    short = [r for r in table_rows if len(r["seeds"]) < len(requested)]
    planned = meta.get("runs_planned")
    done = sum(len(r["seeds"]) for r in table_rows)
    if not short and (planned is None or done >= planned):
        return ""
    parts = []
    if planned is not None and done < planned:
        parts.append(runs.unfinished_runs(done, planned))
    if short:
        parts.append(f"seeds {','.join(map(str, requested))} were asked for and "
                     f"{len(short)} row(s) have fewer")
    return f" **Unfinished:** {'; '.join(parts)}; rerunning the command trains only the missing runs."


def _fmt(x: float) -> str:
    return f"{x:.2e}"


def markdown(meta: dict, table_rows: list[dict]) -> str:
    kind, split = meta["kind"], table_rows[0]["split"] if table_rows else "test"
    b = meta["budget"]
    lines = [f"# {meta['family']}: {'HTAF α/β on a validation split' if kind == 'alpha_beta' else 'HTAF vs registry surrogates'}"
             + (" against depth" if kind == "depths" else ""), "",
             f"Command: `{meta['command']}`  ", f"Machine: {meta['machine']}  ",
             f"Date: {meta['date']}  ",
             f"Budget (every run): num_epochs={b['num_epochs']}, num_train_steps="
             f"{b['num_train_steps']}, batch_size={b['batch_size']}, lr={b['learning_rate']} "
             f"({b['optimizer']}, {b['schedule']}), train_subset={b['train_subset']}, "
             f"test_subset={b['test_subset']}, validation_size={b['validation_size']}  ",
             "Changed from the family's default config (value here ← default): "
             + (", ".join(f"{k}={v[0]} ← {v[1]}" for k, v in meta["changed_from_default"].items())
                or "nothing") + "  ",
             f"Accuracy: {split} accuracy in %, mean ± std over seeds "
             f"{','.join(map(str, meta['seeds']))} (std: sample std, 0 for one seed)."
             + _unfinished(meta, table_rows), ""]
    if kind == "depths":
        lines += ["‖g_l‖: gradient norm of hidden layer l's weights on a fixed batch of 1024 "
                  "training images (layer 0 = first, farthest from the loss; L−1 = last hidden "
                  "layer), at initialisation and after training.", "",
                  "| surrogate | depth | mode | acc % | ‖g_0‖ init | ‖g_L−1‖ init | ‖g_0‖ end "
                  "| ‖g_L−1‖ end | train s | note |", "|---" * 10 + "|"]
        for r in sorted(table_rows, key=lambda r: (r["surrogate"] != "htaf", r["surrogate"],
                                                   r["depth"])):
            gi, ge = r["grad_norms_init"], r["grad_norms_end"]
            lines.append(f"| {r['surrogate']} | {r['depth']} | {r['mode']} | "
                         f"{r['accuracy']['text']} | {_fmt(gi[0])} | {_fmt(gi[-1])} | "
                         f"{_fmt(ge[0])} | {_fmt(ge[-1])} | {r['train_seconds_mean']:.0f} | "
                         f"{r['note']} |")
    elif kind == "alpha_beta":
        lines += ["| α | β | peak slope αβ/4 | acc % | train s |", "|---" * 5 + "|"]
        for r in sorted(table_rows, key=lambda r: (r["alpha"], r["beta"])):
            lines.append(f"| {r['alpha']:g} | {r['beta']:g} | {r['alpha'] * r['beta'] / 4:g} | "
                         f"{r['accuracy']['text']} | {r['train_seconds_mean']:.0f} |")
        top = max(r["accuracy"]["mean"] for r in table_rows)
        best = [r for r in table_rows if r["accuracy"]["mean"] == top]
        lines += ["", "Best: " + ", ".join(f"α={r['alpha']:g}, β={r['beta']:g}" for r in best)
                  + f" ({best[0]['accuracy']['text']} %)" + (" (tied)." if len(best) > 1 else ".")]
    else:
        lines += ["| surrogate | mode | acc % | per seed | train s | note |", "|---" * 6 + "|"]
        for r in sorted(table_rows, key=lambda r: -r["accuracy"]["mean"]):
            per_seed = ", ".join(f"{100 * a:.2f}" for a in r["accuracy_per_seed"])
            lines.append(f"| {r['surrogate']} | {r['mode'] or '—'} | {r['accuracy']['text']} | "
                         f"{per_seed} | {r['train_seconds_mean']:.0f} | {r['note']} |")
    lines += ["", f"Plot: `{os.path.basename(meta['stem'])}.png`, written by the same command."]
    return "\n".join(lines) + "\n"


def plot(path: str, meta: dict, table_rows: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    kind = meta["kind"]
    title = f"{meta['family']} ({meta['date']}; {meta['command'][:90]})"
    if kind == "depths":
        fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
        by_s: dict = defaultdict(list)
        deepest = max(r["depth"] for r in table_rows)
        for r in table_rows:
            by_s[r["surrogate"]].append(r)
        for s, rs in sorted(by_s.items()):
            rs = sorted(rs, key=lambda r: r["depth"])
            d = [r["depth"] for r in rs]
            style = dict(marker="o", lw=2.5 if s == "htaf" else 1.2, label=s)
            axes[0].errorbar(d, [r["accuracy"]["mean"] for r in rs],
                             yerr=[r["accuracy"]["std"] for r in rs], capsize=3, **style)
            axes[1].plot(d, [r["grad_norms_init"][0] for r in rs], **style)
            axes[2].plot(d, [r["grad_norms_end"][0] for r in rs], **style)
            for deep in (r for r in rs if r["depth"] == deepest):  # none while in progress
                line, = axes[3].plot(range(deepest), deep["grad_norms_end"], **style)
                axes[3].plot(range(deepest), deep["grad_norms_init"], ls="--",
                             color=line.get_color(), lw=1)
        axes[0].set(xlabel="depth", ylabel=f"{table_rows[0]['split']} accuracy %",
                    xscale="log", title="accuracy vs depth")
        for ax, when in ((axes[1], "initialisation"), (axes[2], "end of training")):
            ax.set(xlabel="depth", ylabel="‖∂L/∂W_0‖ (first hidden layer)", xscale="log",
                   yscale="log", title=f"first-layer gradient norm, {when}")
        axes[3].set(xlabel="hidden layer l", ylabel="‖∂L/∂W_l‖", yscale="log",
                    title=f"per-layer gradient norm, depth {deepest} (dashed: init)")
        for ax in axes[:3]:
            ax.set_xticks(sorted({r["depth"] for r in table_rows}))
            ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.get_xaxis().set_minor_formatter(matplotlib.ticker.NullFormatter())
        axes[0].legend(fontsize=7)
    elif kind == "alpha_beta":
        import numpy as np
        alphas = sorted({r["alpha"] for r in table_rows})
        betas = sorted({r["beta"] for r in table_rows})
        grid = np.full((len(alphas), len(betas)), np.nan)
        for r in table_rows:
            grid[alphas.index(r["alpha"]), betas.index(r["beta"])] = r["accuracy"]["mean"]
        fig, ax = plt.subplots(figsize=(5 + len(betas), 4))
        im = ax.imshow(grid, cmap="viridis", aspect="auto")
        for i in range(len(alphas)):
            for j in range(len(betas)):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="w")
        ax.set(xticks=range(len(betas)), xticklabels=[f"{b:g}" for b in betas],
               yticks=range(len(alphas)), yticklabels=[f"{a:g}" for a in alphas],
               xlabel="β", ylabel="α")
        fig.colorbar(im, label="validation accuracy %")
    else:
        rs = sorted(table_rows, key=lambda r: -r["accuracy"]["mean"])
        fig, ax = plt.subplots(figsize=(1 + 0.7 * len(rs), 4))
        ax.bar(range(len(rs)), [r["accuracy"]["mean"] for r in rs],
               yerr=[r["accuracy"]["std"] for r in rs], capsize=3,
               color=["C3" if r["surrogate"] == "htaf" else "C0" for r in rs])
        ax.set_xticks(range(len(rs)), [r["surrogate"] for r in rs], rotation=45, ha="right")
        low = min(r["accuracy"]["mean"] for r in rs)
        ax.set_ylim(max(0, low - 5), None)
        ax.set_ylabel(f"{table_rows[0]['split']} accuracy % (mean ± std)")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(stem: str, meta: dict, records: list[dict]) -> None:
    """Writes stem.md, stem.json and stem.png from the records so far."""
    os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
    # While a sweep runs (or after it was stopped) only some seeds have finished:
    # the tables name those, and the seeds the command asked for.
    finished = sorted({r["seed"] for r in records}, key=list(meta["seeds"]).index)
    meta = {**meta, "stem": stem, "seeds": finished, "seeds_requested": list(meta["seeds"])}
    table_rows = rows(records)
    with open(stem + ".md", "w") as f:
        f.write(markdown(meta, table_rows))
    with open(stem + ".json", "w") as f:
        json.dump({**{k: v for k, v in meta.items() if k != "stem"}, "rows": table_rows,
                   "runs": records}, f, indent=2)
    plot(stem + ".png", meta, table_rows)
