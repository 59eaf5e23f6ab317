"""Interpretation tools for Implicit Concept Bottleneck Models (ICBM).

One module a topic: ``activations`` (a dataset's concepts, how binary they are),
``explain`` (a prediction read off its concepts; interventions), ``sparse_head``
(accuracy at a number of effective concepts per class, NEC), ``codes`` (the binary
code's accuracy ceiling; a random code), ``grids`` (PNG figures of a concept's
images) and ``measures`` (the concepts' interpretability, ``concept_measures``).
"""

from htaf_jax._extras import require_extra

require_extra("train", "htaf_jax.interpret", "matplotlib", "scipy")

from htaf_jax.interpret.activations import (
    ConceptActivations,
    concept_activations,
    discretisation,
    near_binary_share,
)
from htaf_jax.interpret.codes import (
    CodeCollisions,
    RandomConcepts,
    code_collisions,
    random_concepts,
)
from htaf_jax.interpret.explain import (
    Explanation,
    Intervention,
    InterventionCurve,
    class_concepts,
    concept_contributions,
    concept_labels,
    decisive_concepts,
    explain_text,
    explanation_usage,
    head_weights,
    intervene,
    intervention_curve,
)
from htaf_jax.interpret.grids import (
    overview_concepts,
    ranked_examples,
    save_class_overview,
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
    margin_coverage,
    purity,
    random_code_purity,
    sparsity,
    stability,
)
from htaf_jax.interpret.sparse_head import (
    RefitChoice,
    SparseHead,
    choose_sparse_head,
    choose_sparse_heads,
    fit_sparse_head,
    head_accuracy,
    l1_heads,
    nec_mask,
)

__all__ = [
    "ConceptActivations",
    "concept_activations",
    "discretisation",
    "near_binary_share",
    "Intervention",
    "class_concepts",
    "concept_contributions",
    "explain_text",
    "head_weights",
    "intervene",
    "InterventionCurve",
    "intervention_curve",
    "ranked_examples",
    "save_concept_grid",
    "save_concept_overview",
    "Explanation",
    "concept_labels",
    "decisive_concepts",
    "explanation_usage",
    "overview_concepts",
    "save_explained_overview",
    "write_concept_figures",
    "Stability",
    "chance_accuracy",
    "completeness",
    "concept_measures",
    "explanation_size",
    "leakage",
    "linear_probe_accuracy",
    "purity",
    "random_code_purity",
    "sparsity",
    "stability",
    "CodeCollisions",
    "RandomConcepts",
    "code_collisions",
    "random_concepts",
    "RefitChoice",
    "SparseHead",
    "choose_sparse_head",
    "choose_sparse_heads",
    "fit_sparse_head",
    "head_accuracy",
    "l1_heads",
    "nec_mask",
    "margin_coverage",
    "save_class_overview",
]
