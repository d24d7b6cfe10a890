"""Execute the book's notebooks two at a time into the build's execution cache, before Sphinx.

Jupyter Book 1 executes notebooks one after the other while Sphinx reads them. On two cores much
of a notebook's time is spent on one core (a kernel starting, ``import torch``, plotting), so
``tools.build`` first runs :func:`execute_pages`: each notebook is read exactly as MyST-NB reads it
(:func:`myst_nb.core.read.create_nb_reader`), executed by jupyter-cache's own
:func:`~jupyter_cache.executors.utils.single_nb_execution` in a pool of ``jobs`` processes, and
stored in the same jupyter-cache (``<build>/.jupyter_cache``) under the same key, the way
MyST-NB's ``cache`` execution mode stores it. Sphinx then finds every page in the cache
("Using cached notebook") and only renders.

The order only changes how long the build takes, never what it computes: a notebook that needs
a result another is computing (Table 1, a trained model) waits for it
(:func:`helpers.locks.cache_lock`) and then reads it from the cache. :data:`FIRST` starts the
page that computes Table 1 and the chapters that do not read it; :data:`LEFT_TO_SPHINX` holds the
page that reads the other pages' execution times, so it runs after them.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime
import multiprocessing
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "FIRST",
    "LEFT_TO_SPHINX",
    "toc_pages",
    "notebook_pages",
    "execution_order",
    "read_notebook",
    "execute_pages",
    "executed_since",
]

#: The pages that start first, in this order (then the rest, in the table of contents' order).
#: ``book/intro`` computes Table 1, which the primer, chapters 06 and 07, the results and status
#: pages read; chapters 01 to 05 need at most the trained models, so they run beside it.
FIRST = (
    "book/intro",
    "notebooks/01_theory",
    "notebooks/02_wall",
    "notebooks/03_datasets",
    "notebooks/04_training",
    "notebooks/05_cam_methods",
    "notebooks/07_beyond",
)
#: Pages executed by Sphinx itself, after the others: the teaching page reads their times.
LEFT_TO_SPHINX = ("notebooks/teaching",)


def toc_pages(root: str | Path) -> list[str]:
    """The pages of ``_toc.yml`` (root first), as docnames (``"notebooks/02_wall"``)."""
    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                pages.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [str(Path(p).with_suffix("")) for p in pages]


def notebook_pages(root: str | Path) -> dict[str, Path]:
    """The pages of the table of contents that are notebooks (``.ipynb``, or MyST Markdown with
    a kernel in its front matter), docname -> file."""
    from myst_nb.core.read import is_myst_markdown_notebook

    out = {}
    for page in toc_pages(root):
        for suffix in (".ipynb", ".md"):
            path = Path(root) / (page + suffix)
            if path.is_file() and (
                suffix == ".ipynb" or is_myst_markdown_notebook(path.read_text())
            ):
                out[page] = path
                break
    return out


def execution_order(pages: Mapping[str, Path]) -> list[str]:
    """The pages to execute before Sphinx, in order: :data:`FIRST`, then the others in the
    table of contents' order, without :data:`LEFT_TO_SPHINX`."""
    first = [p for p in FIRST if p in pages]
    rest = [p for p in pages if p not in first and p not in LEFT_TO_SPHINX]
    return first + rest


def _md_config(root: str | Path) -> Any:
    """MyST's parser settings as the book's ``_config.yml`` sets them."""
    from myst_parser.config.main import MdParserConfig

    cfg = yaml.safe_load((Path(root) / "_config.yml").read_text()) or {}
    extensions = (cfg.get("parse") or {}).get("myst_enable_extensions") or []
    return MdParserConfig(enable_extensions=set(extensions))


def read_notebook(path: str | Path, root: str | Path) -> tuple[Any, dict | None]:
    """``(notebook, read_fmt)``: ``path`` read as MyST-NB reads it (hence with the same
    jupyter-cache key)."""
    from myst_nb.core.config import NbParserConfig
    from myst_nb.core.read import create_nb_reader

    text = Path(path).read_text()
    reader = create_nb_reader(str(path), _md_config(root), NbParserConfig(), text)
    if reader is None:
        raise ValueError(f"{path} is not a notebook MyST-NB can read.")
    return reader.read(text), reader.read_fmt


def _init_worker(env: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(env)


def _execute(nb_json: str, cwd: str, timeout: int | None) -> tuple[str, float, str]:
    """In a worker: execute one notebook; ``(executed notebook, seconds, error text or "")``."""
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    nb = nbformat.reads(nb_json, as_version=4)
    result = single_nb_execution(
        nb, cwd=cwd, timeout=timeout, allow_errors=False, meta_override=True
    )
    error = ""
    if result.err is not None:
        error = f"{type(result.err).__name__}: {result.exc_string or result.err}"
    return nbformat.writes(nb), float(result.time), error


def execute_pages(
    root: str | Path,
    cache_path: str | Path,
    env: Mapping[str, str],
    jobs: int = 2,
    timeout: int | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Execute the notebooks of :func:`execution_order` that the cache at ``cache_path`` lacks,
    ``jobs`` at a time, and store each that succeeds there as MyST-NB would.

    Args:
        root: the book's root (``_toc.yml``, ``_config.yml``).
        cache_path: the jupyter-cache folder of the build.
        env: the kernels' environment.
        jobs: notebooks executed at once.
        timeout: per cell, in seconds (``None``: none).

    Returns:
        ``(executed, failed)``: the pages executed and cached, and those that failed, docname ->
        error (with the traceback); the others are cached even when some fail, and the build
        reports the failures.
    """
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    pages = notebook_pages(root)
    cache = get_cache(str(cache_path))
    todo = []
    for page in execution_order(pages):
        nb, fmt = read_notebook(pages[page], root)
        try:
            cache.match_cache_notebook(nb)
        except KeyError:
            todo.append((page, nb, fmt))
    failed: dict[str, str] = {}
    executed: list[str] = []
    if not todo:
        return executed, failed
    print(
        f"Executing {len(todo)} notebooks, {jobs} at a time, into {cache_path}:",
        flush=True,
    )
    start = time.perf_counter()
    with cf.ProcessPoolExecutor(
        max_workers=max(1, int(jobs)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(dict(env),),
    ) as pool:
        futures = {
            pool.submit(
                _execute, nbformat.writes(nb), str(pages[page].parent), timeout
            ): (page, nb, fmt)
            for page, nb, fmt in todo
        }
        for done, future in enumerate(cf.as_completed(futures), 1):
            page, nb, fmt = futures[future]
            try:
                nb_out, seconds, error = future.result()
            except Exception as err:  # the worker itself died
                nb_out, seconds, error = (
                    "",
                    float("nan"),
                    f"{type(err).__name__}: {err}",
                )
            if error:
                failed[page] = error
                print(f"  FAILED   {page} ({done}/{len(todo)})", flush=True)
                continue
            record = (
                cache.add_nb_to_project(str(pages[page]), read_data=fmt)
                if fmt is not None
                else cache.add_nb_to_project(str(pages[page]))
            )
            cache.cache_notebook_bundle(
                CacheBundleIn(
                    nbformat.reads(nb_out, as_version=4),
                    record.uri,
                    data={"execution_seconds": seconds},
                ),
                check_validity=False,
                overwrite=True,
            )
            executed.append(page)
            print(
                f"  {seconds:6.1f} s  {page} ({done}/{len(todo)}, "
                f"{time.perf_counter() - start:.0f} s since the start)",
                flush=True,
            )
    return executed, failed


def executed_since(cache_path: str | Path, since: datetime.datetime) -> list[str]:
    """The files (absolute paths) that jupyter-cache at ``cache_path`` stored at or after
    ``since`` (UTC): after the Sphinx build, a page executed beforehand that is listed here was
    executed again (its key did not match), which only costs time."""
    from jupyter_cache import get_cache

    if not Path(cache_path).is_dir():
        return []
    cutoff = since.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return sorted(
        rec.uri
        for rec in get_cache(str(cache_path)).list_cache_records()
        if rec.created.replace(tzinfo=None) >= cutoff
    )
