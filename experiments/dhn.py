"""Deep Heaviside networks on Fashion-MNIST (MLP, depth 4 by default).

    python -m experiments.dhn --workdir workdirs/dhn_mlp [--config.model.depth=16]
"""
from htaf_jax.train import cli

if __name__ == "__main__":
    cli.main(default_config="experiments/configs/dhn_mlp.py")
