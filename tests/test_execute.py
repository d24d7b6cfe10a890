"""tools.execute: the book's notebooks executed two at a time into the cache Sphinx reads.

The cache key is checked against MyST-NB's own reading of each page (the key Sphinx looks up),
and a tiny book is executed end to end: a MyST Markdown notebook and an ``.ipynb``, one of which
fails, in two processes.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import nbformat
import pytest

from tools import execute as X

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("myst_nb")
pytest.importorskip("jupyter_cache")


def test_the_book_pages_in_order():
    pages = X.notebook_pages(ROOT)
    toc = X.toc_pages(ROOT)
    assert toc[0] == "book/intro" and "notebooks/07_beyond" in toc
    for page in X.FIRST + X.LEFT_TO_SPHINX:  # the order names real notebook pages
        assert page in pages, page
    order = X.execution_order(pages)
    assert order[: len(X.FIRST)] == list(X.FIRST)
    assert sorted(order + list(X.LEFT_TO_SPHINX)) == sorted(pages)
    # the pages that are not notebooks (no kernel) are not executed
    assert "book/bibliography" not in pages and "book/paper" not in pages


def test_the_cache_key_is_the_one_myst_nb_computes():
    """MyST-NB's reader with the settings Sphinx gives it (jupyter-book's) and ours agree."""
    from jupyter_cache.cache.main import JupyterCacheBase
    from myst_nb.core.config import NbParserConfig
    from myst_nb.core.read import create_nb_reader
    from myst_parser.config.main import MdParserConfig

    cache = JupyterCacheBase.__new__(JupyterCacheBase)
    for page, path in X.notebook_pages(ROOT).items():
        ours, _ = X.read_notebook(path, ROOT)
        # MyST-NB's reading with every MyST extension jupyter-book may enable
        md = MdParserConfig(
            enable_extensions={
                "amsmath",
                "dollarmath",
                "colon_fence",
                "deflist",
                "substitution",
                "linkify",
                "html_image",
            }
        )
        text = path.read_text()
        theirs = create_nb_reader(str(path), md, NbParserConfig(), text).read(text)
        assert (
            cache.create_hashed_notebook(ours)[1]
            == cache.create_hashed_notebook(theirs)[1]
        ), page


def _tiny_book(folder: Path) -> None:
    (folder / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: good\n  - file: bad\n"
        "  - file: plain\n"
    )
    (folder / "_config.yml").write_text(
        "parse:\n  myst_enable_extensions: [dollarmath]\n"
    )
    (folder / "intro.md").write_text(
        "---\njupytext:\n  text_representation:\n    format_name: myst\n"
        "kernelspec:\n  name: python3\n  display_name: Python 3\n---\n# Intro\n\n"
        "```{code-cell} ipython3\nimport os\nprint(os.environ['TINY_BOOK'])\n```\n"
    )
    good = nbformat.v4.new_notebook()
    good.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    good.cells = [nbformat.v4.new_code_cell("x = 6 * 7\nprint(x)")]
    nbformat.write(good, folder / "good.ipynb")
    bad = nbformat.v4.new_notebook()
    bad.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    bad.cells = [nbformat.v4.new_code_cell("raise ValueError('broken on purpose')")]
    nbformat.write(bad, folder / "bad.ipynb")
    (folder / "plain.md").write_text("# Not a notebook\n")


def test_a_tiny_book_executes_two_at_a_time(tmp_path):
    from jupyter_cache import get_cache

    _tiny_book(tmp_path)
    cache_path = tmp_path / "_build" / ".jupyter_cache"
    env = dict(os.environ, TINY_BOOK="from the environment")
    start = datetime.datetime.now(datetime.timezone.utc)
    executed, failed = X.execute_pages(tmp_path, cache_path, env, jobs=2, timeout=120)
    assert list(failed) == ["bad"] and "broken on purpose" in failed["bad"]
    assert sorted(executed) == ["good", "intro"]
    cache = get_cache(str(cache_path))
    pages = X.notebook_pages(tmp_path)
    assert sorted(pages) == ["bad", "good", "intro"]
    outputs = {}
    for page in ("intro", "good"):
        nb, _ = X.read_notebook(pages[page], tmp_path)
        record = cache.match_cache_notebook(nb)  # found under MyST-NB's key
        assert record.data["execution_seconds"] > 0
        _, merged = cache.merge_match_into_notebook(nb)
        outputs[page] = "".join(o.get("text", "") for o in merged.cells[-1].outputs)
    assert outputs == {"intro": "from the environment\n", "good": "42\n"}
    # the failure is not cached: Sphinx (or the next run) executes it again
    bad, _ = X.read_notebook(pages["bad"], tmp_path)
    with pytest.raises(KeyError):
        cache.match_cache_notebook(bad)
    stored = X.executed_since(cache_path, start)
    assert sorted(Path(u).name for u in stored) == ["good.ipynb", "intro.md"]
    # a second run executes only what is missing
    executed, again = X.execute_pages(tmp_path, cache_path, env, jobs=2, timeout=120)
    assert executed == [] and list(again) == ["bad"]
    later = datetime.datetime.now(datetime.timezone.utc)
    assert X.executed_since(cache_path, later) == []


def test_the_build_command_fails_on_a_failing_notebook_before_sphinx(
    tmp_path, monkeypatch, capsys
):
    from tools import build

    calls = []
    monkeypatch.setattr(
        build.execute,
        "execute_pages",
        lambda *a, **k: (
            calls.append(k) or ([], {"notebooks/02_wall": "ValueError: boom"})
        ),
    )
    monkeypatch.setattr(
        build.subprocess, "run", lambda *a, **k: pytest.fail("Sphinx must not run")
    )
    code = build.main(["--output", str(tmp_path), "--jobs", "2"])
    err = capsys.readouterr().err
    assert code == 1 and calls and calls[0]["jobs"] == 2
    assert "notebooks/02_wall FAILED" in err and "ValueError: boom" in err
