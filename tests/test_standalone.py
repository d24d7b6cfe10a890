"""tools.standalone: a chapter run as in Colab (a fresh folder outside the repository, an empty
CAMWALLS_HOME, the shipped models allowed); the chapter of the day covers every chapter in eight
days; an error or stderr output fails the run."""

from __future__ import annotations

import datetime
from pathlib import Path

import nbformat
import pytest

from tools import standalone as S

ROOT = Path(__file__).resolve().parent.parent


def test_the_chapter_of_the_day_covers_every_chapter_in_as_many_days():
    found = S.chapters()
    assert [p.name[:2] for p in found] == [f"{i:02d}" for i in range(1, len(found) + 1)]
    start = datetime.date(2026, 1, 1)
    days = [
        S.chapter_of_the_day(start + datetime.timedelta(days=d))
        for d in range(len(found))
    ]
    assert sorted(days) == found


def _notebook(tmp_path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = tmp_path / "01_probe.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_chapter_runs_outside_the_repository_with_an_empty_cache(tmp_path):
    path = _notebook(
        tmp_path,
        "import os, pathlib\n"
        "home = pathlib.Path(os.environ['CAMWALLS_HOME'])\n"
        "assert not home.exists() or not any(home.iterdir())\n"
        f"assert not pathlib.Path.cwd().resolve().is_relative_to({str(ROOT)!r})\n"
        "assert os.environ['CAMWALLS_PRETRAINED'] == '1'",
        "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()",
    )
    result = S.run_standalone(path, timeout=120)
    assert 0 <= result["first_figure"] <= result["seconds"]


@pytest.mark.parametrize(
    "source, message",
    [
        ("raise ValueError('boom')", "ValueError: boom"),
        ("import sys; print('careful', file=sys.stderr)", "stderr"),
    ],
)
def test_an_error_or_stderr_fails_the_run(tmp_path, source, message):
    with pytest.raises(RuntimeError, match=message):
        S.run_standalone(_notebook(tmp_path, source), timeout=120)


def test_the_record_keeps_earlier_chapters_and_the_teaching_line_reads_it(
    tmp_path, monkeypatch
):
    import json

    from helpers import teaching

    out = tmp_path / "results" / "standalone.json"
    S.record(out, {"02_wall.ipynb": {"seconds": 14.26, "first_figure": 8.04}}, "cmd a")
    S.record(
        out,
        {"07_beyond.ipynb": {"seconds": 310.0, "first_figure": float("nan")}},
        "cmd b",
    )
    data = json.loads(out.read_text())
    assert data["command"] == "cmd b" and set(data["machine"]) >= {"cpu_count", "torch"}
    assert data["chapters"]["02_wall.ipynb"]["seconds"] == 14.3  # exact: rounded to 0.1
    assert data["chapters"]["02_wall.ipynb"]["first_figure"] == 8.0  # exact: rounded
    line = teaching.colab_time("02_wall.ipynb", out)
    cores = data["machine"]["cpu_count"]
    assert line.startswith(
        f"about 14 s from top to bottom (its first figure after 8 s; {cores} CPU"
    )
    assert "python -m tools.standalone" in line and "`" not in line  # glue:text: plain
    # 310 s: minutes; no figure (NaN) is written as null
    assert data["chapters"]["07_beyond.ipynb"]["first_figure"] is None
    assert teaching.colab_time("07_beyond.ipynb", out).startswith(
        f"about 5 min from top to bottom ({cores} CPU cores"
    )
    assert "not measured yet" in teaching.colab_time("01_theory.ipynb", out)
    assert "not measured yet" in teaching.colab_time("02_wall.ipynb", tmp_path / "none")
    out.write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        S.record(out, {}, "cmd")
    with pytest.raises(ValueError, match="not valid JSON"):
        teaching.colab_time("02_wall.ipynb", out)


def test_every_chapter_states_its_standalone_time_under_its_badge():
    for nb_path in S.chapters():
        nb = nbformat.read(nb_path, as_version=4)
        head = "".join(c.source for c in nb.cells[:2])
        assert "colab-badge" in head and "{glue:md}`colab_time`" in head, nb_path.name
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert f'teaching.colab_time("{nb_path.name}")' in code, nb_path.name
