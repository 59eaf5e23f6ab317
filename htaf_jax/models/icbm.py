"""Implicit Concept Bottleneck Model (ICBM) and its standard baseline.

ICBM: backbone features h → concept layer z = u(s·BN(W·h)) with K concepts →
linear head, logits = z·V + b. The concept layer is
``htaf_jax.linen.concepts.ConceptBottleneck`` (its math: ``htaf_jax.concepts``):
``u`` is a binary unit from the surrogate registry (HTAF by default), s the
sharpness (1 unless ``sharpen`` is set). During training the concept layer runs
in the ``concept_mode`` form: ``"smooth"`` (z = u.smooth(·) ∈ (0, 1), the true
derivative) or ``"hard"`` (z = H(·) ∈ {0, 1}, surrogate derivative).
Evaluation (``train=False``) and every explanation use hard concepts, so a
prediction is exactly ``sum_k z_k V[k, c] + b_c`` over the active concepts.

Entries without a smooth form (straight-through) must train with
``concept_mode="hard"``.

Besides ``__call__`` (logits), the module has methods for the interpretation
tools, used as ``model.apply(variables, x, method=ICBM.concepts)``:
``concept_preactivations`` (s·BN(W·h), ranks examples per concept),
``concepts`` (hard or soft z), ``classify`` (head on given z) and
``explain`` (all of them at once).

Registered models (``config.model.name``): ``"icbm"`` and ``"standard"`` (the
baseline); see ``icbm_from_config`` for the config fields.
"""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
from jax import Array

from htaf_jax import concepts as core
from htaf_jax.linen.concepts import ConceptBottleneck
from htaf_jax.models.backbones import make_backbone
from htaf_jax.models.config_fields import module_kwargs
from htaf_jax.models.registry import register_model
from htaf_jax.surrogates import resolve_surrogate

__all__ = ["ICBM", "StandardClassifier", "icbm_from_config", "smooth_form", "standard_from_config"]

Step = Array | int | None


def smooth_form(surrogate) -> Callable[[Array], Array] | None:
    """The surrogate's smooth forward, or None when it has none (straight-through)."""
    if not getattr(surrogate, "has_smooth", False):
        return None
    return surrogate.smooth


class ICBM(nn.Module):
    """Backbone → K binary concepts → linear head. Returns logits (B, num_classes).

    Attributes:
      backbone: module called as ``backbone(images, train=bool)`` → (B, D).
      num_concepts: K.
      num_classes: number of logits.
      surrogate, concept_mode, binary_eps, concept_noise, sharpen,
        sharpen_fraction, total_train_steps: the concept layer's
        (``htaf_jax.linen.concepts.ConceptBottleneck``); the noise uses the rng
        stream ``"dropout"``. The engine passes ``total_train_steps`` to the
        factory and the train step to every call (``step``): the sharpening
        s(t) = sharpen^min(t / (sharpen_fraction · total_train_steps), 1) is a
        function of it (``htaf_jax.concepts.sharpness_schedule``), not a
        counter in the model's state. ``step=None`` in evaluation means
        training is over (s = ``sharpen``); the hard concepts do not depend on s.

    Parameters: ``backbone``, ``concept_layer`` (``proj``, ``norm``), ``head``.
    Sown (``intermediates``, under ``concept_layer``): ``near_binary`` (share of
    smooth concepts within ``binary_eps`` of {0, 1}; only for surrogates with a
    smooth form) and ``concept_rate`` (mean of the hard concepts).
    """

    backbone: nn.Module
    num_concepts: int = 32
    num_classes: int = 10
    surrogate: str | Callable = "htaf"
    concept_mode: core.ConceptMode = "smooth"
    binary_eps: float = 0.01
    concept_noise: float = 0.0
    sharpen: float = 1.0
    sharpen_fraction: float = 0.75
    total_train_steps: int = 0

    def setup(self):
        self.concept_layer = ConceptBottleneck(
            self.num_concepts, surrogate=self.surrogate, concept_mode=self.concept_mode,
            concept_noise=self.concept_noise, sharpen=self.sharpen,
            sharpen_fraction=self.sharpen_fraction, total_train_steps=self.total_train_steps,
            binary_eps=self.binary_eps)
        self.head = nn.Dense(self.num_classes)

    def _unit(self):
        unit = resolve_surrogate(self.surrogate)
        return unit, smooth_form(unit)

    def sharpness(self, step: Step = None) -> Array:
        """s at ``step`` in evaluation (a scalar); ``step=None``: the final ``sharpen``."""
        return self.concept_layer.sharpness(False, step)

    def concept_preactivations(self, images: Array, train: bool = False,
                               step: Step = None) -> Array:
        """s·BN(W·h): (B, K), what the unit reads. Positive ⇔ the hard concept is on
        (H(0) = 1)."""
        return self.concept_layer.preactivations(self.backbone(images, train=train), train, step)

    def concepts(self, images: Array, train: bool = False, hard: bool = True,
                 step: Step = None) -> Array:
        """Concepts (B, K): hard {0, 1} by default, else the smooth form."""
        pre = self.concept_preactivations(images, train=train, step=step)
        if hard:
            return core.hard_concepts(pre, self.surrogate)
        return core.soft_concepts(pre, self.surrogate)

    def classify(self, concepts: Array) -> Array:
        """The linear head on given concepts (B, K) → logits (B, num_classes)."""
        return self.head(concepts)

    def explain(self, images: Array, step: Step = None) -> dict[str, Array]:
        """Evaluation-mode pieces for the interpretation tools.

        Returns ``preactivations``, ``hard`` and ``logits`` (head on hard
        concepts, what the model predicts); for surrogates with a smooth form
        also ``soft`` and ``soft_logits``.
        """
        pre = self.concept_preactivations(images, train=False, step=step)
        unit, smooth = self._unit()
        hard = unit(pre)
        out = {"preactivations": pre, "hard": hard, "logits": self.head(hard)}
        if smooth is not None:
            soft = smooth(pre)
            out.update(soft=soft, soft_logits=self.head(soft))
        return out

    def __call__(self, images: Array, train: bool = False, step: Step = None) -> Array:
        h = self.backbone(images, train=train)
        return self.head(self.concept_layer(h, train=train, step=step))


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


def _split_backbone(model_config) -> tuple[nn.Module, dict]:
    """The backbone the config names, and the config's other fields (a dict)."""
    fields = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
    kwargs = fields.pop("backbone_kwargs", None) or {}
    return make_backbone(fields.pop("backbone", "mlp"), **dict(kwargs)), fields


@register_model("icbm")
def icbm_from_config(model_config) -> ICBM:
    """ICBM from ``config.model``: ``backbone`` (mlp | cnn | resnet), ``backbone_kwargs``
    (its fields), ``surrogate_kwargs`` (the unit's hyperparameters, see
    ``config_fields.module_kwargs``), and any field of ``ICBM`` (``num_concepts``,
    ``surrogate``, ``concept_mode``, ``concept_noise``, ``sharpen``, ``sharpen_fraction``,
    ``num_classes``, ``total_train_steps``; ``build_model`` gives the last two from the
    data and the run's length). Another field raises ValueError naming the valid ones."""
    backbone, fields = _split_backbone(model_config)
    return ICBM(backbone, **module_kwargs(ICBM, fields))


@register_model("standard")
def standard_from_config(model_config) -> StandardClassifier:
    """The baseline from ``config.model``: ``backbone``, ``backbone_kwargs``,
    ``hidden`` (0/None: linear head on the backbone), ``num_classes``."""
    backbone, fields = _split_backbone(model_config)
    kwargs = module_kwargs(StandardClassifier, fields)
    kwargs["hidden"] = kwargs.get("hidden") or None
    return StandardClassifier(backbone, **kwargs)
