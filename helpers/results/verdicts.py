"""Did a method see through the wall? The book's one verdict, its criterion written once.

:func:`verdict` judges per-image mu values or rows of the results table
(:func:`helpers.results.table`); :func:`prediction_held` says whether what a method's weights
predict (:attr:`helpers.cams.CamMethod.prediction`) held.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["BLIND", "LEAKS", "Verdict", "verdict", "prediction_held", "is_missing"]

#: The two outcomes of :func:`verdict` (the words of :attr:`helpers.cams.CamMethod.prediction`).
BLIND, LEAKS = "blind", "leaks"


@dataclass(frozen=True)
class Verdict:
    """What :func:`verdict` says: ``observed`` (:data:`LEAKS` or :data:`BLIND`), the share of
    the images with mu > 0 (NaN when the rows do not say), and how many images were judged
    (0 when the rows do not say)."""

    observed: str
    positive_share: float
    n_images: int

    @property
    def leaks(self) -> bool:
        return self.observed == LEAKS


def _as_rows(cells: Any) -> list[Mapping[str, Any]]:
    if isinstance(cells, pd.DataFrame):
        return cells.to_dict("records")
    if isinstance(cells, pd.Series):
        return [cells.to_dict()]
    if isinstance(cells, Mapping):
        return [cells]
    return list(cells)


def is_missing(x: Any) -> bool:
    """Whether a cell holds no value (``None``, NaN, pandas' NA)."""
    return x is None or (not isinstance(x, str) and bool(pd.isna(x)))


def _known(x: Any) -> bool:
    return not is_missing(x)


def verdict(cells: Any) -> Verdict:
    """Did a method's map see through the wall? The book's one criterion:

    **A method leaks on a set of images when its map puts anything at all behind the wall on
    at least one image (mu > 0 on some image); it is blind when mu is exactly 0 on every image
    (mu_max == 0).** No tolerance: a map that respects the wall does so exactly (the gradient
    behind it is exactly zero, and so is every element-wise map there, in float32 as in exact
    arithmetic), and anything above zero is saliency the model cannot have used, however
    small. Beside the verdict, the share of the images with mu > 0 says how often it leaked.

    Args:
        cells: per-image mu values (a 1-D array or list of numbers), or rows of
            :func:`helpers.results.table` (a row, a DataFrame, or a list of rows; several rows
            are judged together: blind only when every one is). A row is judged by ``mu_max``, or, when it has none, by
            ``mu_mean`` (mu >= 0, so ``mu_mean == 0`` exactly when ``mu_max == 0``); its share
            of images with mu > 0 is ``1 - mu_zero_share``.

    Returns:
        A :class:`Verdict`.

    Raises:
        ValueError: no values, a negative or non-finite mu, or a row with neither ``mu_max``
            nor ``mu_mean``.
    """
    if isinstance(cells, (np.ndarray, list, tuple)) and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        for v in np.asarray(cells, dtype=object).ravel()
    ):
        mu = np.asarray(cells, dtype=float).ravel()
        if mu.size == 0:
            raise ValueError("verdict of no images: pass at least one mu value.")
        if not np.isfinite(mu).all() or (mu < 0).any():
            raise ValueError(
                f"mu must be finite and >= 0, got {mu[~np.isfinite(mu) | (mu < 0)][:3]}."
            )
        positive = float(np.mean(mu > 0))
        return Verdict(LEAKS if positive > 0 else BLIND, positive, int(mu.size))
    rows = _as_rows(cells)
    if not rows:
        raise ValueError("verdict of no rows: pass at least one result row.")
    leaks, shares, counts = False, [], []
    for r in rows:
        top = r.get("mu_max") if _known(r.get("mu_max")) else r.get("mu_mean")
        if not _known(top):
            raise ValueError(
                f"Result row {dict(r)} has neither mu_max nor mu_mean to judge."
            )
        if float(top) < 0:
            raise ValueError(f"mu must be >= 0; row {dict(r)} has {top}.")
        row_leaks = float(top) > 0
        leaks |= row_leaks
        zero_share = r.get("mu_zero_share")
        shares.append(
            1.0 - float(zero_share)
            if _known(zero_share)
            else (float("nan") if row_leaks else 0.0)
        )
        n = r.get("n_images")
        counts.append(int(n) if _known(n) else 0)
    if all(counts):
        share = float(np.dot(shares, counts) / sum(counts))
    else:
        share = float(np.mean(shares))
    return Verdict(LEAKS if leaks else BLIND, share, int(sum(counts)))


def prediction_held(
    prediction: str, verdicts: Verdict | Iterable[Verdict]
) -> bool | None:
    """Whether a method's prediction (:attr:`helpers.cams.CamMethod.prediction`) held on every
    verdict given (e.g. one per stack set): ``"blind"`` holds when each is blind, ``"leaks"``
    when each leaks; ``"may leak"`` makes no firm claim (``None``)."""
    vs = [verdicts] if isinstance(verdicts, Verdict) else list(verdicts)
    if prediction not in (BLIND, LEAKS):
        return None
    return all(v.observed == prediction for v in vs)
