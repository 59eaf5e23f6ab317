"""Binary networks on Fashion-MNIST (MLP by default; ``--config experiments/configs/bnn_conv.py``).

    python -m experiments.bnn --workdir workdirs/bnn_mlp [--config.model.surrogate=ste_hardtanh]
"""
from htaf_jax.train import cli

if __name__ == "__main__":
    cli.main(default_config="experiments/configs/bnn_mlp.py")
