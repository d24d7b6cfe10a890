"""GradCAM of the theory model by autograd: the raw GradCAM of one model (hooks, as
pytorch-grad-cam), and its Monte Carlo over random models, packed into one forward pass."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..config import progress
from ..models import TheoryCNN
from .layout import (
    HIDDEN_ROWS,
    MAP_SIZE,
    POOLED_SIZE,
    as_image,
    check_filters,
    check_hidden_rows,
    check_theory_model,
)


# --------------------------------------------------------------------------------------------
# GradCAM on one model, by autograd
# --------------------------------------------------------------------------------------------


def gradcam_parts(
    model: nn.Module, x: torch.Tensor, class_index: int | Sequence[int] | None = None
) -> dict[str, torch.Tensor]:
    """Everything GradCAM computes, with hooks on ``model.target_layer`` (as pytorch-grad-cam).

    Args:
        model: a network with a ``target_layer`` attribute whose output is ``(N, V, H, W)``
            (:class:`TheoryCNN`: the ReLU, 28x28; rVGG: the last ReLU, 14x14).
        x: a batch the model accepts (``(N, 1, 29, 29)`` for :class:`TheoryCNN`).
        class_index: the class explained: ``None`` (each image's top class, as
            pytorch-grad-cam with ``targets=None``), one ``int`` for every image, or one per image.

    Returns:
        ``logits (N, C)``, ``class_index (N,)``, ``activations (N, V, H, W)``,
        ``gradients (N, V, H, W)`` (of the chosen logit w.r.t. the activations),
        ``weights (N, V)`` (``alpha``: gradients averaged over positions), ``cam (N, H, W)``
        (``ReLU(sum_v alpha_v A_v)``, raw, unscaled). All detached.
    """
    if not hasattr(model, "target_layer"):
        raise ValueError(
            f"{type(model).__name__} has no target_layer attribute; GradCAM needs the layer to explain."
        )
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(
            f"expected a batch of images (N, C, H, W), got "
            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}."
        )
    store: dict[str, torch.Tensor] = {}
    handle = model.target_layer.register_forward_hook(
        lambda module, inputs, output: store.__setitem__("A", output)
    )
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(
                True
            )  # so that the target layer's output is in the graph
            logits = model(x)
            n, num_classes = logits.shape
            if class_index is None:
                chosen = logits.detach().argmax(dim=1).cpu()
            elif isinstance(class_index, (int, np.integer)) and not isinstance(
                class_index, bool
            ):
                chosen = torch.full((n,), int(class_index), dtype=torch.long)
            else:
                chosen = torch.as_tensor(list(class_index), dtype=torch.long)
                if chosen.shape != (n,):
                    raise ValueError(
                        f"class_index has {chosen.numel()} entries for a batch of {n}."
                    )
            if (chosen < 0).any() or (chosen >= num_classes).any():
                raise ValueError(
                    f"class_index must be in 0..{num_classes - 1}, got {chosen.tolist()}."
                )
            acts = store["A"]
            if acts.dim() != 4:
                raise ValueError(
                    f"the target layer's output has shape {tuple(acts.shape)}; expected (N, V, H, W)."
                )
            # the gradient of the chosen logits w.r.t. the activations (no parameter .grad is touched)
            (grads,) = torch.autograd.grad(
                logits.gather(1, chosen.view(-1, 1).to(logits.device)).sum(), acts
            )
    finally:
        handle.remove()
        model.train(was_training)
    acts, grads = acts.detach(), grads.detach()
    weights = grads.mean(dim=(2, 3))
    cam = torch.relu((weights[:, :, None, None] * acts).sum(dim=1))
    return {
        "logits": logits.detach(),
        "class_index": chosen,
        "activations": acts,
        "gradients": grads,
        "weights": weights,
        "cam": cam,
    }


def raw_gradcam(
    model: nn.Module, x: torch.Tensor, class_index: int | Sequence[int] | None = None
) -> torch.Tensor:
    """Raw GradCAM ``ReLU(sum_v alpha_v A_v)`` at ``model.target_layer``, before any min-max
    scaling or resizing: ``(N, H, W)`` (28x28 for :class:`TheoryCNN`). See :func:`gradcam_parts`."""
    return gradcam_parts(model, x, class_index)["cam"]


def predicted_channel_weights(model: TheoryCNN, class_index: int) -> torch.Tensor:
    """Step 2 as a formula: ``alpha_v = (1/784) sum_{visible windows} W_{c,v,window}``, shape ``(V,)``.

    Read from the dense weights only (no image, no convolution weights): :func:`gradcam_parts`
    must give the same weights for any input, which the tests check.
    """
    check_theory_model(model)
    if (
        not isinstance(class_index, (int, np.integer))
        or not 0 <= class_index < model.num_classes
    ):
        raise ValueError(
            f"class_index must be an integer in 0..{model.num_classes - 1}, got {class_index!r}."
        )
    w = model.dense.effective_weight.detach()[int(class_index)].view(
        model.filters, POOLED_SIZE, POOLED_SIZE
    )
    return w.sum(dim=(1, 2)) / MAP_SIZE**2


# --------------------------------------------------------------------------------------------
# Monte Carlo over random models
# --------------------------------------------------------------------------------------------


def _grouped_gradcam(
    big: TheoryCNN,
    x: torch.Tensor,
    groups: int,
    target: str,
    class_index: int | None,
    mirror: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Raw GradCAM of ``groups`` independent models packed into one :class:`TheoryCNN`.

    ``big`` has ``groups * V`` filters. Sub-model ``b`` is the :class:`TheoryCNN` made of filters
    ``b*V .. (b+1)*V - 1`` and of the dense weights that read them (a contiguous block of the
    flattened features). Each logit of the big model is the sum of the sub-models' logits, and
    each of those depends on its own channels only; so the big model's gradient on the channels
    of sub-model ``b`` *is* sub-model ``b``'s gradient, computed by autograd through the real
    layers (max-pool routing included).

    Returns ``(cams, top)``: ``cams (groups, 28, 28)`` is, per sub-model, the raw GradCAM for the
    target, averaged over the classes used (``class_index=None``) and over the model and its
    mirror twin (``mirror=True``: dense weights negated, whose raw GradCAM is
    ``ReLU(-sum_v alpha_v A_v)`` because logits and gradients are linear in the dense weights);
    ``top (groups,)`` is each sub-model's top class (``None`` for the fixed target).
    """
    V = big.filters // groups
    store: dict[str, torch.Tensor] = {}
    h1 = big.target_layer.register_forward_hook(
        lambda m, i, o: store.__setitem__("A", o)
    )
    h2 = big.dense.register_forward_hook(
        lambda m, i, o: store.__setitem__("features", i[0])
    )
    try:
        with torch.enable_grad():
            logits = big(x.detach().clone().requires_grad_(True))  # (1, C)
    finally:
        h1.remove()
        h2.remove()
    acts = store["A"]  # (1, groups*V, 28, 28), in the autograd graph
    num_classes = logits.shape[1]
    classes = (
        [int(class_index)]
        if (target == "fixed" and class_index is not None)
        else list(range(num_classes))
    )
    alphas = []
    for j, c in enumerate(classes):
        (grad,) = torch.autograd.grad(
            logits[0, c], acts, retain_graph=j < len(classes) - 1
        )
        alphas.append(grad.mean(dim=(2, 3)).view(groups, V))
    alpha = torch.stack(alphas, dim=1)  # (groups, classes, V)
    pre = torch.bmm(
        alpha, acts.detach().view(groups, V, MAP_SIZE * MAP_SIZE)
    )  # sum_v alpha_v A_v
    if target == "fixed":
        # with the twin: (ReLU(pre) + ReLU(-pre)) / 2 = |pre| / 2
        cam = 0.5 * pre.abs() if mirror else torch.relu(pre)
        cam = cam.mean(dim=1) if cam.shape[1] > 1 else cam[:, 0]
        return cam.view(groups, MAP_SIZE, MAP_SIZE), None
    # top class: each sub-model's own logits (the dense layer restricted to its block of features)
    feats = store["features"].detach().view(groups, -1)
    weight = big.dense.effective_weight.detach().view(num_classes, groups, -1)
    sub_logits = torch.einsum("gf,cgf->gc", feats, weight)  # (groups, C)
    scale = float(logits.detach().abs().max()) + 1e-12
    if not torch.allclose(
        sub_logits.sum(0), logits.detach()[0], rtol=1e-4, atol=1e-4 * scale
    ):
        raise RuntimeError(
            "the sub-models' logits do not add up to the packed model's logits."
        )
    rows = torch.arange(groups)
    top = sub_logits.argmax(1)
    cam = torch.relu(pre[rows, top])
    if mirror:  # the twin's logits are -logits: its top class is our bottom class
        cam = 0.5 * (cam + torch.relu(-pre[rows, sub_logits.argmin(1)]))
    return cam.view(groups, MAP_SIZE, MAP_SIZE), top


def monte_carlo_gradcam(
    image,
    filters: int,
    n_models: int,
    target: str = "fixed",
    class_index: int | None = 0,
    seed: int = 0,
    batch: int | None = None,
    num_classes: int = 10,
    hidden_rows: int = HIDDEN_ROWS,
    sigma_w: float = 1.0,
    sigma_W: float = 1.0,
    mirror: bool = False,
) -> dict:
    """Monte Carlo of the raw GradCAM of random :class:`TheoryCNN` models on one image.

    Each model has fresh i.i.d. Gaussian weights (``N(0, sigma_w^2)`` convolution,
    ``N(0, sigma_W^2)`` dense, zero behind the wall); its GradCAM is taken by autograd at the
    ReLU (the target layer, 28x28), raw (no min-max scaling). For speed, ``batch`` models are
    packed into one :class:`TheoryCNN` with ``batch * V`` filters and evaluated by one forward
    pass and one backward pass per class; the packing is exact (see :func:`_grouped_gradcam`,
    and the tests, which compare with :func:`raw_gradcam` on each model built separately).

    Args:
        image: one 29x29 image (see :func:`expected_gradcam`).
        filters: ``V``, filters per model.
        n_models: number of independent models (>= 2).
        target: ``"fixed"`` (the class ``class_index``) or ``"top"`` (each model's top-scoring
            class, what pytorch-grad-cam does with ``targets=None``).
        class_index: for ``"fixed"``: the class (``0 <= class_index < num_classes``), or ``None``
            to average, for each model, the GradCAMs of all its classes (each one is a
            fixed-class GradCAM with the same expectation; this lowers the variance).
        seed: seed of the weights (results depend on ``seed`` and ``batch``).
        batch: models per packed forward pass (default: about 4096 filters per pass).
        num_classes, hidden_rows, sigma_w, sigma_W: the models' construction.
        mirror: also use each model's mirror twin (dense weights negated, an equally likely
            draw): an antithetic pair whose raw GradCAM needs no new backward pass.

    Returns:
        dict with ``mean`` and ``sem`` (``(28, 28)`` float64: the Monte Carlo mean and its
        standard error, over models), ``sides`` (``{"front": (mean, sem), "behind": (mean,
        sem)}``: the raw GradCAM summed over map rows 0..13, in front of the wall, and over rows
        14..27, behind it, per model, then averaged), ``n_models``, ``filters``, ``target``, ``class_index``,
        ``mirror``, ``seconds``, and ``class_counts`` (top target: how often each class won).
    """
    filters = check_filters(filters)
    if (
        isinstance(n_models, bool)
        or not isinstance(n_models, (int, np.integer))
        or n_models < 2
    ):
        raise ValueError(
            f"n_models must be an integer >= 2 (a standard error needs two models), got {n_models!r}."
        )
    if target not in ("fixed", "top"):
        raise ValueError(f"target must be 'fixed' or 'top', got {target!r}.")
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, (int, np.integer))
        or num_classes < 1
    ):
        raise ValueError(
            f"num_classes must be a positive integer, got {num_classes!r}."
        )
    if (
        target == "fixed"
        and class_index is not None
        and (
            isinstance(class_index, bool)
            or not isinstance(class_index, (int, np.integer))
            or not 0 <= class_index < num_classes
        )
    ):
        raise ValueError(
            f"class_index must be None or an integer in 0..{num_classes - 1}, got {class_index!r}."
        )
    hidden_rows = check_hidden_rows(hidden_rows)
    if not (sigma_w > 0 and sigma_W > 0):
        raise ValueError(
            f"sigma_w and sigma_W must be positive, got {sigma_w!r}, {sigma_W!r}."
        )
    if batch is None:
        batch = max(1, 4096 // filters)
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}.")
    x = as_image(image)
    n_models, batch = int(n_models), int(min(batch, n_models))
    rng = np.random.default_rng(
        int(seed)
    )  # numpy's ziggurat sampler: a few times faster than torch's
    visible = POOLED_SIZE - hidden_rows
    total = torch.zeros(MAP_SIZE, MAP_SIZE, dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    side_total = torch.zeros(
        2, dtype=torch.float64
    )  # per model: sum over map rows 0..13, 14..27
    side_total_sq = torch.zeros_like(side_total)
    counts = torch.zeros(num_classes, dtype=torch.long)
    packed: dict[int, TheoryCNN] = {}
    start = time.perf_counter()
    done = 0
    bar = progress(
        total=n_models, desc=f"GradCAM Monte Carlo, V={filters}", leave=False
    )
    try:
        while done < n_models:
            groups = min(batch, n_models - done)
            if groups not in packed:
                big = TheoryCNN(
                    filters=groups * filters,
                    num_classes=num_classes,
                    hidden_rows=hidden_rows,
                    generator=torch.Generator().manual_seed(0),
                ).eval()
                for param in big.parameters():
                    param.requires_grad_(False)
                packed = {groups: big}
            big = packed[groups]
            with (
                torch.no_grad()
            ):  # fresh weights; the dense weights behind the wall stay zero
                big.conv.weight.copy_(
                    torch.from_numpy(
                        rng.standard_normal(
                            tuple(big.conv.weight.shape), dtype=np.float32
                        )
                    ).mul_(float(sigma_w))
                )
                dense = big.dense.weight.view(
                    num_classes, groups * filters, POOLED_SIZE, POOLED_SIZE
                )
                dense[:, :, :visible, :].copy_(
                    torch.from_numpy(
                        rng.standard_normal(
                            (num_classes, groups * filters, visible, POOLED_SIZE),
                            dtype=np.float32,
                        )
                    ).mul_(float(sigma_W))
                )
            cams, top = _grouped_gradcam(big, x, groups, target, class_index, mirror)
            total += cams.sum(dim=0, dtype=torch.float64)
            total_sq += (cams * cams).sum(dim=0, dtype=torch.float64)
            sides = cams.view(groups, 2, -1).sum(
                dim=2, dtype=torch.float64
            )  # (groups, 2)
            side_total += sides.sum(dim=0)
            side_total_sq += (sides * sides).sum(dim=0)
            if top is not None:
                counts += torch.bincount(top, minlength=num_classes)
            done += groups
            bar.update(groups)
    finally:
        bar.close()
    mean = total / n_models
    var = torch.clamp(total_sq - n_models * mean**2, min=0.0) / (n_models - 1)
    side_mean = side_total / n_models
    side_var = torch.clamp(side_total_sq - n_models * side_mean**2, min=0.0) / (
        n_models - 1
    )
    side_sem = torch.sqrt(side_var / n_models)
    out = {
        "mean": mean.numpy(),
        "sem": torch.sqrt(var / n_models).numpy(),
        "n_models": n_models,
        "sides": {
            "front": (float(side_mean[0]), float(side_sem[0])),
            "behind": (float(side_mean[1]), float(side_sem[1])),
        },
        "filters": filters,
        "target": target,
        "class_index": class_index if target == "fixed" else None,
        "mirror": bool(mirror),
        "seconds": time.perf_counter() - start,
    }
    if target == "top":
        out["class_counts"] = counts.numpy()
    return out
