"""Spiking MLP 784-1000-10 (LIF, β = 0.9, θ = 1, subtract reset) on Fashion-MNIST.

    python -m experiments.snn --config experiments/configs/snn_mlp.py --workdir workdirs/snn_mlp

Direct encoding (the standardised image is a constant input current at each of
T = 25 steps, so the first Dense runs once, not T times) and a mean-membrane
readout. Rate coding (``--config.model.encoding=rate``) is the classic
snnTorch setup; at T = 25 on 2 CPU cores it costs ~10× more per step.
Surrogate from the registry: ``--config.model.surrogate=atan``; HTAF's α, β
are in ``surrogate_kwargs.htaf``. All surrogates × 3 seeds:
``python -m experiments.sweep --family snn_mlp --seeds 0,1,2 --surrogates all``.

Expected (HTAF, seed 0; measured): test accuracy 0.886 in 210 s on 2 shared CPU cores
(target ≥ 0.88); details in EXPECTED.

Seeds 0, 1, 2 (HTAF; measured, 2 CPU cores (Intel Xeon), 2026-11-28; the full
profile's runs, table in RESULTS.md): test accuracy 88.71 ± 0.11% (88.67, 88.62,
88.83), 194 s per run. Command:
``python -m experiments.sweep --family snn_mlp --seeds 0,1,2 --surrogates htaf --out results/full/snn_mlp``.
"""
from experiments.configs import base

EXPECTED = ("HTAF (α=4, β=1), seed 0: test accuracy 0.8864 after 8 epochs, 210 s wall "
            "(python -m experiments.snn, 2 shared CPU cores (AMD EPYC), jax 0.10.2, 2026-11-25); "
            "per-epoch test accuracy 0.845, 0.857, 0.868, 0.875, 0.879, 0.884, 0.887, 0.886")


def get_config():
    config = base.get_config()
    config.num_epochs = 8
    config.learning_rate = 1e-3
    config.model.name = "snn_mlp"
    config.model.hidden = (1000,)
    config.model.num_steps = 25
    config.model.encoding = "direct"
    config.model.neuron = "lif"
    config.model.beta = 0.9
    config.model.threshold = 1.0
    config.model.reset = "subtract"
    config.model.readout = "membrane"
    # What the rate and latency codes need to undo the pipeline's standardisation:
    # the mean and std that htaf_jax.data's Normalizer fits on Fashion-MNIST's train split.
    config.model.input_mean = 0.2860
    config.model.input_std = 0.3530
    config.model.surrogate = "htaf"
    config.model.surrogate_kwargs = {"htaf": {"alpha": 4.0, "beta": 1.0}}
    return config
