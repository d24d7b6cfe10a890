"""Training, with ONE loop for every model of the book: rVGG (the walled model and its
baseline), the walled ResNet, and the walled heads of the wall-height sweep.

- ``loop`` -- :func:`fit`, the training loop (schedule, AMP, DDP, progress, history);
- ``streams`` -- the batches it reads (synthetic stream, real data, tensors in memory);
- ``config`` -- an rVGG run's configuration, its cache key and checkpoint path;
- ``recipes`` -- rVGG's initializations, training aids, schedule, and the plain rVGG they leave;
- ``checkpoints`` -- one checkpoint format (atomic, resumable, refused when of another
  configuration) and the metrics log;
- ``accuracy`` -- accuracy on tensors, on a dataset, by object position;
- ``rvgg`` -- :func:`train`, :func:`train_or_load`, :func:`train_both`;
- ``resnet`` -- :func:`train_or_load_resnet`; ``head`` -- :func:`train_walled_head`;
- ``cli`` -- ``python -m helpers.train`` (:func:`main`).
"""

from __future__ import annotations

from .accuracy import (
    DEFAULT_TOP_ROWS,
    accuracy_by_row,
    evaluate_accuracy,
    evaluate_dataset,
    position_accuracy,
    position_sets,
)
from .checkpoints import (
    checkpoint_info,
    load_checkpoint,
    load_weights,
    read_metrics,
    resume_training,
    save_atomic,
    save_checkpoint,
    training_checkpoint,
    write_metrics_csv,
)
from .cli import main
from .config import (
    TRAIN_VERSION,
    ConfigMismatchError,
    checkpoint_path,
    config_differences,
    config_key,
    profile_from_config,
    training_config,
)
from .head import head_accuracy, train_walled_head
from .loop import (
    Batches,
    FitState,
    amp_dtype,
    autocast,
    dist_env,
    fit,
    init_distributed,
)
from .recipes import (
    ConvBN,
    ScaledWeightStandardization,
    add_batch_norm,
    bake_parametrizations,
    build_model,
    finalize_model,
    fold_batch_norm,
    freeze_convolutions,
    learning_rate,
    standardize_weights,
    tie_positions_hook,
    tied_steps,
)
from .resnet import (
    FIXED_SET_LIMIT,
    RESNET_SETTINGS,
    RESNET_VERSION,
    ResNetSettings,
    resnet_batches,
    resnet_checkpoint_path,
    resnet_training_config,
    train_or_load_resnet,
)
from .rvgg import (
    install_shipped,
    is_trained,
    train,
    train_both,
    train_in_processes,
    train_or_load,
    training_batches,
)
from .streams import RealBatches, ShardedSynthetic, ShuffledTensors

__all__ = [
    # the loop
    "fit",
    "FitState",
    "Batches",
    "dist_env",
    "init_distributed",
    "amp_dtype",
    "autocast",
    "ShardedSynthetic",
    "RealBatches",
    "ShuffledTensors",
    # rVGG
    "TRAIN_VERSION",
    "ConfigMismatchError",
    "training_config",
    "config_key",
    "config_differences",
    "checkpoint_path",
    "profile_from_config",
    "build_model",
    "ScaledWeightStandardization",
    "standardize_weights",
    "freeze_convolutions",
    "bake_parametrizations",
    "ConvBN",
    "add_batch_norm",
    "fold_batch_norm",
    "finalize_model",
    "tie_positions_hook",
    "tied_steps",
    "learning_rate",
    "train",
    "train_or_load",
    "train_both",
    "train_in_processes",
    "is_trained",
    "install_shipped",
    "training_batches",
    # checkpoints
    "save_atomic",
    "load_checkpoint",
    "load_weights",
    "training_checkpoint",
    "save_checkpoint",
    "resume_training",
    "checkpoint_info",
    "write_metrics_csv",
    "read_metrics",
    # accuracy
    "evaluate_accuracy",
    "evaluate_dataset",
    "position_sets",
    "position_accuracy",
    "DEFAULT_TOP_ROWS",
    "accuracy_by_row",
    # the walled ResNet and the walled heads
    "RESNET_VERSION",
    "ResNetSettings",
    "RESNET_SETTINGS",
    "FIXED_SET_LIMIT",
    "resnet_training_config",
    "resnet_checkpoint_path",
    "resnet_batches",
    "train_or_load_resnet",
    "train_walled_head",
    "head_accuracy",
    # the command line
    "main",
]
