"""Finer-CAM :cite:p:`zhang2025finercam`: GradCAM of a contrast between the explained class
and the classes closest to it.

The objective is ``sum_j p_j (y_c - y_j) / sum_j p_j`` over the ``n_compare`` classes ``j``
whose logits are closest to ``y_c`` (``p`` the softmax probabilities), built with
pytorch-grad-cam's ``FinerWeightedTarget``; its gradient at the target layer goes through the
library's GradCAM formula.
"""

from __future__ import annotations

import numpy as np
import torch

from .library import library_formula
from .shared_pass import SharedPass


def _finer_targets(
    logits: torch.Tensor, targets: torch.Tensor, n_compare: int = 3, alpha: float = 1.0
) -> list:
    """Finer-CAM's targets: the explained class against the ``n_compare`` classes whose
    logits are closest to its own, as pytorch-grad-cam's ``FinerCAM`` chooses them for the top
    class. (Given explicit targets, the library's ``FinerCAM`` uses them as plain logits, i.e.
    becomes GradCAM; here an explicit class is contrasted with its closest classes too.)"""
    # deferred: importing pytorch-grad-cam is heavy (see helpers.cams.library)
    from pytorch_grad_cam.utils.model_targets import FinerWeightedTarget

    data = logits.detach().float().cpu().numpy()
    out = []
    for i, t in enumerate(targets.tolist()):
        order = np.argsort(np.abs(data[i] - data[i, t]), kind="stable")
        others = [int(j) for j in order if int(j) != t][:n_compare]
        out.append(FinerWeightedTarget(int(t), others, alpha))
    return out


def run_finercam(ps: SharedPass, alpha: float = 1.0, n_compare: int = 3, **_opts):
    """The runner of Finer-CAM (options ``alpha``, ``n_compare``)."""
    finer = _finer_targets(ps.logits, ps.targets, n_compare, alpha)
    objective = sum(target(out) for target, out in zip(finer, ps.logits))
    g = ps.grad_of(objective).detach().float().cpu().numpy()
    obj = library_formula("GradCAM")
    return obj.get_cam_image(None, None, None, ps.A, g, False), {
        "comparison": [t.comparison_categories for t in finer]
    }
