"""Binary convnet: [BinaryConv3×3 → MaxPool2 → BN → sign] × 2 → BinaryDense 256 → BN → sign → head.

    python -m experiments.bnn --config experiments/configs/bnn_conv.py --workdir workdirs/bnn_conv

All weights ±1 (XNOR per-channel scale), all hidden activations ±1. All
surrogates × 3 seeds:
``python -m experiments.sweep --family bnn_conv --seeds 0,1,2 --surrogates all``.

Expected (HTAF, seed 0; measured): test accuracy 0.892 in 560 s on 2 shared CPU cores
(target ≥ 0.88); details in EXPECTED.

Seeds 0, 1, 2 (HTAF; measured, 2 CPU cores (Intel Xeon), 2026-11-28; the full
profile's runs, table in RESULTS.md): test accuracy 89.17 ± 0.13% (89.08, 89.32,
89.11), 367 s per run. Command:
``python -m experiments.sweep --family bnn_conv --seeds 0,1,2 --surrogates htaf --out results/full/bnn_conv``.
"""
from experiments.configs import base

EXPECTED = ("HTAF (α=4, β=1), seed 0: test accuracy 0.8918 after 5 epochs, 560 s wall "
            "(python -m experiments.bnn --config experiments/configs/bnn_conv.py, 2 shared CPU "
            "cores (AMD EPYC), jax 0.10.2, 2026-11-25); per-epoch test accuracy "
            "0.861, 0.866, 0.876, 0.882, 0.892")


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
