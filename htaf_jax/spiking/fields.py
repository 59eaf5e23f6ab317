"""Each neuron's fields and defaults, declared once, with their checks.

The Linen layers take these as their dataclass fields, the NNX layers as their
keyword arguments, the models and the NIR exchange read them by name
(``htaf_jax.linen.spiking``, ``htaf_jax.nnx.spiking``). Constructing a spec
checks the values, so both front ends refuse the same inputs with the same
one-line message.
"""

import dataclasses
import math
from typing import Any, Callable, ClassVar

import numpy as np

from htaf_jax.spiking.lif import Reset, check_options


def _concrete(value) -> np.ndarray | None:
    """A number or concrete array as float64, or None for a traced value."""
    try:
        return np.asarray(value, np.float64)
    except Exception:  # a tracer: checked where its value is known
        return None


def check_decay(name: str, value, learn: bool = False) -> None:
    """A decay in [0, 1] (a leak above 1 makes the state grow without bound); a
    learnable one σ(logit) in (0, 1)."""
    v = _concrete(value)
    if v is None:
        return
    if learn and not np.all((v > 0) & (v < 1)):
        raise ValueError(f"a learnable decay needs 0 < {name} < 1, got {value}")
    if not np.all((v >= 0) & (v <= 1)):
        raise ValueError(
            f"{name} is a decay per step and must lie in [0, 1] (above 1 the "
            f"state grows without bound), got {value}"
        )


def check_positive_threshold(value) -> None:
    """Raises ``ValueError`` unless every threshold is > 0 (a traced value is checked where
    its value is known)."""
    v = _concrete(value)
    if v is not None and not np.all(v > 0):
        raise ValueError(
            f"threshold must be > 0 (a neuron fires when its membrane reaches it), got {value}"
        )


def decay_to_logit(beta: float, name: str = "beta") -> float:
    """The logit a learnable decay starts from: β = σ(logit) stays in (0, 1).
    ``name`` is the field the error message names."""
    check_decay(name, beta, learn=True)
    return math.log(beta / (1.0 - beta))


@dataclasses.dataclass(frozen=True, kw_only=True)
class LIFFields:
    """The fields every neuron shares (the LIF's; documented on ``htaf_jax.linen.LIF``).

    ``beta`` and ``threshold`` are numbers (the initial values when learnable)
    or fixed per-neuron arrays (what NIR import gives)."""

    beta: float = 0.9
    threshold: float = 1.0
    reset: Reset = "subtract"
    detach_reset: bool = True
    reset_delay: bool = False
    spike_at_threshold: bool = True
    fire_first: bool = False
    learn_beta: bool = False
    learn_threshold: bool = False
    per_neuron: bool = False
    surrogate: str | Callable = "htaf"

    #: the decays of this neuron, checked in [0, 1] ((0, 1) when learned): name → learn flag
    decays: ClassVar[dict[str, str]] = {"beta": "learn_beta"}

    def __post_init__(self):
        check_options(self.reset, self.reset_delay, self.fire_first)
        for name, learn in self.decays.items():
            check_decay(name, getattr(self, name), getattr(self, learn))
        check_positive_threshold(self.threshold)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def own(cls) -> tuple[dataclasses.Field, ...]:
        """The fields this spec adds to its base (all of them for ``LIFFields``)."""
        base = cls.__mro__[1]
        inherited = set(base.names()) if dataclasses.is_dataclass(base) else set()  # pyright: ignore[reportAttributeAccessIssue]
        return tuple(
            f
            for f in dataclasses.fields(cls)
            if f.name not in inherited or f.default != _default(base, f.name)
        )

    def values(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self.names()}


def _default(spec, name: str):
    return {f.name: f.default for f in dataclasses.fields(spec)}[name]


@dataclasses.dataclass(frozen=True, kw_only=True)
class IFFields(LIFFields):
    """Integrate-and-fire: the LIF's fields with β = 1, fixed."""

    beta: float = 1.0

    def __post_init__(self):
        if _concrete(self.beta) is None or np.any(_concrete(self.beta) != 1.0) or self.learn_beta:
            raise ValueError("IF neurons have beta = 1 and no learnable decay; use LIF")
        super().__post_init__()


@dataclasses.dataclass(frozen=True, kw_only=True)
class RecurrentLIFFields(LIFFields):
    """``all_to_all``: R(s) = s @ W + b (True) or one weight per neuron, V·s (False);
    ``recurrent_init``: V's initial value."""

    all_to_all: bool = True
    recurrent_init: float = 1.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class SynapticFields(LIFFields):
    """``alpha``: the synaptic current's decay α ∈ [0, 1] (initial value when learnable)."""

    alpha: float = 0.9
    learn_alpha: bool = False
    decays: ClassVar[dict[str, str]] = {"beta": "learn_beta", "alpha": "learn_alpha"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ALIFFields(LIFFields):
    """``adapt_decay`` ρ ∈ [0, 1] and ``adapt_scale`` γ of the adaptive threshold."""

    adapt_decay: float = 0.95
    adapt_scale: float = 1.0
    learn_adapt_decay: bool = False
    learn_adapt_scale: bool = False
    decays: ClassVar[dict[str, str]] = {"beta": "learn_beta", "adapt_decay": "learn_adapt_decay"}


def build_fields(spec: type[LIFFields], layer: str, values: dict) -> LIFFields:
    """``spec(**values)``, an unknown name refused in one line that lists the valid ones."""
    unknown = sorted(set(values) - set(spec.names()))
    if unknown:
        raise TypeError(
            f"{layer} got unknown field(s) {', '.join(unknown)}; valid: {', '.join(spec.names())}"
        )
    return spec(**values)
