"""The calls: every CAM method behind one function, scaled as pytorch-grad-cam scales them.

One call gives a saliency map for any method of the registry :data:`helpers.cams.METHODS`::

    maps = saliency(model, images, "gradcam")              # (N, 224, 224), in [0, 1]
    raw = saliency(model, images, "gradcam", raw=True)      # (N, 224, 224), unscaled

and :func:`compute_cams` gives everything at once (several methods sharing one pass, the
14x14 maps, the classes explained, the time) as :class:`CamResult` objects;
:func:`activations_and_gradients` gives what most methods read.

**The pipeline** (that of pytorch-grad-cam 1.5.7, ``BaseCAM.forward``): a method computes a
*signed map* at the resolution of the target layer (14x14 for rVGG); pytorch-grad-cam then
takes its ReLU, min-max scales it per image and resizes it to the input with ``cv2.resize``
(bilinear, :func:`pytorch_grad_cam.utils.image.scale_cam_image`), and min-max scales it once
more. :func:`postprocess` does exactly that, with the library's own function. So

* ``CamResult.signed``  -- the method's map before the ReLU, ``(N, h, w)``;
* ``CamResult.low``     -- its ReLU, unscaled, ``(N, h, w)`` (the "raw 14x14 map");
* ``CamResult.upsampled`` -- ``low`` resized to the input with the same ``cv2.resize``,
  unscaled, ``(N, H, W)`` (what ``saliency(..., raw=True)`` returns);
* ``CamResult.scaled``  -- pytorch-grad-cam's output, ``(N, H, W)``, in ``[0, 1]``
  (what ``saliency(...)`` returns, and what the paper's metric is computed on).

Min-max scaling hides magnitudes (a map of 1e-9 and one of 1e3 look alike); the raw maps keep
them. FullGrad is the exception: its map is born at the input's resolution
(:mod:`helpers.cams.fullgrad`), so for it ``signed == low == upsampled`` is the sum of its
terms before the final min-max.

:data:`_RUNNERS` maps each registry key (but FullGrad, which has a pass of its own) to its
runner, ``runner(shared_pass, **options) -> (signed maps (B, h, w), extras)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from .ablationcam import run_ablationcam
from .finercam import run_finercam
from .fullgrad import fullgrad_maps
from .library import (
    gradient_formula,
    run_eigencam,
    run_eigengradcam,
    run_fem,
    run_kpcacam,
    run_randomcam,
    run_segeigencam,
    run_shapleycam,
    scale_cam_image,
)
from .opticam import run_opticam
from .registry import METHOD_OPTIONS, METHODS, get_method, method_keys
from .scorecam import run_scorecam
from .shared_pass import (
    SharedPass,
    check_images,
    check_model,
    clock,
    device_of,
    dtype_of,
    fast_layout,
    inference_state,
    resolve_targets,
)


@dataclass
class CamResult:
    """The maps of one method on a batch of images (see the module docstring).

    Attributes:
        method: the registry key.
        scaled: ``(N, H, W)`` float32 in ``[0, 1]``, pytorch-grad-cam's output.
        upsampled: ``(N, H, W)`` float32, ``low`` resized to the input, not scaled.
        low: ``(N, h, w)`` float32, the ReLU of the method's map at its own resolution
            (14x14 for rVGG's target layer; the input's for FullGrad), not scaled.
        signed: ``(N, h, w)`` float32, the method's map before the ReLU.
        targets: ``(N,)`` int64, the class explained for each image.
        seconds: time of the method's own computation, in seconds.
        shared_seconds: time of the forward/backward pass it shares with other methods of
            the same :func:`compute_cams` call (counted once per call).
        extras: method-specific diagnostics (Opti-CAM's objective, ScoreCAM's skipped flat
            channels, ...).
    """

    method: str
    scaled: np.ndarray
    upsampled: np.ndarray
    low: np.ndarray
    signed: np.ndarray
    targets: np.ndarray
    seconds: float = 0.0
    shared_seconds: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        """``seconds + shared_seconds``: what computing this method alone costs."""
        return self.seconds + self.shared_seconds

    def __len__(self) -> int:
        return int(self.scaled.shape[0])


def postprocess(
    maps: np.ndarray, method: str, size: tuple[int, int] = (224, 224)
) -> dict[str, np.ndarray]:
    """pytorch-grad-cam's post-processing of a method's maps, step by step.

    Args:
        maps: ``(N, h, w)`` signed maps (or their ReLU: the ReLU is idempotent).
        method: the method (FullGrad is post-processed differently, see the module docstring).
        size: ``(H, W)`` of the input.

    Returns:
        ``{"low", "upsampled", "scaled"}`` as in :class:`CamResult`; ``scaled`` is exactly
        what ``BaseCAM.forward`` returns (``scale_cam_image`` twice, as the library does).
    """
    arr = np.asarray(maps, dtype=np.float32)
    if arr.ndim != 3:
        raise ValueError(f"expected maps of shape (N, h, w), got {arr.shape}.")
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be (H, W) of the input, got {size!r}.")
    height, width = int(size[0]), int(size[1])
    if get_method(method).key == "fullgrad":
        if arr.shape[1:] != (height, width):
            raise ValueError(
                f"FullGrad maps are at the input size {size}, got {arr.shape[1:]}."
            )
        return {"low": arr, "upsampled": arr, "scaled": scale_cam_image(arr)}
    low = np.maximum(arr, 0)
    per_layer = scale_cam_image(low, (width, height))[
        :, None, :
    ]  # cv2 takes (width, height)
    per_layer = np.maximum(per_layer, 0)
    scaled = scale_cam_image(np.mean(per_layer, axis=1))
    upsampled = np.float32([cv2.resize(np.float32(m), (width, height)) for m in low])
    return {
        "low": low,
        "upsampled": upsampled.reshape(len(low), height, width),
        "scaled": scaled,
    }


#: The runner of each method but FullGrad (see the module docstring).
_RUNNERS: dict[str, Callable] = {
    "gradcam": gradient_formula("GradCAM"),
    "gradcampp": gradient_formula("GradCAMPlusPlus"),
    "xgradcam": gradient_formula("XGradCAM"),
    "hirescam": gradient_formula("HiResCAM"),
    "layercam": gradient_formula("LayerCAM"),
    "gradcamelementwise": gradient_formula("GradCAMElementWise"),
    "scorecam": run_scorecam,
    "ablationcam": run_ablationcam,
    "eigencam": run_eigencam,
    "eigengradcam": run_eigengradcam,
    "segeigencam": run_segeigencam,
    "kpcacam": run_kpcacam,
    "fem": run_fem,
    "shapleycam": run_shapleycam,
    "finercam": run_finercam,
    "randomcam": run_randomcam,
    "opticam": run_opticam,
}


def _check_options(
    keys: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {k: {} for k in keys}
    for name, opts in (options or {}).items():
        key = get_method(name).key
        if not isinstance(opts, Mapping):
            raise TypeError(
                f"options[{name!r}] must be a dict of keyword arguments, got {opts!r}."
            )
        allowed = METHOD_OPTIONS.get(key, ())
        bad = sorted(set(opts) - set(allowed))
        if bad:
            raise ValueError(
                f"{METHODS[key].display} takes no option(s) {bad}; it accepts {list(allowed)}."
            )
        if key in out:
            out[key].update(opts)
    return out


def compute_cams(
    model: nn.Module,
    images: torch.Tensor,
    methods: Sequence[str] | str | None = None,
    targets: Any = None,
    *,
    target_layer: nn.Module | None = None,
    batch_size: int = 25,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    callback: Callable[[str, int], None] | None = None,
) -> dict[str, CamResult]:
    """Maps of several methods on the same images, sharing one forward pass per batch.

    Args:
        model: a classifier returning logits ``(N, classes)``; put in eval mode for the call
            (its training flag and parameters' ``requires_grad`` are restored afterwards).
        images: ``(N, C, H, W)`` float tensor, normalized as the model expects (moved to the
            model's device and dtype).
        methods: registry keys or names (default: every method of :data:`METHODS`).
        targets: the classes to explain, see :func:`resolve_targets` (default: each image's
            top class, as pytorch-grad-cam).
        target_layer: the layer whose activations are weighted (default ``model.target_layer``,
            for rVGG the ReLU after conv5_3, a 14x14 map). FullGrad does not use it.
        batch_size: images per shared pass.
        options: per-method keyword arguments, e.g. ``{"opticam": {"iterations": 20}}``
            (see :data:`METHOD_OPTIONS`).
        callback: called as ``callback(method_key, images_done)`` after each method and batch
            (for progress bars).

    Returns:
        ``{key: CamResult}`` in the registry's order.

    Raises:
        TypeError, ValueError: for bad images, model, targets, methods or options, saying what
            was expected.
    """
    images = check_images(images)
    keys = method_keys(methods)
    opts = _check_options(keys, options)
    target_layer = check_model(model, target_layer)
    if target_layer is None and any(k != "fullgrad" for k in keys):
        raise ValueError(
            f"{type(model).__name__} has no target_layer attribute; pass "
            "target_layer=<the layer to explain> (for rVGG: model.target_layer)."
        )
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    n = images.shape[0]
    all_targets = resolve_targets(targets, n)
    device, dtype = device_of(model), dtype_of(model)
    size = tuple(images.shape[-2:])
    parts: dict[str, list] = {k: [] for k in keys}
    seconds = dict.fromkeys(keys, 0.0)
    shared = 0.0
    needs_pass = [k for k in keys if k != "fullgrad"]
    needs_graph = any(METHODS[k].signal == "gradient" for k in needs_pass)
    with inference_state(model):
        for start in range(0, n, batch_size):
            x = images[start : start + batch_size].to(device=device, dtype=dtype)
            tgt = (
                None
                if all_targets is None
                else all_targets[start : start + batch_size].to(device)
            )
            ps = None
            if needs_pass:
                t0 = clock(device)
                ps = SharedPass(
                    model, fast_layout(x), target_layer, tgt, keep_graph=needs_graph
                )
                if needs_graph:
                    ps.grad()
                shared += clock(device) - t0
                tgt = ps.targets
            for key in keys:
                t0 = clock(device)
                if key == "fullgrad":
                    signed, tgt_used, extras = fullgrad_maps(model, fast_layout(x), tgt)
                    if tgt is None:
                        tgt = tgt_used
                else:
                    kwargs = dict(opts[key])
                    if key == "randomcam":
                        kwargs["offset"] = start
                    signed, extras = _RUNNERS[key](ps, **kwargs)
                    tgt_used = ps.targets
                signed = np.asarray(signed, dtype=np.float32)
                if not np.isfinite(signed).all():
                    bad = int((~np.isfinite(signed)).sum())
                    extras = dict(extras, nonfinite_replaced=bad)
                    signed = np.nan_to_num(signed, nan=0.0, posinf=0.0, neginf=0.0)
                parts[key].append((signed, tgt_used.detach().cpu().numpy(), extras))
                seconds[key] += clock(device) - t0
                if callback is not None:
                    callback(key, min(start + batch_size, n))
            if ps is not None:
                ps.release()
    results: dict[str, CamResult] = {}
    for key in keys:
        signed = np.concatenate([p[0] for p in parts[key]])
        post = postprocess(signed, key, size)
        extras: dict[str, Any] = {}
        for _, _, ex in parts[key]:
            for name, value in ex.items():
                if isinstance(value, np.ndarray):
                    extras[name] = (
                        np.concatenate([extras[name], value])
                        if name in extras
                        else value
                    )
                elif isinstance(value, (int, float)) and name not in (
                    "iterations",
                    "lr",
                    "seed",
                ):
                    extras[name] = extras.get(name, 0) + value
                elif isinstance(value, list):
                    extras[name] = extras.get(name, []) + value
                else:
                    extras[name] = value
        results[key] = CamResult(
            method=key,
            scaled=post["scaled"],
            upsampled=post["upsampled"],
            low=post["low"],
            signed=signed,
            targets=np.concatenate([p[1] for p in parts[key]]).astype(np.int64),
            seconds=seconds[key],
            shared_seconds=shared if key != "fullgrad" else 0.0,
            extras=extras,
        )
    return results


def activations_and_gradients(
    model: nn.Module,
    images: torch.Tensor,
    targets: Any = None,
    target_layer: nn.Module | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What most CAM methods read: the target layer's activations ``A`` and the gradient
    ``G = dy_c / dA`` of the explained logit, each ``(N, K, h, w)``, and the classes ``(N,)``.

    The same pass :func:`compute_cams` shares between methods (eval mode, no parameter
    gradients, the backward pass through the layers after the target layer only).
    """
    images = check_images(images)
    target_layer = check_model(model, target_layer)
    if target_layer is None:
        raise ValueError(
            "model has no target_layer attribute; pass target_layer=<a conv layer>."
        )
    device, dtype = device_of(model), dtype_of(model)
    tgt = resolve_targets(targets, images.shape[0])
    with inference_state(model):
        ps = SharedPass(
            model,
            images.to(device=device, dtype=dtype),
            target_layer,
            None if tgt is None else tgt.to(device),
            keep_graph=True,
        )
        out = ps.A, ps.G(), ps.targets.cpu().numpy()
        ps.release()
    return out


def saliency(
    model: nn.Module,
    images: torch.Tensor,
    method: str,
    targets: Any = None,
    raw: bool = False,
    target_layer: nn.Module | None = None,
    batch_size: int = 25,
    **options,
) -> np.ndarray:
    """Saliency maps of one method, as pytorch-grad-cam returns them.

    Args:
        model: a classifier (rVGG: the target layer defaults to ``model.target_layer``).
        images: ``(N, C, H, W)`` normalized images (``(N, 3, 224, 224)`` for rVGG).
        method: a key or name of :data:`METHODS` (``"gradcam"``, ``"GradCAM++"``, ``"opticam"``...).
        targets: classes to explain, one per image, or ``None`` for each image's top class.
        raw: ``False``: the scaled maps (ReLU, min-max, resized with ``cv2``, in ``[0, 1]``);
            ``True``: the same maps *before* min-max scaling (ReLU'd and resized with the same
            ``cv2.resize``), which keep their magnitudes. For the maps at the target layer's
            own resolution (14x14) use :func:`compute_cams` (``CamResult.low``/``.signed``).
        target_layer: the layer to explain (ignored by FullGrad, which uses every layer).
        batch_size: images per pass.
        **options: options of the method (see :data:`METHOD_OPTIONS`), e.g. ``iterations=20``
            for Opti-CAM.

    Returns:
        ``(N, H, W)`` float32 array.
    """
    key = get_method(method).key
    result = compute_cams(
        model,
        images,
        [key],
        targets,
        target_layer=target_layer,
        batch_size=batch_size,
        options={key: options} if options else None,
    )[key]
    return result.upsampled if raw else result.scaled
