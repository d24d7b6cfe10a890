"""rVGG walled by zeroing activations instead of dense weights: where the zeroing sits is the point.

:class:`ConvWalledRVGG` is rVGG whose wall is a :class:`RowWall` on the last map instead of zero
weights in the first dense layer:

- ``placement="after"``: ``conv5_3 -> ReLU [target layer] -> RowWall -> classifier``. The
  target layer's output (what every CAM method reads as ``A``) is *not* zeroed; the wall comes
  one step later. For the same weights this computes exactly the function of the paper's
  dense-walled rVGG, and CAM methods see exactly what they see there.
- ``placement="at"``: ``conv5_3 -> [ReLU -> RowWall] (target layer) -> classifier``. The target
  layer is the ReLU *followed by* the zeroing, so ``A`` is exactly zero below the wall. Same
  function again; but every method that combines the channels of ``A`` position by position
  now has nothing to show below the wall.

Because the wall sits on the last map and the head reads nothing else, the unseen input rows
are those of the paper's model (``helpers.geometry.rvgg_geometry().unseen_rows`` for 9 hidden
map rows). Like every model of :mod:`helpers.models`, it knows which rows it cannot see
(``visible_map_rows()`` and ``unseen_rows(image_size)``, which :func:`helpers.wall.unseen_rows`
uses).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import IMAGE_SIZE, MAP_SIZE, WALL_ROWS
from ..receptive_field import rows_reaching
from .rvgg import RVGG, TARGET_LAYER_INDEX
from .wall_layer import WalledLinear, check_wall_rows

__all__ = [
    "PLACEMENTS",
    "RowWall",
    "ConvWalledRVGG",
    "conv_walled_rvgg",
    "conv_walled_from",
]

#: Where a :class:`ConvWalledRVGG` zeroes the activations, relative to the CAM target layer.
PLACEMENTS = ("after", "at")


class RowWall(nn.Module):
    """Zero every row ``r >= first_hidden_row`` of a ``(N, C, H, W)`` tensor.

    Uses ``masked_fill`` (not a product), so the output below the wall is exactly ``0.0`` and
    the gradient that flows back to those positions is exactly zero, whatever the input.

    Args:
        first_hidden_row: the first zeroed row (``map_size - wall_rows``).
    """

    def __init__(self, first_hidden_row: int) -> None:
        super().__init__()
        if not isinstance(first_hidden_row, (int, np.integer)) or first_hidden_row < 0:
            raise ValueError(
                f"first_hidden_row must be a non-negative integer, got {first_hidden_row!r}."
            )
        self.first_hidden_row = int(first_hidden_row)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if x.dim() != 4:
            raise ValueError(
                f"RowWall expects (N, C, H, W) activations, got shape {tuple(x.shape)}."
            )
        rows = torch.arange(x.shape[2], device=x.device).view(1, 1, -1, 1)
        return x.masked_fill(rows >= self.first_hidden_row, 0.0)

    def extra_repr(self) -> str:  # noqa: D102
        return f"first_hidden_row={self.first_hidden_row}"


class ConvWalledRVGG(RVGG):
    """rVGG with the wall built from zeroed activations (see the module docstring).

    The classifier is plain (``nn.Linear``, no weight mask): it simply never receives a
    non-zero value from the hidden rows. ``placement`` says where the :class:`RowWall` sits
    relative to the CAM target layer: ``"after"`` (``features[30]``, the target layer
    ``features[29]`` is the bare ReLU) or ``"at"`` (``features[29]`` is ``Sequential(ReLU,
    RowWall)`` and is the target layer). The state dict has the keys of :class:`RVGG`, so the
    weights of a trained dense-walled rVGG load as they are (:func:`conv_walled_from`).

    Args:
        num_classes, width, dropout, image_size: as for :func:`helpers.models.rvgg`.
        wall_rows: hidden rows of the 14x14 map (1..14).
        placement: ``"after"`` or ``"at"``.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        width: float = 1.0,
        wall_rows: int = WALL_ROWS,
        placement: str = "at",
        dropout: float = 0.5,
        image_size: int = IMAGE_SIZE,
    ) -> None:
        wall_rows = check_wall_rows(wall_rows)
        if wall_rows == 0:
            raise ValueError(
                "a ConvWalledRVGG needs wall_rows >= 1; for no wall use helpers.models.rvgg(wall_rows=0)."
            )
        if placement not in PLACEMENTS:
            raise ValueError(
                f"placement must be one of {PLACEMENTS} ('after': zero the activations "
                f"after the CAM target layer; 'at': the target layer's own output is "
                f"zeroed), got {placement!r}."
            )
        super().__init__(
            num_classes=num_classes,
            width=width,
            wall_rows=0,
            dropout=dropout,
            image_size=image_size,
        )
        self.wall_rows = wall_rows  # the wall is in the features, not in classifier[0]
        self.placement = placement
        wall = RowWall(MAP_SIZE - wall_rows)
        relu = self.features[TARGET_LAYER_INDEX]
        if placement == "at":
            self.features[TARGET_LAYER_INDEX] = nn.Sequential(relu, wall)
        else:
            self.features.append(wall)

    @property
    def target_layer(self) -> nn.Module:
        """``features[29]``: the ReLU after conv5_3 (``"after"``) or ``Sequential(ReLU, RowWall)``
        (``"at"``); its output ``(N, C, 14, 14)`` is what CAM methods weight."""
        return self.features[TARGET_LAYER_INDEX]

    @property
    def row_wall(self) -> RowWall:
        """The :class:`RowWall` module."""
        return next(m for m in self.features.modules() if isinstance(m, RowWall))

    def visible_map_rows(self) -> np.ndarray:
        """Rows ``0 .. 13 - wall_rows`` of the 14x14 map (those the classifier receives)."""
        return np.arange(MAP_SIZE - self.wall_rows)

    def unseen_rows(self, image_size: int = IMAGE_SIZE) -> np.ndarray:
        """Input rows no visible map unit depends on (rVGG's unseen rows for 9 hidden rows), by
        receptive-field arithmetic through the 13 convolutions and 4 poolings."""
        if image_size != self.image_size:
            raise ValueError(
                f"ConvWalledRVGG is defined for {self.image_size}x{self.image_size} "
                f"inputs, got image_size={image_size}."
            )
        seen = rows_reaching(list(self.features), self.visible_map_rows(), image_size)
        return np.setdiff1d(np.arange(image_size), seen)


def conv_walled_rvgg(
    num_classes: int = 1000,
    width: float = 1.0,
    wall_rows: int = WALL_ROWS,
    placement: str = "at",
    **kwargs,
) -> ConvWalledRVGG:
    """Build a :class:`ConvWalledRVGG` (untrained)."""
    return ConvWalledRVGG(
        num_classes=num_classes,
        width=width,
        wall_rows=wall_rows,
        placement=placement,
        **kwargs,
    )


def conv_walled_from(model: RVGG, placement: str = "at") -> ConvWalledRVGG:
    """The conv-walled twin of a trained dense-walled rVGG: same weights, same wall height, the
    wall moved from the dense weights to the activations (``placement`` as in
    :class:`ConvWalledRVGG`). Returned in eval mode on the model's device.

    For every input the twin's logits equal the model's (the dense weights under the wall are
    zero and the twin's zeroed activations are what they would have multiplied); only where the
    zeroing sits relative to the CAM target layer differs.

    Raises:
        TypeError: unless ``model`` is an :class:`~helpers.models.RVGG` with a
            :class:`~helpers.models.WalledLinear` first dense layer.
    """
    if not isinstance(model, RVGG) or isinstance(model, ConvWalledRVGG):
        raise TypeError(
            f"expected a dense-walled helpers.models.RVGG, got {type(model).__name__}."
        )
    first = model.classifier[0]
    if not isinstance(first, WalledLinear) or model.wall_rows == 0:
        raise TypeError(
            "the model has no wall (classifier[0] is not a WalledLinear); build its "
            "conv-walled version with conv_walled_rvgg(..., wall_rows=k) and train it."
        )
    twin = ConvWalledRVGG(
        num_classes=model.num_classes,
        width=model.width,
        wall_rows=model.wall_rows,
        placement=placement,
        dropout=float(model.classifier[2].p),
        image_size=model.image_size,
    )
    state = {k: v for k, v in model.state_dict().items()}
    twin.load_state_dict(state, strict=True)
    param = next(model.parameters())
    return twin.to(device=param.device, dtype=param.dtype).eval()
