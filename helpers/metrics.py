"""How much of a saliency map lies behind the wall, and how much of it is exactly zero.

The paper's metric (book/paper.md) is the *dead-zone share*

    mu(L) = ||L[rows, :]||_2 / ||L||_2,

the share of the map's L2 (Frobenius) norm in the image rows the walled model cannot see
(:func:`helpers.wall.unseen_rows`; for rVGG :data:`PAPER_UNSEEN_ROWS`, from
:func:`helpers.geometry.rvgg_geometry`), computed on the maps as pytorch-grad-cam returns them
(224x224, ReLU'd, min-max scaled). Lower is better: a map that ignores the hidden strip scores
0, a uniform map the square root of the unseen share of the rows (:func:`uniform_share`). mu is scale-invariant, so it is the same on the raw maps whenever
min-max scaling only divides (the map's minimum is 0, as after a ReLU).

An all-zero map has no norm; we define its mu as 0 (it puts nothing behind the wall) and
count such maps separately (:func:`all_zero`), so a table can say how often it happened.

Also: the fraction of a map that is *exactly* zero (:func:`zero_fraction`), the fraction of
its rows that are zero all along (:func:`zero_row_fraction`), and the first row from which
the map is zero down to the bottom (:func:`first_zero_row`) -- HiResCAM's zero area on rVGG
starts far above the unseen strip (``helpers.geometry.rvgg_geometry().zero_rows`` against its
``unseen_rows``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .geometry import rvgg_geometry
from .wall import unseen_rows

__all__ = [
    "PAPER_UNSEEN_ROWS",
    "as_maps",
    "check_rows",
    "dead_zone_share",
    "uniform_share",
    "zero_fraction",
    "zero_row_fraction",
    "first_zero_row",
    "all_zero",
    "summarize",
]

#: The rows rVGG cannot see on a 224x224 input (0-indexed; the paper counts from 1), derived by
#: :func:`helpers.geometry.rvgg_geometry`.
PAPER_UNSEEN_ROWS = rvgg_geometry().unseen_array()


def as_maps(maps: Any) -> tuple[np.ndarray, bool]:
    """``maps`` as a float64 array ``(N, H, W)`` and whether a single ``(H, W)`` map was given.

    Raises:
        TypeError, ValueError: for anything that is not one or a batch of 2-D maps, or holds
            NaN/inf.
    """
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().numpy()
    try:
        arr = np.asarray(maps, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"expected saliency maps as an array (H, W) or (N, H, W), got "
            f"{type(maps).__name__}."
        ) from None
    single = arr.ndim == 2
    if single:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(
            f"expected saliency maps of shape (H, W) or (N, H, W), got {arr.shape}."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"expected non-empty maps, got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError("saliency maps contain NaN or infinite values.")
    return arr, single


def check_rows(rows: Sequence[int] | np.ndarray, height: int) -> np.ndarray:
    """``rows`` as sorted unique int indices in ``0..height-1``.

    Raises:
        ValueError: for an empty set or a row outside the map.
    """
    idx = np.unique(np.asarray(rows, dtype=np.int64).reshape(-1))
    if idx.size == 0:
        raise ValueError(
            "rows is empty: there is no unseen region to measure. For the baseline "
            "model use the walled model's unseen rows (helpers.wall.unseen_rows)."
        )
    if idx[0] < 0 or idx[-1] >= height:
        raise ValueError(
            f"rows must lie in 0..{height - 1} for maps of height {height}, got "
            f"{idx[0]}..{idx[-1]}."
        )
    return idx


def _rows_for(arr: np.ndarray, rows, model) -> np.ndarray:
    if rows is None and model is not None:
        rows = unseen_rows(model, arr.shape[1])
    if rows is None:
        if arr.shape[1] != rvgg_geometry().image_size:
            raise ValueError(
                f"maps of height {arr.shape[1]}: pass rows= (the default rows "
                f"{PAPER_UNSEEN_ROWS[0]}..{PAPER_UNSEEN_ROWS[-1]} are those of a "
                f"{rvgg_geometry().image_size}-row image)."
            )
        rows = PAPER_UNSEEN_ROWS
    return check_rows(rows, arr.shape[1])


def dead_zone_share(
    maps: Any, rows: Sequence[int] | None = None, model: Any = None
) -> np.ndarray | float:
    """mu: the share of each map's L2 norm in ``rows``.

    Args:
        maps: ``(H, W)`` or ``(N, H, W)`` saliency maps (NumPy or torch).
        rows: the unseen image rows; default ``helpers.wall.unseen_rows(model)`` when a model
            is given, else :data:`PAPER_UNSEEN_ROWS` (rVGG's, for 224-row maps).
        model: a walled model whose unseen rows to use (for a baseline, which has none, pass
            the walled model's rows instead).

    Returns:
        A float for one map, else an ``(N,)`` array, each in ``[0, 1]``; 0 for an all-zero map.
    """
    arr, single = as_maps(maps)
    idx = _rows_for(arr, rows, model)
    total = np.sqrt(np.sum(arr * arr, axis=(1, 2)))
    part = np.sqrt(np.sum(arr[:, idx, :] ** 2, axis=(1, 2)))
    mu = np.divide(part, total, out=np.zeros_like(total), where=total > 0)
    return float(mu[0]) if single else mu


def uniform_share(rows: Sequence[int] | None = None, height: int = 224) -> float:
    """mu of a constant map: ``sqrt(len(rows) / height)`` (for rVGG's rows,
    ``helpers.geometry.rvgg_geometry().uniform_mu``)."""
    idx = check_rows(PAPER_UNSEEN_ROWS if rows is None else rows, height)
    return float(np.sqrt(idx.size / height))


def zero_fraction(maps: Any) -> np.ndarray | float:
    """The fraction of each map's pixels that are exactly 0 (a float, or ``(N,)``)."""
    arr, single = as_maps(maps)
    frac = np.mean(arr == 0, axis=(1, 2))
    return float(frac[0]) if single else frac


def zero_row_fraction(maps: Any) -> np.ndarray | float:
    """The fraction of each map's rows that are exactly 0 all along (a float, or ``(N,)``)."""
    arr, single = as_maps(maps)
    frac = np.mean(np.all(arr == 0, axis=2), axis=1)
    return float(frac[0]) if single else frac


def first_zero_row(maps: Any) -> np.ndarray | int:
    """For each map, the first row ``r`` such that rows ``r..H-1`` are all exactly 0
    (``H`` when the last row is not zero; ``0`` for an all-zero map)."""
    arr, single = as_maps(maps)
    zero_rows = np.all(arr == 0, axis=2)  # (N, H)
    height = arr.shape[1]
    # number of trailing zero rows = length of the run of True at the end
    trailing = np.argmin(zero_rows[:, ::-1], axis=1)
    trailing = np.where(zero_rows.all(axis=1), height, trailing)
    first = height - trailing
    return int(first[0]) if single else first.astype(np.int64)


def all_zero(maps: Any) -> np.ndarray | bool:
    """Whether each map is zero everywhere (its mu is then defined as 0)."""
    arr, single = as_maps(maps)
    flags = ~np.any(arr != 0, axis=(1, 2))
    return bool(flags[0]) if single else flags


def summarize(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """``{"mean", "std", "min", "max", "n"}`` of per-image values.

    ``std`` is the sample standard deviation (``ddof=1``), as the paper's numbers are computed
    (the authors' ``torch.std``, book/paper.md); ``nan`` for a single value, as ``torch.std`` gives.
    """
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError("no values to summarize.")
    std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return {
        "mean": float(arr.mean()),
        "std": std,
        "min": float(arr.min()),
        "max": float(arr.max()),
        "n": int(arr.size),
    }
