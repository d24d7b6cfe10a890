"""Which input rows reach which row of the CAM target map, for every model of the book.

:func:`map_row_coverage` draws the receptive fields row by row (the figure of chapter 07) for
rVGG (dense- or conv-walled) and :class:`~helpers.models.resnet.WalledResNet`.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from ..config import IMAGE_SIZE, MAP_SIZE
from ..receptive_field import rows_reaching
from .resnet import WalledResNet
from .rvgg import RVGG

__all__ = ["map_row_coverage"]


def map_row_coverage(model: nn.Module, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """``(14, image_size)`` boolean matrix: entry ``[r, y]`` says whether input row ``y`` reaches
    map row ``r`` of the CAM target layer (receptive-field arithmetic, row by row).

    Works for rVGG (dense- or conv-walled) and :class:`WalledResNet`.
    """
    out = np.zeros((MAP_SIZE, image_size), dtype=bool)
    if isinstance(model, WalledResNet):
        for r in range(MAP_SIZE):
            out[r, model.input_rows_reaching([r], image_size)] = True
        return out
    if isinstance(model, RVGG):
        for r in range(MAP_SIZE):
            out[r, rows_reaching(list(model.features), [r], image_size)] = True
        return out
    raise TypeError(
        f"map_row_coverage knows rVGG and WalledResNet, got {type(model).__name__}."
    )
