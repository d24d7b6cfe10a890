"""Question 3 of chapter 07: walls of several heights, mu per method for each.

To keep it affordable every height shares the *baseline's* convolutional features
(:func:`target_features`) and only the classifier is retrained for each wall
(:func:`helpers.train.train_walled_head`); :func:`wall_height_sweep` reports each height's
unseen rows and every method's mu.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import wall
from ..config import IMAGE_SIZE, MAP_SIZE, progress
from ..models import RVGG
from ..train import head_accuracy, train_walled_head
from .methods import check_images, measure_methods, summary_rows

__all__ = ["target_features", "wall_height_sweep"]


@torch.no_grad()
def target_features(
    model: RVGG, images: torch.Tensor, batch_size: int = 32
) -> torch.Tensor:
    """The CAM target layer's output ``(N, C, 14, 14)`` of an rVGG (``model.features``), eval mode."""
    images = check_images(images)
    param = next(model.parameters())
    was = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(images), batch_size):
            x = (
                images[i : i + batch_size]
                .to(param.device, param.dtype)
                .contiguous(memory_format=torch.channels_last)
            )
            out.append(model.features(x).float().cpu())
    finally:
        model.train(was)
    return torch.cat(out).contiguous()


def wall_height_sweep(
    baseline: RVGG,
    stack_images: torch.Tensor,
    heights: Sequence[int],
    methods: Sequence[str],
    probe: tuple[torch.Tensor, torch.Tensor],
    position_features: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    epochs: int = 10,
    batch_size: int = 25,
    seed: int = 0,
    show_progress: bool = True,
) -> dict[str, Any]:
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
    stack_images = check_images(stack_images, "stack_images")
    feats, labels = probe
    rows, geometry, models = [], [], {}
    bar = progress(
        list(heights), desc="wall heights", leave=False, disable=not show_progress
    )
    for k in bar:
        model, info = train_walled_head(
            baseline, feats, labels, int(k), epochs=epochs, seed=seed
        )
        models[int(k)] = model
        unseen = wall.unseen_rows(model)
        share = wall.unseen_share(unseen)
        zero_rows = (
            wall.upsampled_zero_rows(range(MAP_SIZE - int(k), MAP_SIZE))
            if k
            else np.array([], int)
        )
        geo = {
            "wall_rows": int(k),
            "unseen_rows": int(len(unseen)),
            "first_unseen_row": int(unseen[0]) if len(unseen) else IMAGE_SIZE,
            "unseen_share": share,
            "hirescam_zero_rows": int(len(zero_rows)),
            "hirescam_zero_share": len(zero_rows) / IMAGE_SIZE,
            "train_accuracy": info["train_accuracy"],
        }
        if position_features:
            for group, (f, y) in position_features.items():
                geo[f"accuracy_{group}"] = head_accuracy(model, f, y)
        geometry.append(geo)
        measured = measure_methods(
            model, stack_images, methods, rows=unseen, batch_size=batch_size
        )
        for row in summary_rows(measured, wall_rows=int(k), unseen_share=share):
            row["uniform_mu"] = math.sqrt(share)
            rows.append(row)
    return {
        "rows": rows,
        "geometry": geometry,
        "heights": [int(k) for k in heights],
        "models": models,
    }
