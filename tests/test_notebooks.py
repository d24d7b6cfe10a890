"""The chapters' conventions (tools/check_notebooks.py): the real notebooks pass, and the check
fails on bad notebooks written here, which --fix then repairs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "check_notebooks", ROOT / "tools" / "check_notebooks.py"
)
cn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cn)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_chapters():
    assert NOTEBOOKS, "no notebooks/*.ipynb found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_real_notebook_follows_the_conventions(path: Path):
    problems = cn.check_notebook(path)
    assert problems == [], (
        f"{path.name}: {problems}\n(run `python tools/check_notebooks.py --fix "
        f"notebooks/{path.name}` once nobody else edits it)"
    )


def test_colab_url_is_built_from_the_config(tmp_path: Path):
    config = tmp_path / "_config.yml"
    config.write_text(
        "repository:\n  url: https://github.com/someone/a-book\n  branch: dev\n"
    )
    assert (
        cn.colab_url("notebooks/03_x.ipynb", config)
        == "https://colab.research.google.com/github/someone/a-book/blob/dev/notebooks/03_x.ipynb"
    )
    real_url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"][
        "url"
    ].rstrip("/")
    assert (
        cn.colab_url("01_theory.ipynb")
        == real_url.replace(
            "https://github.com/", "https://colab.research.google.com/github/"
        )
        + "/blob/main/notebooks/01_theory.ipynb"
    )
    config.write_text("repository:\n  url: https://gitlab.com/x/y\n")
    with pytest.raises(ValueError, match="github.com/OWNER/NAME"):
        cn.repo_info(config)


def test_setup_cell_is_the_team_one_and_runs_without_installing():
    # Where helpers is importable (here), the cell must do nothing: running it is harmless.
    code = compile(cn.SETUP_SOURCE, "<setup>", "exec")
    exec(code, {})
    assert cn.SETUP_SOURCE.splitlines()[0].startswith("# Colab set-up")
    namespace: dict = {}
    exec(code, namespace)
    assert 'f"camwalls-helpers @ {REPO}"' in cn.SETUP_SOURCE
    real_url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"][
        "url"
    ].rstrip("/")
    assert namespace["REPO"] == "git+" + real_url  # the repository the book names


def _good(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell(cn.SETUP_SOURCE, metadata={"tags": ["remove-cell"]}),
        nbformat.v4.new_markdown_cell(
            f"# A chapter\n\n{cn.badge_markdown(path)}\n\nIntro."
        ),
        nbformat.v4.new_code_cell("x = 1"),
    ]
    nbformat.write(nb, path)
    return path


def test_a_good_notebook_passes(tmp_path: Path):
    assert cn.check_notebook(_good(tmp_path / "01_good.ipynb")) == []


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("drop_setup", "first cell is not the standard Colab set-up cell"),
        ("untag_setup", "not tagged 'remove-cell'"),
        ("no_badge", "lacks the Colab badge"),
        ("outputs", "has outputs"),
        ("count", "has an execution count"),
        ("kernel", "kernelspec name is 'ir'"),
    ],
)
def test_each_kind_of_damage_is_found_and_fixed(
    tmp_path: Path, damage: str, expected: str
):
    path = _good(tmp_path / "02_bad.ipynb")
    nb = nbformat.read(path, as_version=4)
    if damage == "drop_setup":
        nb.cells.pop(0)
        nb.cells.insert(0, nbformat.v4.new_markdown_cell("# A chapter\n\nIntro."))
        nb.cells.pop(1)
    elif damage == "untag_setup":
        nb.cells[0].metadata["tags"] = []
    elif damage == "no_badge":
        nb.cells[1].source = "# A chapter\n\nIntro."
    elif damage == "outputs":
        nb.cells[2].outputs = [
            nbformat.v4.new_output("stream", name="stdout", text="1\n")
        ]
    elif damage == "count":
        nb.cells[2].execution_count = 3
    elif damage == "kernel":
        nb.metadata["kernelspec"] = {"name": "ir", "display_name": "R"}
    nbformat.write(nb, path)
    problems = cn.check_notebook(path)
    assert any(expected in p for p in problems), problems
    assert cn.main([str(path)]) == 1

    changes = cn.fix_notebook(path)
    assert changes
    assert cn.check_notebook(path) == []
    assert cn.fix_notebook(path) == []  # idempotent
    fixed = nbformat.read(path, as_version=4)
    assert fixed.cells[1].source.startswith("# A chapter\n\n" + cn.badge_markdown(path))
    assert (
        sum(c.cell_type == "code" and c.source == cn.SETUP_SOURCE for c in fixed.cells)
        == 1
    )
    assert cn.main([str(path)]) == 0


def test_an_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path):
    path = tmp_path / "broken.ipynb"
    path.write_text("{not json")
    assert any("cannot be read" in p for p in cn.check_notebook(path))
