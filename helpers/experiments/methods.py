"""Question 1 of chapter 07, every CAM method against the wall, and the measurement of methods
on a model that the other questions share.

* :func:`measure_methods` -- every method's maps on a batch (:func:`helpers.cams.compute_cams`)
  and the chapter's per-image numbers (mu, zero share, the 14x14 map behind the wall, ...);
* :func:`method_leak_report` -- did each method's prediction (global or element-wise weights)
  hold on the walled model? Judged by the book's one criterion, :func:`helpers.results.verdict`;
* :func:`prediction_tally` -- the same per method, over the stack sets: how many predictions
  held, of how many firm ones, and on how many images (k of n) each method put anything behind
  the wall; chapters 06 and 07 both count with it;
* :func:`outcome_reason` -- one sentence on why a method is blind or leaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import metrics, wall
from ..cams import METHODS, compute_cams, get_method
from ..config import MAP_SIZE
from ..models import check_image_batch
from ..results import Verdict, prediction_held, verdict
from ..results import table as results_table

__all__ = [
    "check_images",
    "measure_methods",
    "summary_rows",
    "method_leak_report",
    "prediction_tally",
    "outcome_reason",
]


def check_images(images: Any, name: str = "images") -> torch.Tensor:
    """``images`` if it is a non-empty ``(N, 3, 224, 224)`` tensor; a ``TypeError`` or
    ``ValueError`` naming ``name`` if not."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor (N, 3, 224, 224), got {type(images).__name__}."
        )
    check_image_batch(images)
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty; pass at least one image.")
    return images


def measure_methods(
    model: nn.Module,
    images: torch.Tensor,
    methods: Sequence[str],
    rows: Sequence[int] | None = None,
    targets: Any = None,
    batch_size: int = 25,
    keep_maps: int = 0,
) -> dict[str, dict[str, Any]]:
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
    images = check_images(images)
    if rows is None:
        rows = wall.unseen_rows(model, images.shape[-1])
    rows = np.asarray(rows, dtype=int)
    try:
        visible = np.asarray(wall.visible_map_rows(model), dtype=int)
    except (ValueError, AttributeError):
        visible = None
    results = compute_cams(model, images, list(methods), targets, batch_size=batch_size)
    out: dict[str, dict[str, Any]] = {}
    for key, res in results.items():
        scaled = res.scaled
        mu = (
            metrics.dead_zone_share(scaled, rows=rows)
            if rows.size
            else np.zeros(len(scaled))
        )
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


def summary_rows(
    measured: dict[str, dict[str, Any]], **extra: Any
) -> list[dict[str, Any]]:
    """One row per method of :func:`measure_methods`'s result: ``extra``, ``method``,
    ``display``, the mean and spread of mu, the zero share and the shares of images whose
    hidden 14x14 rows are zero or constant (NaN where that does not apply), ``n``."""
    rows = []
    for key, m in measured.items():
        rows.append(
            {
                **extra,
                "method": key,
                "display": METHODS[key].display,
                "mu_mean": float(np.mean(m["mu"])),
                "mu_std": metrics.summarize(m["mu"])["std"],
                "zero_mean": float(np.mean(m["zero"])),
                "hidden_map_zero_share": (
                    float(np.mean(m["hidden_map_zero"]))
                    if np.isfinite(m["hidden_map_zero"]).all()
                    else float("nan")
                ),
                "hidden_map_constant_share": (
                    float(np.mean(m["hidden_map_constant"]))
                    if np.isfinite(m["hidden_map_constant"]).all()
                    else float("nan")
                ),
                "n": int(len(m["mu"])),
            }
        )
    return rows


def method_leak_report(table: Any) -> list[dict[str, Any]]:
    """Prediction against observation for every method of a Table 1, on the walled model.

    Args:
        table: the results table (:func:`helpers.results.table`) or anything it accepts, e.g.
            :func:`helpers.evaluate.table1`'s rows; its ``"walled"`` rows are used.

    Returns:
        One row per (method, stack set), in the registry's order: ``method``, ``display``,
        ``set``, ``weights``, ``signal``, ``prediction``, ``mu_mean``, ``positive_share`` (share
        of the images with mu > 0), ``n_images`` (images judged; 0 when the table does not say),
        ``positive`` (how many of them have mu > 0; ``None`` when the table does not say),
        ``observed`` (``"leaks"`` or ``"blind"``: the book's one
        criterion, :func:`helpers.results.verdict`), ``agrees`` (bool; a ``"may leak"``
        prediction agrees with either outcome, :func:`helpers.results.prediction_held`).

    Raises:
        ValueError: a table without rows of the walled model.
    """
    df = table if isinstance(table, pd.DataFrame) else results_table(table)
    walled = df[df["model"] == "walled"]
    if walled.empty:
        raise ValueError(
            "the table has no rows of the walled model; expected rows with "
            "model='walled', method and mu_mean (helpers.evaluate's Table 1)."
        )
    out = []
    for row in walled.to_dict("records"):
        m = METHODS[row["method"]]
        v = verdict(row)
        known = v.n_images > 0 and np.isfinite(v.positive_share)
        out.append(
            {
                "method": m.key,
                "display": m.display,
                "set": row["set"],
                "weights": m.weights,
                "signal": m.signal,
                "prediction": m.prediction,
                "mu_mean": float(row["mu_mean"]),
                "positive_share": v.positive_share,
                "n_images": v.n_images,
                "positive": int(round(v.positive_share * v.n_images))
                if known
                else None,
                "observed": v.observed,
                "agrees": prediction_held(m.prediction, v) is not False,
            }
        )
    order = {k: i for i, k in enumerate(METHODS)}
    sets = {name: i for i, name in enumerate(dict.fromkeys(r["set"] for r in out))}
    return sorted(out, key=lambda r: (order.get(r["method"], 99), sets[r["set"]]))


def prediction_tally(table: Any) -> dict[str, Any]:
    """Did the formulas' prediction hold, counted once for the whole book (chapters 06 and 07).

    A method's prediction (:attr:`helpers.cams.CamMethod.prediction`) is judged on the walled
    model over every stack set together (:func:`helpers.results.prediction_held`): ``"leaks"``
    holds when the method leaks on each set, ``"blind"`` when it is blind on each; ``"may
    leak"`` is no firm claim, and is counted apart, never as a success.

    Args:
        table: what :func:`method_leak_report` accepts.

    Returns:
        ``{"methods": [...], "held": int, "tested": int, "failed": [keys], "either_way": [keys]}``:
        ``tested`` counts the methods with a firm prediction, ``held`` those whose prediction
        held, ``failed`` the others, ``either_way`` the ``"may leak"`` methods. Each entry of
        ``methods`` (registry order) has ``method``, ``display``, ``weights``, ``prediction``,
        ``held`` (``True``, ``False``, or ``None`` for ``"may leak"``), ``observed`` (``"leaks"``
        when the method leaks on some set, else ``"blind"``) and ``sets``: ``{set: {"mu_mean",
        "positive" (images with mu > 0, or None), "n" (images judged), "observed"}}`` in the
        table's order of the sets.
    """
    report = method_leak_report(table)
    methods: dict[str, dict[str, Any]] = {}
    for r in report:
        entry = methods.setdefault(
            r["method"],
            {
                "method": r["method"],
                "display": r["display"],
                "weights": r["weights"],
                "prediction": r["prediction"],
                "sets": {},
            },
        )
        entry["sets"][r["set"]] = {
            "mu_mean": r["mu_mean"],
            "positive": r["positive"],
            "n": r["n_images"],
            "observed": r["observed"],
        }
    out = {"methods": [], "held": 0, "tested": 0, "failed": [], "either_way": []}
    for key, entry in methods.items():
        observed = [s["observed"] for s in entry["sets"].values()]
        entry["observed"] = "leaks" if "leaks" in observed else "blind"
        entry["held"] = prediction_held(
            entry["prediction"], [_verdict_of(s) for s in entry["sets"].values()]
        )
        if entry["held"] is None:
            out["either_way"].append(key)
        else:
            out["tested"] += 1
            out["held"] += int(entry["held"])
            if not entry["held"]:
                out["failed"].append(key)
        out["methods"].append(entry)
    return out


def _verdict_of(cell: dict[str, Any]) -> Verdict:
    """A :class:`helpers.results.Verdict` rebuilt from one set's entry of
    :func:`prediction_tally` (its ``observed``, share and count)."""
    n = int(cell["n"] or 0)
    share = cell["positive"] / n if n and cell["positive"] is not None else float("nan")
    return Verdict(cell["observed"], share, n)


#: Why a method's outcome behind the wall is what it is, when its weights alone do not decide it
#: (``(if blind, if it leaks)``).
_OUTCOME_REASONS = {
    "fullgrad": (
        "FullGrad sums gradients (of the input and of every bias) times values; no unit whose "
        "receptive field lies wholly in the unseen rows receives any gradient, and the coarser "
        "layers' upsampled terms stop above the wall too: blind by geometry, not by its weights",
        "FullGrad's per-layer terms are upsampled from coarser grids, and a seen unit's upsampled "
        "footprint reaches below the wall",
    ),
    "eigengradcam": (
        "EigenGradCAM projects the centred products G*A; behind the wall they are all 0, so the map "
        "there is one constant, which was not positive here",
        "EigenGradCAM projects the centred products G*A; behind the wall they are all 0, so the map "
        "there is one constant, positive here: a flat block",
    ),
    "segeigencam": (
        "Seg-Eigen-CAM projects the centred products |G|*A: a constant behind the wall, not positive here",
        "Seg-Eigen-CAM projects the centred products |G|*A: a constant behind the wall, positive here",
    ),
    "layercam": (
        "LayerCAM weights each position by its own positive gradient, zero behind the wall",
        "LayerCAM should be zero behind the wall (its gradients are); a non-zero value means the "
        "gradient there is not zero, i.e. the wall leaks",
    ),
    "hirescam": (
        "HiResCAM weights each position by its own gradient, zero behind the wall",
        "HiResCAM should be zero behind the wall; a non-zero value means the wall leaks",
    ),
    "gradcamelementwise": (
        "GradCAM-ElementWise sums ReLU(G*A) position by position, zero behind the wall",
        "GradCAM-ElementWise should be zero behind the wall; a non-zero value means the wall leaks",
    ),
}


def outcome_reason(method: str, observed: str) -> str:
    """One sentence on why ``method`` is ``observed`` (``"blind"`` or ``"leaks"``) behind the wall:
    a specific reason where the weights alone do not decide it, else the registry's grouping."""
    m = get_method(method)
    if observed not in ("blind", "leaks"):
        raise ValueError(f"observed must be 'blind' or 'leaks', got {observed!r}.")
    if m.key in _OUTCOME_REASONS:
        return _OUTCOME_REASONS[m.key][0 if observed == "blind" else 1]
    if m.weights == "global":
        if observed == "leaks":
            return f"{m.display} weights whole activation maps, which are not zero behind the wall"
        return (
            f"{m.display} weights whole activation maps; they happened to cancel behind the wall "
            "on these images"
        )
    return f"{m.display} has {m.weights} weights"
