"""The surrogate registry: HTAF and the surrogate gradients that peers ship.

Every entry describes a stand-in for the derivative of the Heaviside step
H(x) ∈ {0, 1} (x is the input minus the threshold). From one entry you get

- ``s.grad(x)``:      the closed-form surrogate derivative;
- ``s.smooth(x)``:    a smooth forward whose derivative is exactly ``grad``,
                      ½ + ∫₀ˣ grad (None for the straight-through entries);
- ``s.heaviside(x)``: forward H(x) with H(0) = 1, backward ``grad`` — spikes,
                      binary activations, hard concepts (``s(x)`` is the same);
- ``s.sign(x)``:      forward sign(x) ∈ {−1, +1} with sign(0) = +1, backward
                      2·grad, since sign = 2H − 1.

>>> s = get_surrogate("atan", alpha=2.0)
>>> s
Surrogate('atan', alpha=2.0)
>>> float(s.grad(0.0))   # peak (α/2)
1.0

Formulas and defaults follow the peers' documentation, cited per entry.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import erf
from jax.typing import ArrayLike

from htaf_jax import functions as F

__all__ = [
    "Surrogate",
    "SurrogateSpec",
    "get_surrogate",
    "list_surrogates",
    "register_surrogate",
    "resolve_surrogate",
]


@dataclasses.dataclass(frozen=True)
class SurrogateSpec:
    """A registry entry: formulas as functions of (x, **hparams)."""

    name: str
    grad: Callable[..., Array]
    smooth: Callable[..., Array] | None
    defaults: tuple[tuple[str, float], ...]
    citation: str


_REGISTRY: dict[str, SurrogateSpec] = {}


def _as_float(x: ArrayLike) -> tuple[Array, Any]:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"surrogates take floating-point inputs, got {x.dtype}")
    return x.astype(jnp.promote_types(x.dtype, jnp.float32)), x.dtype


@functools.lru_cache(maxsize=None)
def _grad_in_float32(grad: Callable[..., Array]) -> Callable[..., Array]:
    """The entry's rule computed in float32 or wider (bfloat16 inputs underflow
    early otherwise), returned in the input's dtype. Cached, so the straight-through
    primitive sees one function per entry."""
    def rule(x, **hparams):
        xf, dtype = _as_float(x)
        return grad(xf, **hparams).astype(dtype)
    return rule


@dataclasses.dataclass(frozen=True, eq=False)
class Surrogate:
    """A registry entry bound to hyperparameters.

    Hyperparameters are Python floats (then the surrogate is hashable and
    compares by value, so it can be a Flax module field or a static argument)
    or arrays, possibly traced: then ``smooth`` returns their true cotangents
    and the surrogate can be learned, as ``htaf``'s α and β can.
    """

    spec: SurrogateSpec
    hparams: tuple[tuple[str, Any], ...]

    def _key(self):
        if all(isinstance(v, float) for _, v in self.hparams):
            return (self.spec, self.hparams)
        return id(self)

    def __eq__(self, other) -> bool:
        return isinstance(other, Surrogate) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kwargs(self) -> dict[str, float]:
        return dict(self.hparams)

    def grad(self, x: ArrayLike) -> Array:
        """Closed-form surrogate derivative dH/dx."""
        xf, dtype = _as_float(x)
        return self.spec.grad(xf, **self.kwargs).astype(dtype)

    @property
    def has_smooth(self) -> bool:
        return self.spec.smooth is not None

    def smooth(self, x: ArrayLike) -> Array:
        """Smooth forward whose derivative is ``grad``: ½ + ∫₀ˣ grad."""
        if self.spec.smooth is None:
            raise ValueError(
                f"surrogate {self.name!r} has no smooth forward (it only defines a "
                "backward rule); use the hard form, s.heaviside(x)"
            )
        xf, dtype = _as_float(x)
        return self.spec.smooth(xf, **self.kwargs).astype(dtype)

    def heaviside(self, x: ArrayLike) -> Array:
        """Forward H(x) ∈ {0, 1}, H(0) = 1, NaN propagates; backward ``grad``
        (see :func:`htaf_jax.functions.straight_through`)."""
        return F.straight_through(x, _grad_in_float32(self.spec.grad), **self.kwargs)

    __call__ = heaviside

    def sign(self, x: ArrayLike) -> Array:
        """Forward sign(x) ∈ {−1, +1}, sign(0) = +1; backward 2·grad."""
        return 2.0 * self.heaviside(x) - 1.0

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" if isinstance(v, float) else f", {k}=<array>"
                       for k, v in self.hparams)
        return f"Surrogate({self.name!r}{args})"


@dataclasses.dataclass(frozen=True)
class _CallableSurrogate:
    """Wraps a user's spike function ``x -> {0,1}`` that has its own gradient."""

    fn: Callable[[Array], Array]

    @property
    def name(self) -> str:
        return getattr(self.fn, "__name__", repr(self.fn))

    def heaviside(self, x):
        return self.fn(x)

    __call__ = heaviside

    def sign(self, x):
        return 2.0 * self.fn(x) - 1.0

    def grad(self, x):
        x = jnp.asarray(x)
        return jax.grad(lambda v: jnp.sum(self.fn(v)))(x)

    has_smooth = False

    def smooth(self, x):
        raise ValueError(f"the callable surrogate {self.name!r} has no smooth forward")


def list_surrogates() -> list[str]:
    """Names of the registered surrogates, sorted."""
    return sorted(_REGISTRY)


def register_surrogate(
    name: str,
    grad: Callable[..., Array],
    smooth: Callable[..., Array] | None = None,
    defaults: Mapping[str, float] | None = None,
    citation: str = "",
    overwrite: bool = False,
) -> SurrogateSpec:
    """Adds an entry. ``grad(x, **hparams)`` and ``smooth(x, **hparams)`` take a
    float32-or-wider array; ``smooth`` must satisfy smooth' = grad."""
    if not name or not isinstance(name, str):
        raise ValueError(f"a surrogate name must be a non-empty string, got {name!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"surrogate {name!r} is already registered; pass overwrite=True")
    spec = SurrogateSpec(name, grad, smooth, tuple(sorted((defaults or {}).items())), citation)
    _REGISTRY[name] = spec
    return spec


def get_surrogate(name: str, **hparams: ArrayLike) -> Surrogate:
    """Looks up an entry and binds hyperparameters (missing ones take defaults).

    A Python number is validated (finite, > 0); an array, possibly traced, is
    bound as it is, so ``jax.grad`` reaches it through ``smooth``:

    >>> g = jax.grad(lambda a: get_surrogate("sigmoid", alpha=a).smooth(1.0))(4.0)

    The hard forms of every unit, HTAF's included, are this object's
    ``heaviside`` (== ``__call__``) and ``sign``.
    """
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown surrogate {name!r}; valid names: {', '.join(list_surrogates())}"
        )
    spec = _REGISTRY[name]
    values = dict(spec.defaults)
    unknown = sorted(set(hparams) - set(values))
    if unknown:
        valid = ", ".join(values) or "none"
        raise TypeError(f"surrogate {name!r} got unknown hyperparameter(s) {unknown}; valid: {valid}")
    for key, value in hparams.items():
        F.check_positive(f"{name}.{key}", value)
        values[key] = float(value) if _is_number(value) else jnp.asarray(value)
    return Surrogate(spec, tuple(sorted(values.items())))


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def resolve_surrogate(spec: Any, **hparams: ArrayLike):
    """A registry name, a ``Surrogate`` (optionally re-bound with ``hparams``),
    or a callable spike function ``x -> {0,1}`` with its own gradient rule."""
    if isinstance(spec, str):
        return get_surrogate(spec, **hparams)
    if isinstance(spec, Surrogate):
        return get_surrogate(spec.name, **{**spec.kwargs, **hparams}) if hparams else spec
    if isinstance(spec, _CallableSurrogate):
        return spec
    if callable(spec):
        if hparams:
            raise TypeError("hyperparameters cannot be bound to a plain callable surrogate")
        return _CallableSurrogate(spec)
    raise TypeError(
        f"surrogate must be a name ({', '.join(list_surrogates())}), a Surrogate or a callable; "
        f"got {type(spec).__name__}"
    )


# ----------------------------------------------------------------- entries --
_SQRT_PI = math.sqrt(math.pi)


def _ind(c: Array) -> Array:
    return c.astype(jnp.float32)


register_surrogate(
    "htaf",
    grad=lambda x, alpha, beta: F.htaf_grad(x, alpha, beta),
    smooth=lambda x, alpha, beta: F.htaf(x, alpha, beta),
    defaults={"alpha": F.DEFAULT_ALPHA, "beta": F.DEFAULT_BETA},
    citation="HTAF σ(α·tanh(βx)): Park et al., arXiv 2605.11558 (2026).",
)
register_surrogate(
    "sigmoid",
    grad=lambda x, alpha: alpha * jax.nn.sigmoid(alpha * x) * jax.nn.sigmoid(-alpha * x),
    smooth=lambda x, alpha: jax.nn.sigmoid(alpha * x),
    defaults={"alpha": 4.0},
    citation="σ(αx): SpikingJelly surrogate.Sigmoid (alpha=4.0). snnTorch's "
    "surrogate.sigmoid is the same rule with slope=25: get_surrogate('sigmoid', alpha=25).",
)
register_surrogate(
    "atan",
    grad=lambda x, alpha: (alpha / 2) / (1 + jnp.square(math.pi / 2 * alpha * x)),
    smooth=lambda x, alpha: 0.5 + jnp.arctan(math.pi / 2 * alpha * x) / math.pi,
    defaults={"alpha": 2.0},
    citation="arctan: Fang et al., ICCV 2021 (PLIF); SpikingJelly surrogate.ATan and "
    "snnTorch surrogate.atan, both alpha=2.0.",
)
register_surrogate(
    "fast_sigmoid",
    grad=lambda x, slope: 1.0 / jnp.square(1 + slope * jnp.abs(x)),
    # The antiderivative of the rule runs over ±1/slope, not (0, 1).
    smooth=lambda x, slope: 0.5 + x / (1 + slope * jnp.abs(x)),
    defaults={"slope": 25.0},
    citation="fast sigmoid / SuperSpike: Zenke & Ganguli, Neural Computation 2018; "
    "snnTorch surrogate.fast_sigmoid (slope=25).",
)
register_surrogate(
    "triangle",
    grad=lambda x, gamma: gamma * jnp.maximum(0.0, 1 - jnp.abs(x)),
    smooth=lambda x, gamma: 0.5
    + gamma * jnp.sign(x) * (lambda a: a - a * a / 2)(jnp.minimum(jnp.abs(x), 1.0)),
    defaults={"gamma": 0.3},
    citation="triangle γ·max(0, 1−|x|), γ=0.3 (the 'dampening factor'): Bellec et al., "
    "NeurIPS 2018 (LSNN); Norse's triangle surrogate.",
)
register_surrogate(
    "rectangle",
    grad=lambda x, width: _ind(jnp.abs(x) < width / 2) / width,
    smooth=lambda x, width: 0.5 + jnp.clip(x / width, -0.5, 0.5),
    defaults={"width": 1.0},
    citation="rectangle/boxcar (1/a)·1[|x| < a/2], a=1: Wu et al., Frontiers in "
    "Neuroscience 2018 (STBP).",
)
register_surrogate(
    "piecewise_exp",
    grad=lambda x, alpha: alpha / 2 * jnp.exp(-alpha * jnp.abs(x)),
    smooth=lambda x, alpha: 0.5 + 0.5 * jnp.sign(x) * -jnp.expm1(-alpha * jnp.abs(x)),
    defaults={"alpha": 1.0},
    citation="piecewise exponential (α/2)e^(−α|x|): Shrestha & Orchard, NeurIPS 2018 "
    "(SLAYER); SpikingJelly surrogate.PiecewiseExp (alpha=1.0).",
)
register_surrogate(
    "erf",
    grad=lambda x, alpha: alpha / _SQRT_PI * jnp.exp(-jnp.square(alpha * x)),
    smooth=lambda x, alpha: 0.5 * (1 + erf(alpha * x)),
    defaults={"alpha": 2.0},
    citation="Gaussian/erf (α/√π)e^(−α²x²): Esser et al., PNAS 2016; SpikingJelly "
    "surrogate.Erf (alpha=2.0).",
)
register_surrogate(
    "straight_through",
    grad=lambda x: jnp.ones_like(x),
    smooth=None,
    citation="identity straight-through estimator: Bengio, Léonard & Courville, "
    "arXiv 1308.3432 (2013). Its sign form has gradient 2.",
)
register_surrogate(
    "ste_hardtanh",
    grad=lambda x, clip: 0.5 * _ind(jnp.abs(x) <= clip),
    smooth=lambda x, clip: 0.5 + 0.5 * jnp.clip(x, -clip, clip),
    defaults={"clip": 1.0},
    citation="BinaryNet's clipped STE: Hubara/Courbariaux et al., NeurIPS 2016; Larq "
    "ste_sign (clip_value=1.0). Halved so that .sign has their gradient 1[|x| ≤ 1].",
)
register_surrogate(
    "approx_sign",
    grad=lambda x: jnp.maximum(0.0, 1 - jnp.abs(x)),
    smooth=lambda x: 0.5 + 0.5 * jnp.sign(x) * (lambda a: 2 * a - a * a)(jnp.minimum(jnp.abs(x), 1.0)),
    citation="ApproxSign, piecewise quadratic: Liu et al., ECCV 2018 (Bi-Real Net); "
    "Larq approx_sign. .sign has their gradient 2 − 2|x| on |x| < 1.",
)
