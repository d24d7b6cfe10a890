"""The book's HTML tables: one writer, :func:`html_table`, and Table 1 drawn with it.

:func:`table_html` is THE Table 1 renderer (it wraps to fit the book's content column), with
:func:`table_text` its plain-text twin for the command line; every other HTML table of the book
(:mod:`helpers.summary`, the experiments) is written by :func:`html_table` too. The wall's
numbers in the caption come from :mod:`helpers.geometry`.
"""

from __future__ import annotations

import html as _html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .. import cams
from ..geometry import rvgg_geometry
from .paper import PAPER
from .tables import MODELS, mean_mu, select
from .verdicts import Verdict, verdict

__all__ = ["Html", "html_table", "table_html", "table_text", "WRAP_COLUMNS"]

#: A table of this many columns or more wraps its cells by default (:func:`html_table`): at
#: 1280 px the book's content column is about 690-750 px wide, too narrow for eight columns of
#: unwrapped headers (``tools/browsercheck.py`` fails a table that does not fit there).
WRAP_COLUMNS = 8


class Html(str):
    """Text that is already HTML (a cell, header or caption): :func:`html_table` writes it as
    is, where it escapes any other text."""


def _text(value: Any) -> str:
    return value if isinstance(value, Html) else _html.escape(str(value))


def html_table(
    rows: Sequence[Mapping[str, Any]] | pd.DataFrame,
    columns: Sequence[tuple[str, str]] | None = None,
    caption: str = "",
    formats: Mapping[str, str] | None = None,
    *,
    groups: Mapping[str, str] | None = None,
    styles: Mapping[str, str] | None = None,
    wrap: bool | None = None,
    scroll: bool = False,
) -> str:
    """THE HTML table writer of the book (class ``camwalls-table``, ``book/_static/camwalls.css``).

    Args:
        rows: row mappings (dicts), or a DataFrame (one row each).
        columns: ``[(key, header), ...]`` (default: every key of the first row, or the
            DataFrame's columns, each its own header).
        caption: below the table.
        formats: a format spec per key (``{"mu": ".3f"}``), applied to numbers (not to bools).
        groups: a header above some columns, per key (``{"walled|STACK-MIX": "walled model"}``):
            consecutive columns with the same group share one cell (``colspan``), and the
            headers of columns without a group span both header rows (``rowspan="2"``).
        styles: an inline CSS style for the cells of a column, per key.
        wrap: the cells wrap tightly, in a smaller font, and the table takes the content
            column's width (class ``camwalls-wrap``: many columns); ``None`` (the default):
            when the table has :data:`WRAP_COLUMNS` columns or more. Every table's cells wrap
            where they must (``book/_static/camwalls.css``); this makes a wide one fit.
        scroll: the table sits in a block that scrolls sideways on narrow screens
            (``camwalls-scroll``; a notebook's output scrolls sideways already).

    Returns:
        The HTML. A cell, header or caption that is :class:`Html` is written as is; any other
        is HTML-escaped; a missing value (``None``, NaN, pandas' NA) shows as an en dash, a missing
        key as nothing.

    Raises:
        ValueError: no columns (none given, and no row to take them from).
    """
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
    if columns is None:
        keys = (
            list(rows.columns)
            if isinstance(rows, pd.DataFrame)
            else list(records[0])
            if records
            else []
        )
        columns = [(str(k), str(k)) for k in keys]
    if not columns:
        raise ValueError("columns is empty; pass [(key, header), ...].")
    formats, styles = formats or {}, styles or {}
    if wrap is None:
        wrap = len(columns) >= WRAP_COLUMNS

    def cell(row: Mapping[str, Any], key: str) -> str:
        value = row.get(key, "")
        if (
            value is None
            or value is pd.NA
            or (isinstance(value, float) and math.isnan(value))
        ):
            return "&ndash;"
        if (
            key in formats
            and isinstance(value, (int, float, np.number))
            and not isinstance(value, bool)
        ):
            return format(value, formats[key])
        return _text(value)

    def td(key: str) -> str:
        return f"<td style='{styles[key]}'>" if key in styles else "<td>"

    if groups:
        top, sub = [], []
        for i, (key, header) in enumerate(columns):
            group = groups.get(key)
            if group is None:
                top.append(f'<th rowspan="2">{_text(header)}</th>')
                continue
            sub.append(f"<th>{_text(header)}</th>")
            if i == 0 or groups.get(columns[i - 1][0]) != group:
                span = 1
                while (
                    i + span < len(columns)
                    and groups.get(columns[i + span][0]) == group
                ):
                    span += 1
                top.append(f'<th colspan="{span}">{_text(group)}</th>')
        head = f"<tr>{''.join(top)}</tr><tr>{''.join(sub)}</tr>"
    else:
        head = "<tr>" + "".join(f"<th>{_text(h)}</th>" for _, h in columns) + "</tr>"
    body = "".join(
        "<tr>" + "".join(f"{td(k)}{cell(r, k)}</td>" for k, _ in columns) + "</tr>"
        for r in records
    )
    cap = f"<caption>{_text(caption)}</caption>" if caption else ""
    table = (
        f'<table class="camwalls-table{" camwalls-wrap" if wrap else ""}">{cap}<thead>{head}</thead>'
        f"<tbody>{body}</tbody></table>"
    )
    return f'<div class="camwalls-scroll">{table}</div>' if scroll else table


def _layout(
    df: pd.DataFrame,
    methods: Sequence[str] | None,
    models: Sequence[str] | None,
    order: str,
) -> tuple[list[str], list[str], list[str]]:
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
    return (
        f"mu: share of the map's L2 norm in image rows {g.first_unseen_row}..{g.image_size - 1}, which "
        f"the walled model cannot see (mean &plusmn; standard deviation over the images, with ddof&nbsp;1 as the paper's torch.std; lower is better; a uniform "
        f"map scores {g.uniform_mu:.3f}). Paper: its Table 1, walled model (&ndash;: not known to us). "
        "mu&nbsp;&gt;&nbsp;0: share of the walled model's images whose map puts anything behind the "
        "wall (none: mu is exactly 0 on every image). Zero pixels: share of the walled model's map "
        "pixels that are exactly 0 (of pixels, not of images). Seconds: all cells of the method together."
        + (f" {_html.escape(stamp)}" if stamp else "")
    )


def _positive(v: Verdict) -> str:
    if not v.leaks:
        return "none"
    if math.isnan(v.positive_share):
        return "some"
    return "&lt;1%" if v.positive_share < 0.005 else f"{v.positive_share:.0%}"


def table_html(
    df: pd.DataFrame,
    *,
    stamp: str = "",
    methods: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    order: str = "registry",
) -> str:
    """THE Table 1 as HTML: per method, mu mean &plusmn; std for each model and stack set, the
    paper's value where known (:data:`PAPER`), the share of the walled model's images with
    mu > 0 (:func:`verdict`), the walled model's zero fraction, the time.

    The table wraps its cells (class ``camwalls-wrap``, ``book/_static/camwalls.css``) to fit
    the book's content column, and sits in a block that scrolls sideways on narrower screens.

    Args:
        df: :func:`helpers.results.table`.
        stamp: which run made the numbers (appended to the caption).
        methods: the methods to show (default: every method of the table).
        models: the models to show (default: both).
        order: ``"registry"`` (as :data:`helpers.cams.METHODS`: the paper's methods first) or
            ``"mu"`` (by mu on the walled model, mean over the sets).
    """
    keys, mods, sets = _layout(df, methods, models, order)
    nan = float("nan")
    rows = []
    for key in keys:
        meth = cams.METHODS[key]
        name = _html.escape(meth.display) + (
            "" if meth.in_paper else " <small>(not in the paper)</small>"
        )
        row: dict[str, Any] = {"method": Html(name), "weights": meth.weights}
        for m in mods:
            for s in sets:
                found = select(df, key, m, s)
                if found.empty:
                    row[f"{m}|{s}"] = nan
                    continue
                r = found.iloc[0]
                std = (
                    ""
                    if math.isnan(r["mu_std"])
                    else f"<br><small>&plusmn;&nbsp;{r['mu_std']:.3f}</small>"
                )
                row[f"{m}|{s}"] = Html(f"{r['mu_mean']:.3f}{std}")
        walled = select(df, key, "walled")
        zero = walled["zero_fraction"].dropna()
        secs = select(df, key)["seconds"].dropna()
        row.update(
            paper=PAPER[key].text if key in PAPER else nan,
            positive=Html(_positive(verdict(walled))) if len(walled) else nan,
            zero=f"{zero.mean():.0%}" if len(zero) else nan,
            seconds=f"{secs.sum():.1f}" if len(secs) else nan,
        )
        rows.append(row)
    columns = (
        [("method", "method"), ("weights", "channel weights")]
        + [(f"{m}|{s}", s) for m in mods for s in sets]
        + [
            ("paper", "paper"),
            ("positive", Html("mu &gt; 0")),
            ("zero", "zero pixels"),
            ("seconds", "seconds"),
        ]
    )
    groups = {f"{m}|{s}": f"{m} model" for m in mods for s in sets}
    return html_table(
        rows,
        columns,
        Html(_caption(stamp)),
        groups=groups,
        wrap=True,
        scroll=True,
        styles={"method": "min-width: 6.5em"},
    )  # method names stay whole


def table_text(
    df: pd.DataFrame,
    *,
    methods: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    order: str = "registry",
) -> str:
    """The same table as :func:`table_html`, as plain text for a terminal: per method, mu mean
    +- std (and the zero fraction) for each stack set and model, and the seconds."""
    keys, mods, sets = _layout(df, methods, models, order)
    cols = [(s, m) for s in sets for m in mods]
    head = (
        f"{'method':20s}"
        + "".join(f" {s[:20] + ' / ' + m:>32s}" for s, m in cols)
        + f" {'seconds':>8s}"
    )
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
            cells.append(
                f" {r['mu_mean']:.3f} +- {r['mu_std']:.3f} (0: {r['zero_fraction']:.0%})".rjust(
                    33
                )
            )
        lines.append(
            f"{cams.METHODS[key].display:20s}" + "".join(cells) + f" {secs:8.1f}"
        )
    return "\n".join(lines)
