"""The wall as a layer: a ``Linear`` that never reads the inputs under its mask.

:func:`wall_mask` (the 0/1 mask of the lower ``wall_rows`` rows of a map), :class:`WalledLinear`
(the dense layer that applies it in every forward pass and on every ``load_state_dict``),
:class:`WallError` (an open wall refused) and :func:`wall_weights_zero` (is a stored weight
walled?). rVGG, the theory CNN and the variants all build their walls from these.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import MAP_SIZE, WALL_ROWS

__all__ = [
    "wall_mask",
    "WallError",
    "WalledLinear",
    "wall_weights_zero",
    "check_wall_rows",
]


def wall_mask(
    channels: int, map_size: int = MAP_SIZE, wall_rows: int = WALL_ROWS
) -> torch.Tensor:
    """The 0/1 mask over the flattened ``(channels, map_size, map_size)`` features.

    Entry ``c*map_size*map_size + r*map_size + w`` is 0 when row ``r`` is one of the lower
    ``wall_rows`` rows (``r >= map_size - wall_rows``), 1 otherwise. Shape ``(channels*map_size**2,)``.
    """
    if not 0 <= wall_rows <= map_size:
        raise ValueError(
            f"wall_rows must be between 0 (no wall) and map_size={map_size}, got {wall_rows}."
        )
    rows = (
        torch.arange(map_size, device="cpu")
        .view(1, map_size, 1)
        .expand(channels, map_size, map_size)
    )
    return (rows < map_size - wall_rows).to(torch.float32).reshape(-1).contiguous()


class WallError(ValueError):
    """A wall violation: weights under the wall that should be exactly zero are not.

    A ``ValueError``, so that ``except ValueError`` catches every refusal about the wall; raised
    by :class:`WalledLinear` when a state dict with an open wall is loaded into it."""


class WalledLinear(nn.Linear):
    """A ``nn.Linear`` whose inputs at masked positions are never read.

    ``forward`` uses ``where(mask, weight, 0)`` (``mask`` is a non-trainable buffer of shape
    ``(in_features,)``), so the effective weight on a masked input is exactly zero in every
    forward pass, whatever the stored weight. The stored weights under the wall are also
    zeroed at construction and on every ``load_state_dict`` (see ``on_open_wall``), so that a
    checkpoint saved from this layer has a closed wall too.

    Args:
        in_features, out_features, bias: as for ``nn.Linear``.
        mask: 0/1 tensor of shape ``(in_features,)``.
        on_open_wall: what loading a state dict with non-zero weights under the wall does:
            ``"error"`` (default) refuses it; ``"repair"`` zeroes them with a warning.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        mask: torch.Tensor,
        bias: bool = True,
        on_open_wall: str = "error",
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        mask = torch.as_tensor(mask, dtype=torch.float32, device="cpu").reshape(-1)
        if mask.numel() != in_features:
            raise ValueError(
                f"mask has {mask.numel()} entries, expected in_features={in_features}."
            )
        if not torch.all((mask == 0) | (mask == 1)):
            raise ValueError("mask must contain only 0 and 1.")
        if on_open_wall not in ("error", "repair"):
            raise ValueError(
                f"on_open_wall must be 'error' or 'repair', got {on_open_wall!r}."
            )
        self.register_buffer("mask", mask, persistent=False)
        self.on_open_wall = on_open_wall
        with torch.no_grad():
            self.weight.masked_fill_(self.mask == 0, 0.0)

    @property
    def effective_weight(self) -> torch.Tensor:
        """The weight the forward pass uses: ``weight`` where ``mask`` is 1, exactly 0 elsewhere
        (shape ``(out, in)``; a ``where``, not a product, so that even a NaN or an infinity
        stored under the wall is never read)."""
        return torch.where(
            self.mask.bool(),
            self.weight,
            torch.zeros((), dtype=self.weight.dtype, device=self.weight.device),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return F.linear(x, self.effective_weight, self.bias)

    def _load_from_state_dict(
        self,
        state_dict,
        prefix,
        local_metadata,
        strict,
        missing_keys,
        unexpected_keys,
        error_msgs,
    ):
        key = prefix + "weight"
        if key in state_dict and state_dict[key].shape == self.weight.shape:
            w = state_dict[key]
            under = w.detach()[:, (self.mask == 0).to(w.device)]
            open_ = under != 0  # a NaN counts as non-zero
            if bool(open_.any()):
                n = int(open_.sum())
                largest = float(under.abs().nan_to_num(nan=float("inf")).max())
                if self.on_open_wall == "error":
                    raise WallError(
                        f"{key}: {n} of the {under.numel()} weights under the wall are "
                        f"non-zero (largest {largest:.3g}); expected exactly 0, since the model is "
                        "walled. This state does not have a closed wall: it is a baseline's, or it was "
                        "modified. Use the walled model's own checkpoint, or load it with "
                        "on_open_wall='repair' to zero them explicitly."
                    )
                warnings.warn(
                    f"{key}: zeroing {n} non-zero weights under the wall (largest "
                    f"{largest:.3g}) as requested by on_open_wall='repair'.",
                    stacklevel=3,
                )
                state_dict = dict(state_dict)
                state_dict[key] = torch.where(
                    self.mask.bool().to(w.device), w, torch.zeros_like(w)
                )
        super()._load_from_state_dict(
            state_dict,
            prefix,
            local_metadata,
            strict,
            missing_keys,
            unexpected_keys,
            error_msgs,
        )
        with torch.no_grad():
            self.weight.masked_fill_(self.mask == 0, 0.0)

    def extra_repr(self) -> str:  # noqa: D102
        hidden = int((self.mask == 0).sum())
        return super().extra_repr() + f", hidden_inputs={hidden}"


def wall_weights_zero(
    weight: torch.Tensor,
    wall_rows: int = WALL_ROWS,
    map_size: int = MAP_SIZE,
    chunk: int = 256,
) -> bool:
    """Whether every weight of a first dense layer that reads one of the lower ``wall_rows``
    rows of the ``map_size`` x ``map_size`` map is exactly zero (the mark of a walled checkpoint).

    The weight is read ``chunk`` output rows at a time, so that the full-width layer (4096 x
    50176) needs no second copy of itself. A NaN counts as non-zero.

    Args:
        weight: ``(out_features, channels * map_size**2)``, inputs flattened as
            ``(channels, rows, columns)`` (rVGG's flatten order).
        wall_rows: the number of hidden rows, ``1..map_size``.
        map_size: the side of the map.
        chunk: output rows read at once.

    Raises:
        ValueError: when ``weight`` is not 2-D with a multiple of ``map_size**2`` inputs, or
            ``wall_rows`` is not in ``1..map_size``.
    """
    if not 1 <= wall_rows <= map_size:
        raise ValueError(f"wall_rows must be in 1..{map_size}, got {wall_rows}.")
    area = map_size * map_size
    if weight.dim() != 2 or weight.shape[1] % area != 0:
        raise ValueError(
            f"expected a first dense layer weight of shape (out, channels*{area}), got "
            f"{tuple(weight.shape)}."
        )
    channels = weight.shape[1] // area
    first_hidden = map_size - wall_rows
    with torch.no_grad():
        for start in range(0, weight.shape[0], chunk):
            block = weight[start : start + chunk].reshape(
                -1, channels, map_size, map_size
            )
            if bool(block[:, :, first_hidden:, :].ne(0).any()):
                return False
    return True


def check_wall_rows(wall_rows: int, map_size: int = MAP_SIZE) -> int:
    """``wall_rows`` as an ``int`` after checking it is a whole number in ``0..map_size``."""
    if (
        not isinstance(wall_rows, (int, np.integer))
        or not 0 <= int(wall_rows) <= map_size
    ):
        raise ValueError(
            f"wall_rows must be an integer in 0..{map_size} (hidden rows of the "
            f"{map_size}x{map_size} map), got {wall_rows!r}."
        )
    return int(wall_rows)
