r"""Deep Heaviside MLP: ``depth`` layers of ``width`` Heaviside units (BN before each) → Dense.

    python -m experiments.dhn --config experiments/configs/dhn_mlp.py --workdir workdirs/dhn_mlp \
        [--config.model.depth=8] [--config.model.variant=skip] [--config.model.mode=smooth]

``mode="hard"``: H(z) forward, surrogate backward while training;
evaluation always uses true Heaviside units. Depth study (accuracy and
per-layer gradient norms vs depth, every surrogate):
``python -m experiments.sweep --family dhn_mlp --depths 2,4,8,16 --seeds 0,1,2 --surrogates all``.

Expected (HTAF, depth 4, seed 0; measured): test accuracy 0.891 in 278 s on 2 shared CPU
cores (target ≥ 0.87); details in EXPECTED.

Seeds 0, 1, 2 (HTAF; measured, 2 CPU cores (Intel Xeon), 2026-11-28; the full
profile's runs, table in RESULTS.md): depth 4, test accuracy 89.22 ± 0.04% (89.23,
89.25, 89.18), 80 s per run. Command:
``python -m experiments.sweep --family dhn_mlp --depths 4 --seeds 0,1,2 --surrogates htaf --out results/full/dhn_depths``.

Variants against depth (quick profile: 6000 training images, 2 epochs, 2000
test images; seeds 0, 1, 2; 2026-11-28; `make results PROFILE=quick`, section
"plain vs skip vs mixed" of RESULTS.md), HTAF test accuracy %:

    depth   plain          skip           mixed
    2       83.92 ± 0.53   84.53 ± 0.42   84.27 ± 0.38
    16      62.13 ± 3.13   84.23 ± 0.63   81.97 ± 0.13

Plain HTAF DHNs lose accuracy past depth 8 (as do most surrogates; straight-
through and piecewise_exp hold best); with ``variant=skip`` (every layer also
reads the input) HTAF stays flat to depth 16 and is the best of the four
surrogates compared there, though the first layer's gradient still decays with
depth (‖g_0‖ 5e-5 at initialisation, depth 16).
"""
from experiments.configs import base

EXPECTED = ("HTAF (α=4, β=1), depth 4, seed 0: test accuracy 0.8914 after 10 epochs, 278 s wall "
            "(python -m experiments.dhn, 2 shared CPU cores (AMD EPYC), jax 0.10.2, 2026-11-25); "
            "per-epoch test accuracy 0.832, 0.855, 0.871, 0.870, 0.880, 0.878, 0.887, 0.889, "
            "0.892, 0.891")


def get_config():
    config = base.get_config()
    config.num_epochs = 10
    config.learning_rate = 1e-3
    config.model.name = "dhn_mlp"
    config.model.depth = 4
    config.model.width = 512
    config.model.variant = "plain"
    config.model.mode = "hard"
    config.model.linear_fraction = 0.25
    config.model.use_batchnorm = True
    config.model.surrogate = "htaf"
    config.model.surrogate_kwargs = {"htaf": {"alpha": 4.0, "beta": 1.0}}
    return config
