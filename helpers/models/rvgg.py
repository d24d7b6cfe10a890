"""rVGG: torchvision's VGG16 layout with the paper's changes and its walled first dense layer.

rVGG (book/paper.md): torchvision's VGG16 layout without batch norm, the last max-pool and the
adaptive average pool removed, conv5_3 changed to 512 -> 256 channels (a 14x14 map on a
224x224 input), and a classifier ``Linear(256*14*14, 4096) - ReLU - Dropout - Linear(4096,
4096) - ReLU - Dropout - Linear(4096, classes)``. The *wall*: every weight of the first
``Linear`` that reads one of the lower ``wall_rows`` rows of the 14x14 map is zero.

The wall is structural: :class:`~helpers.models.wall_layer.WalledLinear` multiplies its weight
by a fixed 0/1 mask (a buffer) in every forward pass, so no optimizer step and no loaded state
dict can open it.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import vgg as tv_vgg

from ..config import IMAGE_SIZE, MAP_SIZE, WALL_ROWS
from .wall_layer import WalledLinear, wall_mask

__all__ = [
    "AUTHORS_CONV_INDICES",
    "TARGET_LAYER_INDEX",
    "rvgg_channels",
    "check_image_batch",
    "RVGG",
    "rvgg",
    "rvgg_forward_flops",
]

#: VGG16 ("D") convolution widths; the paper's rVGG ends with 256 channels instead of 512.
_VGG16_CFG = [
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    256,
]
#: Indices of the 13 convolutions in the authors' flat ``nn.Sequential`` (and in ``features``).
AUTHORS_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
#: Index of the ReLU after conv5_3, the CAM target layer.
TARGET_LAYER_INDEX = 29


def rvgg_channels(width: float = 1.0) -> list[int | str]:
    """The ``make_layers`` configuration of rVGG with every channel count scaled by ``width``."""
    if not (isinstance(width, (int, float)) and 0 < width <= 4):
        raise ValueError(f"width must be a number in (0, 4], got {width!r}.")
    return [v if v == "M" else max(1, int(round(v * width))) for v in _VGG16_CFG]


def check_image_batch(
    x: torch.Tensor, image_size: int = IMAGE_SIZE, channels: int = 3
) -> None:
    """Raise a clear ``ValueError`` unless ``x`` has shape ``(N, channels, image_size, image_size)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of images, got {type(x).__name__}.")
    if x.dim() != 4:
        raise ValueError(
            f"expected a batch of shape (N, {channels}, {image_size}, {image_size}), got shape "
            f"{tuple(x.shape)}; add a batch dimension with x.unsqueeze(0) for a single image."
        )
    if x.shape[1] != channels:
        hint = (
            " For a grayscale image, repeat it: x.expand(-1, 3, -1, -1)."
            if x.shape[1] == 1
            else " For RGBA, drop the alpha channel: x[:, :3]."
            if x.shape[1] == 4
            else ""
        )
        raise ValueError(
            f"expected {channels} channels, got {x.shape[1]} (shape {tuple(x.shape)}).{hint}"
        )
    if tuple(x.shape[2:]) != (image_size, image_size):
        raise ValueError(
            f"expected {image_size}x{image_size} images, got {x.shape[2]}x{x.shape[3]}; the wall "
            f"geometry (a {MAP_SIZE}x{MAP_SIZE} map) holds only at {image_size}x{image_size}. "
            "Resize first (e.g. torchvision.transforms.Resize(256) + CenterCrop(224))."
        )


class RVGG(tv_vgg.VGG):
    """torchvision's ``VGG`` with rVGG's features and classifier (see module docstring).

    Attributes:
        features: the 13 convolutions with ReLUs and 4 max-pools (no fifth pool).
        avgpool: ``nn.Identity`` (the adaptive pool is removed).
        classifier: ``WalledLinear`` (or ``nn.Linear`` when ``wall_rows == 0``), ReLU, Dropout,
            Linear, ReLU, Dropout, Linear.
        target_layer: the ReLU after conv5_3 (output ``(N, C, 14, 14)``), for CAM methods.
        wall_rows, width, image_size: the construction arguments.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        width: float = 1.0,
        wall_rows: int = WALL_ROWS,
        dropout: float = 0.5,
        image_size: int = IMAGE_SIZE,
        on_open_wall: str = "error",
    ) -> None:
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"num_classes must be a positive integer, got {num_classes!r}."
            )
        if image_size != IMAGE_SIZE:
            raise ValueError(
                f"rVGG is defined for {IMAGE_SIZE}x{IMAGE_SIZE} inputs (a {MAP_SIZE}x{MAP_SIZE} map); "
                f"got image_size={image_size}. Resize your images to {IMAGE_SIZE}."
            )
        cfg = rvgg_channels(width)
        features = tv_vgg.make_layers(cfg, batch_norm=False)
        # The CAM target layer must not be in place (hooks read its output).
        features[TARGET_LAYER_INDEX] = nn.ReLU(inplace=False)
        # torchvision's VGG.__init__ would first build (and initialise) its own 102M-parameter
        # classifier only for us to replace it: set the three parts directly instead.
        nn.Module.__init__(self)
        self.features = features
        self.avgpool = nn.Identity()
        channels = int(cfg[-1])
        hidden = max(1, int(round(4096 * width)))
        in_features = channels * MAP_SIZE * MAP_SIZE
        first = (
            WalledLinear(
                in_features,
                hidden,
                wall_mask(channels, MAP_SIZE, wall_rows),
                on_open_wall=on_open_wall,
            )
            if wall_rows > 0
            else nn.Linear(in_features, hidden)
        )
        if not 0 <= wall_rows <= MAP_SIZE:
            raise ValueError(f"wall_rows must be in 0..{MAP_SIZE}, got {wall_rows}.")
        self.classifier = nn.Sequential(
            first,
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
        self.width = width
        self.wall_rows = wall_rows
        self.image_size = image_size
        self.num_classes = num_classes
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's VGG initialisation; the wall is re-applied by WalledLinear's mask.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)
        first = self.classifier[0]
        if isinstance(first, WalledLinear):
            with torch.no_grad():
                first.weight.masked_fill_(first.mask == 0, 0.0)

    @property
    def target_layer(self) -> nn.Module:
        """The ReLU after conv5_3, whose output is the 14x14 map CAM methods explain."""
        return self.features[TARGET_LAYER_INDEX]

    @property
    def map_channels(self) -> int:
        """Channels of the target layer's output (256 at width 1)."""
        return int(self.features[AUTHORS_CONV_INDICES[-1]].out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of images ``x`` of shape ``(N, 3, 224, 224)``."""
        check_image_batch(x, self.image_size)
        return super().forward(x)


def rvgg(
    num_classes: int = 1000, width: float = 1.0, wall_rows: int = WALL_ROWS, **kwargs
) -> RVGG:
    """Build rVGG (``wall_rows=9``, the paper's walled model) or its baseline (``wall_rows=0``).

    ``width`` scales every channel count and the 4096-unit dense layers; the depth, kernels and
    pooling, hence the wall geometry, do not change. See :class:`RVGG`.
    """
    return RVGG(num_classes=num_classes, width=width, wall_rows=wall_rows, **kwargs)


def rvgg_forward_flops(width: float = 1.0, num_classes: int = 1000) -> float:
    """Floating-point operations (2 x multiply-accumulates) of one rVGG forward pass on one
    224x224 image; convolutions and dense layers only (ReLU and pooling are negligible).

    A training step costs about three times this (forward, and backward for inputs and weights).
    """
    macs, size, cin = 0, IMAGE_SIZE, 3
    for v in rvgg_channels(width):
        if v == "M":
            size //= 2
            continue
        macs += size * size * 9 * cin * int(v)
        cin = int(v)
    hidden = max(1, int(round(4096 * width)))
    macs += cin * MAP_SIZE**2 * hidden + hidden * hidden + hidden * num_classes
    return 2.0 * macs
