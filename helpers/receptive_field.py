"""Receptive-field arithmetic along the rows: which input rows reach which output rows.

The lowest layer of the wall's geometry, on plain ``torch.nn`` layers (Conv2d, MaxPool2d,
AvgPool2d, and the element-wise layers that move no row): :func:`receptive_field` (size and
stride of a unit's receptive field) and :func:`input_rows_reaching` (the input rows a set of
output rows depends on). :mod:`helpers.models` (the theory CNN's unseen rows) and
:mod:`helpers.wall` (rVGG's) both build on it; it imports neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from .config import IMAGE_SIZE

__all__ = ["RowSpan", "receptive_field", "input_rows_reaching"]


@dataclass(frozen=True)
class RowSpan:
    """Receptive-field summary of a stack of layers: ``size`` pixels, ``stride`` (jump) pixels."""

    size: int
    stride: int


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _spatial_layers(layers: Iterable[nn.Module]) -> list[tuple[int, int, int, int]]:
    """(kernel, stride, padding, dilation) along the height axis of each spatial layer."""
    out = []
    for m in layers:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k = _pair(m.kernel_size)[0]
            s = _pair(m.stride if m.stride is not None else m.kernel_size)[0]
            p = _pair(m.padding)[0]
            d = _pair(getattr(m, "dilation", 1))[0]
            if isinstance(m, nn.Conv2d) and m.padding_mode != "zeros":
                raise ValueError(
                    f"padding_mode {m.padding_mode!r} is not supported (only 'zeros')."
                )
            if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) and getattr(
                m, "ceil_mode", False
            ):
                raise ValueError(
                    "ceil_mode pooling is not supported by the row arithmetic."
                )
            out.append((k, s, p, d))
        elif isinstance(
            m, (nn.ReLU, nn.Dropout, nn.Identity, nn.BatchNorm2d, nn.LeakyReLU, nn.GELU)
        ):
            continue  # row-wise (or identity) layers do not move rows
        elif isinstance(m, nn.Sequential):
            out.extend(_spatial_layers(m))
        else:
            raise ValueError(
                f"Cannot do receptive-field arithmetic through {type(m).__name__}; expected Conv2d, "
                "MaxPool2d, AvgPool2d or an element-wise layer. Use unseen_rows_by_gradient for "
                "other architectures."
            )
    return out


def _output_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def receptive_field(layers: Iterable[nn.Module]) -> RowSpan:
    """Receptive-field size and stride of the last layer's units (along rows).

    For rVGG's ``features``: 196 pixels, stride 16.
    """
    size, jump = 1, 1
    for k, s, _p, d in _spatial_layers(layers):
        size += d * (k - 1) * jump
        jump *= s
    return RowSpan(size=size, stride=jump)


def input_rows_reaching(
    layers: Sequence[nn.Module], map_rows: Iterable[int], image_size: int = IMAGE_SIZE
) -> np.ndarray:
    """Sorted input rows (0-indexed) that influence at least one of ``map_rows`` of the output
    of ``layers`` on a ``image_size``-row input (boolean mask of length ``image_size`` -> indices).
    """
    specs = _spatial_layers(layers)
    sizes = [image_size]
    for k, s, p, d in specs:
        sizes.append(_output_size(sizes[-1], k, s, p, d))
        if sizes[-1] < 1:
            raise ValueError(f"a {image_size}-row input is too small for these layers.")
    rows = np.zeros(sizes[-1], dtype=bool)
    for r in map_rows:
        if not 0 <= int(r) < sizes[-1]:
            raise ValueError(f"map row {r} is outside the {sizes[-1]}-row output.")
        rows[int(r)] = True
    for (k, s, p, d), n_in in zip(reversed(specs), reversed(sizes[:-1])):
        prev = np.zeros(n_in, dtype=bool)
        for r in np.flatnonzero(rows):
            for j in range(k):
                i = r * s - p + j * d
                if 0 <= i < n_in:
                    prev[i] = True
        rows = prev
    return np.flatnonzero(rows)


def rows_reaching(
    layers: Sequence[nn.Module], map_rows: Sequence[int], image_size: int
) -> np.ndarray:
    """Input rows reaching ``map_rows`` through a plain stack of convolutions and poolings
    (every other layer, e.g. ReLU, batch norm, dropout or a row-zeroing wall, is skipped): :func:`input_rows_reaching`
    on the spatial layers only. Sorted indices."""
    spatial = [
        m
        for layer in layers
        for m in (layer.modules() if isinstance(layer, nn.Sequential) else [layer])
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))
    ]
    return input_rows_reaching(spatial, list(map_rows), image_size)
