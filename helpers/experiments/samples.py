"""The images chapter 07 feeds its experiments, synthetic or real: labelled images of a profile's
training distribution (:func:`labelled_images`) and objects wholly above the wall with their
boxes (:func:`objects_above`); and the book's one rule for the example image a figure shows
(:func:`example_image`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..config import IMAGE_SIZE, Profile, get_profile
from ..data import real_dataset, synthetic_batch
from ..metrics import PAPER_UNSEEN_ROWS

__all__ = ["labelled_images", "objects_above", "example_image"]


def labelled_images(
    profile: str | Profile | None, n: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` labelled images of a profile's training distribution, ``(images (n, 3, 224, 224),
    labels (n,))``: synthetic images (a pure function of ``seed``), or a seeded random subset of
    the real training set, with the evaluation transform."""
    prof = get_profile(profile)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    if prof.data.source == "synthetic":
        b = synthetic_batch(int(n), int(seed), num_classes=prof.data.num_classes)
        return b.images, b.labels
    ds = real_dataset(prof, split="train", train=False)
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[
        :n
    ].tolist()
    pairs = [ds[i] for i in idx]
    return torch.stack([p[0] for p in pairs]), torch.tensor([int(p[1]) for p in pairs])


def objects_above(
    profile: str | Profile | None, n: int, seed: int = 0, size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images with one object entirely above the wall and its box: ``(images (n, 3, 224,
    224), boxes (n, 4) as (top, bottom, left, right))``. Synthetic: :func:`helpers.data.synthetic_batch`
    with ``placement="above"``. Real data: a validation image shrunk to ``size`` x ``size`` and
    pasted at a random place above the wall (:data:`helpers.metrics.PAPER_UNSEEN_ROWS`) of a
    canvas of the mean colour (zero after normalization); its box is where it was pasted."""
    prof = get_profile(profile)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    if prof.data.source == "synthetic":
        b = synthetic_batch(
            int(n), int(seed), num_classes=prof.data.num_classes, placement="above"
        )
        return b.images, b.boxes
    ds = real_dataset(prof, split="val", train=False)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=gen)[:n].tolist()
    canvas = torch.zeros(len(idx), 3, IMAGE_SIZE, IMAGE_SIZE)
    boxes = torch.zeros(len(idx), 4)
    for j, i in enumerate(idx):
        thumb = F.interpolate(
            ds[i][0][None],
            size=(size, size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )[0]
        r = int(
            torch.randint(0, int(PAPER_UNSEEN_ROWS[0]) - size + 1, (1,), generator=gen)
        )
        c = int(torch.randint(0, IMAGE_SIZE - size + 1, (1,), generator=gen))
        canvas[j, :, r : r + size, c : c + size] = thumb
        boxes[j] = torch.tensor([r, r + size, c, c + size])
    return canvas, boxes


def example_image(mu, correct=None, candidates: int | None = None) -> int:
    """The book's one rule for the example image of a figure: a typical image, not the best or
    the worst case.

    Among the candidate images (the first ``candidates`` of the set, default all of them), those
    the model classifies correctly (``correct``; every candidate when it gets none right), the
    one whose mu is closest to the median of ``mu`` over the *whole* set. Ties go to the lower
    index.

    Args:
        mu: ``(N,)`` per-image mu of one method (the book uses GradCAM's) on one model and set.
        correct: ``(N,)`` booleans, whether the model's top class is the image's label; ``None``:
            every image counts as correct.
        candidates: only the first ``candidates`` images may be chosen (e.g. those whose maps the
            evaluation keeps); ``None``: all.

    Returns:
        The index of the image in the set.

    Raises:
        ValueError: no images, non-finite mu, a ``correct`` of another length, ``candidates < 1``.
    """
    values = np.asarray(mu, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("example_image needs the mu of at least one image.")
    if not np.isfinite(values).all():
        raise ValueError("example_image: mu must be finite on every image.")
    ok = (
        np.ones(values.size, bool)
        if correct is None
        else np.asarray(correct, dtype=bool).ravel()
    )
    if ok.shape != values.shape:
        raise ValueError(f"correct has {ok.size} entries for {values.size} images.")
    k = values.size if candidates is None else int(candidates)
    if k < 1:
        raise ValueError(f"candidates must be at least 1, got {candidates!r}.")
    pool = np.arange(min(k, values.size))
    right = pool[ok[pool]]
    pool = right if right.size else pool
    distance = np.abs(values[pool] - np.median(values))
    return int(
        pool[np.argmin(distance)]
    )  # argmin: the first (lowest index) of equal distances
