"""Binary convnet: [BinaryConv3×3 → MaxPool2 → BN → sign] × 2 → BinaryDense 256 → BN → sign → head.

    python -m experiments.train --config experiments/configs/bnn_conv.py --workdir workdirs/bnn_conv

All weights ±1 (XNOR per-channel scale), all hidden activations ±1. Every
surrogate × 3 seeds: ``python -m experiments.run bnn_conv``.

Expected: the HTAF run reaches the target of 88% test accuracy; measured values are in
RESULTS.md (the bnn_conv study).
"""

from experiments.configs import base


def get_config():
    config = base.get_config()
    config.num_epochs = 5
    config.learning_rate = 1e-3
    config.model.name = "bnn_conv"
    config.model.features = (32, 64)
    config.model.hidden = 256
    config.model.use_scale = True
    config.model.full_precision_first = False
    config.model.full_precision_head = False
    config.model.dropout_rate = 0.0
    config.model.surrogate = "htaf"
    config.model.surrogate_kwargs = {"htaf": {"alpha": 4.0, "beta": 1.0}}
    return config
