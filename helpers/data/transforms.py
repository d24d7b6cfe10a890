"""One tensor convention for every image of the book: ImageNet normalization and the paper's
transforms.

A batch is a float tensor ``(N, 3, 224, 224)`` normalized with the ImageNet mean and standard
deviation (what every model of the book takes): :func:`normalize` makes it from images in
``[0, 1]``, :func:`denormalize` brings it back for display (``helpers.plots`` uses it), and the
torchvision transforms below read image files into it.
"""

from __future__ import annotations

import torch
from torchvision import transforms as T

from ..config import IMAGE_SIZE

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ImageNet mean and standard deviation as ``(1, 3, 1, 1)`` tensors of ``x``'s dtype
    and device."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return mean, std


def _as_rgb_batch(
    images: torch.Tensor, name: str, expected: str
) -> tuple[torch.Tensor, bool]:
    """``(batch, was_single)`` for :func:`normalize` / :func:`denormalize`: ``images`` as a 4-D
    batch and whether it was one image; a clear error for anything but RGB images."""
    if (
        not isinstance(images, torch.Tensor)
        or images.dim() not in (3, 4)
        or images.shape[-3] != 3
    ):
        raise ValueError(
            f"{name} expects {expected} (N, 3, H, W) or (3, H, W), got "
            f"{getattr(images, 'shape', type(images).__name__)}."
        )
    single = images.dim() == 3
    return (images.unsqueeze(0) if single else images), single


def normalize(images: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalization of images in ``[0, 1]``.

    Args:
        images: ``(N, 3, H, W)`` or ``(3, H, W)`` float tensor, values in ``[0, 1]``.

    Returns:
        A float32 tensor of the same shape, ``(x - mean) / std`` per channel.
    """
    x, single = _as_rgb_batch(images, "normalize", "a float tensor")
    x = x.float()
    mean, std = _stats(x)
    out = x.sub(mean).div_(std)
    return out[0] if single else out


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo :func:`normalize` and clip to ``[0, 1]`` (for display): ``x * std + mean`` per
    channel, computed in float64 for a float64 input (as :func:`helpers.plots.to_display` passes
    it), else in float32.

    Args:
        images: normalized ``(N, 3, H, W)`` or ``(3, H, W)`` tensor.

    Returns:
        A float tensor of the same shape with values in ``[0, 1]``.
    """
    x, single = _as_rgb_batch(images, "denormalize", "a normalized tensor")
    x = x if x.dtype == torch.float64 else x.float()
    mean, std = _stats(x)
    out = (x * std + mean).clamp(0.0, 1.0)
    return out[0] if single else out


def train_transform() -> T.Compose:
    """The paper's training augmentation: ``RandomResizedCrop(224, scale=(0.1, 1), ratio=(0.8,
    1.25))``, horizontal flip, tensor, ImageNet normalization."""
    return T.Compose(
        [
            T.RandomResizedCrop(IMAGE_SIZE, scale=(0.1, 1.0), ratio=(0.8, 1.25)),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def eval_transform(resize: int = IMAGE_SIZE) -> T.Compose:
    """Validation: resize the short side to ``resize`` (224 in the paper's validation, 256 for
    STACK-GEN), centre crop 224, tensor, ImageNet normalization."""
    return T.Compose(
        [
            T.Resize(resize),
            T.CenterCrop(IMAGE_SIZE),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def as_is_transform() -> T.Compose:
    """No resizing: tensor and ImageNet normalization only (the authors' STACK-MIX images,
    stacked at 224x224 already, so that the wall stays where it is)."""
    return T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
