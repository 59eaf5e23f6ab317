"""Binary MLP 784-1024-1024-10: ±1 weights (XNOR scale) and ±1 activations, BN before each sign.

    python -m experiments.train --config experiments/configs/bnn_mlp.py --workdir workdirs/bnn_mlp

Every layer's weights are binary, the output layer too (its BN scales the
logits); the first layer reads the real-valued standardised image. Every
surrogate × 3 seeds: ``python -m experiments.run bnn_mlp``.

Expected: the HTAF run reaches the target of 85% test accuracy; measured values are in
RESULTS.md (the bnn_mlp study).
"""

from experiments.configs import base


def get_config():
    config = base.get_config()
    config.num_epochs = 8
    config.learning_rate = 1e-3
    config.model.name = "bnn_mlp"
    config.model.hidden = (1024, 1024)
    config.model.use_scale = True
    config.model.full_precision_head = False
    config.model.dropout_rate = 0.0
    config.model.surrogate = "htaf"
    config.model.surrogate_kwargs = {"htaf": {"alpha": 4.0, "beta": 1.0}}
    return config
