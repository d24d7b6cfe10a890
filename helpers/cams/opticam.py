"""Opti-CAM :cite:p:`zhang2023opticam`, which pytorch-grad-cam does not have.

Channel weights ``softmax(u)``, ``u`` optimized with Adam so that the input multiplied by the
min-max normalized, upsampled map maximizes the class logit. The paper's setting (100
iterations, learning rate 0.1) is the default; the ``quick`` profile evaluates with fewer
iterations (``EvalSettings.opticam_iterations``), which ``helpers.evaluate`` records.
:func:`opticam` is the call on its own (with the optimization's diagnostics);
:func:`run_opticam` is the runner :func:`helpers.cams.compute_cams` uses on its shared pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import progress as bar
from .shared_pass import (SharedPass, check_images, check_model, device_of, dtype_of, fast_layout,
                          inference_state, resolve_targets)


def opticam(model: nn.Module, images: torch.Tensor, targets: Any = None, *,
            target_layer: nn.Module | None = None, iterations: int = 100, lr: float = 0.1,
            activations: torch.Tensor | None = None, progress: bool = False
            ) -> tuple[np.ndarray, dict[str, Any]]:
    """Opti-CAM :cite:p:`zhang2023opticam`: channel weights optimized for the masked logit.

    With ``A`` the (ReLU'd) target-layer activations of an image ``x`` and ``c`` its class,
    the map is ``S(u) = sum_k softmax(u)_k A^k``; ``u`` (one number per channel, initialized
    to a constant, i.e. uniform weights) is optimized with Adam (``lr``) for ``iterations``
    steps to maximize ``y_c(x * n(up(S(u))))``, where ``up`` is bilinear upsampling to the
    input (half-pixel centres) and ``n`` min-max normalization per image (the flat map, whose
    range is 0, is mapped to 0 instead of 0/0). The paper's default: 100 iterations, lr 0.1.
    The images of a batch are optimized together (independent variables, a summed objective,
    and Adam is per coordinate: the same as one at a time).

    Args:
        model: a classifier in eval mode (it is put in eval mode for the call).
        images: ``(N, C, H, W)`` normalized images.
        targets: classes to explain (default: the top class), see :func:`resolve_targets`.
        target_layer: default ``model.target_layer``.
        iterations: Adam steps (0 gives uniform weights: the mean of the channels).
        lr: Adam's learning rate.
        activations: the target layer's activations if already computed, ``(N, K, h, w)``.
        progress: show a progress bar over the iterations.

    Returns:
        ``(signed, info)``: the maps ``S(u*)`` at the target layer's resolution ``(N, h, w)``
        (non-negative), and ``{"weights": (N, K) softmax(u*), "initial_score",
        "final_score", "logit": (N,) arrays, "targets", "iterations", "lr"}``.
    """
    images = check_images(images)
    target_layer = check_model(model, target_layer)
    if target_layer is None:
        raise ValueError("model has no target_layer attribute; pass target_layer=<a conv layer>.")
    if not isinstance(iterations, (int, np.integer)) or iterations < 0:
        raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}.")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}.")
    device, dtype = device_of(model), dtype_of(model)
    x = images.to(device=device, dtype=dtype)
    tgt = resolve_targets(targets, x.shape[0])
    with inference_state(model):
        if activations is None:
            ps = SharedPass(model, x, target_layer, tgt, keep_graph=False)
            activations, tgt = ps.a.detach(), ps.targets
            logit = ps.target_logits().detach()
        else:
            with torch.no_grad():
                out = model(x)
            tgt = out.argmax(dim=1) if tgt is None else tgt.to(device)
            logit = out.gather(1, tgt[:, None])[:, 0]
        return _opticam_loop(model, x, activations, tgt.to(device), logit, iterations, lr, progress)


def _opticam_loop(model, x, activations, targets, logit, iterations, lr, progress):
    """Adam on ``u`` for ``iterations`` steps; returns the maps ``(N, h, w)`` and the info
    dict of :func:`opticam`."""
    feats = torch.relu(activations.detach().float()).to(x.dtype)
    n, channels = feats.shape[:2]
    size = x.shape[-2:]
    xl = fast_layout(x)
    u = torch.full((n, channels), 0.5, device=x.device, dtype=torch.float32, requires_grad=True)
    optimizer = torch.optim.Adam([u], lr=lr)

    def masked_score(weights_u):
        w = torch.softmax(weights_u, dim=1).to(x.dtype)
        s = (w[:, :, None, None] * feats).sum(dim=1, keepdim=True)
        up = F.interpolate(s, size=size, mode="bilinear", align_corners=False)
        lo = up.amin(dim=(2, 3), keepdim=True)
        hi = up.amax(dim=(2, 3), keepdim=True)
        mask = (up - lo) / (hi - lo).clamp_min(torch.finfo(up.dtype).tiny)
        out = model(fast_layout(xl * mask))
        return out.gather(1, targets[:, None])[:, 0]

    with torch.enable_grad():
        steps = range(int(iterations))
        if progress:
            steps = bar(steps, desc="Opti-CAM", leave=False)
        initial = None
        for _ in steps:
            score = masked_score(u)
            if initial is None:
                initial = score.detach()
            optimizer.zero_grad()
            (-score.sum()).backward()
            optimizer.step()
    with torch.no_grad():
        final = masked_score(u)
        if initial is None:
            initial = final
        weights = torch.softmax(u.detach(), dim=1)
        signed = (weights.to(feats.dtype)[:, :, None, None] * feats).sum(dim=1)
    info = {"weights": weights.cpu().numpy(), "initial_score": initial.float().cpu().numpy(),
            "final_score": final.float().cpu().numpy(), "logit": logit.float().cpu().numpy(),
            "targets": targets.cpu().numpy(), "iterations": int(iterations), "lr": float(lr)}
    return signed.float().cpu().numpy(), info


def run_opticam(ps: SharedPass, iterations: int = 100, lr: float = 0.1, **_opts):
    """The runner of Opti-CAM on a shared pass (options ``iterations``, ``lr``)."""
    signed, info = _opticam_loop(ps.model, ps.x, ps.a.detach(), ps.targets, ps.target_logits().detach(),
                                 iterations, lr, False)
    return signed, {k: info[k] for k in ("iterations", "lr", "initial_score", "final_score", "logit")}

