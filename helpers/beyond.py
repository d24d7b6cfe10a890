"""Beyond the paper: its open questions, answered by experiments that run in the book.

Every experiment is a function that returns plain data (dicts, lists of row dicts, NumPy
arrays); the chapter "Beyond the paper" draws them. The questions:

1. :func:`method_leak_report` -- every CAM method of the registry against the wall: did the
   global/element-wise prediction hold? (from :mod:`helpers.evaluate`'s Table 1, judged by
   :func:`helpers.results.verdict`)
2. :func:`conv_wall_comparison` -- the wall moved from the dense weights to the activations,
   after or at the CAM target layer (:mod:`helpers.variants`); same function, other maps.
3. :func:`wall_height_sweep` -- several wall heights: exact unseen rows and mu per method.
   To keep it affordable, every height shares the *baseline's* convolutional features and
   only the classifier is retrained for each wall (:func:`train_walled_head`).
4. :func:`train_or_load_resnet`, :func:`resnet_report` -- a small ResNet with a walled
   average pool; :func:`gap_gradcam_identity` -- for such a head GradCAM *is* the class
   activation map of the whole map, hidden rows included.
5. :func:`deep_gradcam_monte_carlo` -- the theory model with ``L`` dense layers (``L - 1``
   hidden ReLU layers) at initialization, fixed class and top class.
6. :func:`conflict_report` -- a class-A image above the wall, a class-B image below it.
7. :func:`wall_aware_upsample`, :func:`hirescam_repair_report` -- HiResCAM whose zero region is
   the unseen strip and nothing more.

Sizes per profile: :data:`SETTINGS` (the quick profile uses fewer images than the paper's 100
and a few methods for the per-model measurements; the chapter says so where it matters).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import data as D
from .config import IMAGE_SIZE, MAP_SIZE, Profile, cache_dir, ensure_dir, get_device, get_profile, progress, seed_everything
from .models import RVGG, WalledLinear, check_image_batch, wall_mask
from .variants import WalledResNet, conv_walled_from, map_row_coverage, walled_resnet

__all__ = [
    "BeyondSettings",
    "SETTINGS",
    "beyond_settings",
    "measure_methods",
    # 1
    "method_leak_report",
    "outcome_reason",
    # 2
    "conv_wall_prediction",
    "conv_wall_comparison",
    # 3
    "target_features",
    "train_walled_head",
    "wall_height_sweep",
    # 4
    "resnet_training_config",
    "train_or_load_resnet",
    "gap_gradcam_identity",
    "resnet_report",
    "labelled_images",
    "objects_above",
    # 5
    "twin_digit_image",
    "deep_gradcam_reduced",
    "deep_gradcam_monte_carlo",
    # 6
    "conflict_report",
    # 7
    "bilinear_matrix",
    "erf_kernels",
    "wall_aware_upsample",
    "energy_in_boxes",
    "hirescam_repair_report",
    "html_table",
    "fwhm",
]


# =============================================================================================
# Settings
# =============================================================================================

@dataclass(frozen=True)
class BeyondSettings:
    """Sizes of the chapter's experiments in a profile.

    Attributes:
        methods: CAM methods measured per model (Opti-CAM is left out of the per-model
            measurements: about 10 s per image on 2 CPU cores; Table 1 has it).
        eval_images: stacked images per measurement (questions 2, 4, 6).
        sweep_heights: wall heights (hidden map rows) of question 3.
        sweep_methods: methods of the wall-height sweep.
        sweep_images: stacked images per wall height.
        probe_images: images whose features train each wall height's classifier.
        probe_epochs: epochs of that training.
        resnet_width, resnet_wall_rows, resnet_train_images, resnet_epochs, resnet_batch,
        resnet_lr: the ResNet of question 4 (trained on a fixed set of synthetic images).
        theory_filters, theory_hidden, theory_models, theory_depths: question 5.
        repair_images: images of question 7; erf_images: Gaussian inputs that measure the effective
            receptive fields there.
        batch_size: images per CAM pass.
    """

    methods: tuple[str, ...]
    eval_images: int
    sweep_heights: tuple[int, ...]
    sweep_methods: tuple[str, ...]
    sweep_images: int
    probe_images: int
    probe_epochs: int
    resnet_width: float
    resnet_wall_rows: int
    resnet_train_images: int
    resnet_epochs: int
    resnet_batch: int
    resnet_lr: float
    theory_filters: int
    theory_hidden: int
    theory_models: int
    theory_depths: tuple[int, ...]
    repair_images: int
    erf_images: int = 4
    batch_size: int = 25


_METHODS_QUICK = ("gradcam", "gradcampp", "xgradcam", "scorecam", "ablationcam", "eigencam", "hirescam",
                  "layercam", "gradcamelementwise", "fullgrad", "eigengradcam", "kpcacam", "fem", "randomcam")

SETTINGS: dict[str, BeyondSettings] = {
    "quick": BeyondSettings(
        methods=_METHODS_QUICK, eval_images=20,
        sweep_heights=(0, 3, 6, 9, 11, 13),
        sweep_methods=("gradcam", "gradcampp", "xgradcam", "scorecam", "eigencam", "layercam", "hirescam"),
        sweep_images=12, probe_images=512, probe_epochs=10,
        resnet_width=0.5, resnet_wall_rows=5, resnet_train_images=1024, resnet_epochs=12, resnet_batch=32,
        resnet_lr=0.1,
        theory_filters=256, theory_hidden=256, theory_models=1000, theory_depths=(1, 2, 3),
        repair_images=32, erf_images=4, batch_size=25),
    "full": BeyondSettings(
        methods=_METHODS_QUICK + ("opticam",), eval_images=100,
        sweep_heights=(0, 3, 6, 9, 11, 12, 13),
        sweep_methods=_METHODS_QUICK, sweep_images=100, probe_images=4000, probe_epochs=10,
        resnet_width=4.0, resnet_wall_rows=5, resnet_train_images=50000, resnet_epochs=30, resnet_batch=128,
        resnet_lr=0.1,
        theory_filters=256, theory_hidden=1024, theory_models=20000, theory_depths=(1, 2, 3, 4),
        repair_images=100, erf_images=16, batch_size=50),
}


def beyond_settings(profile: str | Profile | None = None) -> BeyondSettings:
    """The :class:`BeyondSettings` of a profile (``None``: ``$CAMWALLS_PROFILE``)."""
    return SETTINGS[get_profile(profile).name]


def _check_images(images: Any, name: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (N, 3, 224, 224), got {type(images).__name__}.")
    check_image_batch(images)
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty; pass at least one image.")
    return images


# =============================================================================================
# Measuring methods on a model
# =============================================================================================

def measure_methods(model: nn.Module, images: torch.Tensor, methods: Sequence[str],
                    rows: Sequence[int] | None = None, targets: Any = None, batch_size: int = 25,
                    keep_maps: int = 0) -> dict[str, dict[str, Any]]:
    """Every method of ``methods`` on ``images`` with :func:`helpers.cams.compute_cams`, and the
    chapter's per-image numbers.

    Args:
        model: a classifier with a ``target_layer`` (rVGG, its variants, :class:`WalledResNet`).
        images: ``(N, 3, 224, 224)`` normalized images.
        methods: registry keys.
        rows: the unseen image rows for mu (default: :func:`helpers.wall.unseen_rows` of the model;
            a model without unseen rows gets mu = 0).
        targets: classes to explain (``None``: each image's top class).
        batch_size: images per shared pass.
        keep_maps: keep the scaled maps and the 14x14 maps of the first ``keep_maps`` images.

    Returns:
        ``{method: {"mu": (N,), "zero": (N,) fraction of exactly-zero pixels, "first_zero_row":
        (N,), "hidden_map_zero": (N,) (1.0 where the 14x14 map is exactly zero on every map
        row the head does not read, 0.0 where not, NaN where that does not apply: no hidden rows,
        or FullGrad, whose map is not at the target layer), "hidden_map_constant": (N,) (likewise:
        1.0 where those rows hold one single value), "peak_row": (N,) row of the scaled map's maximum, "targets": (N,),
        "seconds": float, "scaled": (k, 224, 224), "low": (k, 14, 14)}}``.
    """
    from . import cams, metrics, wall

    images = _check_images(images)
    if rows is None:
        rows = wall.unseen_rows(model, images.shape[-1])
    rows = np.asarray(rows, dtype=int)
    try:
        visible = np.asarray(wall.visible_map_rows(model), dtype=int)
    except (ValueError, AttributeError):
        visible = None
    results = cams.compute_cams(model, images, list(methods), targets, batch_size=batch_size)
    out: dict[str, dict[str, Any]] = {}
    for key, res in results.items():
        scaled = res.scaled
        mu = (metrics.dead_zone_share(scaled, rows=rows) if rows.size else np.zeros(len(scaled)))
        low = res.low
        if visible is not None and low.shape[1] == MAP_SIZE and visible.size < MAP_SIZE:
            hidden = np.setdiff1d(np.arange(MAP_SIZE), visible)
            behind = low[:, hidden, :].reshape(len(low), -1)
            hidden_zero = np.all(behind == 0, axis=1).astype(float)
            hidden_constant = np.all(behind == behind[:, :1], axis=1).astype(float)
        else:  # no hidden map rows, or a map not at the target layer (FullGrad): not applicable
            hidden_zero = np.full(len(low), np.nan)
            hidden_constant = np.full(len(low), np.nan)
        flat = scaled.reshape(len(scaled), -1).argmax(axis=1)
        out[key] = {
            "mu": np.asarray(mu, dtype=float),
            "zero": np.asarray(metrics.zero_fraction(scaled), dtype=float),
            "first_zero_row": np.asarray(metrics.first_zero_row(scaled)),
            "hidden_map_zero": hidden_zero,
            "hidden_map_constant": hidden_constant,
            "peak_row": flat // scaled.shape[2],
            "targets": res.targets,
            "seconds": float(res.total_seconds),
            "scaled": scaled[:keep_maps].copy(),
            "low": low[:keep_maps].copy(),
        }
    return out


def _summary_rows(measured: dict[str, dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    from .cams import METHODS

    rows = []
    for key, m in measured.items():
        rows.append({**extra, "method": key, "display": METHODS[key].display,
                     "mu_mean": float(np.mean(m["mu"])), "mu_std": float(np.std(m["mu"])),
                     "zero_mean": float(np.mean(m["zero"])),
                     "hidden_map_zero_share": (float(np.mean(m["hidden_map_zero"]))
                                               if np.isfinite(m["hidden_map_zero"]).all() else float("nan")),
                     "hidden_map_constant_share": (float(np.mean(m["hidden_map_constant"]))
                                                   if np.isfinite(m["hidden_map_constant"]).all() else float("nan")),
                     "n": int(len(m["mu"]))})
    return rows


# =============================================================================================
# 1. Every method against the wall
# =============================================================================================

def method_leak_report(table: Any) -> list[dict[str, Any]]:
    """Prediction against observation for every method of a Table 1, on the walled model.

    Args:
        table: the results table (:func:`helpers.results.table`) or anything it accepts, e.g.
            :func:`helpers.evaluate.table1`'s rows; its ``"walled"`` rows are used.

    Returns:
        One row per (method, stack set), in the registry's order: ``method``, ``display``,
        ``set``, ``weights``, ``signal``, ``prediction``, ``mu_mean``, ``positive_share`` (share
        of the images with mu > 0), ``observed`` (``"leaks"`` or ``"blind"``: the book's one
        criterion, :func:`helpers.results.verdict`), ``agrees`` (bool; a ``"may leak"``
        prediction agrees with either outcome, :func:`helpers.results.prediction_held`).

    Raises:
        ValueError: a table without rows of the walled model.
    """
    from .cams import METHODS
    from .results import prediction_held, verdict
    from .results import table as results_table

    df = table if isinstance(table, pd.DataFrame) else results_table(table)
    walled = df[df["model"] == "walled"]
    if walled.empty:
        raise ValueError("the table has no rows of the walled model; expected rows with "
                         "model='walled', method and mu_mean (helpers.evaluate's Table 1).")
    out = []
    for row in walled.to_dict("records"):
        m = METHODS[row["method"]]
        v = verdict(row)
        out.append({"method": m.key, "display": m.display, "set": row["set"],
                    "weights": m.weights, "signal": m.signal, "prediction": m.prediction,
                    "mu_mean": float(row["mu_mean"]), "positive_share": v.positive_share,
                    "observed": v.observed, "agrees": prediction_held(m.prediction, v) is not False})
    order = {k: i for i, k in enumerate(METHODS)}
    sets = {name: i for i, name in enumerate(dict.fromkeys(r["set"] for r in out))}
    return sorted(out, key=lambda r: (order.get(r["method"], 99), sets[r["set"]]))


#: Why a method's outcome behind the wall is what it is, when its weights alone do not decide it
#: (``(if blind, if it leaks)``).
_OUTCOME_REASONS = {
    "fullgrad": (
        "FullGrad sums gradients (of the input and of every bias) times values; no unit whose "
        "receptive field lies wholly in the unseen rows receives any gradient, and the coarser "
        "layers' upsampled terms stop above the wall too: blind by geometry, not by its weights",
        "FullGrad's per-layer terms are upsampled from coarser grids, and a seen unit's upsampled "
        "footprint reaches below the wall"),
    "eigengradcam": (
        "EigenGradCAM projects the centred products G*A; behind the wall they are all 0, so the map "
        "there is one constant, which was not positive here",
        "EigenGradCAM projects the centred products G*A; behind the wall they are all 0, so the map "
        "there is one constant, positive here: a flat block"),
    "segeigencam": (
        "Seg-Eigen-CAM projects the centred products |G|*A: a constant behind the wall, not positive here",
        "Seg-Eigen-CAM projects the centred products |G|*A: a constant behind the wall, positive here"),
    "layercam": (
        "LayerCAM weights each position by its own positive gradient, zero behind the wall",
        "LayerCAM should be zero behind the wall (its gradients are); a non-zero value means the "
        "gradient there is not zero, i.e. the wall leaks"),
    "hirescam": (
        "HiResCAM weights each position by its own gradient, zero behind the wall",
        "HiResCAM should be zero behind the wall; a non-zero value means the wall leaks"),
    "gradcamelementwise": (
        "GradCAM-ElementWise sums ReLU(G*A) position by position, zero behind the wall",
        "GradCAM-ElementWise should be zero behind the wall; a non-zero value means the wall leaks"),
}


def outcome_reason(method: str, observed: str) -> str:
    """One sentence on why ``method`` is ``observed`` (``"blind"`` or ``"leaks"``) behind the wall:
    a specific reason where the weights alone do not decide it, else the registry's grouping."""
    from .cams import get_method

    m = get_method(method)
    if observed not in ("blind", "leaks"):
        raise ValueError(f"observed must be 'blind' or 'leaks', got {observed!r}.")
    if m.key in _OUTCOME_REASONS:
        return _OUTCOME_REASONS[m.key][0 if observed == "blind" else 1]
    if m.weights == "global":
        if observed == "leaks":
            return (f"{m.display} weights whole activation maps, which are not zero behind the wall")
        return (f"{m.display} weights whole activation maps; they happened to cancel behind the wall "
                "on these images")
    return f"{m.display} has {m.weights} weights"


# =============================================================================================
# 2. The wall at the convolutional level
# =============================================================================================

#: Methods whose map is a *centred* projection of the channels (principal directions after
#: removing each channel's mean) or a kernel projection: an all-zero activation vector is sent
#: to a constant, not to zero.
_CONSTANT_BEHIND = {
    "eigencam": "projection of the centred activations: a zero vector goes to -mean . v, a constant",
    "eigengradcam": "projection of the centred products G*A: zero goes to a constant",
    "segeigencam": "projection of the centred products |G|*A: zero goes to a constant",
    "kpcacam": "kernel projection: k(0, a_i) is not zero (sigmoid kernel), so zero goes to a constant",
}


def conv_wall_prediction(method: str, placement: str) -> tuple[str, str]:
    """What a method must show behind the wall when the wall zeroes the activations.

    Args:
        method: a registry key.
        placement: ``"dense"`` (the paper's wall), ``"after"`` or ``"at"`` the CAM target layer.

    Returns:
        ``(prediction, reason)`` with ``prediction`` one of ``"as the dense wall"``,
        ``"zero"`` (the 14x14 map is exactly zero on the hidden rows) and ``"constant"`` (a
        constant on the hidden rows, which leaks when positive).
    """
    from .cams import get_method

    m = get_method(method)
    if placement not in ("dense", "after", "at"):
        raise ValueError(f"placement must be 'dense', 'after' or 'at', got {placement!r}.")
    if placement in ("dense", "after"):
        return ("as the dense wall", "the target layer's activations and gradients are those of "
                "the dense-walled model (same weights, same function)")
    if m.signal == "all layers":
        return ("as the dense wall", "FullGrad does not read the target layer; it reads the "
                "input gradient and the bias gradients of every layer, which the wall's placement "
                "does not change")
    if m.key in _CONSTANT_BEHIND:
        return ("constant", _CONSTANT_BEHIND[m.key])
    return ("zero", "the map is a position-wise combination sum_k w_k(s) A^k(s) of the activations, "
            "and A(s) = 0 behind the wall")


def conv_wall_comparison(walled: RVGG, images: torch.Tensor, methods: Sequence[str],
                         batch_size: int = 25, keep_maps: int = 1) -> dict[str, Any]:
    """The paper's dense-walled rVGG and its two conv-walled twins (same weights) on the same
    images: logits, and every method's maps.

    Args:
        walled: a trained dense-walled rVGG.
        images: ``(N, 3, 224, 224)`` stacked images.
        methods: registry keys.
        batch_size, keep_maps: as in :func:`measure_methods`.

    Returns:
        ``{"logit_max_diff": {variant: float}, "rows": [...], "measured": {variant: {method: ...}},
        "variants": [...]}``; each row has ``variant``, ``method``, ``mu_mean``, ``mu_std``,
        ``zero_mean``, ``hidden_map_zero_share``, ``prediction``, ``reason``.
    """
    images = _check_images(images)
    variants: dict[str, nn.Module] = {"dense": walled.eval(),
                                      "after": conv_walled_from(walled, "after"),
                                      "at": conv_walled_from(walled, "at")}
    param = next(walled.parameters())
    with torch.no_grad():
        x = images[: min(len(images), 8)].to(param.device, param.dtype)
        ref = walled(x)
        diffs = {name: float((m(x) - ref).abs().max()) for name, m in variants.items()}
    measured, rows = {}, []
    for name, model in variants.items():
        measured[name] = measure_methods(model, images, methods, batch_size=batch_size, keep_maps=keep_maps)
        for row in _summary_rows(measured[name], variant=name):
            row["prediction"], row["reason"] = conv_wall_prediction(row["method"], name)
            rows.append(row)
    return {"variants": list(variants), "logit_max_diff": diffs, "rows": rows, "measured": measured}


# =============================================================================================
# 3. Wall height
# =============================================================================================

@torch.no_grad()
def target_features(model: RVGG, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """The CAM target layer's output ``(N, C, 14, 14)`` of an rVGG (``model.features``), eval mode."""
    images = _check_images(images)
    param = next(model.parameters())
    was = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(param.device, param.dtype).contiguous(memory_format=torch.channels_last)
            out.append(model.features(x).float().cpu())
    finally:
        model.train(was)
    return torch.cat(out).contiguous()


def train_walled_head(baseline: RVGG, features: torch.Tensor, labels: torch.Tensor, wall_rows: int,
                      epochs: int = 10, lr: float = 1e-3, batch_size: int = 64, seed: int = 0
                      ) -> tuple[RVGG, dict[str, Any]]:
    """An rVGG with the baseline's convolutional features (copied, frozen) and a classifier with
    a wall of ``wall_rows`` hidden map rows, trained from scratch on cached features.

    Args:
        baseline: an rVGG whose ``features`` are reused (normally the unwalled baseline).
        features: ``(N, C, 14, 14)`` target-layer outputs of ``baseline`` (:func:`target_features`).
        labels: ``(N,)`` classes.
        wall_rows: hidden map rows of the new classifier (0..14).
        epochs, lr, batch_size, seed: Adam on the classifier only (dropout as in rVGG).

    Returns:
        ``(model, info)``: the model in eval mode on the baseline's device; ``info`` has ``train_accuracy``,
        ``losses`` (per epoch) and ``seconds``.
    """
    if features.dim() != 4 or features.shape[2:] != (MAP_SIZE, MAP_SIZE):
        raise ValueError(f"features must be (N, C, 14, 14), got {tuple(features.shape)}.")
    if labels.shape != (features.shape[0],):
        raise ValueError(f"labels must have shape ({features.shape[0]},), got {tuple(labels.shape)}.")
    D.check_labels(labels, baseline.num_classes)
    if not 0 <= int(wall_rows) <= MAP_SIZE:
        raise ValueError(f"wall_rows must be in 0..{MAP_SIZE}, got {wall_rows}.")
    gen = seed_everything(seed)
    # a copy of the baseline with a new first dense layer (walled or not), every dense layer
    # re-initialized by rVGG's own initialization, and the baseline's features put back
    device = next(baseline.parameters()).device
    model = copy.deepcopy(baseline).float()
    first = model.classifier[0]
    channels = int(model.map_channels)
    model.classifier[0] = (WalledLinear(first.in_features, first.out_features,
                                        wall_mask(channels, MAP_SIZE, int(wall_rows)))
                           if wall_rows > 0 else nn.Linear(first.in_features, first.out_features))
    model.wall_rows = int(wall_rows)
    model._init_weights()
    model.features.load_state_dict(baseline.features.state_dict())
    model.to(device)
    for p in model.features.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(model.classifier.parameters(), lr=lr)
    flat = features.flatten(1)
    n = len(flat)
    t0 = time.perf_counter()
    losses = []
    model.classifier.train()
    for _ in range(int(epochs)):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model.classifier(flat[idx].to(device)), labels[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / n)
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model.classifier(flat[i:i + 1024].to(device)).argmax(1).cpu() for i in range(0, n, 1024)])
    acc = float((pred == labels).float().mean())
    return model, {"train_accuracy": acc, "losses": losses, "seconds": time.perf_counter() - t0}


def _head_accuracy(model: RVGG, features: torch.Tensor, labels: torch.Tensor) -> float:
    device = next(model.parameters()).device
    with torch.no_grad():
        pred = model.classifier(features.flatten(1).to(device)).argmax(1).cpu()
    return float((pred == labels).float().mean())


def wall_height_sweep(baseline: RVGG, stack_images: torch.Tensor, heights: Sequence[int],
                      methods: Sequence[str], probe: tuple[torch.Tensor, torch.Tensor],
                      position_features: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
                      epochs: int = 10, batch_size: int = 25, seed: int = 0,
                      show_progress: bool = True) -> dict[str, Any]:
    """mu per method for several wall heights, every height with the same features.

    Args:
        baseline: a trained rVGG (its features are shared by every height).
        stack_images: ``(N, 3, 224, 224)`` stacked images to explain.
        heights: hidden map rows, e.g. ``(0, 3, 6, 9, 11, 13)``.
        methods: registry keys.
        probe: ``(features, labels)`` that train each height's classifier
            (:func:`target_features` of ``baseline`` on synthetic images).
        position_features: optional ``{group: (features, labels)}`` (``above``/``straddle``/
            ``below``) to report each head's accuracy by object position.
        epochs, batch_size, seed: head training and CAM batch size.

    Returns:
        ``{"rows": [...], "heights": [...], "geometry": [...], "models": {height: model}}``. Each
        geometry row: ``wall_rows``, ``unseen_rows`` (count), ``first_unseen_row``,
        ``unseen_share``, ``hirescam_zero_rows`` (image rows an element-wise method must leave at
        zero after bilinear upsampling), accuracies. Each result row: ``wall_rows``,
        ``unseen_share``, ``method``, ``mu_mean``, ``mu_std``, ``zero_mean``, ``uniform_mu``
        (mu of a constant map, ``sqrt(share)``).
    """
    from . import wall

    stack_images = _check_images(stack_images, "stack_images")
    feats, labels = probe
    rows, geometry, models = [], [], {}
    bar = progress(list(heights), desc="wall heights", leave=False, disable=not show_progress)
    for k in bar:
        model, info = train_walled_head(baseline, feats, labels, int(k), epochs=epochs, seed=seed)
        models[int(k)] = model
        unseen = wall.unseen_rows(model)
        share = wall.unseen_share(unseen)
        zero_rows = wall.upsampled_zero_rows(range(MAP_SIZE - int(k), MAP_SIZE)) if k else np.array([], int)
        geo = {"wall_rows": int(k), "unseen_rows": int(len(unseen)),
               "first_unseen_row": int(unseen[0]) if len(unseen) else IMAGE_SIZE,
               "unseen_share": share, "hirescam_zero_rows": int(len(zero_rows)),
               "hirescam_zero_share": len(zero_rows) / IMAGE_SIZE,
               "train_accuracy": info["train_accuracy"]}
        if position_features:
            for group, (f, y) in position_features.items():
                geo[f"accuracy_{group}"] = _head_accuracy(model, f, y)
        geometry.append(geo)
        measured = measure_methods(model, stack_images, methods, rows=unseen, batch_size=batch_size)
        for row in _summary_rows(measured, wall_rows=int(k), unseen_share=share):
            row["uniform_mu"] = math.sqrt(share)
            rows.append(row)
    return {"rows": rows, "geometry": geometry, "heights": [int(k) for k in heights], "models": models}


# =============================================================================================
# 4. A ResNet with a wall
# =============================================================================================

RESNET_VERSION = 1


def resnet_training_config(profile: str | Profile | None = None, wall_rows: int | None = None,
                           **overrides: Any) -> dict[str, Any]:
    """The configuration of the ResNet of question 4 (a JSON-serialisable dict; its hash keys
    the checkpoint cache).

    Args:
        profile: profile name or object.
        wall_rows: hidden map rows (default :attr:`BeyondSettings.resnet_wall_rows`).
        **overrides: ``width``, ``train_images`` (synthetic data), ``epochs``, ``batch_size``,
            ``lr``, ``momentum``, ``weight_decay``, ``seed``, ``num_workers`` (real data loader).
    """
    prof = get_profile(profile)
    s = beyond_settings(prof)
    cfg = {"arch": "walled_resnet", "profile": prof.name, "width": float(s.resnet_width),
           "wall_rows": int(s.resnet_wall_rows if wall_rows is None else wall_rows),
           "num_classes": int(prof.data.num_classes), "train_images": int(s.resnet_train_images),
           "epochs": int(s.resnet_epochs), "batch_size": int(s.resnet_batch), "lr": float(s.resnet_lr),
           "momentum": 0.9, "weight_decay": 5e-4, "seed": 0, "num_workers": int(prof.train.num_workers),
           "data_version": D.DATA_VERSION, "version": RESNET_VERSION}
    valid = {"width", "train_images", "epochs", "batch_size", "lr", "momentum", "seed", "weight_decay",
             "num_workers"}
    unknown = set(overrides) - valid
    if unknown:
        raise ValueError(f"unknown ResNet override(s) {sorted(unknown)}; valid: {', '.join(sorted(valid))}.")
    cfg.update({k: type(cfg[k])(v) for k, v in overrides.items()})
    cfg["data"] = dataclasses.asdict(prof.data)
    return cfg


#: Up to this many training images the ResNet's images are generated once, kept in float16 and
#: reused every epoch (generating them costs about as much as a training step); beyond, every
#: epoch draws fresh batches from the synthetic stream.
_FIXED_SET_LIMIT = 4096


class _FixedSet:
    """A fixed set of synthetic images (float16), shuffled per epoch, flipped on odd epochs."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        n, chunk = int(cfg["train_images"]), 256
        images, labels = [], []
        for start in range(0, n, chunk):
            b = D.synthetic_batch(min(chunk, n - start), 4242 + 1000 * int(cfg["seed"]) + start,
                                  num_classes=int(cfg["num_classes"]))
            images.append(b.images.half())
            labels.append(b.labels)
        self.images, self.labels = torch.cat(images), torch.cat(labels)
        self.batch_size = int(cfg["batch_size"])
        self.steps = n // self.batch_size

    def epoch(self, epoch: int, gen: torch.Generator):
        perm = torch.randperm(len(self.labels), generator=gen)
        for i in range(self.steps):
            idx = perm[i * self.batch_size:(i + 1) * self.batch_size]
            x = self.images[idx].float()
            yield (x.flip(3) if epoch % 2 == 1 else x), self.labels[idx]


class _RealData:
    """Batches of the profile's real training set (its augmentation), a seeded shuffle per epoch."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        from torch.utils.data import DataLoader, RandomSampler

        prof = get_profile(cfg["profile"])
        prof = prof.replace(data=dataclasses.replace(prof.data, **cfg["data"]))
        self.dataset = D.real_dataset(prof, split="train")
        if len(self.dataset.classes) != int(cfg["num_classes"]):
            raise ValueError(f"the training data has {len(self.dataset.classes)} classes, the ResNet "
                             f"{cfg['num_classes']}; set the profile's data.num_classes to match.")
        self.gen = torch.Generator()
        self.seed = int(cfg["seed"])
        self.loader = DataLoader(self.dataset, batch_size=int(cfg["batch_size"]), drop_last=True,
                                 sampler=RandomSampler(self.dataset, generator=self.gen),
                                 num_workers=int(cfg["num_workers"]))
        self.steps = len(self.loader)

    def epoch(self, epoch: int, gen: torch.Generator):
        self.gen.manual_seed(self.seed * 100003 + epoch)
        yield from self.loader


class _FreshStream:
    """Fresh synthetic batches every epoch (:class:`helpers.data.SyntheticStream`)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.stream = D.SyntheticStream(int(cfg["train_images"]), int(cfg["batch_size"]), 4242 + int(cfg["seed"]),
                                        num_classes=int(cfg["num_classes"]))
        self.steps = len(self.stream)

    def epoch(self, epoch: int, gen: torch.Generator):
        yield from self.stream.epoch(epoch)


def train_or_load_resnet(profile: str | Profile | None = None, wall_rows: int | None = None,
                         device: str | torch.device | None = None, show_progress: bool = True,
                         **overrides: Any) -> tuple[WalledResNet, dict[str, Any]]:
    """The trained :class:`~helpers.variants.WalledResNet` of a profile, from the checkpoint cache
    or trained now: on the synthetic world (a fixed set reused every epoch, flipped on odd epochs,
    up to 4096 images; fresh batches beyond) or on the profile's real training set (its
    augmentation); SGD with Nesterov momentum and a one-cycle schedule. Checkpoints are ``<cache>/checkpoints/<profile>/resnet-w<rows>-<key>.pt`` and are
    read with :func:`helpers.train.load_checkpoint` (a checkpoint of another configuration is
    refused).

    Returns:
        ``(model, info)``: eval mode; ``info`` has ``config``, ``checkpoint``, ``history`` (loss
        per epoch), ``train_seconds``, ``from_cache``.
    """
    from .train import config_key, load_checkpoint, save_atomic

    cfg = resnet_training_config(profile, wall_rows, **overrides)
    path = cache_dir("checkpoints", cfg["profile"], create=False) / f"resnet-w{cfg['wall_rows']}-{config_key(cfg)}.pt"
    dev = get_device(device)
    model = walled_resnet(cfg["num_classes"], cfg["width"], cfg["wall_rows"])
    if path.is_file():
        ckpt = load_checkpoint(path, cfg)
        model.load_state_dict(ckpt["model"])
        return model.to(dev).eval(), {"config": cfg, "checkpoint": str(path), "history": ckpt["history"],
                                      "train_seconds": float(ckpt["train_seconds"]), "from_cache": True}
    if cfg["data"]["source"] == "synthetic" and int(cfg["train_images"]) < int(cfg["batch_size"]):
        raise ValueError(f"train_images={cfg['train_images']} is smaller than one batch ({cfg['batch_size']}).")
    ensure_dir(path.parent)  # before training: a checkpoint that cannot be saved fails now, not after
    gen = seed_everything(int(cfg["seed"]))
    model = walled_resnet(cfg["num_classes"], cfg["width"], cfg["wall_rows"]).to(dev)
    t0 = time.perf_counter()
    if cfg["data"]["source"] != "synthetic":
        data = _RealData(cfg)
    elif int(cfg["train_images"]) <= _FIXED_SET_LIMIT:
        data = _FixedSet(cfg)
    else:
        data = _FreshStream(cfg)
    steps_per_epoch, bs = data.steps, int(cfg["batch_size"])
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], nesterov=True,
                          weight_decay=cfg["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=steps_per_epoch * cfg["epochs"],
                                                pct_start=0.2)
    model.train()
    history = []
    bar = progress(total=steps_per_epoch * cfg["epochs"], desc="training the walled ResNet", leave=False,
                   disable=not show_progress)
    for epoch in range(int(cfg["epochs"])):
        total, correct = 0.0, 0
        for x, y in data.epoch(epoch, gen):
            x, y = x.to(dev), y.to(dev)
            out = model(x.contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(y)
            correct += int((out.argmax(1) == y).sum())
            bar.update(1)
        history.append({"epoch": epoch + 1, "train_loss": total / (steps_per_epoch * bs),
                        "train_acc": correct / (steps_per_epoch * bs)})
    bar.close()
    model.eval()
    seconds = time.perf_counter() - t0
    ckpt = {"config": cfg, "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "history": history, "train_seconds": seconds, "complete": True}
    save_atomic(ckpt, path)
    return model, {"config": cfg, "checkpoint": str(path), "history": history, "train_seconds": seconds,
                   "from_cache": False}


def gap_gradcam_identity(model: WalledResNet, images: torch.Tensor, targets: Any = None) -> dict[str, float]:
    """Check that, for a walled-average-pool head, GradCAM and HiResCAM are the *class activation
    map* of Zhou et al. (``CAM_c(s) = sum_k w_ck A^k(s)``), GradCAM over the whole map and HiResCAM
    over the visible rows only.

    With ``y_c = sum_k w_ck mean_{s in V} A^k(s) + b_c`` (``V`` the visible positions), the
    gradient is ``G^k(s) = w_ck / |V|`` on ``V`` and 0 elsewhere, so GradCAM's weight is
    ``alpha_k = w_ck / 196`` and GradCAM ``= ReLU(CAM_c) / 196`` on *every* position, while
    HiResCAM ``= ReLU(CAM_c) / |V|`` on ``V`` and 0 behind the wall.

    Returns:
        ``{"gradcam_max_abs_diff", "hirescam_max_abs_diff", "scale"}``: the largest differences
        between the library's 14x14 maps (:func:`helpers.cams.compute_cams`, ``low``) and the
        formulas, and the largest map value (for scale).
    """
    from . import cams

    if not isinstance(model, WalledResNet):
        raise TypeError(f"expected a WalledResNet, got {type(model).__name__}.")
    images = _check_images(images)
    res = cams.compute_cams(model, images, ["gradcam", "hirescam"], targets)
    tg = torch.as_tensor(res["gradcam"].targets)
    param = next(model.parameters())
    with torch.no_grad():
        a = model.features(images.to(param.device, param.dtype)).float().cpu()
    w = model.fc.weight.detach().float().cpu()[tg]  # (N, C)
    cam = torch.einsum("nk,nkhw->nhw", w, a).clamp(min=0).numpy()
    n_visible = len(model.visible_map_rows()) * MAP_SIZE
    grad_formula = cam / (MAP_SIZE * MAP_SIZE)
    hires_formula = cam / n_visible
    hires_formula[:, len(model.visible_map_rows()):, :] = 0.0
    return {"gradcam_max_abs_diff": float(np.abs(res["gradcam"].low - grad_formula).max()),
            "hirescam_max_abs_diff": float(np.abs(res["hirescam"].low - hires_formula).max()),
            "scale": float(max(np.abs(grad_formula).max(), np.abs(hires_formula).max()))}


def resnet_report(model: WalledResNet, images: torch.Tensor, methods: Sequence[str], batch_size: int = 25,
                  keep_maps: int = 1, n_gradient_inputs: int = 4) -> dict[str, Any]:
    """The walled ResNet: its unseen rows three ways, and mu per method.

    Returns:
        ``{"unseen_rows": array, "unseen_rows_by_gradient": array, "perturbation": dict,
        "rows": [...], "measured": {...}, "identity": gap_gradcam_identity(...)}``.
    """
    from . import wall

    images = _check_images(images)
    unseen = wall.unseen_rows(model)
    by_grad = wall.unseen_rows_by_gradient(model, n_inputs=n_gradient_inputs)
    pert = wall.perturbation_check(model, images[: min(8, len(images))], rows=unseen)
    measured = measure_methods(model, images, methods, rows=unseen, batch_size=batch_size, keep_maps=keep_maps)
    return {"unseen_rows": unseen, "unseen_rows_by_gradient": by_grad, "perturbation": pert,
            "rows": _summary_rows(measured), "measured": measured,
            "identity": gap_gradcam_identity(model, images[: min(8, len(images))])}


def labelled_images(profile: str | Profile | None, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` labelled images of a profile's training distribution, ``(images (n, 3, 224, 224),
    labels (n,))``: synthetic images (a pure function of ``seed``), or a seeded random subset of
    the real training set, with the evaluation transform."""
    prof = get_profile(profile)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    if prof.data.source == "synthetic":
        b = D.synthetic_batch(int(n), int(seed), num_classes=prof.data.num_classes)
        return b.images, b.labels
    ds = D.real_dataset(prof, split="train", train=False)
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    pairs = [ds[i] for i in idx]
    return torch.stack([p[0] for p in pairs]), torch.tensor([int(p[1]) for p in pairs])


def objects_above(profile: str | Profile | None, n: int, seed: int = 0, size: int = 64
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images with one object entirely above the wall and its box: ``(images (n, 3, 224,
    224), boxes (n, 4) as (top, bottom, left, right))``. Synthetic: :func:`helpers.data.synthetic_batch`
    with ``placement="above"``. Real data: a validation image shrunk to ``size`` x ``size`` and
    pasted at a random place above the wall (:data:`helpers.metrics.PAPER_UNSEEN_ROWS`) of a
    canvas of the mean colour (zero after normalization); its box is where it was pasted."""
    prof = get_profile(profile)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    if prof.data.source == "synthetic":
        b = D.synthetic_batch(int(n), int(seed), num_classes=prof.data.num_classes, placement="above")
        return b.images, b.boxes
    from .metrics import PAPER_UNSEEN_ROWS

    ds = D.real_dataset(prof, split="val", train=False)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=gen)[:n].tolist()
    canvas = torch.zeros(len(idx), 3, IMAGE_SIZE, IMAGE_SIZE)
    boxes = torch.zeros(len(idx), 4)
    for j, i in enumerate(idx):
        thumb = F.interpolate(ds[i][0][None], size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)[0]
        r = int(torch.randint(0, int(PAPER_UNSEEN_ROWS[0]) - size + 1, (1,), generator=gen))
        c = int(torch.randint(0, IMAGE_SIZE - size + 1, (1,), generator=gen))
        canvas[j, :, r:r + size, c:c + size] = thumb
        boxes[j] = torch.tensor([r, r + size, c, c + size])
    return canvas, boxes


# =============================================================================================
# 5. Theory with more than one dense layer
# =============================================================================================

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
        raise ValueError(f"expected a 28x28 digit or a 29x29 padded one, got shape {tuple(t.shape)}.")
    half = F.interpolate(t[None, None], size=(_T_POOL, _T_MAP), mode="bilinear", align_corners=False,
                         antialias=True)[0, 0]
    half[-1] = 0.0
    out = torch.zeros(_T_IN, _T_IN)
    out[1:1 + _T_POOL, :_T_MAP] = half
    out[1 + _T_POOL:, :_T_MAP] = half
    return out.view(1, 1, _T_IN, _T_IN)


def _patches(image: torch.Tensor) -> torch.Tensor:
    """``(784, 4)`` 2x2 patches of a ``(1, 1, 29, 29)`` image, in the order of ``Conv2d``'s
    weight ``(V, 1, 2, 2)`` flattened."""
    return F.unfold(image.float(), kernel_size=2).squeeze(0).T.contiguous()


def deep_gradcam_reduced(conv_w: torch.Tensor, patches: torch.Tensor, Q: torch.Tensor, h1: torch.Tensor,
                         layers: Sequence[torch.Tensor], target: str | int = "top",
                         acts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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
        patches: ``(784, 4)`` (:func:`_patches`).
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


def deep_gradcam_monte_carlo(image: torch.Tensor, depth: int, target: str | int = 0, filters: int = 256,
                             hidden: int = 256, num_classes: int = 10, hidden_rows: int = 7,
                             n_models: int = 2000, seed: int = 0, batch: int = 25,
                             show_progress: bool = True) -> dict[str, Any]:
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
        raise ValueError(f"depth must be an integer >= 1 (number of dense layers), got {depth!r}.")
    if target != "top" and not (isinstance(target, (int, np.integer)) and 0 <= target < num_classes):
        raise ValueError(f"target must be 'top' or a class index in 0..{num_classes - 1}, got {target!r}.")
    if not 0 <= hidden_rows < _T_POOL:
        raise ValueError(f"hidden_rows must be in 0..{_T_POOL - 1}, got {hidden_rows}.")
    if n_models < 2:
        raise ValueError(f"n_models must be >= 2, got {n_models}.")
    x = torch.as_tensor(image, dtype=torch.float32).reshape(1, 1, _T_IN, _T_IN)
    patches = _patches(x)
    pnorm = patches.norm(dim=1).view(_T_MAP, _T_MAP).double()
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
    bar = progress(total=n_models, desc=f"deep GradCAM Monte Carlo, L={depth}", leave=False,
                   disable=not show_progress)
    while done < n_models:
        b = min(batch, n_models - done)
        conv_w = torch.randn(b, filters, 4, generator=gen)
        acts = torch.relu(torch.einsum("bvk,sk->bvs", conv_w, patches))  # (b, V, 784)
        pooled = F.max_pool2d(acts.view(b * filters, 1, _T_MAP, _T_MAP), 2).view(b, filters, _T_POOL, _T_POOL)
        vis = pooled[:, :, : _T_POOL - hidden_rows, :].reshape(b, filters, -1)
        m = vis.sum(dim=2)  # (b, V)
        pp = (vis**2).sum(dim=(1, 2))  # (b,)
        Q = torch.randn(b, h1_width, filters, generator=gen) * math.sqrt(n_vis)
        resid = torch.clamp(pp - (m**2).sum(dim=1) / n_vis, min=0.0).sqrt()
        h1 = torch.einsum("bjv,bv->bj", Q, m) / n_vis + resid[:, None] * torch.randn(b, h1_width, generator=gen)
        layers = [torch.randn(b, widths[i + 1], widths[i], generator=gen) for i in range(depth - 1)]
        cam, _ = deep_gradcam_reduced(conv_w, patches, Q, h1, layers, target, acts=acts)
        cam = cam.double()
        total += cam.sum(0)
        total_sq += (cam**2).sum(0)
        positive += (cam > 0).double().sum(0)
        grid = cam.view(b, _T_MAP, _T_MAP)
        half_diff = max(half_diff, float((grid[:, :_T_POOL] - grid[:, _T_POOL:]).abs().max()))
        done += b
        bar.update(b)
    bar.close()
    mean = (total / n_models).view(_T_MAP, _T_MAP)
    var = torch.clamp(total_sq.view(_T_MAP, _T_MAP) - n_models * mean**2, min=0.0) / (n_models - 1)
    ratio = torch.where(pnorm > 0, mean / pnorm.clamp(min=1e-30), torch.full_like(mean, float("nan")))
    return {"mean": mean.numpy(), "sem": (var / n_models).sqrt().numpy(),
            "positive": (positive / n_models).view(_T_MAP, _T_MAP).numpy(), "ratio": ratio.numpy(),
            "patch_norm": pnorm.numpy(), "half_max_abs_diff": half_diff, "depth": int(depth),
            "target": target, "n_models": int(n_models), "filters": int(filters), "hidden": int(hidden),
            "seconds": time.perf_counter() - t0}


# =============================================================================================
# 6. Conflicting stacks
# =============================================================================================

def conflict_report(models: dict[str, nn.Module], stack: "D.StackSet", methods: Sequence[str],
                    batch_size: int = 25, keep_maps: int = 2) -> dict[str, Any]:
    """Each model's prediction and each method's share of the map on the bottom image of
    conflicting stacks (class A above the wall, class B below it).

    Args:
        models: e.g. ``{"walled": walled, "baseline": baseline}``.
        stack: a :class:`helpers.data.StackSet` (``stack_mix(variant="conflict")``); the bottom
            image fills the walled model's unseen rows.
        methods: registry keys.

    Returns:
        ``{"predictions": {model: {"top": share predicting A, "bottom": share predicting B}},
        "rows": [...], "measured": {model: {...}}}``; rows have ``model``, ``method``,
        ``mu_mean`` (share of the map's L2 norm on B, over the images whose prediction is A),
        ``peak_on_bottom`` (share of those images whose map peaks on B), ``n``.
    """
    from .cams import METHODS
    from .metrics import PAPER_UNSEEN_ROWS

    images = _check_images(stack.images, "stack.images")
    first_bottom = int(PAPER_UNSEEN_ROWS[0])
    out: dict[str, Any] = {"predictions": {}, "rows": [], "measured": {}}
    for name, model in models.items():
        measured = measure_methods(model, images, methods, rows=PAPER_UNSEEN_ROWS, batch_size=batch_size,
                                   keep_maps=keep_maps)
        pred = next(iter(measured.values()))["targets"]
        top = np.asarray(stack.labels) == pred
        bottom = np.asarray(stack.bottom_labels) == pred
        out["predictions"][name] = {"top": float(top.mean()), "bottom": float(bottom.mean()),
                                    "predicted": pred}
        out["measured"][name] = measured
        for key, m in measured.items():
            sel = top if top.any() else np.ones_like(top)
            out["rows"].append({"model": name, "method": key, "display": METHODS[key].display,
                                "mu_mean": float(m["mu"][sel].mean()), "mu_std": float(m["mu"][sel].std()),
                                "peak_on_bottom": float((m["peak_row"][sel] >= first_bottom).mean()),
                                "n": int(sel.sum())})
    return out


# =============================================================================================
# 7. A wall-aware HiResCAM
# =============================================================================================

def bilinear_matrix(map_size: int = MAP_SIZE, image_size: int = IMAGE_SIZE, last_row: int | None = None,
                    last_seen: int | None = None) -> np.ndarray:
    """``(image_size, map_size)`` matrix ``B`` of bilinear upsampling along one axis
    (half-pixel centres, border replicated: ``cv2.resize``'s ``INTER_LINEAR``), so that the
    upsampled map is ``B L B^T``.

    Wall-aware version: with ``last_row`` (the last map row the head reads) and ``last_seen``
    (the last image row the network sees), output rows ``y <= last_seen`` interpolate among map
    rows ``0..last_row`` only (beyond the last visible centre the last visible row is repeated,
    as at an image border) and rows ``y > last_seen`` are exactly zero.
    """
    if map_size < 1 or image_size < 1:
        raise ValueError(f"map_size and image_size must be positive, got {map_size}, {image_size}.")
    top = map_size - 1 if last_row is None else int(last_row)
    if not 0 <= top < map_size:
        raise ValueError(f"last_row must be in 0..{map_size - 1}, got {last_row}.")
    seen = image_size - 1 if last_seen is None else int(last_seen)
    B = np.zeros((image_size, map_size))
    scale = map_size / image_size
    for y in range(min(seen, image_size - 1) + 1):
        src = min(max((y + 0.5) * scale - 0.5, 0.0), float(top))
        lo = int(math.floor(src))
        hi = min(lo + 1, top)
        frac = src - lo
        B[y, lo] += 1.0 - frac
        B[y, hi] += frac
    return B


def erf_kernels(model: nn.Module, images: torch.Tensor | int = 4, image_size: int = IMAGE_SIZE,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The *effective receptive field* :cite:p:`luo2016erf` of each row and each column of the
    CAM target map, measured by gradients.

    Row ``r``'s profile is ``K_rows[r, y] = mean over inputs of sum_{channels, columns}
    |d S_r / d x(y, .)|`` with ``S_r`` the sum over channels of the target activations at
    ``(r, 7)`` (the middle column); columns likewise at ``(7, c)``. Each profile is normalized
    to sum to 1 and is *exactly* zero outside the receptive field (a gradient is).

    Args:
        model: a model with ``target_layer`` (rVGG, its variants, :class:`WalledResNet`).
        images: a number ``n`` -- measure on ``n`` standard Gaussian inputs (seeded: the
            classical effective receptive field, independent of any image's content) -- or
            ``(N, 3, 224, 224)`` images to measure on.
        seed: seed of the Gaussian inputs.

    Returns:
        ``(K_rows, K_cols)``, each ``(14, image_size)`` float64.
    """
    if isinstance(images, (int, np.integer)) and not isinstance(images, bool):
        if images < 1:
            raise ValueError(f"images must be a positive number of Gaussian inputs or a batch, got {images}.")
        images = torch.randn(int(images), 3, image_size, image_size, generator=torch.Generator().manual_seed(seed))
    images = _check_images(images)
    param = next(model.parameters())
    store: dict[str, torch.Tensor] = {}
    handle = model.target_layer.register_forward_hook(lambda _m, _i, o: store.__setitem__("a", o))
    was = model.training
    model.eval()
    k_rows = np.zeros((MAP_SIZE, image_size))
    k_cols = np.zeros((MAP_SIZE, image_size))
    mid = MAP_SIZE // 2
    try:
        x = images.to(param.device, param.dtype).clone().requires_grad_(True)
        with torch.enable_grad():
            model(x)
            a = store["a"]
            if a.shape[-2:] != (MAP_SIZE, MAP_SIZE):
                raise ValueError(f"the target layer's map is {tuple(a.shape[-2:])}, expected 14x14.")
            for r in range(MAP_SIZE):
                for which, out in (("row", k_rows), ("col", k_cols)):
                    unit = a[:, :, r, mid] if which == "row" else a[:, :, mid, r]
                    (g,) = torch.autograd.grad(unit.sum(), x, retain_graph=True)
                    g = g.abs().sum(dim=1).double()  # (N, H, W)
                    prof = (g.sum(dim=2) if which == "row" else g.sum(dim=1)).mean(0)
                    out[r] = prof.cpu().numpy()
    finally:
        handle.remove()
        model.train(was)
    for k in (k_rows, k_cols):
        sums = k.sum(axis=1, keepdims=True)
        np.divide(k, sums, out=k, where=sums > 0)
    return k_rows, k_cols


def wall_aware_upsample(low: np.ndarray, how: str, model: nn.Module | None = None,
                        kernels: tuple[np.ndarray, np.ndarray] | None = None,
                        image_size: int = IMAGE_SIZE) -> np.ndarray:
    """Upsample 14x14 maps to the image, three ways.

    * ``"bilinear"`` -- what pytorch-grad-cam does (``cv2.resize``); with the walled model an
      element-wise method is zero far above the wall
      (``helpers.geometry.rvgg_geometry().zero_rows``).
    * ``"clamped"`` -- bilinear among the map rows the head reads; from the last visible row's
      centre down to the last *seen* image row the last visible row is repeated; the unseen
      rows are exactly zero. Needs ``model`` (for its visible map rows and unseen rows).
    * ``"erf"`` -- every map unit spreads its value over its receptive field with the measured
      effective-receptive-field profile (``kernels`` from :func:`erf_kernels`), normalized by the
      total weight at each pixel: ``U = (K_r^T L K_c) / (K_r^T 1)(1^T K_c)``. A row no visible
      unit covers is exactly zero when the hidden map rows are.

    Args:
        low: ``(N, 14, 14)`` maps (ReLU'd, unscaled).
        how: ``"bilinear"``, ``"clamped"`` or ``"erf"``.

    Returns:
        ``(N, image_size, image_size)`` float64 maps, unscaled (divide by the maximum to scale:
        the minimum is 0).
    """
    from . import wall

    arr = np.asarray(low, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (MAP_SIZE, MAP_SIZE):
        raise ValueError(f"low must be (N, 14, 14) maps, got shape {arr.shape}.")
    if how == "bilinear":
        B = bilinear_matrix(MAP_SIZE, image_size)
        return np.einsum("yr,nrc,xc->nyx", B, arr, B)
    if how == "clamped":
        if model is None:
            raise ValueError("how='clamped' needs the model (its visible map rows and unseen rows).")
        visible = np.asarray(wall.visible_map_rows(model))
        unseen = np.asarray(wall.unseen_rows(model, image_size))
        last_seen = int(unseen[0]) - 1 if len(unseen) else image_size - 1
        Br = bilinear_matrix(MAP_SIZE, image_size, last_row=int(visible.max()), last_seen=last_seen)
        Bc = bilinear_matrix(MAP_SIZE, image_size)
        return np.einsum("yr,nrc,xc->nyx", Br, arr, Bc)
    if how == "erf":
        if kernels is None:
            raise ValueError("how='erf' needs kernels=(K_rows, K_cols) from erf_kernels(model, images).")
        kr, kc = (np.asarray(k, dtype=np.float64) for k in kernels)
        if kr.shape != (MAP_SIZE, image_size) or kc.shape != (MAP_SIZE, image_size):
            raise ValueError(f"kernels must be two (14, {image_size}) arrays, got {kr.shape}, {kc.shape}.")
        num = np.einsum("ry,nrc,cx->nyx", kr, arr, kc)
        den = np.outer(kr.sum(axis=0), kc.sum(axis=0))
        return np.divide(num, den[None], out=np.zeros_like(num), where=den[None] > 0)
    raise ValueError(f"how must be 'bilinear', 'clamped' or 'erf', got {how!r}.")


def energy_in_boxes(maps: np.ndarray, boxes: np.ndarray | torch.Tensor) -> np.ndarray:
    """The share of each map's mass (sum of its values) inside a box: the *energy-based pointing
    game* of Score-CAM :cite:p:`wang2020scorecam`. Maps ``(N, H, W)`` (non-negative), boxes
    ``(N, 4)`` as ``(top, bottom, left, right)`` pixels (bottom/right exclusive). An all-zero
    map scores 0. Returns ``(N,)``."""
    arr = np.asarray(maps, dtype=np.float64)
    b = np.asarray(boxes, dtype=np.int64)
    if arr.ndim != 3 or b.shape != (arr.shape[0], 4):
        raise ValueError(f"expected maps (N, H, W) and boxes (N, 4), got {arr.shape} and {b.shape}.")
    if (arr < 0).any():
        raise ValueError("maps must be non-negative (ReLU'd saliency maps).")
    out = np.zeros(len(arr))
    for i, (t, bt, lf, rt) in enumerate(b):
        total = arr[i].sum()
        if total > 0:
            out[i] = arr[i, t:bt, lf:rt].sum() / total
    return out


def hirescam_repair_report(model: nn.Module, images: torch.Tensor, boxes: np.ndarray | None = None,
                           erf_images: int = 4, method: str = "hirescam",
                           kernels: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """HiResCAM upsampled three ways (:func:`wall_aware_upsample`) on a walled model: the zero
    region, the support in the seen rows, mu, and (with ``boxes``) the energy in the objects.

    Args:
        model: a walled model (rVGG or a variant).
        images: ``(N, 3, 224, 224)``.
        boxes: optional ``(N, 4)`` object boxes ``(top, bottom, left, right)``.
        erf_images: Gaussian inputs that measure the effective receptive fields.
        method: the element-wise method to repair (``"hirescam"``; ``"layercam"`` works too).
        kernels: effective receptive fields already measured (:func:`erf_kernels`).

    Returns:
        ``{"rows": [...one per upsampling...], "maps": {how: (N, 224, 224) scaled},
        "kernels": (K_rows, K_cols), "coverage": (14, 224) bool, "unseen_rows": array,
        "seconds": {how: float}, "low": (N, 14, 14)}``. Each row: ``how``, ``zero_rows_share``
        (rows exactly zero all along, mean), ``first_zero_row`` (mean), ``seen_rows_supported``
        (share of seen rows where the map is not zero), ``seen_rows_visible`` (share of seen rows
        whose maximum is at least 1% of the map's), ``mu_mean``, and ``energy_in_box`` (mean).
    """
    from . import cams, metrics, wall

    images = _check_images(images)
    unseen = wall.unseen_rows(model)
    seen = np.setdiff1d(np.arange(IMAGE_SIZE), unseen)
    low = cams.compute_cams(model, images, [method])[method].low.astype(np.float64)
    t0 = time.perf_counter()
    if kernels is None:
        kernels = erf_kernels(model, erf_images)
    erf_seconds = time.perf_counter() - t0
    out: dict[str, Any] = {"rows": [], "maps": {}, "kernels": kernels, "unseen_rows": unseen,
                           "coverage": map_row_coverage(model) if isinstance(model, (RVGG, WalledResNet)) else None,
                           "seconds": {}, "low": low}
    for how in ("bilinear", "clamped", "erf"):
        t0 = time.perf_counter()
        up = wall_aware_upsample(low, how, model=model, kernels=kernels)
        out["seconds"][how] = time.perf_counter() - t0 + (erf_seconds if how == "erf" else 0.0)
        peak = up.reshape(len(up), -1).max(axis=1)
        scaled = np.divide(up, peak[:, None, None], out=np.zeros_like(up), where=peak[:, None, None] > 0)
        out["maps"][how] = scaled
        row_max = scaled.max(axis=2)  # (N, H)
        row = {"how": how,
               "zero_rows_share": float(np.mean(metrics.zero_row_fraction(scaled))),
               "first_zero_row": float(np.mean(metrics.first_zero_row(scaled))),
               "seen_rows_supported": float(np.mean(row_max[:, seen] > 0)),
               "seen_rows_visible": float(np.mean(row_max[:, seen] >= 0.01)),
               "mu_mean": float(np.mean(metrics.dead_zone_share(scaled, rows=unseen))),
               "unseen_share": len(unseen) / IMAGE_SIZE}
        if boxes is not None:
            row["energy_in_box"] = float(np.mean(energy_in_boxes(scaled, boxes)))
        out["rows"].append(row)
    return out


# =============================================================================================
# Small helpers for the chapter
# =============================================================================================

def html_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], caption: str = "",
               formats: dict[str, str] | None = None) -> str:
    """An HTML table of row dicts: ``columns`` is ``[(key, header), ...]``; ``formats`` maps a
    key to a format spec (``".3f"``); NaN shows as an en dash; text is HTML-escaped."""
    import html

    formats = formats or {}
    if not columns:
        raise ValueError("columns is empty; pass [(key, header), ...].")

    def cell(row: dict[str, Any], key: str) -> str:
        value = row.get(key, "")
        if isinstance(value, float) and math.isnan(value):
            return "&ndash;"
        if key in formats and isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            return format(value, formats[key])
        return html.escape(str(value))

    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r, k)}</td>" for k, _ in columns) + "</tr>" for r in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="camwalls-table">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def fwhm(profile: np.ndarray) -> float:
    """Full width at half maximum of a non-negative 1-D profile, in samples (pixels), with linear
    interpolation at the two crossings."""
    p = np.asarray(profile, dtype=np.float64)
    if p.ndim != 1 or p.size < 2 or not (p.max() > 0) or (p < 0).any():
        raise ValueError("fwhm needs a non-negative 1-D profile with a positive maximum.")
    half = p.max() / 2
    above = np.flatnonzero(p >= half)
    lo, hi = int(above[0]), int(above[-1])
    left = lo - (p[lo] - half) / (p[lo] - p[lo - 1]) if lo > 0 else float(lo)
    right = hi + (p[hi] - half) / (p[hi] - p[hi + 1]) if hi < p.size - 1 else float(hi)
    return float(right - left)
