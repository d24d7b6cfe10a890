"""The data of the book: the synthetic world, STACK-MIX and STACK-GEN, and real images.

Three kinds of images, one tensor convention: a batch is a float tensor ``(N, 3, 224, 224)``
normalized with the ImageNet mean and standard deviation (what every model of the book takes);
:func:`denormalize` brings it back to ``[0, 1]`` for display.

* **The synthetic world** (the ``quick`` profile's training data, generated on the fly, no
  image file anywhere): bold objects of one of ten classes -- six shapes and four
  textures -- with random position, size, colour, stretch and rotation, on a cluttered
  background of lower contrast. Every batch is rendered at once on a pixel grid from signed-distance-like
  masks (vectorized torch, a few milliseconds per image) and is a pure function of a seed.
  Objects appear anywhere, including entirely below the wall (the rows from
  :data:`FIRST_UNSEEN_ROW` down), so a walled model *must* fail on some images a baseline gets
  right.
* **STACK-MIX** (:func:`stack_mix`, the paper's recipe): the rows above the wall hold one image
  of a class resized to them, the unseen rows below it another image of the same class resized
  to them. The ``"conflict"`` variant puts an image of *another* class below the wall.
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

from .config import IMAGE_SIZE, Profile, cache_dir, cache_dir_error, ensure_dir, get_profile
from .geometry import rvgg_geometry
from .models import AUTHORS_DRIVE_FOLDER, AUTHORS_DRIVE_URL, load_authors_weights

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
    "training_examples",
    "AUTHORS_DRIVE_FOLDER",
    "AUTHORS_CHECKPOINTS",
    "AUTHORS_FOLDERS",
    "MissingDataError",
    "AuthorsReleaseError",
    "AUTHORS_STACK_IMAGES",
    "AUTHORS_DRIVE_URL",
    "validate_authors_checkpoint",
    "validate_authors_stack",
    "ImageReadError",
    "authors_dir",
    "sha256_file",
    "verify_or_record",
    "fetch_file",
    "download_authors_release",
    "authors_checkpoint",
    "load_authors_model",
    "ImageLoader",
    "Conversions",
    "FolderReport",
    "check_image_folder",
    "train_transform",
    "eval_transform",
    "image_folder",
    "imagenette",
    "data_root",
    "real_dataset",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: First input row rVGG cannot see: it and the rows below it are behind the wall
#: (:func:`helpers.geometry.rvgg_geometry`).
FIRST_UNSEEN_ROW = rvgg_geometry().first_unseen_row
#: Version of the synthetic world (and of the stack builders). Part of every checkpoint's
#: cache key: change it whenever the generated images change, so stale models are retrained.
DATA_VERSION = 4

#: The ten classes of the synthetic world: six solid shapes and four textures. They are chosen
#: to differ in coarse, colour-free cues (solid or thin, round or straight, spiky, periodic in
#: one or two directions, dotted, concentric), so that a narrow network learns them from a few
#: thousand images; the textures have a fixed period in pixels whatever the object's size.
SYNTHETIC_CLASSES = [
    "disc", "ring", "bar", "cross", "star", "triangle",
    "stripes", "checkerboard", "dots", "bullseye",
]


# ---------------------------------------------------------------------------------------------
# Normalization
# ---------------------------------------------------------------------------------------------

def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return mean, std


def _as_rgb_batch(images: torch.Tensor, name: str, expected: str
                  ) -> tuple[torch.Tensor, bool, torch.Tensor, torch.Tensor]:
    """``(batch, was_single, mean, std)`` for :func:`normalize` / :func:`denormalize`: ``images``
    as a 4-D batch, whether it was one image, and the channel statistics; a clear error else."""
    if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(
            f"{name} expects {expected} (N, 3, H, W) or (3, H, W), got "
            f"{getattr(images, 'shape', type(images).__name__)}."
        )
    single = images.dim() == 3
    x = images.unsqueeze(0) if single else images
    mean, std = _stats(x.float())
    return x, single, mean, std


def normalize(images: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalization of images in ``[0, 1]``.

    Args:
        images: ``(N, 3, H, W)`` or ``(3, H, W)`` float tensor, values in ``[0, 1]``.

    Returns:
        A tensor of the same shape, ``(x - mean) / std`` per channel.
    """
    x, single, mean, std = _as_rgb_batch(images, "normalize", "a float tensor")
    out = x.float().sub(mean).div_(std)
    return out[0] if single else out


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo :func:`normalize` and clip to ``[0, 1]`` (for display).

    Args:
        images: normalized ``(N, 3, H, W)`` or ``(3, H, W)`` tensor.

    Returns:
        A float tensor of the same shape with values in ``[0, 1]``.
    """
    x, single, mean, std = _as_rgb_batch(images, "denormalize", "a normalized tensor")
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
    """``(n, 3)`` object colours of high *luminance* contrast with the mid-grey backgrounds:
    half of them bright (every channel in 0.7..1), half dark (every channel in 0..0.3), each
    with a random tint, so a luminance edge always outlines the object whatever its colour."""
    bright = torch.rand(n, 1, generator=gen) < 0.5
    tint = 0.3 * torch.rand(n, 3, generator=gen)
    return torch.where(bright, 1.0 - tint, tint)


def _background(gen: torch.Generator, n: int, size: int, style: str) -> torch.Tensor:
    """``(n, 3, size, size)`` backgrounds in ``[0, 1]`` of lower contrast than the objects.

    ``"clutter"`` (training): mid grey with smooth colour noise and irregular blobs of a muted
    colour (every channel within about 0.5 +- 0.2). ``"scene"`` (the STACK-GEN stand-in): a two-tone sky/ground scene with a
    horizon and soft vertical gradient, a different distribution.
    """
    if style == "clutter":
        low = size // 4  # built at a quarter of the resolution, then upsampled once
        # a mid-grey base (the same for every image: a global colour cast would only add a
        # nuisance that the network has to learn to ignore) with local clutter of low contrast
        base = _rand(gen, n * 3, 0.47, 0.53).view(n, 3, 1, 1)
        smooth = F.interpolate(torch.rand(n, 3, 6, 6, generator=gen) - 0.5, size=(low, low),
                               mode="bilinear", align_corners=False)
        blob_field = F.interpolate(torch.rand(n, 1, 14, 14, generator=gen), size=(low, low),
                                   mode="bilinear", align_corners=False)
        blobs = (blob_field > 0.62).float()
        blob_colour = _rand(gen, n * 3, -0.09, 0.09).view(n, 3, 1, 1)
        fine = 0.04 * (torch.rand(n, 1, low, low, generator=gen) - 0.5)
        img = base + 0.14 * smooth + blobs * blob_colour + fine
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
_EXTENT = torch.tensor([0.95, 0.95, math.hypot(0.95, 0.28), math.hypot(0.95, 0.2), 1.0, 1.0,
                        0.85 * math.sqrt(2), 0.85 * math.sqrt(2), 0.95, 0.95])
#: Texture periods in pixels: stripes, checkerboard cells, dot spacing, bullseye rings.
_PERIOD = {6: 10.0, 7: 9.0, 8: 11.0, 9: 10.0}


def _class_distance(k: int, u: torch.Tensor, v: torch.Tensor, rad: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Signed distance-like field (negative inside, radius units) of class ``k``'s shape on the
    object-centred, rotated coordinates ``u, v`` (radius units; the shape fits in the disc of
    radius ``_EXTENT[k]``), and its two-colour pattern (1 where the second colour shows) for the
    textures, else ``None``. ``rad``: the radius in pixels (``(m, 1, 1)``), for the textures'
    fixed periods."""
    if k == 0:  # disc
        return torch.sqrt(u * u + v * v) - 0.95, None
    if k == 1:  # ring: a thin annulus between radii 0.65 and 0.95
        return (torch.sqrt(u * u + v * v) - 0.8).abs() - 0.15, None
    if k == 2:  # bar: a 1.9 x 0.56 rectangle
        return torch.maximum(u.abs() - 0.95, v.abs() - 0.28), None
    if k == 3:  # cross (plus sign) with thin arms
        arm = 0.2
        au, av = u.abs(), v.abs()
        return torch.minimum(torch.maximum(au - 0.95, av - arm), torch.maximum(av - 0.95, au - arm)), None
    if k == 4:  # five-pointed star: r < 0.4 + 0.6 * max(cos 5 theta, 0)^1.5
        r2 = u * u + v * v + 1e-12
        r = torch.sqrt(r2)
        # cos(5 theta) = Re((u + i v)^5) / r^5, without atan2
        re5 = u ** 5 - 10 * u ** 3 * v * v + 5 * u * v ** 4
        c5 = re5 / (r2 * r2 * r)
        return r - (0.4 + 0.6 * c5.clamp(min=0) ** 1.5), None
    if k == 5:  # equilateral triangle, apex up, vertices at distance 1 from the centre
        k3 = math.sqrt(3.0)
        return torch.maximum(torch.maximum((k3 * u - v) / 2.0, (-k3 * u - v) / 2.0), v) - 0.5, None
    if k not in _PERIOD:
        raise ValueError(f"class {k} is not a class of the synthetic world (0..{len(SYNTHETIC_CLASSES) - 1}).")
    period = _PERIOD[k]
    px, py = u * rad, v * rad  # pixels, in the object's rotated frame
    if k == 6:  # stripes in a square patch
        outline = torch.maximum(u.abs(), v.abs()) - 0.85
        pattern = torch.sin(2 * math.pi * px / period) > 0
    elif k == 7:  # checkerboard in a square patch
        outline = torch.maximum(u.abs(), v.abs()) - 0.85
        pattern = (torch.sin(math.pi * px / period) * torch.sin(math.pi * py / period)) > 0
    elif k == 8:  # dots in a disc
        outline = torch.sqrt(u * u + v * v) - 0.95
        cu = torch.remainder(px / period, 1.0) - 0.5
        cv = torch.remainder(py / period, 1.0) - 0.5
        pattern = (cu * cu + cv * cv) < 0.09
    else:  # bullseye: concentric rings in a disc
        outline = torch.sqrt(u * u + v * v) - 0.95
        pattern = torch.sin(2 * math.pi * torch.sqrt(px * px + py * py) / period) > 0
    return outline, pattern.float()


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
        d, pattern = _class_distance(int(k), u, v, rad)
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
    small object entirely below the wall), ``"above"`` (entirely above the wall,
    :data:`FIRST_UNSEEN_ROW`), ``"below"`` (entirely below it), ``"straddle"`` (crossing it),
    or ``"top=<row>"`` (the
    object's top at that row, shrunk to fit); or one of these per image. Uses each class's true extent (:data:`_EXTENT`), so "entirely below" holds for any rotation.
    """
    n = labels.shape[0]
    lo, hi = radius_range
    ext = _EXTENT[labels] * aspects  # vertical half-extent per unit radius
    radii = _rand(gen, n, lo, hi)
    # the largest radius whose object fits entirely in the unseen rows below the wall (1 px margin)
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
        if mode.startswith("top="):  # the object's top row given: fit it in the rows below
            top_row = float(mode[4:])
            if not 0 <= top_row <= size - 8:
                raise ValueError(f"placement {mode!r}: the top row must be in 0..{size - 8}.")
            radii[i] = min(float(radii[i]), ((size - top_row) / 2.0 - 1.5) / float(ext[i]))
            e = float(radii[i] * ext[i]) + 0.5
            rows[i] = top_row + e
            continue
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
                f"Unknown placement {mode!r}; expected 'any', 'above', 'below', 'straddle' or "
                "'top=<row>'."
            )
        rows[i] = top + (bottom - top) * u_row[i]
    half = radii * _EXTENT[labels] + 1.0
    cols = half + (size - 2 * half) * u_col
    return torch.stack([rows, cols], dim=1), radii


def synthetic_batch(n: int, seed: int, *, num_classes: int = 10, placement: str | Sequence[str] = "any",
                    below_share: float = 0.15, radius_range: tuple[float, float] = (40.0, 72.0),
                    aspect_range: tuple[float, float] = (0.7, 1.3), rotate: bool = True,
                    instances: int = 1, background: str = "clutter",
                    labels: torch.Tensor | None = None,
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
        rotate: random rotation of the objects (else upright).
        instances: up to this many instances of the image's class (1..instances, uniformly;
            each with its own place, size, colour and rotation). More instances per image give
            more shape evidence per training step. ``boxes`` then bound all instances.
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
    angles = _rand(gen, n, 0.0, 2 * math.pi) * float(rotate)
    colours = _bold_colours(gen, n)
    bg = _background(gen, n, size, background)
    img, boxes = render_synthetic(labels, centers, radii, angles, colours, bg, aspects)
    if instances > 1:
        count = torch.randint(1, instances + 1, (n,), generator=gen)
        for extra in range(1, instances):
            more = torch.nonzero(count > extra).view(-1)
            a2 = torch.exp(_rand(gen, n, math.log(lo_a), math.log(hi_a)))
            c2, r2 = _sample_placement(gen, labels, size, radius_range, placement, below_share, a2)
            ang2 = _rand(gen, n, 0.0, 2 * math.pi) * float(rotate)
            col2 = _bold_colours(gen, n)
            if more.numel():
                sub, b2 = render_synthetic(labels[more], c2[more], r2[more], ang2[more], col2[more],
                                           img[more], a2[more])
                img[more] = sub
                boxes[more, 0] = torch.minimum(boxes[more, 0], b2[:, 0])
                boxes[more, 2] = torch.minimum(boxes[more, 2], b2[:, 2])
                boxes[more, 1] = torch.maximum(boxes[more, 1], b2[:, 1])
                boxes[more, 3] = torch.maximum(boxes[more, 3], b2[:, 3])
    mean, std = _stats(img)
    img.sub_(mean).div_(std)  # ImageNet normalization, in place
    return SyntheticBatch(images=img, labels=labels, boxes=boxes, seed=int(seed))


def placement_groups(boxes: torch.Tensor, first_unseen_row: int = FIRST_UNSEEN_ROW) -> list[str]:
    """Where each object lies relative to the wall: ``"above"`` (bottom <= ``first_unseen_row``),
    ``"below"`` (top >= ``first_unseen_row``: the walled model cannot see any of it) or
    ``"straddle"``.

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
        num_classes, below_share, instances: see :func:`synthetic_batch`.
    """

    def __init__(self, images_per_epoch: int, batch_size: int, seed: int, num_classes: int = 10,
                 below_share: float = 0.15, instances: int = 1) -> None:
        if batch_size < 1 or images_per_epoch < 1:
            raise ValueError(f"batch_size and images_per_epoch must be positive, got "
                             f"{batch_size} and {images_per_epoch}.")
        self.batch_size = int(batch_size)
        self.steps = max(1, int(images_per_epoch) // self.batch_size)
        self.seed = int(seed)
        self.num_classes = int(num_classes)
        self.below_share = float(below_share)
        self.instances = int(instances)

    def __len__(self) -> int:
        return self.steps

    def batch(self, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(B, 3, 224, 224)`` and labels ``(B,)`` of one step."""
        b = synthetic_batch(self.batch_size, _mix_seed(self.seed, epoch, step),
                            num_classes=self.num_classes, below_share=self.below_share,
                            instances=self.instances)
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
    """STACK-MIX by the paper's recipe: the rows above the wall (:data:`FIRST_UNSEEN_ROW` of
    them) one image of a class resized to them, the unseen rows below another image of the same
    class resized to them (:func:`stack_images`).

    In the ``quick`` profile the source images come from the synthetic world (a seed other
    than any training seed); with real data, the authors' own ``stackmix/`` images when they
    are in the cache (``<cache>/authors/stackmix``, variant ``"same"``; read as they are, at
    224x224, as the authors do), else stacks built from the validation split of the profile's
    dataset (:func:`real_dataset`). The synthetic world never looks at the cache, so it works
    wherever ``$CAMWALLS_HOME`` points.

    Args:
        profile: profile name or object (``None``: ``$CAMWALLS_PROFILE``).
        n: number of images (default ``profile.eval.stack_images`` = 100).
        seed: the set is a pure function of it (default ``profile.eval.seed``).
        variant: ``"same"`` (the paper's) or ``"conflict"`` (an image of *another* class below
            the wall; used by later chapters).

    Returns:
        A :class:`StackSet` named ``"STACK-MIX"`` (or ``"STACK-MIX (conflict)"``).

    Raises:
        ValueError: for an unknown variant or ``n``; with the authors' folder, when it holds
            fewer than ``n`` images, an image that cannot be decoded, or an image that is not
            224x224 (naming the file and saying to download it again).
    """
    prof, n, seed = _resolve(profile, n, seed)
    if variant not in ("same", "conflict"):
        raise ValueError(f"Unknown STACK-MIX variant {variant!r}; expected 'same' or 'conflict'.")
    gen = torch.Generator().manual_seed(_mix_seed(seed, 1701))
    name = "STACK-MIX" if variant == "same" else f"STACK-MIX ({variant})"
    if variant == "same" and prof.data.source != "synthetic":
        authors = authors_dir() / "stackmix"
        if authors.is_dir() and any(authors.iterdir()):
            return _authors_stack(authors, "STACK-MIX", prof, n)
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
    if prof.data.source != "synthetic":
        folder = authors_dir() / "stackgen"
        if folder.is_dir() and any(folder.iterdir()):
            return _authors_stack(folder, "STACK-GEN", prof, n)
    if prof.data.source == "synthetic":
        return stack_gen_standin(n, seed, prof.data.num_classes, prof.name)
    return _composed_standin(prof, n, seed)


# ---------------------------------------------------------------------------------------------
# Real images: folders, Imagenette, the authors' release
# ---------------------------------------------------------------------------------------------

#: What the authors' release holds (files and folders), relative to :func:`authors_dir`.
AUTHORS_CHECKPOINTS = {True: "params_vgg16_masked.pt", False: "params_vgg16_baseline.pt"}
AUTHORS_FOLDERS = ("stackmix", "stackgen")
#: Images in each of the authors' stack folders: the paper's STACK-MIX and STACK-GEN hold 100.
AUTHORS_STACK_IMAGES = 100
#: The display name of each stack folder.
_STACK_NAMES = {"stackmix": "STACK-MIX", "stackgen": "STACK-GEN"}
#: File name of the SHA-256 record kept in every download folder.
CHECKSUMS_FILE = "SHA256SUMS.json"
#: Image file extensions read from folders (torchvision's list).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
DATA_ROOT_ENV = "CAMWALLS_DATA_ROOT"


class MissingDataError(FileNotFoundError):
    """Data that is not here and cannot be downloaded now; the message says where to put it."""


class AuthorsReleaseError(ValueError):
    """A file or folder of the authors' release that does not hold what it should (a checkpoint
    that does not load as rVGG or fails the wall check, a stack folder with the wrong number of
    images, an unreadable or wrongly sized image). The message names it and says to delete it and
    download it again."""


def _redownload(what: str = "it") -> str:
    """The advice for a broken item of the authors' release."""
    return (f"Delete {what} and download it again with helpers.data.download_authors_release() "
            f"(needs a network), or by hand from the authors' Google Drive folder {AUTHORS_DRIVE_URL}.")


def _wrong_size_message(path: Path, size: tuple[int, int]) -> str:
    return (f"The image {path} of the authors' STACK-MIX set is {size[0]}x{size[1]}; expected "
            f"{IMAGE_SIZE}x{IMAGE_SIZE} (the authors' STACK-MIX images are stacked at "
            f"{IMAGE_SIZE}x{IMAGE_SIZE} and read without resizing, so that the wall falls at row "
            f"{FIRST_UNSEEN_ROW}). " + _redownload("it (or the whole stackmix/ folder)"))


def authors_dir() -> Path:
    """Where the authors' release lives: ``<cache>/authors`` (checkpoints, ``stackmix/``,
    ``stackgen/``). Only the path: the folder is not created (that happens when something is
    downloaded into it), so reading it works wherever ``$CAMWALLS_HOME`` points."""
    return cache_dir("authors", create=False)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file (read in chunks of ``chunk`` bytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _load_record(folder: Path) -> dict[str, str]:
    path = folder / CHECKSUMS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"The checksum record {path} is not valid JSON ({err}); delete it to "
                         "re-record the digests of the files present.") from err
    if not isinstance(data, dict):
        raise ValueError(f"The checksum record {path} should map file names to SHA-256 digests.")
    return {str(k): str(v) for k, v in data.items()}


def _write_record(folder: Path, record: dict[str, str]) -> None:
    """Write the record atomically (a temporary file, then a rename: an interrupted write never
    leaves a half-written record behind).

    Raises:
        helpers.config.CacheDirError: when the folder is not writable.
    """
    path = folder / CHECKSUMS_FILE
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as err:
        raise cache_dir_error(folder, err) from err


def _record_key(path: Path, folder: Path) -> str:
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError as err:
        raise ValueError(f"{path} is not inside the record folder {folder}; expected a file below it.") from err


def _mismatch(path: Path, folder: Path, key: str, recorded: str, digest: str,
              validate: Callable[[Path], object] | None) -> ValueError:
    """The error for a file whose digest differs from the recorded one; with ``validate``, it
    also says whether the file present passes the content checks."""
    message = (
        f"SHA-256 mismatch for {path}: recorded {recorded[:16]}..., found {digest[:16]}... "
        f"The file differs from the one whose digest was recorded in {folder / CHECKSUMS_FILE}."
    )
    if validate is not None:
        try:
            validate(path)
        except ValueError as err:
            message += (f" The file present also fails the content check ({err}) "
                        f"-- it is truncated, corrupt or replaced. Delete it to download it again "
                        f"(keep the recorded digest).")
        except Exception as err:  # noqa: BLE001 - the check could not run: say so, keep the advice
            message += (f" (The content check of the file present could not run: {type(err).__name__}: "
                        f"{err}.) Delete the file and download it again, or, if you trust this copy, "
                        f"delete the entry {key!r} from {folder / CHECKSUMS_FILE}.")
        else:
            message += (
                f" The file present passes the content check, so it may be a newer copy, or the "
                f"digest may have been recorded by an older version of the helpers that recorded "
                f"files before checking them. If you trust this copy, delete the entry {key!r} from "
                f"{folder / CHECKSUMS_FILE}; otherwise delete the file and download it again."
            )
    else:
        message += (f" It is truncated, corrupt or replaced. Delete it (and its entry {key!r} in "
                    f"{folder / CHECKSUMS_FILE}) to download it again.")
    return ValueError(message)


def _verify_files(paths: Sequence[Path], folder: Path, validate_all: Callable[[], object] | None = None,
                  validate_one: Callable[[Path], object] | None = None) -> dict[Path, str]:
    """Check ``paths`` against their recorded digests; record the new ones (one write), but only
    after ``validate_all()`` returned (it is called when at least one digest is new).

    Returns:
        The digest of every path.

    Raises:
        ValueError: on a mismatch (see :func:`_mismatch`; ``validate_one`` checks the file).
        Whatever ``validate_all`` raises (nothing is recorded then).
        helpers.config.CacheDirError: when the record cannot be written.
    """
    record = _load_record(folder)
    digests, new = {}, {}
    for path in paths:
        key = _record_key(path, folder)
        digest = sha256_file(path)
        if key in record and record[key] != digest:
            raise _mismatch(path, folder, key, record[key], digest, validate_one)
        if key not in record:
            new[key] = digest
        digests[path] = digest
    if new:
        if validate_all is not None:
            validate_all()
        record.update(new)
        _write_record(folder, record)
    return digests


def verify_or_record(path: str | Path, record_folder: str | Path | None = None,
                     validate: Callable[[Path], object] | None = None) -> str:
    """Check ``path`` against the SHA-256 recorded for it, or record it if none is -- after
    ``validate(path)`` returned, when given, so that only content that passed its checks is
    ever recorded (a truncated download is refused, not recorded).

    The record is ``SHA256SUMS.json`` in ``record_folder`` (default: the file's folder), keyed
    by the path relative to that folder.

    Args:
        path: the file.
        record_folder: the folder of the record.
        validate: a content check that raises on a bad file (for the authors' checkpoints:
            :func:`validate_authors_checkpoint`); run only when no digest is recorded yet (and,
            on a mismatch, to say whether the present file is sound).

    Returns:
        The file's digest.

    Raises:
        ValueError: when a digest is recorded and the file's differs (the file changed since it
            was first checked: corrupt, truncated or replaced).
        Whatever ``validate`` raises (then nothing is recorded).
        helpers.config.CacheDirError: when the record cannot be written.
    """
    path = Path(path)
    folder = Path(record_folder) if record_folder is not None else path.parent
    check = (lambda: validate(path)) if validate is not None else None
    return _verify_files([path], folder, validate_all=check, validate_one=validate)[path]


def validate_authors_checkpoint(path: str | Path, walled: bool) -> None:
    """Check that ``path`` is the authors' walled (``walled=True``) or baseline checkpoint: it
    loads with ``torch.load(weights_only=True)``, builds rVGG, and passes the wall check (the
    walled checkpoint's weights under the wall are all zero; the baseline's are not).

    Loading a full-width checkpoint takes a few seconds and a few GB of memory; it is done once,
    before the file's digest is recorded (later calls only compare digests).

    Raises:
        FileNotFoundError: when there is no file.
        AuthorsReleaseError: (a ``ValueError``) naming the file, what was expected and what was
            found, and saying to delete it and download it again.
    """
    from .config import CheckpointError
    path = Path(path)
    kind = "walled" if walled else "baseline"
    try:
        load_authors_weights(path, walled=walled, on_open_wall="error")
    except CheckpointError as err:  # names the file, its size and the advice already
        raise AuthorsReleaseError(str(err)) from err
    except (ValueError, RuntimeError) as err:
        # A RuntimeError is a content problem only when load_state_dict refused the tensors (an
        # open wall); any other (out of memory...) says nothing about the file: let it through.
        if isinstance(err, RuntimeError) and "loading state_dict" not in str(err):
            raise
        found = " ".join(str(err).split())[:1500]
        if str(path) in found:  # the message names the file and says what to do already
            raise AuthorsReleaseError(found) from err
        raise AuthorsReleaseError(
            f"The authors' {kind} checkpoint {path} does not pass the checks: {found} Expected "
            f"rVGG's weights in the authors' flat layout with the {kind} model's wall "
            f"({'every weight under the wall zero' if walled else 'weights under the wall non-zero'}). "
            + _redownload("it")
        ) from err


def _stack_files(folder: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """The image files of a stack folder in sorted order with their labels, and the class names:
    a flat folder (the authors' layout) gives label ``-1``; with class sub-folders, the images
    inside them labelled by the sub-folder's index. Hidden files and folders are ignored."""
    if not folder.is_dir():
        return [], []

    def images(d: Path) -> list[Path]:
        return [p for p in sorted(d.iterdir()) if p.is_file() and not p.name.startswith(".")
                and p.suffix.lower() in IMAGE_EXTENSIONS]

    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs:
        return [(p, i) for i, d in enumerate(subdirs) for p in images(d)], [d.name for d in subdirs]
    return [(p, -1) for p in images(folder)], []


def validate_authors_stack(folder: str | Path, expected: int | None = None) -> list[Path]:
    """Check one of the authors' stack folders (``stackmix/`` or ``stackgen/``, told apart by
    the folder's name): it holds ``expected`` image files (default
    :data:`AUTHORS_STACK_IMAGES`, the paper's 100), every one decodes, and the STACK-MIX ones
    are 224x224 (STACK-GEN images may have any size: they are resized when read).

    Returns:
        The image files, in the order they are read.

    Raises:
        AuthorsReleaseError: (a ``ValueError``) naming the folder or the file, what was
            expected and what was found, and saying to delete it and download it again.
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    expected = AUTHORS_STACK_IMAGES if expected is None else expected
    name = _STACK_NAMES.get(folder.name, folder.name)
    files = [p for p, _ in _stack_files(folder)[0]]
    if len(files) != expected:
        what = "no folder" if not folder.is_dir() else f"{len(files)} image file(s)"
        raise AuthorsReleaseError(
            f"The authors' {name} folder {folder} holds {what}; expected {expected} images "
            f"({', '.join(IMAGE_EXTENSIONS)}). The download is incomplete or the folder is not the "
            "authors': " + _redownload("the folder")
        )
    for path in files:
        try:
            with Image.open(path) as im:
                im.load()
                size = im.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise AuthorsReleaseError(
                f"The image {path} of the authors' {name} set cannot be decoded ({type(err).__name__}: "
                f"{err}); expected a readable image. The file is truncated or corrupt: "
                + _redownload("it (or the whole folder)")
            ) from err
        if name == "STACK-MIX" and size != (IMAGE_SIZE, IMAGE_SIZE):
            raise AuthorsReleaseError(_wrong_size_message(path, size))
    return files


def _verify_authors_stack(dest: Path, folder_name: str) -> None:
    """Check the digests of a stack folder's images against the record in ``dest``; record the
    new ones only after the whole folder passed :func:`validate_authors_stack`. The image count
    is checked every time (cheap: a listing)."""
    folder = dest / folder_name
    files = [p for p, _ in _stack_files(folder)[0]]
    if len(files) != AUTHORS_STACK_IMAGES:
        validate_authors_stack(folder)  # raises, naming the count
    _verify_files(files, dest, validate_all=lambda: validate_authors_stack(folder))


def _download_url(url: str, dest: Path) -> None:
    """Download ``url`` to the file ``dest`` (torchvision's downloader)."""
    from torchvision.datasets.utils import download_url

    download_url(url, str(dest.parent), filename=dest.name)


def _download_drive_folder(folder_id: str, dest: Path) -> None:
    """Download a public Google Drive folder into ``dest`` with ``gdown`` (imported lazily)."""
    try:
        import gdown
    except ImportError as err:  # pragma: no cover - gdown is a dependency of the book
        raise MissingDataError(
            "Downloading the authors' release needs the package gdown (pip install gdown)."
        ) from err
    gdown.download_folder(id=folder_id, output=str(dest), quiet=True)


def fetch_file(url: str, dest: str | Path, downloader: Callable[[str, Path], None] | None = None,
               what: str = "file") -> Path:
    """Make sure the file ``dest`` is here: download it from ``url`` when missing, record its
    SHA-256 on the first download and check it on every later call.

    Args:
        url: where it comes from.
        dest: where it goes (its folder holds the ``SHA256SUMS.json`` record; created only when
            a download is needed).
        downloader: ``f(url, dest)`` (default: torchvision's ``download_url``); tests pass a fake.
        what: a name for error messages.

    Raises:
        MissingDataError: when the download fails (offline), saying where to put the file by hand.
        helpers.config.CacheDirError: when the folder cannot be created or written (before
            anything is downloaded).
        ValueError: on a digest mismatch (see :func:`verify_or_record`).
    """
    dest = Path(dest)
    if not dest.is_file():
        ensure_dir(dest.parent)
        try:
            (downloader or _download_url)(url, dest)
        except Exception as err:  # noqa: BLE001 - any network failure gets the same advice
            raise MissingDataError(
                f"Could not download the {what} from {url} ({type(err).__name__}: {err}). "
                f"Without a network, download it elsewhere and copy it to {dest}."
            ) from err
        if not dest.is_file():
            raise MissingDataError(f"The download of {url} produced no file at {dest}; copy the "
                                   f"{what} there by hand.")
    verify_or_record(dest)
    return dest


def download_authors_release(dest: str | Path | None = None,
                             downloader: Callable[[str, Path], None] | None = None,
                             force: bool = False) -> Path:
    """The authors' release (checkpoints and ``stackmix/``, ``stackgen/``) in ``dest``
    (default :func:`authors_dir`), downloaded from their Google Drive folder with ``gdown`` when
    something is missing, then checked: every checkpoint must load as rVGG and pass the wall
    check (:func:`validate_authors_checkpoint`), every stack folder must hold
    :data:`AUTHORS_STACK_IMAGES` readable images (STACK-MIX ones 224x224,
    :func:`validate_authors_stack`). The SHA-256 of a file is recorded only once its content
    passed these checks, and compared on every later call.

    Args:
        dest: target folder (created only when something has to be downloaded).
        downloader: ``f(folder_id, dest)`` (default: ``gdown.download_folder``); tests pass a fake.
        force: download even when everything is present.

    Returns:
        ``dest``.

    Raises:
        helpers.config.CacheDirError: when ``dest`` cannot be created or written (before the
            download starts).
        MissingDataError: offline, naming the missing items and where to put them by hand.
        AuthorsReleaseError: when a checkpoint or a stack folder fails its checks (naming it;
            nothing is recorded for it).
        ValueError: when a file differs from its recorded digest.
    """
    dest = Path(dest) if dest is not None else authors_dir()
    missing = _authors_missing(dest)
    if missing or force:
        ensure_dir(dest)
        try:
            (downloader or _download_drive_folder)(AUTHORS_DRIVE_FOLDER, dest)
        except Exception as err:  # noqa: BLE001
            raise MissingDataError(
                f"Could not download the authors' release ({type(err).__name__}: {err}). Missing: "
                f"{', '.join(missing) or 'nothing (a forced download)'}. Download the Google Drive "
                f"folder {AUTHORS_DRIVE_URL} by hand and put its content in {dest} (files "
                f"{', '.join(AUTHORS_CHECKPOINTS.values())}, folders "
                f"{', '.join(f + '/' for f in AUTHORS_FOLDERS)} with {AUTHORS_STACK_IMAGES} images each)."
            ) from err
        # gdown puts the folder's content in dest, or in dest/<folder name>: accept both.
        _flatten_single_subfolder(dest)
        still = _authors_missing(dest)
        if still:
            raise MissingDataError(
                f"After the download, still missing in {dest}: {', '.join(still)}. Expected the "
                f"files and folders of the authors' Google Drive folder {AUTHORS_DRIVE_URL}; put "
                "the missing ones there by hand."
            )
    for walled, name in AUTHORS_CHECKPOINTS.items():
        verify_or_record(dest / name, dest,
                         validate=lambda p, w=walled: validate_authors_checkpoint(p, walled=w))
    for folder in AUTHORS_FOLDERS:
        _verify_authors_stack(dest, folder)
    return dest


def _authors_missing(dest: Path) -> list[str]:
    """What of the release is not in ``dest``: checkpoints that are not files, stack folders
    that hold no image file (an empty or image-less folder is missing, not complete)."""
    missing = [name for name in AUTHORS_CHECKPOINTS.values() if not (dest / name).is_file()]
    missing += [f"{name}/" for name in AUTHORS_FOLDERS if not _stack_files(dest / name)[0]]
    return missing


def _flatten_single_subfolder(dest: Path) -> None:
    if _authors_missing(dest):
        for sub in dest.iterdir():
            if sub.is_dir() and sub.name not in AUTHORS_FOLDERS and not _authors_missing(sub):
                for item in sub.iterdir():
                    target = dest / item.name
                    if not target.exists():
                        shutil.move(str(item), str(target))
                break


def authors_checkpoint(walled: bool = True, download: bool = False,
                       downloader: Callable[[str, Path], None] | None = None) -> Path:
    """Path of the authors' checkpoint (``params_vgg16_masked.pt`` when ``walled``, else
    ``params_vgg16_baseline.pt``), checked against its recorded SHA-256; a file seen for the
    first time (copied by hand) is first checked with :func:`validate_authors_checkpoint`.

    Raises:
        MissingDataError: when it is not in :func:`authors_dir` (and ``download`` is false or
            fails), saying where to put it.
        AuthorsReleaseError: when the file does not load as rVGG or fails the wall check.
        ValueError: when it differs from its recorded digest.
        helpers.config.CacheDirError: when the digest cannot be recorded (folder not writable).
    """
    folder = authors_dir()
    path = folder / AUTHORS_CHECKPOINTS[bool(walled)]
    if not path.is_file():
        if not download:
            raise MissingDataError(
                f"The authors' checkpoint {path.name} is not in {folder}. Call "
                "helpers.data.download_authors_release() (needs a network), or download it from "
                f"{AUTHORS_DRIVE_URL} and copy it there."
            )
        download_authors_release(folder, downloader=downloader)
    verify_or_record(path, folder, validate=lambda p: validate_authors_checkpoint(p, walled=bool(walled)))
    return path


def load_authors_model(walled: bool = True, download: bool = False, map_location: str = "cpu"):
    """The authors' trained rVGG (full width, 1000 ImageNet classes) in eval mode, through
    :func:`helpers.models.load_authors_weights` (``torch.load(weights_only=True)``).

    Raises:
        As :func:`authors_checkpoint`.
    """
    return load_authors_weights(authors_checkpoint(walled, download=download), walled=walled,
                                map_location=map_location)


# --- reading image files ------------------------------------------------------------------------

class ImageReadError(ValueError):
    """An image file that cannot be decoded (corrupt, truncated, or not an image)."""


@dataclass
class Conversions:
    """What :class:`ImageLoader` converted while reading (counts by original mode, and the
    number of images whose size was not 224x224)."""

    modes: dict[str, int] = field(default_factory=dict)
    resized: int = 0

    def describe(self) -> str:
        """One sentence for notebooks and logs."""
        parts = [f"{k} image(s) converted from mode {m} to RGB" for m, k in sorted(self.modes.items())]
        if self.resized:
            parts.append(f"{self.resized} image(s) not 224x224, resized by the transform")
        return "; ".join(parts) if parts else "no conversion"


class ImageLoader:
    """Read an image file as RGB with PIL, converting other modes (grayscale ``L``, ``RGBA``,
    palette ``P``, ``CMYK``, 16-bit ``I;16``...) to RGB and counting them in
    :attr:`conversions`; RGBA is composed onto white. A file that PIL cannot decode raises
    :class:`ImageReadError` naming it."""

    def __init__(self) -> None:
        self.conversions = Conversions()

    def __call__(self, path: str | Path):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                im.load()
                img = im.copy()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise ImageReadError(
                f"Cannot read the image {path} ({type(err).__name__}: {err}). The file is corrupt, "
                "truncated or not an image: delete or replace it, or check the folder with "
                "helpers.data.check_image_folder."
            ) from err
        if img.size != (IMAGE_SIZE, IMAGE_SIZE):
            self.conversions.resized += 1
        if img.mode != "RGB":
            self.conversions.modes[img.mode] = self.conversions.modes.get(img.mode, 0) + 1
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                img = img.convert("RGBA")
                white = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(white, img).convert("RGB")
            elif img.mode.startswith("I;16") or img.mode == "I":
                import numpy as np

                arr = np.asarray(img, dtype=np.float64)
                arr = (arr / max(arr.max(), 1.0) * 255.0).astype("uint8")
                img = Image.fromarray(arr, mode="L").convert("RGB")
            else:
                img = img.convert("RGB")
        return img


@dataclass
class FolderReport:
    """What :func:`check_image_folder` found in a class-per-folder image tree."""

    root: Path
    classes: list[str]
    counts: dict[str, int]
    skipped: list[Path]  # files that are not images (by extension): ignored
    unreadable: list[Path]  # image files PIL cannot decode
    modes: dict[str, int]  # non-RGB modes found (converted to RGB when read)
    sizes: dict[str, int]  # "224x224" and "other" counts

    def describe(self) -> str:
        """A short summary for notebooks."""
        lines = [f"{self.root}: {len(self.classes)} classes, {sum(self.counts.values())} images"]
        if self.skipped:
            lines.append(f"{len(self.skipped)} non-image file(s) ignored, e.g. {self.skipped[0].name}")
        if self.modes:
            lines.append("converted to RGB when read: " + ", ".join(f"{k} {m}" for m, k in self.modes.items()))
        if self.sizes.get("other"):
            lines.append(f"{self.sizes['other']} image(s) not 224x224 (resized by the transforms)")
        return "; ".join(lines)


def check_image_folder(root: str | Path, verify: bool = True) -> FolderReport:
    """Check a class-per-folder image tree (``root/<class>/<image>``) before using it.

    Non-image files (by extension) are listed and ignored; grayscale, RGBA and other modes are
    listed (they are converted to RGB when read); images of other sizes are counted (the
    transforms resize them).

    Args:
        root: the folder.
        verify: also decode every image (slower; finds corrupt files up front).

    Raises:
        MissingDataError: when ``root`` does not exist (says what to put there).
        ValueError: when ``root`` has no class folder, a class folder holds no image, or an
            image cannot be decoded (naming the file).
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise MissingDataError(
            f"No image folder at {root}. Expected one sub-folder per class with the images inside "
            f"(root/<class>/<image>.jpg), e.g. ImageNet's train/ or val/ folders; or set "
            f"{DATA_ROOT_ENV} to where your data is."
        )
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root} has no class sub-folder; expected root/<class>/<image>.jpg.")
    counts, skipped, unreadable, modes, sizes = {}, [], [], {}, {"224x224": 0, "other": 0}
    for c in classes:
        n = 0
        for path in sorted((root / c).rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.append(path)
                continue
            n += 1
            if verify:
                try:
                    with Image.open(path) as im:
                        im.load()
                        if im.mode != "RGB":
                            modes[im.mode] = modes.get(im.mode, 0) + 1
                        sizes["224x224" if im.size == (IMAGE_SIZE, IMAGE_SIZE) else "other"] += 1
                except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
                    unreadable.append(path)
        counts[c] = n
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise ValueError(
            f"Class folder(s) with no image in {root}: {', '.join(empty[:5])}. Every class needs at "
            f"least one image ({', '.join(IMAGE_EXTENSIONS)}); remove the empty folder(s) or add images."
        )
    if unreadable:
        raise ValueError(
            f"{len(unreadable)} image file(s) in {root} cannot be decoded (corrupt or truncated), "
            f"e.g. {unreadable[0]}. Delete or replace them."
        )
    return FolderReport(root, classes, counts, skipped, unreadable, modes, sizes)


def train_transform():
    """The paper's training augmentation: ``RandomResizedCrop(224, scale=(0.1, 1), ratio=(0.8,
    1.25))``, horizontal flip, tensor, ImageNet normalization."""
    from torchvision import transforms as T

    return T.Compose([
        T.RandomResizedCrop(IMAGE_SIZE, scale=(0.1, 1.0), ratio=(0.8, 1.25)),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def eval_transform(resize: int = IMAGE_SIZE):
    """Validation: resize the short side to ``resize`` (224 in the paper's validation, 256 for
    STACK-GEN), centre crop 224, tensor, ImageNet normalization."""
    from torchvision import transforms as T

    return T.Compose([
        T.Resize(resize),
        T.CenterCrop(IMAGE_SIZE),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def image_folder(root: str | Path, train: bool = False, check: bool = True, resize: int = IMAGE_SIZE):
    """A torchvision ``ImageFolder`` over ``root/<class>/<image>`` with the paper's transforms,
    read through :class:`ImageLoader` (non-RGB converted and counted in ``.conversions``).

    Args:
        root: the folder.
        train: training augmentation (else the validation transform).
        check: run :func:`check_image_folder` first (clear errors for a missing folder, an
            empty class, a corrupt image).
        resize: the validation resize (ignored when ``train``).
    """
    from torchvision.datasets import ImageFolder

    report = check_image_folder(root, verify=check) if check else None
    if not Path(root).is_dir():
        raise MissingDataError(f"No image folder at {root}.")
    loader = ImageLoader()
    ds = ImageFolder(str(root), transform=train_transform() if train else eval_transform(resize),
                     loader=loader, is_valid_file=lambda p: Path(p).suffix.lower() in IMAGE_EXTENSIONS)
    ds.conversions = loader.conversions  # type: ignore[attr-defined]
    ds.report = report  # type: ignore[attr-defined]
    ds.description = f"image folder {root}"  # type: ignore[attr-defined]
    return ds


def imagenette(split: str = "train", size: str = "320px", train: bool | None = None,
               root: str | Path | None = None, download: bool = True,
               downloader: Callable[[str, Path], None] | None = None):
    """Imagenette (10 easy ImageNet classes) through ``torchvision.datasets.Imagenette``.

    The archive is downloaded (when ``download`` and missing) into ``root`` (default
    ``<cache>/data/imagenette``), its SHA-256 recorded on first download and checked afterwards,
    then extracted; the images are read through :class:`ImageLoader`.

    Args:
        split: ``"train"`` or ``"val"``.
        size: ``"full"``, ``"320px"`` or ``"160px"`` (torchvision's archives).
        train: training augmentation (default: ``split == "train"``).
        root, download, downloader: where, whether, and how (tests pass a fake downloader).

    Raises:
        MissingDataError: offline and not present, saying where to put the archive.
    """
    from torchvision.datasets import Imagenette
    from torchvision.datasets.utils import extract_archive

    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}.")
    if size not in Imagenette._ARCHIVES:
        raise ValueError(f"size must be one of {sorted(Imagenette._ARCHIVES)}, got {size!r}.")
    root = Path(root) if root is not None else cache_dir("data", "imagenette", create=False)
    url, _ = Imagenette._ARCHIVES[size]
    archive = root / Path(url).name
    extracted = root / Path(url).stem
    if not extracted.is_dir():
        if not archive.is_file() and not download:
            raise MissingDataError(
                f"Imagenette ({size}) is not in {root}. Download {url} and put it at {archive} "
                "(or call with download=True where there is a network)."
            )
        fetch_file(url, archive, downloader=downloader, what=f"Imagenette archive ({size})")
        extract_archive(str(archive), str(root))
        if not extracted.is_dir():
            raise ValueError(f"The archive {archive} did not contain the folder {extracted.name}/.")
    elif archive.is_file():
        verify_or_record(archive)
    check_image_folder(extracted / split, verify=False)
    loader = ImageLoader()
    train = (split == "train") if train is None else train
    ds = Imagenette(str(root), split=split, size=size, download=False, loader=loader,
                    transform=train_transform() if train else eval_transform())
    ds.conversions = loader.conversions  # type: ignore[attr-defined]
    ds.classes = [names[0] for names in ds.classes]  # the first English name of each class
    ds.description = f"Imagenette {size} ({split})"  # type: ignore[attr-defined]
    return ds


def data_root(profile: str | Profile | None = None) -> Path:
    """The root of an ImageNet-style folder (``train/`` and ``val/`` inside): the profile's
    ``data.root``, else ``$CAMWALLS_DATA_ROOT``, else ``<cache>/data/imagenet``."""
    prof = get_profile(profile)
    root = getattr(prof.data, "root", "") or os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(root).expanduser() if root else cache_dir("data", "imagenet", create=False)


def real_dataset(profile: str | Profile | None = None, split: str = "train", train: bool | None = None):
    """The real dataset of a profile whose ``data.source`` is ``"imagefolder"`` or
    ``"imagenette"``, for ``split`` ``"train"`` or ``"val"``.

    Raises:
        ValueError: for the synthetic source (use :class:`SyntheticStream`) or an unknown one.
        MissingDataError: when the data is not here (with what to do).
    """
    prof = get_profile(profile)
    train = (split == "train") if train is None else train
    if prof.data.source == "imagefolder":
        root = data_root(prof) / split
        if not root.is_dir():
            raise MissingDataError(
                f"No {split}/ folder under {data_root(prof)}. The full profile trains on an "
                "ImageNet-style folder: put train/<class>/*.JPEG and val/<class>/*.JPEG there, set "
                f"{DATA_ROOT_ENV} to where they are, or use the Imagenette source "
                "(profile.replace(data=...source='imagenette'))."
            )
        return image_folder(root, train=train, check=True)
    if prof.data.source == "imagenette":
        return imagenette(split=split, train=train)
    if prof.data.source == "synthetic":
        raise ValueError("The synthetic source has no dataset object: use SyntheticStream / "
                         "synthetic_batch.")
    raise ValueError(f"Unknown data source {prof.data.source!r}; expected 'synthetic', "
                     "'imagefolder' or 'imagenette'.")


def _indices_by_class(dataset) -> dict[int, list[int]]:
    targets = getattr(dataset, "targets", None)
    if targets is None:
        targets = [label for _, label in getattr(dataset, "_samples", getattr(dataset, "samples", []))]
    out: dict[int, list[int]] = {}
    for i, t in enumerate(targets):
        out.setdefault(int(t), []).append(i)
    return out


def _authors_stack(folder: Path, name: str, prof: Profile, n: int) -> StackSet:
    """The first ``n`` of the authors' stack images in ``folder``, as the authors read them:
    STACK-MIX as it is (already 224x224: no resizing, so the wall stays at
    :data:`FIRST_UNSEEN_ROW`), STACK-GEN
    resized to 256 and centre-cropped to 224. With class sub-folders the labels are their
    indices in sorted order; a flat folder (the authors' layout) gives ``-1``.

    Raises:
        ValueError: when the folder holds no image or fewer than ``n``, or a STACK-MIX image is
            not 224x224 (naming the file and saying to download the release again).
        ImageReadError: for an image that cannot be decoded (naming it).
    """
    from torchvision import transforms as T

    loader = ImageLoader()
    as_is = name == "STACK-MIX"
    tf = (T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]) if as_is
          else eval_transform(256))
    files, classes = _stack_files(folder)
    if len(files) < n:
        raise ValueError(
            f"The authors' {name} folder {folder} holds {len(files)} image file(s); expected at least "
            f"{n} (the paper's set has {AUTHORS_STACK_IMAGES}). The release is incomplete: "
            + _redownload("the folder")
        )
    files = files[:n]
    tensors = []
    for path, _ in files:
        img = loader(path)
        if as_is and img.size != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(_wrong_size_message(path, img.size))
        tensors.append(tf(img))
    images = torch.stack(tensors)
    labels = torch.tensor([c for _, c in files])
    how = "read as they are (224x224)" if as_is else "resized to 256, centre crop 224"
    return StackSet(images, labels, labels.clone(), name, classes, prof.name,
                    {"source": f"the authors' {name} images in {folder} ({how})",
                     "files": [p.name for p, _ in files], "conversions": loader.conversions.describe()})


def _composed_standin(prof: Profile, n: int, seed: int) -> StackSet:
    """STACK-GEN stand-in with real images: a validation image of a class fills the frame, and
    a second image of the same class, shrunk to 96x96, is pasted with its top in rows 150..200."""
    dataset = real_dataset(prof, split="val", train=False)
    by_class = {c: idx for c, idx in _indices_by_class(dataset).items() if len(idx) >= 2}
    if not by_class:
        raise ValueError("The STACK-GEN stand-in needs a class with two validation images.")
    gen = torch.Generator().manual_seed(_mix_seed(seed, 2025))
    keys = sorted(by_class)
    images, labels = [], []
    for _ in range(n):
        c = keys[int(torch.randint(0, len(keys), (1,), generator=gen))]
        i, j = torch.randperm(len(by_class[c]), generator=gen)[:2].tolist()
        base = dataset[by_class[c][i]][0].clone()
        small = F.interpolate(dataset[by_class[c][j]][0][None], size=(96, 96), mode="bilinear",
                              align_corners=False, antialias=True)[0]
        top = int(torch.randint(150, 201, (1,), generator=gen))
        left = int(torch.randint(0, IMAGE_SIZE - 96 + 1, (1,), generator=gen))
        h = min(96, IMAGE_SIZE - top)
        base[:, top:top + h, left:left + 96] = small[:, :h]
        images.append(base)
        labels.append(c)
    lab = torch.tensor(labels)
    return StackSet(torch.stack(images), lab, lab.clone(), "STACK-GEN (stand-in)", list(dataset.classes),
                    prof.name, {"source": "scenes composed from two validation images of one class "
                                "(offline stand-in; not the authors' STACK-GEN)", "seed": seed})


def training_examples(profile: str | Profile | None = None, n: int = 12, seed: int = 0
                      ) -> tuple[torch.Tensor, torch.Tensor, list[str], str]:
    """A few training images of a profile, as the network sees them (augmented, normalized).

    Returns:
        ``(images (n, 3, 224, 224), labels (n,), class_names, description)``.
    """
    prof = get_profile(profile)
    if prof.data.source == "synthetic":
        b = synthetic_batch(n, _mix_seed(seed, 77), num_classes=prof.data.num_classes,
                            below_share=prof.data.below_share, instances=getattr(prof.data, "instances", 1))
        return b.images, b.labels, SYNTHETIC_CLASSES[:prof.data.num_classes], "synthetic world"
    ds = real_dataset(prof, split="train", train=True)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the random crops and flips
    idx = torch.randperm(len(ds), generator=gen)[:n].tolist()
    items = [ds[i] for i in idx]
    return (torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items]),
            list(ds.classes), getattr(ds, "description", "real images"))
