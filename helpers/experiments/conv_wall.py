"""Question 2 of chapter 07: the wall moved from the dense weights to the activations.

The paper's dense-walled rVGG and its two conv-walled twins (:mod:`helpers.models.conv_walled`: the
activations zeroed after or at the CAM target layer; same weights, same function):
:func:`conv_wall_prediction` says what each method must show behind such a wall, and
:func:`conv_wall_comparison` measures it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..cams import get_method
from ..models import RVGG, conv_walled_from
from .methods import check_images, measure_methods, summary_rows

__all__ = ["conv_wall_prediction", "conv_wall_comparison"]


#: Methods whose map is a *centred* projection of the channels (principal directions after
#: removing each channel's mean) or a kernel projection: an all-zero activation vector is sent
#: to a constant, not to zero.
_CONSTANT_BEHIND = {
    "eigencam": "projection of the centred activations: a zero vector goes to -mean . v, a constant",
    "eigengradcam": "projection of the centred products G*A: zero goes to a constant",
    "segeigencam": "projection of the centred products |G|*A: zero goes to a constant",
    "kpcacam": "kernel projection: k(0, a_i) is not zero (sigmoid kernel), so zero goes to a constant",
}


def conv_wall_prediction(method: str, placement: str) -> tuple[str, str]:
    """What a method must show behind the wall when the wall zeroes the activations.

    Args:
        method: a registry key.
        placement: ``"dense"`` (the paper's wall), ``"after"`` or ``"at"`` the CAM target layer.

    Returns:
        ``(prediction, reason)`` with ``prediction`` one of ``"as the dense wall"``,
        ``"zero"`` (the 14x14 map is exactly zero on the hidden rows) and ``"constant"`` (a
        constant on the hidden rows, which leaks when positive).
    """
    m = get_method(method)
    if placement not in ("dense", "after", "at"):
        raise ValueError(
            f"placement must be 'dense', 'after' or 'at', got {placement!r}."
        )
    if placement in ("dense", "after"):
        return (
            "as the dense wall",
            "the target layer's activations and gradients are those of "
            "the dense-walled model (same weights, same function)",
        )
    if m.signal == "all layers":
        return (
            "as the dense wall",
            "FullGrad does not read the target layer; it reads the "
            "input gradient and the bias gradients of every layer, which the wall's placement "
            "does not change",
        )
    if m.key in _CONSTANT_BEHIND:
        return ("constant", _CONSTANT_BEHIND[m.key])
    return (
        "zero",
        "the map is a position-wise combination sum_k w_k(s) A^k(s) of the activations, "
        "and A(s) = 0 behind the wall",
    )


def conv_wall_comparison(
    walled: RVGG,
    images: torch.Tensor,
    methods: Sequence[str],
    batch_size: int = 25,
    keep_maps: int = 1,
) -> dict[str, Any]:
    """The paper's dense-walled rVGG and its two conv-walled twins (same weights) on the same
    images: logits, and every method's maps.

    Args:
        walled: a trained dense-walled rVGG.
        images: ``(N, 3, 224, 224)`` stacked images.
        methods: registry keys.
        batch_size, keep_maps: as in :func:`measure_methods`.

    Returns:
        ``{"logit_max_diff": {variant: float}, "rows": [...], "measured": {variant: {method: ...}},
        "variants": [...]}``; each row has ``variant``, ``method``, ``mu_mean``, ``mu_std``,
        ``zero_mean``, ``hidden_map_zero_share``, ``prediction``, ``reason``.
    """
    images = check_images(images)
    variants: dict[str, nn.Module] = {
        "dense": walled.eval(),
        "after": conv_walled_from(walled, "after"),
        "at": conv_walled_from(walled, "at"),
    }
    param = next(walled.parameters())
    with torch.no_grad():
        x = images[: min(len(images), 8)].to(param.device, param.dtype)
        ref = walled(x)
        diffs = {name: float((m(x) - ref).abs().max()) for name, m in variants.items()}
    measured, rows = {}, []
    for name, model in variants.items():
        measured[name] = measure_methods(
            model, images, methods, batch_size=batch_size, keep_maps=keep_maps
        )
        for row in summary_rows(measured[name], variant=name):
            row["prediction"], row["reason"] = conv_wall_prediction(row["method"], name)
            rows.append(row)
    return {
        "variants": list(variants),
        "logit_max_diff": diffs,
        "rows": rows,
        "measured": measured,
    }
