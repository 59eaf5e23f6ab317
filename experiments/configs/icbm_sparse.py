"""The ICBM recipe of `make run`: the dense recipe of icbm.py with 512 concepts, each
concept's on-rate capped at 0.35 of a batch (affine-free BatchNorm, offset θ by
Cantelli's bound 1/(1+θ²)) and a non-negative head (a concept can only vote for a class).

    make run      # = python -m experiments.icbm --workdir workdirs/icbm
    python -m experiments.icbm --config experiments/configs/icbm_sparse.py --workdir workdirs/icbm

Chosen on the validation split by ``python -m experiments.run icbm_sparse_sweep``
(the recipe with the smallest accuracy loss among those with a mean on-rate ≤ 15% at
the dense recipe's 16 epochs) and, for HTAF's β, ``python -m experiments.run
icbm_alpha_beta_seeds`` (the best validation mean over seeds 0–2); confirmed on the test split over seeds 0–4 beside the
standard model by ``python -m experiments.run icbm_confirm``. Expected: hard concepts
about as accurate as the standard model with about a tenth of the concepts on per
image, each far purer in class than a random code's.
"""

import ml_collections

from experiments.configs import icbm
from htaf_jax.concepts import offset_for_on_rate

# The largest share of a training batch any one concept may switch on for.
ON_RATE_CAP = 0.35


def get_config() -> ml_collections.ConfigDict:
    config = icbm.get_config()
    config.model.num_concepts = 512
    config.model.norm_affine = False
    config.model.concept_offset = offset_for_on_rate(ON_RATE_CAP)
    config.model.nonneg_head = True
    config.model.surrogate_kwargs.htaf.beta = 0.5
    return config
