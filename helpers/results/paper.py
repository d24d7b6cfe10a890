"""The paper's numbers, once: the values of its Table 1 known to us, and ours beside them."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .. import cams
from .tables import mean_mu, select
from .verdicts import verdict

__all__ = ["PaperValue", "PAPER", "PAPER_SOURCE", "paper_comparison"]


@dataclass(frozen=True)
class PaperValue:
    """A number of the paper's Table 1: mu of ``method`` on ``model``, mean over its two stack
    sets; ``text``: how the book's tables write it; ``note``: how the paper gives it."""

    method: str
    model: str
    mu: float
    text: str
    note: str


#: Where :data:`PAPER` comes from.
PAPER_SOURCE = (
    "the paper's Table 1 (book/paper.md, 'The metric and the paper's numbers'): GradCAM on the "
    "walled model, 22.7% on average over its two stack sets; HiResCAM, 0. The other cells are "
    "not available to us."
)
#: The paper's Table 1 values known to us (:data:`PAPER_SOURCE`), walled model; no other is.
PAPER: dict[str, PaperValue] = {
    "gradcam": PaperValue(
        "gradcam",
        "walled",
        0.227,
        "about 0.227",
        "22.7% on average over its two stack sets",
    ),
    "hirescam": PaperValue(
        "hirescam", "walled", 0.0, "exactly 0", "0 on its two stack sets"
    ),
}


def paper_comparison(df: pd.DataFrame) -> pd.DataFrame:
    """The paper's known numbers (:data:`PAPER`) beside ours: one row per paper value, columns
    ``method``, ``display``, ``model``, ``paper`` (its mu), ``paper_text``, ``paper_note``,
    ``ours`` (:func:`mean_mu`, NaN when the table lacks the method), ``sets`` (the stack sets
    averaged) and ``observed`` (:func:`verdict` over those rows; "" when there are none)."""
    out = []
    for key, known in PAPER.items():
        rows = select(df, key, known.model)
        out.append(
            {
                "method": key,
                "display": cams.METHODS[key].display,
                "model": known.model,
                "paper": known.mu,
                "paper_text": known.text,
                "paper_note": known.note,
                "ours": mean_mu(df, key, known.model),
                "sets": rows["set"].tolist(),
                "observed": verdict(rows).observed if len(rows) else "",
            }
        )
    return pd.DataFrame(out)
