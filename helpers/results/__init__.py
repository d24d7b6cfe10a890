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
  :func:`table_text` its plain-text twin for the command line, and the one HTML table writer
  of the book, :func:`html_table`, that it uses.

The parts: ``tables`` (the table, its rows), ``verdicts`` (the verdict), ``paper`` (the paper's
numbers), ``render`` (HTML and text). The wall's numbers in captions come from
:mod:`helpers.geometry`.
"""

from .paper import PAPER, PAPER_SOURCE, PaperValue, paper_comparison
from .render import Html, html_table, table_html, table_text
from .tables import COLUMNS, MODELS, REQUIRED, cell, mean_mu, per_image, select, table
from .verdicts import BLIND, LEAKS, Verdict, prediction_held, verdict

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
    "Html",
    "html_table",
    "table_html",
    "table_text",
]
