r"""Train any registered model from a config file: the one launcher of a training run.

    python -m experiments.train --config experiments/configs/snn_mlp.py \
        --workdir workdirs/snn_mlp [--config.model.surrogate=atan] [--config.num_epochs=1]
"""

import sys

from htaf_jax.train import cli

if __name__ == "__main__":
    sys.exit(cli.main())
