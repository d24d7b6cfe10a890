"""Training only the head: an rVGG with a trained model's convolutional features (copied,
frozen) and a new classifier walled at any height, trained from scratch on cached features with
the one loop (:func:`helpers.train.fit`). The wall-height sweep of "Beyond the paper" trains one
per height this way, all sharing the baseline's features.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import nn

from .. import data as D
from ..config import MAP_SIZE, seed_everything
from ..models import RVGG, WalledLinear, wall_mask
from .loop import fit
from .streams import ShuffledTensors

__all__ = ["train_walled_head", "head_accuracy"]


def train_walled_head(
    baseline: RVGG,
    features: torch.Tensor,
    labels: torch.Tensor,
    wall_rows: int,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[RVGG, dict[str, Any]]:
    """An rVGG with the baseline's convolutional features (copied, frozen) and a classifier with
    a wall of ``wall_rows`` hidden map rows, trained from scratch on cached features.

    Args:
        baseline: an rVGG whose ``features`` are reused (normally the unwalled baseline).
        features: ``(N, C, 14, 14)`` target-layer outputs of ``baseline``
            (:func:`helpers.experiments.target_features`).
        labels: ``(N,)`` classes.
        wall_rows: hidden map rows of the new classifier (0..14).
        epochs, lr, batch_size, seed: Adam on the classifier only (dropout as in rVGG), the
            features in a new order (drawn from ``seed``) every epoch.

    Returns:
        ``(model, info)``: the model in eval mode on the baseline's device; ``info`` has
        ``train_accuracy``, ``losses`` (per epoch), ``history`` (one row per epoch) and
        ``seconds``.

    Raises:
        ValueError: on features that are not ``(N, C, 14, 14)``, labels of another length or
            out of range, or a wall height out of 0..14.
    """
    if features.dim() != 4 or features.shape[2:] != (MAP_SIZE, MAP_SIZE):
        raise ValueError(
            f"features must be (N, C, 14, 14), got {tuple(features.shape)}."
        )
    if labels.shape != (features.shape[0],):
        raise ValueError(
            f"labels must have shape ({features.shape[0]},), got {tuple(labels.shape)}."
        )
    D.check_labels(labels, baseline.num_classes)
    if not 0 <= int(wall_rows) <= MAP_SIZE:
        raise ValueError(f"wall_rows must be in 0..{MAP_SIZE}, got {wall_rows}.")
    t0 = time.perf_counter()
    gen = seed_everything(seed)
    # a copy of the baseline with a new first dense layer (walled or not), every dense layer
    # re-initialized by rVGG's own initialization, and the baseline's features put back
    device = next(baseline.parameters()).device
    model = copy.deepcopy(baseline).float()
    first = model.classifier[0]
    channels = int(model.map_channels)
    model.classifier[0] = (
        WalledLinear(
            first.in_features,
            first.out_features,
            wall_mask(channels, MAP_SIZE, int(wall_rows)),
        )
        if wall_rows > 0
        else nn.Linear(first.in_features, first.out_features)
    )
    model.wall_rows = int(wall_rows)
    model._init_weights()
    model.features.load_state_dict(baseline.features.state_dict())
    model.to(device)
    for p in model.features.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(model.classifier.parameters(), lr=lr)
    batches = ShuffledTensors(features.flatten(1), labels, batch_size, gen)
    state = fit(
        model.classifier,
        batches,
        opt,
        epochs=int(epochs),
        device=device,
        show_progress=False,
        desc=f"training a head walled at {int(wall_rows)} rows",
    )
    model.eval()
    return model, {
        "train_accuracy": head_accuracy(model, features, labels),
        "losses": [row["train_loss"] for row in state.history],
        "history": state.history,
        "seconds": time.perf_counter() - t0,
    }


@torch.no_grad()
def head_accuracy(
    model: RVGG, features: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024
) -> float:
    """Top-1 accuracy of ``model``'s classifier on target-layer features ``(N, C, 14, 14)``
    (``model`` in eval mode)."""
    device = next(model.parameters()).device
    flat = features.flatten(1)
    pred = torch.cat(
        [
            model.classifier(flat[i : i + batch_size].to(device)).argmax(1).cpu()
            for i in range(0, len(flat), batch_size)
        ]
    )
    return float((pred == labels).float().mean())
