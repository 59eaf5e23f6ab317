"""Implicit Concept Bottleneck Model (ICBM) and its standard baseline.

ICBM: backbone features h → concept layer z = u(s·BN(W·h)) with K concepts →
linear head, logits = z·V + b. The concept layer is
``htaf_jax.linen.concepts.ConceptBottleneck`` (its math, its training forms and its
options for sparse concepts: ``htaf_jax.concepts``). Evaluation (``train=False``) and
every explanation use hard concepts, so a prediction is exactly
``sum_k z_k V[k, c] + b_c`` over the active concepts. ``nonneg_head=True`` makes the
head V = max(kernel, 0) (kernel initialised non-negative): every active concept adds
evidence for classes, never against, and weights pushed below 0 stay exactly 0.

The interpretation tools call its methods as ``model.apply(variables, x,
method=ICBM.concepts)``. Registered models (``config.model.name``): ``"icbm"`` and
``"standard"`` (the baseline).
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from htaf_jax import concepts as core
from htaf_jax.linen.concepts import ConceptBottleneck
from htaf_jax.models.backbones import make_backbone
from htaf_jax.models.config_fields import module_kwargs
from htaf_jax.models.registry import register_model
from htaf_jax.units import resolve_unit

__all__ = [
    "ICBM",
    "NonNegativeDense",
    "StandardClassifier",
    "icbm_from_config",
    "smooth_form",
    "standard_from_config",
]

Step = Array | int | None


def smooth_form(unit) -> Callable[[Array], Array] | None:
    """The unit's smooth forward, or None when it has none (straight-through)."""
    return unit.smooth if unit.has_smooth else None


def _abs_lecun_normal(key, shape, dtype=jnp.float32):
    return jnp.abs(nn.initializers.lecun_normal()(key, shape, dtype))


class NonNegativeDense(nn.Module):
    """y = x · max(kernel, 0) + bias: a linear head whose weights are ≥ 0.

    The kernel starts at |lecun_normal| (all weights live); an entry the
    gradient pushes below 0 contributes exactly 0 and gets no gradient again.
    Parameters ``kernel`` (in_features, features) and ``bias`` (features,), as ``nn.Dense``.
    """

    in_features: int
    features: int

    def setup(self):
        self.kernel = self.param("kernel", _abs_lecun_normal, (self.in_features, self.features))
        self.bias = self.param("bias", nn.initializers.zeros, (self.features,))

    def weights(self) -> tuple[Array, Array]:
        """The effective kernel max(kernel, 0) (K, C) and the bias (C,)."""
        return jax.nn.relu(self.kernel), self.bias

    def __call__(self, x: Array) -> Array:
        kernel, bias = self.weights()
        return x @ kernel + bias


class ICBM(nn.Module, core.ConceptFields):
    """Backbone → K binary concepts → linear head. Returns logits (B, num_classes).

    Attributes:
      backbone: module called as ``backbone(images, train=bool)`` → (B, D).
      num_classes: number of logits.
      the concept layer's fields (``htaf_jax.concepts.ConceptFields``,
        keyword-only: ``num_concepts``, ``surrogate``, ``concept_mode``, …); the
        noise uses the rng stream ``"dropout"``. The engine passes ``total_train_steps`` to the
        factory and the train step to every call (``step``): the sharpening
        s(t) = sharpen^min(t / (sharpen_fraction · total_train_steps), 1) is a
        function of it (``htaf_jax.concepts.sharpness_schedule``), not a
        counter in the model's state. ``step=None`` in evaluation means
        training is over (s = ``sharpen``); the hard concepts do not depend on s.
      nonneg_head: the head is ``NonNegativeDense`` (V = max(kernel, 0)).
      head_l1: μ of the sown training loss μ·mean|V| (0: not sown).

    Parameters: ``backbone``, ``concept_layer`` (``proj``, ``norm``), ``head``. Sown: the
    concept layer's (under ``concept_layer``), and in training ``losses/head_l1``.
    """

    backbone: nn.Module
    num_classes: int = 10
    nonneg_head: bool = False
    head_l1: float = 0.0

    def setup(self):
        if not self.head_l1 >= 0:
            raise ValueError(f"head_l1 must be ≥ 0, got {self.head_l1!r}")
        self.concept_layer = ConceptBottleneck(**self.concept_fields())
        self.head = (
            NonNegativeDense(self.num_concepts, self.num_classes)
            if self.nonneg_head
            else nn.Dense(self.num_classes)
        )

    def _unit(self):
        unit = resolve_unit(self.surrogate)
        return unit, smooth_form(unit)

    def sharpness(self, step: Step = None) -> Array:
        """s at ``step`` in evaluation (a scalar); ``step=None``: the final ``sharpen``."""
        return self.concept_layer.sharpness(False, step)

    def concept_preactivations(
        self, images: Array, train: bool = False, step: Step = None
    ) -> Array:
        """s·BN(W·h): (B, K), what the unit reads. Positive ⇔ the hard concept is on
        (H(0) = 1)."""
        return self.concept_layer.preactivations(self.backbone(images, train=train), train, step)

    def concepts(
        self, images: Array, train: bool = False, hard: bool = True, step: Step = None
    ) -> Array:
        """Concepts (B, K): hard {0, 1} by default, else the smooth form."""
        pre = self.concept_preactivations(images, train=train, step=step)
        unit = resolve_unit(self.surrogate)
        return unit(pre) if hard else unit.smooth(pre)

    def classify(self, concepts: Array) -> Array:
        """The linear head on given concepts (B, K) → logits (B, num_classes)."""
        return self.head(concepts)

    def head_params(self) -> tuple[Array, Array]:
        """The head's effective kernel V (K, C) and bias b (C,): logits = z V + b.

        Call as ``model.apply(variables, method=ICBM.head_params)``."""
        if self.nonneg_head:
            return self.head.weights()
        v = self.head.variables["params"]
        return v["kernel"], v["bias"]

    def explain(self, images: Array, step: Step = None) -> dict[str, Array]:
        """Evaluation-mode pieces for the interpretation tools.

        Returns ``preactivations``, ``hard`` and ``logits`` (head on hard
        concepts, what the model predicts); for units with a smooth form
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
        logits = self.head(self.concept_layer(h, train=train, step=step))
        if train and self.head_l1 > 0:
            kernel, _ = self.head_params()
            self.sow("losses", "head_l1", self.head_l1 * jnp.mean(jnp.abs(kernel)))
        return logits


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
    """ICBM from ``config.model``: ``backbone`` (mlp | cnn | resnet | resnet18 | vit),
    ``backbone_kwargs`` (its fields), ``surrogate_kwargs`` (the unit's hyperparameters,
    see ``config_fields.module_kwargs``) and any field of ``ICBM``; another field raises
    ValueError naming the valid ones."""
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
