"""What the teaching page reads: the chapters' exercises (from the notebooks themselves), how
long each page took to execute in the book's build (from its jupyter-cache), and how long each
chapter takes opened on its own as in Colab (from ``results/cpu/standalone/standalone.json``, written by
``python -m tools.standalone --all --record results/cpu/standalone/standalone.json``).

Nothing here is typed: the exercises are found in the ``{exercise}`` directives of the
chapters, and the times are those the build recorded.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import nbformat

__all__ = [
    "exercises",
    "execution_times",
    "chapter_times",
    "standalone_times",
    "colab_time",
]

#: The command that measures what :func:`colab_time` reports.
STANDALONE_COMMAND = (
    "python -m tools.standalone --all --record results/cpu/standalone/standalone.json"
)

_EXERCISE = re.compile(r"^:{3,}\s*\{exercise\}\s*(?P<title>.*)$", re.M)
_LABEL = re.compile(r"^:label:\s*(?P<label>\S+)", re.M)
_SOLUTION_START = re.compile(r"\{solution-start\}\s*(?P<label>\S+)")
_SOLUTION_END = re.compile(r"\{solution-end\}")
_SOLUTION = re.compile(r"\{solution\}\s*(?P<label>\S+)")


def exercises(notebooks: str | Path) -> list[dict[str, Any]]:
    """Every exercise of the chapters in ``notebooks`` (``*.ipynb``, in order): ``chapter`` (file
    stem), ``title``, ``label``, ``code`` (whether its solution holds a code cell: a gated
    ``{solution-start}`` ... ``{solution-end}`` with a code cell in between) and ``solved``
    (whether it has a solution at all)."""
    out: list[dict[str, Any]] = []
    for path in sorted(Path(notebooks).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        found: dict[str, dict[str, Any]] = {}
        inside: str | None = None
        for cell in nb.cells:
            text = cell.source
            if cell.cell_type == "code":
                if inside is not None:
                    found[inside]["code"] = True
                continue
            for m in _EXERCISE.finditer(text):
                label = _LABEL.search(text[m.end() :])
                if label is None:
                    raise ValueError(
                        f"{path.name}: the exercise {m.group('title')!r} has no :label:."
                    )
                found[label.group("label")] = {
                    "chapter": path.stem,
                    "title": m.group("title").strip(),
                    "label": label.group("label"),
                    "code": False,
                    "solved": False,
                }
            for m in _SOLUTION.finditer(text):
                if m.group("label") in found:
                    found[m.group("label")]["solved"] = True
            start = _SOLUTION_START.search(text)
            if start is not None and start.group("label") in found:
                inside = start.group("label")
                found[inside]["solved"] = True
            if _SOLUTION_END.search(text):
                inside = None
        out += list(found.values())
    return out


def execution_times(
    build_dir: str | Path, source_root: str | Path | None = None
) -> list[dict[str, Any]]:
    """One record per page the build executed, from its jupyter-cache (``<build_dir>/.jupyter_cache``):
    ``uri`` (relative to ``source_root``, default the folder holding ``build_dir``), ``seconds``,
    ``created``. ``[]`` when the folder has no cache (no build yet)."""
    build_dir = Path(build_dir)
    cache_path = build_dir / ".jupyter_cache"
    if not cache_path.is_dir():
        return []
    from jupyter_cache import (
        get_cache,
    )  # the book's optional extra: imported only once a build ran

    cache = get_cache(str(cache_path))
    records = []
    for rec in cache.list_cache_records():
        data = rec.data or {}
        records.append(
            {
                "uri": (
                    os.path.relpath(rec.uri, source_root or build_dir.parent)
                    if os.path.isabs(rec.uri)
                    else rec.uri
                ),
                "seconds": float(data.get("execution_seconds", float("nan"))),
                "created": rec.created.isoformat(timespec="seconds"),
            }
        )
    return sorted(records, key=lambda r: r["uri"])


def chapter_times(
    build_dir: str | Path, source_root: str | Path | None = None
) -> dict[str, dict[str, Any]]:
    """:func:`execution_times` keyed by page (``"notebooks/04_training"``, ``"book/intro"``),
    the latest record of each."""
    out: dict[str, dict[str, Any]] = {}
    for rec in execution_times(build_dir, source_root):
        key = str(Path(rec["uri"]).with_suffix("")).replace(os.sep, "/")
        if key not in out or rec["created"] > out[key]["created"]:
            out[key] = rec
    return out


def standalone_times(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The chapters' times opened on their own (chapter file name -> ``seconds``,
    ``first_figure`` (``None``: no figure), ``date``, ``cpu_count``), read from ``path``
    (default ``results/cpu/standalone/standalone.json`` of this checkout); ``{}`` without a record.

    Raises:
        ValueError: when the file exists but is not valid JSON.
    """
    from .summary import repo_root

    if path is None:
        root = repo_root()
        path = (
            None
            if root is None
            else root / "results" / "cpu" / "standalone" / "standalone.json"
        )
    if path is None or not Path(path).is_file():
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err}); rerun {STANDALONE_COMMAND}"
        ) from err
    return dict(data.get("chapters") or {})


def colab_time(chapter: str, path: str | Path | None = None) -> str:
    """How long ``chapter`` (a notebook's file name, ``"02_wall.ipynb"``) took opened on its
    own as in Colab (a fresh folder, an empty cache, the shipped models), as a phrase for the
    line under its Colab badge (:func:`standalone_times`). Without a record (outside a
    checkout, or not measured yet) it says so and names the command.

    Raises:
        ValueError: when the file exists but is not valid JSON.
    """
    entry = standalone_times(path).get(chapter)
    if entry is None:
        return f"a time not measured yet ({STANDALONE_COMMAND} measures it)"
    seconds = float(entry["seconds"])
    total = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
    first = entry.get("first_figure")
    figure = (
        f"its first figure after {float(first):.0f} s; " if first is not None else ""
    )
    # plain text: the chapters glue it with {glue:text}, which shows Markdown as typed
    return (
        f"about {total} from top to bottom ({figure}{entry['cpu_count']} CPU cores, "
        f"{entry['date'][:10]}, python -m tools.standalone)"
    )
