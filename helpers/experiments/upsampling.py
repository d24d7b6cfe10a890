"""Question 7 of chapter 07: a HiResCAM whose zero region is the unseen strip and nothing more.

Bilinear upsampling (:func:`bilinear_matrix`, what pytorch-grad-cam does) spreads an
element-wise map's zero rows far above the wall; :func:`wall_aware_upsample` also upsamples
"clamped" to the rows the network sees, or along the measured effective receptive fields
(:func:`erf_kernels`). :func:`hirescam_repair_report` compares the three;
:func:`energy_in_boxes` and :func:`fwhm` are its yardsticks.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import metrics, wall
from ..cams import compute_cams
from ..config import IMAGE_SIZE, MAP_SIZE
from ..models import RVGG, WalledResNet, map_row_coverage
from .methods import check_images

__all__ = [
    "bilinear_matrix",
    "erf_kernels",
    "wall_aware_upsample",
    "energy_in_boxes",
    "hirescam_repair_report",
    "fwhm",
]


def bilinear_matrix(
    map_size: int = MAP_SIZE,
    image_size: int = IMAGE_SIZE,
    last_row: int | None = None,
    last_seen: int | None = None,
) -> np.ndarray:
    """``(image_size, map_size)`` matrix ``B`` of bilinear upsampling along one axis
    (half-pixel centres, border replicated: ``cv2.resize``'s ``INTER_LINEAR``), so that the
    upsampled map is ``B L B^T``.

    Wall-aware version: with ``last_row`` (the last map row the head reads) and ``last_seen``
    (the last image row the network sees), output rows ``y <= last_seen`` interpolate among map
    rows ``0..last_row`` only (beyond the last visible centre the last visible row is repeated,
    as at an image border) and rows ``y > last_seen`` are exactly zero.
    """
    if map_size < 1 or image_size < 1:
        raise ValueError(
            f"map_size and image_size must be positive, got {map_size}, {image_size}."
        )
    top = map_size - 1 if last_row is None else int(last_row)
    if not 0 <= top < map_size:
        raise ValueError(f"last_row must be in 0..{map_size - 1}, got {last_row}.")
    seen = image_size - 1 if last_seen is None else int(last_seen)
    B = np.zeros((image_size, map_size))
    scale = map_size / image_size
    for y in range(min(seen, image_size - 1) + 1):
        src = min(max((y + 0.5) * scale - 0.5, 0.0), float(top))
        lo = int(math.floor(src))
        hi = min(lo + 1, top)
        frac = src - lo
        B[y, lo] += 1.0 - frac
        B[y, hi] += frac
    return B


def erf_kernels(
    model: nn.Module,
    images: torch.Tensor | int = 4,
    image_size: int = IMAGE_SIZE,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The *effective receptive field* :cite:p:`luo2016erf` of each row and each column of the
    CAM target map, measured by gradients.

    Row ``r``'s profile is ``K_rows[r, y] = mean over inputs of sum_{channels, columns}
    |d S_r / d x(y, .)|`` with ``S_r`` the sum over channels of the target activations at
    ``(r, 7)`` (the middle column); columns likewise at ``(7, c)``. Each profile is normalized
    to sum to 1 and is *exactly* zero outside the receptive field (a gradient is).

    Args:
        model: a model with ``target_layer`` (rVGG, its variants, :class:`WalledResNet`).
        images: a number ``n`` -- measure on ``n`` standard Gaussian inputs (seeded: the
            classical effective receptive field, independent of any image's content) -- or
            ``(N, 3, 224, 224)`` images to measure on.
        seed: seed of the Gaussian inputs.

    Returns:
        ``(K_rows, K_cols)``, each ``(14, image_size)`` float64.
    """
    if isinstance(images, (int, np.integer)) and not isinstance(images, bool):
        if images < 1:
            raise ValueError(
                f"images must be a positive number of Gaussian inputs or a batch, got {images}."
            )
        images = torch.randn(
            int(images),
            3,
            image_size,
            image_size,
            generator=torch.Generator().manual_seed(seed),
        )
    images = check_images(images)
    param = next(model.parameters())
    store: dict[str, torch.Tensor] = {}
    handle = model.target_layer.register_forward_hook(
        lambda _m, _i, o: store.__setitem__("a", o)
    )
    was = model.training
    model.eval()
    k_rows = np.zeros((MAP_SIZE, image_size))
    k_cols = np.zeros((MAP_SIZE, image_size))
    mid = MAP_SIZE // 2
    try:
        x = images.to(param.device, param.dtype).clone().requires_grad_(True)
        with torch.enable_grad():
            model(x)
            a = store["a"]
            if a.shape[-2:] != (MAP_SIZE, MAP_SIZE):
                raise ValueError(
                    f"the target layer's map is {tuple(a.shape[-2:])}, expected 14x14."
                )
            for r in range(MAP_SIZE):
                for which, out in (("row", k_rows), ("col", k_cols)):
                    unit = a[:, :, r, mid] if which == "row" else a[:, :, mid, r]
                    (g,) = torch.autograd.grad(unit.sum(), x, retain_graph=True)
                    g = g.abs().sum(dim=1).double()  # (N, H, W)
                    prof = (g.sum(dim=2) if which == "row" else g.sum(dim=1)).mean(0)
                    out[r] = prof.cpu().numpy()
    finally:
        handle.remove()
        model.train(was)
    for k in (k_rows, k_cols):
        sums = k.sum(axis=1, keepdims=True)
        np.divide(k, sums, out=k, where=sums > 0)
    return k_rows, k_cols


def wall_aware_upsample(
    low: np.ndarray,
    how: str,
    model: nn.Module | None = None,
    kernels: tuple[np.ndarray, np.ndarray] | None = None,
    image_size: int = IMAGE_SIZE,
) -> np.ndarray:
    """Upsample 14x14 maps to the image, three ways.

    * ``"bilinear"`` -- what pytorch-grad-cam does (``cv2.resize``); with the walled model an
      element-wise method is zero far above the wall
      (``helpers.geometry.rvgg_geometry().zero_rows``).
    * ``"clamped"`` -- bilinear among the map rows the head reads; from the last visible row's
      centre down to the last *seen* image row the last visible row is repeated; the unseen
      rows are exactly zero. Needs ``model`` (for its visible map rows and unseen rows).
    * ``"erf"`` -- every map unit spreads its value over its receptive field with the measured
      effective-receptive-field profile (``kernels`` from :func:`erf_kernels`), normalized by the
      total weight at each pixel: ``U = (K_r^T L K_c) / (K_r^T 1)(1^T K_c)``. A row no visible
      unit covers is exactly zero when the hidden map rows are.

    Args:
        low: ``(N, 14, 14)`` maps (ReLU'd, unscaled).
        how: ``"bilinear"``, ``"clamped"`` or ``"erf"``.

    Returns:
        ``(N, image_size, image_size)`` float64 maps, unscaled (divide by the maximum to scale:
        the minimum is 0).
    """
    arr = np.asarray(low, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (MAP_SIZE, MAP_SIZE):
        raise ValueError(f"low must be (N, 14, 14) maps, got shape {arr.shape}.")
    if how == "bilinear":
        B = bilinear_matrix(MAP_SIZE, image_size)
        return np.einsum("yr,nrc,xc->nyx", B, arr, B)
    if how == "clamped":
        if model is None:
            raise ValueError(
                "how='clamped' needs the model (its visible map rows and unseen rows)."
            )
        visible = np.asarray(wall.visible_map_rows(model))
        unseen = np.asarray(wall.unseen_rows(model, image_size))
        last_seen = int(unseen[0]) - 1 if len(unseen) else image_size - 1
        Br = bilinear_matrix(
            MAP_SIZE, image_size, last_row=int(visible.max()), last_seen=last_seen
        )
        Bc = bilinear_matrix(MAP_SIZE, image_size)
        return np.einsum("yr,nrc,xc->nyx", Br, arr, Bc)
    if how == "erf":
        if kernels is None:
            raise ValueError(
                "how='erf' needs kernels=(K_rows, K_cols) from erf_kernels(model, images)."
            )
        kr, kc = (np.asarray(k, dtype=np.float64) for k in kernels)
        if kr.shape != (MAP_SIZE, image_size) or kc.shape != (MAP_SIZE, image_size):
            raise ValueError(
                f"kernels must be two (14, {image_size}) arrays, got {kr.shape}, {kc.shape}."
            )
        num = np.einsum("ry,nrc,cx->nyx", kr, arr, kc)
        den = np.outer(kr.sum(axis=0), kc.sum(axis=0))
        return np.divide(num, den[None], out=np.zeros_like(num), where=den[None] > 0)
    raise ValueError(f"how must be 'bilinear', 'clamped' or 'erf', got {how!r}.")


def energy_in_boxes(maps: np.ndarray, boxes: np.ndarray | torch.Tensor) -> np.ndarray:
    """The share of each map's mass (sum of its values) inside a box: the *energy-based pointing
    game* of Score-CAM :cite:p:`wang2020scorecam`. Maps ``(N, H, W)`` (non-negative), boxes
    ``(N, 4)`` as ``(top, bottom, left, right)`` pixels (bottom/right exclusive). An all-zero
    map scores 0. Returns ``(N,)``."""
    arr = np.asarray(maps, dtype=np.float64)
    b = np.asarray(boxes, dtype=np.int64)
    if arr.ndim != 3 or b.shape != (arr.shape[0], 4):
        raise ValueError(
            f"expected maps (N, H, W) and boxes (N, 4), got {arr.shape} and {b.shape}."
        )
    if (arr < 0).any():
        raise ValueError("maps must be non-negative (ReLU'd saliency maps).")
    out = np.zeros(len(arr))
    for i, (t, bt, lf, rt) in enumerate(b):
        total = arr[i].sum()
        if total > 0:
            out[i] = arr[i, t:bt, lf:rt].sum() / total
    return out


def hirescam_repair_report(
    model: nn.Module,
    images: torch.Tensor,
    boxes: np.ndarray | None = None,
    erf_images: int = 4,
    method: str = "hirescam",
    kernels: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """HiResCAM upsampled three ways (:func:`wall_aware_upsample`) on a walled model: the zero
    region, the support in the seen rows, mu, and (with ``boxes``) the energy in the objects.

    Args:
        model: a walled model (rVGG or a variant).
        images: ``(N, 3, 224, 224)``.
        boxes: optional ``(N, 4)`` object boxes ``(top, bottom, left, right)``.
        erf_images: Gaussian inputs that measure the effective receptive fields.
        method: the element-wise method to repair (``"hirescam"``; ``"layercam"`` works too).
        kernels: effective receptive fields already measured (:func:`erf_kernels`).

    Returns:
        ``{"rows": [...one per upsampling...], "maps": {how: (N, 224, 224) scaled},
        "kernels": (K_rows, K_cols), "coverage": (14, 224) bool, "unseen_rows": array,
        "seconds": {how: float}, "low": (N, 14, 14)}``. Each row: ``how``, ``zero_rows_share``
        (rows exactly zero all along, mean), ``first_zero_row`` (mean), ``seen_rows_supported``
        (share of seen rows where the map is not zero), ``seen_rows_visible`` (share of seen rows
        whose maximum is at least 1% of the map's), ``mu_mean``, and ``energy_in_box`` (mean).
    """
    images = check_images(images)
    unseen = wall.unseen_rows(model)
    seen = np.setdiff1d(np.arange(IMAGE_SIZE), unseen)
    low = compute_cams(model, images, [method])[method].low.astype(np.float64)
    t0 = time.perf_counter()
    if kernels is None:
        kernels = erf_kernels(model, erf_images)
    erf_seconds = time.perf_counter() - t0
    out: dict[str, Any] = {
        "rows": [],
        "maps": {},
        "kernels": kernels,
        "unseen_rows": unseen,
        "coverage": map_row_coverage(model)
        if isinstance(model, (RVGG, WalledResNet))
        else None,
        "seconds": {},
        "low": low,
    }
    for how in ("bilinear", "clamped", "erf"):
        t0 = time.perf_counter()
        up = wall_aware_upsample(low, how, model=model, kernels=kernels)
        out["seconds"][how] = (
            time.perf_counter() - t0 + (erf_seconds if how == "erf" else 0.0)
        )
        peak = up.reshape(len(up), -1).max(axis=1)
        scaled = np.divide(
            up,
            peak[:, None, None],
            out=np.zeros_like(up),
            where=peak[:, None, None] > 0,
        )
        out["maps"][how] = scaled
        row_max = scaled.max(axis=2)  # (N, H)
        row = {
            "how": how,
            "zero_rows_share": float(np.mean(metrics.zero_row_fraction(scaled))),
            "first_zero_row": float(np.mean(metrics.first_zero_row(scaled))),
            "seen_rows_supported": float(np.mean(row_max[:, seen] > 0)),
            "seen_rows_visible": float(np.mean(row_max[:, seen] >= 0.01)),
            "mu_mean": float(np.mean(metrics.dead_zone_share(scaled, rows=unseen))),
            "unseen_share": len(unseen) / IMAGE_SIZE,
        }
        if boxes is not None:
            row["energy_in_box"] = float(np.mean(energy_in_boxes(scaled, boxes)))
        out["rows"].append(row)
    return out


def fwhm(profile: np.ndarray) -> float:
    """Full width at half maximum of a non-negative 1-D profile, in samples (pixels), with linear
    interpolation at the two crossings."""
    p = np.asarray(profile, dtype=np.float64)
    if p.ndim != 1 or p.size < 2 or not (p.max() > 0) or (p < 0).any():
        raise ValueError(
            "fwhm needs a non-negative 1-D profile with a positive maximum."
        )
    half = p.max() / 2
    above = np.flatnonzero(p >= half)
    lo, hi = int(above[0]), int(above[-1])
    left = lo - (p[lo] - half) / (p[lo] - p[lo - 1]) if lo > 0 else float(lo)
    right = hi + (p[hi] - half) / (p[hi] - p[hi + 1]) if hi < p.size - 1 else float(hi)
    return float(right - left)
