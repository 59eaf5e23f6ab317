"""Bi-Real-Net-style binary ResNet: real stem → 3 stages × 2 binary 3×3 convs with real
shortcuts → ReLU → mean pool → Dense (``htaf_jax.models.bnn_resnet``).

    python -m experiments.train --config experiments/configs/bnn_resnet.py --workdir workdirs/bnn_resnet

Trains a binary ResNet (stages 32-64-128, 4 epochs; the time it takes on this host:
``python -m experiments.run bnn_resnet --dry-run``) on Fashion-MNIST; ``--config.model.surrogate=ste_sign|approx_sign`` for the other units, all
three side by side: ``python -m experiments.run bnn_resnet`` (results in RESULTS.md).
"""

from experiments.configs import base


def get_config():
    config = base.get_config()
    config.num_epochs = 4
    config.learning_rate = 5e-3  # bnn_resnet_lr (CHOSEN_BY)
    config.model.name = "bnn_resnet"
    config.model.stage_features = (32, 64, 128)
    config.model.blocks_per_stage = 2
    config.model.stem_features = 0
    config.model.react = False  # True: ReActNet's RSign + RPReLU (bnn_resnet_budget)
    config.model.surrogate = "htaf"
    config.model.surrogate_kwargs = {"htaf": {"alpha": 4.0, "beta": 1.0}}
    return config
