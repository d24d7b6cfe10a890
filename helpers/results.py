"""The results layer: Table 1 as one pandas DataFrame, judged by one verdict, drawn by one renderer.

Its one idea: every number the book reports about the evaluation comes from *one* table,
:func:`table` (a DataFrame with the columns of :data:`COLUMNS`, one row per model x stack set x
method), built from what :func:`helpers.evaluate.evaluation` returns or from the files it writes
(``table1.json``, ``table1.csv``). Around it, each thing exactly once:

* the row finder, :func:`select` and :func:`cell` (method names go through
  :func:`helpers.cams.get_method`, the one name normaliser);
* the per-image values as a long DataFrame, :func:`per_image`;
* the paper's numbers, :data:`PAPER` (with their source, :data:`PAPER_SOURCE`), and ours beside
  them, :func:`paper_comparison`;
* whether a method leaks through the wall, :func:`verdict` (its criterion is written there,
  and nowhere else), and whether a prediction held, :func:`prediction_held`;
* the Table-1 renderer, :func:`table_html` (it wraps to fit the book's content column), with
  :func:`table_text` its plain-text twin for the command line.

The wall's numbers in captions come from :mod:`helpers.geometry`.
"""

from __future__ import annotations

import html as _html
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import cams
from .geometry import rvgg_geometry

__all__ = [
    "COLUMNS",
    "REQUIRED",
    "MODELS",
    "BLIND",
    "LEAKS",
    "table",
    "per_image",
    "select",
    "cell",
    "mean_mu",
    "Verdict",
    "verdict",
    "prediction_held",
    "PaperValue",
    "PAPER",
    "PAPER_SOURCE",
    "paper_comparison",
    "table_html",
    "table_text",
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
#: The two outcomes of :func:`verdict` (the words of :attr:`helpers.cams.CamMethod.prediction`).
BLIND, LEAKS = "blind", "leaks"

_TEXT = ("profile", "source", "device", "note")
_COUNTS = ("n_images", "zero_maps")
_NUMBERS = ("n_images", "mu_mean", "mu_std", "mu_min", "mu_max", "mu_zero_share", "zero_fraction",
            "zero_row_fraction", "zero_maps", "top1", "seconds", "seconds_per_image")
_REGISTRY = ("display", "in_paper", "weights", "prediction")
_PER_IMAGE = ("mu", "zero_fraction", "zero_row_fraction", "first_zero_row", "all_zero")


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------

def _records(source: Any) -> list[Mapping[str, Any]] | pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    if isinstance(source, (str, os.PathLike)):
        return _read(Path(source))
    if isinstance(source, Mapping):
        if "rows" in source:
            return list(source["rows"])
        raise ValueError(f"A results mapping needs a 'rows' list (what helpers.evaluate.evaluation returns); "
                         f"found keys {sorted(map(str, source))[:10]}.")
    rows = list(source)
    for r in rows:
        if not isinstance(r, Mapping):
            raise TypeError(f"Expected result rows as mappings (dicts); found {type(r).__name__}.")
    return rows


def _read(path: Path) -> list[Mapping[str, Any]] | pd.DataFrame:
    if path.is_dir():
        for name in ("table1.json", "table1.csv"):
            if (path / name).is_file():
                return _read(path / name)
        raise FileNotFoundError(f"No table1.json or table1.csv in {path}: run `python -m helpers.evaluate` "
                                "first (or let helpers.evaluate compute the table).")
    if not path.is_file():
        raise FileNotFoundError(f"No results file {path}: run `python -m helpers.evaluate` first "
                                "(or let helpers.evaluate compute the table).")
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, keep_default_na=True)
    if path.suffix.lower() == ".json":
        return _records(json.loads(path.read_text()))
    raise ValueError(f"Results file {path} should be .csv or .json, found {path.suffix!r}.")


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
    df = recs.copy() if isinstance(recs, pd.DataFrame) else pd.DataFrame([dict(r) for r in recs])
    if df.empty:
        raise ValueError("The results table is empty: no method was evaluated.")
    if "set" not in df.columns and "dataset" in df.columns:
        df = df.rename(columns={"dataset": "set"})
    df = df.drop(columns=[c for c in ("dataset",) if c in df.columns])
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"The result rows lack the columns {missing}; each row needs {list(REQUIRED)} "
                         f"(found {list(df.columns)[:12]}).")
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
        df[c] = pd.Series(["" if _missing(v) else str(v) for v in df[c]], index=df.index, dtype=str)
    for c in _NUMBERS:
        try:
            df[c] = pd.to_numeric(df[c], errors="raise").astype("Int64" if c in _COUNTS else float)
        except (TypeError, ValueError):
            raise ValueError(f"Column {c!r} of the result rows is not a number: {df[c].tolist()[:5]}.") from None
    out = ~df["mu_mean"].between(0.0, 1.0)
    if out.any():
        raise ValueError(f"mu must lie in [0, 1] (a share of a norm); row {df[out].iloc[0].to_dict()} "
                         f"has mu_mean {df['mu_mean'][out].iloc[0]}.")
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
        raise ValueError("These results hold no per-image values ('per_image'); pass what "
                         "helpers.evaluate.evaluation returns, or its table1.json.")
    frames = []
    for model, by_set in nested.items():
        for set_name, by_method in by_set.items():
            for method, values in by_method.items():
                cols = {q: values[q] for q in _PER_IMAGE if q in values}
                n = len(cols.get("mu", []))
                frame = pd.DataFrame({q: np.asarray(v, dtype=float) for q, v in cols.items() if len(v) == n})
                frame.insert(0, "image", np.arange(n))
                frame.insert(0, "method", cams.get_method(method).key)
                frame.insert(0, "set", set_name)
                frame.insert(0, "model", model)
                frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def select(df: pd.DataFrame, method: str | None = None, model: str | None = None,
           set: str | None = None) -> pd.DataFrame:
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
        raise KeyError(f"No result for method {method!r}, model {model!r}, set {set!r}; the table has "
                       f"models {sorted(df['model'].unique())}, sets {sorted(df['set'].unique())}, "
                       f"methods {sorted(df['method'].unique())}.")
    return found.iloc[0]


def mean_mu(df: pd.DataFrame, method: str, model: str = "walled") -> float:
    """mu of a method on a model, the mean over the stack sets of their mean (each set counts
    once, as the paper's "on average over its two stack sets"); NaN when there is no row."""
    vals = select(df, method, model)["mu_mean"]
    return float(vals.mean()) if len(vals) else float("nan")


# --------------------------------------------------------------------------------------------
# The verdict
# --------------------------------------------------------------------------------------------

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


def _missing(x: Any) -> bool:
    return x is None or (not isinstance(x, str) and bool(pd.isna(x)))


def _known(x: Any) -> bool:
    return not _missing(x)


def verdict(cells: Any) -> Verdict:
    """Did a method's map see through the wall? The book's one criterion:

    **A method leaks on a set of images when its map puts anything at all behind the wall on
    at least one image (mu > 0 on some image); it is blind when mu is exactly 0 on every image
    (mu_max == 0).** No tolerance: a map that respects the wall does so exactly (the gradient
    behind it is exactly zero, and so is every element-wise map there, in float32 as in exact
    arithmetic), and anything above zero is saliency the model cannot have used, however
    small. Beside the verdict, the share of the images with mu > 0 says how often it leaked.

    Args:
        cells: per-image mu values (a 1-D array or list of numbers), or rows of :func:`table`
            (a row, a DataFrame, or a list of rows; several rows are judged together: blind
            only when every one is). A row is judged by ``mu_max``, or, when it has none, by
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
            for v in np.asarray(cells, dtype=object).ravel()):
        mu = np.asarray(cells, dtype=float).ravel()
        if mu.size == 0:
            raise ValueError("verdict of no images: pass at least one mu value.")
        if not np.isfinite(mu).all() or (mu < 0).any():
            raise ValueError(f"mu must be finite and >= 0, got {mu[~np.isfinite(mu) | (mu < 0)][:3]}.")
        positive = float(np.mean(mu > 0))
        return Verdict(LEAKS if positive > 0 else BLIND, positive, int(mu.size))
    rows = _as_rows(cells)
    if not rows:
        raise ValueError("verdict of no rows: pass at least one result row.")
    leaks, shares, counts = False, [], []
    for r in rows:
        top = r.get("mu_max") if _known(r.get("mu_max")) else r.get("mu_mean")
        if not _known(top):
            raise ValueError(f"Result row {dict(r)} has neither mu_max nor mu_mean to judge.")
        if float(top) < 0:
            raise ValueError(f"mu must be >= 0; row {dict(r)} has {top}.")
        row_leaks = float(top) > 0
        leaks |= row_leaks
        zero_share = r.get("mu_zero_share")
        shares.append(1.0 - float(zero_share) if _known(zero_share) else (float("nan") if row_leaks else 0.0))
        n = r.get("n_images")
        counts.append(int(n) if _known(n) else 0)
    if all(counts):
        share = float(np.dot(shares, counts) / sum(counts))
    else:
        share = float(np.mean(shares))
    return Verdict(LEAKS if leaks else BLIND, share, int(sum(counts)))


def prediction_held(prediction: str, verdicts: Verdict | Iterable[Verdict]) -> bool | None:
    """Whether a method's prediction (:attr:`helpers.cams.CamMethod.prediction`) held on every
    verdict given (e.g. one per stack set): ``"blind"`` holds when each is blind, ``"leaks"``
    when each leaks; ``"may leak"`` makes no firm claim (``None``)."""
    vs = [verdicts] if isinstance(verdicts, Verdict) else list(verdicts)
    if prediction not in (BLIND, LEAKS):
        return None
    return all(v.observed == prediction for v in vs)


# --------------------------------------------------------------------------------------------
# The paper's numbers
# --------------------------------------------------------------------------------------------

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
PAPER_SOURCE = ("the paper's Table 1 (book/paper.md, 'The metric and the paper's numbers'): GradCAM on the "
                "walled model, 22.7% on average over its two stack sets; HiResCAM, 0. The other cells are "
                "not available to us.")
#: The paper's Table 1 values known to us (:data:`PAPER_SOURCE`), walled model; no other is.
PAPER: dict[str, PaperValue] = {
    "gradcam": PaperValue("gradcam", "walled", 0.227, "about 0.227", "22.7% on average over its two stack sets"),
    "hirescam": PaperValue("hirescam", "walled", 0.0, "exactly 0", "0 on its two stack sets"),
}


def paper_comparison(df: pd.DataFrame) -> pd.DataFrame:
    """The paper's known numbers (:data:`PAPER`) beside ours: one row per paper value, columns
    ``method``, ``display``, ``model``, ``paper`` (its mu), ``paper_text``, ``paper_note``,
    ``ours`` (:func:`mean_mu`, NaN when the table lacks the method), ``sets`` (the stack sets
    averaged) and ``observed`` (:func:`verdict` over those rows; "" when there are none)."""
    out = []
    for key, known in PAPER.items():
        rows = select(df, key, known.model)
        out.append({"method": key, "display": cams.METHODS[key].display, "model": known.model,
                    "paper": known.mu, "paper_text": known.text, "paper_note": known.note,
                    "ours": mean_mu(df, key, known.model), "sets": rows["set"].tolist(),
                    "observed": verdict(rows).observed if len(rows) else ""})
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------
# The renderer
# --------------------------------------------------------------------------------------------

def _layout(df: pd.DataFrame, methods: Sequence[str] | None, models: Sequence[str] | None,
            order: str) -> tuple[list[str], list[str], list[str]]:
    """(methods, models, sets) of a rendering, in display order."""
    if order not in ("registry", "mu"):
        raise ValueError(f"order must be 'registry' or 'mu', got {order!r}.")
    present = list(dict.fromkeys(df["method"]))
    keys = [k for k in cams.METHODS if k in present]
    if methods is not None:
        wanted = cams.method_keys(list(methods))
        keys = [k for k in keys if k in wanted]
    if order == "mu":
        walled = {k: mean_mu(df, k, "walled") for k in keys}
        keys.sort(key=lambda k: walled[k] if not math.isnan(walled[k]) else math.inf)
    have = list(dict.fromkeys(df["model"]))
    mods = [m for m in MODELS if m in have] + [m for m in have if m not in MODELS]
    if models is not None:
        mods = [m for m in mods if m in models]
    sets = list(dict.fromkeys(df["set"]))
    return keys, mods, sets


def _caption(stamp: str) -> str:
    g = rvgg_geometry()
    return (f"mu: share of the map's L2 norm in image rows {g.first_unseen_row}..{g.image_size - 1}, which "
            f"the walled model cannot see (mean &plusmn; std over the images; lower is better; a uniform "
            f"map scores {g.uniform_mu:.3f}). Paper: its Table 1, walled model (&ndash;: not known to us). "
            "mu&nbsp;&gt;&nbsp;0: share of the walled model's images whose map puts anything behind the "
            "wall (none: mu is exactly 0 on every image). Zero: share of the walled model's map pixels "
            "that are exactly 0. Seconds: all cells of the method together."
            + (f" {_html.escape(stamp)}" if stamp else ""))


def _positive(v: Verdict) -> str:
    if not v.leaks:
        return "none"
    if math.isnan(v.positive_share):
        return "some"
    return "&lt;1%" if v.positive_share < 0.005 else f"{v.positive_share:.0%}"


def table_html(df: pd.DataFrame, *, stamp: str = "", methods: Sequence[str] | None = None,
               models: Sequence[str] | None = None, order: str = "registry") -> str:
    """THE Table 1 as HTML: per method, mu mean &plusmn; std for each model and stack set, the
    paper's value where known (:data:`PAPER`), the share of the walled model's images with
    mu > 0 (:func:`verdict`), the walled model's zero fraction, the time.

    The table wraps its cells (class ``camwalls-wrap``, ``book/_static/camwalls.css``) to fit
    the book's content column, and sits in a block that scrolls sideways on narrower screens.

    Args:
        df: :func:`table`.
        stamp: which run made the numbers (appended to the caption).
        methods: the methods to show (default: every method of the table).
        models: the models to show (default: both).
        order: ``"registry"`` (as :data:`helpers.cams.METHODS`: the paper's methods first) or
            ``"mu"`` (by mu on the walled model, mean over the sets).
    """
    keys, mods, sets = _layout(df, methods, models, order)
    top = "".join(f'<th colspan="{len(sets)}">{_html.escape(m)} model</th>' for m in mods)
    sub = "".join(f"<th>{_html.escape(s)}</th>" for _ in mods for s in sets)
    body = []
    for key in keys:
        meth = cams.METHODS[key]
        cells = []
        for m in mods:
            for s in sets:
                found = select(df, key, m, s)
                if found.empty:
                    cells.append("<td>&ndash;</td>")
                    continue
                r = found.iloc[0]
                std = "" if math.isnan(r["mu_std"]) else f"<br><small>&plusmn;&nbsp;{r['mu_std']:.3f}</small>"
                cells.append(f"<td>{r['mu_mean']:.3f}{std}</td>")
        walled = select(df, key, "walled")
        paper = PAPER.get(key)
        paper_cell = _html.escape(paper.text) if paper else "&ndash;"
        positive = _positive(verdict(walled)) if len(walled) else "&ndash;"
        zero = walled["zero_fraction"].dropna()
        zero_cell = f"{zero.mean():.0%}" if len(zero) else "&ndash;"
        secs = select(df, key)["seconds"].dropna()
        secs_cell = f"{secs.sum():.1f}" if len(secs) else "&ndash;"
        name = _html.escape(meth.display) + ("" if meth.in_paper else " <small>(not in the paper)</small>")
        body.append(f"<tr><td>{name}</td><td>{_html.escape(meth.weights)}</td>{''.join(cells)}"
                    f"<td>{paper_cell}</td><td>{positive}</td><td>{zero_cell}</td><td>{secs_cell}</td></tr>")
    head = (f'<tr><th rowspan="2">method</th><th rowspan="2">channel weights</th>{top}'
            '<th rowspan="2">paper</th><th rowspan="2">mu&nbsp;&gt;&nbsp;0</th><th rowspan="2">zero</th>'
            f'<th rowspan="2">seconds</th></tr><tr>{sub}</tr>')
    return (f'<div class="camwalls-scroll"><table class="camwalls-table camwalls-wrap">'
            f"<caption>{_caption(stamp)}</caption><thead>{head}</thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def table_text(df: pd.DataFrame, *, methods: Sequence[str] | None = None, models: Sequence[str] | None = None,
               order: str = "registry") -> str:
    """The same table as :func:`table_html`, as plain text for a terminal: per method, mu mean
    +- std (and the zero fraction) for each stack set and model, and the seconds."""
    keys, mods, sets = _layout(df, methods, models, order)
    cols = [(s, m) for s in sets for m in mods]
    head = f"{'method':20s}" + "".join(f" {s[:20] + ' / ' + m:>32s}" for s, m in cols) + f" {'seconds':>8s}"
    lines = [head, "-" * len(head)]
    for key in keys:
        cells, secs = [], 0.0
        for s, m in cols:
            found = select(df, key, m, s)
            if found.empty:
                cells.append(" " * 33)
                continue
            r = found.iloc[0]
            secs += 0.0 if math.isnan(r["seconds"]) else float(r["seconds"])
            cells.append(f" {r['mu_mean']:.3f} +- {r['mu_std']:.3f} (0: {r['zero_fraction']:.0%})".rjust(33))
        lines.append(f"{cams.METHODS[key].display:20s}" + "".join(cells) + f" {secs:8.1f}")
    return "\n".join(lines)
