"""Training rVGG: the walled model and its baseline, from a CPU quick profile to several GPUs.

``train_or_load(profile, walled)`` is what notebooks call: it returns the trained model (eval
mode) and a dict of information, loading it from the checkpoint cache when a checkpoint of
*exactly* the same configuration is there, training it otherwise. The cache key is a hash of
the full configuration (every profile setting that matters for training, the wall height, the
data generator's version and any override), so a changed setting never silently reuses a
stale model; a checkpoint whose stored configuration differs from the one asked for is refused
with the differing fields named.

Training (``train``):

* data: the synthetic world (``quick``: batch ``b`` of epoch ``e`` is a pure function of the
  seed, ``e`` and ``b``) or a real dataset (``full``: ImageFolder / Imagenette, the paper's
  augmentation, a seeded shuffle per epoch);
* optimizer: SGD with momentum and weight decay, StepLR (the paper's recipe) or Adam with
  warm-up and a cosine schedule (the quick profile); gradient-norm clipping if asked;
* training aids for the quick profile, each leaving a plain rVGG at the end: scaled weight
  standardization of the convolutions (a reparametrization baked into ordinary weights when
  training ends), a first dense layer tied across map positions for the first steps, a
  position-shared ("pooled") initialization of the head, and optionally frozen first
  convolutions;
* on a GPU: bf16 autocast (fp16 with a gradient scaler where bf16 is missing), channels_last,
  optional ``torch.compile``; on several GPUs, DDP when launched with ``torchrun``;
* a checkpoint after every epoch (model, optimizer, RNG state, history), written atomically;
  a run killed mid-way resumes from the last epoch and ends with the very same weights as an
  uninterrupted run (bit-identical on the CPU);
* a metrics log (CSV, one row per epoch) beside the checkpoint, and a finer training-loss
  curve every ``log_every`` steps.

Command line: ``python -m helpers.train --profile quick --walled`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import cli
from . import data as D
from .config import (Profile, cache_dir, get_device, get_profile, progress, read_checkpoint_file,
                     seed_everything)
from .models import RVGG, WallError, rvgg

__all__ = [
    "TRAIN_VERSION",
    "ConfigMismatchError",
    "training_config",
    "config_key",
    "checkpoint_path",
    "build_model",
    "standardize_weights",
    "freeze_convolutions",
    "bake_parametrizations",
    "add_batch_norm",
    "fold_batch_norm",
    "finalize_model",
    "ScaledWeightStandardization",
    "learning_rate",
    "train",
    "train_or_load",
    "train_both",
    "load_checkpoint",
    "evaluate_accuracy",
    "position_accuracy",
    "position_sets",
    "accuracy_by_row",
    "read_metrics",
    "main",
]

#: Version of the training code; part of the cache key (bump it when training changes).
TRAIN_VERSION = 1

_TOP_LEVEL = ("width", "wall_rows", "image_size")


class ConfigMismatchError(ValueError):
    """A checkpoint was made with another configuration than the one asked for."""


# ---------------------------------------------------------------------------------------------
# Configuration and cache key
# ---------------------------------------------------------------------------------------------

def training_config(profile: str | Profile | None = None, walled: bool = True, **overrides: Any
                    ) -> dict[str, Any]:
    """The full configuration of one training run, as a JSON-serialisable dict.

    Args:
        profile: profile name or object (``None``: ``$CAMWALLS_PROFILE``).
        walled: the walled model (``wall_rows`` from the profile, 9) or the baseline (0).
        **overrides: any field of the profile's ``TrainSettings`` (``epochs``, ``lr``, ...) or
            ``DataSettings`` (``train_images``, ``num_classes``, ...), or ``width`` /
            ``wall_rows``. ``wall_rows`` overrides ``walled`` (a later chapter trains several
            wall heights; ``walled`` is then ``wall_rows > 0``).

    Returns:
        ``{"profile", "width", "wall_rows", "walled", "image_size", "data": {...}, "train": {...},
        "data_version", "train_version"}``.

    Raises:
        ValueError: on an unknown override, naming the valid ones.
    """
    prof = get_profile(profile)
    train_fields = {f.name for f in dataclasses.fields(prof.train)}
    data_fields = {f.name for f in dataclasses.fields(prof.data)}
    train_changes, data_changes, top = {}, {}, {}
    for key, value in overrides.items():
        if key in _TOP_LEVEL:
            top[key] = value
        elif key in train_fields:
            train_changes[key] = value
        elif key in data_fields:
            data_changes[key] = value
        else:
            raise ValueError(
                f"Unknown training override {key!r}. Valid: {', '.join(_TOP_LEVEL)}, the train "
                f"settings {sorted(train_fields)} and the data settings {sorted(data_fields)}."
            )
    wall_rows = int(top.get("wall_rows", prof.wall_rows if walled else 0))
    if not 0 <= wall_rows <= 14:
        raise ValueError(f"wall_rows must be in 0..14, got {wall_rows}.")
    width = float(top.get("width", prof.width))
    train_s = dataclasses.replace(prof.train, **train_changes)
    data_s = dataclasses.replace(prof.data, **data_changes)
    if train_s.epochs < 1 or train_s.batch_size < 1 or not train_s.lr > 0:
        raise ValueError(f"epochs, batch_size and lr must be positive, got {train_s.epochs}, "
                         f"{train_s.batch_size}, {train_s.lr}.")
    if train_s.optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {train_s.optimizer!r}.")
    if train_s.schedule not in ("step", "cosine"):
        raise ValueError(f"schedule must be 'step' or 'cosine', got {train_s.schedule!r}.")
    return {
        "profile": prof.name,
        "width": width,
        "wall_rows": wall_rows,
        "walled": wall_rows > 0,
        "image_size": int(top.get("image_size", prof.image_size)),
        "data": dataclasses.asdict(data_s),
        "train": dataclasses.asdict(train_s),
        "data_version": D.DATA_VERSION,
        "train_version": TRAIN_VERSION,
    }


#: Settings that change how fast a run goes, not what it learns: left out of the cache key.
_NOT_IN_KEY = {"train": ("num_threads", "num_workers")}


def _key_view(config: dict[str, Any]) -> dict[str, Any]:
    view = json.loads(json.dumps(config, default=str))
    for part, names in _NOT_IN_KEY.items():
        for name in names:
            view.get(part, {}).pop(name, None)
    return view


def _canonical(config: dict[str, Any]) -> str:
    return json.dumps(_key_view(config), sort_keys=True, separators=(",", ":"), default=str)


def config_key(config: dict[str, Any]) -> str:
    """A 16-hex-digit hash of the configuration (the checkpoint cache key). Settings that only
    change the speed (CPU threads, data-loading workers) are left out."""
    return hashlib.sha256(_canonical(config).encode()).hexdigest()[:16]


def checkpoint_path(config: dict[str, Any], folder: str | Path | None = None) -> Path:
    """Where the checkpoint of ``config`` lives:
    ``<cache>/checkpoints/<profile>/rvgg-<walled|baseline>-w<rows>-<key>.pt``.

    Only a path: no folder is created (reading the cache must work where it cannot be
    written; :func:`train` creates the folder before it trains)."""
    folder = Path(folder) if folder is not None else cache_dir("checkpoints", config["profile"], create=False)
    kind = "walled" if config["wall_rows"] > 0 else "baseline"
    return folder / f"rvgg-{kind}-w{config['wall_rows']}-{config_key(config)}.pt"


def _diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: checkpoint {va!r} vs asked {vb!r}")
    return out


def build_model(config: dict[str, Any]) -> RVGG:
    """An untrained rVGG for ``config`` (width, wall rows, classes, dropout, initialization).

    ``train.init = "torchvision"`` keeps torchvision's VGG initialization (Kaiming normal
    convolutions, N(0, 0.01) dense layers), the paper's. ``"pooled"`` (the quick profile) keeps
    the convolutions but starts the first dense layer with the same weights at every map
    position (a global sum over the positions it reads) and the other dense layers with Kaiming
    weights (the last one scaled by 0.1); with ``tie_steps`` the head stays position-shared for
    a while, so the features learn without the head having to learn every position apart.
    ``"dirac"`` also starts every convolution after the first as an identity kernel plus
    ``init_noise`` times Kaiming noise (a shallow network at first). The architecture, hence
    the wall, is the same either way.
    """
    model = rvgg(num_classes=int(config["data"]["num_classes"]), width=float(config["width"]),
                 wall_rows=int(config["wall_rows"]), dropout=float(config["train"]["dropout"]))
    init = config["train"].get("init", "torchvision")
    if init == "dirac":
        _dirac_init(model, float(config["train"].get("init_noise", 0.3)))
    elif init == "pooled":
        _pooled_head_init(model)
    elif init != "torchvision":
        raise ValueError(f"Unknown init {init!r}; expected 'torchvision', 'pooled' or 'dirac'.")
    return model


class ScaledWeightStandardization(nn.Module):
    """Parametrization of a convolution's weight: ``gain * (W - mean) / (std * sqrt(fan_in))``
    times the ReLU gain 1.7139 (per output filter; Brock et al.'s scaled weight
    standardization). It keeps every layer's signal well scaled during training, as batch norm
    would, without adding any layer: at the end it is *baked* into ordinary weights
    (:func:`bake_parametrizations`), so the trained model is a plain rVGG."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(out_channels, 1, 1, 1))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:  # noqa: D102
        fan_in = weight[0].numel()
        mean = weight.mean(dim=(1, 2, 3), keepdim=True)
        std = weight.std(dim=(1, 2, 3), keepdim=True) + 1e-6
        return self.gain * (weight - mean) / (std * math.sqrt(fan_in)) * 1.7139


def standardize_weights(model: RVGG, skip: int = 0) -> RVGG:
    """Register :class:`ScaledWeightStandardization` on every convolution but the first ``skip``
    (in place)."""
    from torch.nn.utils import parametrize

    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    for conv in convs[skip:]:
        if not parametrize.is_parametrized(conv, "weight"):
            parametrize.register_parametrization(conv, "weight", ScaledWeightStandardization(conv.out_channels))
    return model


def freeze_convolutions(model: RVGG, count: int) -> RVGG:
    """Keep the first ``count`` convolutions at their current weights (``requires_grad=False``):
    the backward pass then stops before them, which saves most of its cost at full resolution."""
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    if not 0 <= count <= len(convs):
        raise ValueError(f"freeze_convs must be in 0..{len(convs)}, got {count}.")
    for conv in convs[:count]:
        for p in conv.parameters():
            p.requires_grad_(False)
    return model


def bake_parametrizations(model: nn.Module) -> nn.Module:
    """Replace every parametrized weight by its current value (a plain ``nn.Parameter``)."""
    from torch.nn.utils import parametrize

    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return model


class ConvBN(nn.Module):
    """A convolution followed by batch norm: what :func:`add_batch_norm` puts in place of each
    convolution of rVGG for training; :func:`fold_batch_norm` turns it back into one convolution."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm2d(conv.out_channels)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.bn(self.conv(x))


def add_batch_norm(model: RVGG) -> RVGG:
    """Put batch norm after every convolution of ``model.features`` (in place, at the same
    indices, so that :func:`fold_batch_norm` restores the layout and the state-dict keys).

    Batch norm makes the narrow, plain VGG of the quick profile learn several times faster. In
    training mode its statistics are taken over the whole batch and every map position, the
    hidden rows included; once folded (:func:`fold_batch_norm`) every convolution is again an
    ordinary convolution, and the wall holds exactly, as for any rVGG."""
    for i, module in enumerate(model.features):
        if isinstance(module, nn.Conv2d):
            model.features[i] = ConvBN(module).to(module.weight.device)
    return model


@torch.no_grad()
def fold_batch_norm(model: nn.Module) -> nn.Module:
    """Replace every :class:`ConvBN` of ``model.features`` by one convolution computing what it
    computes in eval mode: ``W' = W * g / sqrt(v + eps)``, ``b' = (b - m) * g / sqrt(v + eps) + beta``
    with the running mean ``m`` and variance ``v`` (in place; a no-op without batch norm)."""
    features = getattr(model, "features", None)
    if features is None:
        return model
    for i, module in enumerate(features):
        if isinstance(module, ConvBN):
            conv, bn = module.conv, module.bn
            bake_parametrizations(conv)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            if conv.bias is None:
                conv.bias = nn.Parameter(torch.zeros_like(bias))
            conv.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
            features[i] = conv
    return model


def finalize_model(model: nn.Module) -> nn.Module:
    """The plain rVGG a training run leaves: parametrizations baked (:func:`bake_parametrizations`)
    and batch norm folded (:func:`fold_batch_norm`), in place."""
    return fold_batch_norm(bake_parametrizations(model))


def _tie_positions_hook(model: RVGG, active: Callable[[], bool]):
    """A gradient hook on the first dense layer that, while ``active()``, replaces the gradient
    of every weight by its mean over the visible map positions (per hidden unit and channel):
    weights that start equal across positions stay equal (a global-sum head over the visible
    rows), so the features learn without the head having to learn every position apart."""
    first = model.classifier[0]
    channels = model.map_channels
    positions = first.in_features // channels
    visible = (first.mask.view(channels, positions)[0] if hasattr(first, "mask")
               else torch.ones(positions)).to(first.weight.device)

    def hook(grad: torch.Tensor) -> torch.Tensor:
        if not active():
            return grad
        g = grad.view(grad.shape[0], channels, positions)
        mean = (g * visible).sum(-1, keepdim=True) / visible.sum()
        return (mean * visible).expand_as(g).reshape(grad.shape).contiguous()

    return first.weight.register_hook(hook)


@torch.no_grad()
def _dirac_init(model: RVGG, noise: float) -> None:
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    for conv in convs[1:]:
        cout, cin = conv.weight.shape[:2]
        w = torch.zeros_like(conv.weight)
        idx = torch.arange(cout)
        w[idx, idx % cin, 1, 1] = 1.0
        std = math.sqrt(2.0 / (cout * 9))
        conv.weight.copy_(w + noise * std * torch.randn_like(w))
        conv.bias.zero_()
    _pooled_head_init(model)


@torch.no_grad()
def _pooled_head_init(model: RVGG) -> None:
    first = model.classifier[0]
    channels = model.map_channels
    positions = first.in_features // channels
    shared = torch.randn(first.out_features, channels) * math.sqrt(2.0 / channels) / positions
    first.weight.copy_(shared.repeat_interleave(positions, dim=1))
    first.bias.zero_()
    if hasattr(first, "mask"):
        first.weight.mul_(first.mask)
    for lin in (model.classifier[3], model.classifier[6]):
        nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
        lin.bias.zero_()
    model.classifier[6].weight.mul_(0.1)


def learning_rate(config: dict[str, Any], step: int, steps_per_epoch: int) -> float:
    """The learning rate at global step ``step`` (0-based): linear warm-up over
    ``warmup_steps``, then StepLR (``lr * gamma ** (epoch // lr_step_epochs)``, the paper's) or a
    cosine decay to zero over all steps."""
    t = config["train"]
    lr = float(t["lr"])
    total = max(1, int(t["epochs"]) * steps_per_epoch)
    if t["schedule"] == "step":
        lr *= float(t["lr_gamma"]) ** ((step // steps_per_epoch) // max(1, int(t["lr_step_epochs"])))
    else:
        lr *= 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    warm = int(t["warmup_steps"])
    if warm > 0 and step < warm:
        lr *= (step + 1) / warm
    return lr


# ---------------------------------------------------------------------------------------------
# Distributed set-up
# ---------------------------------------------------------------------------------------------

def _dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment (1 process: 0, 1, 0)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, world, local


def _init_distributed(device: torch.device) -> tuple[int, int]:
    import torch.distributed as dist

    rank, world, local = _dist_env()
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return rank, world


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def evaluate_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                      batch_size: int = 64, device: torch.device | None = None,
                      channels_last: bool = False) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy of ``model`` on ``images`` ``(N, 3, 224, 224)``
    with ``labels`` ``(N,)`` (labels out of the model's range are refused)."""
    D.check_labels(labels, int(getattr(model, "num_classes", 10**9)))
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    correct, loss, n = 0, 0.0, int(labels.shape[0])
    for i in range(0, n, batch_size):
        x = images[i:i + batch_size].to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = labels[i:i + batch_size].to(device)
        out = model(x).float()
        loss += float(F.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
    model.train(was_training)
    return correct / max(n, 1), loss / max(n, 1)


def position_sets(profile: str | Profile | None = None, n: int | None = None, seed: int = 31337,
                  num_classes: int | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Images whose object lies entirely ``"above"`` the wall, ``"straddle"``-s it, or lies
    entirely ``"below"`` it (:data:`helpers.data.FIRST_UNSEEN_ROW`): ``{group: (images, labels)}``.

    Synthetic world: objects placed so (their painted pixels checked). Real data: each
    validation image shrunk to 50x50 and pasted at a random place of a mid-grey canvas, in the
    group's rows (a proxy for "an object in that position").
    """
    prof = get_profile(profile)
    n = prof.data.position_images if n is None else n
    k = num_classes or prof.data.num_classes
    out = {}
    if prof.data.source == "synthetic":
        for j, group in enumerate(("above", "straddle", "below")):
            b = D.synthetic_batch(n, D._mix_seed(seed, j), num_classes=k, placement=group)
            out[group] = (b.images, b.labels)
        return out
    ds = D.real_dataset(prof, split="val", train=False)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=gen)[:n].tolist()
    thumbs, labels = [], []
    for i in idx:
        x, y = ds[i]
        thumbs.append(F.interpolate(x[None], size=(50, 50), mode="bilinear", align_corners=False,
                                    antialias=True)[0])
        labels.append(int(y))
    lab = torch.tensor(labels)
    rows = {"above": (0, D.FIRST_UNSEEN_ROW - 50), "straddle": (D.FIRST_UNSEEN_ROW - 35, D.FIRST_UNSEEN_ROW - 15),
            "below": (D.FIRST_UNSEEN_ROW + 2, 224 - 50)}
    for group, (lo, hi) in rows.items():
        canvas = torch.zeros(len(idx), 3, 224, 224)  # zero = the mean colour after normalization
        for j, t in enumerate(thumbs):
            r = int(torch.randint(lo, hi + 1, (1,), generator=gen))
            c = int(torch.randint(0, 224 - 50 + 1, (1,), generator=gen))
            canvas[j, :, r:r + 50, c:c + 50] = t
        out[group] = (canvas, lab)
    return out


def position_accuracy(model: nn.Module, profile: str | Profile | None = None, n: int | None = None,
                      device: torch.device | None = None) -> dict[str, float]:
    """Top-1 accuracy on each group of :func:`position_sets` (``above``, ``straddle``,
    ``below``). A walled model is at chance (``1 / classes``) on ``below``."""
    sets = position_sets(profile, n=n, num_classes=int(getattr(model, "num_classes", 0)) or None)
    return {g: evaluate_accuracy(model, x, y, device=device)[0] for g, (x, y) in sets.items()}


#: Top rows of :func:`accuracy_by_row`: from the top of the image to below the wall, densest
#: around it (the wall's own row included).
DEFAULT_TOP_ROWS = tuple(sorted({0, 40, 80, 120, 140, 155, 165, D.FIRST_UNSEEN_ROW, 175, 185}))


@torch.no_grad()
def accuracy_by_row(model: nn.Module, profile: str | Profile | None = None,
                    top_rows: tuple[int, ...] = DEFAULT_TOP_ROWS, n: int = 60, seed: int = 4242,
                    device: torch.device | None = None) -> list[dict[str, float]]:
    """Accuracy as a function of where the object starts: for each requested top row, ``n``
    images whose (small) object's top edge is at that row or just below it.

    Synthetic world: objects of the training sizes placed with ``placement="top=<row>"`` (shrunk
    when needed to fit between that row and the bottom of the image); real data: validation
    images shrunk to 44x44 and pasted on a mid-grey canvas with their top at the row. An object
    whose top is at the wall's row or lower in the image (``top >= helpers.data.FIRST_UNSEEN_ROW``)
    is entirely behind the wall.

    Returns:
        One dict per row: ``top_row`` (asked), ``mean_top`` (mean actual top row of the painted
        objects), ``hidden`` (share of these objects lying entirely behind the wall),
        ``accuracy``, ``n``.
    """
    prof = get_profile(profile)
    k = int(getattr(model, "num_classes", prof.data.num_classes))
    out = []
    if prof.data.source != "synthetic":
        ds = D.real_dataset(prof, split="val", train=False)
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(ds), generator=gen)[:n].tolist()
        items = [ds[i] for i in idx]
        thumbs = F.interpolate(torch.stack([x for x, _ in items]), size=(44, 44), mode="bilinear",
                               align_corners=False, antialias=True)
        labels = torch.tensor([int(y) for _, y in items])
    for j, row in enumerate(top_rows):
        if prof.data.source == "synthetic":
            b = D.synthetic_batch(n, D._mix_seed(seed, j), num_classes=k, placement=f"top={row}")
            images, labels, tops = b.images, b.labels, b.boxes[:, 0]
        else:
            r = min(int(row), 224 - 44)
            images = torch.zeros(len(idx), 3, 224, 224)
            cols = torch.randint(0, 224 - 44 + 1, (len(idx),), generator=gen)
            for i in range(len(idx)):
                images[i, :, r:r + 44, int(cols[i]):int(cols[i]) + 44] = thumbs[i]
            tops = torch.full((len(idx),), float(r))
        acc, _ = evaluate_accuracy(model, images, labels, device=device)
        out.append({"top_row": float(row), "mean_top": float(tops.float().mean()),
                    "hidden": float((tops >= D.FIRST_UNSEEN_ROW).float().mean()),
                    "accuracy": acc, "n": int(labels.shape[0])})
    return out


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------

def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """``torch.save(obj, path)`` through a temporary file and a rename: a crash mid-write leaves
    the previous file (or none), never a truncated one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train` (:func:`helpers.config.read_checkpoint_file`:
    ``torch.load(weights_only=True)``).

    Raises:
        FileNotFoundError: when there is none at ``path``.
        helpers.config.CheckpointError: (a ``ValueError``) when torch cannot read the file
            (truncated by a full disk or a killed copy, corrupt, not a torch file); the message
            names the file and says to delete it and train again.
        ConfigMismatchError: when ``config`` is given and the checkpoint's differs (the
            differing fields are named).
        ValueError: when the file is not one of our checkpoints.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    ckpt = read_checkpoint_file(
        path, remedy=f"Delete {path} and run again: the checkpoint cache then trains this model anew "
        "(train_or_load, or python -m helpers.train).")
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path} is not a helpers.train checkpoint (no 'config'/'model' entries). "
                         "For the authors' weights use helpers.data.load_authors_model.")
    if config is not None and _canonical(ckpt["config"]) != _canonical(config):
        diffs = _diff(_key_view(ckpt["config"]), _key_view(config))
        raise ConfigMismatchError(
            f"The checkpoint {path} was made with another configuration; refusing to use it. "
            f"Differences: {'; '.join(diffs[:8]) or 'key order/types'}. Delete it or train with "
            "the checkpoint's settings."
        )
    return ckpt


def _load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """``model.load_state_dict(state)`` for the checkpoint at ``path``, with our errors.

    Raises:
        helpers.models.WallError: (a ``ValueError``) when ``state`` has non-zero weights under
            the wall of a walled model; the message names ``path`` and says to train again.
        ValueError: when the tensors do not fit the model the configuration builds (names the
            first differences and says to delete the file).
    """
    try:
        model.load_state_dict(state)
    except WallError as err:
        raise WallError(f"The checkpoint {path}: {err} Or delete {path} and train again.") from err
    except RuntimeError as err:
        detail = " | ".join(line.strip() for line in str(err).splitlines()[:4] if line.strip())
        raise ValueError(
            f"The checkpoint {path} does not fit the rVGG its configuration builds: {detail[:400]}. "
            f"Expected the tensors of that model. Delete {path} and train again."
        ) from err


def _write_metrics_csv(path: Path, history: list[dict[str, Any]]) -> None:
    if not history:
        return
    keys = list(history[0].keys())
    for row in history[1:]:
        keys += [k for k in row if k not in keys]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for row in history:
            writer.writerow(row)


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The per-epoch metrics log (CSV) written beside a checkpoint, as a list of dicts."""
    path = Path(path)
    if path.suffix == ".pt":
        path = path.with_suffix(".csv")
    with open(path, newline="") as fh:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
                for row in csv.DictReader(fh)]


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

class _RealStream:
    """Batches of a real dataset: a seeded shuffle per epoch (DistributedSampler with several
    processes), the paper's augmentation, ``drop_last``."""

    def __init__(self, config: dict[str, Any], rank: int, world: int, device: torch.device) -> None:
        from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

        self.dataset = D.real_dataset(config["profile"] if config["data"]["source"] == "synthetic"
                                      else _profile_from_config(config), split="train")
        k = int(config["data"]["num_classes"])
        if len(self.dataset.classes) != k:
            raise ValueError(
                f"The training data has {len(self.dataset.classes)} classes but the model has "
                f"num_classes={k}; labels would be out of range. Pass num_classes="
                f"{len(self.dataset.classes)} (e.g. train_or_load(..., num_classes="
                f"{len(self.dataset.classes)}))."
            )
        t = config["train"]
        per_rank = max(1, int(t["batch_size"]) // world)
        self.seed = int(t["seed"])
        if world > 1:
            self.sampler = DistributedSampler(self.dataset, num_replicas=world, rank=rank,
                                              shuffle=True, seed=self.seed, drop_last=True)
        else:
            self.gen = torch.Generator()
            self.sampler = RandomSampler(self.dataset, generator=self.gen)
        self.loader = DataLoader(self.dataset, batch_size=per_rank, sampler=self.sampler,
                                 num_workers=int(t["num_workers"]), drop_last=True,
                                 pin_memory=device.type == "cuda",
                                 persistent_workers=int(t["num_workers"]) > 0)
        self.steps = len(self.loader)
        if self.steps == 0:
            raise ValueError(f"The training data ({len(self.dataset)} images) is smaller than one "
                             f"batch ({per_rank}); lower batch_size.")

    def __len__(self) -> int:
        return self.steps

    def epoch(self, epoch: int, start_step: int = 0):
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        else:
            self.gen.manual_seed(D._mix_seed(self.seed, epoch))
        for step, (x, y) in enumerate(self.loader):
            if step >= start_step:
                yield x, y


def _profile_from_config(config: dict[str, Any]) -> Profile:
    prof = get_profile(config["profile"])
    return prof.replace(
        width=config["width"],
        data=dataclasses.replace(prof.data, **config["data"]),
        train=dataclasses.replace(prof.train, **config["train"]),
    )


class _ShardedSynthetic(D.SyntheticStream):
    """The synthetic stream, each process of a DDP run drawing its own shard of every batch."""

    def __init__(self, config: dict[str, Any], rank: int, world: int) -> None:
        d, t = config["data"], config["train"]
        super().__init__(int(d["train_images"]), int(t["batch_size"]), int(d["seed"]) * 1000 + int(t["seed"]),
                         num_classes=int(d["num_classes"]), below_share=float(d["below_share"]),
                         instances=int(d.get("instances", 1)))
        self.rank, self.world = rank, world

    def batch(self, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.world == 1:
            return super().batch(epoch, step)
        n = max(1, self.batch_size // self.world)
        b = D.synthetic_batch(n, D._mix_seed(self.seed, epoch, step, self.rank, self.world),
                              num_classes=self.num_classes, below_share=self.below_share,
                              instances=self.instances)
        return b.images, b.labels


def _val_data(config: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor] | Any:
    d = config["data"]
    if d["source"] == "synthetic":
        b = D.synthetic_batch(int(d["val_images"]), D._mix_seed(int(d["seed"]), 424242),
                              num_classes=int(d["num_classes"]), below_share=float(d["below_share"]))
        return b.images, b.labels
    return D.real_dataset(_profile_from_config(config), split="val", train=False)


@torch.no_grad()
def _evaluate_dataset(model: nn.Module, ds, config: dict[str, Any], device: torch.device) -> tuple[float, float]:
    from torch.utils.data import DataLoader

    model.eval()
    loader = DataLoader(ds, batch_size=int(config["train"]["batch_size"]),
                        num_workers=int(config["train"]["num_workers"]), pin_memory=device.type == "cuda")
    correct = n = 0
    loss = 0.0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(config, device):
            out = model(x).float()
        loss += float(F.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
        n += int(y.shape[0])
    model.train()
    return correct / max(n, 1), loss / max(n, 1)


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _autocast(config: dict[str, Any], device: torch.device):
    dtype = _amp_dtype(device) if config["train"]["mixed_precision"] else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _make_optimizer(model: nn.Module, config: dict[str, Any]) -> torch.optim.Optimizer:
    t = config["train"]
    params = [p for p in model.parameters() if p.requires_grad]
    if t["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=float(t["lr"]), momentum=float(t["momentum"]),
                               weight_decay=float(t["weight_decay"]))
    return torch.optim.Adam(params, lr=float(t["lr"]), weight_decay=float(t["weight_decay"]))


def train(config: dict[str, Any], device: str | torch.device | None = None,
          checkpoint: str | Path | None = None, resume: bool = True, stop_after_epochs: int | None = None,
          show_progress: bool = True) -> tuple[RVGG, dict[str, Any]]:
    """Train rVGG for ``config`` (see :func:`training_config`), checkpointing every epoch.

    Args:
        config: the configuration.
        device: ``"cpu"``, ``"cuda"``... (default :func:`helpers.config.get_device`; under
            ``torchrun`` each process takes ``cuda:<LOCAL_RANK>``).
        checkpoint: the checkpoint file (default :func:`checkpoint_path`).
        resume: continue from an unfinished checkpoint of the same configuration (a checkpoint
            of another configuration raises :class:`ConfigMismatchError`).
        stop_after_epochs: stop after this many epochs *in this call* (the checkpoint is then
            unfinished; a later call resumes) -- used to show that resuming changes nothing.
        show_progress: a tqdm bar over the steps (silent in the book build).

    Returns:
        ``(model, info)``: the model in eval mode on ``device``, and the information dict
        (see :func:`train_or_load`).

    Raises:
        helpers.cli.NotWritableError: before the first step, when the checkpoint's folder
            cannot be created or written to.
        helpers.config.CheckpointError, ConfigMismatchError, helpers.models.WallError, ValueError:
            when resuming from a checkpoint that is unreadable, of another configuration, with
            an open wall, or of another layout (see :func:`load_checkpoint`); all ``ValueError``.
    """
    rank, world, local = _dist_env()
    if world > 1 and device is None and torch.cuda.is_available():
        device = torch.device(f"cuda:{local}")
    device = get_device(device)
    if device.type == "cuda" and world > 1:
        torch.cuda.set_device(device)
    rank, world = _init_distributed(device)
    t = config["train"]
    if device.type == "cpu" and int(t["num_threads"]) > 0:
        torch.set_num_threads(int(t["num_threads"]))
    path = Path(checkpoint) if checkpoint is not None else checkpoint_path(config)

    seed_everything(int(t["seed"]))
    model = build_model(config)
    freeze_convolutions(model, int(t.get("freeze_convs", 0)))
    if t.get("weight_standardization"):
        standardize_weights(model, skip=int(t.get("freeze_convs", 0)))
    if t.get("batch_norm"):
        add_batch_norm(model)
    channels_last = bool(t["channels_last"]) or device.type == "cpu"
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = _make_optimizer(model, config)
    history: list[dict[str, Any]] = []
    curve: list[list[float]] = []
    start_epoch, train_seconds = 0, 0.0
    if resume and path.is_file():
        ckpt = load_checkpoint(path, config)
        if ckpt.get("complete"):
            model = finalize_model(model)
            _load_weights(model, ckpt["model"], path)
            model.eval()
            return model, _info(config, path, ckpt, device, from_cache=True)
        _load_weights(model, ckpt["model"], path)
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch = int(ckpt["epoch"])
        history = list(ckpt["history"])
        curve = [list(c) for c in ckpt["curve"]]
        train_seconds = float(ckpt["train_seconds"])
        torch.set_rng_state(ckpt["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in ckpt:
            torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
    # before the first epoch, not after it: the checkpoint folder must be writable (checked on
    # every process, so that all of a DDP run stop at once)
    cli.ensure_writable_folder(
        path.parent, "The checkpoint folder",
        "Pass another checkpoint path (checkpoint=..., --checkpoint) or set CAMWALLS_HOME to a "
        "writable folder.")

    stream = (_ShardedSynthetic(config, rank, world) if config["data"]["source"] == "synthetic"
              else _RealStream(config, rank, world, device))
    val = _val_data(config)
    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if t["compile"] and device.type == "cuda":
        net = torch.compile(net)
    amp_dtype = _amp_dtype(device) if t["mixed_precision"] else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    steps = len(stream)
    epochs = int(t["epochs"])
    last_epoch = epochs if stop_after_epochs is None else min(epochs, start_epoch + int(stop_after_epochs))
    log_every = max(1, int(t["log_every"]))
    current = {"step": start_epoch * steps}
    tie_steps = int(t.get("tie_steps", 0))
    tie_handle = _tie_positions_hook(model, lambda: current["step"] < tie_steps) if tie_steps > 0 else None
    bar = progress(total=(last_epoch - start_epoch) * steps, disable=not show_progress or rank != 0,
                   desc=f"training {'walled' if config['wall_rows'] else 'baseline'} rVGG", leave=False)
    model.train()
    for epoch in range(start_epoch, last_epoch):
        t0 = time.perf_counter()
        # running sums stay on the device; they are read (a synchronisation) only every
        # log_every steps and at the end of the epoch
        run = torch.zeros(3, device=device, dtype=torch.float64)  # loss sum, correct, count
        win = torch.zeros(3, device=device, dtype=torch.float64)
        for step, (x, y) in enumerate(stream.epoch(epoch)):
            global_step = epoch * steps + step
            current["step"] = global_step
            lr = learning_rate(config, global_step, steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(config, device):
                out = net(x)
                loss = F.cross_entropy(out.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if float(t["grad_clip"]) > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(t["grad_clip"]))
            scaler.step(optimizer)
            scaler.update()
            with torch.no_grad():
                b = y.shape[0]
                stats = torch.stack([loss.detach().double() * b, (out.detach().argmax(1) == y).sum().double(),
                                     torch.tensor(float(b), device=device, dtype=torch.float64)])
                run += stats
                win += stats
            if (global_step + 1) % log_every == 0:
                w = win.tolist()
                curve.append([global_step + 1, w[0] / w[2], w[1] / w[2]])
                win.zero_()
                if rank == 0:
                    bar.set_postfix(loss=f"{w[0] / w[2]:.3f}", epoch=epoch + 1)
            bar.update(1)
        run_loss, run_correct, run_n = run.tolist()
        # validation
        if isinstance(val, tuple):
            val_acc, val_loss = evaluate_accuracy(model, val[0], val[1], batch_size=int(t["batch_size"]),
                                                  device=device, channels_last=channels_last)
        else:
            val_acc, val_loss = _evaluate_dataset(model, val, config, device)
        model.train()
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        history.append({
            "epoch": epoch + 1, "step": (epoch + 1) * steps, "lr": lr,
            "train_loss": run_loss / max(run_n, 1), "train_acc": run_correct / max(run_n, 1),
            "val_loss": val_loss, "val_acc": val_acc, "seconds": seconds,
        })
        complete = epoch + 1 == epochs
        if rank == 0:
            ckpt = {
                "config": config, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1, "history": history, "curve": curve, "complete": complete,
                "train_seconds": train_seconds, "rng_cpu": torch.get_rng_state(),
                "device": str(device), "world_size": world,
                "torch": str(torch.__version__),
            }
            if device.type == "cuda":
                ckpt["rng_cuda"] = torch.cuda.get_rng_state(device)
            if complete:
                finalize_model(model)  # plain rVGG weights from now on
                ckpt["model"] = model.state_dict()
                ckpt["position_accuracy"] = _position_accuracy_from_config(model, config, device)
                del ckpt["optimizer"]  # a finished model needs no optimizer state
            save_atomic(ckpt, path)
            _write_metrics_csv(path.with_suffix(".csv"), history)
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
    bar.close()
    if tie_handle is not None:
        tie_handle.remove()
    if last_epoch == epochs:
        finalize_model(model)  # on every rank (rank 0 did it before saving)
    for p in model.parameters():  # frozen layers are ordinary layers again
        p.requires_grad_(True)
    model.eval()
    final = load_checkpoint(path, config) if rank == 0 else {
        "history": history, "curve": curve, "train_seconds": train_seconds, "complete": False, "epoch": last_epoch}
    return model, _info(config, path, final, device, from_cache=False)


def _position_accuracy_from_config(model: nn.Module, config: dict[str, Any], device: torch.device
                                   ) -> dict[str, float]:
    try:
        return position_accuracy(model, _profile_from_config(config), device=device)
    except D.MissingDataError:
        return {}


def _info(config: dict[str, Any], path: Path, ckpt: dict[str, Any], device: torch.device,
          from_cache: bool) -> dict[str, Any]:
    history = list(ckpt.get("history", []))
    return {
        "config": config,
        "key": config_key(config),
        "walled": config["wall_rows"] > 0,
        "checkpoint": str(path),
        "metrics_csv": str(path.with_suffix(".csv")),
        "history": history,
        "curve": [list(c) for c in ckpt.get("curve", [])],
        "val_accuracy": history[-1]["val_acc"] if history else float("nan"),
        "position_accuracy": dict(ckpt.get("position_accuracy", {})),
        "train_seconds": float(ckpt.get("train_seconds", float("nan"))),
        "complete": bool(ckpt.get("complete", False)),
        "epochs_done": int(ckpt.get("epoch", 0)),
        "device": str(device),
        "trained_on": ckpt.get("device", ""),
        "from_cache": from_cache,
        "source": "trained",
    }


def train_or_load(profile: str | Profile | None = None, walled: bool = True,
                  device: str | torch.device | None = None, pair: bool = True,
                  **overrides: Any) -> tuple[RVGG, dict[str, Any]]:
    """The trained rVGG of a profile (walled or baseline), from the cache or trained now.

    Args:
        profile: profile name or object (``None``: ``$CAMWALLS_PROFILE``).
        walled: the walled model (9 hidden map rows) or the baseline.
        device: where the returned model lives (default :func:`helpers.config.get_device`).
        pair: on a CPU with two cores or more, when neither this model nor its sibling (the
            baseline of a walled model, or the reverse; same overrides, no ``wall_rows``
            override) is in the cache, train both at once (:func:`train_both`), since the
            sibling is usually asked for next.
        **overrides: see :func:`training_config` (e.g. ``wall_rows=5``, ``epochs=2``,
            ``width=1/8``).

    Returns:
        ``(model, info)``: the model in eval mode; ``info`` holds ``config``, ``key``,
        ``checkpoint`` (path), ``metrics_csv``, ``history`` (one dict per epoch: ``epoch``,
        ``step``, ``lr``, ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``,
        ``seconds``), ``curve`` (``[step, loss, accuracy]`` every ``log_every`` steps),
        ``val_accuracy``, ``position_accuracy`` (``above``/``straddle``/``below``),
        ``train_seconds``, ``from_cache``, ``source``.

    Raises:
        ConfigMismatchError: when the checkpoint at the configuration's path holds another
            configuration (never silently used).
        helpers.config.CheckpointError: when the cached checkpoint is truncated or corrupt (the
            message names it: delete it and the next call trains the model again).
        helpers.models.WallError: when the cached checkpoint of a walled model has non-zero
            weights under the wall (all three are ``ValueError``).
    """
    config = training_config(profile, walled, **overrides)
    path = checkpoint_path(config)
    dev = get_device(device)
    if path.is_file():
        ckpt = load_checkpoint(path, config)
        if ckpt.get("complete"):
            model = build_model(config)
            _load_weights(model, ckpt["model"], path)
            model.to(dev).eval()
            return model, _info(config, path, ckpt, dev, from_cache=True)
    if pair and "wall_rows" not in overrides and not path.is_file():
        # its sibling (the baseline of a walled model, or the reverse) will be asked for next:
        # on a CPU, train both at the same time when both are missing
        sibling = checkpoint_path(training_config(profile, not walled, **overrides))
        if dev.type == "cpu" and (os.cpu_count() or 1) >= 2 and not sibling.is_file():
            both = train_both(profile, device=dev, **overrides)
            return both["walled" if walled else "baseline"]
    return train(config, device=dev, checkpoint=path, resume=True)


def train_both(profile: str | Profile | None = None, device: str | torch.device | None = None,
               parallel: bool | None = None, **overrides: Any) -> dict[str, tuple[RVGG, dict[str, Any]]]:
    """The walled model and the baseline, from the cache or trained now.

    On a CPU with at least two cores, when both are missing, the two trainings run at the same
    time in two processes (``python -m helpers.train --config-json ...``) with half of the cores
    each -- faster than one after the other, since narrow convolutions use several threads
    poorly; elsewhere one after the other. Each process writes its log beside its checkpoint
    (``.log``).

    Returns:
        ``{"walled": (model, info), "baseline": (model, info)}`` as :func:`train_or_load`.
    """
    import subprocess
    import tempfile

    dev = get_device(device)
    configs = {name: training_config(profile, walled=walled, **overrides)
               for name, walled in (("walled", True), ("baseline", False))}
    missing = {name: cfg for name, cfg in configs.items()
               if not (checkpoint_path(cfg).is_file() and load_checkpoint(checkpoint_path(cfg), cfg).get("complete"))}
    cores = os.cpu_count() or 1
    if parallel is None:
        parallel = dev.type == "cpu" and cores >= 2 and len(missing) == 2
    if parallel and len(missing) == 2:
        threads = max(1, cores // 2)
        procs = []
        with tempfile.TemporaryDirectory() as tmp:
            for name, cfg in missing.items():
                cfg = json.loads(json.dumps(cfg))
                cfg["train"]["num_threads"] = threads
                cfg_path = Path(tmp) / f"{name}.json"
                cfg_path.write_text(json.dumps(cfg))
                ckpt = checkpoint_path(cfg)
                cli.ensure_writable_folder(ckpt.parent, "The checkpoint folder",
                                           "Set CAMWALLS_HOME to a writable folder.")
                log = open(ckpt.with_suffix(".log"), "w")
                env = dict(os.environ, OMP_NUM_THREADS=str(threads))
                # --debug: a failure leaves its full traceback in the log
                cmd = [sys.executable, "-m", "helpers.train", "--config-json", str(cfg_path),
                       "--checkpoint", str(ckpt), "--device", str(dev), "--no-progress", "--debug"]
                procs.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log, ckpt))
            for _, proc, log, _ in procs:
                proc.wait()
                log.close()
        failed = [(name, ckpt.with_suffix(".log")) for name, proc, _, ckpt in procs if proc.returncode != 0]
        if failed:
            tail = failed[0][1].read_text()[-1500:] if failed[0][1].is_file() else ""
            raise RuntimeError(f"Training failed for {', '.join(n for n, _ in failed)}; see "
                               f"{', '.join(str(p) for _, p in failed)}. End of the first log:\n{tail}")
    out = {}
    for name, walled in (("walled", True), ("baseline", False)):
        out[name] = train_or_load(profile, walled=walled, device=dev, pair=False, **overrides)
    return out


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def _fraction(text: str) -> float:
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.train``: train (or load) the walled and/or the baseline rVGG.

    Returns the exit status: 0, or :data:`helpers.cli.EXIT_ERROR` after an error, printed as
    one ``error: ...`` line on stderr (``--debug``: the exception propagates, with its
    traceback). Usage errors exit through argparse (``SystemExit``).
    """
    parser = argparse.ArgumentParser(
        prog="python -m helpers.train",
        description="Train rVGG (walled and/or baseline) for a profile, or load it from the "
        "checkpoint cache. Under torchrun, trains with DDP (one process per GPU).",
    )
    parser.add_argument("--profile", default=None, help="quick (CPU, synthetic) or full (GPU, real "
                        "data); default $CAMWALLS_PROFILE or quick")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--walled", action="store_true", help="train the walled model only")
    which.add_argument("--baseline", action="store_true", help="train the baseline only")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: auto)")
    parser.add_argument("--width", type=_fraction, default=None, help="channel multiplier, e.g. 1/16")
    parser.add_argument("--wall-rows", type=int, default=None, help="hidden map rows (walled model)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--train-images", type=int, default=None, help="synthetic images per epoch")
    parser.add_argument("--val-images", type=int, default=None)
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--source", default=None, help="synthetic, imagefolder or imagenette")
    parser.add_argument("--data-root", default=None, help="imagefolder root (train/ and val/ inside)")
    parser.add_argument("--num-threads", type=int, default=None, help="CPU threads")
    parser.add_argument("--compile", action="store_true", help="torch.compile on GPU")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file (default: the cache)")
    parser.add_argument("--stop-after-epochs", type=int, default=None,
                        help="stop after this many epochs (resume later)")
    parser.add_argument("--fresh", action="store_true", help="ignore an unfinished checkpoint")
    parser.add_argument("--config-json", default=None,
                        help="train exactly this configuration (a JSON file written by train_both)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other training or data setting, e.g. --set warmup_steps=50 "
                        "(repeatable; values parsed as JSON when possible)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--summary-json", default=None, metavar="PATH",
                        help="also write the runs' summaries (accuracies, per-epoch history, time, "
                        "machine, command) to this JSON file, e.g. for results/")
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda: _command(parser, args, argv), debug=args.debug)


def _read_config_json(path: Path) -> dict[str, Any]:
    """The training configuration in the JSON file ``path`` (``--config-json``).

    Raises:
        FileNotFoundError: when there is no such file.
        ValueError: when it is not JSON, or not a training configuration.
    """
    if not path.is_file():
        raise FileNotFoundError(
            f"--config-json {path}: no such file. Expected a training configuration in JSON, as "
            "train_both writes (helpers.train.training_config(...) dumped with json.dump); pass an "
            "existing file, or use --profile and the settings' options instead.")
    try:
        fixed = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"--config-json {path} is not valid JSON ({err}). Expected a training "
                         "configuration as helpers.train.training_config returns it.") from err
    missing = [k for k in ("train", "data", "wall_rows", "profile", "width") if not isinstance(fixed, dict)
               or k not in fixed]
    if missing:
        raise ValueError(f"--config-json {path} is not a training configuration: it lacks {missing}. "
                         "Expected what helpers.train.training_config returns, dumped as JSON.")
    return fixed


def _command(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None) -> int:
    """The body of :func:`main`, run under :func:`helpers.cli.run`."""
    overrides: dict[str, Any] = {}
    for name, key in [("width", "width"), ("epochs", "epochs"), ("batch_size", "batch_size"),
                      ("lr", "lr"), ("train_images", "train_images"), ("val_images", "val_images"),
                      ("num_classes", "num_classes"), ("seed", "seed"), ("source", "source"),
                      ("data_root", "root"), ("num_threads", "num_threads")]:
        value = getattr(args, name)
        if value is not None:
            overrides[key] = value
    if args.compile:
        overrides["compile"] = True
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    kinds = [True] if args.walled else [False] if args.baseline else [True, False]
    if args.wall_rows is not None:
        if args.baseline:
            parser.error("--wall-rows and --baseline contradict each other")
        overrides["wall_rows"] = args.wall_rows
        kinds = [args.wall_rows > 0]
    rank = _dist_env()[0]
    fixed = None
    if args.config_json:
        fixed = _read_config_json(Path(args.config_json))
        kinds = [fixed["wall_rows"] > 0]
    if args.summary_json and rank == 0:  # fail now, not after the training
        cli.ensure_writable_folder(Path(args.summary_json).parent, "The folder of --summary-json",
                                   "Pass --summary-json a path in a folder you can write to.")
    runs = []
    for walled in kinds:
        config = fixed if fixed is not None else training_config(args.profile, walled, **overrides)
        path = Path(args.checkpoint) if args.checkpoint else checkpoint_path(config)
        t0 = time.perf_counter()
        model, info = train(config, device=args.device, checkpoint=path, resume=not args.fresh,
                            stop_after_epochs=args.stop_after_epochs, show_progress=not args.no_progress)
        if rank == 0:
            summary = {k: info[k] for k in ("walled", "checkpoint", "val_accuracy", "position_accuracy",
                                            "train_seconds", "complete", "epochs_done", "from_cache")}
            summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
            print(json.dumps(summary, default=str))
            runs.append({**summary, "key": info["key"], "history": info["history"], "config": config})
    if args.summary_json and rank == 0:
        import datetime
        import platform

        out = Path(args.summary_json)
        out.parent.mkdir(parents=True, exist_ok=True)
        machine = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                   "torch": str(torch.__version__), "platform": platform.platform(),
                   "device": str(get_device(args.device))}
        if torch.cuda.is_available():
            machine["gpu"] = torch.cuda.get_device_name(0)
        text = json.dumps({
            "command": "python -m helpers.train " + " ".join(sys.argv[1:] if argv is None else argv),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": machine, "runs": runs}, indent=1, default=str) + "\n"
        try:
            out.write_text(text)
        except OSError as err:
            raise OSError(
                f"Cannot write the summary to --summary-json {out} ({type(err).__name__}: {err}). Nothing "
                f"trained is lost: the checkpoints are {', '.join(str(r['checkpoint']) for r in runs)}; run "
                "the same command again (without --fresh) with a writable --summary-json path: the runs then "
                "load from them."
            ) from err
        print(f"summary written to {out}")
    if _dist_env()[1] > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
