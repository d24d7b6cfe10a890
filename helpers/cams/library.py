"""The methods whose map is pytorch-grad-cam's own formula, applied to the shared pass.

The gradient formulas (GradCAM, GradCAM++, XGradCAM, HiResCAM, LayerCAM,
GradCAM-ElementWise) and the projections (EigenCAM, EigenGradCAM, Seg-Eigen-CAM, KPCA-CAM)
hand the activations ``A`` and gradients ``G`` of :class:`~helpers.cams.shared_pass.SharedPass`
to the library's ``get_cam_image``; FEM likewise; RandomCAM and ShapleyCAM apply the library's
weighted sum to weights computed here (seeded per image; ``G - Hessian.A / 2``). Each runner
``run_<key>(ps, **options)`` returns the signed maps ``(B, h, w)`` and a dict of extras.

pytorch-grad-cam is imported inside the functions that call it: importing it loads
scikit-learn, SciPy and pandas (seconds), which the registry, the checks and the chapters that
only read :data:`helpers.cams.METHODS` do not need.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from torch import nn

from .shared_pass import SharedPass


def _one_blas_thread() -> threadpool_limits:
    """NumPy/scikit-learn linear algebra on one thread: the per-image SVDs and kernel PCAs
    are tiny (196 x K), and a multi-threaded BLAS spends 10-100x longer synchronizing than
    computing (torch's own threads are not touched)."""
    return threadpool_limits(limits=1, user_api="blas")


def library_formula(name: str, **kwargs) -> Any:
    """An instance of a pytorch-grad-cam class used only for its formula (no hooks on the
    explained model: it is built around a one-parameter dummy)."""
    import pytorch_grad_cam as pgc  # deferred: heavy, see the module docstring

    cls = getattr(pgc, name)
    return cls(nn.Linear(1, 1), [], **kwargs)


def scale_cam_image(
    cam: np.ndarray, target_size: tuple[int, int] | None = None
) -> np.ndarray:
    """pytorch-grad-cam's ``scale_cam_image``: min-max per image, then ``cv2.resize`` to
    ``target_size`` ``(width, height)`` if given."""
    from pytorch_grad_cam.utils.image import (
        scale_cam_image as library_scale,
    )  # deferred: heavy

    return library_scale(cam, target_size)


def weighted_sum(weights: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """``sum_k w_k A^k`` exactly as ``BaseCAM.get_cam_image`` computes it."""
    return (weights[:, :, None, None] * activations).sum(axis=1)


def _flat_images(A: np.ndarray) -> np.ndarray:
    """Images whose activations are the same at every position (no principal direction)."""
    flat = A.reshape(A.shape[0], A.shape[1], -1)
    return np.all(flat.max(axis=2) == flat.min(axis=2), axis=1)


def _projection_method(
    name: str, A: np.ndarray, G: np.ndarray | None, **kwargs
) -> tuple[np.ndarray, dict]:
    """EigenCAM-like methods: the library's projection, with images whose (weighted)
    activations are flat everywhere mapped to zero (a flat matrix has no principal direction;
    KPCA would divide by a zero eigenvalue)."""
    obj = library_formula(name, **kwargs)
    data = A if G is None else (G * A if name != "SegEigenCAM" else np.abs(G) * A)
    out = np.zeros(A.shape[:1] + A.shape[2:], dtype=np.float32)
    keep = ~_flat_images(data)
    caught: list = []
    if keep.any():
        grads = None if G is None else G[keep]
        # scikit-learn's KernelPCA may warn on near-degenerate kernels; the warning is counted
        # (``extras["library_warnings"]``), not printed (a book cell must not write to stderr).
        with _one_blas_thread(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out[keep] = obj.get_cam_image(None, None, None, A[keep], grads, False)
    return out, {"library_warnings": len(caught)} if caught else {}


def gradient_formula(name: str) -> Callable:
    """The runner of the pytorch-grad-cam class ``name`` whose map reads only ``A`` and ``G``
    (GradCAM, GradCAM++, XGradCAM, HiResCAM, LayerCAM, GradCAM-ElementWise)."""

    def run(ps: SharedPass, **_opts) -> tuple[np.ndarray, dict]:
        obj = library_formula(name)
        return obj.get_cam_image(None, None, None, ps.A, ps.G(), False), {}

    return run


def run_eigencam(ps: SharedPass, **_opts):
    return _projection_method("EigenCAM", ps.A, None)


def run_kpcacam(
    ps: SharedPass, kernel: str = "sigmoid", gamma: float | None = None, **_opts
):
    return _projection_method("KPCA_CAM", ps.A, None, kernel=kernel, gamma=gamma)


def run_eigengradcam(ps: SharedPass, **_opts):
    return _projection_method("EigenGradCAM", ps.A, ps.G())


def run_segeigencam(ps: SharedPass, **_opts):
    return _projection_method("SegEigenCAM", ps.A, ps.G())


def run_fem(ps: SharedPass, k: float = 2, **_opts):
    obj = library_formula("FEM", k=k)
    return obj.get_cam_image(None, None, None, ps.A, None, False), {}


def run_randomcam(ps: SharedPass, seed: int = 0, offset: int = 0, **_opts):
    """Random weights U(-1, 1): image ``i`` of the call (``offset + i`` overall) draws its
    weights from ``np.random.RandomState(seed + offset + i)``, so a map does not depend on
    the batching (the library draws from NumPy's global state)."""
    A = ps.A
    weights = np.stack(
        [
            np.random.RandomState(seed + offset + i).uniform(-1, 1, size=A.shape[1])
            for i in range(A.shape[0])
        ]
    )
    return weighted_sum(weights, A), {"seed": seed}


def run_shapleycam(ps: SharedPass, **_opts):
    g = ps.grad().detach()
    h = ps.hvp().detach()
    weights = (g - 0.5 * h).float().cpu().numpy().mean(axis=(2, 3))
    return weighted_sum(weights, ps.A), {"max_abs_hvp": float(h.abs().max())}
