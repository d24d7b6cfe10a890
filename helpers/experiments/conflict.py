"""Question 6 of chapter 07: conflicting stacks, a class-A image above the wall and a class-B
image below it. :func:`conflict_report` says what each model predicts and how much of each
method's map falls on the image the walled model cannot see.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from ..cams import METHODS
from ..data import StackSet
from ..metrics import PAPER_UNSEEN_ROWS, summarize
from .methods import check_images, measure_methods

__all__ = ["conflict_report"]


def conflict_report(
    models: dict[str, nn.Module],
    stack: StackSet,
    methods: Sequence[str],
    batch_size: int = 25,
    keep_maps: int = 2,
) -> dict[str, Any]:
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
    images = check_images(stack.images, "stack.images")
    first_bottom = int(PAPER_UNSEEN_ROWS[0])
    out: dict[str, Any] = {"predictions": {}, "rows": [], "measured": {}}
    for name, model in models.items():
        measured = measure_methods(
            model,
            images,
            methods,
            rows=PAPER_UNSEEN_ROWS,
            batch_size=batch_size,
            keep_maps=keep_maps,
        )
        pred = next(iter(measured.values()))["targets"]
        top = np.asarray(stack.labels) == pred
        bottom = np.asarray(stack.bottom_labels) == pred
        out["predictions"][name] = {
            "top": float(top.mean()),
            "bottom": float(bottom.mean()),
            "predicted": pred,
        }
        out["measured"][name] = measured
        for key, m in measured.items():
            sel = top if top.any() else np.ones_like(top)
            out["rows"].append(
                {
                    "model": name,
                    "method": key,
                    "display": METHODS[key].display,
                    "mu_mean": float(m["mu"][sel].mean()),
                    "mu_std": summarize(m["mu"][sel])["std"],
                    "peak_on_bottom": float(
                        (m["peak_row"][sel] >= first_bottom).mean()
                    ),
                    "n": int(sel.sum()),
                }
            )
    return out
