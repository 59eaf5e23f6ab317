"""The sharpness studies (issue 37): every smooth-backward unit at matched peak slope k,
each unit's hyperparameters from its registry entry's peak-slope formula
(``htaf_jax.units.peak_slope_hparams``), and the finding computed from the table's rows:
how far each unit's accuracy falls from its best as k grows, HTAF against the others.

fast_sigmoid (snnTorch's 1/(1 + slope·|x|)²) has peak slope 1 whatever its slope, so it
has one point, k = 1, at slope 2: the slope at which its gradient integrates to 1, as every
other unit's does (its smooth form then runs from 0 to 1). Its tail decays like 1/x², as
atan's does, so atan's curve is the sharpening of that tail class. The triangle's
γ·max(0, 1 − |x|) (Bellec et al.'s form) reaches k by its height γ at a fixed width, so its
curve changes the gradient's scale, not its reach. htaf_a and htaf_b at k = 1 are the same
unit (α = 4, β = 1), trained once for each curve.
"""

from __future__ import annotations

import math

from experiments.study import Point
from htaf_jax.units import peak_slope_hparams

SLOPES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
# HTAF twice: α solved at β = 1 (htaf_a), β solved at α = 4 (htaf_b); both are α=4, β=1 at k=1.
HTAF_CURVES = {"htaf_a": {"beta": 1.0}, "htaf_b": {"alpha": 4.0}}
UNITS = ("sigmoid", "atan", "erf", "triangle", "rectangle", "piecewise_exp")
FAST_SIGMOID = {"slope": 2.0}  # at k = 1 only: peak 1, gradient mass 1
WITHIN = 1.0  # pts: the slope range where a unit stays within this of its best mean
FIXED_WIDTH = ("triangle",)  # k sets its height only (module docstring)


def matched(curve: str, unit: str, k: float, **fixed: float) -> Point:
    """``unit`` at peak slope ``k`` (the ``curve`` line of the plot; ``fixed`` hparams)."""
    return Point(
        f"{curve}-k{k:g}",
        {"surrogate": curve, "peak_slope": k},
        {
            "model.surrogate": unit,
            "model.surrogate_kwargs": {unit: peak_slope_hparams(unit, k, **fixed)},
        },
    )


def points() -> tuple:
    """Every unit at every slope; fast_sigmoid at k = 1 (module docstring)."""
    return (
        *(matched(c, "htaf", k, **fixed) for c, fixed in HTAF_CURVES.items() for k in SLOPES),
        *(matched(u, u, k) for u in UNITS for k in SLOPES),
        matched("fast_sigmoid", "fast_sigmoid", 1.0, **FAST_SIGMOID),
    )


def _curves(rows: list[dict]) -> dict[str, dict[float, dict]]:
    """unit -> {k: row}, for the rows with an accuracy."""
    out: dict = {}
    for r in rows:
        if r["accuracy"]["mean"] is not None:
            out.setdefault(r["surrogate"], {})[r["peak_slope"]] = r
    return out


def _summary(curve: dict[float, dict], sharpest: float) -> dict:
    acc = {k: r["accuracy"]["mean"] for k, r in curve.items()}
    best_k = max(acc, key=lambda k: acc[k])
    at = curve.get(sharpest)
    return {
        "best_k": best_k,
        "best": acc[best_k],
        "best_std": curve[best_k]["accuracy"]["std"],
        "within": sorted(k for k, a in acc.items() if a >= acc[best_k] - WITHIN),
        "at": None if at is None else at["accuracy"]["mean"],
        "at_std": None if at is None else at["accuracy"]["std"],
        "drop": None if at is None else acc[best_k] - at["accuracy"]["mean"],
        "dead": None if at is None else (at.get("dead_share") or {}).get("mean"),
    }


def _ks(ks: list[float], all_ks: list[float]) -> str:
    """'0.5–8' for a run of consecutive slopes, else the list."""
    i = [all_ks.index(k) for k in ks]
    if len(ks) > 1 and i == list(range(i[0], i[-1] + 1)):
        return f"{ks[0]:g}–{ks[-1]:g}"
    return ", ".join(f"{k:g}" for k in ks)


def finding(rows: list[dict]) -> list[str]:
    """Per unit: its best mean accuracy, the slopes within ``WITHIN`` pts of it, its accuracy
    and dead-gradient share at the sharpest slope and the drop from its best to there (the
    flatness of its curve); then each HTAF curve against the flattest other unit's."""
    curves = _curves(rows)
    all_ks = sorted({k for c in curves.values() for k in c})
    if not all_ks:
        return []
    sharpest = all_ks[-1]
    sums = {u: _summary(c, sharpest) for u, c in curves.items()}
    out = []
    for u, s in sums.items():
        g0 = [
            (k, (curves[u][k].get("grad_norms_init[0]") or {}).get("mean"))
            for k in sorted(curves[u])
        ]
        g0 = [(k, g) for k, g in g0 if g is not None]
        line = f"- {u}: best {s['best']:.2f} % at k={s['best_k']:g}"
        if len(curves[u]) == 1:
            line += " (its only slope)"
        else:
            line += f"; within {WITHIN:g} pt of it at k = {_ks(s['within'], all_ks)}"
        if s["drop"] is not None and len(curves[u]) > 1:
            line += (
                f"; at k={sharpest:g}: {s['at']:.2f} ± {s['at_std']:.2f} %, "
                f"{s['drop']:.2f} pts below its best"
            )
            if s["dead"] is not None:
                line += f", dead-gradient share {s['dead']:.1f} %"
        if len(g0) > 1:
            line += f"; ‖g_0‖ at init {g0[0][1]:.2e} (k={g0[0][0]:g}) → {g0[-1][1]:.2e} (k={g0[-1][0]:g})"
        out.append(line + ".")
    single = sorted(u for u in curves if len(curves[u]) == 1)
    if single:
        why = " (fast_sigmoid: peak slope 1 whatever its slope; shown at slope 2, gradient mass 1)"
        out.append(
            f"- {', '.join(single)}: one slope only, not in the comparison below"
            + (why if "fast_sigmoid" in single else "")
            + "."
        )
    out += _verdict(curves, sums, sharpest)
    return out


def _verdict(curves: dict, sums: dict, sharpest: float) -> list[str]:
    """Each HTAF curve's drop from its best to the sharpest slope against the flattest other
    unit's: among every other unit, then among those whose reach narrows as k grows."""
    full = {u: s for u, s in sums.items() if s["drop"] is not None and len(curves[u]) > 1}
    others = {u: s for u, s in full.items() if not u.startswith("htaf")}
    narrowing = {u: s for u, s in others.items() if u not in FIXED_WIDTH}
    out = []
    for h in sorted(u for u in full if u.startswith("htaf")):
        if not others:
            break
        line = f"- {h}: drops {full[h]['drop']:.2f} pts from its best to k={sharpest:g}. "
        line += "Against every other unit: " + _against(h, full[h], others, curves)
        fixed = sorted(set(others) - set(narrowing))
        if fixed and narrowing:
            line += (
                f" Against the units whose reach narrows as k grows (not {', '.join(fixed)}: "
                "a height at a fixed width): " + _against(h, full[h], narrowing, curves)
            )
        out.append(line)
    return out


def _against(h: str, own: dict, others: dict, curves: dict) -> str:
    """HTAF curve ``h``'s drop against the flattest of ``others``, and whether the
    difference is beyond the seeds' spread."""
    flattest = min(others, key=lambda u: others[u]["drop"])
    d, o = own["drop"], others[flattest]["drop"]
    beaten = sum(d < s["drop"] for s in others.values())
    verdict = f"flatter, by {o - d:.2f} pts" if d < o else f"not flatter: {d - o:.2f} pts more drop"
    seeds = min(len(r["seeds"]) for u in (h, flattest) for r in curves[u].values())
    if seeds < 2:
        spread = "one seed so far: no seed spread to compare with"
    else:  # the root sum of squares of the two units' seed std at their best and at k_max
        noise = math.sqrt(
            sum(
                (x or 0.0) ** 2
                for s in (own, others[flattest])
                for x in (s["best_std"], s["at_std"])
            )
        )
        spread = (
            f"the difference is {'within' if abs(d - o) <= noise else 'beyond'} the seeds' "
            f"spread, {noise:.2f} pts"
        )
    return (
        f"the flattest, {flattest}, drops {o:.2f} pts; {h} is {verdict} (flatter than "
        f"{beaten} of the {len(others)}; {spread})."
    )
