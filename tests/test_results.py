"""helpers.results: the results table against the per-image values it summarizes, the verdict on
hand-made rows, the paper's numbers against book/paper.md, the renderer's HTML parsed back."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import cams
from helpers import evaluate as E
from helpers import results as R
from helpers.config import get_profile
from helpers.results import tables as R_tables
from helpers.geometry import rvgg_geometry
from helpers.models import rvgg

ROOT = Path(__file__).resolve().parent.parent

RECORDS = [
    {
        "method": "GradCAM",
        "dataset": "STACK-MIX",
        "model": "walled",
        "mu_mean": 0.20,
        "mu_std": 0.05,
        "mu_max": 0.6,
        "mu_zero_share": 0.25,
        "n_images": 4,
        "zero_fraction": 0.1,
        "seconds": 1.5,
    },
    {
        "method": "GradCAM",
        "dataset": "STACK-GEN",
        "model": "walled",
        "mu_mean": 0.30,
        "mu_std": 0.07,
        "mu_max": 0.7,
        "mu_zero_share": 0.0,
        "n_images": 12,
        "zero_fraction": 0.2,
        "seconds": 1.0,
    },
    {
        "method": "GradCAM",
        "dataset": "STACK-MIX",
        "model": "baseline",
        "mu_mean": 0.35,
        "mu_std": 0.1,
        "mu_max": 0.8,
        "mu_zero_share": 0.0,
        "n_images": 4,
        "seconds": 0.5,
    },
    {
        "method": "HiResCAM",
        "dataset": "STACK-MIX",
        "model": "walled",
        "mu_mean": 0.0,
        "mu_std": 0.0,
        "mu_max": 0.0,
        "mu_zero_share": 1.0,
        "n_images": 4,
        "zero_fraction": 0.607,
        "seconds": 2.0,
    },
    {
        "method": "HiResCAM",
        "dataset": "STACK-GEN",
        "model": "walled",
        "mu_mean": 0.0,
        "mu_std": 0.0,
        "mu_max": 0.0,
        "mu_zero_share": 1.0,
        "n_images": 12,
        "zero_fraction": 0.62,
        "seconds": 2.0,
    },
    {
        "method": "EigenCAM",
        "dataset": "STACK-MIX",
        "model": "walled",
        "mu_mean": 0.41,
        "mu_std": 0.02,
    },
]


# ---------------------------------------------------------------------------------------------
# The table, from a real (tiny) evaluation
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    prof = get_profile("quick")
    prof = prof.replace(
        eval=prof.eval.__class__(
            stack_images=3,
            batch_size=3,
            opticam_iterations=1,
            score_batch=8,
            grid_images=1,
            seed=0,
        )
    )
    torch.manual_seed(0)
    models = {
        "walled": rvgg(10, width=1 / 32).eval(),
        "baseline": rvgg(10, width=1 / 32, wall_rows=0).eval(),
    }
    g = torch.Generator().manual_seed(3)
    sets = {
        "STACK-MIX": (
            torch.randn(3, 3, 224, 224, generator=g),
            torch.tensor([0, 1, 2]),
        ),
        "STACK-GEN (stand-in)": torch.randn(3, 3, 224, 224, generator=g),
    }
    folder = tmp_path_factory.mktemp("results")
    res = E.evaluate(
        prof,
        methods=["gradcam", "hirescam", "eigencam"],
        models=models,
        sets=sets,
        folder=folder,
        show_progress=False,
    )
    res["_folder"] = folder
    return res


def test_the_table_summarizes_the_per_image_values(evaluation):
    df = R.table(evaluation)
    assert list(df.columns) == list(R.COLUMNS)
    assert len(df) == 2 * 2 * 3
    long = R.per_image(evaluation)
    assert len(long) == 2 * 2 * 3 * 3
    by_cell = long.groupby(["model", "set", "method"])["mu"]
    for _, row in df.iterrows():
        mu = by_cell.get_group((row["model"], row["set"], row["method"])).to_numpy()
        # and once more straight from the nested dict the evaluation returned (a copy)  # exact: exact-float
        np.testing.assert_array_equal(
            mu, evaluation["per_image"][row["model"]][row["set"]][row["method"]]["mu"]
        )
        assert row["n_images"] == len(mu) == 3
        assert row["mu_mean"] == pytest.approx(mu.mean(), abs=1e-12)
        assert row["mu_std"] == pytest.approx(
            mu.std(ddof=1), abs=1e-7
        )  # the sample std, as the paper
        assert row["mu_max"] == pytest.approx(mu.max(), abs=1e-12)
        assert row["mu_zero_share"] == pytest.approx(np.mean(mu == 0))
        assert row["positive_share"] == pytest.approx(np.mean(mu > 0))
        assert row["observed"] == ("leaks" if (mu > 0).any() else "blind")
    # the wall: HiResCAM is blind on the walled model, GradCAM is not
    assert set(R.select(df, "hirescam", "walled")["observed"]) == {"blind"}
    assert set(R.select(df, "gradcam", "walled")["observed"]) == {"leaks"}


def test_the_table_reads_the_files_the_evaluation_wrote(evaluation):
    folder = evaluation["_folder"]
    direct = R.table(evaluation)
    from_json = R.table(folder / "table1.json")
    from_csv = R.table(folder / "table1.csv")
    pd.testing.assert_frame_equal(from_json, direct)
    pd.testing.assert_frame_equal(from_csv, direct, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(R.table(folder), direct)  # a folder: its table1.json
    pd.testing.assert_frame_equal(
        R.table(direct), direct
    )  # a table checked again is itself
    pd.testing.assert_frame_equal(
        R.per_image(E.load_results(folder=folder)), R.per_image(evaluation)
    )
    with pytest.raises(ValueError, match="per-image"):
        R.per_image({"rows": evaluation["rows"]})


def test_the_schema_is_partitioned_once():
    derived = ("positive_share", "observed")
    named = (
        set(R_tables._TEXT)
        | set(R_tables._REGISTRY)
        | set(R_tables._NUMBERS)
        | {"model", "set", "method"}
        | set(derived)
    )
    assert named == set(R.COLUMNS) and len(R.COLUMNS) == len(set(R.COLUMNS))
    assert set(R.REQUIRED) <= set(R.COLUMNS)
    # every column helpers.evaluate writes has its place ("dataset" is read as "set")
    assert {("set" if c == "dataset" else c) for c in E.CSV_COLUMNS} <= set(R.COLUMNS)


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            [{"method": "GradCAM", "dataset": "S", "mu_mean": 0.2}],
            "lack the columns \\['model'\\]",
        ),
        (
            [{"method": "GradCAM", "dataset": "S", "model": "walled", "mu_mean": 1.7}],
            "in \\[0, 1\\]",
        ),
        (
            [
                {
                    "method": "GradCAM",
                    "dataset": "S",
                    "model": "walled",
                    "mu_mean": "high",
                }
            ],
            "not a number",
        ),
        (
            [
                {
                    "method": "NoSuchCAM",
                    "dataset": "S",
                    "model": "walled",
                    "mu_mean": 0.1,
                }
            ],
            "Unknown CAM method",
        ),
        ([], "empty"),
        ({"something": 1}, "'rows'"),
    ],
)
def test_bad_rows_are_refused_with_a_reason(rows, message):
    with pytest.raises(ValueError, match=message):
        R.table(rows)


def test_a_missing_file_names_the_command_that_writes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m helpers.evaluate"):
        R.table(tmp_path / "table1.csv")
    with pytest.raises(FileNotFoundError, match="python -m helpers.evaluate"):
        R.table(tmp_path)


# ---------------------------------------------------------------------------------------------
# Row finder, means, the paper
# ---------------------------------------------------------------------------------------------


def test_select_and_cell_match_names_through_the_registry():
    df = R.table(
        [
            {"method": "gradcampp", "dataset": "S", "model": "walled", "mu_mean": 0.3},
            {"method": "GradCAM", "dataset": "S", "model": "walled", "mu_mean": 0.2},
        ]
    )
    assert df["method"].tolist() == ["gradcampp", "gradcam"]
    assert df["display"].tolist() == ["GradCAM++", "GradCAM"]
    assert R.select(df, "gradcam")["mu_mean"].tolist() == [
        0.2
    ]  # not confused with GradCAM++
    for name in ("GradCAM++", "GradCAMPlusPlus", "gradcampp"):
        assert R.cell(df, name, "walled", "S")["mu_mean"] == 0.3
    assert len(R.select(df)) == 2 and R.select(df, model="baseline").empty
    with pytest.raises(KeyError, match="sets \\['S'\\]"):
        R.cell(df, "gradcam", "walled", "STACK-MIX")


def test_mean_mu_and_the_paper_beside_ours():
    df = R.table(RECORDS)
    assert R.mean_mu(df, "gradcam") == pytest.approx((0.20 + 0.30) / 2)
    assert R.mean_mu(df, "gradcam", "baseline") == pytest.approx(0.35)
    assert math.isnan(R.mean_mu(df, "layercam"))
    comp = R.paper_comparison(df).set_index("method")
    assert (
        comp.loc["gradcam", "ours"] == pytest.approx(0.25)
        and comp.loc["gradcam", "paper"] == 0.227
    )
    assert (
        comp.loc["hirescam", "ours"] == 0.0
        and comp.loc["hirescam", "observed"] == "blind"
    )  # exact: wall
    assert comp.loc["gradcam", "sets"] == ["STACK-MIX", "STACK-GEN"]
    missing = R.paper_comparison(R.table(RECORDS[-1:])).set_index("method")
    assert (
        math.isnan(missing.loc["gradcam", "ours"])
        and missing.loc["gradcam", "observed"] == ""
    )


def test_the_paper_numbers_are_those_of_book_paper_md():
    text = (ROOT / "book" / "paper.md").read_text()
    source = re.search(
        r"Table 1 values available to us: (.*?)\n\n", text, flags=re.DOTALL
    ).group(1)
    source = " ".join(source.split())
    assert (
        f"{100 * R.PAPER['gradcam'].mu:.1f}% on average over its two stack sets"
        in source
    )
    assert (
        "HiResCAM, 0." in source and R.PAPER["hirescam"].mu == 0.0
    )  # exact: exact-float (a constant)
    assert set(R.PAPER) == {"gradcam", "hirescam"} and all(
        p.model == "walled" for p in R.PAPER.values()
    )
    assert all(cams.METHODS[k].in_paper for k in R.PAPER)
    assert source.split("; ")[0] in R.PAPER_SOURCE


# ---------------------------------------------------------------------------------------------
# The verdict
# ---------------------------------------------------------------------------------------------


def test_verdict_on_per_image_values():
    assert R.verdict([0.0, 0.0, 0.0]) == R.Verdict("blind", 0.0, 3)
    v = R.verdict(
        np.array([0.0, 1e-12, 0.0, 0.0])
    )  # any mu > 0, however small, is a leak
    assert (
        v.leaks
        and v.observed == "leaks"
        and v.positive_share == 0.25
        and v.n_images == 4
    )
    with pytest.raises(ValueError, match=">= 0"):
        R.verdict([0.1, -0.2])
    with pytest.raises(ValueError, match="no images"):
        R.verdict([])


def test_verdict_on_hand_made_rows():
    blind = {"mu_mean": 0.0, "mu_max": 0.0, "mu_zero_share": 1.0, "n_images": 4}
    leak = {"mu_mean": 0.1, "mu_max": 0.4, "mu_zero_share": 0.75, "n_images": 4}
    other = {"mu_mean": 0.2, "mu_max": 0.5, "mu_zero_share": 0.5, "n_images": 12}
    assert R.verdict(blind) == R.Verdict("blind", 0.0, 4)
    assert R.verdict(leak) == R.Verdict("leaks", 0.25, 4)
    # several rows together: blind only when each is; the share is over all their images
    both = R.verdict([blind, other])
    assert both.observed == "leaks" and both.n_images == 16
    assert both.positive_share == pytest.approx((0 * 4 + 6) / 16)
    assert R.verdict([blind, blind]).observed == "blind"
    # mu_max decides, not the mean: a tiny leak on one image is a leak
    tiny = {"mu_mean": 1e-9, "mu_max": 1e-7, "mu_zero_share": 0.99, "n_images": 100}
    assert R.verdict(tiny).observed == "leaks" and R.verdict(
        tiny
    ).positive_share == pytest.approx(0.01)
    # a row with only mu_mean: mu >= 0, so a zero mean means zero everywhere
    assert R.verdict({"mu_mean": 0.0}) == R.Verdict("blind", 0.0, 0)
    only_mean = R.verdict({"mu_mean": 0.3})
    assert only_mean.observed == "leaks" and math.isnan(only_mean.positive_share)
    # rows of the table: a DataFrame and a Series work too
    df = R.table(RECORDS)
    assert R.verdict(R.select(df, "gradcam", "walled")).positive_share == pytest.approx(
        (0.75 * 4 + 1 * 12) / 16
    )
    assert R.verdict(R.cell(df, "hirescam", "walled", "STACK-MIX")).observed == "blind"
    with pytest.raises(ValueError, match="neither mu_max nor mu_mean"):
        R.verdict({"n_images": 3})


@pytest.mark.parametrize(
    "prediction, observed, held",
    [
        ("blind", ["blind", "blind"], True),
        ("blind", ["blind", "leaks"], False),
        ("leaks", ["leaks", "leaks"], True),
        ("leaks", ["leaks", "blind"], False),
        ("may leak", ["blind", "leaks"], None),
    ],
)
def test_prediction_held(prediction, observed, held):
    assert (
        R.prediction_held(prediction, [R.Verdict(o, 0.0, 1) for o in observed]) is held
    )


# ---------------------------------------------------------------------------------------------
# The renderer, parsed back
# ---------------------------------------------------------------------------------------------


class _Cells(HTMLParser):
    """Rows of a table as lists of (tag, text, colspan); the caption apart."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str, str, int]]] = []
        self.caption = ""
        self.classes: list[str] = []
        self._cell: list | None = None
        self._in_caption = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.classes = (a.get("class") or "").split()
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = [tag, "", int(a.get("colspan", 1))]
        elif tag == "caption":
            self._in_caption = True
        elif tag == "br" and self._cell is not None:
            self._cell[1] += " "

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(
                (self._cell[0], " ".join(self._cell[1].split()), self._cell[2])
            )
            self._cell = None
        elif tag == "caption":
            self._in_caption = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data
        elif self._in_caption:
            self.caption += data


def _parse(html: str) -> _Cells:
    p = _Cells()
    p.feed(html)
    return p


def test_table_html_parsed_back_gives_the_table():
    df = R.table(RECORDS)
    parsed = _parse(R.table_html(df, stamp="profile: test"))
    assert "camwalls-wrap" in parsed.classes
    head1, head2, *body = parsed.rows
    # 2 models x 2 sets of mu columns, in the order the sets come
    assert [t for _, t, _ in head2] == ["STACK-MIX", "STACK-GEN"] * 2
    width = sum(span for _, _, span in head1)
    assert width == 2 + 4 + 4 and all(len(r) == width for r in body)
    by_name = {r[0][1]: [t for _, t, _ in r] for r in body}
    assert list(by_name) == ["GradCAM", "EigenCAM", "HiResCAM"]  # the registry's order
    g = by_name["GradCAM"]
    assert g[1] == "global"
    assert g[2:6] == [
        "0.200 \u00b1 0.050",
        "0.300 \u00b1 0.070",
        "0.350 \u00b1 0.100",
        "\u2013",
    ]
    paper, positive, zero, seconds = g[6:]
    assert paper == "about 0.227"
    assert positive == f"{(0.75 * 4 + 12) / 16:.0%}"  # images with mu > 0, both sets
    assert zero == f"{(0.1 + 0.2) / 2:.0%}" and float(seconds) == pytest.approx(
        1.5 + 1.0 + 0.5
    )
    h = by_name["HiResCAM"]
    assert (
        h[2:4] == ["0.000 \u00b1 0.000"] * 2 and h[6] == "exactly 0" and h[7] == "none"
    )  # exact: wall
    assert by_name["EigenCAM"][6] == "\u2013" and by_name["EigenCAM"][9] == "\u2013"
    geo = rvgg_geometry()
    assert f"rows {geo.first_unseen_row}..{geo.image_size - 1}" in parsed.caption
    assert f"{geo.uniform_mu:.3f}" in parsed.caption and parsed.caption.endswith(
        "profile: test"
    )


def test_table_html_orders_and_filters():
    df = R.table(RECORDS)
    by_mu = [r[0][1] for r in _parse(R.table_html(df, order="mu")).rows[2:]]
    walled = {m: R.mean_mu(df, m) for m in ("gradcam", "eigencam", "hirescam")}
    assert by_mu == [cams.METHODS[k].display for k in sorted(walled, key=walled.get)]
    glance = _parse(R.table_html(df, methods=list(R.PAPER), models=["walled"]))
    assert [r[0][1] for r in glance.rows[2:]] == ["GradCAM", "HiResCAM"]
    assert sum(span for _, _, span in glance.rows[0]) == 2 + 2 + 4
    with pytest.raises(ValueError, match="order"):
        R.table_html(df, order="alphabet")


def test_the_wrapping_class_wraps_in_the_books_css():
    css = (ROOT / "book" / "_static" / "camwalls.css").read_text()
    rules = re.findall(r"([^{}]*camwalls-wrap[^{}]*)\{([^}]*)\}", css)
    cells = [body for sel, body in rules if re.search(r"\btd\b", sel)]
    assert any("white-space: normal" in body for body in cells)
    assert any(
        "width: 100%" in body
        for sel, body in rules
        if not re.search(r"\b(td|th)\b", sel)
    )


def test_table_text_has_every_cell():
    df = R.table(RECORDS)
    text = R.table_text(df)
    lines = text.splitlines()
    assert lines[0].startswith("method") and len(lines) == 2 + 3
    gradcam = next(line for line in lines if line.startswith("GradCAM"))
    assert "0.200 +- 0.050 (0: 10%)" in gradcam and gradcam.rstrip().endswith("3.0")


# ---------------------------------------------------------------------------------------------
# The one HTML table writer
# ---------------------------------------------------------------------------------------------


def test_html_table_formats_and_escapes():
    out = R.html_table(
        [{"a": 0.12345, "b": "<x>", "c": float("nan"), "d": True}],
        [("a", "A"), ("b", "B&B"), ("c", "C"), ("d", "D")],
        caption="cap <1>",
        formats={"a": ".2f", "d": ".1f"},
    )
    assert out == (
        '<table class="camwalls-table"><caption>cap &lt;1&gt;</caption><thead><tr><th>A</th>'
        "<th>B&amp;B</th><th>C</th><th>D</th></tr></thead><tbody><tr><td>0.12</td><td>&lt;x&gt;</td>"
        "<td>&ndash;</td><td>True</td></tr></tbody></table>"
    )
    with pytest.raises(ValueError, match="columns"):
        R.html_table([], [])
    with pytest.raises(ValueError, match="columns"):
        R.html_table([])


def test_html_table_of_a_dataframe_with_html_cells_groups_styles_and_wrapping():
    df = pd.DataFrame(
        {
            "name": [R.Html("<b>x</b>"), "y"],
            "w|a": [1, pd.NA],
            "w|b": [2.5, 3.0],
            "n": ["", "z"],
        },
    ).astype({"w|a": "Int64"})
    out = R.html_table(
        df,
        [("name", "name"), ("w|a", "a"), ("w|b", "b"), ("n", R.Html("n&nbsp;1"))],
        caption=R.Html("mu&nbsp;&gt;&nbsp;0"),
        groups={"w|a": "walled", "w|b": "walled"},
        styles={"n": "white-space: normal"},
        formats={"w|b": ".1f"},
        wrap=True,
        scroll=True,
    )
    assert out == (
        '<div class="camwalls-scroll"><table class="camwalls-table camwalls-wrap">'
        "<caption>mu&nbsp;&gt;&nbsp;0</caption><thead>"
        '<tr><th rowspan="2">name</th><th colspan="2">walled</th><th rowspan="2">n&nbsp;1</th></tr>'
        "<tr><th>a</th><th>b</th></tr></thead><tbody>"
        "<tr><td><b>x</b></td><td>1</td><td>2.5</td><td style='white-space: normal'></td></tr>"
        "<tr><td>y</td><td>&ndash;</td><td>3.0</td><td style='white-space: normal'>z</td></tr>"
        "</tbody></table></div>"
    )
    # without columns: every key of the first row, each its own header
    assert R.html_table([{"k": 1, "v": "<"}]) == (
        '<table class="camwalls-table"><thead><tr><th>k</th><th>v</th></tr></thead>'
        "<tbody><tr><td>1</td><td>&lt;</td></tr></tbody></table>"
    )


def test_table_html_is_written_by_the_one_writer(monkeypatch):
    """Table 1 goes through html_table: one table writer in the library."""
    from helpers.results import render

    calls = []
    real = render.html_table
    monkeypatch.setattr(
        render, "html_table", lambda *a, **k: calls.append(k) or real(*a, **k)
    )
    R.table_html(R.table(RECORDS))
    assert len(calls) == 1 and calls[0]["wrap"] and calls[0]["scroll"]
