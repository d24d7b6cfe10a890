"""Every number of the wall, derived once from the model and never typed anywhere else.

The wall of rVGG hides the lower map rows of its CAM target layer from the first dense layer;
which *image* rows that makes unseen, which image rows an element-wise map loses to bilinear
upsampling, the share of the image each is, and the mu of a uniform map all follow from the
network's depth, kernels and pooling (not from its width). :func:`rvgg_geometry` builds a
tiny-width rVGG (:func:`helpers.models.rvgg`, ``width=1/64``), asks :mod:`helpers.wall` for
those rows, and returns them as a frozen :class:`WallGeometry`, computed once per process.

The library's modules read their wall constants from here (``helpers.data.FIRST_UNSEEN_ROW``,
``helpers.plots.FIRST_UNSEEN_ROW``, ``helpers.metrics.PAPER_UNSEEN_ROWS``, the captions of
:mod:`helpers.results`); the chapters and the book's pages paste :func:`texts` into their prose
with ``glue`` (``tests/test_geometry.py`` fails when a wall number is typed instead).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from .config import IMAGE_SIZE, MAP_SIZE, WALL_ROWS
from .models import rvgg
from .wall import receptive_field, unseen_rows, upsampled_zero_rows, visible_map_rows

__all__ = ["WallGeometry", "rvgg_geometry", "texts"]


def _count(field: str, doc: str) -> property:
    return property(lambda self: len(getattr(self, field)), doc=doc)


def _share(field: str, doc: str) -> property:
    return property(lambda self: len(getattr(self, field)) / self.image_size, doc=doc)


@dataclass(frozen=True)
class WallGeometry:
    """The wall of a model on its input, as rows (0-indexed, sorted, plain Python ints).

    Attributes:
        image_size: input height (and width) in pixels.
        map_size: height of the CAM target layer's map.
        visible_map_rows: the map rows the first dense layer reads.
        hidden_map_rows: the map rows it does not read (behind the wall).
        rf_size, rf_stride: receptive field of one target-layer unit along the rows: size and
            stride in input pixels.
        unseen_rows: the input rows the model's output cannot depend on.
        zero_rows: the image rows that are exactly zero after bilinear upsampling (as
            pytorch-grad-cam does) of any map that is zero on the hidden map rows.
    """

    image_size: int
    map_size: int
    visible_map_rows: tuple[int, ...]
    hidden_map_rows: tuple[int, ...]
    rf_size: int
    rf_stride: int
    unseen_rows: tuple[int, ...]
    zero_rows: tuple[int, ...]

    @property
    def first_unseen_row(self) -> int:
        """The first input row the model cannot see (the wall's line in every figure)."""
        return self.unseen_rows[0]

    @property
    def last_seen_row(self) -> int:
        """The last input row the model can see."""
        return self.first_unseen_row - 1

    n_unseen = _count("unseen_rows", "How many input rows the model cannot see.")
    unseen_share = _share("unseen_rows", "The unseen rows' share of the image.")

    @property
    def first_zero_row(self) -> int:
        """The first image row an element-wise map is zero on after upsampling."""
        return self.zero_rows[0]

    n_zero = _count(
        "zero_rows",
        "How many image rows an element-wise map is zero on after upsampling.",
    )
    zero_share = _share("zero_rows", "The upsampled zero rows' share of the image.")

    @property
    def uniform_mu(self) -> float:
        """mu of a uniform map: the square root of the unseen share (its norm's share there)."""
        return math.sqrt(self.unseen_share)

    def unseen_array(self) -> np.ndarray:
        """:attr:`unseen_rows` as an integer array (a new one each call)."""
        return np.asarray(self.unseen_rows, dtype=int)

    def zero_array(self) -> np.ndarray:
        """:attr:`zero_rows` as an integer array (a new one each call)."""
        return np.asarray(self.zero_rows, dtype=int)


def _ints(rows) -> tuple[int, ...]:
    return tuple(int(r) for r in np.asarray(rows).ravel())


@functools.cache
def rvgg_geometry(wall_rows: int = WALL_ROWS) -> WallGeometry:
    """The wall of rVGG with ``wall_rows`` hidden map rows (default: the paper's), derived from
    a tiny-width rVGG through :mod:`helpers.wall`. Cached: computed once per process.

    Raises:
        ValueError: for a ``wall_rows`` that leaves no row unseen or no row visible (the
            numbers of this class would be undefined).
    """
    with torch.random.fork_rng(
        devices=[]
    ):  # the weights are irrelevant: leave the caller's RNG alone
        model = rvgg(num_classes=10, width=1 / 64, wall_rows=wall_rows)
    visible = _ints(visible_map_rows(model))
    unseen = _ints(unseen_rows(model, IMAGE_SIZE))
    if not unseen or not visible:
        raise ValueError(
            f"rVGG with wall_rows={wall_rows} has {len(unseen)} unseen input rows and "
            f"{len(visible)} visible map rows; expected some of each (0 < wall_rows < {MAP_SIZE})."
        )
    hidden = tuple(r for r in range(MAP_SIZE) if r not in visible)
    rf = receptive_field(model.features)
    return WallGeometry(
        image_size=IMAGE_SIZE,
        map_size=MAP_SIZE,
        visible_map_rows=visible,
        hidden_map_rows=hidden,
        rf_size=int(rf.size),
        rf_stride=int(rf.stride),
        unseen_rows=unseen,
        zero_rows=_ints(upsampled_zero_rows(hidden, MAP_SIZE, IMAGE_SIZE)),
    )


def _span(rows: tuple[int, ...]) -> str:
    return f"{rows[0]}..{rows[-1]}"


def texts(geometry: WallGeometry | None = None) -> dict[str, str]:
    """The wall's numbers as the prose writes them, keyed by the glue names the chapters and
    pages use (``{glue:text}`geo_first_unseen_row```, ...); ``geometry`` defaults to
    :func:`rvgg_geometry`. In a chapter::

        for name, text in geometry.texts().items():
            glue(name, text, display=False)
    """
    g = geometry if geometry is not None else rvgg_geometry()
    return {
        "geo_image_size": str(g.image_size),
        "geo_first_unseen_row": str(g.first_unseen_row),
        "geo_last_seen_row": str(g.last_seen_row),
        "geo_unseen_rows": _span(g.unseen_rows),
        "geo_unseen_count": str(g.n_unseen),
        "geo_unseen_share": f"{100 * g.unseen_share:.1f}%",
        "geo_hidden_map_rows": _span(g.hidden_map_rows),
        "geo_visible_map_rows": _span(g.visible_map_rows),
        "geo_zero_first_row": str(g.first_zero_row),
        "geo_zero_rows": _span(g.zero_rows),
        "geo_zero_share": f"{100 * g.zero_share:.1f}%",
        "geo_blind_band": f"{g.first_zero_row}..{g.last_seen_row}",
        "geo_uniform_mu": f"{g.uniform_mu:.3f}",
        "geo_uniform_formula": f"\u221a({g.n_unseen}/{g.image_size}) = {g.uniform_mu:.3f}",
    }
