"""The book's models, each knowing which rows of its input it cannot see.

- ``wall_layer`` -- the wall as a layer: :func:`wall_mask`, :class:`WalledLinear`,
  :class:`WallError`, :func:`wall_weights_zero`;
- ``rvgg`` -- rVGG and its baseline on torchvision's VGG layout (:func:`rvgg`);
- ``authors`` -- the authors' released weights, renamed and loaded (:func:`load_authors_weights`);
- ``theory_cnn`` -- the small masked CNN of the theory chapter (:func:`theory_cnn`);
- ``conv_walled`` -- rVGG walled by zeroed activations, before or at the CAM target layer;
- ``resnet`` -- a small ResNet with a walled global average pool;
- ``coverage`` -- which input rows reach which map row (:func:`map_row_coverage`).
"""

from __future__ import annotations

from .authors import (
    AUTHORS_CLASSIFIER_INDEX,
    AUTHORS_DRIVE_FOLDER,
    AUTHORS_DRIVE_URL,
    authors_to_rvgg_state_dict,
    load_authors_weights,
    rvgg_to_authors_state_dict,
)
from .conv_walled import (
    PLACEMENTS,
    ConvWalledRVGG,
    RowWall,
    conv_walled_from,
    conv_walled_rvgg,
)
from .coverage import map_row_coverage
from .resnet import BasicBlock, WalledResNet, walled_resnet
from .rvgg import (
    AUTHORS_CONV_INDICES,
    RVGG,
    TARGET_LAYER_INDEX,
    check_image_batch,
    rvgg,
    rvgg_channels,
    rvgg_forward_flops,
)
from .theory_cnn import TheoryCNN, theory_cnn
from .wall_layer import (
    WalledLinear,
    WallError,
    check_wall_rows,
    wall_mask,
    wall_weights_zero,
)

__all__ = [
    "AUTHORS_CLASSIFIER_INDEX",
    "AUTHORS_CONV_INDICES",
    "AUTHORS_DRIVE_FOLDER",
    "AUTHORS_DRIVE_URL",
    "BasicBlock",
    "ConvWalledRVGG",
    "PLACEMENTS",
    "RVGG",
    "RowWall",
    "TARGET_LAYER_INDEX",
    "TheoryCNN",
    "WallError",
    "WalledLinear",
    "WalledResNet",
    "authors_to_rvgg_state_dict",
    "check_image_batch",
    "check_wall_rows",
    "conv_walled_from",
    "conv_walled_rvgg",
    "load_authors_weights",
    "map_row_coverage",
    "rvgg",
    "rvgg_channels",
    "rvgg_forward_flops",
    "rvgg_to_authors_state_dict",
    "theory_cnn",
    "walled_resnet",
    "wall_mask",
    "wall_weights_zero",
]
