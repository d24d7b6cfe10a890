"""A small ResNet whose head is a walled global average pool: a wall with residual shortcuts.

:class:`WalledResNet`: a 3x3 stem with stride 2, a 2x2 max-pool, three stages of one basic block
each (strides 1, 2, 2: a 14x14 map), and a head that averages the visible rows of the last map
only, then one dense layer. The residual shortcuts widen what each unit sees (a union of two
paths), so its unseen rows are computed by walking both branches of every block backwards
(:meth:`WalledResNet.input_rows_reaching`), and checked by gradients and perturbation in the tests.

Batch norm: in eval mode it is a fixed per-channel affine map and the wall is exact; in training
mode its batch statistics are computed over *all* positions, hidden rows included, so a
(batch-level) trace of the hidden rows does reach the logits while training. CAM methods and
every check run in eval mode.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from ..config import IMAGE_SIZE, MAP_SIZE, WALL_ROWS
from ..receptive_field import rows_reaching
from .rvgg import check_image_batch
from .wall_layer import check_wall_rows

__all__ = ["BasicBlock", "WalledResNet", "walled_resnet"]


class BasicBlock(nn.Module):
    """ResNet's basic block (two 3x3 convolutions with batch norm, a shortcut that is the
    identity or, when the shape changes, ResNet-D's ``AvgPool(stride) - Conv1x1 - BN``
    :cite:p:`he2019bagoftricks`), with its *own* final ReLU module
    ``out_relu`` (torchvision's block reuses one in-place ReLU twice, which hooks cannot tell
    apart)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, 3, stride=stride, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(
            out_channels, out_channels, 3, stride=1, padding=1, bias=False
        )
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            # ResNet-D shortcut: average-pool, then a 1x1 convolution. (A strided 1x1 convolution,
            # torchvision's choice, crashes torch 2.14's CPU backward in channels_last layout for
            # some small channel counts -- 2, 3, 4, 8 -- which the narrow profiles hit.)
            pool = [nn.AvgPool2d(stride)] if stride != 1 else []
            self.shortcut = nn.Sequential(
                *pool,
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )
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

    def __init__(
        self,
        num_classes: int = 10,
        width: float = 1.0,
        wall_rows: int = WALL_ROWS,
        image_size: int = IMAGE_SIZE,
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"num_classes must be a positive integer, got {num_classes!r}."
            )
        if not (isinstance(width, (int, float)) and 0 < width <= 16):
            raise ValueError(f"width must be a number in (0, 16], got {width!r}.")
        wall_rows = check_wall_rows(wall_rows)
        if wall_rows == MAP_SIZE:
            raise ValueError(
                "wall_rows=14 hides the whole map: the head would read nothing."
            )
        if image_size != IMAGE_SIZE:
            raise ValueError(
                f"WalledResNet is defined for {IMAGE_SIZE}x{IMAGE_SIZE} inputs (a "
                f"{MAP_SIZE}x{MAP_SIZE} map), got image_size={image_size}."
            )
        c1, c2, c3 = (max(1, int(round(c * width))) for c in (16, 32, 64))
        self.stem = nn.Sequential(
            nn.Conv2d(3, c1, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(2),
        )
        self.layer1 = BasicBlock(c1, c1, 1)
        self.layer2 = BasicBlock(c1, c2, 2)
        self.layer3 = BasicBlock(c2, c3, 2)
        self.fc = nn.Linear(c3, num_classes)
        self.num_classes, self.width, self.wall_rows, self.image_size = (
            num_classes,
            width,
            wall_rows,
            image_size,
        )
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
        hooks = [
            m.register_forward_pre_hook(
                lambda _m, inp: heights.append(int(inp[0].shape[2]))
            )
            for m in [self.stem, *self.blocks]
        ]
        param = next(self.parameters())
        try:
            with torch.no_grad():
                self.features(
                    torch.zeros(
                        1,
                        3,
                        image_size,
                        image_size,
                        device=param.device,
                        dtype=param.dtype,
                    )
                )
        finally:
            for h in hooks:
                h.remove()
        return heights

    def input_rows_reaching(
        self, map_rows: Iterable[int], image_size: int = IMAGE_SIZE
    ) -> np.ndarray:
        """Input rows that reach ``map_rows`` of the 14x14 map, by walking the network backwards:
        through a block, a row of its output is reached from the rows of its input that reach
        it through the residual branch *or* the shortcut (union); then through the stem."""
        heights = self._input_heights(image_size)
        rows = np.asarray(list(map_rows))
        for block, h_in in zip(reversed(self.blocks), reversed(heights[1:])):
            main = rows_reaching(block.main_branch, rows, h_in)
            short = (
                rows_reaching(list(block.shortcut), rows, h_in)
                if len(block.shortcut)
                else rows
            )
            rows = np.union1d(main, short)
        return rows_reaching(list(self.stem), rows, heights[0])

    def unseen_rows(self, image_size: int = IMAGE_SIZE) -> np.ndarray:
        """Input rows that no visible map unit depends on (:meth:`input_rows_reaching`)."""
        if image_size != self.image_size:
            raise ValueError(
                f"WalledResNet is defined for {self.image_size}x{self.image_size} inputs, "
                f"got image_size={image_size}."
            )
        return np.setdiff1d(
            np.arange(image_size),
            self.input_rows_reaching(self.visible_map_rows(), image_size),
        )


def walled_resnet(
    num_classes: int = 10, width: float = 1.0, wall_rows: int = WALL_ROWS
) -> WalledResNet:
    """Build a :class:`WalledResNet` (``wall_rows=0``: the unwalled baseline)."""
    return WalledResNet(num_classes=num_classes, width=width, wall_rows=wall_rows)
