r"""Defaults every experiment config starts from: ``config = base.get_config()``.

Launch (any field can be overridden on the command line):

    python -m experiments.train --config experiments/configs/mlp.py \
        --workdir workdirs/mlp --config.num_epochs=3

``--config.runlocal=True`` shrinks any config to a seconds-long smoke run.
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0

    # Data. 'fashion_mnist' is the embedded default (Debian's dataset-fashion-mnist,
    # prepared once into the TFDS data dir); any other name goes to TFDS.
    config.dataset = "fashion_mnist"
    config.data_dir = config_dict.placeholder(
        str
    )  # TFDS data dir; None: $TFDS_DATA_DIR or ~/tensorflow_datasets
    config.train_subset = -1  # > 0: train on the first N examples only
    config.test_subset = -1  # > 0: evaluate on the first N examples only
    config.validation_size = (
        0  # > 0: hold out the last N train examples, evaluate on them, not test
    )

    # Optimisation.
    config.batch_size = 128  # global; must be divisible by the device count
    config.eval_batch_size = 512
    config.num_epochs = 10
    config.num_train_steps = -1  # > 0 overrides num_epochs
    config.optimizer = "adam"  # adam | adamw | sgd | bop (binary weights; htaf_jax.bop)
    config.learning_rate = 1e-3
    config.schedule = "cosine"  # cosine | constant
    config.warmup_steps = 0
    config.weight_decay = 0.0  # adamw only
    config.momentum = 0.9  # sgd only
    config.grad_clip_norm = 0.0  # > 0: clip the global gradient norm
    config.bop_threshold = 1e-8  # bop only: flip when |moving average| > threshold (Larq's)
    config.bop_gamma = 1e-4  # bop only: the moving average's adaptivity rate (Larq's)

    # Devices, checkpoints, metrics.
    config.num_devices = -1  # -1: all of jax.devices(); 1: a one-device mesh
    config.checkpoint_every_steps = 500
    config.keep_checkpoints = 3
    config.log_every_steps = 50
    config.eval_every_epochs = 1
    config.progress = True  # tqdm bar (only when stderr is a terminal)
    config.tensorboard = True  # tensorboardX event files in workdir/tensorboard
    config.runlocal = False  # shrink to a tiny run (see htaf_jax/train/config.py)
    config.half_precision = False  # True: bfloat16 activations/matmuls; params, optimizer state,
    # loss and BatchNorm statistics stay float32
    config.profile_steps = ""  # "a,b": jax.profiler trace of steps [a, b) in workdir/profile
    config.augment_crop_padding = 0  # random crop after zero padding by this many pixels
    config.augment_flip = False  # random horizontal flip

    # The model; each model config adds its own fields.
    config.model = ml_collections.ConfigDict()
    config.model.name = "mlp"
    return config
