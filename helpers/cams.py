"""Every CAM method behind one call, scaled as pytorch-grad-cam scales them, plus Opti-CAM.

One call gives a saliency map for any method of the registry :data:`METHODS`::

    maps = saliency(model, images, "gradcam")              # (N, 224, 224), in [0, 1]
    raw = saliency(model, images, "gradcam", raw=True)      # (N, 224, 224), unscaled

and :func:`compute_cams` gives everything at once (several methods sharing one pass, the
14x14 maps, the classes explained, the time) as :class:`CamResult` objects.

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
them. FullGrad is the exception: its map is born at the input's resolution (see below), so
for it ``signed == low == upsampled`` is the sum of its terms before the final min-max.

**One pass for many methods.** Most methods need only the target layer's activations ``A``
and the gradient ``G = dy_c/dA`` of the explained logit. :func:`compute_cams` runs the model
once per batch, with a hook that turns ``A`` into a leaf of the autograd graph (the layers
before it build no graph), gets ``G`` by back-propagating through the layers *after* the
target layer only, and hands ``(A, G)`` to pytorch-grad-cam's own formula of each method
(``get_cam_image``/``get_cam_weights``): same numbers as the library, one forward pass for
all of them. The tests compare every method with the library's own class.

**Faster ScoreCAM and AblationCAM** (same output as the library, max abs difference below
1e-4, see ``python -m helpers.bench_cams``): ScoreCAM batches the masked images of several
images and channels into one forward pass, computes the score of an all-zero mask once
instead of once per flat channel, and on a walled rVGG runs the masked images only on the
input rows the logits depend on (:mod:`helpers.masked_forward`); AblationCAM runs only the
layers after the target layer on the ablated activations (the library re-runs the whole
network for every ablated channel).

**FullGrad** :cite:p:`srinivas2019fullgrad` has no target layer: it explains the logit with
the input gradient and the gradients of *every* convolution (and batch-norm) bias, the
"full-gradient" decomposition ``y = grad_x y . x + sum_l grad_{b_l} y . b_l``. As in
pytorch-grad-cam, each term ``|x * grad_x y|`` and ``|b_{l,c} * grad_{z_{l,c}} y|`` (``z``
the layer's output *before* its ReLU) is min-max scaled per channel, upsampled to the input,
summed over channels and layers, and min-max scaled once more; the dense layers' biases have
no spatial extent and are left out (as in the paper and the library). Our version computes
the same sum in torch (one upsampling per layer, by linearity), without parameter gradients.

**Opti-CAM** :cite:p:`zhang2023opticam` is not in pytorch-grad-cam; :func:`opticam` implements
it: channel weights ``softmax(u)``, ``u`` optimized with Adam so that the input multiplied by
the min-max normalized, upsampled map maximizes the class logit. The paper's setting (100
iterations, learning rate 0.1) is the default; the ``quick`` profile evaluates with fewer
iterations (``EvalSettings.opticam_iterations``), which ``helpers.evaluate`` records.

What the registry leaves out of pytorch-grad-cam, and why: :data:`LEFT_OUT`.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import masked_forward

__all__ = [
    "CamMethod",
    "METHODS",
    "PAPER_METHODS",
    "LEFT_OUT",
    "CamResult",
    "get_method",
    "method_keys",
    "saliency",
    "compute_cams",
    "postprocess",
    "opticam",
    "resolve_targets",
    "activations_and_gradients",
    "METHOD_OPTIONS",
]


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CamMethod:
    """One CAM method of the registry.

    Attributes:
        key: the registry key (lower case, letters and digits only, e.g. ``"gradcampp"``).
        display: the usual name (``"GradCAM++"``).
        cite: its key in ``book/references.bib``.
        weights: ``"global"`` (one number per channel for the whole map), ``"element-wise"``
            (a weight per channel *and* position) or ``"element-wise, centred"`` (element-wise
            products, then a projection on their principal direction after removing each
            channel's spatial mean -- a global offset).
        prediction: what the grouping predicts on the walled model: ``"leaks"``, ``"blind"``
            (exactly zero behind the wall) or ``"may leak"`` (a constant behind the wall).
        signal: what the method reads: ``"gradient"``, ``"activations"``, ``"forward passes"``,
            ``"optimization"``, ``"all layers"`` or ``"random"``.
        formula: the map in one line of LaTeX (notation of the chapter "CAM methods, one
            formula each").
        library: the pytorch-grad-cam class it reproduces (``None`` for Opti-CAM).
        in_paper: whether the paper's Table 1 has it.
        note: one sentence on what to know.
    """

    key: str
    display: str
    cite: str
    weights: str
    prediction: str
    signal: str
    formula: str
    library: str | None
    in_paper: bool
    note: str = ""


_GRAD_NOTE = "one forward pass and a backward pass through the layers after the target layer"

_METHOD_LIST = [
    CamMethod("gradcam", "GradCAM", "selvaraju2017gradcam", "global", "leaks", "gradient",
              r"L=\operatorname{ReLU}\Big(\sum_k \alpha_k A^k\Big),\quad \alpha_k=\frac{1}{Z}\sum_s G^k(s)",
              "GradCAM", True, _GRAD_NOTE),
    CamMethod("gradcampp", "GradCAM++", "chattopadhay2018gradcampp", "global", "leaks", "gradient",
              r"\alpha_k=\sum_s \operatorname{ReLU}\big(G^k(s)\big)\,\frac{G^k(s)^2}{2G^k(s)^2+G^k(s)^3\sum_{s'}A^k(s')}",
              "GradCAMPlusPlus", True,
              "higher derivatives replaced by powers of the first, as in pytorch-grad-cam"),
    CamMethod("xgradcam", "XGradCAM", "fu2020xgradcam", "global", "leaks", "gradient",
              r"\alpha_k=\sum_s G^k(s)\,\frac{A^k(s)}{\sum_{s'}A^k(s')}",
              "XGradCAM", True, _GRAD_NOTE),
    CamMethod("scorecam", "ScoreCAM", "wang2020scorecam", "global", "leaks", "forward passes",
              r"\alpha=\operatorname{softmax}_k\Big(y_c\big(x\odot n(\uparrow A^k)\big)\Big)",
              "ScoreCAM", True,
              "one forward pass per channel and image; batched here (same output, faster)"),
    CamMethod("ablationcam", "AblationCAM", "desai2020ablationcam", "global", "leaks", "forward passes",
              r"\alpha_k=\frac{y_c-y_c\big(A^{k}\leftarrow 0\big)}{y_c}",
              "AblationCAM", True,
              "one pass of the layers after the target layer per channel and image"),
    CamMethod("eigencam", "EigenCAM", "muhammad2020eigencam", "global", "leaks", "activations",
              r"L(s)=\sum_k v_k\big(A^k(s)-\bar A^k\big),\quad v=\text{first principal direction of }(A^k(s))_{s,k}",
              "EigenCAM", True,
              "class-agnostic; the sign of a principal direction is arbitrary"),
    CamMethod("hirescam", "HiResCAM", "draelos2020hirescam", "element-wise", "blind", "gradient",
              r"L(s)=\operatorname{ReLU}\Big(\sum_k G^k(s)\,A^k(s)\Big)",
              "HiResCAM", True, _GRAD_NOTE),
    CamMethod("opticam", "Opti-CAM", "zhang2023opticam", "global", "leaks", "optimization",
              r"\alpha=\operatorname{softmax}(u^\star),\quad u^\star=\arg\max_u\, y_c\Big(x\odot n\big(\uparrow\textstyle\sum_k \operatorname{softmax}(u)_k A^k\big)\Big)",
              None, True,
              "Adam on u, a forward and a backward pass of the whole network per iteration"),
    CamMethod("layercam", "LayerCAM", "jiang2021layercam", "element-wise", "blind", "gradient",
              r"L(s)=\operatorname{ReLU}\Big(\sum_k \operatorname{ReLU}\big(G^k(s)\big)\,A^k(s)\Big)",
              "LayerCAM", False, "not in the paper's table; one of its open questions"),
    CamMethod("gradcamelementwise", "GradCAM-ElementWise", "gildenblat2021pytorchgradcam",
              "element-wise", "blind", "gradient",
              r"L(s)=\sum_k \operatorname{ReLU}\big(G^k(s)\,A^k(s)\big)",
              "GradCAMElementWise", False, "pytorch-grad-cam's own variant"),
    CamMethod("fullgrad", "FullGrad", "srinivas2019fullgrad", "element-wise", "blind", "all layers",
              r"L=\psi\big(|x\odot\nabla_x y_c|\big)+\sum_{l}\sum_{c'}\psi\big(|b_{l,c'}\,\nabla_{z_{l,c'}} y_c|\big)",
              "FullGrad", False,
              "no target layer: the input gradient and every convolution bias's gradient"),
    CamMethod("eigengradcam", "EigenGradCAM", "gildenblat2021pytorchgradcam",
              "element-wise, centred", "may leak", "gradient",
              r"L(s)=\sum_k v_k\big(G^k(s)A^k(s)-\overline{GA}^k\big),\quad v=\text{first principal direction of }(G^kA^k)",
              "EigenGradCAM", False, "pytorch-grad-cam's own variant of EigenCAM"),
    CamMethod("segeigencam", "Seg-Eigen-CAM", "chung2025segeigencam",
              "element-wise, centred", "may leak", "gradient",
              r"L(s)=\pm\sum_k v_k\big(|G^k(s)|A^k(s)-\overline{|G|A}^k\big),\quad\text{sign chosen so that }\max|L|\text{ is positive}",
              "SegEigenCAM", False, "made for segmentation; runs on a classifier as it is"),
    CamMethod("kpcacam", "KPCA-CAM", "karmani2024kpcacam", "global", "leaks", "activations",
              r"L(s)=\text{first kernel principal component of }\big(A^k(s)\big)_k\ \text{(sigmoid kernel)}",
              "KPCA_CAM", False, "class-agnostic, like EigenCAM"),
    CamMethod("shapleycam", "ShapleyCAM", "cai2024shapleycam", "global", "leaks", "gradient",
              r"\alpha_k=\frac{1}{Z}\sum_s\Big(G^k(s)-\tfrac12\big(\nabla^2_A y_c\,A\big)^k(s)\Big)",
              "ShapleyCAM", False,
              "for a network that is piecewise linear after the target layer (rVGG) the Hessian "
              "term is zero and ShapleyCAM equals GradCAM"),
    CamMethod("finercam", "Finer-CAM", "zhang2025finercam", "global", "leaks", "gradient",
              r"\text{GradCAM of } \frac{\sum_j p_j\,(y_c-y_j)}{\sum_j p_j},\ j\text{ the 3 classes whose logits are closest to }y_c",
              "FinerCAM", False, "p = softmax probabilities; GradCAM of a contrast between classes"),
    CamMethod("fem", "FEM", "fuad2020fem", "global", "leaks", "activations",
              r"\alpha_k=\frac{1}{Z}\#\{s: A^k(s)>\mu_k+2\sigma_k\}",
              "FEM", False, "class-agnostic: the share of each channel's outliers"),
    CamMethod("randomcam", "RandomCAM", "gildenblat2021pytorchgradcam", "global", "leaks", "random",
              r"\alpha_k\sim\mathcal U(-1,1)\ \text{i.i.d.}",
              "RandomCAM", False, "a control: random channel weights, seeded here"),
]

#: Every method, by key, in the order of the book's tables (the paper's eight first).
METHODS: dict[str, CamMethod] = {m.key: m for m in _METHOD_LIST}

#: The eight methods of the paper's Table 1, in its order.
PAPER_METHODS: tuple[str, ...] = tuple(m.key for m in _METHOD_LIST if m.in_paper)

#: What pytorch-grad-cam 1.5.7 has and the registry leaves out, with the reason.
LEFT_OUT: dict[str, str] = {
    "GuidedBackpropReLUModel": "not a CAM: an input-space gradient with modified ReLU "
    "backward passes, no activation map and no channel weights (Guided GradCAM is its product "
    "with GradCAM).",
    "RefineCAM": "a meta-method that multiplies the CAMs of several target layers; with the one "
    "target layer of the paper it is its base method (GradCAM++).",
    "SESS": "a meta-method that runs a base CAM on sliding windows of rescaled copies of the "
    "image; the windows move the wall, whose geometry holds only for the 224x224 image as is.",
    "DeepFeatureFactorization": "not a class saliency map: a non-negative matrix factorization "
    "of the activations into several 'concept' maps.",
    "AblationCAM (multilayer)": "ablation_cam_multilayer.py is an experimental, unexported "
    "variant of AblationCAM for several layers.",
    "sobel_cam": "an edge detector on the image (a visual baseline), not a map of the model.",
    "aug_smooth / eigen_smooth": "options that smooth any method (test-time augmentation, or a "
    "principal-component projection); they change the methods, so they are off, as in the paper.",
}

_ALIASES = {
    "gradcamplusplus": "gradcampp",
    "gradcam++": "gradcampp",
    "gradcamelementwise": "gradcamelementwise",
    "gradcamew": "gradcamelementwise",
    "kpca": "kpcacam",
    "optcam": "opticam",
    "ablation": "ablationcam",
    "score": "scorecam",
    "random": "randomcam",
    "fullgradcam": "fullgrad",
    "finer": "finercam",
    "shapley": "shapleycam",
    "segeigen": "segeigencam",
}


def _normalize_name(name: str) -> str:
    text = str(name).strip().lower().replace("++", "pp")
    return "".join(ch for ch in text if ch.isalnum())


def get_method(name: str | CamMethod) -> CamMethod:
    """The :class:`CamMethod` called ``name`` (a key, a display name, or a pytorch-grad-cam
    class name: ``"GradCAM++"``, ``"GradCAMPlusPlus"``, ``"gradcampp"`` all work).

    Raises:
        ValueError: for an unknown name (lists the known ones) or a left-out one (says why).
    """
    if isinstance(name, CamMethod):
        return name
    if not isinstance(name, str):
        raise TypeError(f"method must be a string such as 'gradcam', got {type(name).__name__}.")
    key = _normalize_name(name)
    key = _ALIASES.get(key, key)
    if key in METHODS:
        return METHODS[key]
    for m in _METHOD_LIST:
        if m.library and _normalize_name(m.library) == key:
            return m
    for left, why in LEFT_OUT.items():
        if _normalize_name(left.split(" ")[0]) == key:
            raise ValueError(f"{name!r} is not in the registry on purpose: {why}")
    raise ValueError(f"Unknown CAM method {name!r}; expected one of {list(METHODS)} "
                     "(display names such as 'GradCAM++' or 'Opti-CAM' work too).")


def method_keys(methods: Sequence[str] | str | None = None) -> list[str]:
    """Registry keys of ``methods`` (``None`` or ``"all"``: every method; ``"paper"``: the
    paper's eight), in the registry's order, without duplicates."""
    if methods is None or (isinstance(methods, str) and methods.lower() == "all"):
        return list(METHODS)
    if isinstance(methods, str) and methods.lower() == "paper":
        return list(PAPER_METHODS)
    if isinstance(methods, (str, CamMethod)):
        methods = [methods]
    keys = [get_method(m).key for m in methods]
    if not keys:
        raise ValueError("methods is empty; pass at least one method, or None for all.")
    return [k for k in METHODS if k in set(keys)]


# --------------------------------------------------------------------------------------------
# Results and scaling
# --------------------------------------------------------------------------------------------

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


def _scale_cam_image(cam: np.ndarray, target_size: tuple[int, int] | None = None) -> np.ndarray:
    from pytorch_grad_cam.utils.image import scale_cam_image

    return scale_cam_image(cam, target_size)


def postprocess(maps: np.ndarray, method: str, size: tuple[int, int] = (224, 224)) -> dict[str, np.ndarray]:
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
            raise ValueError(f"FullGrad maps are at the input size {size}, got {arr.shape[1:]}.")
        return {"low": arr, "upsampled": arr, "scaled": _scale_cam_image(arr)}
    low = np.maximum(arr, 0)
    per_layer = _scale_cam_image(low, (width, height))[:, None, :]  # cv2 takes (width, height)
    per_layer = np.maximum(per_layer, 0)
    scaled = _scale_cam_image(np.mean(per_layer, axis=1))
    upsampled = np.float32([cv2.resize(np.float32(m), (width, height)) for m in low])
    return {"low": low, "upsampled": upsampled.reshape(len(low), height, width), "scaled": scaled}


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------

def _check_images(images: Any) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        raise TypeError("images must be a torch.Tensor (N, C, H, W); convert a NumPy array with "
                        "torch.from_numpy(array).float() (and normalize it as the model expects).")
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (N, C, H, W), got {type(images).__name__}.")
    if images.dim() == 3:
        raise ValueError(f"expected a batch (N, C, H, W), got shape {tuple(images.shape)}; add a "
                         "batch dimension with images.unsqueeze(0) for a single image.")
    if images.dim() != 4:
        raise ValueError(f"expected a batch (N, C, H, W), got shape {tuple(images.shape)}.")
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch (N = 0); pass at least one image.")
    if not torch.is_floating_point(images):
        raise TypeError(f"images must be floating point (normalized as the model expects), got "
                        f"{images.dtype}; for uint8 images use helpers.data.normalize(x / 255).")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values.")
    return images


def _check_model(model: Any, target_layer: nn.Module | None) -> nn.Module | None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if next(model.parameters(), None) is None:
        raise ValueError("model has no parameters; expected a trained classifier such as rVGG.")
    if target_layer is None:
        target_layer = getattr(model, "target_layer", None)
    if target_layer is None:
        return None
    if not isinstance(target_layer, nn.Module):
        raise TypeError(f"target_layer must be an nn.Module of the model, got {type(target_layer).__name__}.")
    if not any(m is target_layer for m in model.modules()):
        raise ValueError("target_layer is not a module of this model; pass one of its layers "
                         "(for rVGG: model.target_layer, the ReLU after conv5_3).")
    return target_layer


def resolve_targets(targets: Any, n: int) -> torch.Tensor | None:
    """The classes to explain as an int64 tensor of length ``n`` (``None`` stays ``None``:
    the model's top class).

    Accepts a sequence/array/tensor of ``n`` class indices, a single int (the same class for
    every image), or pytorch-grad-cam ``ClassifierOutputTarget`` objects.

    Raises:
        ValueError: when the length differs from the batch (never truncated silently).
    """
    if targets is None:
        return None
    if isinstance(targets, (int, np.integer)):
        return torch.full((n,), int(targets), dtype=torch.long)
    if isinstance(targets, torch.Tensor):
        values = targets.detach().cpu().reshape(-1).tolist() if targets.dim() <= 1 else None
        if values is None:
            raise ValueError(f"targets must be one class index per image, got a tensor of shape "
                             f"{tuple(targets.shape)}.")
    else:
        try:
            values = list(targets)
        except TypeError:
            raise TypeError(f"targets must be None, an int or a sequence of class indices, got "
                            f"{type(targets).__name__}.") from None
    out = []
    for v in values:
        if hasattr(v, "category"):
            v = v.category
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        if not isinstance(v, (int, np.integer)):
            raise TypeError(f"each target must be a class index (int), got {v!r}.")
        out.append(int(v))
    if len(out) != n:
        raise ValueError(f"targets has {len(out)} entries but the batch has {n} images; pass one "
                         "class per image (or None to explain each image's top class).")
    return torch.tensor(out, dtype=torch.long)


# --------------------------------------------------------------------------------------------
# Model plumbing
# --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _inference_state(model: nn.Module) -> Iterator[None]:
    """Eval mode and frozen parameters (no parameter gradients) for the duration."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _dtype_of(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def _clock(device: torch.device) -> float:
    """``time.perf_counter()`` after the device's queued work is done (CUDA runs asynchronously,
    so a method's time would otherwise be charged to the next one)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def fast_layout(x: torch.Tensor) -> torch.Tensor:
    """channels_last for 4-D images: 2-3x faster convolutions on CPU and GPU alike.

    Every pass of :func:`compute_cams` runs on this layout; :mod:`helpers.bench_cams` gives
    pytorch-grad-cam the same layout, so that both run the same kernels (another layout is
    another order of float sums, see there)."""
    return x.contiguous(memory_format=torch.channels_last)


def _vgg_head(model: nn.Module, target_layer: nn.Module) -> Callable | None:
    """The layers after ``target_layer`` as a function, for torchvision-VGG-like models
    (rVGG): ``features[i+1:] -> avgpool -> flatten -> classifier``; ``None`` otherwise."""
    from torchvision.models import VGG

    if not isinstance(model, VGG):
        return None
    for i, m in enumerate(model.features):
        if m is target_layer:
            rest = model.features[i + 1:]

            def head(a: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
                return model.classifier(torch.flatten(model.avgpool(rest(a)), 1))

            return head
    return None


def _checked_targets(targets: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
    """The classes to explain: ``targets`` on the logits' device, or each image's top class.

    Raises:
        ValueError: when a target is not a class index of the model's ``logits.shape[1]`` classes.
    """
    num_classes = int(logits.shape[1])
    if targets is None:
        return logits.detach().argmax(dim=1)
    targets = targets.to(logits.device)
    if targets.numel() and (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(f"targets must be class indices in 0..{num_classes - 1} (the model has {num_classes} "
                         f"classes), got {targets.min().item()}..{targets.max().item()}. Pass valid classes, "
                         "or targets=None to explain each image's top class.")
    return targets


class _Pass:
    """The forward pass of one batch that every method of a :func:`compute_cams` call shares.

    Holds the images ``x``, the target-layer activations ``a`` (a leaf of the autograd graph
    built by the layers after the target layer only), the logits, the explained classes,
    and, on demand, the gradient ``G`` and the Hessian-vector product ShapleyCAM needs.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, target_layer: nn.Module,
                 targets: torch.Tensor | None, keep_graph: bool) -> None:
        self.model, self.x, self.target_layer = model, x, target_layer
        store: dict[str, torch.Tensor] = {}

        def hook(_m, _inp, out):
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"the target layer returns {type(out).__name__}, expected a tensor "
                                "(N, C, h, w); choose a convolutional layer or its ReLU.")
            leaf = out.detach().clone().requires_grad_(keep_graph)
            store["a"] = leaf
            return leaf.clone() if keep_graph else leaf

        handle = target_layer.register_forward_hook(hook)
        try:
            with torch.set_grad_enabled(keep_graph):
                logits = model(x)
        finally:
            handle.remove()
        if "a" not in store:
            raise ValueError("the target layer was not called in the model's forward pass; pass a "
                             "layer the model uses (for rVGG: model.target_layer).")
        a = store["a"]
        if a.dim() != 4:
            raise ValueError(f"the target layer's output has shape {tuple(a.shape)}, expected "
                             "(N, C, h, w) feature maps; CAM methods need a convolutional layer.")
        if logits.dim() != 2:
            raise ValueError(f"the model returns shape {tuple(logits.shape)}, expected logits (N, classes).")
        self.a, self.logits = a, logits
        self.num_classes = int(logits.shape[1])
        self.targets = _checked_targets(targets, logits)
        self.rows = torch.arange(x.shape[0], device=x.device)
        self._grad: torch.Tensor | None = None
        self._hvp: torch.Tensor | None = None
        self._head: Callable | None = None
        self._A_np: np.ndarray | None = None
        self._G_np: np.ndarray | None = None
        self.keep_graph = keep_graph

    # -- quantities shared by the methods -------------------------------------------------
    @property
    def A(self) -> np.ndarray:
        """The activations as a float32 NumPy array ``(B, K, h, w)`` (cached)."""
        if self._A_np is None:
            self._A_np = self.a.detach().float().cpu().numpy()
        return self._A_np

    def target_logits(self) -> torch.Tensor:
        return self.logits.gather(1, self.targets[:, None])[:, 0]

    def grad(self) -> torch.Tensor:
        """``G = d(sum_i y_i[t_i]) / dA`` through the layers after the target layer."""
        if self._grad is None:
            if not self.keep_graph:
                raise RuntimeError("internal: gradients requested from a pass without graph.")
            (g,) = torch.autograd.grad(self.target_logits().sum(), self.a, retain_graph=True,
                                       create_graph=True, allow_unused=True)
            self._grad = torch.zeros_like(self.a) if g is None else g
        return self._grad

    def G(self) -> np.ndarray:
        """The gradient as a float32 NumPy array ``(B, K, h, w)`` (cached)."""
        if self._G_np is None:
            self._G_np = self.grad().detach().float().cpu().numpy()
        return self._G_np

    def hvp(self) -> torch.Tensor:
        """``(d^2 y / dA^2) A``, the Hessian-vector product of ShapleyCAM (zero when the layers
        after the target layer are piecewise linear)."""
        if self._hvp is None:
            g = self.grad()
            if not g.requires_grad:
                self._hvp = torch.zeros_like(self.a)
            else:
                (h,) = torch.autograd.grad(g, self.a, grad_outputs=self.a.detach(), retain_graph=True,
                                           allow_unused=True)
                self._hvp = torch.zeros_like(self.a) if h is None else h
        return self._hvp

    def grad_of(self, objective: torch.Tensor) -> torch.Tensor:
        (g,) = torch.autograd.grad(objective, self.a, retain_graph=True, allow_unused=True)
        return torch.zeros_like(self.a) if g is None else g

    def head(self) -> Callable:
        """The layers after the target layer as ``head(activations, rows) -> logits``.

        For VGG-like models (rVGG) they run alone; otherwise the whole model runs on the images
        ``x[rows]`` with the target layer's output replaced (correct for any model, slower).
        """
        if self._head is None:
            head = _vgg_head(self.model, self.target_layer)
            if head is not None:
                with torch.no_grad():
                    check = head(self.a.detach()[:2])
                ref = self.logits.detach()[:2]
                if check.shape != ref.shape or not torch.allclose(check, ref, rtol=1e-4, atol=1e-4):
                    head = None  # the model's forward is not features -> avgpool -> classifier
            if head is None:
                model, target_layer, x = self.model, self.target_layer, self.x

                def head(a: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
                    if rows is None:
                        rows = torch.arange(a.shape[0], device=x.device)
                    handle = target_layer.register_forward_hook(lambda _m, _i, _o: a)
                    try:
                        return model(x[rows])
                    finally:
                        handle.remove()

            self._head = head
        return self._head

    def release(self) -> None:
        self._grad = self._hvp = None
        self.a = self.a.detach()
        self.logits = self.logits.detach()


# --------------------------------------------------------------------------------------------
# The methods (each returns signed maps (B, h, w) and extras)
# --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """NumPy/scikit-learn linear algebra on one thread: the per-image SVDs and kernel PCAs
    are tiny (196 x K), and a multi-threaded BLAS spends 10-100x longer synchronizing than
    computing (torch's own threads are not touched)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on threadpoolctl
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _library_formula(name: str, **kwargs) -> Any:
    """An instance of a pytorch-grad-cam class used only for its formula (no hooks on the
    explained model: it is built around a one-parameter dummy)."""
    import pytorch_grad_cam as pgc

    cls = getattr(pgc, name)
    return cls(nn.Linear(1, 1), [], **kwargs)


def _weighted_sum(weights: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """``sum_k w_k A^k`` exactly as ``BaseCAM.get_cam_image`` computes it."""
    return (weights[:, :, None, None] * activations).sum(axis=1)


def _flat_images(A: np.ndarray) -> np.ndarray:
    """Images whose activations are the same at every position (no principal direction)."""
    flat = A.reshape(A.shape[0], A.shape[1], -1)
    return np.all(flat.max(axis=2) == flat.min(axis=2), axis=1)


def _projection_method(name: str, A: np.ndarray, G: np.ndarray | None, **kwargs) -> tuple[np.ndarray, dict]:
    """EigenCAM-like methods: the library's projection, with images whose (weighted)
    activations are flat everywhere mapped to zero (a flat matrix has no principal direction;
    KPCA would divide by a zero eigenvalue)."""
    obj = _library_formula(name, **kwargs)
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


def _m_gradient_formula(name: str) -> Callable:
    def run(ps: _Pass, **_opts) -> tuple[np.ndarray, dict]:
        obj = _library_formula(name)
        return obj.get_cam_image(None, None, None, ps.A, ps.G(), False), {}
    return run


def _m_eigencam(ps: _Pass, **_opts):
    return _projection_method("EigenCAM", ps.A, None)


def _m_kpcacam(ps: _Pass, kernel: str = "sigmoid", gamma: float | None = None, **_opts):
    return _projection_method("KPCA_CAM", ps.A, None, kernel=kernel, gamma=gamma)


def _m_eigengradcam(ps: _Pass, **_opts):
    return _projection_method("EigenGradCAM", ps.A, ps.G())


def _m_segeigencam(ps: _Pass, **_opts):
    return _projection_method("SegEigenCAM", ps.A, ps.G())


def _m_fem(ps: _Pass, k: float = 2, **_opts):
    obj = _library_formula("FEM", k=k)
    return obj.get_cam_image(None, None, None, ps.A, None, False), {}


def _m_randomcam(ps: _Pass, seed: int = 0, offset: int = 0, **_opts):
    """Random weights U(-1, 1): image ``i`` of the call (``offset + i`` overall) draws its
    weights from ``np.random.RandomState(seed + offset + i)``, so a map does not depend on
    the batching (the library draws from NumPy's global state)."""
    A = ps.A
    weights = np.stack([np.random.RandomState(seed + offset + i).uniform(-1, 1, size=A.shape[1])
                        for i in range(A.shape[0])])
    return _weighted_sum(weights, A), {"seed": seed}


def _m_shapleycam(ps: _Pass, **_opts):
    g = ps.grad().detach()
    h = ps.hvp().detach()
    weights = (g - 0.5 * h).float().cpu().numpy().mean(axis=(2, 3))
    return _weighted_sum(weights, ps.A), {"max_abs_hvp": float(h.abs().max())}


def _finer_targets(logits: torch.Tensor, targets: torch.Tensor, n_compare: int = 3,
                   alpha: float = 1.0) -> list:
    """Finer-CAM's targets: the explained class against the ``n_compare`` classes whose
    logits are closest to its own, as pytorch-grad-cam's ``FinerCAM`` chooses them for the top
    class. (Given explicit targets, the library's ``FinerCAM`` uses them as plain logits, i.e.
    becomes GradCAM; here an explicit class is contrasted with its closest classes too.)"""
    from pytorch_grad_cam.utils.model_targets import FinerWeightedTarget

    data = logits.detach().float().cpu().numpy()
    out = []
    for i, t in enumerate(targets.tolist()):
        order = np.argsort(np.abs(data[i] - data[i, t]), kind="stable")
        others = [int(j) for j in order if int(j) != t][:n_compare]
        out.append(FinerWeightedTarget(int(t), others, alpha))
    return out


def _m_finercam(ps: _Pass, alpha: float = 1.0, n_compare: int = 3, **_opts):
    finer = _finer_targets(ps.logits, ps.targets, n_compare, alpha)
    objective = sum(target(out) for target, out in zip(finer, ps.logits))
    g = ps.grad_of(objective).detach().float().cpu().numpy()
    obj = _library_formula("GradCAM")
    return obj.get_cam_image(None, None, None, ps.A, g, False), {
        "comparison": [t.comparison_categories for t in finer]}


def _m_scorecam(ps: _Pass, chunk: int = 64, visible_rows: bool = True, **_opts):
    """ScoreCAM as pytorch-grad-cam computes it, batched.

    Masks: each channel upsampled with ``UpsamplingBilinear2d`` (``align_corners=True``) and
    min-max scaled with ``+1e-8``; scores: the target logit of the masked image; weights:
    their softmax over channels. A flat channel's mask is exactly zero, so its score is the
    logit of an all-zero image, computed once. With ``visible_rows`` (VGG-like networks, see
    :mod:`helpers.masked_forward`), a wall is used: a mask lying entirely where the logits
    cannot see scores as the all-zero image too (``unread_masks``), and the other masked images
    run on the input rows the logits depend on (``rows_share`` of the rows).
    """
    model, x = ps.model, ps.x
    a = ps.a.detach()
    n, channels = a.shape[:2]
    size = x.shape[-2:]
    flat = a.reshape(n, channels, -1)
    lo, hi = flat.min(dim=2).values, flat.max(dim=2).values
    live = (hi > lo).nonzero(as_tuple=False)  # (pairs, 2): image, channel
    n_live = len(live)
    scores = torch.empty(n, channels, device=a.device, dtype=torch.float32)
    fast = None
    if visible_rows and n_live and masked_forward.supports_model(model) and size[0] % 16 == 0:
        fast = masked_forward.VisibleRowsForward(model, (int(size[0]), int(size[1])))
    buffer = None
    with torch.no_grad():
        zero_logits = fast.zero_logits if fast is not None else model(torch.zeros_like(x[:1]))[0]
        scores[:] = zero_logits.float()[ps.targets][:, None]  # flat channels, masks behind a wall
        unread = 0
        for start in range(0, n_live, chunk):
            pairs = live[start:start + chunk]
            # upsample, then min-max scale, in this order as the library does (for a nearly flat
            # channel the other order differs by far more than rounding)
            up = F.interpolate(a[pairs[:, 0], pairs[:, 1]][:, None], size=size, mode="bilinear",
                               align_corners=True)
            upf = up.reshape(len(pairs), -1)
            mins = upf.min(dim=1).values[:, None, None, None]
            maxs = upf.max(dim=1).values[:, None, None, None]
            masks = (up - mins) / (maxs - mins + 1e-8)
            if fast is not None:
                seen = ~fast.unread(masks)
                unread += int((~seen).sum())
                if not bool(seen.any()):
                    continue
                pairs, masks = pairs[seen], masks[seen]
                out = fast(x, masks, pairs[:, 0]).float()
            else:
                if buffer is None:
                    buffer = torch.empty((min(chunk, n_live),) + tuple(x.shape[1:]), device=x.device,
                                         dtype=x.dtype).contiguous(memory_format=torch.channels_last)
                img = pairs[:, 0]
                masked = buffer[:len(pairs)]
                # one pass per run of pairs of the same image: masked[j] = x[i] * mask[j]
                bounds = torch.nonzero(torch.diff(img), as_tuple=False)[:, 0].tolist()
                begin = 0
                for end in bounds + [len(pairs) - 1]:
                    i = int(img[begin])
                    torch.mul(x[i:i + 1], masks[begin:end + 1], out=masked[begin:end + 1])
                    begin = end + 1
                out = model(masked).float()
            scores[pairs[:, 0], pairs[:, 1]] = out.gather(1, ps.targets[pairs[:, 0]][:, None])[:, 0]
    weights = torch.softmax(scores, dim=-1).cpu().numpy()
    extras = {"flat_channels": int(n * channels - n_live), "forward_images": int(n_live - unread),
              "unread_masks": int(unread), "rows_share": fast.share if fast is not None else 1.0}
    return _weighted_sum(weights, ps.A), extras


def _m_ablationcam(ps: _Pass, chunk: int = 256, **_opts):
    """AblationCAM as pytorch-grad-cam computes it, running only the layers after the target.

    Channel ``k`` of image ``i`` is set to 0 (the library's rule when the activations' minimum
    is 0, as after a ReLU; otherwise to ``min - 1e7``); weight ``(y - y_k) / y``. Where the
    original logit is exactly 0 the library divides by zero; we use ``y - y_k`` there.
    """
    head = ps.head()
    a = ps.a.detach()
    n, channels = a.shape[:2]
    orig = ps.target_logits().detach().float()
    mins = a.reshape(n, -1).min(dim=1).values
    values = torch.where(mins == 0, torch.zeros_like(mins), mins - 1e7)
    pairs = torch.cartesian_prod(torch.arange(n, device=a.device), torch.arange(channels, device=a.device))
    ablated = torch.empty(n, channels, device=a.device, dtype=torch.float32)
    with torch.no_grad():
        for start in range(0, len(pairs), chunk):
            p = pairs[start:start + chunk]
            img, ch = p[:, 0], p[:, 1]
            batch = a[img].clone()
            batch[torch.arange(len(p), device=a.device), ch] = values[img][:, None, None].to(batch.dtype)
            out = head(batch, img).float()
            ablated[img, ch] = out.gather(1, ps.targets[img][:, None])[:, 0]
    orig_np = orig.cpu().numpy().astype(np.float32)[:, None]
    abl = ablated.cpu().numpy().astype(np.float32)
    denom = np.where(orig_np == 0, np.float32(1), orig_np)
    weights = (orig_np - abl) / denom
    return _weighted_sum(weights, ps.A), {"zero_logit_images": int((orig_np == 0).sum())}


def _fullgrad_maps(model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None
                   ) -> tuple[np.ndarray, torch.Tensor, dict]:
    """FullGrad as pytorch-grad-cam computes it (see the module docstring), in torch."""
    layers = [m for m in model.modules()
              if type(m) in (nn.Conv2d, nn.BatchNorm2d) and m.bias is not None]
    biases = []
    for m in layers:
        if isinstance(m, nn.BatchNorm2d):
            b = -(m.running_mean * m.weight / torch.sqrt(m.running_var + m.eps)) + m.bias
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
            targets = _checked_targets(targets, logits)
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
        term = channel_scaled((b[None, :, None, None] * g).abs().float()).sum(dim=1, keepdim=True)
        if term.shape[-2:] != (height, width):
            term = F.interpolate(term, size=(height, width), mode="bilinear", align_corners=False)
        total = total + term
    return total[:, 0].cpu().numpy(), targets, {"bias_layers": used}


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
    images = _check_images(images)
    target_layer = _check_model(model, target_layer)
    if target_layer is None:
        raise ValueError("model has no target_layer attribute; pass target_layer=<a conv layer>.")
    if not isinstance(iterations, (int, np.integer)) or iterations < 0:
        raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}.")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}.")
    device, dtype = _device_of(model), _dtype_of(model)
    x = images.to(device=device, dtype=dtype)
    tgt = resolve_targets(targets, x.shape[0])
    with _inference_state(model):
        if activations is None:
            ps = _Pass(model, x, target_layer, tgt, keep_graph=False)
            activations, tgt = ps.a.detach(), ps.targets
            logit = ps.target_logits().detach()
        else:
            with torch.no_grad():
                out = model(x)
            tgt = out.argmax(dim=1) if tgt is None else tgt.to(device)
            logit = out.gather(1, tgt[:, None])[:, 0]
        return _opticam_loop(model, x, activations, tgt.to(device), logit, iterations, lr, progress)


def _opticam_loop(model, x, activations, targets, logit, iterations, lr, progress):
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
            from .config import progress as bar
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


def _m_opticam(ps: _Pass, iterations: int = 100, lr: float = 0.1, **_opts):
    signed, info = _opticam_loop(ps.model, ps.x, ps.a.detach(), ps.targets, ps.target_logits().detach(),
                                 iterations, lr, False)
    return signed, {k: info[k] for k in ("iterations", "lr", "initial_score", "final_score", "logit")}


_RUNNERS: dict[str, Callable] = {
    "gradcam": _m_gradient_formula("GradCAM"),
    "gradcampp": _m_gradient_formula("GradCAMPlusPlus"),
    "xgradcam": _m_gradient_formula("XGradCAM"),
    "hirescam": _m_gradient_formula("HiResCAM"),
    "layercam": _m_gradient_formula("LayerCAM"),
    "gradcamelementwise": _m_gradient_formula("GradCAMElementWise"),
    "scorecam": _m_scorecam,
    "ablationcam": _m_ablationcam,
    "eigencam": _m_eigencam,
    "eigengradcam": _m_eigengradcam,
    "segeigencam": _m_segeigencam,
    "kpcacam": _m_kpcacam,
    "fem": _m_fem,
    "shapleycam": _m_shapleycam,
    "finercam": _m_finercam,
    "randomcam": _m_randomcam,
    "opticam": _m_opticam,
}

#: Options each method accepts (through ``options={"opticam": {...}}`` or ``**options``).
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {
    "scorecam": ("chunk", "visible_rows"), "ablationcam": ("chunk",), "kpcacam": ("kernel", "gamma"),
    "fem": ("k",), "randomcam": ("seed",), "finercam": ("alpha", "n_compare"),
    "opticam": ("iterations", "lr"),
}


# --------------------------------------------------------------------------------------------
# The public calls
# --------------------------------------------------------------------------------------------

def _check_options(keys: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None
                   ) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {k: {} for k in keys}
    for name, opts in (options or {}).items():
        key = get_method(name).key
        if not isinstance(opts, Mapping):
            raise TypeError(f"options[{name!r}] must be a dict of keyword arguments, got {opts!r}.")
        allowed = METHOD_OPTIONS.get(key, ())
        bad = sorted(set(opts) - set(allowed))
        if bad:
            raise ValueError(f"{METHODS[key].display} takes no option(s) {bad}; it accepts {list(allowed)}.")
        if key in out:
            out[key].update(opts)
    return out


def compute_cams(model: nn.Module, images: torch.Tensor, methods: Sequence[str] | str | None = None,
                 targets: Any = None, *, target_layer: nn.Module | None = None, batch_size: int = 25,
                 options: Mapping[str, Mapping[str, Any]] | None = None,
                 callback: Callable[[str, int], None] | None = None) -> dict[str, CamResult]:
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
    images = _check_images(images)
    keys = method_keys(methods)
    opts = _check_options(keys, options)
    target_layer = _check_model(model, target_layer)
    if target_layer is None and any(k != "fullgrad" for k in keys):
        raise ValueError(f"{type(model).__name__} has no target_layer attribute; pass "
                         "target_layer=<the layer to explain> (for rVGG: model.target_layer).")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    n = images.shape[0]
    all_targets = resolve_targets(targets, n)
    device, dtype = _device_of(model), _dtype_of(model)
    size = tuple(images.shape[-2:])
    parts: dict[str, list] = {k: [] for k in keys}
    seconds = dict.fromkeys(keys, 0.0)
    shared = 0.0
    needs_pass = [k for k in keys if k != "fullgrad"]
    needs_graph = any(METHODS[k].signal == "gradient" for k in needs_pass)
    with _inference_state(model):
        for start in range(0, n, batch_size):
            x = images[start:start + batch_size].to(device=device, dtype=dtype)
            tgt = None if all_targets is None else all_targets[start:start + batch_size].to(device)
            ps = None
            if needs_pass:
                t0 = _clock(device)
                ps = _Pass(model, fast_layout(x), target_layer, tgt, keep_graph=needs_graph)
                if needs_graph:
                    ps.grad()
                shared += _clock(device) - t0
                tgt = ps.targets
            for key in keys:
                t0 = _clock(device)
                if key == "fullgrad":
                    signed, tgt_used, extras = _fullgrad_maps(model, fast_layout(x), tgt)
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
                seconds[key] += _clock(device) - t0
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
                    extras[name] = np.concatenate([extras[name], value]) if name in extras else value
                elif isinstance(value, (int, float)) and name not in ("iterations", "lr", "seed"):
                    extras[name] = extras.get(name, 0) + value
                elif isinstance(value, list):
                    extras[name] = extras.get(name, []) + value
                else:
                    extras[name] = value
        results[key] = CamResult(
            method=key, scaled=post["scaled"], upsampled=post["upsampled"], low=post["low"],
            signed=signed, targets=np.concatenate([p[1] for p in parts[key]]).astype(np.int64),
            seconds=seconds[key], shared_seconds=shared if key != "fullgrad" else 0.0, extras=extras)
    return results


def activations_and_gradients(model: nn.Module, images: torch.Tensor, targets: Any = None,
                              target_layer: nn.Module | None = None
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What most CAM methods read: the target layer's activations ``A`` and the gradient
    ``G = dy_c / dA`` of the explained logit, each ``(N, K, h, w)``, and the classes ``(N,)``.

    The same pass :func:`compute_cams` shares between methods (eval mode, no parameter
    gradients, the backward pass through the layers after the target layer only).
    """
    images = _check_images(images)
    target_layer = _check_model(model, target_layer)
    if target_layer is None:
        raise ValueError("model has no target_layer attribute; pass target_layer=<a conv layer>.")
    device, dtype = _device_of(model), _dtype_of(model)
    tgt = resolve_targets(targets, images.shape[0])
    with _inference_state(model):
        ps = _Pass(model, images.to(device=device, dtype=dtype), target_layer,
                   None if tgt is None else tgt.to(device), keep_graph=True)
        out = ps.A, ps.G(), ps.targets.cpu().numpy()
        ps.release()
    return out


def saliency(model: nn.Module, images: torch.Tensor, method: str, targets: Any = None, raw: bool = False,
             target_layer: nn.Module | None = None, batch_size: int = 25, **options) -> np.ndarray:
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
    result = compute_cams(model, images, [key], targets, target_layer=target_layer, batch_size=batch_size,
                          options={key: options} if options else None)[key]
    return result.upsampled if raw else result.scaled
