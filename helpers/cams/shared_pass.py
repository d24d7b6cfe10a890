"""The forward/backward pass that the methods of one call share, and the checks before it.

**One pass for many methods.** Most methods need only the target layer's activations ``A``
and the gradient ``G = dy_c/dA`` of the explained logit. :class:`SharedPass` runs the model
once per batch, with a hook that turns ``A`` into a leaf of the autograd graph (the layers
before it build no graph), gets ``G`` by back-propagating through the layers *after* the
target layer only, and hands ``(A, G)`` to each method (for most of them, pytorch-grad-cam's
own formula, :mod:`helpers.cams.library`): same numbers as the library, one forward pass for
all of them.

Also here: the checks of the images, the model and the classes to explain
(:func:`check_images`, :func:`check_model`, :func:`resolve_targets`), the model's inference
state for the duration of a call, and :func:`fast_layout`, the memory layout every pass uses.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models import VGG


def check_images(images: Any) -> torch.Tensor:
    """``images`` if it is a finite, floating-point batch ``(N, C, H, W)`` with ``N >= 1``;
    else a TypeError or ValueError that says how to fix it."""
    if isinstance(images, np.ndarray):
        raise TypeError(
            "images must be a torch.Tensor (N, C, H, W); convert a NumPy array with "
            "torch.from_numpy(array).float() (and normalize it as the model expects)."
        )
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"images must be a torch.Tensor (N, C, H, W), got {type(images).__name__}."
        )
    if images.dim() == 3:
        raise ValueError(
            f"expected a batch (N, C, H, W), got shape {tuple(images.shape)}; add a "
            "batch dimension with images.unsqueeze(0) for a single image."
        )
    if images.dim() != 4:
        raise ValueError(
            f"expected a batch (N, C, H, W), got shape {tuple(images.shape)}."
        )
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch (N = 0); pass at least one image.")
    if not torch.is_floating_point(images):
        raise TypeError(
            f"images must be floating point (normalized as the model expects), got "
            f"{images.dtype}; for uint8 images use helpers.data.normalize(x / 255)."
        )
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values.")
    return images


def check_model(model: Any, target_layer: nn.Module | None) -> nn.Module | None:
    """The layer to explain: ``target_layer``, else ``model.target_layer``, else ``None``;
    checked to be a module of ``model``, itself a ``nn.Module`` with parameters."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if next(model.parameters(), None) is None:
        raise ValueError(
            "model has no parameters; expected a trained classifier such as rVGG."
        )
    if target_layer is None:
        target_layer = getattr(model, "target_layer", None)
    if target_layer is None:
        return None
    if not isinstance(target_layer, nn.Module):
        raise TypeError(
            f"target_layer must be an nn.Module of the model, got {type(target_layer).__name__}."
        )
    if not any(m is target_layer for m in model.modules()):
        raise ValueError(
            "target_layer is not a module of this model; pass one of its layers "
            "(for rVGG: model.target_layer, the ReLU after conv5_3)."
        )
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
        values = (
            targets.detach().cpu().reshape(-1).tolist() if targets.dim() <= 1 else None
        )
        if values is None:
            raise ValueError(
                f"targets must be one class index per image, got a tensor of shape "
                f"{tuple(targets.shape)}."
            )
    else:
        try:
            values = list(targets)
        except TypeError:
            raise TypeError(
                f"targets must be None, an int or a sequence of class indices, got "
                f"{type(targets).__name__}."
            ) from None
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
        raise ValueError(
            f"targets has {len(out)} entries but the batch has {n} images; pass one "
            "class per image (or None to explain each image's top class)."
        )
    return torch.tensor(out, dtype=torch.long)


@contextlib.contextmanager
def inference_state(model: nn.Module) -> Iterator[None]:
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


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's parameters."""
    return next(model.parameters()).device


def dtype_of(model: nn.Module) -> torch.dtype:
    """The dtype of the model's parameters."""
    return next(model.parameters()).dtype


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` after the device's queued work is done (CUDA runs asynchronously,
    so a method's time would otherwise be charged to the next one)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def fast_layout(x: torch.Tensor) -> torch.Tensor:
    """channels_last for 4-D images: 2-3x faster convolutions on CPU and GPU alike.

    Every pass of :func:`helpers.cams.compute_cams` runs on this layout;
    :mod:`helpers.cams.reference` gives pytorch-grad-cam the same layout, so that both run the
    same kernels (another layout is another order of float sums, see there)."""
    return x.contiguous(memory_format=torch.channels_last)


def _vgg_head(model: nn.Module, target_layer: nn.Module) -> Callable | None:
    """The layers after ``target_layer`` as a function, for torchvision-VGG-like models
    (rVGG): ``features[i+1:] -> avgpool -> flatten -> classifier``; ``None`` otherwise."""
    if not isinstance(model, VGG):
        return None
    for i, m in enumerate(model.features):
        if m is target_layer:
            rest = model.features[i + 1 :]

            def head(a: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
                return model.classifier(torch.flatten(model.avgpool(rest(a)), 1))

            return head
    return None


def checked_targets(targets: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
    """The classes to explain: ``targets`` on the logits' device, or each image's top class.

    Raises:
        ValueError: when a target is not a class index of the model's ``logits.shape[1]`` classes.
    """
    num_classes = int(logits.shape[1])
    if targets is None:
        return logits.detach().argmax(dim=1)
    targets = targets.to(logits.device)
    if targets.numel() and (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(
            f"targets must be class indices in 0..{num_classes - 1} (the model has {num_classes} "
            f"classes), got {targets.min().item()}..{targets.max().item()}. Pass valid classes, "
            "or targets=None to explain each image's top class."
        )
    return targets


class SharedPass:
    """The forward pass of one batch that every method of a :func:`helpers.cams.compute_cams`
    call shares.

    Holds the images ``x``, the target-layer activations ``a`` (a leaf of the autograd graph
    built by the layers after the target layer only), the logits, the explained classes,
    and, on demand, the gradient ``G`` and the Hessian-vector product ShapleyCAM needs.
    """

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        target_layer: nn.Module,
        targets: torch.Tensor | None,
        keep_graph: bool,
    ) -> None:
        self.model, self.x, self.target_layer = model, x, target_layer
        store: dict[str, torch.Tensor] = {}

        def hook(_m, _inp, out):
            if not isinstance(out, torch.Tensor):
                raise TypeError(
                    f"the target layer returns {type(out).__name__}, expected a tensor "
                    "(N, C, h, w); choose a convolutional layer or its ReLU."
                )
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
            raise ValueError(
                "the target layer was not called in the model's forward pass; pass a "
                "layer the model uses (for rVGG: model.target_layer)."
            )
        a = store["a"]
        if a.dim() != 4:
            raise ValueError(
                f"the target layer's output has shape {tuple(a.shape)}, expected "
                "(N, C, h, w) feature maps; CAM methods need a convolutional layer."
            )
        if logits.dim() != 2:
            raise ValueError(
                f"the model returns shape {tuple(logits.shape)}, expected logits (N, classes)."
            )
        self.a, self.logits = a, logits
        self.num_classes = int(logits.shape[1])
        self.targets = checked_targets(targets, logits)
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
        """The explained logit of each image, ``(B,)``."""
        return self.logits.gather(1, self.targets[:, None])[:, 0]

    def grad(self) -> torch.Tensor:
        """``G = d(sum_i y_i[t_i]) / dA`` through the layers after the target layer."""
        if self._grad is None:
            if not self.keep_graph:
                raise RuntimeError(
                    "internal: gradients requested from a pass without graph."
                )
            (g,) = torch.autograd.grad(
                self.target_logits().sum(),
                self.a,
                retain_graph=True,
                create_graph=True,
                allow_unused=True,
            )
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
                (h,) = torch.autograd.grad(
                    g,
                    self.a,
                    grad_outputs=self.a.detach(),
                    retain_graph=True,
                    allow_unused=True,
                )
                self._hvp = torch.zeros_like(self.a) if h is None else h
        return self._hvp

    def grad_of(self, objective: torch.Tensor) -> torch.Tensor:
        """``d objective / dA`` (another objective than the explained logits: Finer-CAM's)."""
        (g,) = torch.autograd.grad(
            objective, self.a, retain_graph=True, allow_unused=True
        )
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
                if check.shape != ref.shape or not torch.allclose(
                    check, ref, rtol=1e-4, atol=1e-4
                ):
                    head = None  # the model's forward is not features -> avgpool -> classifier
            if head is None:
                model, target_layer, x = self.model, self.target_layer, self.x

                def head(
                    a: torch.Tensor, rows: torch.Tensor | None = None
                ) -> torch.Tensor:
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
        """Drop the autograd graph (the batch is done)."""
        self._grad = self._hvp = None
        self.a = self.a.detach()
        self.logits = self.logits.detach()
