"""The training engine: data-parallel steps, checkpoints, configs, metrics.

from htaf_jax.train import train_and_evaluate
result = train_and_evaluate(config, workdir)   # TrainResult(params, batch_stats, metrics)
"""

from htaf_jax._extras import require_extra

require_extra(
    "train",
    "htaf_jax.train",
    "ml_collections",
    "orbax",
    "tensorboardX",
    "tqdm",
    "tensorflow_datasets",
)

from htaf_jax.train.checkpoint import CheckpointMismatchError, UnusableCheckpointError
from htaf_jax.train.config import ConfigError, prepare_config, validate_config
from htaf_jax.train.distributed import DistributedInitError
from htaf_jax.train.distributed import initialize as initialize_distributed
from htaf_jax.train.loop import NonFiniteLossError, TrainResult, evaluate, train_and_evaluate
from htaf_jax.train.restore import load_config, load_derived, model_from_run, restore_params

__all__ = [
    "CheckpointMismatchError",
    "ConfigError",
    "DistributedInitError",
    "NonFiniteLossError",
    "TrainResult",
    "evaluate",
    "initialize_distributed",
    "load_config",
    "load_derived",
    "model_from_run",
    "prepare_config",
    "restore_params",
    "train_and_evaluate",
    "UnusableCheckpointError",
    "validate_config",
]
