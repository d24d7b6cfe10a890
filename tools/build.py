"""Build the book: ``python -m tools.build`` (what ``make book`` runs).

First executes the notebooks two at a time into the build's execution cache
(:mod:`tools.execute`; ``--jobs 1`` leaves them to Sphinx, one after the other), then runs
``jupyter-book build . --warningiserror --keep-going`` from the repository root (so a
notebook that fails, or any warning, fails the build), which renders them from that cache;
then prints how long each notebook
took to execute, read from the execution cache, and writes them to
``_build/html/_static/execution-times.json`` for the status page. ``--output DIR`` builds into
``DIR/_build`` instead of the checkout's ``_build`` (jupyter-book's ``--path-output``).

The built HTML reads offline: the ``sphinx-mathjax-offline`` extension (``_config.yml``) copies
MathJax 3.2.2 into ``_build/html/_static/mathjax`` and the pages load it from there, not from a
CDN; ``tools/browsercheck.py`` fails a page that loads a script from another host.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from helpers import cli
from helpers.teaching import (
    execution_times,
)  # the build's execution times (the teaching page reads them too)

from . import execute

__all__ = ["repo_root", "execution_times", "main"]


def repo_root() -> Path:
    """The repository root (the folder holding ``_config.yml``)."""
    here = Path(__file__).resolve().parent.parent
    if not (here / "_config.yml").is_file():
        raise FileNotFoundError(
            f"No _config.yml in {here}: tools.build must run from a checkout of the book "
            "(the repository root)."
        )
    return here


def _timeout(root: Path) -> int | None:
    """The per-cell timeout of ``_config.yml`` (``execute: timeout``), as MyST-NB applies it."""
    cfg = yaml.safe_load((root / "_config.yml").read_text()) or {}
    value = (cfg.get("execute") or {}).get("timeout")
    return None if value in (None, -1) else int(value)


def _command(args: argparse.Namespace) -> int:
    """The body of :func:`main`, run under :func:`helpers.cli.run`.

    Raises:
        FileNotFoundError: outside a checkout of the book (no ``_config.yml``), or when
            ``jupyter-book`` is not installed next to this Python.
    """
    root = repo_root()
    env = dict(os.environ)
    env.setdefault("CAMWALLS_PROFILE", "quick")
    env["CAMWALLS_BOOK_BUILD"] = "1"  # progress bars stay silent in the rendered book
    # the build trains its models: never the quick models shipped with helpers (Colab uses those)
    env.setdefault("CAMWALLS_PRETRAINED", "0")
    cmd = [
        str(Path(sys.executable).parent / "jupyter-book"),
        "build",
        str(root),
        "--warningiserror",
        "--keep-going",
    ]
    out = Path(args.output).expanduser().resolve() if args.output else root
    if args.output:
        cmd += ["--path-output", str(out)]
    build_dir = out / "_build"
    env["CAMWALLS_BUILD_DIR"] = str(
        build_dir
    )  # where the teaching page reads the execution times
    if not Path(cmd[0]).is_file():
        raise FileNotFoundError(
            f"No jupyter-book at {cmd[0]}: expected it installed next to this Python "
            f"({sys.executable}). Install the book's extras: pip install -e '.[book]'."
        )
    # The execution cache does not know about the profile: when it changes, execute everything.
    marker = build_dir / ".camwalls-profile"
    previous = marker.read_text().strip() if marker.is_file() else None
    rebuild = args.all or (previous is not None and previous != env["CAMWALLS_PROFILE"])
    if rebuild:
        if previous != env["CAMWALLS_PROFILE"]:
            print(
                f"Profile changed ({previous} -> {env['CAMWALLS_PROFILE']}): executing every notebook again."
            )
        shutil.rmtree(build_dir / ".jupyter_cache", ignore_errors=True)
        cmd.append("--all")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(env["CAMWALLS_PROFILE"] + "\n")
    start = time.perf_counter()
    jobs = args.jobs if args.jobs is not None else min(2, os.cpu_count() or 1)
    executed: list[str] = []
    if jobs > 1:
        # the notebooks, two at a time, into the cache the build reads (tools/execute.py)
        # each kernel gets its share of the cores (torch's threads would otherwise fight)
        kernels = dict(env)
        kernels.setdefault(
            "OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs))
        )
        executed, failed = execute.execute_pages(
            root,
            build_dir / ".jupyter_cache",
            kernels,
            jobs=jobs,
            timeout=_timeout(root),
        )
        if failed:
            for page, error in failed.items():
                print(f"\n{page} FAILED:\n{error}", file=sys.stderr)
            print(
                f"\nThe book build FAILED: {len(failed)} notebook(s) raised an error "
                f"({', '.join(failed)}); see above. The others are cached and are not "
                "executed again.",
                file=sys.stderr,
            )
            return 1
    print("$", " ".join(cmd), flush=True)
    sphinx_start = datetime.datetime.now(datetime.timezone.utc)
    proc = subprocess.run(cmd, cwd=root, env=env)
    pages = execute.notebook_pages(root)
    again = set(execute.executed_since(build_dir / ".jupyter_cache", sphinx_start))
    twice = [p for p in executed if str(pages[p].resolve()) in again]
    if twice:
        print(
            f"Note: Sphinx executed {', '.join(twice)} again (MyST-NB's cache key differed "
            "from tools.execute's); only the build's time is affected."
        )
    total = time.perf_counter() - start
    times = execution_times(build_dir, root)
    print(
        f"\nBook build: {total:.1f} s in all (profile {env['CAMWALLS_PROFILE']}). "
        "Notebook execution times (cached runs keep their first time):"
    )
    for rec in times:
        print(f"  {rec['seconds']:8.1f} s  {rec['uri']}  (executed {rec['created']})")
    html = build_dir / "html"
    if html.is_dir():
        (html / "_static").mkdir(exist_ok=True)
        (html / "_static" / "execution-times.json").write_text(
            json.dumps(times, indent=2)
        )
    if proc.returncode != 0:
        print(
            f"\nThe book build FAILED (exit code {proc.returncode}); see the messages above "
            "(a notebook error, or a warning turned into an error).",
            file=sys.stderr,
        )
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.build``: build the book; the exit status is jupyter-book's, or
    :data:`helpers.cli.EXIT_ERROR` after an error of this command itself (one ``error: ...``
    line on stderr; ``--debug``: the exception propagates, with its traceback)."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.build", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="execute every notebook again and rebuild every page",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="notebooks executed at once before Sphinx renders them (default: 2 where the "
        "machine has 2 cores or more; 1: Sphinx executes them one after the other)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="DIR",
        help="build into DIR/_build (default: the checkout's _build)",
    )
    return cli.parse_and_run(parser, argv, _command)


if __name__ == "__main__":
    sys.exit(main())
