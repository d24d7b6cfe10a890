"""Logits of masked images computed only on the input rows the logits depend on.

ScoreCAM runs the whole network on images ``x * m`` whose mask ``m`` comes from one channel of
the target layer. A walled rVGG's first dense layer reads only the top rows of its 14x14 map (5
of them: 9 hidden rows, FACTS.md), and through the receptive fields those rows depend only on
the input rows above the wall (0..169). Rows the logits never read need not be computed:

* a mask whose non-zero pixels all lie at or below row 170 gives exactly the logits of a black
  image (everything the network can see is black), which are computed once;
* any other masked image runs the convolutions on its top 176 rows only (the first multiple of
  16 at or after row 170, so that the four 2x2 max-pools see the same grid); the map rows the
  classifier reads are then the full pass's, to float rounding, and the rows it does not read
  are filled with the black image's values.

:class:`VisibleRowsForward` does this for any VGG-like network (3x3 zero-padded convolutions,
ReLUs, 2x2 max-pools, then the classifier on the map): the rows it keeps are worked out from
the classifier's mask by receptive-field arithmetic (one row per convolution, twice as many per
pool), so without a wall it keeps every row and is the plain forward pass.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["VisibleRowsForward", "read_rows", "support_rows", "supports_model"]


def _plain_conv(m: nn.Module) -> bool:
    return (isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.stride == (1, 1)
            and m.padding == (1, 1) and m.dilation == (1, 1) and m.padding_mode == "zeros")


def _plain_pool(m: nn.Module) -> bool:
    return (isinstance(m, nn.MaxPool2d) and m.kernel_size in (2, (2, 2)) and m.stride in (2, (2, 2))
            and m.padding in (0, (0, 0)) and m.dilation in (1, (1, 1)) and not m.ceil_mode)


def supports_model(model: nn.Module) -> bool:
    """Whether :class:`VisibleRowsForward` applies: a torchvision ``VGG`` (rVGG included) whose
    ``features`` are only 3x3 stride-1 zero-padded convolutions, ReLUs and 2x2 max-pools."""
    from torchvision.models import VGG

    if not isinstance(model, VGG):
        return False
    return all(_plain_conv(m) or isinstance(m, nn.ReLU) or _plain_pool(m) for m in model.features)


def read_rows(model: nn.Module, map_shape: tuple[int, int, int]) -> int:
    """How many top rows of the final feature map ``(C, rows, cols)`` the classifier reads: for
    rVGG with a wall, the rows above it (its first dense layer's ``mask`` is 0 on the others);
    all rows for any other model (or when ``avgpool`` is not the identity). A row counts as
    unread only when every row below it is unread too."""
    c, rows, cols = map_shape
    classifier = getattr(model, "classifier", None)
    first = classifier[0] if isinstance(classifier, nn.Sequential) and len(classifier) else None
    mask = getattr(first, "mask", None)
    if not isinstance(getattr(model, "avgpool", None), nn.Identity) or not isinstance(mask, torch.Tensor) \
            or mask.numel() != c * rows * cols:
        return rows
    used = (mask.reshape(c, rows, cols) != 0).any(dim=2).any(dim=0)
    idx = torch.nonzero(used).view(-1)
    return int(idx.max()) + 1 if idx.numel() else 0


def support_rows(masks: torch.Tensor) -> torch.Tensor:
    """``(P,)`` long: the first row holding a non-zero pixel of each mask ``(P, 1, H, W)`` (or
    ``(P, H, W)``); ``H`` for an all-zero mask."""
    m = masks.reshape(masks.shape[0], masks.shape[-2], masks.shape[-1]) != 0
    rows = m.any(dim=2)
    idx = torch.arange(m.shape[1], device=masks.device)
    return torch.where(rows, idx, m.shape[1]).min(dim=1).values


class VisibleRowsForward:
    """``model(images[img] * masks)``, computed on the input rows the logits depend on.

    Args:
        model: a network for which :func:`supports_model` holds (in eval mode).
        image_size: ``(H, W)`` of the images; ``H`` divisible by ``2 ** pools``.

    Attributes:
        read_rows: rows of the final map the classifier reads (:func:`read_rows`).
        input_rows: input rows the logits depend on (170 for rVGG's wall, ``H`` without one).
        rows: the rows each masked image runs on (``input_rows`` rounded up to the pooling grid).
        share: ``rows / H``, about the share of the full pass's cost a masked image costs.
    """

    def __init__(self, model: nn.Module, image_size: tuple[int, int]) -> None:
        if not supports_model(model):
            raise ValueError("VisibleRowsForward needs a torchvision VGG whose features are only 3x3 "
                             "stride-1 zero-padded convolutions, ReLUs and 2x2 max-pools; use the "
                             "model itself for other networks.")
        self.model = model
        h, w = int(image_size[0]), int(image_size[1])
        modules = list(model.features)
        align = 2 ** sum(_plain_pool(m) for m in modules)
        if h % align:
            raise ValueError(f"image height {h} must be divisible by {align} (the pools' grid).")
        p = next(model.parameters())
        z = torch.zeros(1, 3, h, w, device=p.device, dtype=p.dtype)
        heights = []
        with torch.no_grad():
            for m in modules:
                heights.append(z.shape[2])
                z = m(z)
            self._zero_map = z  # the black image's final map (1, C, rows, cols)
            self.zero_logits = model.classifier(torch.flatten(model.avgpool(z), 1))[0]
        self.read_rows = read_rows(model, tuple(z.shape[1:]))
        need = self.read_rows  # rows needed after module k, walking back from the classifier
        for k in range(len(modules) - 1, -1, -1):
            if _plain_pool(modules[k]):
                need = 2 * need
            elif _plain_conv(modules[k]):
                need = need + 1
            need = min(need, heights[k])
        self.input_rows = need
        self.rows = min(h, -(-need // align) * align)
        self.share = self.rows / h
        self.size = (h, w)

    def unread(self, masks: torch.Tensor) -> torch.Tensor:
        """``(P,)`` bool: masks with no non-zero pixel in the rows the logits depend on; their
        masked images score exactly as a black image (:attr:`zero_logits`)."""
        return support_rows(masks) >= self.input_rows

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, masks: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        """Logits ``(P, classes)`` of ``images[img] * masks`` (``images`` ``(N, 3, H, W)``,
        ``masks`` ``(P, 1, H, W)``, ``img`` ``(P,)`` long)."""
        if images.shape[-2:] != self.size or masks.shape[-2:] != self.size:
            raise ValueError(f"expected images and masks of size {self.size[0]}x{self.size[1]}, got "
                             f"{tuple(images.shape[-2:])} and {tuple(masks.shape[-2:])}.")
        rows = self.rows
        x = (images[img, :, :rows] * masks[:, :, :rows]).contiguous(memory_format=torch.channels_last)
        if rows == self.size[0]:
            return self.model(x)
        out = self.model.features(x)
        full = self._zero_map.expand(x.shape[0], -1, -1, -1).clone()
        full[:, :, :self.read_rows] = out[:, :, :self.read_rows]
        return self.model.classifier(torch.flatten(self.model.avgpool(full), 1))
