"""Check (and with --fix repair) the book's chapters: ``python tools/check_notebooks.py [--fix] [NB ...]``.

Every ``notebooks/*.ipynb`` must have:

1. as first cell the standard Colab set-up code cell (exactly :data:`SETUP_SOURCE`), tagged
   ``remove-cell`` so that the HTML book hides it;
2. as second cell a markdown cell starting with the chapter's ``# Title``, followed by the
   "Open in Colab" badge: a local SVG (``book/_static/colab-badge.svg``, so that the offline
   browser check sees no broken image) linking to the notebook on Colab, the repository URL
   and branch being read from ``_config.yml``;
3. no outputs and no execution counts (the book build executes the notebooks);
4. the ``python3`` kernel.

``--fix`` inserts or repairs items 1-3 (it never rewrites a title or prose) and writes the
notebook back; run it only on notebooks nobody else is editing. The exit status is 1 when a
problem is left.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

__all__ = [
    "SETUP_SOURCE",
    "SETUP_TAG",
    "BADGE_IMAGE",
    "BADGE_ALT",
    "repo_info",
    "colab_url",
    "badge_markdown",
    "check_notebook",
    "fix_notebook",
    "main",
]

ROOT = Path(__file__).resolve().parent.parent
if (
    str(ROOT) not in sys.path
):  # run as a script from a checkout: helpers/ is beside tools/
    sys.path.insert(0, str(ROOT))

from helpers import cli  # noqa: E402  (standard library only)

#: The first cell of every chapter (team rule): installs the helpers where they are missing.
SETUP_SOURCE = (
    "# Colab set-up: installs the book's helpers when they are missing (does nothing elsewhere).\n"
    "import importlib.util\n"
    "import subprocess\n"
    "import sys\n"
    "\n"
    'REPO = "git+https://github.com/camwalls/cam-can-see-through-walls-book"\n'
    'if importlib.util.find_spec("helpers") is None:\n'
    "    subprocess.run(\n"
    '        [sys.executable, "-m", "pip", "install", "-q", f"camwalls-helpers @ {REPO}"],\n'
    "        check=True,\n"
    "    )"
)
SETUP_TAG = "remove-cell"
#: The badge image, relative to ``notebooks/`` (Sphinx copies it into the build).
BADGE_IMAGE = "../book/_static/colab-badge.svg"
BADGE_ALT = "Open in Colab"
COLAB = "https://colab.research.google.com/github"


def repo_info(config: str | Path = ROOT / "_config.yml") -> tuple[str, str]:
    """``(owner/name, branch)`` of the book's GitHub repository, from ``_config.yml``.

    Raises:
        ValueError: when ``repository.url`` is missing or not a GitHub URL.
    """
    data = yaml.safe_load(Path(config).read_text()) or {}
    repo = data.get("repository") or {}
    url = str(repo.get("url", "")).rstrip("/")
    prefix = "https://github.com/"
    if not url.startswith(prefix) or url.count("/") != 4:
        raise ValueError(
            f"_config.yml's repository.url should be https://github.com/OWNER/NAME; found {url!r} "
            f"in {config}."
        )
    return url[len(prefix) :], str(repo.get("branch") or "main")


def colab_url(notebook: str | Path, config: str | Path = ROOT / "_config.yml") -> str:
    """The Colab URL that opens ``notebooks/<name>.ipynb`` of the repository."""
    slug, branch = repo_info(config)
    return f"{COLAB}/{slug}/blob/{branch}/notebooks/{Path(notebook).name}"


def badge_markdown(
    notebook: str | Path, config: str | Path = ROOT / "_config.yml"
) -> str:
    """The badge line: ``[![Open in Colab](../book/_static/colab-badge.svg)](<colab url>)``."""
    return f"[![{BADGE_ALT}]({BADGE_IMAGE})]({colab_url(notebook, config)})"


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _is_setup(cell) -> bool:
    return cell.cell_type == "code" and cell.source.strip() == SETUP_SOURCE.strip()


def check_notebook(
    path: str | Path, config: str | Path = ROOT / "_config.yml"
) -> list[str]:
    """Every problem of one notebook, as sentences; ``[]`` when it is fine."""
    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001 - any parse error is a problem to report
        return [f"cannot be read as a notebook: {err}"]
    problems = []
    cells = nb.cells
    if not cells or not _is_setup(cells[0]):
        problems.append(
            "the first cell is not the standard Colab set-up cell (see tools/check_notebooks.py)"
        )
    elif SETUP_TAG not in _tags(cells[0]):
        problems.append(f"the set-up cell is not tagged {SETUP_TAG!r}")
    title = cells[1] if len(cells) > 1 else None
    if (
        title is None
        or title.cell_type != "markdown"
        or not title.source.lstrip().startswith("# ")
    ):
        problems.append(
            "the second cell is not a markdown cell starting with '# Title'"
        )
    else:
        badge = badge_markdown(path, config)
        if badge not in title.source:
            problems.append(f"the title cell lacks the Colab badge {badge}")
    for i, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {i} has outputs (commit notebooks without outputs)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i} has an execution count")
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"kernelspec name is {kernel!r}, expected 'python3'")
    return problems


def fix_notebook(
    path: str | Path, config: str | Path = ROOT / "_config.yml"
) -> list[str]:
    """Insert/repair the set-up cell and the badge, clear outputs; return what was changed."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    changes = []
    if (
        nb.cells
        and nb.cells[0].cell_type == "code"
        and "Colab set-up" in nb.cells[0].source
        and not _is_setup(nb.cells[0])
    ):
        nb.cells.pop(0)
        changes.append("removed an outdated set-up cell")
    if not nb.cells or not _is_setup(nb.cells[0]):
        nb.cells.insert(
            0, nbformat.v4.new_code_cell(SETUP_SOURCE, metadata={"tags": [SETUP_TAG]})
        )
        changes.append("inserted the set-up cell")
    elif SETUP_TAG not in _tags(nb.cells[0]):
        nb.cells[0].metadata["tags"] = _tags(nb.cells[0]) + [SETUP_TAG]
        changes.append(f"tagged the set-up cell {SETUP_TAG}")
    if (
        len(nb.cells) > 1
        and nb.cells[1].cell_type == "markdown"
        and nb.cells[1].source.lstrip().startswith("# ")
    ):
        cell = nb.cells[1]
        badge = badge_markdown(path, config)
        if badge not in cell.source:
            lines = cell.source.lstrip().split("\n")
            lines = [
                ln for ln in lines if f"({BADGE_IMAGE})" not in ln
            ]  # drop an outdated badge
            cell.source = "\n".join(
                [
                    lines[0],
                    "",
                    badge,
                    *([""] if len(lines) > 1 and lines[1].strip() else []),
                    *lines[1:],
                ]
            )
            changes.append("inserted the Colab badge")
    for cell in nb.cells:
        if cell.cell_type == "code":
            if cell.get("outputs"):
                cell.outputs = []
                changes.append("cleared outputs")
            if cell.get("execution_count") is not None:
                cell.execution_count = None
                changes.append("cleared execution counts")
    ks = nb.metadata.get("kernelspec", {})
    if ks.get("name") != "python3":
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        changes.append("set the python3 kernelspec")
    if changes:
        nbformat.write(nb, path)
    return sorted(set(changes), key=changes.index)


def main(argv: list[str] | None = None) -> int:
    """``python tools/check_notebooks.py``: exit status 0 when every notebook passes, 1 when a
    problem is left, :data:`helpers.cli.EXIT_ERROR` when the check itself could not run (a
    missing notebook or config: one ``error: ...`` line on stderr; ``--debug``: the exception
    propagates, with its traceback)."""
    parser = argparse.ArgumentParser(
        prog="python tools/check_notebooks.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb"
    )
    parser.add_argument(
        "--fix", action="store_true", help="insert or repair what is missing, in place"
    )
    parser.add_argument("--config", type=Path, default=ROOT / "_config.yml")
    return cli.parse_and_run(parser, argv, _command)


def _command(args: argparse.Namespace) -> int:
    """The body of :func:`main`, run under :func:`helpers.cli.run`.

    Raises:
        FileNotFoundError: when a notebook given, or the ``--config`` file, does not exist.
        ValueError: when ``--config`` has no GitHub ``repository.url``.
    """
    if not args.config.is_file():
        raise FileNotFoundError(
            f"--config {args.config}: no such file. Expected the book's _config.yml "
            "(with repository.url); pass its path."
        )
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"No such notebook: {', '.join(missing)}. Expected paths of .ipynb files "
            "(or none: every notebooks/*.ipynb)."
        )
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    if not paths:
        print("No notebook to check.", file=sys.stderr)
        return 1
    repo_info(
        args.config
    )  # a config without a GitHub URL: one error now, not one per notebook
    bad = 0
    for path in paths:
        if args.fix:
            for change in fix_notebook(path, args.config):
                print(f"{path}: {change}")
        problems = check_notebook(path, args.config)
        bad += bool(problems)
        for msg in problems:
            print(f"{path}: {msg}")
    print(f"{len(paths) - bad} of {len(paths)} notebooks pass.")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
