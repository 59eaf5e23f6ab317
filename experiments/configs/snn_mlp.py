"""Spiking MLP 784-1000-10 (LIF, β = 0.9, θ = 1, subtract reset) on Fashion-MNIST.

    python -m experiments.snn --config experiments/configs/snn_mlp.py --workdir workdirs/snn_mlp

Surrogate from the registry: ``--config.model.surrogate=atan`` (hyperparameters:
``--config.model.surrogate_kwargs.alpha=…``). Sweep over all surrogates and 3 seeds:
``python -m experiments.sweep --family snn_mlp --seeds 0,1,2 --surrogates all --out results/snn_mlp``.

Expected (HTAF, seed 0, 2 CPU cores): see EXPECTED below.
"""
from experiments.configs import base

EXPECTED = "test accuracy ≥ 0.88 in about 10 minutes on 2 CPU cores (to be measured)"


def get_config():
    config = base.get_config()
    config.num_epochs = 5
    config.learning_rate = 1e-3
    config.model.name = "snn_mlp"
    config.model.hidden = (1000,)
    config.model.num_steps = 25
    config.model.encoding = "rate"
    config.model.neuron = "lif"
    config.model.beta = 0.9
    config.model.threshold = 1.0
    config.model.reset = "subtract"
    config.model.readout = "membrane"
    config.model.surrogate = "htaf"
    config.model.surrogate_kwargs = {}
    return config
