"""Interpretation tools for Implicit Concept Bottleneck Models (ICBM).

- activations: ``concept_activations`` (hard/soft concepts for a dataset),
  ``discretisation`` (share within ε of {0, 1}, hard vs soft accuracy).
- explain: ``class_concepts``, ``concept_contributions``, ``intervene``,
  ``explain_text``, ``head_weights``.
- grids: ``save_concept_grid`` / ``save_concept_overview`` (PNG).
- measures: interpretability of the concepts: ``sparsity``, ``purity``,
  ``random_code_purity``, ``explanation_size``, ``stability``, ``completeness``,
  ``leakage`` (``linear_probe_accuracy``), all at once ``concept_measures``.
"""
from htaf_jax._extras import require_extra

require_extra("train", "htaf_jax.interpret", "matplotlib", "scipy")

from htaf_jax.interpret.activations import (
    ConceptActivations,
    concept_activations,
    discretisation,
    near_binary_share,
)
from htaf_jax.interpret.explain import (
    Explanation,
    Intervention,
    class_concepts,
    concept_contributions,
    concept_labels,
    decisive_concepts,
    explain_text,
    explanation_usage,
    head_weights,
    intervene,
)
from htaf_jax.interpret.grids import (
    overview_concepts,
    ranked_examples,
    save_concept_grid,
    save_concept_overview,
    save_explained_overview,
    write_concept_figures,
)
from htaf_jax.interpret.measures import (
    Stability,
    chance_accuracy,
    completeness,
    concept_measures,
    explanation_size,
    leakage,
    linear_probe_accuracy,
    purity,
    random_code_purity,
    sparsity,
    stability,
)

__all__ = [
    "ConceptActivations", "concept_activations", "discretisation", "near_binary_share",
    "Intervention", "class_concepts", "concept_contributions", "explain_text", "head_weights",
    "intervene", "ranked_examples", "save_concept_grid", "save_concept_overview",
    "Explanation", "concept_labels", "decisive_concepts", "explanation_usage",
    "overview_concepts", "save_explained_overview", "write_concept_figures",
    "Stability", "chance_accuracy", "completeness", "concept_measures", "explanation_size",
    "leakage", "linear_probe_accuracy", "purity", "random_code_purity", "sparsity", "stability",
]
