"""Spiking networks on Fashion-MNIST (LIF MLP by default; ``--config experiments/configs/snn_conv.py``).

    python -m experiments.snn --workdir workdirs/snn_mlp [--config.model.surrogate=atan]
"""
from htaf_jax.train import cli

if __name__ == "__main__":
    cli.main(default_config="experiments/configs/snn_mlp.py")
