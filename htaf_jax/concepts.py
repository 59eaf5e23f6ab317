"""The concept layer of an Implicit Concept Bottleneck Model, as pure JAX functions.

An ICBM's concept layer reads backbone features h (B, D) and gives K concepts

    x = BN(W h)                       (B, K)  projection, then batch normalisation
    p = s(t) · (x − θ + σ_n ε)        ε ~ N(0, 1) in training only (σ_n = 0: off)
    z = u(p)                          (B, K)  hard: H(p) ∈ {0, 1}; soft: u.smooth(p) ∈ (0, 1)

with ``u`` a binary unit of :mod:`htaf_jax.units` (HTAF by default) and
``s(t)`` the sharpening schedule below. The projection and the batch norm are
ordinary layers (``htaf_jax.linen.concepts`` / ``htaf_jax.nnx.concepts``);
this module is what comes after them, so the Linen and NNX front ends, and
plain JAX or Equinox code, share one definition.

Noise before the binary unit is the trick of semantic hashing (Salakhutdinov
& Hinton 2009): pre-activations near the threshold become costly, so training
moves them out to where the smooth form sits on its rails. The hard concepts
do not depend on s: H(s·x) = H(x) for s > 0.

Sparse concepts. The offset θ (``concept_offset``) moves every concept's
threshold up. With a batch norm without its learned scale and bias
(``norm_affine=False``), x̂ has mean 0 and variance ≤ 1 over each training
batch, so by Cantelli's one-sided inequality (P(X − μ ≥ θσ) ≤ 1/(1 + θ²))
no concept is on for more than 1/(1 + θ²) of a batch, whatever the backbone
learns: a hard cap on the on-rate, with no loss term (``offset_for_on_rate``
inverts it). The cap is reached by a two-point x̂ (on for a share r, at
√((1 − r)/r)), which is the shape of a detector that fires for one kind of
image. With the affine batch norm kept, θ only initialises the threshold (the
learned bias can undo it). ``on_rate_penalty`` is the soft alternative: a
term λ·mean(z) for the training loss (the layers sow it in ``losses``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, get_args

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from htaf_jax.units import resolve_unit

__all__ = [
    "ConceptFields",
    "ConceptMode",
    "check_concept_options",
    "sharpness_schedule",
    "sharpness_at",
    "concept_preactivations",
    "offset_for_on_rate",
    "on_rate_bound",
    "on_rate_penalty",
    "binary_concepts",
    "near_binary_share",
    "layer_sharpness",
    "concept_layer",
]

ConceptMode = Literal["smooth", "hard"]


@dataclasses.dataclass(kw_only=True)
class ConceptFields:
    """The concept layer's fields and defaults, declared once: the Linen and NNX
    ``ConceptBottleneck`` and ``models.icbm.ICBM`` read them from here.

    Attributes:
      num_concepts: K (the experiments use 128, the sparse recipe 512).
      surrogate: the binary unit: a registry name, a ``Unit`` or a callable.
      concept_mode: training form, ``"smooth"`` (u.smooth, true derivative) or
        ``"hard"`` (H with the unit's derivative; the only choice for units
        without a smooth form). Evaluation is always hard.
      concept_noise: std of the Gaussian noise added to BN(W h) in training (rng
        stream ``"dropout"``); 0: off.
      sharpen: final sharpness of ``sharpness_schedule``; 1: off.
      sharpen_fraction: share of training over which s ramps up.
      total_train_steps: length of training, needed in training when ``sharpen > 1``.
      binary_eps: ε of the ``near_binary`` statistic.
      momentum, epsilon: of the BatchNorm.
      norm_affine: the BatchNorm learns a scale and a bias (False: plain
        standardisation, so ``concept_offset`` is a hard on-rate cap).
      concept_offset: θ subtracted from BN(W h) before the unit (0: off);
        ``offset_for_on_rate(r)`` gives the θ whose cap is r.
      rate_penalty: λ of the training loss term λ·mean(z) (0: none).
    """

    num_concepts: int = 128
    surrogate: Any = "htaf"
    concept_mode: ConceptMode = "smooth"
    concept_noise: float = 0.0
    sharpen: float = 1.0
    sharpen_fraction: float = 0.75
    total_train_steps: int = 0
    binary_eps: float = 0.01
    momentum: float = 0.9
    epsilon: float = 1e-5
    norm_affine: bool = True
    concept_offset: float = 0.0
    rate_penalty: float = 0.0

    def concept_fields(self) -> dict[str, Any]:
        """These fields as keyword arguments (for a concept layer inside a model)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(ConceptFields)}

    def check_concept_fields(self) -> None:
        check_concept_options(
            self.concept_mode,
            self.concept_noise,
            self.sharpen,
            self.sharpen_fraction,
            self.concept_offset,
            self.rate_penalty,
        )


def sharpness_schedule(
    step: ArrayLike, total_steps: int, sharpen: float, fraction: float = 0.75
) -> Array:
    """The sharpness s at train step ``step`` (a float32 scalar, or the shape of ``step``).

        s(t) = sharpen ** min(t / (fraction · total_steps), 1)

    s grows geometrically from 1 at t = 0 to ``sharpen`` at
    t = fraction · total_steps and stays there: the network learns with the
    wide gradient of a soft unit and ends with one whose smooth form sits on its
    rails. For HTAF, u(s·x; α, β) = u(x; α, s·β). ``sharpen = 1`` gives s ≡ 1.

    Args:
      step: train steps taken before this one (0 for the first), int or float.
      total_steps: length of training (> 0).
      sharpen: final sharpness (≥ 1).
      fraction: share of training over which s ramps up, in (0, 1].
    """
    check_concept_options("smooth", 0.0, sharpen, fraction)
    if not total_steps > 0:
        raise ValueError(
            f"the sharpening schedule needs total_train_steps > 0, got {total_steps!r}"
        )
    progress = jnp.asarray(step, jnp.float32) / (fraction * total_steps)
    return jnp.asarray(sharpen, jnp.float32) ** jnp.clip(progress, 0.0, 1.0)


def sharpness_at(
    step: ArrayLike | None, *, train: bool, total_steps: int, sharpen: float, fraction: float = 0.75
) -> Array:
    """s for a layer call: ``sharpness_schedule`` at ``step``, with the layers' rules.

    ``sharpen == 1``: 1. ``step=None``: in evaluation, training is taken as
    finished (s = ``sharpen``, the schedule's end); in training it raises, as the
    schedule needs the step.
    """
    if sharpen == 1.0:
        return jnp.ones((), jnp.float32)
    if step is None:
        if train:
            raise ValueError(
                f"training with sharpen={sharpen} needs the train step: call "
                "the layer with step=<steps taken> (the engine passes it)"
            )
        return jnp.asarray(sharpen, jnp.float32)
    return sharpness_schedule(step, total_steps, sharpen, fraction)


def offset_for_on_rate(rate: float) -> float:
    """θ = √((1 − r)/r): the offset whose Cantelli cap 1/(1 + θ²) is the on-rate ``r``.

    With ``norm_affine=False`` no concept is on for more than ``r`` of a
    training batch (see the module doc). ``r`` in (0, 1]; r = 1 gives θ = 0.
    """
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"the on-rate cap must be in (0, 1], got {rate!r}")
    return float(((1.0 - rate) / rate) ** 0.5)


def on_rate_bound(offset: float) -> float:
    """1/(1 + θ²) for θ > 0, else 1: the most a standardised concept is on, per batch."""
    return 1.0 / (1.0 + offset * offset) if offset > 0 else 1.0


def on_rate_penalty(z: ArrayLike, weight: float) -> Array:
    """λ · mean(z): a training-loss term pushing the (soft or hard) concepts' on-rate down.

    z (B, K) as the layer trains on it, so the gradient reaches the
    pre-activations through the unit's derivative. A float32 scalar.
    """
    return jnp.asarray(weight, jnp.float32) * jnp.mean(jnp.asarray(z, jnp.float32))


def check_concept_options(
    mode: str,
    noise_std: float,
    sharpen: float,
    fraction: float,
    offset: float = 0.0,
    rate_penalty: float = 0.0,
) -> None:
    """Raises ValueError naming the first invalid concept-layer option."""
    if mode not in get_args(ConceptMode):
        raise ValueError(
            f"concept_mode must be one of {', '.join(get_args(ConceptMode))}, got {mode!r}"
        )
    if not noise_std >= 0:
        raise ValueError(f"concept_noise must be ≥ 0, got {noise_std!r}")
    if not sharpen >= 1.0:
        raise ValueError(f"sharpen must be ≥ 1, got {sharpen!r}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"sharpen_fraction must be in (0, 1], got {fraction!r}")
    if not abs(offset) < float("inf"):
        raise ValueError(f"concept_offset must be finite, got {offset!r}")
    if not rate_penalty >= 0:
        raise ValueError(f"rate_penalty must be ≥ 0, got {rate_penalty!r}")


def concept_preactivations(
    normed: ArrayLike,
    sharpness: ArrayLike = 1.0,
    noise_std: float = 0.0,
    key: Array | None = None,
    offset: float = 0.0,
) -> Array:
    """p = s · (x − θ + σ_n ε): (B, K) normalised projections → what the binary unit reads.

    ``key`` (a PRNG key) is needed when ``noise_std > 0``; ε ~ N(0, 1) has the
    shape and dtype of ``normed``. Positive p ⇔ the hard concept is on.
    """
    x = jnp.asarray(normed)
    if noise_std > 0:
        if key is None:
            raise ValueError(f"concept_noise={noise_std} needs a PRNG key")
        x = x + noise_std * jax.random.normal(key, x.shape, x.dtype)
    if offset:
        x = x - jnp.asarray(offset, x.dtype)
    return jnp.asarray(sharpness, x.dtype) * x


def binary_concepts(
    normed: ArrayLike,
    surrogate: Any = "htaf",
    *,
    mode: ConceptMode = "smooth",
    train: bool = False,
    sharpness: ArrayLike = 1.0,
    noise_std: float = 0.0,
    key: Array | None = None,
    offset: float = 0.0,
) -> tuple[Array, Array]:
    """The concept layer after its batch norm: ``(z, p)``, both (B, K).

    Training (``train=True``) adds the noise and uses the ``mode`` form
    (``"smooth"``: u.smooth(p), ValueError for a unit without one; ``"hard"``:
    u(p), H(p) for a step unit, with its gradient); evaluation is always hard and
    noiseless, so a prediction reads binary concepts only. ``offset``: θ,
    subtracted before the sharpness.
    """
    check_concept_options(mode, noise_std, 1.0, 1.0, offset)
    pre = concept_preactivations(normed, sharpness, noise_std if train else 0.0, key, offset)
    unit = resolve_unit(surrogate)
    return (unit.smooth(pre) if train and mode == "smooth" else unit(pre)), pre


def layer_sharpness(layer: ConceptFields, train: bool, step: ArrayLike | None) -> Array:
    """``sharpness_at`` with a concept layer's own fields (Linen, NNX or ``ConceptFields``)."""
    return sharpness_at(
        step,
        train=train,
        total_steps=layer.total_train_steps,
        sharpen=layer.sharpen,
        fraction=layer.sharpen_fraction,
    )


def concept_layer(
    layer: ConceptFields, normed: Array, *, train: bool, step, key: Array | None
) -> tuple[Array, dict[str, Array]]:
    """A concept layer after its batch norm, from its fields: ``(z, stats)``.

    ``stats``: ``concept_rate`` (the mean hard concept), ``near_binary`` (the share of
    smooth concepts within ``binary_eps`` of {0, 1}; units with a smooth form) and, with
    ``rate_penalty > 0``, ``on_rate_penalty`` (the training loss term; 0 in evaluation).
    The two statistics carry no gradient."""
    z, pre = binary_concepts(
        normed,
        layer.surrogate,
        mode=layer.concept_mode,
        train=train,
        sharpness=layer_sharpness(layer, train, step),
        noise_std=layer.concept_noise,
        key=key,
        offset=layer.concept_offset,
    )
    unit = resolve_unit(layer.surrogate)
    stats = {"concept_rate": jnp.mean(unit(pre))}
    if unit.has_smooth:
        stats["near_binary"] = near_binary_share(unit.smooth(pre), layer.binary_eps)
    stats = jax.lax.stop_gradient(stats)
    if layer.rate_penalty > 0:
        zero = jnp.zeros((), jnp.float32)
        stats["on_rate_penalty"] = on_rate_penalty(z, layer.rate_penalty) if train else zero
    return z, stats


def near_binary_share(z: ArrayLike, eps: float = 0.01) -> Array:
    """Share of entries of ``z`` within ``eps`` of 0 or 1: a float32 scalar in [0, 1].

    mean(min(|z|, |1 − z|) ≤ eps)
    """
    z = jnp.asarray(z)
    dist = jnp.minimum(jnp.abs(z), jnp.abs(1.0 - z))
    return jnp.mean((dist <= eps).astype(jnp.float32))
