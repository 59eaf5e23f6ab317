"""Small spiking convnet: [Conv3×3 → BN → LIF → MaxPool2] × 2 → Dense → mean membrane.

    python -m experiments.snn --config experiments/configs/snn_conv.py --workdir workdirs/snn_conv

Direct encoding (the first convolution runs once), T steps of LIF dynamics
(β = 0.9, θ = 1, subtract reset). All surrogates × 3 seeds:
``python -m experiments.sweep --family snn_conv --seeds 0,1,2 --surrogates all``.

Expected (HTAF, seed 0): see EXPECTED (measured, not guessed).
"""
from experiments.configs import base

EXPECTED = "to be measured"


def get_config():
    config = base.get_config()
    config.num_epochs = 3
    config.learning_rate = 2e-3
    config.model.name = "snn_conv"
    config.model.features = (16, 32)
    config.model.num_steps = 2
    config.model.encoding = "direct"
    config.model.neuron = "lif"
    config.model.beta = 0.9
    config.model.threshold = 1.0
    config.model.reset = "subtract"
    config.model.readout = "membrane"
    config.model.surrogate = "htaf"
    config.model.surrogate_kwargs = {"htaf": {"alpha": 4.0, "beta": 1.0}}
    return config
