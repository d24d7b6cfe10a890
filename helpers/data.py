"""The data of the book: the synthetic world, STACK-MIX and STACK-GEN, and real images.

Three kinds of images, one tensor convention: a batch is a float tensor ``(N, 3, 224, 224)``
normalized with the ImageNet mean and standard deviation (what every model of the book takes);
:func:`denormalize` brings it back to ``[0, 1]`` for display.

* **The synthetic world** (the ``quick`` profile's training data, generated on the fly, no
  image file anywhere): one bold object of one of ten classes -- six shapes and four
  textures -- with random position, size, colour and rotation, on a cluttered background of
  lower contrast. Every batch is rendered at once on a pixel grid from signed-distance-like
  masks (vectorized torch, a few milliseconds per image) and is a pure function of a seed.
  Objects appear anywhere, including entirely below the wall (rows 170..223), so a walled
  model *must* fail on some images a baseline gets right.
* **STACK-MIX** (:func:`stack_mix`, the paper's recipe): the top 170 rows hold one image of a
  class resized to 170x224, the bottom 54 rows another image of the same class resized to
  54x224. The ``"conflict"`` variant puts an image of *another* class below the wall.
* **STACK-GEN** (:func:`stack_gen`): the authors' generated images (resize 256, centre crop
  224) when they are in the cache; offline a *stand-in*: composed scenes with two instances of
  one class, one above the wall and one partly or wholly below it, drawn from a distribution
  other than the training one (other backgrounds, sizes and placements). It is named a
  stand-in everywhere it appears.
* **Real images** (the ``full`` profile): an ImageNet-style folder (``ImageFolder``),
  Imagenette through torchvision, and the authors' release (two checkpoints and their
  ``stackmix/``, ``stackgen/`` folders), downloaded into the cache directory with SHA-256
  digests recorded on first download and checked afterwards.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tarfile
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .config import IMAGE_SIZE, Profile, cache_dir, get_profile

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "FIRST_UNSEEN_ROW",
    "SYNTHETIC_CLASSES",
    "DATA_VERSION",
    "StackSet",
    "SyntheticBatch",
    "normalize",
    "denormalize",
    "render_synthetic",
    "synthetic_batch",
    "SyntheticStream",
    "placement_groups",
    "stack_images",
    "stack_mix",
    "stack_gen",
    "stack_gen_standin",
    "check_labels",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: First input row rVGG cannot see; rows 170..223 (54 rows) are behind the wall.
FIRST_UNSEEN_ROW = 170
#: Version of the synthetic world (and of the stack builders). Part of every checkpoint's
#: cache key: change it whenever the generated images change, so stale models are retrained.
DATA_VERSION = 1

#: The ten classes of the synthetic world: six shapes (solid, one colour) and four textures.
SYNTHETIC_CLASSES = [
    "disc", "square", "triangle", "cross", "star", "ring",
    "stripes", "checkerboard", "dots", "zigzag",
]


# ---------------------------------------------------------------------------------------------
# Normalization
# ---------------------------------------------------------------------------------------------

def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return mean, std


def normalize(images: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalization of images in ``[0, 1]``.

    Args:
        images: ``(N, 3, H, W)`` or ``(3, H, W)`` float tensor, values in ``[0, 1]``.

    Returns:
        A tensor of the same shape, ``(x - mean) / std`` per channel.
    """
    if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(
            f"normalize expects a float tensor (N, 3, H, W) or (3, H, W), got "
            f"{getattr(images, 'shape', type(images).__name__)}."
        )
    single = images.dim() == 3
    x = images.unsqueeze(0) if single else images
    mean, std = _stats(x.float())
    out = x.float().sub(mean).div_(std)
    return out[0] if single else out


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo :func:`normalize` and clip to ``[0, 1]`` (for display).

    Args:
        images: normalized ``(N, 3, H, W)`` or ``(3, H, W)`` tensor.

    Returns:
        A float tensor of the same shape with values in ``[0, 1]``.
    """
    if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(
            f"denormalize expects a normalized tensor (N, 3, H, W) or (3, H, W), got "
            f"{getattr(images, 'shape', type(images).__name__)}."
        )
    single = images.dim() == 3
    x = images.unsqueeze(0) if single else images
    mean, std = _stats(x.float())
    out = (x.float() * std + mean).clamp(0.0, 1.0)
    return out[0] if single else out


# ---------------------------------------------------------------------------------------------
# The synthetic world
# ---------------------------------------------------------------------------------------------

@dataclass
class SyntheticBatch:
    """A batch of synthetic images with what generated them.

    Attributes:
        images: ``(N, 3, 224, 224)`` float, ImageNet-normalized.
        labels: ``(N,)`` long, the object's class (index into :data:`SYNTHETIC_CLASSES`).
        boxes: ``(N, 4)`` float, the object's bounding box ``(top, bottom, left, right)`` in
            pixels (rows and columns of the 224x224 image; ``bottom`` exclusive).
        seed: the seed the batch is a function of.
    """

    images: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    seed: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _rand(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    return coords.view(1, size, 1), coords.view(1, 1, size)  # y (rows), x (columns)


def _bold_colours(gen: torch.Generator, n: int) -> torch.Tensor:
    """``(n, 3)`` colours near the corners of the RGB cube other than mid grey: each channel is
    dark (0..0.15) or bright (0.85..1), never all the same as a muted background."""
    corner = torch.randint(0, 2, (n, 3), generator=gen).float()
    jitter = 0.15 * torch.rand(n, 3, generator=gen)
    return corner * (1 - jitter) + (1 - corner) * jitter


def _background(gen: torch.Generator, n: int, size: int, style: str) -> torch.Tensor:
    """``(n, 3, size, size)`` backgrounds in ``[0, 1]`` of lower contrast than the objects.

    ``"clutter"`` (training): a muted colour, smooth colour noise and irregular blobs of another
    muted colour. ``"scene"`` (the STACK-GEN stand-in): a two-tone sky/ground scene with a
    horizon and soft vertical gradient, a different distribution.
    """
    if style == "clutter":
        low = size // 4  # built at a quarter of the resolution, then upsampled once
        base = _rand(gen, n * 3, 0.35, 0.65).view(n, 3, 1, 1)
        smooth = F.interpolate(torch.rand(n, 3, 6, 6, generator=gen) - 0.5, size=(low, low),
                               mode="bilinear", align_corners=False)
        blob_field = F.interpolate(torch.rand(n, 1, 14, 14, generator=gen), size=(low, low),
                                   mode="bilinear", align_corners=False)
        blobs = (blob_field > 0.62).float()
        blob_colour = _rand(gen, n * 3, -0.15, 0.15).view(n, 3, 1, 1)
        fine = 0.04 * (torch.rand(n, 1, low, low, generator=gen) - 0.5)
        img = base + 0.25 * smooth + blobs * blob_colour + fine
        return F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False).clamp(0.0, 1.0)
    if style == "scene":
        y, _ = _grid(size)
        horizon = _rand(gen, n, 0.35, 0.75).view(n, 1, 1) * size
        sky = _rand(gen, n * 3, 0.55, 0.75).view(n, 3, 1, 1) * torch.tensor([0.8, 0.9, 1.0]).view(1, 3, 1, 1)
        ground = _rand(gen, n * 3, 0.3, 0.5).view(n, 3, 1, 1) * torch.tensor([0.9, 1.0, 0.8]).view(1, 3, 1, 1)
        below = (y.unsqueeze(1) > horizon.unsqueeze(1)).float()  # (n, 1, size, 1)
        ramp = (y.unsqueeze(1) / size - 0.5) * 0.12
        img = sky * (1 - below) + ground * below + ramp
        speckle = F.interpolate(torch.rand(n, 1, size // 8, size // 8, generator=gen) - 0.5,
                                size=(size, size), mode="bilinear", align_corners=False)
        return (img + 0.06 * speckle).clamp(0.0, 1.0)
    raise ValueError(f"Unknown background style {style!r}; expected 'clutter' or 'scene'.")


#: Largest distance from the centre of each class's shape, in radius units (for any rotation).
_EXTENT = torch.tensor([0.95, 0.8 * math.sqrt(2), 1.0, 1.0, 1.0, 0.96] + [0.85 * math.sqrt(2)] * 4)


def _class_distance(k: int, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Signed distance-like field (negative inside, radius units) of class ``k``'s shape on the
    object-centred, rotated coordinates ``u, v`` (the shape fits in ``u*u + v*v <= 1.45``), and
    its two-colour pattern (1 where the second colour shows) for the textures, else ``None``."""
    if k == 0:  # disc
        return torch.sqrt(u * u + v * v) - 0.95, None
    if k == 1:  # square
        return torch.maximum(u.abs(), v.abs()) - 0.8, None
    if k == 2:  # equilateral triangle, apex up, vertices at distance 1 from the centre
        k3 = math.sqrt(3.0)
        tri = torch.maximum(torch.maximum((k3 * u - v) / 2.0, (-k3 * u - v) / 2.0), v) - 0.5
        return tri, None
    if k == 3:  # cross (plus sign)
        arm = 0.32
        au, av = u.abs(), v.abs()
        return torch.minimum(torch.maximum(au - 0.95, av - arm), torch.maximum(av - 0.95, au - arm)), None
    if k == 4:  # five-pointed star: r < 0.55 + 0.45 * max(cos 5 theta, 0)^1.5
        r2 = u * u + v * v + 1e-12
        r = torch.sqrt(r2)
        # cos(5 theta) = Re((u + i v)^5) / r^5, without atan2
        re5 = u ** 5 - 10 * u ** 3 * v * v + 5 * u * v ** 4
        c5 = re5 / (r2 * r2 * r)
        return r - (0.55 + 0.45 * c5.clamp(min=0) ** 1.5), None
    if k == 5:  # ring
        return (torch.sqrt(u * u + v * v) - 0.72).abs() - 0.24, None
    patch = torch.maximum(u.abs(), v.abs()) - 0.85
    if k == 6:  # stripes
        pattern = torch.sin(math.pi * 3.0 * u) > 0
    elif k == 7:  # checkerboard
        pattern = (torch.sin(math.pi * 2.0 * u) * torch.sin(math.pi * 2.0 * v)) > 0
    elif k == 8:  # dots
        cu = torch.remainder(u * 2.0, 1.0) - 0.5
        cv = torch.remainder(v * 2.0, 1.0) - 0.5
        pattern = (cu * cu + cv * cv) < 0.09
    elif k == 9:  # zigzag
        pattern = torch.sin(math.pi * 3.0 * (v + 0.35 * (torch.remainder(u * 2.5, 2.0) - 1.0).abs())) > 0
    else:
        raise ValueError(f"class {k} is not a class of the synthetic world (0..{len(SYNTHETIC_CLASSES) - 1}).")
    return patch, pattern.float()


def render_synthetic(labels: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor,
                     angles: torch.Tensor, colours: torch.Tensor, background: torch.Tensor,
                     aspects: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Paint one object per image onto ``background`` (a whole batch at once, class by class).

    Args:
        labels: ``(N,)`` long, classes in ``0..9`` (:data:`SYNTHETIC_CLASSES`).
        centers: ``(N, 2)`` float, ``(row, column)`` of the object's centre, in pixels.
        radii: ``(N,)`` float, the object's size (its shape fits in a disc of about this radius),
            in pixels.
        angles: ``(N,)`` float, rotation in radians.
        colours: ``(N, 3)`` float in ``[0, 1]``, the object's colour; the textures alternate it
            with its complement.
        background: ``(N, 3, S, S)`` float in ``[0, 1]`` (not modified).
        aspects: ``(N,)`` float, vertical stretch of the rotated object (height / width of the
            image of a disc); ``None`` means 1. Values below 1 squash objects vertically, as
            STACK-MIX's resizing does.

    Returns:
        ``(images, boxes)``: ``(N, 3, S, S)`` float images in ``[0, 1]`` (not normalized) and
        ``(N, 4)`` bounding boxes ``(top, bottom, left, right)`` of the painted pixels
        (``bottom``/``right`` exclusive), read from the coverage itself.
    """
    n, _, size, _ = background.shape
    out = background.clone()
    boxes = torch.zeros(n, 4)
    for k in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == k).view(-1)
        m = idx.numel()
        # Render on a square window around each object only (much smaller than the image).
        stretch = 1.0 if aspects is None else aspects[idx].clamp(min=1.0)
        half = radii[idx] * stretch * _EXTENT[k] + 2.0
        win = int(min(size, math.ceil(2 * float(half.max())) + 2))
        top = (centers[idx, 0] - win / 2).round().clamp(0, size - win).long()
        left = (centers[idx, 1] - win / 2).round().clamp(0, size - win).long()
        grid = torch.arange(win, dtype=torch.float32) + 0.5
        y = grid.view(1, win, 1) + top.view(m, 1, 1)
        x = grid.view(1, 1, win) + left.view(m, 1, 1)
        rad = radii[idx].view(m, 1, 1)
        cy = centers[idx, 0].view(m, 1, 1)
        cx = centers[idx, 1].view(m, 1, 1)
        cos, sin = torch.cos(angles[idx]).view(m, 1, 1), torch.sin(angles[idx]).view(m, 1, 1)
        dx, dy = (x - cx) / rad, (y - cy) / rad
        if aspects is not None:
            dy = dy / aspects[idx].view(m, 1, 1)
        u = cos * dx + sin * dy
        v = -sin * dx + cos * dy
        d, pattern = _class_distance(int(k), u, v)
        cover = torch.clamp(0.5 - d * rad, 0.0, 1.0).unsqueeze(1)  # anti-aliased over one pixel
        colour = colours[idx].view(m, 3, 1, 1)
        fill = colour if pattern is None else colour + (1.0 - 2.0 * colour) * pattern.unsqueeze(1)
        inside = cover[:, 0] > 0
        rows, cols = inside.any(dim=2), inside.any(dim=1)
        for j, i in enumerate(idx.tolist()):
            t0, l0 = int(top[j]), int(left[j])
            patch = out[i, :, t0:t0 + win, l0:l0 + win]
            patch.mul_(1 - cover[j]).add_(fill[j] * cover[j])
            rr = torch.nonzero(rows[j]).view(-1)
            cc = torch.nonzero(cols[j]).view(-1)
            if rr.numel():
                boxes[i, 0], boxes[i, 1] = t0 + rr[0], t0 + rr[-1] + 1
                boxes[i, 2], boxes[i, 3] = l0 + cc[0], l0 + cc[-1] + 1
    return out, boxes


def _sample_placement(gen: torch.Generator, labels: torch.Tensor, size: int,
                      radius_range: tuple[float, float], placement: str | Sequence[str],
                      below_share: float, aspects: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres ``(n, 2)`` (row, column) and radii ``(n,)`` in pixels, the whole object in frame.

    ``placement``: ``"any"`` (uniform over the image, and with probability ``below_share`` a
    small object entirely below the wall), ``"above"`` (entirely above row 170), ``"below"``
    (entirely below row 170), or ``"straddle"`` (crossing row 170); or one of these per image.
    Uses each class's true extent (:data:`_EXTENT`), so "entirely below" holds for any rotation.
    """
    n = labels.shape[0]
    lo, hi = radius_range
    ext = _EXTENT[labels] * aspects  # vertical half-extent per unit radius
    radii = _rand(gen, n, lo, hi)
    # the largest radius whose object fits entirely in the 54 rows below the wall (1 px margin)
    below_max = ((size - FIRST_UNSEEN_ROW) / 2.0 - 1.5) / ext
    small = below_max * _rand(gen, n, 0.6, 1.0)
    u_row = torch.rand(n, generator=gen)
    u_col = torch.rand(n, generator=gen)
    coin = torch.rand(n, generator=gen)
    if isinstance(placement, str):
        modes = [placement] * n
    else:
        modes = list(placement)
        if len(modes) != n:
            raise ValueError(f"got {len(modes)} placements for {n} images.")
    rows = torch.empty(n)
    for i, mode in enumerate(modes):
        if mode == "any" and coin[i] < below_share:
            mode = "below"
        if mode == "below":
            radii[i] = min(float(radii[i]), float(small[i]))
        if mode == "above":
            radii[i] = min(float(radii[i]), (FIRST_UNSEEN_ROW / 2.0 - 2.0) / float(ext[i]))
        e = float(radii[i] * ext[i]) + 1.0  # half-extent in pixels, with anti-aliasing margin
        if mode == "any":
            top, bottom = e, size - e
        elif mode == "above":
            top, bottom = e, FIRST_UNSEEN_ROW - e
        elif mode == "below":
            top, bottom = FIRST_UNSEEN_ROW + e, size - e
        elif mode == "straddle":
            top, bottom = FIRST_UNSEEN_ROW - e + 0.3 * e, FIRST_UNSEEN_ROW + e - 0.3 * e
        else:
            raise ValueError(
                f"Unknown placement {mode!r}; expected 'any', 'above', 'below' or 'straddle'."
            )
        rows[i] = top + (bottom - top) * u_row[i]
    half = radii * _EXTENT[labels] + 1.0
    cols = half + (size - 2 * half) * u_col
    return torch.stack([rows, cols], dim=1), radii


def synthetic_batch(n: int, seed: int, *, num_classes: int = 10, placement: str | Sequence[str] = "any",
                    below_share: float = 0.15, radius_range: tuple[float, float] = (18.0, 44.0),
                    aspect_range: tuple[float, float] = (0.7, 1.3),
                    background: str = "clutter", labels: torch.Tensor | None = None,
                    size: int = IMAGE_SIZE) -> SyntheticBatch:
    """``n`` images of the synthetic world, a pure function of ``seed``.

    Args:
        n: number of images.
        seed: the batch is fully determined by it (and the other arguments).
        num_classes: use the first ``num_classes`` of :data:`SYNTHETIC_CLASSES` (2..10).
        placement: see :func:`_sample_placement`: ``"any"``, ``"above"``, ``"below"``,
            ``"straddle"``, or a list with one of these per image.
        below_share: with ``placement="any"``, the share of images whose (small) object lies
            entirely below the wall.
        radius_range: object half-size range in pixels.
        aspect_range: range of the vertical stretch (log-uniform), so that the squashed top
            halves of STACK-MIX stay within the training distribution.
        background: ``"clutter"`` (training) or ``"scene"`` (other distribution).
        labels: force the classes (``(n,)`` long); random otherwise.

    Returns:
        A :class:`SyntheticBatch` (normalized images, labels, bounding boxes).
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}.")
    if not 2 <= num_classes <= len(SYNTHETIC_CLASSES):
        raise ValueError(f"num_classes must be in 2..{len(SYNTHETIC_CLASSES)}, got {num_classes}.")
    gen = torch.Generator().manual_seed(int(seed))
    if labels is None:
        labels = torch.randint(0, num_classes, (n,), generator=gen)
    else:
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        check_labels(labels, num_classes)
        if labels.numel() != n:
            raise ValueError(f"got {labels.numel()} labels for n={n} images.")
        torch.randint(0, num_classes, (n,), generator=gen)  # keep the random stream aligned
    lo_a, hi_a = aspect_range
    if not 0 < lo_a <= hi_a:
        raise ValueError(f"aspect_range must be 0 < low <= high, got {aspect_range}.")
    aspects = torch.exp(_rand(gen, n, math.log(lo_a), math.log(hi_a)))
    centers, radii = _sample_placement(gen, labels, size, radius_range, placement, below_share, aspects)
    angles = _rand(gen, n, 0.0, 2 * math.pi)
    colours = _bold_colours(gen, n)
    bg = _background(gen, n, size, background)
    img, boxes = render_synthetic(labels, centers, radii, angles, colours, bg, aspects)
    mean, std = _stats(img)
    img.sub_(mean).div_(std)  # ImageNet normalization, in place
    return SyntheticBatch(images=img, labels=labels, boxes=boxes, seed=int(seed))


def placement_groups(boxes: torch.Tensor, first_unseen_row: int = FIRST_UNSEEN_ROW) -> list[str]:
    """Where each object lies relative to the wall: ``"above"`` (bottom <= 170), ``"below"``
    (top >= 170: the walled model cannot see any of it) or ``"straddle"``.

    Args:
        boxes: ``(N, 4)`` ``(top, bottom, left, right)`` in pixels (see :class:`SyntheticBatch`).
    """
    boxes = torch.as_tensor(boxes)
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {tuple(boxes.shape)}.")
    out = []
    for top, bottom in boxes[:, :2].tolist():
        if bottom <= first_unseen_row:
            out.append("above")
        elif top >= first_unseen_row:
            out.append("below")
        else:
            out.append("straddle")
    return out


def _mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across runs and platforms)."""
    h = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


class SyntheticStream:
    """Batches of the synthetic world for training: batch ``b`` of epoch ``e`` is a pure function
    of ``(seed, e, b)``, so a resumed run sees exactly the images an uninterrupted run sees.

    Args:
        images_per_epoch: images per epoch (rounded down to whole batches, at least one batch).
        batch_size: images per batch.
        seed: base seed.
        num_classes, below_share: see :func:`synthetic_batch`.
    """

    def __init__(self, images_per_epoch: int, batch_size: int, seed: int, num_classes: int = 10,
                 below_share: float = 0.15) -> None:
        if batch_size < 1 or images_per_epoch < 1:
            raise ValueError(f"batch_size and images_per_epoch must be positive, got "
                             f"{batch_size} and {images_per_epoch}.")
        self.batch_size = int(batch_size)
        self.steps = max(1, int(images_per_epoch) // self.batch_size)
        self.seed = int(seed)
        self.num_classes = int(num_classes)
        self.below_share = float(below_share)

    def __len__(self) -> int:
        return self.steps

    def batch(self, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(B, 3, 224, 224)`` and labels ``(B,)`` of one step."""
        b = synthetic_batch(self.batch_size, _mix_seed(self.seed, epoch, step),
                            num_classes=self.num_classes, below_share=self.below_share)
        return b.images, b.labels

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of an epoch, from ``start_step``."""
        for step in range(start_step, self.steps):
            yield self.batch(epoch, step)


def check_labels(labels: torch.Tensor, num_classes: int) -> None:
    """Raise a clear ``ValueError`` unless every label is an integer in ``0..num_classes-1``."""
    labels = torch.as_tensor(labels)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}.")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise ValueError(
            f"labels out of range: expected 0..{num_classes - 1}, found {sorted(set(bad.tolist()))[:5]}. "
            "Check the dataset's class count against the model's (num_classes)."
        )


# ---------------------------------------------------------------------------------------------
# STACK-MIX and STACK-GEN
# ---------------------------------------------------------------------------------------------

@dataclass
class StackSet:
    """An evaluation set of stacked images (STACK-MIX, STACK-GEN or a stand-in).

    Attributes:
        images: ``(N, 3, 224, 224)`` float, ImageNet-normalized.
        labels: ``(N,)`` long, the class of the top image (above the wall): the class the
            walled model should see. ``-1`` where unknown (an unlabelled folder).
        bottom_labels: ``(N,)`` long, the class of the image (or object) below the wall.
        name: e.g. ``"STACK-MIX"``, ``"STACK-MIX (conflict)"``, ``"STACK-GEN (stand-in)"``.
        class_names: names of the label indices.
        profile: the profile that built it.
        meta: anything else (source, seed, boxes of the objects for synthetic sets...).
    """

    images: torch.Tensor
    labels: torch.Tensor
    bottom_labels: torch.Tensor
    name: str
    class_names: list[str]
    profile: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.dim() != 4 or tuple(self.images.shape[1:]) != (3, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"StackSet images must be (N, 3, {IMAGE_SIZE}, {IMAGE_SIZE}), "
                             f"got {tuple(self.images.shape)}.")
        if self.labels.shape != (n,) or self.bottom_labels.shape != (n,):
            raise ValueError(f"labels and bottom_labels must have shape ({n},), got "
                             f"{tuple(self.labels.shape)} and {tuple(self.bottom_labels.shape)}.")

    @property
    def is_stand_in(self) -> bool:
        """Whether this is a stand-in for the authors' set (never to be reported as theirs)."""
        return "stand-in" in self.name

    def subset(self, index: Sequence[int] | torch.Tensor) -> "StackSet":
        """The images at ``index`` (a new :class:`StackSet` with the same name and metadata)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return StackSet(self.images[idx], self.labels[idx], self.bottom_labels[idx], self.name,
                        list(self.class_names), self.profile, dict(self.meta))


def stack_images(top: torch.Tensor, bottom: torch.Tensor, first_unseen_row: int = FIRST_UNSEEN_ROW
                 ) -> torch.Tensor:
    """The paper's stacking: ``top`` resized to ``first_unseen_row`` x 224 above ``bottom``
    resized to ``(224 - first_unseen_row)`` x 224 (bilinear, antialiased).

    Works on normalized as well as ``[0, 1]`` images (resizing commutes with the per-channel
    affine normalization, since the interpolation weights sum to one).

    Args:
        top, bottom: ``(N, 3, H, W)`` float tensors (any ``H, W``).

    Returns:
        ``(N, 3, 224, 224)``.
    """
    for name, t in (("top", top), ("bottom", bottom)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[1] != 3:
            raise ValueError(f"{name} must be a (N, 3, H, W) tensor, got "
                             f"{getattr(t, 'shape', type(t).__name__)}.")
    if top.shape[0] != bottom.shape[0]:
        raise ValueError(f"top and bottom hold {top.shape[0]} and {bottom.shape[0]} images; "
                         "expected the same number.")
    if not 0 < first_unseen_row < IMAGE_SIZE:
        raise ValueError(f"first_unseen_row must be in 1..{IMAGE_SIZE - 1}, got {first_unseen_row}.")
    up = F.interpolate(top.float(), size=(first_unseen_row, IMAGE_SIZE), mode="bilinear",
                       align_corners=False, antialias=True)
    down = F.interpolate(bottom.float(), size=(IMAGE_SIZE - first_unseen_row, IMAGE_SIZE),
                         mode="bilinear", align_corners=False, antialias=True)
    return torch.cat([up, down], dim=2)


def _pair_labels(gen: torch.Generator, n: int, num_classes: int, variant: str
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    top = torch.randint(0, num_classes, (n,), generator=gen)
    if variant == "same":
        return top, top.clone()
    if variant == "conflict":
        shift = torch.randint(1, num_classes, (n,), generator=gen)
        return top, (top + shift) % num_classes
    raise ValueError(f"Unknown STACK-MIX variant {variant!r}; expected 'same' or 'conflict'.")


def _resolve(profile: str | Profile | None, n: int | None, seed: int | None) -> tuple[Profile, int, int]:
    prof = get_profile(profile)
    n = prof.eval.stack_images if n is None else n
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    seed = prof.eval.seed if seed is None else seed
    return prof, n, int(seed)


def stack_mix(profile: str | Profile | None = None, n: int | None = None, seed: int | None = None,
              variant: str = "same") -> StackSet:
    """STACK-MIX by the paper's recipe: the top 170 rows one image of a class (resized to
    170x224), the bottom 54 rows another image of the same class (resized to 54x224).

    In the ``quick`` profile the source images come from the synthetic world (a seed other
    than any training seed); with real data, from the validation split of the profile's
    dataset (:func:`real_dataset`).

    Args:
        profile: profile name or object (``None``: ``$CAMWALLS_PROFILE``).
        n: number of images (default ``profile.eval.stack_images`` = 100).
        seed: the set is a pure function of it (default ``profile.eval.seed``).
        variant: ``"same"`` (the paper's) or ``"conflict"`` (an image of *another* class below
            the wall; used by later chapters).

    Returns:
        A :class:`StackSet` named ``"STACK-MIX"`` (or ``"STACK-MIX (conflict)"``).
    """
    prof, n, seed = _resolve(profile, n, seed)
    gen = torch.Generator().manual_seed(_mix_seed(seed, 1701))
    name = "STACK-MIX" if variant == "same" else f"STACK-MIX ({variant})"
    if prof.data.source == "synthetic":
        k = prof.data.num_classes
        top_labels, bottom_labels = _pair_labels(gen, n, k, variant)
        s1, s2 = _mix_seed(seed, 1702), _mix_seed(seed, 1703)
        top = synthetic_batch(n, s1, num_classes=k, labels=top_labels, below_share=0.0)
        bottom = synthetic_batch(n, s2, num_classes=k, labels=bottom_labels, below_share=0.0)
        images = stack_images(top.images, bottom.images)
        meta = {"source": "synthetic world", "seed": seed, "variant": variant}
        return StackSet(images, top_labels, bottom_labels, name, SYNTHETIC_CLASSES[:k], prof.name, meta)
    dataset = real_dataset(prof, split="val", train=False)
    by_class = _indices_by_class(dataset)
    usable = [c for c, idx in by_class.items() if len(idx) >= 2]
    if not usable:
        raise ValueError("STACK-MIX needs at least one class with two images in the validation data.")
    tops, bottoms, tl, bl = [], [], [], []
    for _ in range(n):
        c = usable[int(torch.randint(0, len(usable), (1,), generator=gen))]
        pool = by_class[c]
        i, j = torch.randperm(len(pool), generator=gen)[:2].tolist()
        if variant == "same":
            c2, jdx = c, pool[j]
        elif variant == "conflict":
            others = [d for d in by_class if d != c and by_class[d]]
            if not others:
                raise ValueError("The conflict variant needs at least two classes.")
            c2 = others[int(torch.randint(0, len(others), (1,), generator=gen))]
            jdx = by_class[c2][int(torch.randint(0, len(by_class[c2]), (1,), generator=gen))]
        else:
            raise ValueError(f"Unknown STACK-MIX variant {variant!r}; expected 'same' or 'conflict'.")
        tops.append(dataset[pool[i]][0])
        bottoms.append(dataset[jdx][0])
        tl.append(c)
        bl.append(c2)
    images = stack_images(torch.stack(tops), torch.stack(bottoms))
    meta = {"source": getattr(dataset, "description", type(dataset).__name__), "seed": seed,
            "variant": variant}
    return StackSet(images, torch.tensor(tl), torch.tensor(bl), name, list(dataset.classes), prof.name, meta)


def stack_gen_standin(n: int = 100, seed: int = 0, num_classes: int = 10, profile: str = "quick"
                      ) -> StackSet:
    """The offline stand-in for STACK-GEN in the synthetic world: composed scenes with two
    instances of one class, one entirely above the wall (bottom <= row 150) and one whose top
    lies in rows 150..200 (partly or wholly below the wall), on a sky/ground *scene* background
    and with sizes and placements unlike the training images. Not the authors' images.

    Returns:
        A :class:`StackSet` named ``"STACK-GEN (stand-in)"``; ``meta["top_boxes"]`` and
        ``meta["bottom_boxes"]`` hold the objects' boxes ``(top, bottom, left, right)``.
    """
    gen = torch.Generator().manual_seed(_mix_seed(seed, 2024))
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    bg = _background(gen, n, IMAGE_SIZE, "scene")
    # The upper instance: larger, centred horizontally-ish, bottom at most at row 150.
    aspects = torch.exp(_rand(gen, n, math.log(0.8), math.log(1.2)))
    r1 = _rand(gen, n, 30.0, 48.0)
    e1 = r1 * _EXTENT[labels] * aspects + 1.0
    e1x = r1 * _EXTENT[labels] + 1.0
    row1 = e1 + (150.0 - 2 * e1) * torch.rand(n, generator=gen)
    col1 = e1x + (IMAGE_SIZE - 2 * e1x) * torch.rand(n, generator=gen)
    # The lower instance: smaller, its top in rows 150..200 (partly or wholly hidden).
    r2 = _rand(gen, n, 14.0, 24.0)
    e2 = r2 * _EXTENT[labels] + 1.0
    top2 = _rand(gen, n, 150.0, 200.0)
    row2 = torch.minimum(top2 + e2, IMAGE_SIZE - e2)
    col2 = e2 + (IMAGE_SIZE - 2 * e2) * torch.rand(n, generator=gen)
    img, box1 = render_synthetic(labels, torch.stack([row1, col1], 1), r1,
                                 _rand(gen, n, -0.5, 0.5), _bold_colours(gen, n), bg, aspects)
    img, box2 = render_synthetic(labels, torch.stack([row2, col2], 1), r2,
                                 _rand(gen, n, 0.0, 2 * math.pi), _bold_colours(gen, n), img)
    meta = {"source": "synthetic scenes (offline stand-in; not the authors' STACK-GEN)", "seed": seed,
            "top_boxes": box1, "bottom_boxes": box2}
    return StackSet(normalize(img), labels, labels.clone(), "STACK-GEN (stand-in)",
                    SYNTHETIC_CLASSES[:num_classes], profile, meta)


def stack_gen(profile: str | Profile | None = None, n: int | None = None, seed: int | None = None
              ) -> StackSet:
    """STACK-GEN: the authors' generated images when their ``stackgen/`` folder is in the cache
    (``<cache>/authors/stackgen``; resize 256, centre crop 224, as in the paper), else the
    offline stand-in (:func:`stack_gen_standin` in the synthetic world; with real data, scenes
    composed from two validation images of one class), named as a stand-in.

    Args:
        profile, n, seed: as for :func:`stack_mix`.
    """
    prof, n, seed = _resolve(profile, n, seed)
    folder = authors_dir() / "stackgen"
    if prof.data.source != "synthetic" and folder.is_dir() and any(folder.iterdir()):
        return _authors_stack(folder, "STACK-GEN", prof, n)
    if prof.data.source == "synthetic":
        return stack_gen_standin(n, seed, prof.data.num_classes, prof.name)
    return _composed_standin(prof, n, seed)
