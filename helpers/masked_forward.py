"""Logits of masked images computed only on the input rows the logits depend on.

ScoreCAM runs the whole network on images ``x * m`` whose mask ``m`` comes from one channel of
the target layer. A walled rVGG's first dense layer reads only the top rows of its 14x14 map (5
of them: 9 hidden rows, book/paper.md), and through the receptive fields those rows depend only on
the input rows above the wall (``helpers.geometry.rvgg_geometry().first_unseen_row`` of them).
Rows the logits never read need not be computed:

* a mask whose non-zero pixels all lie on the unseen rows gives exactly the logits of a black
  image (everything the network can see is black), which are computed once;
* any other masked image runs the convolutions on its top rows only, down to the first multiple
  of 16 at or after the first unseen row (so that the four 2x2 max-pools see the same grid;
  :attr:`VisibleRowsForward.rows`); the map rows the
  classifier reads are then the full pass's, to float rounding, and the rows it does not read
  are filled with the black image's values.

:class:`VisibleRowsForward` does this for any VGG-like network (3x3 zero-padded convolutions,
ReLUs, 2x2 max-pools, then the classifier on the map): the rows it keeps are worked out from
the classifier's mask by :mod:`helpers.wall`'s receptive-field arithmetic (the chapter on the
wall proves with it which rows are unseen), so without a wall it keeps every row and is
the plain forward pass.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from torchvision.models import VGG

from . import wall

__all__ = [
    "VisibleRowsForward",
    "VisibleRowsNet",
    "rows_needed",
    "support_rows",
    "supports_model",
]


def _plain_conv(m: nn.Module) -> bool:
    return (
        isinstance(m, nn.Conv2d)
        and m.kernel_size == (3, 3)
        and m.stride == (1, 1)
        and m.padding == (1, 1)
        and m.dilation == (1, 1)
        and m.padding_mode == "zeros"
    )


def _plain_pool(m: nn.Module) -> bool:
    return (
        isinstance(m, nn.MaxPool2d)
        and m.kernel_size in (2, (2, 2))
        and m.stride in (2, (2, 2))
        and m.padding in (0, (0, 0))
        and m.dilation in (1, (1, 1))
        and not m.ceil_mode
    )


def supports_model(model: nn.Module) -> bool:
    """Whether :class:`VisibleRowsForward` applies: a torchvision ``VGG`` (rVGG included) whose
    ``features`` are only 3x3 stride-1 zero-padded convolutions, ReLUs and 2x2 max-pools."""
    if not isinstance(model, VGG):
        return False
    return all(
        _plain_conv(m) or isinstance(m, nn.ReLU) or _plain_pool(m)
        for m in model.features
    )


def support_rows(masks: torch.Tensor) -> torch.Tensor:
    """``(P,)`` long: the first row holding a non-zero pixel of each mask ``(P, 1, H, W)`` (or
    ``(P, H, W)``); ``H`` for an all-zero mask."""
    m = masks.reshape(masks.shape[0], masks.shape[-2], masks.shape[-1]) != 0
    rows = m.any(dim=2)
    idx = torch.arange(m.shape[1], device=masks.device)
    return torch.where(rows, idx, m.shape[1]).min(dim=1).values


def rows_needed(model: nn.Module, height: int) -> tuple[int, int, int]:
    """``(read_rows, input_rows, rows)`` of a network for which :func:`supports_model` holds, on
    images ``height`` rows tall: the top rows of the final map its classifier reads (down to the
    last row :func:`helpers.wall.visible_map_rows` lists; every row when an adaptive pool mixes
    them), the input rows those depend on (receptive-field arithmetic, :mod:`helpers.wall`), and
    those rounded up to the pools' grid (what a pass on the top rows must run on).

    Raises:
        ValueError: when :func:`supports_model` does not hold, or ``height`` is not a multiple of
            ``2 ** pools``.
    """
    if not supports_model(model):
        raise ValueError(
            "A pass on the visible rows needs a torchvision VGG whose features are only 3x3 "
            "stride-1 zero-padded convolutions, ReLUs and 2x2 max-pools; use the model "
            "itself for other networks."
        )
    modules = list(model.features)
    align = 2 ** sum(_plain_pool(m) for m in modules)
    if height % align:
        raise ValueError(
            f"image height {height} must be divisible by {align} (the pools' grid)."
        )
    map_rows = height // align
    if isinstance(model.avgpool, nn.Identity) and hasattr(model, "map_channels"):
        read = wall.visible_map_rows(model)
    else:  # an adaptive pool mixes the rows: all of them count
        read = np.arange(map_rows)
    read_rows = int(read.max()) + 1 if read.size else 0
    seen = (
        wall.input_rows_reaching(modules, range(read_rows), height)
        if read_rows
        else np.zeros(0)
    )
    input_rows = int(seen.max()) + 1 if seen.size else 0
    return (
        read_rows,
        input_rows,
        min(height, max(align, -(-input_rows // align) * align)),
    )


class VisibleRowsForward:
    """``model(images[img] * masks)``, computed on the input rows the logits depend on.

    Args:
        model: a network for which :func:`supports_model` holds (in eval mode).
        image_size: ``(H, W)`` of the images; ``H`` divisible by ``2 ** pools``.

    Attributes:
        read_rows: how many top rows of the final map the classifier reads (down to the last
            row :func:`helpers.wall.visible_map_rows` lists).
        input_rows: input rows the logits depend on (rVGG's first unseen row with its wall,
            ``H`` without one).
        rows: the rows each masked image runs on (``input_rows`` rounded up to the pooling grid).
        share: ``rows / H``, about the share of the full pass's cost a masked image costs.
    """

    def __init__(self, model: nn.Module, image_size: tuple[int, int]) -> None:
        if not supports_model(model):
            raise ValueError(
                "VisibleRowsForward needs a torchvision VGG whose features are only 3x3 "
                "stride-1 zero-padded convolutions, ReLUs and 2x2 max-pools; use the "
                "model itself for other networks."
            )
        self.model = model
        h, w = int(image_size[0]), int(image_size[1])
        self.read_rows, self.input_rows, self.rows = rows_needed(model, h)
        p = next(model.parameters())
        z = torch.zeros(1, 3, h, w, device=p.device, dtype=p.dtype)
        with torch.no_grad():
            for m in model.features:
                z = m(z)
            self._zero_map = z  # the black image's final map (1, C, rows, cols)
            self.zero_logits = model.classifier(torch.flatten(model.avgpool(z), 1))[0]
        self.share = self.rows / h
        self.size = (h, w)

    def unread(self, masks: torch.Tensor) -> torch.Tensor:
        """``(P,)`` bool: masks with no non-zero pixel in the rows the logits depend on; their
        masked images score exactly as a black image (:attr:`zero_logits`)."""
        return support_rows(masks) >= self.input_rows

    @torch.no_grad()
    def __call__(
        self, images: torch.Tensor, masks: torch.Tensor, img: torch.Tensor
    ) -> torch.Tensor:
        """Logits ``(P, classes)`` of ``images[img] * masks`` (``images`` ``(N, 3, H, W)``,
        ``masks`` ``(P, 1, H, W)``, ``img`` ``(P,)`` long)."""
        if images.shape[-2:] != self.size or masks.shape[-2:] != self.size:
            raise ValueError(
                f"expected images and masks of size {self.size[0]}x{self.size[1]}, got "
                f"{tuple(images.shape[-2:])} and {tuple(masks.shape[-2:])}."
            )
        rows = self.rows
        x = (images[img, :, :rows] * masks[:, :, :rows]).contiguous(
            memory_format=torch.channels_last
        )
        if rows == self.size[0]:
            return self.model(x)
        out = self.model.features(x)
        full = self._zero_map.expand(x.shape[0], -1, -1, -1).clone()
        full[:, :, : self.read_rows] = out[:, :, : self.read_rows]
        return self.model.classifier(torch.flatten(self.model.avgpool(full), 1))


class VisibleRowsNet(nn.Module):
    """``model(x)`` computed on the input rows its logits depend on: what trains a walled rVGG
    faster (the walled model needs only the top :attr:`rows` of the 224 input rows).

    The convolutions run on the top :attr:`rows` input rows; the map rows the classifier reads
    (:attr:`read_rows`) are the full pass's, and the rows below are zeros. The first dense
    layer's weights on those rows are zero (the wall), so the logits are the full pass's and so
    is the gradient of every weight, to float rounding (tests/test_masked_forward.py compares
    both). Without a wall every row is read and this is the plain forward pass. The module holds
    ``model`` (its parameters are ``model``'s); the checkpoint is ``model``'s own.

    Args:
        model: a network for which :func:`supports_model` holds.
        height: the images' height (224 for rVGG).
    """

    def __init__(self, model: nn.Module, height: int = 224) -> None:
        super().__init__()
        self.model = model
        self.height = int(height)
        self.read_rows, self.input_rows, self.rows = rows_needed(model, self.height)
        self.map_rows = self.height // 2 ** sum(_plain_pool(m) for m in model.features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if x.shape[-2] != self.height:
            raise ValueError(
                f"expected images {self.height} rows tall, got {x.shape[-2]}."
            )
        if self.rows >= self.height:
            return self.model(x)
        out = self.model.features(x[:, :, : self.rows])[:, :, : self.read_rows]
        out = torch.nn.functional.pad(out, (0, 0, 0, self.map_rows - self.read_rows))
        return self.model.classifier(torch.flatten(self.model.avgpool(out), 1))
