"""Quantizers: Larq's set in JAX, plus HTAF's signed and Heaviside forms.

A quantizer maps latent real values to a few levels in the forward pass and
has a chosen backward rule (a pseudo-gradient). Each entry below is a plain
function ``(x, **hparams) -> Array`` with its rule as a ``custom_vjp``, so
Spyx- or snnTorch-style code takes it unwrapped; ``get_quantizer(name,
**hparams)`` binds hyperparameters into a hashable ``Quantizer`` (usable as a
Flax field) that also carries the bit width for model summaries.

Values follow Larq's definitions (larq/quantizers.py, larq/math.py, v0.13),
including at 0: sign(0) = +1 (Larq ``math.sign``), but ``ste_heaviside``
gives H(0) = 0 (Larq ``math.heaviside`` is sign(relu(x))). "Clipped" rules
pass the gradient where |x| ≤ clip_value (inclusive, as Larq's ``less_equal``);
clip_value=None passes it everywhere.

============================  ==============================  ==================================
entry                         forward                         backward dq/dx
============================  ==============================  ==================================
ste_sign(clip_value=1)        sign(x)                         1[|x| ≤ c]
approx_sign                   sign(x)                         (2 − 2|x|)·1[|x| ≤ 1]
swish_sign(beta=5)            sign(x)                         β(2 − βx·tanh(βx/2))/(1 + cosh βx)
magnitude_aware_sign(c=1)     sg(mean|x|)·sign(x)             sg(mean|x|)·1[|x| ≤ c]
ste_heaviside(clip_value=1)   1[x > 0]                        1[|x| ≤ c]
ste_tern(Δ=0.05, twn, c=1)    sign(x)·1[|x| ≥ Δ]              1[|x| ≤ c]
dorefa(k_bit=2)               round(clip(x,0,1)·n)/n          1[0 ≤ x ≤ 1]
htaf_sign(α=4, β=1)           sign(x)                         2·htaf'(x)
htaf_heaviside(α=4, β=1)      1[x ≥ 0]                        htaf'(x)
============================  ==============================  ==================================

sg: stop-gradient; mean over every axis but the last (per output channel);
n = 2^k − 1; ``round`` is round-half-to-even, as ``tf.round``; with
``ternary_weight_networks`` Δ = 0.7·mean|x| over the whole tensor (TWN).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from htaf_jax.functions import DEFAULT_ALPHA, DEFAULT_BETA
from htaf_jax.surrogates import get_surrogate

__all__ = [
    "Quantizer", "approx_sign", "dorefa", "get_quantizer", "htaf_heaviside", "htaf_sign",
    "list_quantizers", "magnitude_aware_sign", "precision_of", "register_quantizer",
    "resolve_quantizer", "ste_heaviside", "ste_sign", "ste_tern", "swish_sign",
]


# ------------------------------------------------ forward with a chosen rule --
@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _with_rule(forward: Callable, rule: Callable, x: Array, hparams: dict) -> Array:
    return forward(x, **hparams)


def _with_rule_fwd(forward, rule, x, hparams):
    return forward(x, **hparams), (x, hparams)


def _with_rule_bwd(forward, rule, res, g):
    x, hparams = res
    # The levels do not move with the hyperparameters: zero cotangents.
    return g * rule(x, **hparams).astype(g.dtype), jax.tree.map(jnp.zeros_like, hparams)


_with_rule.defvjp(_with_rule_fwd, _with_rule_bwd)


def _float(x: ArrayLike) -> Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"quantizers take floating-point inputs, got {x.dtype}")
    return x


def _sign(x, **_):
    # Larq math.sign: sign(sign(x) + 0.1), so sign(0) = +1.
    return jnp.where(x >= 0, 1.0, -1.0).astype(x.dtype)


def _clipped(x, clip_value=None, **_):
    return (jnp.abs(x) <= clip_value).astype(x.dtype)


def _ones(x, **_):
    return jnp.ones_like(x)


def _clip_rule(clip_value):
    return (_ones, {}) if clip_value is None else (_clipped, {"clip_value": clip_value})


# ------------------------------------------------------------------ entries --
def ste_sign(x: ArrayLike, clip_value: float | None = 1.0) -> Array:
    """sign(x) ∈ {−1, +1}, sign(0) = +1; backward 1[|x| ≤ clip_value].

    Larq ``ste_sign``; BinaryNet's straight-through estimator (Hubara,
    Courbariaux et al., NeurIPS 2016, arXiv 1602.02830).
    """
    rule, hp = _clip_rule(clip_value)
    return _with_rule(_sign, rule, _float(x), {k: jnp.asarray(v) for k, v in hp.items()})


def _approx_sign_rule(x):
    return jnp.where(jnp.abs(x) <= 1.0, 2.0 - 2.0 * jnp.abs(x), 0.0).astype(x.dtype)


def approx_sign(x: ArrayLike) -> Array:
    """sign(x) (sign(0) = +1); backward (2 − 2|x|) on |x| ≤ 1, else 0.

    The derivative of Bi-Real Net's piecewise-quadratic ApproxSign (Liu et
    al., ECCV 2018, arXiv 1808.00278); Larq ``approx_sign``.
    """
    return _with_rule(_sign, _approx_sign_rule, _float(x), {})


def _swish_sign_rule(x, beta):
    # β(2 − βx·tanh(βx/2)) / (1 + cosh βx), with 1/(1 + cosh u) = sech²(u/2)/2
    # written through e^(−|u|) so that large |βx| gives 0, not inf/inf.
    u = beta * x
    e = jnp.exp(-jnp.abs(u))
    half_sech2 = 2.0 * e / jnp.square(1.0 + e)
    return beta * (2.0 - u * jnp.tanh(u / 2)) * half_sech2


def swish_sign(x: ArrayLike, beta: ArrayLike = 5.0) -> Array:
    """sign(x) (sign(0) = +1); backward β(2 − βx·tanh(βx/2)) / (1 + cosh(βx)).

    The derivative of SignSwish 2σ(βx)(1 + βx(1 − σ(βx))) − 1 (Darabi et al.,
    BNN+, arXiv 1812.11800); Larq ``swish_sign`` (beta=5.0). Peak β at 0.
    """
    return _with_rule(_sign, _swish_sign_rule, _float(x), {"beta": jnp.asarray(beta)})


def magnitude_aware_sign(x: ArrayLike, clip_value: float | None = 1.0) -> Array:
    """a·sign(x), a = stop_gradient(mean|x| over every axis but the last).

    Bi-Real Net's magnitude-aware weights (Liu et al., ECCV 2018); Larq
    ``MagnitudeAwareSign``. Backward a·1[|x| ≤ clip_value] (the scale is a
    constant to the gradient, as in Larq).
    """
    x = _float(x)
    scale = jax.lax.stop_gradient(jnp.mean(jnp.abs(x), axis=tuple(range(x.ndim - 1))))
    return scale * ste_sign(x, clip_value)


def _step_open(x, **_):
    # Larq math.heaviside = sign(relu(x)): H(0) = 0.
    return (x > 0).astype(x.dtype)


def ste_heaviside(x: ArrayLike, clip_value: float | None = 1.0) -> Array:
    """1[x > 0] ∈ {0, 1} (H(0) = 0, as Larq); backward 1[|x| ≤ clip_value].

    Larq ``ste_heaviside``. Note: HTAF's and the surrogate registry's hard form
    uses H(0) = 1 (``htaf_heaviside``).
    """
    rule, hp = _clip_rule(clip_value)
    return _with_rule(_step_open, rule, _float(x), {k: jnp.asarray(v) for k, v in hp.items()})


def _tern(x, threshold, **_):
    # Larq: sign(sign(x + Δ) + sign(x − Δ)); ±Δ itself maps to ±1.
    return (jnp.sign(jnp.sign(x + threshold) + jnp.sign(x - threshold))).astype(x.dtype)


def _tern_rule(x, threshold, clip_value=None):
    return jnp.ones_like(x) if clip_value is None else _clipped(x, clip_value)


def ste_tern(x: ArrayLike, threshold_value: float = 0.05, ternary_weight_networks: bool = False,
             clip_value: float | None = 1.0) -> Array:
    """Ternary {−1, 0, +1}: +1 for x ≥ Δ, −1 for x ≤ −Δ, 0 for |x| < Δ; backward 1[|x| ≤ c].

    Δ = ``threshold_value``, or with ``ternary_weight_networks`` Δ = 0.7·mean|x|
    over the whole tensor (Li & Liu, Ternary Weight Networks, arXiv 1605.04711),
    a constant to the gradient. Larq ``ste_tern``.
    """
    x = _float(x)
    threshold = (0.7 * jax.lax.stop_gradient(jnp.mean(jnp.abs(x))) if ternary_weight_networks
                 else jnp.asarray(threshold_value, x.dtype))
    hp = {"threshold": threshold}
    if clip_value is not None:
        hp["clip_value"] = jnp.asarray(clip_value)
    return _with_rule(_tern, _tern_rule, x, hp)


def _dorefa_forward(x, levels):
    return jnp.round(jnp.clip(x, 0.0, 1.0) * levels) / levels


def _unit_interval(x, **_):
    return ((x >= 0.0) & (x <= 1.0)).astype(x.dtype)


def dorefa(x: ArrayLike, k_bit: int = 2, mode: str = "activations") -> Array:
    """k-bit DoReFa quantizer (Zhou et al., arXiv 1606.06160); Larq ``DoReFa``.

    ``mode="activations"``: q = round(clip(x, 0, 1)·n)/n, n = 2^k − 1, backward
    1[0 ≤ x ≤ 1]. ``mode="weights"``: w' = tanh(x)/(2·sg(max|tanh x|)) + 0.5
    (0.5 where every x is 0), q = 2·round(w'·n)/n − 1, backward through w'
    with the identity for the rounding.
    """
    x = _float(x)
    if not (isinstance(k_bit, int) and k_bit >= 1):
        raise ValueError(f"dorefa: k_bit must be an integer ≥ 1, got {k_bit!r}")
    levels = jnp.asarray(2 ** k_bit - 1, x.dtype)
    if mode == "activations":
        return _with_rule(_dorefa_forward, _unit_interval, x, {"levels": levels})
    if mode == "weights":
        limited = jnp.tanh(x)
        divisor = 2.0 * jax.lax.stop_gradient(jnp.max(jnp.abs(limited)))
        safe = jnp.where(divisor > 0, divisor, 1.0)
        normed = jnp.where(divisor > 0, limited / safe, 0.0) + 0.5
        return 2.0 * _with_rule(_dorefa_forward, _ones, normed, {"levels": levels}) - 1.0
    raise ValueError(f"dorefa: mode must be 'activations' or 'weights', got {mode!r}")


def htaf_sign(x: ArrayLike, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA) -> Array:
    """sign(x) (sign(0) = +1); backward 2·htaf'(x) (Park et al., arXiv 2605.11558)."""
    return get_surrogate("htaf", alpha=alpha, beta=beta).sign(x)


def htaf_heaviside(x: ArrayLike, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA) -> Array:
    """H(x) ∈ {0, 1}, H(0) = 1; backward htaf'(x) (Park et al., arXiv 2605.11558)."""
    return get_surrogate("htaf", alpha=alpha, beta=beta).heaviside(x)


# ------------------------------------------------------------------ registry --
@dataclasses.dataclass(frozen=True)
class _Entry:
    fn: Callable[..., Array]
    defaults: tuple[tuple[str, Any], ...]
    precision: int | Callable[[dict], int]
    citation: str


_REGISTRY: dict[str, _Entry] = {}


@dataclasses.dataclass(frozen=True)
class Quantizer:
    """A registry entry bound to hyperparameters: ``q(x)`` quantizes; hashable.

    ``precision``: bits a quantized value takes (Larq's ``precision``), used by
    ``htaf_jax.summary``.
    """
    name: str
    hparams: tuple[tuple[str, Any], ...]

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.hparams)

    @property
    def precision(self) -> int:
        p = _REGISTRY[self.name].precision
        return p(self.kwargs) if callable(p) else p

    @property
    def citation(self) -> str:
        return _REGISTRY[self.name].citation

    def __call__(self, x: ArrayLike) -> Array:
        return _REGISTRY[self.name].fn(x, **self.kwargs)

    def grad(self, x: ArrayLike) -> Array:
        """The backward rule at x: the pullback of ones (elementwise for every entry
        here, as the surrogates' ``grad``)."""
        y, pullback = jax.vjp(self, jnp.asarray(x))
        return pullback(jnp.ones_like(y))[0]

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.hparams)
        return f"Quantizer({self.name!r}{args})"


def register_quantizer(name: str, fn: Callable[..., Array], defaults: Mapping[str, Any] | None = None,
                       precision: int | Callable[[dict], int] = 1, citation: str = "",
                       overwrite: bool = False) -> None:
    """Adds ``fn(x, **hparams)`` under ``name``; ``precision``: its output's bit width
    (or a function of the bound hyperparameters)."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"quantizer {name!r} is already registered; pass overwrite=True")
    _REGISTRY[name] = _Entry(fn, tuple(sorted((defaults or {}).items())), precision, citation)


def list_quantizers() -> list[str]:
    """Names of the registered quantizers, sorted."""
    return sorted(_REGISTRY)


def get_quantizer(name: str, **hparams: Any) -> Quantizer:
    """The entry ``name`` with ``hparams`` bound (missing ones take their defaults)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown quantizer {name!r}; valid names: {', '.join(list_quantizers())}")
    values = dict(_REGISTRY[name].defaults)
    unknown = sorted(set(hparams) - set(values))
    if unknown:
        raise TypeError(f"quantizer {name!r} got unknown hyperparameter(s) {unknown}; "
                        f"valid: {', '.join(values) or 'none'}")
    values.update(hparams)
    return Quantizer(name, tuple(sorted(values.items())))


def resolve_quantizer(spec: Any) -> Callable[[Array], Array] | None:
    """None (no quantizer), a registry name, a ``Quantizer`` or any callable ``x -> q(x)``."""
    if spec is None or isinstance(spec, Quantizer):
        return spec
    if isinstance(spec, str):
        return get_quantizer(spec)
    if callable(spec):
        return spec
    raise TypeError(f"a quantizer is None, a name ({', '.join(list_quantizers())}) or a "
                    f"callable; got {type(spec).__name__}")


def precision_of(spec: Any) -> int:
    """Bit width of a quantizer's output: 32 for None, the entry's for a registry
    quantizer, a callable's ``precision`` attribute if it has one, else 32."""
    q = resolve_quantizer(spec)
    if q is None:
        return 32
    return int(getattr(q, "precision", 32))


_LARQ = "Larq (larq/quantizers.py, v0.13)"
register_quantizer("ste_sign", ste_sign, {"clip_value": 1.0}, 1,
                   f"BinaryNet STE, Hubara/Courbariaux et al. 2016; {_LARQ} ste_sign")
register_quantizer("approx_sign", approx_sign, {}, 1,
                   f"ApproxSign, Liu et al. 2018 (Bi-Real Net); {_LARQ} approx_sign")
register_quantizer("swish_sign", swish_sign, {"beta": 5.0}, 1,
                   f"SignSwish, Darabi et al. 2018 (BNN+); {_LARQ} swish_sign")
register_quantizer("magnitude_aware_sign", magnitude_aware_sign, {"clip_value": 1.0}, 1,
                   f"Liu et al. 2018 (Bi-Real Net); {_LARQ} MagnitudeAwareSign")
register_quantizer("ste_heaviside", ste_heaviside, {"clip_value": 1.0}, 1,
                   f"{_LARQ} ste_heaviside (H(0) = 0)")
register_quantizer("ste_tern", ste_tern,
                   {"threshold_value": 0.05, "ternary_weight_networks": False, "clip_value": 1.0},
                   2, f"Li & Liu 2016 (TWN); {_LARQ} ste_tern")
register_quantizer("dorefa", dorefa, {"k_bit": 2, "mode": "activations"},
                   lambda hp: hp["k_bit"], f"Zhou et al. 2016 (DoReFa-Net); {_LARQ} DoReFa")
register_quantizer("htaf_sign", htaf_sign, {"alpha": DEFAULT_ALPHA, "beta": DEFAULT_BETA}, 1,
                   "HTAF signed form, Park et al., arXiv 2605.11558 (2026)")
register_quantizer("htaf_heaviside", htaf_heaviside, {"alpha": DEFAULT_ALPHA, "beta": DEFAULT_BETA}, 1,
                   "HTAF hard form, Park et al., arXiv 2605.11558 (2026)")
