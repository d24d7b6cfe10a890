"""FullGrad :cite:p:`srinivas2019fullgrad`, as pytorch-grad-cam computes it, in torch.

FullGrad has no target layer: it explains the logit with the input gradient and the gradients
of *every* convolution (and batch-norm) bias, the "full-gradient" decomposition
``y = grad_x y . x + sum_l grad_{b_l} y . b_l``. As in pytorch-grad-cam, each term
``|x * grad_x y|`` and ``|b_{l,c} * grad_{z_{l,c}} y|`` (``z`` the layer's output *before* its
ReLU) is min-max scaled per channel, upsampled to the input, summed over channels and layers,
and min-max scaled once more; the dense layers' biases have no spatial extent and are left out
(as in the paper and the library). Our version computes the same sum in torch (one upsampling
per layer, by linearity), without parameter gradients.

Its map is born at the input's resolution, so for it ``signed == low == upsampled`` is the
sum of its terms before the final min-max (:func:`helpers.cams.postprocess`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .shared_pass import checked_targets


def fullgrad_maps(
    model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None
) -> tuple[np.ndarray, torch.Tensor, dict]:
    """FullGrad's maps ``(N, H, W)``, the classes explained, and ``{"bias_layers"}`` (see the
    module docstring)."""
    layers = [
        m
        for m in model.modules()
        if type(m) in (nn.Conv2d, nn.BatchNorm2d) and m.bias is not None
    ]
    biases = []
    for m in layers:
        if isinstance(m, nn.BatchNorm2d):
            b = (
                -(m.running_mean * m.weight / torch.sqrt(m.running_var + m.eps))
                + m.bias
            )
        else:
            b = m.bias
        biases.append(b.detach())
    grads: list[torch.Tensor | None] = [None] * len(layers)
    handles = []

    def make_hook(j):
        def fwd(_m, _i, out):
            if isinstance(out, torch.Tensor) and out.requires_grad:
                # A tensor hook registered before an in-place ReLU receives the gradient of
                # the layer's output *before* the ReLU, as FullGrad needs.
                out.register_hook(lambda g, j=j: grads.__setitem__(j, g.detach()))

        return fwd

    for j, m in enumerate(layers):
        handles.append(m.register_forward_hook(make_hook(j)))
    xg = x.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            logits = model(xg)
            targets = checked_targets(targets, logits)
            y = logits.gather(1, targets[:, None]).sum()
            (gx,) = torch.autograd.grad(y, xg)
    finally:
        for h in handles:
            h.remove()
    height, width = x.shape[-2:]

    def channel_scaled(t: torch.Tensor) -> torch.Tensor:
        # scale_cam_image per (image, channel): (m - min) / (1e-7 + max(m - min))
        flat = t.reshape(t.shape[0], t.shape[1], -1)
        flat = flat - flat.min(dim=2, keepdim=True).values
        flat = flat / (1e-7 + flat.max(dim=2, keepdim=True).values)
        return flat.reshape(t.shape)

    total = channel_scaled((gx * x).abs().float()).sum(dim=1, keepdim=True)
    used = 0
    for b, g in zip(biases, grads):
        if g is None:
            continue
        used += 1
        term = channel_scaled((b[None, :, None, None] * g).abs().float()).sum(
            dim=1, keepdim=True
        )
        if term.shape[-2:] != (height, width):
            term = F.interpolate(
                term, size=(height, width), mode="bilinear", align_corners=False
            )
        total = total + term
    return total[:, 0].cpu().numpy(), targets, {"bias_layers": used}
