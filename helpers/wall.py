"""The wall: which input rows a model provably cannot see, and checks of it.

Two independent computations of the same set:

* :func:`unseen_rows` -- structural: the map rows the head reads (from the wall's mask),
  pushed back through the convolutions and poolings by receptive-field arithmetic;
* :func:`unseen_rows_by_gradient` -- empirical: the rows where the input gradient of the logits
  is non-zero for some random input (its complement is a superset of the unseen rows, and
  equals them as soon as enough inputs are tried).

And one check a reader can repeat: :func:`perturbation_check` writes anything into the unseen
rows and compares the logits bit for bit.

A wall that is not there where it should be (non-zero weights under it in a state dict loaded
into a walled model) raises :class:`helpers.models.WallError`, a ``ValueError``, like every
other refusal of this module.

Also the geometry of upsampling: :func:`upsampled_zero_rows` tells which image rows of a
bilinearly upsampled map are exactly zero when some map rows are zero (HiResCAM's blind band;
:mod:`helpers.geometry` holds rVGG's numbers).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .config import IMAGE_SIZE
from .models import WalledLinear, WallError
from .receptive_field import RowSpan, input_rows_reaching, receptive_field

__all__ = [
    "WallError",
    "RowSpan",
    "visible_map_rows",
    "input_rows_reaching",
    "receptive_field",
    "unseen_rows",
    "unseen_rows_by_gradient",
    "perturbation_check",
    "upsampled_zero_rows",
    "unseen_share",
]


def visible_map_rows(model: nn.Module) -> np.ndarray:
    """The rows of the CAM target layer's map that the model's head reads.

    Uses ``model.visible_map_rows()`` when the model defines it; otherwise the model must be an
    rVGG-like network whose ``classifier[0]`` is a ``WalledLinear`` (rows with any unmasked
    input) or a plain ``nn.Linear`` (every row).
    """
    if hasattr(model, "visible_map_rows"):
        return np.asarray(model.visible_map_rows(), dtype=int)
    first = model.classifier[0] if hasattr(model, "classifier") else None
    if first is None or not isinstance(first, nn.Linear):
        raise ValueError(
            f"{type(model).__name__} has no classifier[0] Linear layer and no visible_map_rows(); "
            "cannot tell which map rows its head reads."
        )
    channels = int(model.map_channels)
    side = int(round((first.in_features / channels) ** 0.5))
    if channels * side * side != first.in_features:
        raise ValueError(
            f"first dense layer reads {first.in_features} inputs, not {channels}*side^2."
        )
    if isinstance(first, WalledLinear):
        mask = first.mask.view(channels, side, side)
        return np.flatnonzero((mask != 0).any(dim=(0, 2)).cpu().numpy())
    return np.arange(side)


def unseen_rows(model: nn.Module, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """The exact input rows the model's output cannot depend on (sorted, 0-indexed).

    Structural: the visible map rows (:func:`visible_map_rows`) pushed back through
    ``model.features`` (or ``model.unseen_rows(image_size)`` when the model defines its own).
    For rVGG the rows are the same at any width (:func:`helpers.geometry.rvgg_geometry`'s
    ``unseen_rows``).

    Raises:
        ValueError: for an image size other than the model's (the geometry is that of 224).
    """
    if hasattr(model, "unseen_rows"):
        return np.asarray(model.unseen_rows(image_size), dtype=int)
    expected = getattr(model, "image_size", image_size)
    if image_size != expected:
        raise ValueError(
            f"{type(model).__name__} is defined for {expected}x{expected} inputs, got "
            f"image_size={image_size}."
        )
    seen = input_rows_reaching(
        list(model.features), visible_map_rows(model), image_size
    )
    return np.setdiff1d(np.arange(image_size), seen)


def unseen_rows_by_gradient(
    model: nn.Module,
    image_size: int = IMAGE_SIZE,
    channels: int = 3,
    n_inputs: int = 4,
    seed: int = 0,
) -> np.ndarray:
    """Rows where the input gradient of every logit is exactly zero for ``n_inputs`` random inputs.

    An independent, empirical check of :func:`unseen_rows`: each row returned here received no
    gradient from any logit on any of the inputs. (With too few inputs a visible row could be
    missed by chance, so the result is a superset of the truly unseen rows.) Eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    support = torch.zeros(image_size, dtype=torch.bool)
    try:
        for _ in range(n_inputs):
            x = torch.randn(1, channels, image_size, image_size, generator=gen).to(
                param.device, param.dtype
            )
            x.requires_grad_(True)
            logits = model(x)
            # Random signs on the logits: a single backward that covers every class.
            w = torch.randn(logits.shape, generator=gen).to(logits.device, logits.dtype)
            (grad,) = torch.autograd.grad((logits * w).sum(), x)
            support |= (grad.abs().sum(dim=(0, 1, 3)) > 0).cpu()
    finally:
        model.train(was_training)
    return np.flatnonzero(~support.numpy())


@torch.no_grad()
def perturbation_check(
    model: nn.Module,
    images: torch.Tensor,
    rows: Sequence[int] | None = None,
    fill: str | float = "noise",
    seed: int = 0,
) -> dict[str, float]:
    """Overwrite ``rows`` (default: :func:`unseen_rows`) of ``images`` and compare logits.

    ``fill``: ``"noise"`` (large Gaussian noise), ``"swap"`` (the rows of another image of the
    batch), or a number. Returns ``max_abs_diff`` of the logits (0.0 means bit-identical),
    ``identical`` (1.0 or 0.0) and ``max_abs_input_change``. Eval mode.
    """
    if rows is None:
        rows = unseen_rows(model, images.shape[-1])
    rows = torch.as_tensor(np.asarray(rows, dtype=np.int64))
    was_training = model.training
    model.eval()
    try:
        changed = images.clone()
        if fill == "noise":
            gen = torch.Generator().manual_seed(seed)
            noise = 10 * torch.randn(changed[:, :, rows].shape, generator=gen)
            changed[:, :, rows] = noise.to(changed.device, changed.dtype)
        elif fill == "swap":
            changed[:, :, rows] = images.roll(1, dims=0)[:, :, rows]
        elif isinstance(fill, (int, float)):
            changed[:, :, rows] = float(fill)
        else:
            raise ValueError(f"fill must be 'noise', 'swap' or a number, got {fill!r}.")
        a, b = model(images), model(changed)
    finally:
        model.train(was_training)
    diff = float((a - b).abs().max())
    return {
        "max_abs_diff": diff,
        "identical": float(torch.equal(a, b)),
        "max_abs_input_change": float((changed - images).abs().max()),
    }


def upsampled_zero_rows(
    zero_map_rows: Iterable[int], map_size: int = 14, image_size: int = IMAGE_SIZE
) -> np.ndarray:
    """Image rows that are exactly zero after bilinear upsampling (half-pixel centres, as
    ``cv2.resize`` and ``torch.nn.functional.interpolate(align_corners=False)`` do) of a map
    whose rows ``zero_map_rows`` are zero -- whatever the other rows hold.

    Output row ``y`` samples the map at ``(y + 0.5) * map_size / image_size - 0.5`` (clamped to
    the map), i.e. it mixes the two map rows around that point (one at the borders). It is
    zero for sure only when every row it mixes is a zero row. For rVGG and an element-wise
    method: :func:`helpers.geometry.rvgg_geometry`'s ``zero_rows``.
    """
    zero = np.zeros(map_size, dtype=bool)
    for r in zero_map_rows:
        zero[int(r)] = True
    out = []
    scale = map_size / image_size
    for y in range(image_size):
        src = (y + 0.5) * scale - 0.5
        src = min(max(src, 0.0), map_size - 1.0)
        lo = int(np.floor(src))
        hi = min(lo + 1, map_size - 1)
        frac = src - lo
        used = [lo] + ([hi] if frac > 0 else [])
        if all(zero[r] for r in used):
            out.append(y)
    return np.asarray(out, dtype=int)


def unseen_share(rows: Sequence[int], image_size: int = IMAGE_SIZE) -> float:
    """Fraction of the image's rows in ``rows`` (rVGG's: ``rvgg_geometry().unseen_share``)."""
    return len(np.unique(np.asarray(rows))) / image_size
