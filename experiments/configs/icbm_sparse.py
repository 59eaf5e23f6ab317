"""ICBM with sparse concepts: the dense recipe of icbm.py with each concept's on-rate
capped at a quarter of a batch (affine-free BatchNorm, offset θ = √3, Cantelli).

    python -m experiments.icbm --config experiments/configs/icbm_sparse.py --workdir workdirs/icbm_sparse

Expected: concepts on for about a tenth of the images each, with a far higher class
purity than the dense recipe's at a small cost in accuracy; the sweep that chooses
the cap on the validation split is ``python -m experiments.run icbm_recipe``.
"""
import ml_collections

from experiments.configs import icbm
from htaf_jax.concepts import offset_for_on_rate

# The largest share of a training batch any one concept may switch on for.
ON_RATE_CAP = 0.25


def get_config() -> ml_collections.ConfigDict:
    config = icbm.get_config()
    config.model.norm_affine = False
    config.model.concept_offset = offset_for_on_rate(ON_RATE_CAP)
    return config
