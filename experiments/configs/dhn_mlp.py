r"""Deep Heaviside MLP: ``depth`` layers of ``width`` Heaviside units (BN before each) → Dense.

    python -m experiments.train --config experiments/configs/dhn_mlp.py --workdir workdirs/dhn_mlp \
        [--config.model.depth=8] [--config.model.variant=skip] [--config.model.mode=smooth]

``mode="hard"``: H(z) forward, surrogate backward while training; evaluation
always uses true Heaviside units. ``variant``: plain, skip (every layer also
reads the input) or mixed (a share of linear units per layer), after Kong, Chen,
Langer & Schmidt-Hieber (arXiv 2505.00110). Studies against depth (accuracy and
per-layer gradient norms, every surrogate): ``python -m experiments.run dhn_depths``
(and ``dhn_skip``, ``dhn_mixed``, ``dhn_alpha_beta``).

Expected: the HTAF run at depth 4 reaches the target of 87% test accuracy; measured
values, and how the variants hold up with depth, are in RESULTS.md.
"""

from experiments.configs import base


def get_config():
    config = base.get_config()
    config.num_epochs = 10
    config.learning_rate = 1e-3
    config.model.name = "dhn_mlp"
    config.model.depth = 4
    config.model.width = 512
    config.model.variant = "plain"
    config.model.mode = "hard"
    config.model.linear_fraction = 0.25
    config.model.use_batchnorm = True
    config.model.surrogate = "htaf"
    config.model.surrogate_kwargs = {"htaf": {"alpha": 4.0, "beta": 0.5}}
    return config
