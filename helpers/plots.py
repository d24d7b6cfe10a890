"""Figures: images and saliency maps with the wall drawn, grids, curves.

House style (used by every chapter):

* saliency maps use :data:`CAM_CMAP` (``"inferno"``, perceptually uniform, readable in grey
  print and by colour-blind readers); signed quantities use :data:`DIVERGING_CMAP`;
* the wall is a dashed line at the first unseen image row and a hatched strip below it, as
  in the paper's figures; the hatching keeps it visible without colour;
* every figure is stamped with the profile that produced it (:func:`stamp`).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import to_rgb
from matplotlib.patches import Rectangle

from .config import IMAGE_SIZE, profile_label
from .data import denormalize
from .geometry import rvgg_geometry

__all__ = [
    "CAM_CMAP",
    "DIVERGING_CMAP",
    "WALL_COLOR",
    "FIRST_UNSEEN_ROW",
    "to_display",
    "draw_wall",
    "show_image",
    "show_map",
    "overlay",
    "stamp",
    "image_grid",
    "training_curves",
    "accuracy_by_row_plot",
    "overlay_rgb",
    "cam_grid",
]

CAM_CMAP = "inferno"
DIVERGING_CMAP = "RdBu_r"
WALL_COLOR = "#e8112d"
#: First input row rVGG cannot see (:func:`helpers.geometry.rvgg_geometry`): the wall's line.
FIRST_UNSEEN_ROW = rvgg_geometry().first_unseen_row


def to_display(
    image: torch.Tensor | np.ndarray, normalized: bool = False
) -> np.ndarray:
    """An ``(H, W, 3)`` float array in [0, 1] from a ``(3, H, W)`` tensor or ``(H, W[, 3])`` array.

    ``normalized=True`` undoes the ImageNet mean/std normalization first
    (:func:`helpers.data.denormalize`, in float64).
    """
    arr = (
        image.detach().cpu().numpy()
        if isinstance(image, torch.Tensor)
        else np.asarray(image)
    )
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.transpose(arr, (1, 2, 0))
    if (
        arr.ndim == 3
        and arr.shape[0] in (1, 3)
        and arr.shape[-1] in (1, 3)
        and arr.shape[0] != arr.shape[-1]
    ):
        arr = np.transpose(arr, (1, 2, 0))
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if normalized:
        chw = torch.from_numpy(
            np.ascontiguousarray(np.moveaxis(arr, -1, 0), dtype=np.float64)
        )
        arr = np.moveaxis(denormalize(chw).numpy(), 0, -1)
    if arr.dtype == np.uint8:
        arr = arr / 255.0
    return np.clip(arr.astype(np.float64), 0.0, 1.0)


def draw_wall(
    ax: plt.Axes,
    first_unseen_row: float = FIRST_UNSEEN_ROW,
    size: int = IMAGE_SIZE,
    scale: float = 1.0,
    label: str | None = None,
    color: str = WALL_COLOR,
) -> None:
    """Draw the wall on an image axis: a dashed line at ``first_unseen_row`` and a hatched strip
    below it. ``scale`` converts image rows to the axis' pixel rows (``14/224`` on a raw map)."""
    top = first_unseen_row * scale - 0.5
    bottom = size * scale - 0.5
    width = size * scale
    ax.add_patch(
        Rectangle(
            (-0.5, top),
            width,
            bottom - top,
            fill=False,
            hatch="///",
            edgecolor=color,
            linewidth=0.0,
            alpha=0.8,
        )
    )
    ax.axhline(top, color=color, linestyle="--", linewidth=1.6, label=label)


def show_image(
    ax: plt.Axes,
    image,
    title: str | None = None,
    wall: bool = True,
    normalized: bool = False,
) -> None:
    """Show an image with (optionally) the wall drawn."""
    ax.imshow(to_display(image, normalized=normalized), interpolation="nearest")
    if wall:
        draw_wall(ax)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def show_map(
    ax: plt.Axes,
    cam: np.ndarray | torch.Tensor,
    title: str | None = None,
    wall: bool = True,
    vmin: float | None = 0.0,
    vmax: float | None = None,
    colorbar: bool = False,
    first_unseen_row: float = FIRST_UNSEEN_ROW,
    size: int = IMAGE_SIZE,
):
    """Show a saliency map (any size) with :data:`CAM_CMAP`; the wall (``first_unseen_row`` of a
    ``size``-row image, rVGG's by default) is scaled to the map's own number of rows."""
    arr = (
        cam.detach().cpu().numpy() if isinstance(cam, torch.Tensor) else np.asarray(cam)
    )
    im = ax.imshow(arr, cmap=CAM_CMAP, vmin=vmin, vmax=vmax, interpolation="nearest")
    if wall:
        draw_wall(
            ax, first_unseen_row=first_unseen_row, size=size, scale=arr.shape[0] / size
        )
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return im


def overlay(
    ax: plt.Axes,
    image,
    cam: np.ndarray | torch.Tensor,
    title: str | None = None,
    alpha: float = 0.5,
    wall: bool = True,
    normalized: bool = False,
    first_unseen_row: float = FIRST_UNSEEN_ROW,
) -> None:
    """The image in grey with the map (same size) on top in :data:`CAM_CMAP`, and the wall at
    ``first_unseen_row`` (rVGG's, :data:`FIRST_UNSEEN_ROW`, by default; give the row for other
    models)."""
    rgb = to_display(image, normalized=normalized)
    grey = rgb.mean(axis=-1)
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    arr = (
        cam.detach().cpu().numpy() if isinstance(cam, torch.Tensor) else np.asarray(cam)
    )
    ax.imshow(
        arr,
        cmap=CAM_CMAP,
        alpha=alpha,
        vmin=0,
        vmax=max(float(arr.max()), 1e-12),
        interpolation="bilinear",
    )
    if wall:
        draw_wall(
            ax,
            first_unseen_row=first_unseen_row,
            size=grey.shape[0],
            scale=arr.shape[0] / grey.shape[0],
        )
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def stamp(fig: plt.Figure, profile=None, extra: str = "") -> None:
    """Write the profile (and device) that produced the figure in its lower right corner."""
    text = profile_label(profile) + (f" - {extra}" if extra else "")
    fig.text(0.995, 0.005, text, ha="right", va="bottom", fontsize=7, color="0.35")


def image_grid(
    images: Sequence,
    nrows: int,
    ncols: int,
    titles: Sequence[str] | None = None,
    cell: float = 1.6,
    wall: bool = True,
    normalized: bool = False,
    suptitle: str | None = None,
):
    """A grid of images with the wall; returns ``(fig, axes)``."""
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(cell * ncols, cell * nrows + (0.4 if suptitle else 0)),
        squeeze=False,
    )
    for i, ax in enumerate(axes.flat):
        if i < len(images):
            show_image(
                ax,
                images[i],
                title=titles[i] if titles else None,
                wall=wall,
                normalized=normalized,
            )
        else:
            ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    return fig, axes


def training_curves(infos: dict, axes: Sequence[plt.Axes] | None = None):
    """Training loss (every ``log_every`` steps) and validation accuracy (every epoch) of one or
    more runs: ``infos`` maps a label (``"walled"``) to the ``info`` dict of
    ``helpers.train.train_or_load``. Returns ``(fig, axes)``."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    else:
        fig = axes[0].figure
    styles = {
        0: ("#1f4e9c", "-"),
        1: ("#d9731a", "--"),
        2: ("#2a9d3a", ":"),
        3: ("#7b3294", "-."),
    }
    for i, (label, info) in enumerate(infos.items()):
        colour, ls = styles[i % len(styles)]
        curve = np.asarray(info.get("curve") or [], dtype=float)
        if curve.size:
            axes[0].plot(
                curve[:, 0], curve[:, 1], color=colour, linestyle=ls, label=label
            )
        hist = info.get("history") or []
        if hist:
            steps = [h["step"] for h in hist]
            axes[1].plot(
                steps,
                [100 * h["val_acc"] for h in hist],
                color=colour,
                linestyle=ls,
                marker="o",
                label=f"{label} (validation)",
            )
            axes[1].plot(
                steps,
                [100 * h["train_acc"] for h in hist],
                color=colour,
                linestyle=ls,
                alpha=0.35,
                label=f"{label} (training)",
            )
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("cross-entropy")
    axes[0].set_title("training loss", fontsize=10)
    axes[1].set_xlabel("training step")
    axes[1].set_ylabel("accuracy (%)")
    axes[1].set_ylim(0, 100)
    axes[1].set_title("accuracy per epoch", fontsize=10)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, axes


def accuracy_by_row_plot(
    results: dict,
    chance: float | None = None,
    ax: plt.Axes | None = None,
    first_unseen_row: float = FIRST_UNSEEN_ROW,
):
    """Accuracy against the object's top row for several models: ``results`` maps a label to
    the list returned by ``helpers.train.accuracy_by_row``. The rows behind the wall are
    hatched, chance is a dotted line. Returns ``(fig, ax)``."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 3.4))
    else:
        fig = ax.figure
    markers = ["o", "s", "^", "D"]
    for i, (label, rows) in enumerate(results.items()):
        ax.plot(
            [r["mean_top"] for r in rows],
            [100 * r["accuracy"] for r in rows],
            marker=markers[i % len(markers)],
            label=label,
        )
    ax.axvspan(
        first_unseen_row,
        IMAGE_SIZE,
        facecolor="none",
        edgecolor=WALL_COLOR,
        hatch="///",
        linewidth=0.0,
        alpha=0.6,
    )
    ax.axvline(
        first_unseen_row,
        color=WALL_COLOR,
        linestyle="--",
        linewidth=1.4,
        label=f"wall (row {first_unseen_row:g})",
    )
    if chance is not None:
        ax.axhline(100 * chance, color="0.3", linestyle=":", label="chance")
    ax.set_xlim(0, IMAGE_SIZE)
    ax.set_ylim(0, 102)
    ax.set_xlabel("top row of the object (image rows, 0 = top)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig, ax


# --------------------------------------------------------------------------------------------
# Many maps at once (the chapters' grids): one image array instead of hundreds of axes
# --------------------------------------------------------------------------------------------


def _paint_wall(
    rgb: np.ndarray,
    first_unseen_row: int = FIRST_UNSEEN_ROW,
    color: str = WALL_COLOR,
    period: int = 14,
) -> np.ndarray:
    """The wall drawn into an ``(H, W, 3)`` array: diagonal hatching on the unseen rows and a
    dashed line on the first one (the look of :func:`draw_wall`, without matplotlib patches)."""
    out = rgb.copy()
    height, width = out.shape[:2]
    if not 0 <= first_unseen_row < height:
        return out
    col = np.asarray(to_rgb(color), dtype=out.dtype)
    yy, xx = np.mgrid[first_unseen_row:height, 0:width]
    hatch = ((xx + yy) % period) < 2
    block = out[first_unseen_row:]
    block[hatch] = 0.2 * block[hatch] + 0.8 * col
    dash = (np.arange(width) % 12) < 7
    for r in (first_unseen_row, min(first_unseen_row + 1, height - 1)):
        out[r, dash] = col
    return out


def overlay_rgb(
    image,
    cam: np.ndarray | torch.Tensor,
    alpha: float = 0.5,
    normalized: bool = False,
    wall: bool = True,
    first_unseen_row: int = FIRST_UNSEEN_ROW,
) -> np.ndarray:
    """What :func:`overlay` draws, as an ``(H, W, 3)`` float array in ``[0, 1]``: the image in
    grey, the map (scaled by its maximum) in :data:`CAM_CMAP` on top, and the wall."""
    grey = to_display(image, normalized=normalized).mean(axis=-1)
    arr = (
        cam.detach().cpu().numpy()
        if isinstance(cam, torch.Tensor)
        else np.asarray(cam, dtype=np.float64)
    )
    if arr.shape != grey.shape:
        raise ValueError(
            f"the map {arr.shape} and the image {grey.shape} must have the same size."
        )
    top = max(float(arr.max()), 1e-12)
    colored = plt.get_cmap(CAM_CMAP)(np.clip(arr / top, 0, 1))[..., :3]
    rgb = (1 - alpha) * grey[..., None] + alpha * colored
    return _paint_wall(rgb, first_unseen_row) if wall else rgb


def cam_grid(
    images: Sequence,
    rows: dict,
    normalized: bool = True,
    values: dict | None = None,
    alpha: float = 0.6,
    cell: float = 0.9,
    step: int = 2,
    title: str | None = None,
    fontsize: float = 9.0,
    values_at: str = "top",
    colorbar: bool = False,
):
    """A grid of saliency maps over images, drawn as one picture (fast for hundreds of maps).

    Args:
        images: ``k`` images ``(3, H, W)`` (the top row of the grid).
        rows: ``{row label: (k, H, W) maps}``, one grid row each, in order.
        normalized: whether the images are ImageNet-normalized.
        values: optional ``{row label: (k,) numbers}`` written in each tile's corner.
        alpha: opacity of the maps; ``cell``: inches per tile; ``step``: pixel subsampling of
            each tile (2 halves the resolution).
        title: the figure's title.
        fontsize: points of the row labels and of the values (the title's: one more). A grid
            shown across a page's width is scaled down; 9 points stay readable there.
        values_at: ``"top"`` (each value at its tile's top left on a dark box, clear of the strip
            behind the wall) or ``"bottom"`` (bottom left, no box).
        colorbar: a colour key of the map values (0 to 1) beside the grid.

    Returns:
        ``(fig, ax)``.
    """
    k = len(images)
    if k == 0 or not rows:
        raise ValueError("cam_grid needs at least one image and one row of maps.")
    if values_at not in ("top", "bottom"):
        raise ValueError(f"values_at must be 'top' or 'bottom', got {values_at!r}.")
    tiles = [[_paint_wall(to_display(img, normalized=normalized)) for img in images]]
    for label, maps in rows.items():
        if len(maps) < k:
            raise ValueError(f"row {label!r} has {len(maps)} maps for {k} images.")
        tiles.append(
            [
                overlay_rgb(img, maps[j], alpha=alpha, normalized=normalized)
                for j, img in enumerate(images)
            ]
        )
    size = tiles[0][0].shape[0]
    gap = 6
    small = (size + step - 1) // step
    height = len(tiles) * (small + gap // step) - gap // step
    width = k * (small + gap // step) - gap // step
    mosaic = np.ones((height, width, 3))
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            y, x = i * (small + gap // step), j * (small + gap // step)
            mosaic[y : y + small, x : x + small] = tile[::step, ::step]
    fig, ax = plt.subplots(
        figsize=(cell * k + 1.3, cell * len(tiles) + (0.4 if title else 0.1))
    )
    ax.imshow(mosaic, interpolation="antialiased")
    ax.set_xticks([])
    ax.set_yticks(
        [(i * (small + gap // step)) + small / 2 for i in range(len(tiles))],
        ["image"] + list(rows),
        fontsize=fontsize,
    )
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if values:
        for i, label in enumerate(rows, start=1):
            if label not in values:
                continue
            top = i * (small + gap // step)
            for j, v in enumerate(values[label][:k]):
                ax.text(
                    j * (small + gap // step) + 2,
                    top + 2 if values_at == "top" else top + small - 3,
                    f"{v:.2f}",
                    color="white",
                    fontsize=fontsize,
                    va=values_at,
                    bbox=(
                        {
                            "facecolor": "black",
                            "alpha": 0.45,
                            "pad": 0.5,
                            "linewidth": 0,
                        }
                        if values_at == "top"
                        else None
                    ),
                )
    if title:
        ax.set_title(title, fontsize=fontsize + 1)
    fig.tight_layout(pad=0.3)
    if colorbar:
        fig.colorbar(
            plt.cm.ScalarMappable(plt.Normalize(0, 1), cmap=CAM_CMAP),
            ax=ax,
            fraction=0.03,
            pad=0.01,
            label="map value (0 = black, 1 = pale yellow)",
        )
    return fig, ax
