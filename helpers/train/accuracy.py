"""How well a model classifies: on tensors (:func:`evaluate_accuracy`), on a dataset
(:func:`evaluate_dataset`), and by where the object lies with respect to the wall
(:func:`position_sets`, :func:`position_accuracy`, :func:`accuracy_by_row`): a walled model is
at chance on the objects behind its wall.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .. import data as D
from ..config import Profile, get_profile
from .loop import autocast

__all__ = [
    "evaluate_accuracy",
    "evaluate_dataset",
    "position_sets",
    "position_accuracy",
    "DEFAULT_TOP_ROWS",
    "accuracy_by_row",
]


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 64,
    device: torch.device | None = None,
    channels_last: bool = False,
) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy of ``model`` on ``images`` ``(N, 3, 224, 224)``
    with ``labels`` ``(N,)`` (labels out of the model's range are refused)."""
    D.check_labels(labels, int(getattr(model, "num_classes", 10**9)))
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    correct, loss, n = 0, 0.0, int(labels.shape[0])
    for i in range(0, n, batch_size):
        x = images[i : i + batch_size].to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = labels[i : i + batch_size].to(device)
        out = model(x).float()
        loss += float(F.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
    model.train(was_training)
    return correct / max(n, 1), loss / max(n, 1)


@torch.no_grad()
def evaluate_dataset(
    model: nn.Module,
    dataset: Any,
    device: torch.device,
    batch_size: int = 64,
    num_workers: int = 0,
    mixed_precision: bool = False,
) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy of ``model`` on a dataset of ``(image, label)``
    items (read by a ``DataLoader``; bf16 autocast on a GPU with ``mixed_precision``). Leaves the
    model in training mode."""
    model.eval()
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    correct = n = 0
    loss = 0.0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, mixed_precision):
            out = model(x).float()
        loss += float(F.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
        n += int(y.shape[0])
    model.train()
    return correct / max(n, 1), loss / max(n, 1)


def position_sets(
    profile: str | Profile | None = None,
    n: int | None = None,
    seed: int = 31337,
    num_classes: int | None = None,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Images whose object lies entirely ``"above"`` the wall, ``"straddle"``-s it, or lies
    entirely ``"below"`` it (:data:`helpers.data.FIRST_UNSEEN_ROW`): ``{group: (images, labels)}``.

    Synthetic world: objects placed so (their painted pixels checked). Real data: each
    validation image shrunk to 50x50 and pasted at a random place of a mid-grey canvas, in the
    group's rows (a proxy for "an object in that position").
    """
    prof = get_profile(profile)
    n = prof.data.position_images if n is None else n
    k = num_classes or prof.data.num_classes
    out = {}
    if prof.data.source == "synthetic":
        for j, group in enumerate(("above", "straddle", "below")):
            b = D.synthetic_batch(
                n, D.mix_seed(seed, j), num_classes=k, placement=group
            )
            out[group] = (b.images, b.labels)
        return out
    ds = D.real_dataset(prof, split="val", train=False)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=gen)[:n].tolist()
    thumbs, labels = [], []
    for i in idx:
        x, y = ds[i]
        thumbs.append(
            F.interpolate(
                x[None],
                size=(50, 50),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )[0]
        )
        labels.append(int(y))
    lab = torch.tensor(labels)
    rows = {
        "above": (0, D.FIRST_UNSEEN_ROW - 50),
        "straddle": (D.FIRST_UNSEEN_ROW - 35, D.FIRST_UNSEEN_ROW - 15),
        "below": (D.FIRST_UNSEEN_ROW + 2, 224 - 50),
    }
    for group, (lo, hi) in rows.items():
        canvas = torch.zeros(
            len(idx), 3, 224, 224
        )  # zero = the mean colour after normalization
        for j, t in enumerate(thumbs):
            r = int(torch.randint(lo, hi + 1, (1,), generator=gen))
            c = int(torch.randint(0, 224 - 50 + 1, (1,), generator=gen))
            canvas[j, :, r : r + 50, c : c + 50] = t
        out[group] = (canvas, lab)
    return out


def position_accuracy(
    model: nn.Module,
    profile: str | Profile | None = None,
    n: int | None = None,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Top-1 accuracy on each group of :func:`position_sets` (``above``, ``straddle``,
    ``below``). A walled model is at chance (``1 / classes``) on ``below``."""
    sets = position_sets(
        profile, n=n, num_classes=int(getattr(model, "num_classes", 0)) or None
    )
    return {
        g: evaluate_accuracy(model, x, y, device=device)[0]
        for g, (x, y) in sets.items()
    }


#: Top rows of :func:`accuracy_by_row`: from the top of the image to below the wall, densest
#: around it (the wall's own row included).
DEFAULT_TOP_ROWS = tuple(
    sorted({0, 40, 80, 120, 140, 155, 165, D.FIRST_UNSEEN_ROW, 175, 185})
)


@torch.no_grad()
def accuracy_by_row(
    model: nn.Module,
    profile: str | Profile | None = None,
    top_rows: tuple[int, ...] = DEFAULT_TOP_ROWS,
    n: int = 60,
    seed: int = 4242,
    device: torch.device | None = None,
) -> list[dict[str, float]]:
    """Accuracy as a function of where the object starts: for each requested top row, ``n``
    images whose (small) object's top edge is at that row or just below it.

    Synthetic world: objects of the training sizes placed with ``placement="top=<row>"`` (shrunk
    when needed to fit between that row and the bottom of the image); real data: validation
    images shrunk to 44x44 and pasted on a mid-grey canvas with their top at the row. An object
    whose top is at the wall's row or lower in the image (``top >= helpers.data.FIRST_UNSEEN_ROW``)
    is entirely behind the wall.

    Returns:
        One dict per row: ``top_row`` (asked), ``mean_top`` (mean actual top row of the painted
        objects), ``hidden`` (share of these objects lying entirely behind the wall),
        ``accuracy``, ``n``.
    """
    prof = get_profile(profile)
    k = int(getattr(model, "num_classes", prof.data.num_classes))
    out = []
    if prof.data.source != "synthetic":
        ds = D.real_dataset(prof, split="val", train=False)
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(ds), generator=gen)[:n].tolist()
        items = [ds[i] for i in idx]
        thumbs = F.interpolate(
            torch.stack([x for x, _ in items]),
            size=(44, 44),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        labels = torch.tensor([int(y) for _, y in items])
    for j, row in enumerate(top_rows):
        if prof.data.source == "synthetic":
            b = D.synthetic_batch(
                n, D.mix_seed(seed, j), num_classes=k, placement=f"top={row}"
            )
            images, labels, tops = b.images, b.labels, b.boxes[:, 0]
        else:
            r = min(int(row), 224 - 44)
            images = torch.zeros(len(idx), 3, 224, 224)
            cols = torch.randint(0, 224 - 44 + 1, (len(idx),), generator=gen)
            for i in range(len(idx)):
                images[i, :, r : r + 44, int(cols[i]) : int(cols[i]) + 44] = thumbs[i]
            tops = torch.full((len(idx),), float(r))
        acc, _ = evaluate_accuracy(model, images, labels, device=device)
        out.append(
            {
                "top_row": float(row),
                "mean_top": float(tops.float().mean()),
                "hidden": float((tops >= D.FIRST_UNSEEN_ROW).float().mean()),
                "accuracy": acc,
                "n": int(labels.shape[0]),
            }
        )
    return out
