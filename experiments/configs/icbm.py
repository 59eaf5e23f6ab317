"""ICBM on Fashion-MNIST: MLP backbone → 128 HTAF concepts → linear head.

    python -m experiments.icbm --workdir workdirs/icbm            # `make run`
    python -m experiments.icbm --workdir workdirs/icbm --config.model.backbone=cnn
    python -m experiments.icbm explain --workdir workdirs/icbm --index 0

The main job trains the ICBM (smooth HTAF concepts, α=16, β=4, Gaussian noise
of std 1 on the concept pre-activations in training), then the same backbone
with a standard linear head on the same budget (``baseline``), then writes
concept grids and ``results.md`` / ``results.json`` to the work dir.

Measured (seed 0, 2 shared CPU cores, 2026-11-25; `make run`): hard-concept
test accuracy 88.53% vs 90.40% for the standard model (−1.87 pts; target
within 1.0), 96.80% of test concept activations within 0.01 of {0, 1} (98.51%
within 0.1; target ≥ 99%), soft − hard gap −0.01 pts (target ≤ 0.3); about
6 minutes (3.2 ICBM + 2.3 baseline). What the concept-layer settings trade, all
at 8 epochs unless noted (test split, seed 0):

    α   β  noise  K    hard acc   within 0.01
    8   2  0      32   89.37%     78.94%
    8   2  1.0    32   87.70%     94.38%   (4 epochs)
    16  4  1.0    32   85.66%     98.30%   (4 epochs)
    16  4  1.0    128  87.21%     96.49%   (4 epochs)
    16  4  1.0    32   86.94%     98.45%
    16  4  1.0    128  88.53%     96.80%   (the default)

Sharper units and noise make the concepts more binary and cost accuracy; no
setting tried here meets both the accuracy and the 99% targets.
"""
import ml_collections

from experiments.configs import base


def get_config() -> ml_collections.ConfigDict:
    config = base.get_config()
    config.num_epochs = 8
    config.batch_size = 128
    config.learning_rate = 2e-3
    config.checkpoint_every_steps = 1000
    config.log_every_steps = 100

    config.model.name = "icbm"
    config.model.backbone = "mlp"  # mlp | cnn | resnet
    config.model.backbone_kwargs = ml_collections.ConfigDict({"widths": (512, 256)})
    config.model.num_concepts = 128
    config.model.surrogate = "htaf"
    # With α ≤ 4.6 no activation can come within 0.01 of {0, 1} at all; α = 16
    # puts the rails at σ(±16) ≈ 1e-7 and, with β = 4, an activation is within
    # 0.01 of a rail once |BN(W·h)| > 0.074.
    config.model.surrogate_kwargs = ml_collections.ConfigDict({"alpha": 16.0, "beta": 4.0})
    config.model.concept_mode = "smooth"  # smooth | hard (training form; eval is hard)
    config.model.concept_noise = 1.0  # std of training noise on the concept pre-activations

    # Experiment fields (experiments/icbm.py), not read by the engine.
    config.baseline = True  # also train model.name='standard' into workdir/baseline
    config.grid_concepts = 8  # concepts (largest head weights first) that get PNG grids
    config.grid_size = 16  # images per grid
    return config
