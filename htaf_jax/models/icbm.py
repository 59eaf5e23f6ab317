"""Implicit Concept Bottleneck Model (ICBM) and its standard baseline.

ICBM: backbone features h → concept layer z = u(s·BN(W·h)) with K concepts →
linear head, logits = z·V + b (s: the sharpness, 1 unless ``sharpen`` is set).
``u`` is a binary unit from the surrogate registry (HTAF by default). During training the concept layer runs in the
``concept_mode`` form: ``"smooth"`` (z = u.smooth(·) ∈ (0, 1), the true
derivative) or ``"hard"`` (z = H(·) ∈ {0, 1}, surrogate derivative).
Evaluation (``train=False``) and every explanation use hard concepts, so a
prediction is exactly ``sum_k z_k V[k, c] + b_c`` over the active concepts.

Entries without a smooth form (straight-through) must train with
``concept_mode="hard"``.

Besides ``__call__`` (logits), the module has methods for the interpretation
tools, used as ``model.apply(variables, x, method=ICBM.concepts)``:
``concept_preactivations`` (BN(W·h), ranks examples per concept),
``concepts`` (hard or soft z), ``classify`` (head on given z) and
``explain`` (all of them at once).

Registered models (``config.model.name``): ``"icbm"`` and ``"standard"`` (the
baseline); see ``icbm_from_config`` for the config fields.
"""
from __future__ import annotations

from typing import Callable, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from htaf_jax.models.backbones import make_backbone
from htaf_jax.models.registry import register_model
from htaf_jax.surrogates import resolve_surrogate

__all__ = ["ICBM", "StandardClassifier", "icbm_from_config", "smooth_form", "standard_from_config"]

ConceptMode = Literal["smooth", "hard"]


def smooth_form(surrogate) -> Callable[[Array], Array] | None:
    """The surrogate's smooth forward, or None when it has none (straight-through)."""
    if not getattr(surrogate, "has_smooth", False):
        return None
    return surrogate.smooth


def _near_binary_share(z: Array, eps: float) -> Array:
    """Share of entries of ``z`` within ``eps`` of 0 or 1 (a scalar in [0, 1])."""
    dist = jnp.minimum(jnp.abs(z), jnp.abs(1.0 - z))
    return jnp.mean((dist <= eps).astype(jnp.float32))


class ICBM(nn.Module):
    """Backbone → K binary concepts → linear head. Returns logits (B, num_classes).

    Attributes:
      backbone: module called as ``backbone(images, train=bool)`` → (B, D).
      num_concepts: K.
      num_classes: number of logits.
      surrogate: registry name, ``Surrogate``, or callable x → {0, 1}.
      concept_mode: training-time concept form, ``"smooth"`` or ``"hard"``.
      binary_eps: ε of the sown ``near_binary`` statistic.
      concept_noise: std of Gaussian noise added to the pre-activations in
        training (rng stream ``"dropout"``); 0 turns it off. Noise before the
        binary unit makes pre-activations near the threshold costly, so the
        network moves them out to where the smooth form sits on its rails
        (the trick of Salakhutdinov & Hinton's semantic hashing, 2009).
      sharpen: final sharpness s of the concept unit, which reads s·BN(W·h)
        (for HTAF, htaf(s·x; α, β) = htaf(x; α, s·β)). Training starts at
        s = 1 and s grows geometrically to ``sharpen`` over the first
        ``sharpen_fraction`` of ``total_train_steps``, then stays: the network
        learns with the wide gradient of a soft unit and ends with one whose
        smooth form sits on its rails. The hard concepts do not depend on s.
        The train-step count and the current s live in the ``batch_stats``
        collection (``sharpen_count``, ``sharpness``), so they are
        checkpointed, averaged over devices like the BatchNorm statistics
        (every device holds the same values) and restored with the model;
        evaluation reads ``sharpness``. 1 (the default) turns it off.
      sharpen_fraction, total_train_steps: see ``sharpen``; the engine sets
        ``total_train_steps`` in ``config.model``.

    Sown (``intermediates``): ``near_binary`` (share of smooth concepts within
    ``binary_eps`` of {0, 1}; only for surrogates with a smooth form) and
    ``concept_rate`` (mean of the hard concepts).
    """

    backbone: nn.Module
    num_concepts: int = 32
    num_classes: int = 10
    surrogate: str | Callable = "htaf"
    concept_mode: ConceptMode = "smooth"
    binary_eps: float = 0.01
    concept_noise: float = 0.0
    sharpen: float = 1.0
    sharpen_fraction: float = 0.75
    total_train_steps: int = 0

    def setup(self):
        if not self.sharpen >= 1.0:
            raise ValueError(f"sharpen must be ≥ 1, got {self.sharpen!r}")
        if not 0.0 < self.sharpen_fraction <= 1.0:
            raise ValueError(f"sharpen_fraction must be in (0, 1], got {self.sharpen_fraction!r}")
        if self.concept_mode not in ("smooth", "hard"):
            raise ValueError(f"concept_mode must be 'smooth' or 'hard', got {self.concept_mode!r}")
        if self.sharpen != 1.0:
            self.sharpen_count = self.variable("batch_stats", "sharpen_count",
                                               lambda: jnp.zeros((), jnp.float32))
            self.sharpness_now = self.variable("batch_stats", "sharpness",
                                               lambda: jnp.ones((), jnp.float32))
        self.concept_proj = nn.Dense(self.num_concepts, use_bias=False)
        self.concept_norm = nn.BatchNorm(momentum=0.9)
        self.head = nn.Dense(self.num_classes)

    def _unit(self):
        unit = resolve_surrogate(self.surrogate)
        return unit, smooth_form(unit)

    def sharpness(self) -> Array:
        """The current s (a scalar): 1 → ``sharpen`` over training, see the class doc."""
        if self.sharpen == 1.0:
            return jnp.ones((), jnp.float32)
        return self.sharpness_now.value

    def _sharpness_at(self, count: Array) -> Array:
        if self.total_train_steps <= 0:
            raise ValueError(f"training with sharpen={self.sharpen} needs total_train_steps > 0 "
                             f"(the engine sets config.model.total_train_steps), got "
                             f"{self.total_train_steps}")
        ramp = self.sharpen_fraction * self.total_train_steps
        return jnp.asarray(self.sharpen, jnp.float32) ** jnp.minimum(count / ramp, 1.0)

    def _normed(self, images: Array, train: bool) -> Array:
        h = self.backbone(images, train=train)
        return self.concept_norm(self.concept_proj(h), use_running_average=not train)

    def concept_preactivations(self, images: Array, train: bool = False) -> Array:
        """s·BN(W·h): (B, K), what the unit reads. Positive ⇔ the hard concept is on
        (H(0) = 1)."""
        return self.sharpness() * self._normed(images, train)

    def concepts(self, images: Array, train: bool = False, hard: bool = True) -> Array:
        """Concepts (B, K): hard {0, 1} by default, else the smooth form."""
        pre = self.concept_preactivations(images, train=train)
        unit, smooth = self._unit()
        if hard:
            return unit(pre)
        if smooth is None:
            raise ValueError(f"surrogate {self.surrogate!r} has no smooth form")
        return smooth(pre)

    def classify(self, concepts: Array) -> Array:
        """The linear head on given concepts (B, K) → logits (B, num_classes)."""
        return self.head(concepts)

    def explain(self, images: Array) -> dict[str, Array]:
        """Evaluation-mode pieces for the interpretation tools.

        Returns ``preactivations``, ``hard`` and ``logits`` (head on hard
        concepts, what the model predicts); for surrogates with a smooth form
        also ``soft`` and ``soft_logits``.
        """
        pre = self.concept_preactivations(images, train=False)
        unit, smooth = self._unit()
        hard = unit(pre)
        out = {"preactivations": pre, "hard": hard, "logits": self.head(hard)}
        if smooth is not None:
            soft = smooth(pre)
            out.update(soft=soft, soft_logits=self.head(soft))
        return out

    def __call__(self, images: Array, train: bool = False) -> Array:
        pre = self._normed(images, train)
        unit, smooth = self._unit()
        if train and self.concept_noise > 0:
            noise = jax.random.normal(self.make_rng("dropout"), pre.shape, pre.dtype)
            pre = pre + self.concept_noise * noise
        pre = self.sharpness() * pre
        if train and self.sharpen != 1.0 and not self.is_initializing():
            count = self.sharpen_count.value + 1.0  # s for the next step, and for evaluation
            self.sharpen_count.value = count
            self.sharpness_now.value = self._sharpness_at(count)
        hard = unit(pre)
        if train and self.concept_mode == "smooth":
            if smooth is None:
                raise ValueError(
                    f"surrogate {self.surrogate!r} has no smooth form; "
                    "train it with concept_mode='hard'")
            z = smooth(pre)
        else:
            z = hard
        if smooth is not None:
            self.sow("intermediates", "near_binary", _near_binary_share(smooth(pre), self.binary_eps))
        self.sow("intermediates", "concept_rate", jnp.mean(hard))
        return self.head(z)


class StandardClassifier(nn.Module):
    """The ICBM's baseline: the same backbone with a standard (real-valued) head.

    ``hidden=None``: backbone → linear head. ``hidden=K``: backbone →
    Dense(K) → BN → ReLU → linear head, the ICBM's shape with a real-valued
    bottleneck instead of binary concepts.
    """

    backbone: nn.Module
    num_classes: int = 10
    hidden: int | None = None

    @nn.compact
    def __call__(self, images: Array, train: bool = False) -> Array:
        h = self.backbone(images, train=train)
        if self.hidden:
            h = nn.Dense(self.hidden, use_bias=False)(h)
            h = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(h))
        return nn.Dense(self.num_classes, name="head")(h)


def _backbone(model_config) -> nn.Module:
    kwargs = model_config.get("backbone_kwargs", None)
    return make_backbone(model_config.get("backbone", "mlp"), **(dict(kwargs) if kwargs else {}))


@register_model("icbm")
def icbm_from_config(model_config) -> ICBM:
    """ICBM from ``config.model``: ``backbone`` (mlp | cnn | resnet), ``backbone_kwargs``
    (its fields), ``num_concepts``, ``surrogate`` (registry name), ``surrogate_kwargs``
    (its hyperparameters, e.g. alpha, beta), ``concept_mode``, ``concept_noise``,
    ``sharpen``, ``sharpen_fraction``, ``num_classes`` and ``total_train_steps`` (the
    engine sets the last two)."""
    surrogate = model_config.get("surrogate", "htaf")
    hparams = model_config.get("surrogate_kwargs", None)
    if hparams:
        surrogate = resolve_surrogate(surrogate, **dict(hparams))
    return ICBM(_backbone(model_config), num_concepts=model_config.get("num_concepts", 32),
                num_classes=model_config.get("num_classes", 10), surrogate=surrogate,
                concept_mode=model_config.get("concept_mode", "smooth"),
                concept_noise=model_config.get("concept_noise", 0.0),
                sharpen=model_config.get("sharpen", 1.0),
                sharpen_fraction=model_config.get("sharpen_fraction", 0.75),
                total_train_steps=model_config.get("total_train_steps", 0))


@register_model("standard")
def standard_from_config(model_config) -> StandardClassifier:
    """The baseline from ``config.model``: ``backbone``, ``backbone_kwargs``,
    ``hidden`` (0/None: linear head on the backbone), ``num_classes``."""
    return StandardClassifier(_backbone(model_config), num_classes=model_config.get("num_classes", 10),
                              hidden=model_config.get("hidden", None) or None)
