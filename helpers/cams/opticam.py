"""Opti-CAM :cite:p:`zhang2023opticam` as its authors' code computes it (pytorch-grad-cam does
not have it).

The reference is ``Basic_OptCAM`` in ``util.py`` of the authors' repository hanwei0912/OptiCAM
(commit 964ad1491757fbeaafd6b97b8538be814bcfe9ce), run as its demo ``generate_opticam.py`` runs
it: the "plain" loss ``f(x) - f(masked x)`` with ``f`` the class logit, max-min normalization
of the upsampled map, channel weights ``softmax(u)`` with ``u`` initialized to 0.5 and
optimized with Adam, and its early stopping (below). The reference feeds the model images in
``[0, 1]`` through a mean/std layer, so a masked pixel is *black*; our models take
ImageNet-normalized images, so the objective denormalizes (``x * std + mean``, without
:func:`helpers.data.denormalize`'s clip), masks and normalizes again. The objective is the
reference's operations in its order (``u`` of shape ``(N, K, 1, 1)``, its repeat-and-sum, its
``max``/``min`` over the flattened map, whose gradient goes to *one* pixel of a tie): on the
same inputs and kernels it gives the reference's numbers bit for bit
(``tests/test_cams_opticam.py``), which matters because the optimization amplifies any
rounding difference (a tie between two plateaus of the map can send it to another optimum).

**Early stopping, transcribed.** Every ``max(1, iterations // 10)`` steps (the reference's
``step % (max_iter // 10) == 0``, which divides by zero below 10 iterations), the loss of the
step is compared with that of the previous check (the first check with ``1e10``); when it
rose, the optimization stops and returns the map of that step's weights, before its update.
The reference compares the loss *summed over the batch*, so an image's map depends on the
other images of its batch; by default (``stop="image"``) each image stops on its own loss,
which is the reference run on that image alone. ``stop="batch"`` is the reference on the
batch as given.

**Settings.** Default: 100 iterations at learning rate 0.1, the setting this project has
attributed to the paper since the first version of this module (``EvalSettings``, the
results' note "paper: 100, 0.1"). The paper's text was not at hand to check it again when the
reference was transcribed; the reference's demo uses 50 iterations at 0.1 and
``Basic_OptCAM``'s own defaults are 100 at 0.01. The ``quick`` profile uses fewer iterations
(``EvalSettings.opticam_iterations``); :func:`iteration_sweep` shows what that changes.
Every result records ``iterations``, ``lr``, ``stop`` and each image's ``steps``.

:func:`opticam` is the call on its own (with the optimization's diagnostics);
:func:`run_opticam` is the runner :func:`helpers.cams.compute_cams` uses on its shared pass.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import progress as bar
from ..data import IMAGENET_MEAN, IMAGENET_STD
from ..metrics import dead_zone_share
from .shared_pass import (
    SharedPass,
    check_images,
    check_model,
    device_of,
    dtype_of,
    fast_layout,
    inference_state,
    resolve_targets,
)

#: How each image's optimization stops (see the module docstring).
STOP_MODES: tuple[str, ...] = ("image", "batch")

#: The reference's first "previous loss" (``prev = 1e10`` in ``Basic_OptCAM.forward``).
_FIRST_PREV = 1e10


def opticam(
    model: nn.Module,
    images: torch.Tensor,
    targets: Any = None,
    *,
    target_layer: nn.Module | None = None,
    iterations: int = 100,
    lr: float = 0.1,
    stop: str = "image",
    activations: torch.Tensor | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Opti-CAM :cite:p:`zhang2023opticam`: channel weights optimized for the masked logit.

    With ``A`` the ReLU'd target-layer activations of an image ``x`` and ``c`` its class, the
    map is ``S(u) = sum_k softmax(u)_k A^k``; ``u`` (one number per channel, 0.5 at the start:
    uniform weights) is optimized with Adam (``lr``) for at most ``iterations`` steps to
    minimize the reference's "plain" loss ``y_c(x) - y_c(x masked by n(up(S(u))))``, where
    ``up`` is bilinear upsampling to the input (half-pixel centres), ``n`` max-min
    normalization per image (a flat map, whose range is 0, gives 0 instead of 0/0), and
    masking multiplies the ``[0, 1]`` image (a masked pixel is black). Early stopping as in the
    reference (module docstring).

    Args:
        model: a classifier taking ImageNet-normalized RGB images, in eval mode for the call.
        images: ``(N, 3, H, W)`` normalized images.
        targets: classes to explain (default: the top class), see :func:`resolve_targets`.
        target_layer: default ``model.target_layer``.
        iterations: the most Adam steps (0 gives uniform weights: the mean of the channels).
        lr: Adam's learning rate.
        stop: ``"image"`` (each image stops when its own loss rises) or ``"batch"`` (all stop
            when the batch's summed loss rises, as the reference on a batch).
        activations: the target layer's activations if already computed, ``(N, K, h, w)``.
        progress: show a progress bar over the iterations.

    Returns:
        ``(signed, info)``: the maps ``S(u*)`` at the target layer's resolution ``(N, h, w)``
        (non-negative), and ``info`` with the ``(N,)`` arrays ``initial_score`` (masked logit
        with uniform weights), ``final_score`` (with ``u*``), ``logit`` (unmasked), ``steps``
        (Adam steps behind each map), ``stopped`` (whether the loss rose before the last
        iteration), ``weights`` ``(N, K)`` = ``softmax(u*)``, ``targets``, and the settings
        ``iterations``, ``lr``, ``stop``.
    """
    images = check_images(images)
    target_layer = check_model(model, target_layer)
    if target_layer is None:
        raise ValueError(
            "model has no target_layer attribute; pass target_layer=<a conv layer>."
        )
    _check_settings(iterations, lr, stop)
    device, dtype = device_of(model), dtype_of(model)
    x = fast_layout(
        images.to(device=device, dtype=dtype)
    )  # as compute_cams: the same numbers
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
        return _opticam_loop(
            model, x, activations, tgt.to(device), logit, iterations, lr, stop, progress
        )


def _check_settings(iterations: Any, lr: Any, stop: Any) -> None:
    if (
        isinstance(iterations, bool)
        or not isinstance(iterations, (int, np.integer))
        or iterations < 0
    ):
        raise ValueError(
            f"iterations must be a non-negative integer, got {iterations!r}."
        )
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}.")
    if stop not in STOP_MODES:
        raise ValueError(f"stop must be one of {STOP_MODES}, got {stop!r}.")


def imagenet_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ImageNet mean and standard deviation of :func:`helpers.data.normalize`, each
    ``(1, 3, 1, 1)`` in ``x``'s dtype and device; a clear error for images that are not RGB."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(
            f"Opti-CAM masks the image in [0, 1] (a masked pixel is black) and normalizes it "
            f"with the ImageNet mean and std, which needs RGB images (N, 3, H, W); got shape "
            f"{tuple(x.shape)}."
        )
    mean, std = (
        torch.tensor(v, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        for v in (IMAGENET_MEAN, IMAGENET_STD)
    )
    return mean, std


def _opticam_loop(
    model, x, activations, targets, logit, iterations, lr, stop, progress
):
    """Adam on ``u`` with the reference's early stopping; returns the maps ``(N, h, w)`` and
    the info dict of :func:`opticam`."""
    feats = torch.relu(activations.detach().float()).to(x.dtype)
    n, channels = feats.shape[:2]
    size = x.shape[-2:]
    mean, std = imagenet_stats(x)
    image01 = x * std + mean  # helpers.data.denormalize without its clip to [0, 1]
    # u as the reference holds it, (N, K, 1, 1): the same softmax and sums, the same numbers
    u = torch.full(
        (n, channels, 1, 1),
        0.5,
        device=x.device,
        dtype=torch.float32,
        requires_grad=True,
    )
    optimizer = torch.optim.Adam([u], lr=lr)
    logit = logit.detach().float()

    def masked_score(weights_u, idx):
        w = torch.softmax(weights_u, dim=1).to(x.dtype)
        s = (w.repeat(1, 1, *feats.shape[2:]) * feats[idx]).sum(dim=1, keepdim=True)
        up = F.interpolate(s, size=size, mode="bilinear", align_corners=False)
        flat = up.flatten(
            1
        )  # max(dim) as the reference: its gradient goes to one pixel of a tie
        lo = flat.min(dim=1).values[:, None, None, None]
        hi = flat.max(dim=1).values[:, None, None, None]
        mask = (up - lo) / (hi - lo).clamp_min(torch.finfo(up.dtype).tiny)
        out = model(
            fast_layout((mask * image01[idx] - mean) / std)
        )  # mask, then normalize
        return out.gather(1, targets[idx, None])[:, 0].float()

    every = max(1, int(iterations) // 10)
    prev = torch.full((n,), _FIRST_PREV, device=x.device)
    active = torch.arange(n, device=x.device)  # the images still optimized
    u_final = u.detach().clone()
    final = torch.empty(n, device=x.device)
    steps = torch.full((n,), int(iterations), dtype=torch.long)
    initial = None
    with torch.enable_grad():
        loop = range(int(iterations))
        if progress:
            loop = bar(loop, desc="Opti-CAM", leave=False)
        for step in loop:
            score = masked_score(u[active], active)
            if initial is None:
                initial = score.detach()
            loss = (
                logit[active] - score
            ).detach()  # the reference's "plain" loss, per image
            if step % every == 0:
                if stop == "image":
                    rose = loss > prev[active]
                else:  # the reference's comparison of the batch's summed losses
                    rose = (loss.sum() > prev[active].sum()).expand(len(loss))
                done = active[rose]
                u_final[done] = u.detach()[done]
                final[done] = score.detach()[rose]
                steps[done.cpu()] = step
                prev[active] = loss
                keep = ~rose
                active, score = active[keep], score[keep]
                if active.numel() == 0:
                    break
            optimizer.zero_grad()
            (-score.sum()).backward()
            optimizer.step()
    with torch.no_grad():
        if active.numel():
            u_final[active] = u.detach()[active]
            final[active] = masked_score(u_final[active], active)
        if initial is None:
            initial = final.clone()
        weights = torch.softmax(u_final, dim=1)
        signed = (weights.to(feats.dtype).repeat(1, 1, *feats.shape[2:]) * feats).sum(
            dim=1
        )
        weights = weights[:, :, 0, 0]
    steps_np = steps.numpy()
    info = {
        "weights": weights.cpu().numpy(),
        "initial_score": initial.float().cpu().numpy(),
        "final_score": final.float().cpu().numpy(),
        "logit": logit.cpu().numpy(),
        "steps": steps_np,
        "stopped": steps_np < int(iterations),
        "targets": targets.cpu().numpy(),
        "iterations": int(iterations),
        "lr": float(lr),
        "stop": stop,
    }
    return signed.float().cpu().numpy(), info


def run_opticam(
    ps: SharedPass, iterations: int = 100, lr: float = 0.1, stop: str = "image", **_opts
):
    """The runner of Opti-CAM on a shared pass (options ``iterations``, ``lr``, ``stop``)."""
    _check_settings(iterations, lr, stop)
    signed, info = _opticam_loop(
        ps.model,
        ps.x,
        ps.a.detach(),
        ps.targets,
        ps.target_logits().detach(),
        iterations,
        lr,
        stop,
        False,
    )
    return signed, {
        k: info[k]
        for k in (
            "iterations",
            "lr",
            "stop",
            "steps",
            "stopped",
            "initial_score",
            "final_score",
            "logit",
        )
    }


def iteration_sweep(
    model: nn.Module,
    images: torch.Tensor,
    iterations: Sequence[int] = (10, 30, 100),
    *,
    lr: float = 0.1,
    rows: Sequence[int] | None = None,
    targets: Any = None,
    batch_size: int = 25,
) -> dict[int, dict[str, Any]]:
    """How Opti-CAM's mu moves with its number of iterations, on a few images.

    Each count is a separate run of :func:`helpers.cams.compute_cams` (early stopping checks
    every ``iterations // 10`` steps, so a run of 30 is not the first 30 steps of a run of 100),
    and mu is computed as the evaluation computes it: on the scaled maps, with
    :func:`helpers.metrics.dead_zone_share`.

    Args:
        model: the classifier (rVGG).
        images: ``(N, 3, 224, 224)`` normalized images (a few: each count costs up to that many
            forward and backward passes of the whole batch).
        iterations: the counts to compare.
        lr: Adam's learning rate.
        rows: the unseen rows (default: rVGG's, :data:`helpers.metrics.PAPER_UNSEEN_ROWS`;
            pass the walled model's rows for a baseline, as the evaluation does).
        targets: classes to explain (default: the top class).
        batch_size: images per pass.

    Returns:
        ``{count: {"mu": (N,), "steps": (N,), "final_score": (N,), "seconds": float}}`` in the
        order of ``iterations``.
    """
    # Imported here: helpers.cams.api imports this module (for run_opticam).
    from .api import compute_cams

    counts = (
        list(iterations)
        if isinstance(iterations, (list, tuple, range, np.ndarray))
        else []
    )
    valid = all(
        isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c >= 0
        for c in counts
    )
    if not counts or not valid or len(set(counts)) != len(counts):
        raise ValueError(
            f"iterations must be a sequence of distinct non-negative counts, e.g. "
            f"(10, 30, 100); got {iterations!r}."
        )
    out: dict[int, dict[str, Any]] = {}
    for count in map(int, counts):
        t0 = time.perf_counter()
        res = compute_cams(
            model,
            images,
            ["opticam"],
            targets,
            batch_size=batch_size,
            options={"opticam": {"iterations": count, "lr": lr}},
        )["opticam"]
        out[count] = {
            "mu": dead_zone_share(res.scaled, rows=rows),
            "steps": res.extras["steps"],
            "final_score": res.extras["final_score"],
            "seconds": time.perf_counter() - t0,
        }
    return out
