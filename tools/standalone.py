"""Run one chapter as a reader opening it in Colab would: ``python -m tools.standalone [NB]``.

The notebook is copied into a fresh folder outside the repository and executed there in a new
kernel, with an empty ``CAMWALLS_HOME`` (nothing cached: no model, no data, no result) and the
quick models shipped with helpers allowed (``CAMWALLS_PRETRAINED=1``, as in Colab). It fails on
an error or on anything a cell writes to stderr, as the book build does, and prints how long the
chapter took and how long until its first figure.

Without ``NB`` it picks one chapter by the day of the year (a different one each day, all of
them over eight days): what ``make test`` runs, so that every chapter is checked to run on its
own in any order, without paying for all of them in every CI run. ``--all`` runs every chapter.

``--record FILE`` adds each chapter's times to ``FILE`` (JSON, with the command, the date and the
machine; the chapters run before keep theirs): ``python -m tools.standalone --all --record
results/cpu/standalone/standalone.json`` writes what each chapter says under its Colab badge
(:func:`helpers.teaching.colab_time`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from helpers import cli  # noqa: E402
from helpers.config import provenance  # noqa: E402

__all__ = ["chapters", "chapter_of_the_day", "run_standalone", "record", "main"]


def chapters(root: Path = ROOT) -> list[Path]:
    """The chapters, ``notebooks/*.ipynb`` in order."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def chapter_of_the_day(day: datetime.date | None = None, root: Path = ROOT) -> Path:
    """The chapter ``make test`` runs on ``day`` (default today): chapter number ``day of the
    year mod 8`` (0-based), so eight consecutive days cover every chapter."""
    day = day or datetime.date.today()
    found = chapters(root)
    if not found:
        raise FileNotFoundError(f"No chapter in {root / 'notebooks'}.")
    return found[day.timetuple().tm_yday % len(found)]


def _problems(nb: nbformat.NotebookNode) -> list[str]:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                out.append(
                    f"cell {cell.get('id')}: {o.get('ename')}: {o.get('evalue')}"
                )
            elif o.get("output_type") == "stream" and o.get("name") == "stderr":
                out.append(
                    f"cell {cell.get('id')} wrote to stderr: {o.get('text', '')[:300]!r}"
                )
    return out


def run_standalone(notebook: Path, timeout: int = 1800) -> dict[str, float]:
    """Execute ``notebook`` alone in a fresh folder outside the repository with an empty cache.

    Returns:
        ``{"seconds": total, "first_figure": seconds until the first image output (``nan``
        without one)}``.

    Raises:
        RuntimeError: on an error in a cell or output on stderr, naming the cell.
    """
    notebook = Path(notebook).resolve()
    with tempfile.TemporaryDirectory(prefix="camwalls-standalone-") as tmp:
        work = Path(tmp) / "colab"
        work.mkdir()
        shutil.copy(notebook, work / notebook.name)
        nb = nbformat.read(work / notebook.name, as_version=4)
        env_before = {
            k: os.environ.get(k)
            for k in ("CAMWALLS_HOME", "CAMWALLS_PRETRAINED", "CAMWALLS_BOOK_BUILD")
        }
        os.environ.update(
            CAMWALLS_HOME=str(Path(tmp) / "home"),
            CAMWALLS_PRETRAINED="1",
            CAMWALLS_BOOK_BUILD="1",
        )
        first = float("nan")
        start = time.perf_counter()

        def on_cell(cell, cell_index):  # noqa: ANN001, ARG001 (nbclient's hook)
            nonlocal first
            if first != first and any(
                "image/png" in o.get("data", {}) for o in cell.get("outputs", [])
            ):
                first = time.perf_counter() - start

        try:
            client = NotebookClient(
                nb,
                timeout=timeout,
                kernel_name="python3",
                allow_errors=True,
                resources={"metadata": {"path": str(work)}},
                on_cell_executed=lambda cell, cell_index, execute_reply: on_cell(
                    cell, cell_index
                ),
            )
            client.execute()
        finally:
            for key, value in env_before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        seconds = time.perf_counter() - start
    problems = _problems(nb)
    if problems:
        raise RuntimeError(
            f"{notebook.name} does not run on its own (fresh folder, empty CAMWALLS_HOME): "
            + " | ".join(problems)
        )
    return {"seconds": seconds, "first_figure": first}


def record(path: str | Path, times: dict[str, dict[str, float]], command: str) -> dict:
    """Add ``times`` (chapter file name -> :func:`run_standalone`'s result) to the JSON file at
    ``path`` (created if missing; chapters not in ``times`` keep their entries) with the
    command, date and machine of this run; returns what was written.

    Raises:
        ValueError: when ``path`` exists but is not such a file (it is left as it is).
    """
    path = Path(path)
    old: dict = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path} is not valid JSON ({err}); delete it and run the command again."
            ) from err
        if not isinstance(old.get("chapters"), dict):
            raise ValueError(
                f"{path} has no 'chapters' table; delete it and run the command again."
            )
    stamp = provenance(command, "cpu")
    chapters_ = dict(old.get("chapters", {}))
    for name, result in times.items():
        chapters_[name] = {
            "seconds": round(float(result["seconds"]), 1),
            "first_figure": (  # null: the chapter shows no figure
                round(float(result["first_figure"]), 1)
                if result["first_figure"] == result["first_figure"]
                else None
            ),
            "date": stamp["date"],
            "cpu_count": stamp["machine"]["cpu_count"],
        }
    data = {**stamp, "chapters": dict(sorted(chapters_.items()))}
    cli.ensure_writable_folder(
        path.parent, "The folder of --record", "Pass --record a path you can write to."
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.standalone", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "notebooks", nargs="*", help="chapters to run (default: the chapter of the day)"
    )
    parser.add_argument("--all", action="store_true", help="run every chapter")
    parser.add_argument(
        "--record",
        metavar="FILE",
        default=None,
        help="add the chapters' times to this JSON file (results/cpu/standalone/standalone.json)",
    )

    def command(args: argparse.Namespace) -> int:
        todo = (
            chapters()
            if args.all
            else [Path(p) for p in args.notebooks] or [chapter_of_the_day()]
        )
        for nb in todo:
            if not nb.is_file():
                raise FileNotFoundError(f"No notebook at {nb}.")
        times = {}
        for nb in todo:
            result = times[nb.name] = run_standalone(nb)
            print(
                f"{nb.name}: ran on its own in {result['seconds']:.0f} s (fresh folder, empty CAMWALLS_HOME, "
                f"shipped models); first figure after {result['first_figure']:.0f} s"
            )
            if args.record:  # after each chapter: nothing measured is lost
                record(
                    args.record,
                    {nb.name: result},
                    "python -m tools.standalone "
                    + " ".join(sys.argv[1:] if argv is None else argv),
                )
        if args.record:
            print(f"written to {args.record}")
        return 0

    return cli.parse_and_run(parser, argv, command)


if __name__ == "__main__":
    sys.exit(main())
