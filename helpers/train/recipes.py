"""The recipes of rVGG's training: how the model starts, the aids that train it faster, the
learning-rate schedule, and the plain rVGG every aid leaves at the end.

* initialization (:func:`build_model`): torchvision's VGG initialization (the paper's), a
  position-shared ("pooled") head, or identity ("dirac") convolutions;
* aids of the quick profile, each leaving a plain rVGG at the end (:func:`finalize_model`):
  scaled weight standardization of the convolutions (a reparametrization baked into ordinary
  weights), batch norm after every convolution (folded into it), a first dense layer tied across
  map positions for the first steps (:func:`tie_positions_hook`), frozen first convolutions;
* the schedule (:func:`learning_rate`): warm-up, then StepLR or a cosine decay.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..models import RVGG, rvgg

__all__ = [
    "build_model",
    "ScaledWeightStandardization",
    "standardize_weights",
    "freeze_convolutions",
    "bake_parametrizations",
    "ConvBN",
    "add_batch_norm",
    "fold_batch_norm",
    "finalize_model",
    "tie_positions_hook",
    "tied_steps",
    "learning_rate",
]


def build_model(config: dict[str, Any]) -> RVGG:
    """An untrained rVGG for ``config`` (width, wall rows, classes, dropout, initialization).

    ``train.init = "torchvision"`` keeps torchvision's VGG initialization (Kaiming normal
    convolutions, N(0, 0.01) dense layers), the paper's. ``"pooled"`` (the quick profile) keeps
    the convolutions but starts the first dense layer with the same weights at every map
    position (a global sum over the positions it reads) and the other dense layers with Kaiming
    weights (the last one scaled by 0.1); with ``tie_fraction`` the head stays position-shared for
    a while, so the features learn without the head having to learn every position apart.
    ``"dirac"`` also starts every convolution after the first as an identity kernel plus
    ``init_noise`` times Kaiming noise (a shallow network at first). The architecture, hence
    the wall, is the same either way.
    """
    model = rvgg(
        num_classes=int(config["data"]["num_classes"]),
        width=float(config["width"]),
        wall_rows=int(config["wall_rows"]),
        dropout=float(config["train"]["dropout"]),
    )
    init = config["train"].get("init", "torchvision")
    if init == "dirac":
        _dirac_init(model, float(config["train"].get("init_noise", 0.3)))
    elif init == "pooled":
        _pooled_head_init(model)
    elif init != "torchvision":
        raise ValueError(
            f"Unknown init {init!r}; expected 'torchvision', 'pooled' or 'dirac'."
        )
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
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    for conv in convs[skip:]:
        if not parametrize.is_parametrized(conv, "weight"):
            parametrize.register_parametrization(
                conv, "weight", ScaledWeightStandardization(conv.out_channels)
            )
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
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(
                    module, name, leave_parametrized=True
                )
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
            bias = (
                conv.bias
                if conv.bias is not None
                else torch.zeros_like(bn.running_mean)
            )
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


def tie_positions_hook(model: RVGG, active: Callable[[], bool]):
    """A gradient hook on the first dense layer that, while ``active()``, replaces the gradient
    of every weight by its mean over the visible map positions (per hidden unit and channel):
    weights that start equal across positions stay equal (a global-sum head over the visible
    rows), so the features learn without the head having to learn every position apart."""
    first = model.classifier[0]
    channels = model.map_channels
    positions = first.in_features // channels
    visible = (
        first.mask.view(channels, positions)[0]
        if hasattr(first, "mask")
        else torch.ones(positions)
    ).to(first.weight.device)

    def hook(grad: torch.Tensor) -> torch.Tensor:
        if not active():
            return grad
        g = grad.view(grad.shape[0], channels, positions)
        mean = (g * visible).sum(-1, keepdim=True) / visible.sum()
        return (mean * visible).expand_as(g).reshape(grad.shape).contiguous()

    return first.weight.register_hook(hook)


def tied_steps(fraction: float, total_steps: int) -> int:
    """How many of the first ``total_steps`` optimizer steps keep the first dense layer tied
    across positions (:func:`tie_positions_hook`): ``round(fraction * total_steps)``.

    Raises:
        ValueError: when the tie would last the whole run (the trained head would be a sum over
            positions, not rVGG's), or ``fraction`` is not in ``[0, 1)``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"tie_fraction must be in [0, 1), got {fraction}.")
    tied = int(round(fraction * total_steps))
    if tied and tied >= total_steps:
        raise ValueError(
            f"tie_fraction={fraction} ties the first dense layer for {tied} of the run's {total_steps} "
            "steps, i.e. to the end: the model would stay a sum over positions. Lower tie_fraction or "
            "train for more steps."
        )
    return tied


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
    shared = (
        torch.randn(first.out_features, channels)
        * math.sqrt(2.0 / channels)
        / positions
    )
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
        lr *= float(t["lr_gamma"]) ** (
            (step // steps_per_epoch) // max(1, int(t["lr_step_epochs"]))
        )
    else:
        lr *= 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    warm = int(t["warmup_steps"])
    if warm > 0 and step < warm:
        lr *= (step + 1) / warm
    return lr
