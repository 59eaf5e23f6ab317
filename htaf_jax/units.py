"""The unit registry: HTAF, the surrogate gradients peers ship, and Larq's quantizers.

A *unit* maps real values to a few levels and has a chosen backward rule (a
surrogate gradient, Larq's pseudo-gradient); every entry is built by the one
straight-through primitive, :func:`htaf_jax.functions.straight_through`.
``u = get_unit(name, **hparams)`` is a hashable callable (a Flax field; Spyx's
``activation=``, snnTorch's ``spike_grad=``): ``u(x)`` its one hard form,
``u.grad(x)`` the rule du/dx, ``u.smooth(x)`` a forward whose derivative is
``grad`` where one exists (``u.has_smooth``), ``u.bits``, ``u.citation``, and
``u.peak_slope`` (max grad; ``peak_slope_hparams`` inverts it).

Step units (``StepUnit``: HTAF, every surrogate, Larq's ±1 quantizers): u(x) =
H(x) ∈ {0, 1}, H(0) = 1, NaN propagates; ``u.sign(x)`` = 2H − 1 ∈ {−1, +1}
(sign(0) = +1, Larq's ``math.sign``), backward 2·grad. This module registers HTAF
and the surrogate gradients; ``htaf_jax._larq_units`` registers Larq's
quantizers in the same registry (``ste_sign``, ``approx_sign``, ``swish_sign``, and
the units with levels of their own: ``ste_heaviside``, ``magnitude_aware_sign``,
``ste_tern``, ``dorefa``).

>>> u = get_unit("atan", alpha=2.0)
>>> u, float(u.grad(0.0)), u.peak_slope   # peak α/2
(StepUnit('atan', alpha=2.0), 1.0, 1.0)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import typing
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import erf
from jax.typing import ArrayLike

from htaf_jax import functions as F

__all__ = [
    "StepUnit",
    "Unit",
    "UnitSpec",
    "bits_of",
    "get_unit",
    "list_units",
    "peak_slope_hparams",
    "register_unit",
    "resolve_unit",
]


@dataclasses.dataclass(frozen=True)
class UnitSpec:
    """A registry entry, as functions of (x, **hparams)."""

    name: str
    hard: Callable[..., Array]  # the forward, its backward the rule
    grad: Callable[..., Array] | None  # closed-form rule (None: pullback of hard)
    smooth: Callable[..., Array] | None
    defaults: tuple[tuple[str, Any], ...]
    bits: int | Callable[..., int] = 1
    citation: str = ""
    step: bool = False  # hard is H (H(0) = 1) with backward grad
    peak: Callable[..., float] | None = None  # max grad as a function of the hparams
    for_peak: Callable[..., dict] | None = None  # (k, **fixed) -> the hparams it solves


Fn = Callable[..., Array]
_REGISTRY: dict[str, UnitSpec] = {}
# Old names: configs of stored runs say "ste_hardtanh"; "htaf_sign"/"htaf_heaviside"
# were HTAF's two forms as quantizers (a binary layer takes the ±1 form itself).
_OLD_NAMES = {"ste_hardtanh": "ste_sign", "htaf_sign": "htaf", "htaf_heaviside": "htaf"}


def _float(x: ArrayLike) -> Array:
    x = jnp.asarray(x)
    F._compute_dtype(x)  # raises for integer inputs
    return x


@dataclasses.dataclass(frozen=True, eq=False)
class Unit:
    """A registry entry bound to hyperparameters: Python scalars (or None; then it is
    hashable and compares by value, a Flax field or static argument) or arrays,
    possibly traced, which get their true cotangents through ``smooth``."""

    spec: UnitSpec
    hparams: tuple[tuple[str, Any], ...]

    def _key(self):
        scalars = all(v is None or isinstance(v, (float, int, str, bool)) for _, v in self.hparams)
        return (self.spec, self.hparams) if scalars else id(self)

    __eq__ = lambda self, other: isinstance(other, Unit) and self._key() == other._key()  # noqa: E731  # pyright: ignore[reportAttributeAccessIssue]
    __hash__ = lambda self: hash(self._key())  # noqa: E731  # pyright: ignore[reportAttributeAccessIssue]

    name = property(lambda self: self.spec.name)
    kwargs = property(lambda self: dict(self.hparams))
    citation = property(lambda self: self.spec.citation)
    has_smooth = property(lambda self: self.spec.smooth is not None)

    @property
    def bits(self) -> int:
        """Bits a value of the hard form takes (Larq's ``precision``)."""
        b = self.spec.bits
        return int(b(**self.kwargs) if callable(b) else b)

    def __call__(self, x: ArrayLike) -> Array:
        return self.spec.hard(_float(x), **self.kwargs)

    def grad(self, x: ArrayLike) -> Array:
        """The backward rule du/dx (elementwise for every entry here)."""
        if self.spec.grad is not None:
            return F._wide(self.spec.grad, _float(x), self.kwargs)
        y, pullback = jax.vjp(self, _float(x))
        return pullback(jnp.ones_like(y))[0]

    def smooth(self, x: ArrayLike) -> Array:
        """Smooth forward whose derivative is ``grad``: ½ + ∫₀ˣ grad."""
        if self.spec.smooth is None:
            raise ValueError(f"unit {self.name!r} has no smooth form; use its hard one")
        return F._wide(self.spec.smooth, _float(x), self.kwargs)

    @property
    def peak_slope(self) -> float:
        """max grad over x (at x = 0 for every entry with one)."""
        if self.spec.peak is None:
            raise ValueError(f"unit {self.name!r} has no peak-slope formula")
        return float(self.spec.peak(**self.kwargs))

    def __repr__(self) -> str:
        args = "".join(
            f", {k}={v!r}" if not isinstance(v, jax.Array) else f", {k}=<array>"
            for k, v in self.hparams
        )
        return f"{type(self).__name__}({self.name!r}{args})"


class StepUnit(Unit):
    """A unit whose hard form is H(x) ∈ {0, 1} (H(0) = 1) with backward ``grad``
    (closed form), plus the signed form ``sign``. The spiking code's hand-written
    gradient applies to these (with float hyperparameters)."""

    def sign(self, x: ArrayLike) -> Array:
        """Forward sign(x) ∈ {−1, +1}, sign(0) = +1; backward 2·grad."""
        return 2.0 * self(x) - 1.0


def list_units() -> list[str]:
    """The registered units' names, sorted."""
    return sorted(_REGISTRY)


def _spec(name: str) -> UnitSpec:
    name = _OLD_NAMES.get(name, name)
    if name not in _REGISTRY:
        raise ValueError(f"unknown unit {name!r}; valid names: {', '.join(list_units())}")
    return _REGISTRY[name]


def register_unit(
    name: str,
    grad: Fn | None = None,
    *,
    hard: Fn | None = None,
    smooth: Fn | None = None,
    defaults: Mapping[str, Any] | None = None,
    bits: int | Callable[..., int] = 1,
    citation: str = "",
    peak: Callable[..., float] | None = None,
    for_peak: Callable[..., dict] | None = None,
    overwrite: bool = False,
) -> UnitSpec:
    """Adds a step unit from its rule ``grad(x, **hparams)``, or any unit from its
    forward ``hard(x, **hparams)`` built with ``functions.straight_through``.
    smooth' = grad; ``bits``: the output's bit width (or a function of the hparams);
    ``peak(**hparams)``: max grad, ``for_peak(k, **fixed)``: the hparams it solves."""
    if (name in _REGISTRY or name in _OLD_NAMES) and not overwrite:
        raise ValueError(f"unit {name!r} is already registered; pass overwrite=True")
    if grad is None and hard is None:
        raise ValueError(f"unit {name!r}: give its rule (grad=) or its forward (hard=)")
    step = hard is None
    if step:
        hard = functools.partial(F.straight_through, grad=grad)  # pyright: ignore[reportArgumentType]
    hparams = tuple(sorted((defaults or {}).items()))
    spec = UnitSpec(name, hard, grad, smooth, hparams, bits, citation, step, peak, for_peak)
    _REGISTRY[name] = spec
    return spec


def get_unit(name: str, **hparams: Any) -> Unit:
    """An entry with hyperparameters bound (missing ones take defaults). A Python
    number is validated (finite, > 0); an array, possibly traced, is bound as it is:

    >>> g = jax.grad(lambda a: get_unit("sigmoid", alpha=a).smooth(1.0))(4.0)
    """
    spec = _spec(name)
    name, values = spec.name, dict(spec.defaults)
    unknown = sorted(set(hparams) - set(values))
    if unknown:
        raise TypeError(
            f"unit {name!r} got unknown hyperparameter(s) {unknown}; "
            f"valid: {', '.join(values) or 'none'}"
        )
    for key, value in hparams.items():
        F.check_positive(f"{name}.{key}", value)
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        values[key] = float(value) if number and isinstance(values[key], float) else value
    return (StepUnit if spec.step else Unit)(spec, tuple(sorted(values.items())))


@typing.overload
def resolve_unit(spec: None, **hparams: Any) -> None: ...
@typing.overload
def resolve_unit(spec: str | Unit | Callable, **hparams: Any) -> Unit: ...
def resolve_unit(spec: Any, **hparams: Any) -> Unit | None:
    """None (no unit: real-valued), a registry name, a ``Unit`` (re-bound with
    ``hparams``), or a callable ``x -> levels`` with its own gradient: the hard form
    as it is (``bits``: its ``precision`` attribute, else 32)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        return get_unit(spec, **hparams)
    if isinstance(spec, Unit):
        return get_unit(spec.name, **{**spec.kwargs, **hparams}) if hparams else spec
    if callable(spec):
        if hparams:
            raise TypeError("hyperparameters cannot be bound to a plain callable unit")
        name, bits = getattr(spec, "__name__", repr(spec)), int(getattr(spec, "precision", 32))
        return Unit(UnitSpec(name, spec, None, None, (), bits), ())  # pyright: ignore[reportArgumentType]
    raise TypeError(
        f"a unit is a name ({', '.join(list_units())}), a Unit or a callable; "
        f"got {type(spec).__name__}"
    )


def bits_of(spec: Any) -> int:
    """Bit width of a unit's output: 32 for None (real-valued)."""
    owner = getattr(spec, "__self__", None)  # a unit's bound form, such as u.sign
    u = owner if isinstance(owner, Unit) else resolve_unit(spec)
    return 32 if u is None else u.bits


def peak_slope_hparams(name: str, k: float, **fixed: float) -> dict[str, float]:
    """The hyperparameters that give unit ``name`` the peak slope ``k`` (max grad),
    the others at their defaults or ``fixed``. HTAF (peak αβ/4) solves α at
    β = ``fixed.get("beta", 1)``, or β when ``alpha`` is fixed.

    >>> peak_slope_hparams("htaf", 2.0), peak_slope_hparams("htaf", 2.0, alpha=4.0)
    ({'alpha': 8.0, 'beta': 1.0}, {'alpha': 4.0, 'beta': 2.0})
    """
    spec = _spec(name)
    if spec.for_peak is None:
        raise ValueError(f"unit {name!r} has no peak-slope formula")
    F.check_positive("k", k)
    return {**dict(spec.defaults), **fixed, **spec.for_peak(float(k), **fixed)}


def _htaf_for_peak(k, alpha=None, beta=None):
    if alpha is not None and beta is not None:
        raise ValueError("htaf: fix alpha or beta, not both (the other one sets the peak)")
    return (
        {"beta": 4 * k / alpha}
        if alpha is not None
        else {"alpha": 4 * k / (F.DEFAULT_BETA if beta is None else beta)}
    )


def _fast_sigmoid_for_peak(k, **_):
    if k != 1.0:  # its slope sets the width
        raise ValueError("fast_sigmoid's peak slope is 1 whatever its slope; no other peak")
    return {}


# -------------------------------------------------------------------- step units --
_SQRT_PI = math.sqrt(math.pi)


def _peak_of(param: str, c: float, power: int = 1) -> dict:
    """peak = c·param^power, and its inverse, for ``register_unit``."""
    return {
        "peak": lambda **hp: c * hp[param] ** power,
        "for_peak": lambda k, **_: {param: (k / c) ** (1 / power)},
    }


def _smooth_abs(x, f):  # ½ + sign(x)·f(min(|x|, 1)), for a rule that is 0 for |x| ≥ 1
    return 0.5 + jnp.sign(x) * f(jnp.minimum(jnp.abs(x), 1.0))


register_unit(
    "htaf",
    lambda x, alpha, beta: F.htaf_grad(x, alpha, beta),
    smooth=lambda x, alpha, beta: F.htaf(x, alpha, beta),
    defaults={"alpha": F.DEFAULT_ALPHA, "beta": F.DEFAULT_BETA},
    peak=lambda alpha, beta: alpha * beta / 4,
    for_peak=_htaf_for_peak,
    citation="HTAF σ(α·tanh(βx)): Park et al., arXiv 2605.11558 (2026).",
)
register_unit(
    "sigmoid",
    lambda x, alpha: alpha * jax.nn.sigmoid(alpha * x) * jax.nn.sigmoid(-alpha * x),
    smooth=lambda x, alpha: jax.nn.sigmoid(alpha * x),
    defaults={"alpha": 4.0},
    **_peak_of("alpha", 1 / 4),
    citation="σ(αx): SpikingJelly surrogate.Sigmoid (alpha=4.0). snnTorch's surrogate.sigmoid "
    "is the same rule with slope=25: get_unit('sigmoid', alpha=25).",
)
register_unit(
    "atan",
    lambda x, alpha: (alpha / 2) / (1 + jnp.square(math.pi / 2 * alpha * x)),
    smooth=lambda x, alpha: 0.5 + jnp.arctan(math.pi / 2 * alpha * x) / math.pi,
    defaults={"alpha": 2.0},
    **_peak_of("alpha", 1 / 2),
    citation="arctan: Fang et al., ICCV 2021 (PLIF); SpikingJelly surrogate.ATan and "
    "snnTorch surrogate.atan, both alpha=2.0.",
)
register_unit(
    "fast_sigmoid",
    lambda x, slope: 1.0 / jnp.square(1 + slope * jnp.abs(x)),
    # The antiderivative of the rule runs over ±1/slope, not (0, 1).
    smooth=lambda x, slope: 0.5 + x / (1 + slope * jnp.abs(x)),
    defaults={"slope": 25.0},
    peak=lambda slope: 1.0,
    for_peak=_fast_sigmoid_for_peak,
    citation="fast sigmoid / SuperSpike: Zenke & Ganguli, Neural Computation 2018; "
    "snnTorch surrogate.fast_sigmoid (slope=25).",
)
register_unit(
    "triangle",
    lambda x, gamma: gamma * jnp.maximum(0.0, 1 - jnp.abs(x)),
    smooth=lambda x, gamma: _smooth_abs(x, lambda a: gamma * (a - a * a / 2)),
    defaults={"gamma": 0.3},
    **_peak_of("gamma", 1.0),
    citation="triangle γ·max(0, 1−|x|), γ=0.3 (the 'dampening factor'): Bellec "
    "et al., NeurIPS 2018 (LSNN); Norse's triangle surrogate.",
)
register_unit(
    "rectangle",
    lambda x, width: (jnp.abs(x) < width / 2).astype(x.dtype) / width,
    smooth=lambda x, width: 0.5 + jnp.clip(x / width, -0.5, 0.5),
    defaults={"width": 1.0},
    **_peak_of("width", 1.0, -1),
    citation="rectangle/boxcar (1/a)·1[|x| < a/2], a=1: Wu et al., Frontiers in "
    "Neuroscience 2018 (STBP).",
)
register_unit(
    "piecewise_exp",
    lambda x, alpha: alpha / 2 * jnp.exp(-alpha * jnp.abs(x)),
    smooth=lambda x, alpha: 0.5 + 0.5 * jnp.sign(x) * -jnp.expm1(-alpha * jnp.abs(x)),
    defaults={"alpha": 1.0},
    **_peak_of("alpha", 1 / 2),
    citation="piecewise exponential (α/2)e^(−α|x|): Shrestha & Orchard, NeurIPS 2018 "
    "(SLAYER); SpikingJelly surrogate.PiecewiseExp (alpha=1.0).",
)
register_unit(
    "erf",
    lambda x, alpha: alpha / _SQRT_PI * jnp.exp(-jnp.square(alpha * x)),
    smooth=lambda x, alpha: 0.5 * (1 + erf(alpha * x)),
    defaults={"alpha": 2.0},
    **_peak_of("alpha", 1 / _SQRT_PI),
    citation="Gaussian/erf (α/√π)e^(−α²x²): Esser et al., PNAS 2016; "
    "SpikingJelly surrogate.Erf (alpha=2.0).",
)
register_unit(
    "straight_through",
    lambda x: jnp.ones_like(x),
    citation="identity straight-through estimator: Bengio, Léonard & Courville, "
    "arXiv 1308.3432 (2013). Its sign form has gradient 2.",
)
