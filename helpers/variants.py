"""Model variants for the chapter "Beyond the paper": other ways to build the wall.

Two families, both with the CAM target layer at a 14x14 map of a 224x224 image and both
knowing exactly which input rows they cannot see (``visible_map_rows()`` and
``unseen_rows(image_size)``, which :func:`helpers.wall.unseen_rows` uses when a model defines
them):

* :class:`ConvWalledRVGG` -- rVGG whose wall is a zeroing of *activations* (a
  :class:`RowWall`) instead of zero dense weights. Where the zeroing sits relative to the CAM
  target layer (the ReLU after conv5_3) is the point:

  - ``placement="after"``: ``conv5_3 -> ReLU [target layer] -> RowWall -> classifier``. The
    target layer's output (what every CAM method reads as ``A``) is *not* zeroed; the wall
    comes one step later. For the same weights this computes exactly the function of the
    paper's dense-walled rVGG, and CAM methods see exactly what they see there.
  - ``placement="at"``: ``conv5_3 -> [ReLU -> RowWall] (target layer) -> classifier``. The
    target layer is the ReLU *followed by* the zeroing, so ``A`` is exactly zero below the
    wall. Same function again; but every method that combines the channels of ``A`` position
    by position now has nothing to show below the wall.

  Because the wall sits on the last map and the head reads nothing else, the unseen input rows
  are those of the paper's model (``helpers.geometry.rvgg_geometry().unseen_rows`` for 9
  hidden map rows).

* :class:`WalledResNet` -- a small ResNet (3x3 stem with stride 2, a 2x2 max-pool, three stages
  of one basic block each, strides 1, 2, 2: a 14x14 map) whose head is a *walled global
  average pool*: the mean over the visible rows of the last map only, then one dense layer.
  The residual shortcuts widen what each unit sees (a union of two paths), so its unseen rows
  are computed here by walking both branches of every block backwards (:meth:`WalledResNet.unseen_rows`),
  and checked by gradients and perturbation in the tests.

  Batch norm: in eval mode it is a fixed per-channel affine map and the wall is exact; in
  training mode its batch statistics are computed over *all* positions, hidden rows included,
  so a (batch-level) trace of the hidden rows does reach the logits while training. CAM
  methods and every check run in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .config import IMAGE_SIZE, MAP_SIZE, WALL_ROWS
from .models import RVGG, TARGET_LAYER_INDEX, WalledLinear, check_image_batch
from .receptive_field import input_rows_reaching

__all__ = [
    "PLACEMENTS",
    "RowWall",
    "ConvWalledRVGG",
    "conv_walled_rvgg",
    "conv_walled_from",
    "BasicBlock",
    "WalledResNet",
    "walled_resnet",
    "rows_reaching",
    "map_row_coverage",
]

#: Where a :class:`ConvWalledRVGG` zeroes the activations, relative to the CAM target layer.
PLACEMENTS = ("after", "at")


def _check_wall_rows(wall_rows: int, map_size: int = MAP_SIZE) -> int:
    if not isinstance(wall_rows, (int, np.integer)) or not 0 <= int(wall_rows) <= map_size:
        raise ValueError(f"wall_rows must be an integer in 0..{map_size} (hidden rows of the "
                         f"{map_size}x{map_size} map), got {wall_rows!r}.")
    return int(wall_rows)


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
            raise ValueError(f"first_hidden_row must be a non-negative integer, got {first_hidden_row!r}.")
        self.first_hidden_row = int(first_hidden_row)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if x.dim() != 4:
            raise ValueError(f"RowWall expects (N, C, H, W) activations, got shape {tuple(x.shape)}.")
        rows = torch.arange(x.shape[2], device=x.device).view(1, 1, -1, 1)
        return x.masked_fill(rows >= self.first_hidden_row, 0.0)

    def extra_repr(self) -> str:  # noqa: D102
        return f"first_hidden_row={self.first_hidden_row}"


def rows_reaching(layers: Sequence[nn.Module], map_rows: Sequence[int], image_size: int) -> np.ndarray:
    """Input rows reaching ``map_rows`` through a plain stack of convolutions and poolings
    (:class:`RowWall`, ReLU, batch norm, dropout skipped): :func:`helpers.receptive_field.input_rows_reaching`
    on the spatial layers only. Sorted indices."""
    spatial = [m for layer in layers for m in (layer.modules() if isinstance(layer, nn.Sequential) else [layer])
               if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))]
    return input_rows_reaching(spatial, list(map_rows), image_size)


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

    def __init__(self, num_classes: int = 1000, width: float = 1.0, wall_rows: int = WALL_ROWS,
                 placement: str = "at", dropout: float = 0.5, image_size: int = IMAGE_SIZE) -> None:
        wall_rows = _check_wall_rows(wall_rows)
        if wall_rows == 0:
            raise ValueError("a ConvWalledRVGG needs wall_rows >= 1; for no wall use helpers.models.rvgg(wall_rows=0).")
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS} ('after': zero the activations "
                             f"after the CAM target layer; 'at': the target layer's own output is "
                             f"zeroed), got {placement!r}.")
        super().__init__(num_classes=num_classes, width=width, wall_rows=0, dropout=dropout,
                         image_size=image_size)
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
            raise ValueError(f"ConvWalledRVGG is defined for {self.image_size}x{self.image_size} "
                             f"inputs, got image_size={image_size}.")
        seen = rows_reaching(list(self.features), self.visible_map_rows(), image_size)
        return np.setdiff1d(np.arange(image_size), seen)


def conv_walled_rvgg(num_classes: int = 1000, width: float = 1.0, wall_rows: int = WALL_ROWS,
                     placement: str = "at", **kwargs) -> ConvWalledRVGG:
    """Build a :class:`ConvWalledRVGG` (untrained)."""
    return ConvWalledRVGG(num_classes=num_classes, width=width, wall_rows=wall_rows,
                          placement=placement, **kwargs)


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
        raise TypeError(f"expected a dense-walled helpers.models.RVGG, got {type(model).__name__}.")
    first = model.classifier[0]
    if not isinstance(first, WalledLinear) or model.wall_rows == 0:
        raise TypeError("the model has no wall (classifier[0] is not a WalledLinear); build its "
                        "conv-walled version with conv_walled_rvgg(..., wall_rows=k) and train it.")
    twin = ConvWalledRVGG(num_classes=model.num_classes, width=model.width, wall_rows=model.wall_rows,
                          placement=placement, dropout=float(model.classifier[2].p),
                          image_size=model.image_size)
    state = {k: v for k, v in model.state_dict().items()}
    twin.load_state_dict(state, strict=True)
    param = next(model.parameters())
    return twin.to(device=param.device, dtype=param.dtype).eval()


# --------------------------------------------------------------------------------------------
# A small ResNet with a walled average pool
# --------------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    """ResNet's basic block (two 3x3 convolutions with batch norm, a shortcut that is the
    identity or, when the shape changes, ResNet-D's ``AvgPool(stride) - Conv1x1 - BN``
    :cite:p:`he2019bagoftricks`), with its *own* final ReLU module
    ``out_relu`` (torchvision's block reuses one in-place ReLU twice, which hooks cannot tell
    apart)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            # ResNet-D shortcut: average-pool, then a 1x1 convolution. (A strided 1x1 convolution,
            # torchvision's choice, crashes torch 2.14's CPU backward in channels_last layout for
            # some small channel counts -- 2, 3, 4, 8 -- which the narrow profiles hit.)
            pool = [nn.AvgPool2d(stride)] if stride != 1 else []
            self.shortcut = nn.Sequential(*pool, nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                          nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = nn.Sequential()
        self.out_relu = nn.ReLU(inplace=False)

    @property
    def main_branch(self) -> list[nn.Module]:
        """The layers of the residual branch, in order."""
        return [self.conv1, self.bn1, self.relu1, self.conv2, self.bn2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.out_relu(out + self.shortcut(x))


class WalledResNet(nn.Module):
    """A small ResNet whose head cannot read the lower ``wall_rows`` rows of its last map.

    ``(N, 3, 224, 224)`` -> stem ``Conv3x3/2 - BN - ReLU`` (112) -> ``MaxPool2x2`` (56) ->
    ``layer1`` (block, stride 1, 56) -> ``layer2`` (block, stride 2, 28) -> ``layer3`` (block,
    stride 2, 14x14: the CAM target is its final ReLU) -> **walled average pool** (the mean over
    map rows ``0 .. 13 - wall_rows`` and all columns; ``wall_rows = 0`` is the usual global
    average pool) -> ``Linear(channels, classes)``.

    Args:
        num_classes: classes.
        width: channel multiplier; the stages have ``16, 32, 64`` channels times ``width``
            (at least 1), the stem as many as stage 1.
        wall_rows: hidden rows of the 14x14 map (0..13; 14 would leave nothing to read).
    """

    def __init__(self, num_classes: int = 10, width: float = 1.0, wall_rows: int = WALL_ROWS,
                 image_size: int = IMAGE_SIZE) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
        if not (isinstance(width, (int, float)) and 0 < width <= 16):
            raise ValueError(f"width must be a number in (0, 16], got {width!r}.")
        wall_rows = _check_wall_rows(wall_rows)
        if wall_rows == MAP_SIZE:
            raise ValueError("wall_rows=14 hides the whole map: the head would read nothing.")
        if image_size != IMAGE_SIZE:
            raise ValueError(f"WalledResNet is defined for {IMAGE_SIZE}x{IMAGE_SIZE} inputs (a "
                             f"{MAP_SIZE}x{MAP_SIZE} map), got image_size={image_size}.")
        c1, c2, c3 = (max(1, int(round(c * width))) for c in (16, 32, 64))
        self.stem = nn.Sequential(nn.Conv2d(3, c1, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c1),
                                  nn.ReLU(inplace=False), nn.MaxPool2d(2))
        self.layer1 = BasicBlock(c1, c1, 1)
        self.layer2 = BasicBlock(c1, c2, 2)
        self.layer3 = BasicBlock(c2, c3, 2)
        self.fc = nn.Linear(c3, num_classes)
        self.num_classes, self.width, self.wall_rows, self.image_size = num_classes, width, wall_rows, image_size
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def target_layer(self) -> nn.Module:
        """The final ReLU of ``layer3`` (output ``(N, C, 14, 14)``), for CAM methods."""
        return self.layer3.out_relu

    @property
    def map_channels(self) -> int:
        """Channels of the target layer's output."""
        return int(self.fc.in_features)

    @property
    def blocks(self) -> list[BasicBlock]:
        """The three residual blocks, in order."""
        return [self.layer1, self.layer2, self.layer3]

    def visible_map_rows(self) -> np.ndarray:
        """Rows ``0 .. 13 - wall_rows`` of the 14x14 map: those the walled average pool reads."""
        return np.arange(MAP_SIZE - self.wall_rows)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 14x14 map ``(N, C, 14, 14)`` (the target layer's output)."""
        return self.layer3(self.layer2(self.layer1(self.stem(x))))

    def head(self, a: torch.Tensor) -> torch.Tensor:
        """Logits from the map ``a``: mean over the visible rows and all columns, then ``fc``."""
        visible = MAP_SIZE - self.wall_rows
        return self.fc(a[:, :, :visible, :].mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, classes)`` of ``(N, 3, 224, 224)`` images."""
        check_image_batch(x, self.image_size)
        return self.head(self.features(x))

    def _input_heights(self, image_size: int) -> list[int]:
        """Heights of the inputs of the stem and of each block, by a forward pass of one
        small zero image (only shapes matter)."""
        heights: list[int] = []
        hooks = [m.register_forward_pre_hook(lambda _m, inp: heights.append(int(inp[0].shape[2])))
                 for m in [self.stem, *self.blocks]]
        param = next(self.parameters())
        try:
            with torch.no_grad():
                self.features(torch.zeros(1, 3, image_size, image_size, device=param.device, dtype=param.dtype))
        finally:
            for h in hooks:
                h.remove()
        return heights

    def unseen_rows(self, image_size: int = IMAGE_SIZE) -> np.ndarray:
        """Input rows that no visible map unit depends on, by walking the network backwards:
        through a block, a row of its output is reached from the rows of its input that reach
        it through the residual branch *or* the shortcut (union); then through the stem."""
        if image_size != self.image_size:
            raise ValueError(f"WalledResNet is defined for {self.image_size}x{self.image_size} inputs, "
                             f"got image_size={image_size}.")
        heights = self._input_heights(image_size)
        rows = np.asarray(self.visible_map_rows())
        for block, h_in in zip(reversed(self.blocks), reversed(heights[1:])):
            main = rows_reaching(block.main_branch, rows, h_in)
            short = rows_reaching(list(block.shortcut), rows, h_in) if len(block.shortcut) else rows
            rows = np.union1d(main, short)
        seen = rows_reaching(list(self.stem), rows, heights[0])
        return np.setdiff1d(np.arange(image_size), seen)


def walled_resnet(num_classes: int = 10, width: float = 1.0, wall_rows: int = WALL_ROWS) -> WalledResNet:
    """Build a :class:`WalledResNet` (``wall_rows=0``: the unwalled baseline)."""
    return WalledResNet(num_classes=num_classes, width=width, wall_rows=wall_rows)


def map_row_coverage(model: nn.Module, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """``(14, image_size)`` boolean matrix: entry ``[r, y]`` says whether input row ``y`` reaches
    map row ``r`` of the CAM target layer (receptive-field arithmetic, row by row).

    Works for rVGG (dense- or conv-walled) and :class:`WalledResNet`.
    """
    out = np.zeros((MAP_SIZE, image_size), dtype=bool)
    if isinstance(model, WalledResNet):
        heights = model._input_heights(image_size)
        for r in range(MAP_SIZE):
            rows = np.array([r])
            for block, h_in in zip(reversed(model.blocks), reversed(heights[1:])):
                main = rows_reaching(block.main_branch, rows, h_in)
                short = rows_reaching(list(block.shortcut), rows, h_in) if len(block.shortcut) else rows
                rows = np.union1d(main, short)
            out[r, rows_reaching(list(model.stem), rows, heights[0])] = True
        return out
    if isinstance(model, RVGG):
        for r in range(MAP_SIZE):
            out[r, rows_reaching(list(model.features), [r], image_size)] = True
        return out
    raise TypeError(f"map_row_coverage knows rVGG and WalledResNet, got {type(model).__name__}.")
