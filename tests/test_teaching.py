"""helpers.teaching: the exercises found in the chapters (checked on a notebook written here and
on the book's own chapters: 3 to 5 each, every one solved) and the build's execution times read
back from a jupyter-cache written here."""

from __future__ import annotations

from pathlib import Path

import nbformat

from helpers import teaching

ROOT = Path(__file__).resolve().parent.parent


def _chapter(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "# A chapter\n\n:::{exercise} By hand\n:label: ex-a\n\nWhy?\n:::"
        ),
        nbformat.v4.new_markdown_cell(
            ":::{solution} ex-a\n:class: dropdown\n\nBecause.\n:::"
        ),
        nbformat.v4.new_markdown_cell(
            "::::{exercise} In code\n:label: ex-b\n\nCompute it.\n::::"
        ),
        nbformat.v4.new_markdown_cell(
            "::::{solution-start} ex-b\n:class: dropdown\n::::"
        ),
        nbformat.v4.new_code_cell("assert 1 + 1 == 2"),
        nbformat.v4.new_markdown_cell("::::{solution-end}\n::::"),
        nbformat.v4.new_markdown_cell(
            ":::{exercise} Open\n:label: ex-c\n\nThink.\n:::"
        ),
        nbformat.v4.new_code_cell("x = 1  # not a solution"),
    ]
    nbformat.write(nb, path)


def test_exercises_are_found_with_their_kind(tmp_path):
    _chapter(tmp_path / "01_a.ipynb")
    found = teaching.exercises(tmp_path)
    assert [(e["label"], e["title"], e["code"], e["solved"]) for e in found] == [
        ("ex-a", "By hand", False, True),
        ("ex-b", "In code", True, True),
        ("ex-c", "Open", False, False),
    ]


def test_every_chapter_ends_with_three_to_five_solved_exercises():
    found = teaching.exercises(ROOT / "notebooks")
    chapters = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    for chapter in chapters:
        mine = [e for e in found if e["chapter"] == chapter]
        assert 3 <= len(mine) <= 5, (chapter, len(mine))
        assert all(e["solved"] for e in mine), chapter
        assert any(e["code"] for e in mine), (
            f"{chapter}: no exercise with a code solution"
        )
    labels = [e["label"] for e in found]
    assert len(labels) == len(set(labels))


def test_execution_times_are_read_back_from_the_build_cache(tmp_path):
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    build = tmp_path / "_build"
    cache = get_cache(str(build / ".jupyter_cache"))
    for name, seconds in (("notebooks/01_a.ipynb", 12.5), ("book/intro.md", 3.0)):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(f"x = {seconds}")]
        cache.cache_notebook_bundle(
            CacheBundleIn(
                nb, str(tmp_path / name), data={"execution_seconds": seconds}
            ),
            check_validity=False,
        )
    times = teaching.chapter_times(build)
    assert set(times) == {"notebooks/01_a", "book/intro"}
    assert (
        times["notebooks/01_a"]["seconds"] == 12.5
        and times["book/intro"]["seconds"] == 3.0
    )  # exact: exact-float
    assert teaching.execution_times(tmp_path / "nothing") == []
