"""A small Dense-ReLU MLP on Fashion-MNIST: the engine's reference run.

    python -m experiments.train --config experiments/configs/mlp.py --workdir workdirs/mlp

Expected: about 88% test accuracy after the default 10 epochs (batch 128,
adam 1e-3, cosine), a few minutes on a laptop CPU.
"""
from experiments.configs import base


def get_config():
    config = base.get_config()
    config.model.name = "mlp"
    config.model.hidden_sizes = (256, 128)
    config.model.batch_norm = False
    config.model.dropout_rate = 0.0
    return config
