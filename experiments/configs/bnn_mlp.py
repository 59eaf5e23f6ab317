"""Binary MLP 784-1024-1024-10: ±1 weights (XNOR scale) and ±1 activations, BN before each sign.

    python -m experiments.bnn --config experiments/configs/bnn_mlp.py --workdir workdirs/bnn_mlp

Every layer's weights are binary, the output layer too (its BN scales the
logits); the first layer reads the real-valued standardised image. All
surrogates × 3 seeds:
``python -m experiments.sweep --family bnn_mlp --seeds 0,1,2 --surrogates all``.

Expected (HTAF, seed 0; measured): test accuracy 0.893 in 220 s on 2 shared CPU cores
(target ≥ 0.85); details in EXPECTED.

Seeds 0, 1, 2 (HTAF; measured, 2 CPU cores (Intel Xeon), 2026-11-28; the full
profile's runs, table in RESULTS.md): test accuracy 89.51 ± 0.19% (89.34, 89.71,
89.48), 216 s per run. Command:
``python -m experiments.sweep --family bnn_mlp --seeds 0,1,2 --surrogates htaf --out results/full/bnn_mlp``.
"""
from experiments.configs import base

EXPECTED = ("HTAF (α=4, β=1), seed 0: test accuracy 0.8930 after 8 epochs, 220 s wall "
            "(python -m experiments.bnn, 2 shared CPU cores (AMD EPYC), jax 0.10.2, 2026-11-25); "
            "per-epoch test accuracy 0.844, 0.861, 0.874, 0.881, 0.885, 0.889, 0.893, 0.893")


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
