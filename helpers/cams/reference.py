"""The check of :mod:`helpers.cams` against pytorch-grad-cam, the reference implementation:
equal output, and the time each takes.

For each case :func:`benchmark` times pytorch-grad-cam's own class, used the usual way
(``Cls(model, [model.target_layer])(images, None)``, its default batch sizes), against
:func:`helpers.cams.compute_cams` on the same model and images, and gives the seconds per
image, the speed-up and the largest absolute difference between the two sets of maps (which
must stay below :data:`TOLERANCE`, 1e-4; :func:`failures` lists the methods over it). Cases:

* ``scorecam`` -- masked images of several images and channels batched into one forward
  pass, the all-zero mask's score computed once, and on a walled model only the input rows
  the logits depend on computed (:mod:`helpers.masked_forward`);
* ``ablationcam`` -- only the layers after the target layer run on the ablated activations;
* ``gradient family`` -- the 11 methods that read only the target layer's activations and
  gradients (GradCAM, GradCAM++, XGradCAM, HiResCAM, LayerCAM, GradCAM-ElementWise, EigenCAM,
  EigenGradCAM, Seg-Eigen-CAM, KPCA-CAM, FEM): 11 library runs against one shared pass;
* ``fullgrad`` -- no parameter gradients, one upsampling per layer instead of per channel.

Timings are wall-clock, best of ``repeat`` runs, on whatever else the machine is doing. The
command ``python -m tools.bench_cams`` runs it on the book's model and prints it; chapter 06
runs it in a cell. Not imported by ``helpers.cams`` itself: ``from helpers.cams import
reference``.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytorch_grad_cam as pgc
import torch

from .api import CamResult, compute_cams, postprocess
from .registry import get_method
from .shared_pass import fast_layout

__all__ = [
    "CASES",
    "GRADIENT_FAMILY",
    "TOLERANCE",
    "PRINCIPAL_DIRECTION",
    "benchmark",
    "failures",
    "map_differences",
]


#: Library classes served by the shared pass (they read only activations and gradients).
GRADIENT_FAMILY = (
    "GradCAM",
    "GradCAMPlusPlus",
    "XGradCAM",
    "HiResCAM",
    "LayerCAM",
    "GradCAMElementWise",
    "EigenCAM",
    "EigenGradCAM",
    "SegEigenCAM",
    "KPCA_CAM",
    "FEM",
)
#: Largest difference allowed between the library's maps and ours (maps scaled to [0, 1]).
TOLERANCE = 1e-4
#: Methods whose map is the projection on a principal direction of the activations (EigenCAM,
#: EigenGradCAM, Seg-Eigen-CAM, KPCA-CAM). A principal direction has no sign of its own: the SVD
#: picks one through rounding-level details (its number of threads, say), and the map is then
#: the other half of the projection. They are compared up to that sign: each image's map with
#: the library's, or the map of the opposite projection, whichever is closer
#: (``images_sign_flipped`` counts the second), held to :data:`TOLERANCE` like every method.
PRINCIPAL_DIRECTION = ("eigencam", "eigengradcam", "segeigencam", "kpcacam")
#: case -> (library classes, our method keys)
CASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "scorecam": (("ScoreCAM",), ("scorecam",)),
    "ablationcam": (("AblationCAM",), ("ablationcam",)),
    "gradient family": (
        GRADIENT_FAMILY,
        tuple(get_method(n).key for n in GRADIENT_FAMILY),
    ),
    "fullgrad": (("FullGrad",), ("fullgrad",)),
}


def _library_maps(
    model: torch.nn.Module, images: torch.Tensor, names: Sequence[str]
) -> dict[str, np.ndarray]:
    out = {}
    sink = io.StringIO()  # the library's tqdm bars and prints
    with contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
        for name in names:
            cls = getattr(pgc, name)
            cam = (
                cls(model, [])
                if name == "FullGrad"
                else cls(model, [model.target_layer])
            )
            out[name] = cam(images, None)
            ag = cam.activations_and_grads
            ag.gradients, ag.activations = [], []
            ag.release()
    return out


def _ours(
    model: torch.nn.Module,
    images: torch.Tensor,
    keys: Sequence[str],
    batch_size: int,
    chunk: int,
) -> dict[str, CamResult]:
    return compute_cams(
        model,
        images,
        list(keys),
        batch_size=batch_size,
        options={"scorecam": {"chunk": chunk}} if "scorecam" in keys else None,
    )


def map_differences(
    library: np.ndarray, ours: CamResult
) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the largest absolute difference between the library's maps ``(N, H, W)`` and
    ours, and whether our map had to be taken with the principal direction's other sign.

    For :data:`PRINCIPAL_DIRECTION` methods the difference is the smaller of the two: with our
    projection, or with its opposite (``-ours.signed`` post-processed as the library does).
    """
    n = library.shape[0]
    d = np.abs(library - ours.scaled).reshape(n, -1).max(axis=1)
    flipped = np.zeros(n, dtype=bool)
    if ours.method in PRINCIPAL_DIRECTION:
        other = postprocess(-ours.signed, ours.method, tuple(library.shape[1:]))[
            "scaled"
        ]
        d_other = np.abs(library - other).reshape(n, -1).max(axis=1)
        flipped = d_other < d
        d = np.minimum(d, d_other)
    return d, flipped


def _best_time(fn, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def benchmark(
    model: torch.nn.Module,
    images: torch.Tensor,
    cases: Sequence[str] | None = None,
    repeat: int = 2,
    batch_size: int = 25,
    chunk: int = 64,
) -> list[dict[str, Any]]:
    """Time pytorch-grad-cam against :mod:`helpers.cams` on ``model`` and ``images``.

    Both sides get the same tensor in the same memory layout (:func:`helpers.cams.fast_layout`),
    so that both run the same kernels and compute the same activations and gradients: what is
    compared is then each method's formula and post-processing. In another layout, another
    kernel sums in another order, and on images with flat regions (the synthetic world) that is
    enough to change which of two tied values a max-pool lets the gradient through: input
    gradients, hence FullGrad, move by O(1e-2) (``fullgrad_layout_spread``, the library against
    itself in the two layouts, measures it). That is the model's gradient being ill-defined at a
    tie, not a difference of method.

    Returns one dict per case: ``case``, ``library_s`` and ``ours_s`` (seconds per image, best
    of ``repeat``), ``speedup``, ``max_abs_diff`` (over every method of the case, principal
    directions compared up to sign, see :data:`PRINCIPAL_DIRECTION`), ``per_method``,
    ``images_differing`` (images over :data:`TOLERANCE`), ``images_sign_flipped`` and
    ``methods``; the FullGrad case also has ``fullgrad_layout_spread``.
    """
    names = list(CASES) if cases is None else list(cases)
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        raise ValueError(
            f"Unknown benchmark case(s) {unknown}; expected some of {list(CASES)}."
        )
    model.eval()
    n = images.shape[0]
    images = fast_layout(images)
    # warm-up (first calls allocate and pick kernels)
    _library_maps(model, images[:1], ["GradCAM"])
    _ours(model, images[:1], ["gradcam"], batch_size, chunk)
    out = []
    for case in names:
        lib_names, keys = CASES[case]
        t_lib, lib = _best_time(lambda: _library_maps(model, images, lib_names), repeat)
        t_ours, ours = _best_time(
            lambda: _ours(model, images, keys, batch_size, chunk), repeat
        )
        per_method, differing, flipped = {}, {}, {}
        for name in lib_names:
            key = get_method(name).key
            d, flip = map_differences(lib[name], ours[key])
            per_method[key] = float(d.max())
            differing[key] = int((d > TOLERANCE).sum())
            flipped[key] = int(flip.sum())
        row = {
            "case": case,
            "methods": list(keys),
            "images": n,
            "library_s": t_lib / n,
            "ours_s": t_ours / n,
            "speedup": t_lib / t_ours,
            "max_abs_diff": max(per_method.values()),
            "per_method": per_method,
            "images_differing": differing,
            "images_sign_flipped": flipped,
        }
        if case == "fullgrad":
            other = _library_maps(model, images.contiguous(), ["FullGrad"])["FullGrad"]
            row["fullgrad_layout_spread"] = float(np.abs(other - lib["FullGrad"]).max())
        out.append(row)
    return out


def failures(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The methods whose maps differ from the library's by more than :data:`TOLERANCE` on some
    image (principal directions compared up to sign)."""
    return [k for r in rows for k, d in r["per_method"].items() if d > TOLERANCE]
