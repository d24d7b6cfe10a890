"""Question 5 of chapter 07: the theory model with more than one dense layer.

The paper's theory model has one dense layer; :func:`deep_gradcam_monte_carlo` gives it ``L``
(``L - 1`` hidden ReLU layers) at Gaussian initialization and measures GradCAM by Monte Carlo,
for a fixed class and for the top class, without building the big first layer
(:func:`deep_gradcam_reduced`). :func:`twin_digit_image` puts the same digit in front of and
behind the wall.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import progress

__all__ = [
    "twin_digit_image",
    "patches",
    "deep_gradcam_reduced",
    "deep_gradcam_monte_carlo",
]

_T_IN, _T_MAP, _T_POOL = 29, 28, 14


def twin_digit_image(digit: torch.Tensor) -> torch.Tensor:
    """A 29x29 image with the same digit, squashed to 14 rows, above and below the theory
    model's wall: row 0 and the right column are zero (the padding of the theory chapter),
    rows 1..14 and rows 15..28 hold the same 14x28 picture (its last row set to zero).

    Every 2x2 patch under map position ``(r, c)`` (``r`` in 0..13, in front of the wall) is then
    identical to the patch under ``(r + 14, c)`` (behind it).

    Args:
        digit: ``(28, 28)``, ``(1, 28, 28)``, ``(29, 29)`` or ``(1, 1, 29, 29)``; a 29x29 image is
            taken as a padded 28x28 digit (rows 1..28, columns 0..27).

    Returns:
        ``(1, 1, 29, 29)`` float32.
    """
    t = torch.as_tensor(digit, dtype=torch.float32)
    if tuple(t.shape[-2:]) == (_T_IN, _T_IN):
        t = t.reshape(_T_IN, _T_IN)[1:, :_T_MAP]
    elif tuple(t.shape[-2:]) == (_T_MAP, _T_MAP):
        t = t.reshape(_T_MAP, _T_MAP)
    else:
        raise ValueError(
            f"expected a 28x28 digit or a 29x29 padded one, got shape {tuple(t.shape)}."
        )
    half = F.interpolate(
        t[None, None],
        size=(_T_POOL, _T_MAP),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )[0, 0]
    half[-1] = 0.0
    out = torch.zeros(_T_IN, _T_IN)
    out[1 : 1 + _T_POOL, :_T_MAP] = half
    out[1 + _T_POOL :, :_T_MAP] = half
    return out.view(1, 1, _T_IN, _T_IN)


def patches(image: torch.Tensor) -> torch.Tensor:
    """``(784, 4)`` 2x2 patches of a ``(1, 1, 29, 29)`` image, in the order of ``Conv2d``'s
    weight ``(V, 1, 2, 2)`` flattened."""
    return F.unfold(image.float(), kernel_size=2).squeeze(0).T.contiguous()


def deep_gradcam_reduced(
    conv_w: torch.Tensor,
    patches: torch.Tensor,
    Q: torch.Tensor,
    h1: torch.Tensor,
    layers: Sequence[torch.Tensor],
    target: str | int = "top",
    acts: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw GradCAM of a batch of deep theory models from the few numbers it depends on.

    The model: ``A = ReLU(conv(x))`` (``V`` 2x2 filters, 28x28 maps, the target layer) -> 2x2
    max-pool -> first dense layer ``W_1`` (masked behind the wall) -> ``ReLU`` -> ``W_2`` ->
    ... -> ``W_L`` (logits). Since every 2x2 pooling window routes its gradient to exactly one
    position, GradCAM's channel weight is ``alpha_v = (1/784) sum_{visible windows t}
    dy/dP_v(t) = (1/784) (Q^T delta_1)_v`` with ``Q = W_1 M`` (``M`` sums each channel's visible
    windows) and ``delta_1 = dy/dh_1``; and ``h_1 = W_1 p`` (``p`` the visible pooled features).
    So GradCAM needs ``W_1`` only through ``Q`` and ``h_1``.

    Args:
        conv_w: ``(B, V, 4)`` filters of ``B`` models.
        patches: ``(784, 4)`` (:func:`patches`).
        Q: ``(B, H_1, V)``; h1: ``(B, H_1)``: ``W_1 M`` and ``W_1 p``.
        layers: ``[W_2, ..., W_L]``, each ``(B, H_out, H_in)`` (empty for ``L = 1``).
        target: ``"top"`` (each model's top class) or a class index.
        acts: ``(B, V, 784)`` activations ``ReLU(conv_w . patches)`` when already computed.

    Returns:
        ``(cam, classes)``: ``(B, 784)`` raw GradCAM (ReLU, no scaling) and ``(B,)`` the classes.
    """
    if acts is None:
        acts = torch.relu(torch.einsum("bvk,sk->bvs", conv_w, patches))  # (B, V, 784)
    pre = [h1]
    a = h1
    for W in layers:
        a = torch.relu(a)
        a = torch.einsum("boi,bi->bo", W, a)
        pre.append(a)
    logits = pre[-1]
    if target == "top":
        classes = logits.argmax(dim=1)
    else:
        classes = torch.full((logits.shape[0],), int(target), dtype=torch.long)
    delta = F.one_hot(classes, logits.shape[1]).to(logits.dtype)
    for W, h_prev in zip(reversed(layers), reversed(pre[:-1])):
        delta = torch.einsum("boi,bo->bi", W, delta) * (h_prev > 0).to(delta.dtype)
    alpha = torch.einsum("bjv,bj->bv", Q, delta) / (_T_MAP * _T_MAP)
    cam = torch.relu(torch.einsum("bv,bvs->bs", alpha, acts))
    return cam, classes


def deep_gradcam_monte_carlo(
    image: torch.Tensor,
    depth: int,
    target: str | int = 0,
    filters: int = 256,
    hidden: int = 256,
    num_classes: int = 10,
    hidden_rows: int = 7,
    n_models: int = 2000,
    seed: int = 0,
    batch: int = 25,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Monte Carlo of the raw GradCAM of the theory model with ``depth`` dense layers at
    Gaussian initialization (every weight ``N(0, 1)``), on one 29x29 image.

    ``depth = 1`` is the paper's model (one dense layer ``V*196 -> classes``); ``depth = L``
    adds ``L - 1`` hidden layers of ``hidden`` ReLU units. The wall is in the first dense
    layer (the lower ``hidden_rows`` of the 14 pooled rows).

    Exact sampling without the big first layer: each row ``w_j`` of ``W_1`` (restricted to the
    visible inputs) is ``N(0, I)``, so ``(Q_j, h_{1,j}) = (w_j M, w_j . p)`` is Gaussian with
    ``Q_j ~ N(0, n I_V)`` (``n`` = visible windows per channel) and ``h_{1,j} | Q_j ~ N(Q_j . m / n,
    |p|^2 - |m|^2 / n)`` (``m_v`` = channel ``v``'s sum of visible pooled features). The tests
    compare :func:`deep_gradcam_reduced` with autograd on explicit models.

    Args:
        image: ``(1, 1, 29, 29)`` (or ``(29, 29)``).
        depth: number of dense layers ``L >= 1``.
        target: ``"top"`` or a class index (the fixed class).
        filters, hidden, num_classes, hidden_rows: the model.
        n_models, seed, batch: Monte Carlo size, seed, models per vectorized batch.

    Returns:
        ``{"mean", "sem", "positive" (P[GradCAM(s) > 0]), "ratio" (mean / patch norm, NaN where
        the patch is zero)}`` as ``(28, 28)`` arrays, and ``"half_max_abs_diff"`` (largest
        ``|GradCAM(r, c) - GradCAM(r + 14, c)|`` over all models: 0 for a
        :func:`twin_digit_image`), ``depth``, ``target``, ``n_models``, ``seconds``.
    """
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(
            f"depth must be an integer >= 1 (number of dense layers), got {depth!r}."
        )
    if target != "top" and not (
        isinstance(target, (int, np.integer)) and 0 <= target < num_classes
    ):
        raise ValueError(
            f"target must be 'top' or a class index in 0..{num_classes - 1}, got {target!r}."
        )
    if not 0 <= hidden_rows < _T_POOL:
        raise ValueError(f"hidden_rows must be in 0..{_T_POOL - 1}, got {hidden_rows}.")
    if n_models < 2:
        raise ValueError(f"n_models must be >= 2, got {n_models}.")
    x = torch.as_tensor(image, dtype=torch.float32).reshape(1, 1, _T_IN, _T_IN)
    windows = patches(x)
    pnorm = windows.norm(dim=1).view(_T_MAP, _T_MAP).double()
    gen = torch.Generator().manual_seed(int(seed))
    n_vis = (_T_POOL - hidden_rows) * _T_POOL
    h1_width = num_classes if depth == 1 else hidden
    widths = [h1_width] + [hidden] * (depth - 2) + ([num_classes] if depth > 1 else [])
    total = torch.zeros(_T_MAP * _T_MAP, dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    positive = torch.zeros_like(total)
    half_diff = 0.0
    done = 0
    t0 = time.perf_counter()
    bar = progress(
        total=n_models,
        desc=f"deep GradCAM Monte Carlo, L={depth}",
        leave=False,
        disable=not show_progress,
    )
    while done < n_models:
        b = min(batch, n_models - done)
        conv_w = torch.randn(b, filters, 4, generator=gen)
        acts = torch.relu(torch.einsum("bvk,sk->bvs", conv_w, windows))  # (b, V, 784)
        pooled = F.max_pool2d(acts.view(b * filters, 1, _T_MAP, _T_MAP), 2).view(
            b, filters, _T_POOL, _T_POOL
        )
        vis = pooled[:, :, : _T_POOL - hidden_rows, :].reshape(b, filters, -1)
        m = vis.sum(dim=2)  # (b, V)
        pp = (vis**2).sum(dim=(1, 2))  # (b,)
        Q = torch.randn(b, h1_width, filters, generator=gen) * math.sqrt(n_vis)
        resid = torch.clamp(pp - (m**2).sum(dim=1) / n_vis, min=0.0).sqrt()
        h1 = torch.einsum("bjv,bv->bj", Q, m) / n_vis + resid[:, None] * torch.randn(
            b, h1_width, generator=gen
        )
        layers = [
            torch.randn(b, widths[i + 1], widths[i], generator=gen)
            for i in range(depth - 1)
        ]
        cam, _ = deep_gradcam_reduced(conv_w, windows, Q, h1, layers, target, acts=acts)
        cam = cam.double()
        total += cam.sum(0)
        total_sq += (cam**2).sum(0)
        positive += (cam > 0).double().sum(0)
        grid = cam.view(b, _T_MAP, _T_MAP)
        half_diff = max(
            half_diff, float((grid[:, :_T_POOL] - grid[:, _T_POOL:]).abs().max())
        )
        done += b
        bar.update(b)
    bar.close()
    mean = (total / n_models).view(_T_MAP, _T_MAP)
    var = torch.clamp(total_sq.view(_T_MAP, _T_MAP) - n_models * mean**2, min=0.0) / (
        n_models - 1
    )
    ratio = torch.where(
        pnorm > 0, mean / pnorm.clamp(min=1e-30), torch.full_like(mean, float("nan"))
    )
    return {
        "mean": mean.numpy(),
        "sem": (var / n_models).sqrt().numpy(),
        "positive": (positive / n_models).view(_T_MAP, _T_MAP).numpy(),
        "ratio": ratio.numpy(),
        "patch_norm": pnorm.numpy(),
        "half_max_abs_diff": half_diff,
        "depth": int(depth),
        "target": target,
        "n_models": int(n_models),
        "filters": int(filters),
        "hidden": int(hidden),
        "seconds": time.perf_counter() - t0,
    }
