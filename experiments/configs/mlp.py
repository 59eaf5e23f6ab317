"""A small Dense-ReLU MLP on Fashion-MNIST: the engine's reference run.

    python -m experiments.train --config experiments/configs/mlp.py --workdir workdirs/mlp

Expected: at least 85% test accuracy (a sanity target) after the default 10 epochs,
a few minutes on a laptop CPU.
"""

from experiments.configs import base


def get_config():
    config = base.get_config()
    config.model.name = "mlp"
    config.model.hidden_sizes = (256, 128)
    config.model.batch_norm = False
    config.model.dropout_rate = 0.0
    return config
