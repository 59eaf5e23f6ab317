r"""Train any registered model from a config file.

    python -m experiments.train --config experiments/configs/mlp.py \
        --workdir workdirs/mlp --config.num_epochs=1
"""
from htaf_jax.train import cli

if __name__ == "__main__":
    cli.main(default_config="experiments/configs/mlp.py")
