"""The paper's Table 1 in one command: the authors' release, the full profile, the paper's eight
methods, and the paper's numbers beside ours, with the difference.

``python -m helpers.evaluate --paper-table`` (:func:`helpers.evaluate.main`) checks that
nothing it was given contradicts those settings (:func:`paper_table_settings`), puts the
authors' release in the cache before any computation (:func:`ensure_release`: what is missing
is downloaded, everything is checked), computes or loads the evaluation as the plain command
does (CSV and JSON in the cache, and in ``--out``), prints the table and then
:func:`comparison_text`. The paper's numbers and the comparison are
:func:`helpers.results.paper_comparison`'s; this module only adds the difference and the words.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .. import results as R
from ..data import AUTHORS_STACK_IMAGES, download_authors_release

__all__ = [
    "PAPER_TABLE",
    "PAPER_SETS",
    "paper_table_settings",
    "ensure_release",
    "comparison",
    "comparison_text",
]

#: What ``--paper-table`` runs: the profile, where the models and sets come from, the methods.
PAPER_TABLE = {"profile": "full", "source": "authors", "methods": "paper"}
#: The paper's two stack sets, in the order of the tables.
PAPER_SETS = ("STACK-MIX", "STACK-GEN")


def paper_table_settings(
    profile: str | None, source: str, methods: str | None
) -> dict[str, str]:
    """The settings of the paper table (:data:`PAPER_TABLE`), once checked against what the
    command line asked for: ``--profile`` must be absent or ``full``, ``--source`` ``auto`` or
    ``authors``, ``--methods`` absent or ``paper``.

    Raises:
        ValueError: naming every option that contradicts them, and what to do.
    """
    clashes = []
    if profile is not None and profile.strip().lower() != PAPER_TABLE["profile"]:
        clashes.append(
            f"--profile {profile} (it uses the full profile: the authors' full-width models)"
        )
    if source not in ("auto", PAPER_TABLE["source"]):
        clashes.append(
            f"--source {source} (it uses the authors' released checkpoints and images)"
        )
    if methods is not None and methods.strip() != PAPER_TABLE["methods"]:
        clashes.append(f"--methods {methods} (it computes the paper's eight methods)")
    if clashes:
        raise ValueError(
            "--paper-table computes the paper's Table 1 (full profile, the authors' release, the "
            "paper's eight methods) and cannot be combined with "
            + "; ".join(clashes)
            + ". Drop those options, or drop --paper-table to evaluate something else."
        )
    return dict(PAPER_TABLE)


def ensure_release() -> Path:
    """The authors' release in :func:`helpers.data.authors_dir`, before any computation: what is
    missing is downloaded and everything is checked (:func:`helpers.data.download_authors_release`:
    nothing is downloaded when the files are there, and no network is needed then).

    Raises:
        As :func:`helpers.data.download_authors_release` (a missing file that cannot be
        downloaded, a file that fails its checks), each naming the file and what to do.
    """
    return download_authors_release()


def comparison(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`helpers.results.paper_comparison` with a column ``difference``: ours minus the
    paper's (NaN where we have no value)."""
    out = R.paper_comparison(df)
    out["difference"] = out["ours"] - out["paper"]
    return out


def _number(value: float, sign: bool = False) -> str:
    return "-" if math.isnan(value) else format(value, "+.3f" if sign else ".3f")


def comparison_text(df: pd.DataFrame) -> str:
    """The paper's Table 1 values known to us beside ours, with the difference, as plain text:
    one line per value of :data:`helpers.results.PAPER` (mu on its model, the mean over the
    stack sets as the paper averages), then where the paper's numbers come from, and a warning
    when the table is not the paper's setting (a stand-in set, fewer images than the paper's)."""
    cmp = comparison(df)
    lines = [
        "The paper's Table 1 beside ours (mu, mean over the stack sets):",
        f"{'method':12s} {'model':9s} {'paper':>8s} {'ours':>8s} {'ours - paper':>13s}  paper's words",
    ]
    for row in cmp.itertuples():
        lines.append(
            f"{row.display:12s} {row.model:9s} {_number(row.paper):>8s} {_number(row.ours):>8s} "
            f"{_number(row.difference, sign=True):>13s}  {row.paper_note}"
        )
    lines.append(f"Source: {R.PAPER_SOURCE}")
    sets = tuple(dict.fromkeys(df["set"]))
    if sets != PAPER_SETS:
        lines.append(
            f"Note: these sets are {', '.join(sets)}, not the paper's {', '.join(PAPER_SETS)}: the "
            "numbers are not the paper's setting."
        )
    counts = pd.to_numeric(df["n_images"], errors="coerce").dropna()
    if len(counts) and counts.min() < AUTHORS_STACK_IMAGES:
        lines.append(
            f"Note: {int(counts.min())} image(s) per set, the paper {AUTHORS_STACK_IMAGES}: a rehearsal, "
            "not the paper's table."
        )
    return "\n".join(lines)
