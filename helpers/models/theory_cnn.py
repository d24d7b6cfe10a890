"""The small masked CNN of the theory chapter, at Gaussian initialization.

A 2x2 convolution, ReLU, 2x2 max-pool and a walled dense layer on 29x29 one-channel images:
the model the paper's proof is about (book/paper.md, "The theory model").
"""

from __future__ import annotations

import torch
from torch import nn

from ..receptive_field import input_rows_reaching
from .rvgg import check_image_batch
from .wall_layer import WalledLinear, wall_mask

__all__ = ["TheoryCNN", "theory_cnn"]


class TheoryCNN(nn.Module):
    """The masked CNN of the theory chapter (book/paper.md, "The theory model").

    ``(N, 1, 29, 29)`` -> ``Conv2d(1, V, 2, bias=False)`` -> ReLU (``target_layer``, 28x28) ->
    ``MaxPool2d(2)`` (14x14) -> flatten -> ``WalledLinear(V*14*14, classes, bias=False)`` whose
    weights on the lower ``hidden_rows`` of the 14 rows are zero. With ``sigma_w``/``sigma_W``
    the weights are i.i.d. ``N(0, sigma^2)`` (standard Gaussian by default).
    """

    def __init__(
        self,
        filters: int = 256,
        num_classes: int = 10,
        hidden_rows: int = 7,
        sigma_w: float = 1.0,
        sigma_W: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if filters < 1 or num_classes < 1:
            raise ValueError(
                f"filters and num_classes must be positive, got {filters}, {num_classes}."
            )
        self.filters, self.num_classes, self.hidden_rows = (
            filters,
            num_classes,
            hidden_rows,
        )
        self.conv = nn.Conv2d(1, filters, kernel_size=2, bias=False)
        self.relu = nn.ReLU(inplace=False)
        self.pool = nn.MaxPool2d(2)
        self.dense = WalledLinear(
            filters * 14 * 14,
            num_classes,
            wall_mask(filters, 14, hidden_rows),
            bias=False,
        )
        with torch.no_grad():
            self.conv.weight.copy_(
                torch.randn(self.conv.weight.shape, generator=generator) * sigma_w
            )
            self.dense.weight.copy_(
                torch.randn(self.dense.weight.shape, generator=generator)
                * sigma_W
                * self.dense.mask
            )

    @property
    def target_layer(self) -> nn.Module:
        """The ReLU after the convolution (28x28 maps): GradCAM is taken there."""
        return self.relu

    def visible_map_rows(self) -> list[int]:
        """Rows of the pooled 14x14 map that the dense layer reads (0..13-hidden_rows)."""
        return list(range(14 - self.hidden_rows))

    def unseen_rows(self, image_size: int = 29) -> list[int]:
        """Input rows (of the 29-row image) the logits cannot depend on, by receptive-field
        arithmetic through the convolution and the pooling (rows 15..28 with 7 hidden rows)."""
        if image_size != 29:
            raise ValueError(
                f"TheoryCNN is defined for 29x29 inputs, got image_size={image_size}."
            )
        seen = input_rows_reaching(
            [self.conv, self.relu, self.pool], self.visible_map_rows(), image_size
        )
        return sorted(set(range(image_size)) - set(int(r) for r in seen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, classes)`` of ``(N, 1, 29, 29)`` images."""
        check_image_batch(x, image_size=29, channels=1)
        return self.dense(torch.flatten(self.pool(self.relu(self.conv(x))), 1))


def theory_cnn(
    filters: int = 256,
    num_classes: int = 10,
    hidden_rows: int = 7,
    seed: int | None = None,
    sigma_w: float = 1.0,
    sigma_W: float = 1.0,
) -> TheoryCNN:
    """A :class:`TheoryCNN` at Gaussian initialization (reproducible with ``seed``)."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return TheoryCNN(filters, num_classes, hidden_rows, sigma_w, sigma_W, generator=gen)
