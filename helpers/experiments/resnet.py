"""Question 4 of chapter 07: a small ResNet whose average pool is walled.

The model is trained (or read from the cache) by :func:`helpers.train.train_or_load_resnet`;
:func:`resnet_report` finds its unseen rows three ways and measures every method, and
:func:`gap_gradcam_identity` checks that for such a head GradCAM *is* the class activation map
of the whole map, hidden rows included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import wall
from ..cams import compute_cams
from ..config import MAP_SIZE
from ..models import WalledResNet
from .methods import check_images, measure_methods, summary_rows

__all__ = ["gap_gradcam_identity", "resnet_report"]


def gap_gradcam_identity(
    model: WalledResNet, images: torch.Tensor, targets: Any = None
) -> dict[str, float]:
    """Check that, for a walled-average-pool head, GradCAM and HiResCAM are the *class activation
    map* of Zhou et al. (``CAM_c(s) = sum_k w_ck A^k(s)``), GradCAM over the whole map and HiResCAM
    over the visible rows only.

    With ``y_c = sum_k w_ck mean_{s in V} A^k(s) + b_c`` (``V`` the visible positions), the
    gradient is ``G^k(s) = w_ck / |V|`` on ``V`` and 0 elsewhere, so GradCAM's weight is
    ``alpha_k = w_ck / 196`` and GradCAM ``= ReLU(CAM_c) / 196`` on *every* position, while
    HiResCAM ``= ReLU(CAM_c) / |V|`` on ``V`` and 0 behind the wall.

    Returns:
        ``{"gradcam_max_abs_diff", "hirescam_max_abs_diff", "scale"}``: the largest differences
        between the library's 14x14 maps (:func:`helpers.cams.compute_cams`, ``low``) and the
        formulas, and the largest map value (for scale).
    """
    if not isinstance(model, WalledResNet):
        raise TypeError(f"expected a WalledResNet, got {type(model).__name__}.")
    images = check_images(images)
    res = compute_cams(model, images, ["gradcam", "hirescam"], targets)
    tg = torch.as_tensor(res["gradcam"].targets)
    param = next(model.parameters())
    with torch.no_grad():
        a = model.features(images.to(param.device, param.dtype)).float().cpu()
    w = model.fc.weight.detach().float().cpu()[tg]  # (N, C)
    cam = torch.einsum("nk,nkhw->nhw", w, a).clamp(min=0).numpy()
    n_visible = len(model.visible_map_rows()) * MAP_SIZE
    grad_formula = cam / (MAP_SIZE * MAP_SIZE)
    hires_formula = cam / n_visible
    hires_formula[:, len(model.visible_map_rows()) :, :] = 0.0
    return {
        "gradcam_max_abs_diff": float(np.abs(res["gradcam"].low - grad_formula).max()),
        "hirescam_max_abs_diff": float(
            np.abs(res["hirescam"].low - hires_formula).max()
        ),
        "scale": float(max(np.abs(grad_formula).max(), np.abs(hires_formula).max())),
    }


def resnet_report(
    model: WalledResNet,
    images: torch.Tensor,
    methods: Sequence[str],
    batch_size: int = 25,
    keep_maps: int = 1,
    n_gradient_inputs: int = 4,
) -> dict[str, Any]:
    """The walled ResNet: its unseen rows three ways, and mu per method.

    Returns:
        ``{"unseen_rows": array, "unseen_rows_by_gradient": array, "perturbation": dict,
        "rows": [...], "measured": {...}, "identity": gap_gradcam_identity(...)}``.
    """
    images = check_images(images)
    unseen = wall.unseen_rows(model)
    by_grad = wall.unseen_rows_by_gradient(model, n_inputs=n_gradient_inputs)
    pert = wall.perturbation_check(model, images[: min(8, len(images))], rows=unseen)
    measured = measure_methods(
        model, images, methods, rows=unseen, batch_size=batch_size, keep_maps=keep_maps
    )
    return {
        "unseen_rows": unseen,
        "unseen_rows_by_gradient": by_grad,
        "perturbation": pert,
        "rows": summary_rows(measured),
        "measured": measured,
        "identity": gap_gradcam_identity(model, images[: min(8, len(images))]),
    }
