"""The results table: one pandas DataFrame, one row per model x stack set x method.

:func:`table` builds it (columns :data:`COLUMNS`) from what :func:`helpers.evaluate.evaluation`
returns or from the files it writes; :func:`select` and :func:`cell` find rows (method names go
through :func:`helpers.cams.get_method`, the one name normaliser); :func:`mean_mu` is a method's
mu over the stack sets; :func:`per_image` gives the per-image values as a long DataFrame.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import cams
from .verdicts import is_missing, verdict

__all__ = [
    "COLUMNS",
    "REQUIRED",
    "MODELS",
    "table",
    "per_image",
    "select",
    "cell",
    "mean_mu",
]

#: The columns of the results table, in order, and what each holds. One row per model x stack
#: set x method; mu is :func:`helpers.metrics.dead_zone_share` on the walled model's unseen
#: rows, for both models. The last two columns are derived here (:func:`verdict`).
COLUMNS: dict[str, str] = {
    "profile": "the profile that produced the row (str)",
    "source": "where the models came from: 'trained', 'authors' or 'given' (str)",
    "device": "the device type the maps were computed on (str)",
    "model": "'walled' or 'baseline' (str)",
    "set": "the stack set, e.g. 'STACK-MIX' (str; 'dataset' in helpers.evaluate's rows and files)",
    "method": "the registry key of the CAM method, e.g. 'gradcampp' (str)",
    "display": "the method's usual name, e.g. 'GradCAM++' (str, from helpers.cams.METHODS)",
    "in_paper": "whether the paper's Table 1 has the method (bool, from the registry)",
    "weights": "'global', 'element-wise' or 'element-wise, centred' (str, from the registry)",
    "prediction": "what the weights predict on the walled model: 'leaks', 'blind' or 'may leak'",
    "n_images": "images of the set the row is computed on (nullable int, Int64)",
    "mu_mean": "mean of mu over the images, in [0, 1] (float)",
    "mu_std": "standard deviation of mu over the images (float)",
    "mu_min": "smallest mu over the images (float)",
    "mu_max": "largest mu over the images (float)",
    "mu_zero_share": "share of the images whose mu is exactly 0 (float)",
    "zero_fraction": "mean share of a map's pixels that are exactly 0 (float)",
    "zero_row_fraction": "mean share of a map's rows that are exactly 0 all along (float)",
    "zero_maps": "how many maps were zero everywhere (nullable int, Int64; their mu counts as 0)",
    "top1": "share of the images whose explained (top) class is the label (float; NaN: no labels)",
    "seconds": "time of the method on the set, its share of the forward pass included (float)",
    "seconds_per_image": "seconds / n_images (float)",
    "note": "a remark, e.g. Opti-CAM's iterations (str)",
    "positive_share": "derived: share of the images with mu > 0, 1 - mu_zero_share (float)",
    "observed": "derived: the verdict, 'leaks' or 'blind' (str, see verdict)",
}
#: The columns a row must have; the others are filled (registry columns from
#: :data:`helpers.cams.METHODS`, numbers with NaN, text with "").
REQUIRED = ("model", "set", "method", "mu_mean")
#: The two models, in the order of the tables.
MODELS = ("walled", "baseline")

_TEXT = ("profile", "source", "device", "note")
_COUNTS = ("n_images", "zero_maps")
_NUMBERS = (
    "n_images",
    "mu_mean",
    "mu_std",
    "mu_min",
    "mu_max",
    "mu_zero_share",
    "zero_fraction",
    "zero_row_fraction",
    "zero_maps",
    "top1",
    "seconds",
    "seconds_per_image",
)
_REGISTRY = ("display", "in_paper", "weights", "prediction")
_PER_IMAGE = ("mu", "zero_fraction", "zero_row_fraction", "first_zero_row", "all_zero")


def _records(source: Any) -> list[Mapping[str, Any]] | pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    if isinstance(source, (str, os.PathLike)):
        return _read(Path(source))
    if isinstance(source, Mapping):
        if "rows" in source:
            return list(source["rows"])
        raise ValueError(
            f"A results mapping needs a 'rows' list (what helpers.evaluate.evaluation returns); "
            f"found keys {sorted(map(str, source))[:10]}."
        )
    rows = list(source)
    for r in rows:
        if not isinstance(r, Mapping):
            raise TypeError(
                f"Expected result rows as mappings (dicts); found {type(r).__name__}."
            )
    return rows


def _read(path: Path) -> list[Mapping[str, Any]] | pd.DataFrame:
    if path.is_dir():
        for name in ("table1.json", "table1.csv"):
            if (path / name).is_file():
                return _read(path / name)
        raise FileNotFoundError(
            f"No table1.json or table1.csv in {path}: run `python -m helpers.evaluate` "
            "first (or let helpers.evaluate compute the table)."
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"No results file {path}: run `python -m helpers.evaluate` first "
            "(or let helpers.evaluate compute the table)."
        )
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, keep_default_na=True)
    if path.suffix.lower() == ".json":
        return _records(json.loads(path.read_text()))
    raise ValueError(
        f"Results file {path} should be .csv or .json, found {path.suffix!r}."
    )


def table(source: Any) -> pd.DataFrame:
    """THE results table: one row per model x stack set x method, columns :data:`COLUMNS`.

    Args:
        source: what :func:`helpers.evaluate.evaluation` returns (a mapping with ``"rows"``;
            also the GPU session's ``evaluation.json``), its rows (mappings with the keys of
            :data:`helpers.evaluate.CSV_COLUMNS`), the path of a ``table1.json`` or
            ``table1.csv`` (or of a folder holding one), or a DataFrame (checked again).
            ``dataset`` is read as ``set``.

    Returns:
        A new DataFrame in the row order of the source, with every column of :data:`COLUMNS`;
        ``method`` holds registry keys, and the registry's columns (``display``, ``in_paper``,
        ``weights``, ``prediction``) are the registry's.

    Raises:
        ValueError: an empty table, a row without one of :data:`REQUIRED`, an unknown method,
            a mu that is not a number in [0, 1].
        FileNotFoundError: a path that does not exist, naming the command that writes it.
    """
    recs = _records(source)
    df = (
        recs.copy()
        if isinstance(recs, pd.DataFrame)
        else pd.DataFrame([dict(r) for r in recs])
    )
    if df.empty:
        raise ValueError("The results table is empty: no method was evaluated.")
    if "set" not in df.columns and "dataset" in df.columns:
        df = df.rename(columns={"dataset": "set"})
    df = df.drop(columns=[c for c in ("dataset",) if c in df.columns])
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(
            f"The result rows lack the columns {missing}; each row needs {list(REQUIRED)} "
            f"(found {list(df.columns)[:12]})."
        )
    for c in REQUIRED:
        bad = df[c].isna()
        if bad.any():
            raise ValueError(f"Result row {df[bad].iloc[0].to_dict()} has no {c!r}.")
    methods = [cams.get_method(str(m)) for m in df["method"]]
    df["method"] = [m.key for m in methods]
    for c in _REGISTRY:
        df[c] = [getattr(m, c) for m in methods]
    df["model"] = df["model"].astype(str)
    df["set"] = df["set"].astype(str)
    for c in COLUMNS:
        if c in ("positive_share", "observed") or c in df.columns:
            continue
        df[c] = "" if c in _TEXT else np.nan
    for c in _TEXT:
        df[c] = pd.Series(
            ["" if is_missing(v) else str(v) for v in df[c]], index=df.index, dtype=str
        )
    for c in _NUMBERS:
        try:
            df[c] = pd.to_numeric(df[c], errors="raise").astype(
                "Int64" if c in _COUNTS else float
            )
        except (TypeError, ValueError):
            raise ValueError(
                f"Column {c!r} of the result rows is not a number: {df[c].tolist()[:5]}."
            ) from None
    out = ~df["mu_mean"].between(0.0, 1.0)
    if out.any():
        raise ValueError(
            f"mu must lie in [0, 1] (a share of a norm); row {df[out].iloc[0].to_dict()} "
            f"has mu_mean {df['mu_mean'][out].iloc[0]}."
        )
    judged = [verdict(r) for r in df.to_dict("records")]
    df["positive_share"] = [v.positive_share for v in judged]
    df["observed"] = [v.observed for v in judged]
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[list(COLUMNS) + extra].reset_index(drop=True)


def per_image(results: Mapping[str, Any]) -> pd.DataFrame:
    """The per-image values of an evaluation (``results["per_image"]``, what
    :func:`helpers.evaluate.evaluation` returns) as a long DataFrame: columns ``model``, ``set``,
    ``method``, ``image`` (index in the set) and the quantities ``mu``, ``zero_fraction``,
    ``zero_row_fraction``, ``first_zero_row``, ``all_zero`` that the results hold.

    Raises:
        ValueError: results without per-image values (a ``table1.csv`` has none; use the
            ``table1.json`` or the evaluation itself).
    """
    nested = results.get("per_image") if isinstance(results, Mapping) else None
    if not nested:
        raise ValueError(
            "These results hold no per-image values ('per_image'); pass what "
            "helpers.evaluate.evaluation returns, or its table1.json."
        )
    frames = []
    for model, by_set in nested.items():
        for set_name, by_method in by_set.items():
            for method, values in by_method.items():
                cols = {q: values[q] for q in _PER_IMAGE if q in values}
                n = len(cols.get("mu", []))
                frame = pd.DataFrame(
                    {
                        q: np.asarray(v, dtype=float)
                        for q, v in cols.items()
                        if len(v) == n
                    }
                )
                frame.insert(0, "image", np.arange(n))
                frame.insert(0, "method", cams.get_method(method).key)
                frame.insert(0, "set", set_name)
                frame.insert(0, "model", model)
                frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def select(
    df: pd.DataFrame,
    method: str | None = None,
    model: str | None = None,
    set: str | None = None,
) -> pd.DataFrame:
    """The rows of a method (any name :func:`helpers.cams.get_method` accepts), a model and a
    stack set; ``None`` matches every value. A view in the table's order."""
    keep = pd.Series(True, index=df.index)
    if method is not None:
        keep &= df["method"] == cams.get_method(method).key
    if model is not None:
        keep &= df["model"] == model
    if set is not None:
        keep &= df["set"] == set
    return df[keep]


def cell(df: pd.DataFrame, method: str, model: str, set: str) -> pd.Series:
    """The one row of a method, model and stack set.

    Raises:
        KeyError: when the table has no such row (naming what it has).
    """
    found = select(df, method, model, set)
    if found.empty:
        raise KeyError(
            f"No result for method {method!r}, model {model!r}, set {set!r}; the table has "
            f"models {sorted(df['model'].unique())}, sets {sorted(df['set'].unique())}, "
            f"methods {sorted(df['method'].unique())}."
        )
    return found.iloc[0]


def mean_mu(df: pd.DataFrame, method: str, model: str = "walled") -> float:
    """mu of a method on a model, the mean over the stack sets of their mean (each set counts
    once, as the paper's "on average over its two stack sets"); NaN when there is no row."""
    vals = select(df, method, model)["mu_mean"]
    return float(vals.mean()) if len(vals) else float("nan")
