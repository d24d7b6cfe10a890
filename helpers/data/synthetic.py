"""The synthetic world, sampled: batches that are pure functions of a seed, and where their
objects lie relative to the wall.

It is the ``quick`` profile's training data, generated on the fly with no image file anywhere
(:mod:`helpers.data.render` paints it). Objects appear anywhere, including entirely below the
wall (the rows from :data:`FIRST_UNSEEN_ROW` down), so a walled model *must* fail on some images
a baseline gets right; :func:`placement_groups` says which.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ..config import IMAGE_SIZE
from ..geometry import rvgg_geometry
from .render import (
    _EXTENT,
    SYNTHETIC_CLASSES,
    _background,
    _bold_colours,
    _rand,
    render_synthetic,
)
from .transforms import _stats

#: First input row rVGG cannot see: it and the rows below it are behind the wall
#: (:func:`helpers.geometry.rvgg_geometry`).
FIRST_UNSEEN_ROW = rvgg_geometry().first_unseen_row
#: Version of the synthetic world (and of the stack builders). Part of every checkpoint's
#: cache key: change it whenever the generated images change, so stale models are retrained.
DATA_VERSION = 4


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


def _sample_placement(
    gen: torch.Generator,
    labels: torch.Tensor,
    size: int,
    radius_range: tuple[float, float],
    placement: str | Sequence[str],
    below_share: float,
    aspects: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres ``(n, 2)`` (row, column) and radii ``(n,)`` in pixels, the whole object in frame.

    ``placement``: ``"any"`` (uniform over the image, and with probability ``below_share`` a
    small object entirely below the wall), ``"above"`` (entirely above the wall,
    :data:`FIRST_UNSEEN_ROW`), ``"below"`` (entirely below it), ``"straddle"`` (crossing it),
    or ``"top=<row>"`` (the object's top at that row, shrunk to fit); or one of these per image.
    Uses each class's true extent (:data:`helpers.data.render._EXTENT`), so "entirely below"
    holds for any rotation.
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
            radii[i] = min(
                float(radii[i]), (FIRST_UNSEEN_ROW / 2.0 - 2.0) / float(ext[i])
            )
        if mode.startswith(
            "top="
        ):  # the object's top row given: fit it in the rows below
            top_row = float(mode[4:])
            if not 0 <= top_row <= size - 8:
                raise ValueError(
                    f"placement {mode!r}: the top row must be in 0..{size - 8}."
                )
            radii[i] = min(
                float(radii[i]), ((size - top_row) / 2.0 - 1.5) / float(ext[i])
            )
            e = float(radii[i] * ext[i]) + 0.5
            rows[i] = top_row + e
            continue
        e = (
            float(radii[i] * ext[i]) + 1.0
        )  # half-extent in pixels, with anti-aliasing margin
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


def synthetic_batch(
    n: int,
    seed: int,
    *,
    num_classes: int = 10,
    placement: str | Sequence[str] = "any",
    below_share: float = 0.15,
    radius_range: tuple[float, float] = (40.0, 72.0),
    aspect_range: tuple[float, float] = (0.7, 1.3),
    rotate: bool = True,
    instances: int = 1,
    background: str = "clutter",
    labels: torch.Tensor | None = None,
    size: int = IMAGE_SIZE,
) -> SyntheticBatch:
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
        raise ValueError(
            f"num_classes must be in 2..{len(SYNTHETIC_CLASSES)}, got {num_classes}."
        )
    gen = torch.Generator().manual_seed(int(seed))
    if labels is None:
        labels = torch.randint(0, num_classes, (n,), generator=gen)
    else:
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        check_labels(labels, num_classes)
        if labels.numel() != n:
            raise ValueError(f"got {labels.numel()} labels for n={n} images.")
        torch.randint(
            0, num_classes, (n,), generator=gen
        )  # keep the random stream aligned
    lo_a, hi_a = aspect_range
    if not 0 < lo_a <= hi_a:
        raise ValueError(f"aspect_range must be 0 < low <= high, got {aspect_range}.")
    aspects = torch.exp(_rand(gen, n, math.log(lo_a), math.log(hi_a)))
    centers, radii = _sample_placement(
        gen, labels, size, radius_range, placement, below_share, aspects
    )
    angles = _rand(gen, n, 0.0, 2 * math.pi) * float(rotate)
    colours = _bold_colours(gen, n)
    bg = _background(gen, n, size, background)
    img, boxes = render_synthetic(labels, centers, radii, angles, colours, bg, aspects)
    if instances > 1:
        count = torch.randint(1, instances + 1, (n,), generator=gen)
        for extra in range(1, instances):
            more = torch.nonzero(count > extra).view(-1)
            a2 = torch.exp(_rand(gen, n, math.log(lo_a), math.log(hi_a)))
            c2, r2 = _sample_placement(
                gen, labels, size, radius_range, placement, below_share, a2
            )
            ang2 = _rand(gen, n, 0.0, 2 * math.pi) * float(rotate)
            col2 = _bold_colours(gen, n)
            if more.numel():
                sub, b2 = render_synthetic(
                    labels[more],
                    c2[more],
                    r2[more],
                    ang2[more],
                    col2[more],
                    img[more],
                    a2[more],
                )
                img[more] = sub
                boxes[more, 0] = torch.minimum(boxes[more, 0], b2[:, 0])
                boxes[more, 2] = torch.minimum(boxes[more, 2], b2[:, 2])
                boxes[more, 1] = torch.maximum(boxes[more, 1], b2[:, 1])
                boxes[more, 3] = torch.maximum(boxes[more, 3], b2[:, 3])
    mean, std = _stats(img)
    img.sub_(mean).div_(std)  # ImageNet normalization, in place
    return SyntheticBatch(images=img, labels=labels, boxes=boxes, seed=int(seed))


def placement_groups(
    boxes: torch.Tensor, first_unseen_row: int = FIRST_UNSEEN_ROW
) -> list[str]:
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


def mix_seed(*parts: int) -> int:
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

    def __init__(
        self,
        images_per_epoch: int,
        batch_size: int,
        seed: int,
        num_classes: int = 10,
        below_share: float = 0.15,
        instances: int = 1,
    ) -> None:
        if batch_size < 1 or images_per_epoch < 1:
            raise ValueError(
                f"batch_size and images_per_epoch must be positive, got "
                f"{batch_size} and {images_per_epoch}."
            )
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
        b = synthetic_batch(
            self.batch_size,
            mix_seed(self.seed, epoch, step),
            num_classes=self.num_classes,
            below_share=self.below_share,
            instances=self.instances,
        )
        return b.images, b.labels

    def epoch(
        self, epoch: int, start_step: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
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
