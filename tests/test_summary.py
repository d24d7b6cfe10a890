"""The results summary: records in every accepted shape, the paper's numbers beside ours,
the benchmark section (with and without files), and clear errors for bad records."""

from __future__ import annotations

import csv
import json
import math
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

import helpers
from helpers import summary as S

RECORDS = [
    {"method": "GradCAM", "dataset": "STACK-MIX", "model": "walled", "mu_mean": 0.20, "mu_std": 0.05,
     "zero_fraction": 0.0, "seconds": 1.5},
    {"method": "GradCAM", "dataset": "STACK-GEN", "model": "walled", "mu_mean": 0.30, "mu_std": 0.07,
     "zero_fraction": 0.0, "seconds": 1.0},
    {"method": "GradCAM", "dataset": "STACK-MIX", "model": "baseline", "mu_mean": 0.35, "mu_std": 0.1},
    {"method": "HiResCAM", "dataset": "STACK-MIX", "model": "walled", "mu_mean": 0.0, "mu_std": 0.0,
     "zero_fraction": 0.607, "seconds": 2.0},
    {"method": "HiResCAM", "dataset": "STACK-GEN", "model": "walled", "mu_mean": 0.0, "mu_std": 0.0,
     "zero_fraction": 0.62, "seconds": 2.0},
    {"method": "EigenCAM", "dataset": "STACK-MIX", "model": "walled", "mu_mean": 0.41, "mu_std": 0.02},
]


def test_uniform_map_value_is_the_square_root_of_the_unseen_share():
    # A uniform 224x224 map: norm over rows 170..223 divided by the whole norm, by hand.
    assert S.UNIFORM_MU == pytest.approx(math.sqrt(54 * 224) / math.sqrt(224 * 224))
    assert S.UNIFORM_MU == pytest.approx(0.491, abs=1e-3)


def test_headline_averages_over_stack_sets_and_quotes_the_paper():
    rows = S.normalize_records(RECORDS)
    heads = {h["method"]: h for h in S.headline(rows)}
    assert heads["GradCAM"]["ours"] == pytest.approx((0.20 + 0.30) / 2)
    assert heads["GradCAM"]["per_dataset"] == {"STACK-MIX": 0.20, "STACK-GEN": 0.30}
    assert heads["GradCAM"]["paper"] == 0.227
    assert heads["HiResCAM"]["ours"] == 0.0 and heads["HiResCAM"]["paper"] == 0.0  # exact: wall
    html = S.headline_html(rows, stamp="profile: quick (cpu)")
    assert "0.250" in html and "0.227" in html and "profile: quick (cpu)" in html
    assert html.count("<tr>") == 3  # header + two known paper numbers


def test_headline_of_a_missing_method_is_nan_not_an_error():
    rows = S.normalize_records([RECORDS[-1]])
    heads = {h["method"]: h for h in S.headline(rows)}
    assert math.isnan(heads["GradCAM"]["ours"])
    assert "n/a" in S.headline_html(rows)


def test_results_table_sorts_by_walled_mu_and_shows_every_cell():
    html = S.results_table_html(S.normalize_records(RECORDS))
    order = [html.index(f"<tr><td>{m}</td>") for m in ("HiResCAM", "GradCAM", "EigenCAM")]
    assert order == sorted(order)  # walled mu 0 < 0.25 < 0.41
    assert "0.200<br><small>&plusmn;&nbsp;0.050</small>" in html and "0.350<br><small>&plusmn;&nbsp;0.100</small>" in html
    eigen = html[html.index("<tr><td>EigenCAM</td>"):]
    assert eigen.split("</tr>")[0].count("&ndash;") == 4  # no STACK-GEN cells, no baseline, no paper value
    hires_zero = (0.607 + 0.62) / 2
    assert f"{hires_zero:.3f}" in html
    assert ">2.5<" in html and ">4.0<" in html  # seconds: GradCAM 1.5 + 1.0, HiResCAM 2.0 + 2.0


def test_records_in_other_shapes_and_spellings(tmp_path: Path):
    @dataclass
    class Rec:
        method: str
        stack: str
        walled: bool
        mu: float
        std_mu: float

    from_dc = S.normalize_records([Rec("GradCAM", "STACK-MIX", True, 0.2, 0.01),
                                   Rec("GradCAM", "STACK-MIX", False, 0.3, 0.02)])
    assert [(r.model, r.mu_mean, r.mu_std) for r in from_dc] == [("walled", 0.2, 0.01), ("baseline", 0.3, 0.02)]

    path = tmp_path / "table1.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(RECORDS[0]))
        writer.writeheader()
        writer.writerows(RECORDS[:2])
    from_csv = S.normalize_records(path)
    assert [r.mu_mean for r in from_csv] == [0.2, 0.3] and from_csv[0].seconds == 1.5

    jpath = tmp_path / "table1.json"
    jpath.write_text(json.dumps({"profile": "quick", "rows": RECORDS}))
    assert S.normalize_records(jpath) == S.normalize_records(RECORDS)
    assert S.load_table(jpath) == S.normalize_records(RECORDS)


def test_load_table_asks_helpers_evaluate(monkeypatch):
    fake = types.ModuleType("helpers.evaluate")
    calls = []

    def table1(profile=None):
        calls.append(profile)
        return RECORDS

    fake.table1 = table1
    monkeypatch.setitem(sys.modules, "helpers.evaluate", fake)
    monkeypatch.setattr(helpers, "evaluate", fake, raising=False)
    assert S.load_table() == S.normalize_records(RECORDS)
    assert S.load_table(profile="quick") == S.normalize_records(RECORDS)
    assert calls == [None, "quick"]


@pytest.mark.parametrize("record, message", [
    ({"method": "GradCAM", "dataset": "STACK-MIX", "mu_mean": 0.2}, "lacks \\['model'\\]"),
    ({"method": "GradCAM", "dataset": "STACK-MIX", "model": "walled", "mu_mean": 1.7}, "in \\[0, 1\\]"),
    ({"method": "GradCAM", "dataset": "STACK-MIX", "model": "walled", "mu_mean": "high"}, "not a number"),
])
def test_bad_records_are_refused_with_a_reason(record, message):
    with pytest.raises(ValueError, match=message):
        S.normalize_records([record])


def test_empty_table_and_missing_file_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="empty"):
        S.normalize_records([])
    with pytest.raises(FileNotFoundError, match="python -m helpers.evaluate"):
        S.normalize_records(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="'rows'"):
        S.normalize_records({"something": 1})


def test_benchmarks_absent_say_no_gpu(tmp_path: Path):
    assert S.benchmark_records(tmp_path / "missing") == []
    (tmp_path / "empty").mkdir()
    assert S.benchmark_records(tmp_path / "empty") == []
    text = S.benchmark_html(tmp_path / "empty")
    assert "no GPU was available" in text and "python -m helpers.benchmark" in text


def test_benchmarks_present_are_flattened_and_shown(tmp_path: Path):
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "h100.json").write_text(json.dumps(
        {"gpu_name": "NVIDIA H100", "train": {"images_per_s": 2500.5, "mfu": 0.41}, "width": 1.0}))
    (folder / "notes.txt").write_text("ignored")
    recs = S.benchmark_records(folder)
    assert recs == [{"file": "h100.json", "gpu_name": "NVIDIA H100", "train.images_per_s": 2500.5,
                     "train.mfu": 0.41, "width": 1.0}]
    html = S.benchmark_html(folder)
    assert "measured on NVIDIA H100" in html and "train.mfu" in html and "2500" in html
    (folder / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        S.benchmark_records(folder)


def test_repo_root_finds_the_checkout_and_benchmark_dir(tmp_path: Path):
    root = S.repo_root()
    assert root is not None and (root / "_config.yml").is_file()
    assert S.benchmark_dir(root) == root / "results" / "benchmarks"
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "_config.yml").write_text("title: x\n")
    (tmp_path / "helpers").mkdir()
    assert S.repo_root(tmp_path / "a" / "b") == tmp_path


def test_run_stamp_names_profile_and_device(monkeypatch):
    monkeypatch.setenv("CAMWALLS_PROFILE", "quick")
    monkeypatch.setenv("CAMWALLS_DEVICE", "cpu")
    stamp = S.run_stamp()
    assert stamp.startswith("profile quick (") and " on cpu (" in stamp


def test_rows_of_helpers_evaluate_use_display_names_and_match_the_registry():
    # The shape of helpers.evaluate's rows: a registry key under "method", the name under "display".
    rows = S.normalize_records([
        {"method": "gradcampp", "display": "GradCAM++", "dataset": "STACK-MIX", "model": "walled", "mu_mean": 0.3},
        {"method": "gradcam", "display": "GradCAM", "dataset": "STACK-MIX", "model": "walled", "mu_mean": 0.2},
    ])
    assert [r.method for r in rows] == ["GradCAM++", "GradCAM"]
    assert [r.mu_mean for r in S.find_row(rows, "gradcam")] == [0.2]  # not confused with GradCAM++
    assert [r.mu_mean for r in S.find_row(rows, "gradcampp")] == [0.3]


def test_gpu_session_rehearsal_and_its_section(tmp_path: Path, monkeypatch):
    """tools/gpu_session.py --tiny (its CPU rehearsal) writes what the results page reads."""
    import subprocess

    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CAMWALLS_BOOK_BUILD", "1")
    root = S.repo_root()
    out = tmp_path / "gpu"
    proc = subprocess.run([sys.executable, str(root / "tools" / "gpu_session.py"), "--out", str(out), "--tiny",
                           "--skip", "benchmark,bench_cams", "--scratch", str(tmp_path / "scratch")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    session = S.gpu_session(out)
    assert set(session) == {"training", "evaluation"}
    ev = session["evaluation"]
    walled = session["training"]["training"]["walled"]
    assert walled["wall_rows"] == 9 and walled["images"] == 64
    # Table 1 proper: the paper's methods on the walled model, summed from the rows
    paper = {r["method"] for r in ev["rows"] if r["in_paper"]}
    assert set(ev["table1_methods"]) == paper and len(paper) == 8
    assert ev["table1_seconds"] == pytest.approx(sum(r["seconds"] for r in ev["rows"]
                                                     if r["model"] == "walled" and r["in_paper"]))
    # the structural zeros hold at any width
    for r in ev["rows"]:
        if r["model"] == "walled" and r["method"] in ("hirescam", "layercam"):
            assert r["mu_mean"] == 0.0 and r["mu_max"] == 0.0  # exact: wall
    text = S.gpu_session_html(out)
    assert f"{ev['total_seconds']:.1f} s" in text and f"{ev['table1_seconds']:.1f} s" in text
    gradcam = next(r for r in ev["rows"] if r["model"] == "walled" and r["method"] == "gradcam")
    assert f"{gradcam['mu_mean']:.3f}" in text
    assert "No GPU session results" in S.gpu_session_html(tmp_path / "none")
    (out / "training.json").write_text("{broken")
    with pytest.raises(ValueError, match="training.json is not valid JSON"):
        S.gpu_session(out)


def test_benchmark_files_of_helpers_benchmark_make_one_compact_table(tmp_path: Path):
    from helpers import benchmark as B

    folder = tmp_path / "benchmarks"
    res = {"device": "NVIDIA H100 80GB HBM3", "date": "2026-11-27T10:00:00+00:00", "torch": "2.11",
           "precision": "bfloat16", "batch_size": 256, "compile": False, "train_images_per_s": 4000.0,
           "inference_images_per_s": 12000.0, "peak_tflops": 989.0}
    res["train_mfu"] = 3 * 30.97e9 * 4000.0 / 1e12 / 989.0  # what helpers.benchmark computes
    res["inference_mfu"] = 30.97e9 * 12000.0 / 1e12 / 989.0
    B.save_result(res, folder)
    text = S.benchmark_html(folder)
    assert text.count("<table") == 1 and "NVIDIA H100 80GB HBM3: 989 TFLOP/s" in text
    assert f"{100 * res['train_mfu']:.1f}%" in text and "4000.0" in text and "37.6%" in text


def test_cpu_runs_reads_what_helpers_train_writes(tmp_path: Path, monkeypatch):
    """A --summary-json file of helpers.train is read back by cpu_runs, keyed by model; bad
    files are refused with the file's name; no folder means no runs."""
    from helpers import train as T

    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    folder = tmp_path / "cpu"
    assert T.main(["--profile", "quick", "--width", "1/32", "--epochs", "1", "--train-images", "4",
                   "--batch-size", "4", "--val-images", "2", "--no-progress", "--set", "position_images=2",
                   "--summary-json", str(folder / "tiny.json")]) == 0
    runs = S.cpu_runs(folder)
    assert list(runs) == ["tiny"]
    assert set(runs["tiny"]["runs"]) == {"walled", "baseline"}
    walled = runs["tiny"]["runs"]["walled"]
    assert walled["config"]["wall_rows"] == 9 and walled["epochs_done"] == 1
    assert set(walled["position_accuracy"]) == {"above", "straddle", "below"}
    assert S.cpu_runs(tmp_path / "missing") == {}
    (folder / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        S.cpu_runs(folder)
    (folder / "broken.json").write_text('{"date": "x"}')
    with pytest.raises(ValueError, match="no 'runs' list"):
        S.cpu_runs(folder)
