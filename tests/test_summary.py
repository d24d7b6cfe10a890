"""The results pages' helpers: the results table loaded from helpers.evaluate or its files,
the benchmark section (with and without files), the GPU session and the CPU runs."""

from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from helpers import results as R
from helpers import summary as S

RECORDS = [
    {
        "method": "GradCAM",
        "dataset": "STACK-MIX",
        "model": "walled",
        "mu_mean": 0.20,
        "mu_std": 0.05,
        "zero_fraction": 0.0,
        "seconds": 1.5,
    },
    {
        "method": "GradCAM",
        "dataset": "STACK-GEN",
        "model": "walled",
        "mu_mean": 0.30,
        "mu_std": 0.07,
        "zero_fraction": 0.0,
        "seconds": 1.0,
    },
    {
        "method": "GradCAM",
        "dataset": "STACK-MIX",
        "model": "baseline",
        "mu_mean": 0.35,
        "mu_std": 0.1,
    },
    {
        "method": "HiResCAM",
        "dataset": "STACK-MIX",
        "model": "walled",
        "mu_mean": 0.0,
        "mu_std": 0.0,
        "zero_fraction": 0.607,
        "seconds": 2.0,
    },
    {
        "method": "HiResCAM",
        "dataset": "STACK-GEN",
        "model": "walled",
        "mu_mean": 0.0,
        "mu_std": 0.0,
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


def test_load_table_reads_the_files_helpers_evaluate_writes(tmp_path: Path):
    path = tmp_path / "table1.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(RECORDS[0]))
        writer.writeheader()
        writer.writerows(RECORDS[:2])
    from_csv = S.load_table(path)
    assert from_csv["mu_mean"].tolist() == [0.2, 0.3] and from_csv[
        "seconds"
    ].tolist() == [1.5, 1.0]
    assert from_csv["method"].tolist() == ["gradcam", "gradcam"]  # registry keys
    jpath = tmp_path / "table1.json"
    jpath.write_text(json.dumps({"profile": "quick", "rows": RECORDS}))
    pd.testing.assert_frame_equal(S.load_table(jpath), R.table(RECORDS))
    pd.testing.assert_frame_equal(
        S.load_table(tmp_path), R.table(RECORDS)
    )  # the folder: its JSON
    with pytest.raises(FileNotFoundError, match="python -m helpers.evaluate"):
        S.load_table(tmp_path / "nope.csv")


def test_load_table_asks_helpers_evaluate(monkeypatch):
    fake = types.ModuleType("helpers.evaluate")
    calls = []

    def table1(profile=None):
        calls.append(profile)
        return RECORDS

    fake.table1 = table1
    monkeypatch.setattr(S, "evaluate", fake)
    pd.testing.assert_frame_equal(S.load_table(), R.table(RECORDS))
    pd.testing.assert_frame_equal(S.load_table(profile="quick"), R.table(RECORDS))
    assert calls == [None, "quick"]


def test_benchmarks_absent_say_no_gpu(tmp_path: Path):
    assert S.benchmark_records(tmp_path / "missing") == []
    (tmp_path / "empty").mkdir()
    assert S.benchmark_records(tmp_path / "empty") == []
    text = S.benchmark_html(tmp_path / "empty")
    assert "no GPU was available" in text and "python -m tools.benchmark" in text


def test_benchmarks_present_are_flattened_and_shown(tmp_path: Path):
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "h100.json").write_text(
        json.dumps(
            {
                "gpu_name": "NVIDIA H100",
                "train": {"images_per_s": 2500.5, "mfu": 0.41},
                "width": 1.0,
            }
        )
    )
    (folder / "notes.txt").write_text("ignored")
    recs = S.benchmark_records(folder)
    assert recs == [
        {
            "file": "h100.json",
            "gpu_name": "NVIDIA H100",
            "train.images_per_s": 2500.5,
            "train.mfu": 0.41,
            "width": 1.0,
        }
    ]
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


def test_gpu_session_rehearsal_and_its_section(tmp_path: Path, monkeypatch):
    """tools/gpu_session.py --tiny (its CPU rehearsal) writes what the results page reads."""
    import subprocess

    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CAMWALLS_BOOK_BUILD", "1")
    root = S.repo_root()
    out = tmp_path / "gpu"
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "tools" / "gpu_session.py"),
            "--out",
            str(out),
            "--tiny",
            "--skip",
            "benchmark,bench_cams",
            "--scratch",
            str(tmp_path / "scratch"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    session = S.gpu_session(out)
    assert set(session) == {"training", "evaluation"}
    ev = session["evaluation"]
    walled = session["training"]["training"]["walled"]
    assert walled["wall_rows"] == 9 and walled["images"] == 64
    # Table 1 proper: the paper's methods on the walled model, summed from the rows
    paper = {r["method"] for r in ev["rows"] if r["in_paper"]}
    assert set(ev["table1_methods"]) == paper and len(paper) == 8
    assert ev["table1_seconds"] == pytest.approx(
        sum(
            r["seconds"] for r in ev["rows"] if r["model"] == "walled" and r["in_paper"]
        )
    )
    # the structural zeros hold at any width
    for r in ev["rows"]:
        if r["model"] == "walled" and r["method"] in ("hirescam", "layercam"):
            assert r["mu_mean"] == 0.0 and r["mu_max"] == 0.0  # exact: wall
    text = S.gpu_session_html(out)
    assert (
        f"{ev['total_seconds']:.1f} s" in text
        and f"{ev['table1_seconds']:.1f} s" in text
    )
    gradcam = next(
        r for r in ev["rows"] if r["model"] == "walled" and r["method"] == "gradcam"
    )
    assert f"{gradcam['mu_mean']:.3f}" in text
    assert "No GPU session results" in S.gpu_session_html(tmp_path / "none")
    (out / "training.json").write_text("{broken")
    with pytest.raises(ValueError, match="training.json is not valid JSON"):
        S.gpu_session(out)


def test_benchmark_files_of_tools_benchmark_make_one_compact_table(tmp_path: Path):
    from tools import benchmark as B

    folder = tmp_path / "benchmarks"
    res = {
        "device": "NVIDIA H100 80GB HBM3",
        "date": "2026-11-27T10:00:00+00:00",
        "torch": "2.11",
        "precision": "bfloat16",
        "batch_size": 256,
        "compile": False,
        "train_images_per_s": 4000.0,
        "inference_images_per_s": 12000.0,
        "peak_tflops": 989.0,
    }
    res["train_mfu"] = (
        3 * 30.97e9 * 4000.0 / 1e12 / 989.0
    )  # what tools.benchmark computes
    res["inference_mfu"] = 30.97e9 * 12000.0 / 1e12 / 989.0
    B.save_result(res, folder)
    text = S.benchmark_html(folder)
    assert text.count("<table") == 1 and "NVIDIA H100 80GB HBM3: 989 TFLOP/s" in text
    assert (
        f"{100 * res['train_mfu']:.1f}%" in text
        and "4000.0" in text
        and "37.6%" in text
    )


def test_cpu_runs_reads_what_helpers_train_writes(tmp_path: Path, monkeypatch):
    """A --summary-json file of helpers.train is read back by cpu_runs, keyed by model; bad
    files are refused with the file's name; no folder means no runs."""
    from helpers import train as T

    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    folder = tmp_path / "cpu"
    assert (
        T.main(
            [
                "--profile",
                "quick",
                "--width",
                "1/32",
                "--epochs",
                "1",
                "--train-images",
                "4",
                "--batch-size",
                "4",
                "--val-images",
                "2",
                "--no-progress",
                "--set",
                "position_images=2",
                "--summary-json",
                str(folder / "tiny.json"),
            ]
        )
        == 0
    )
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


def test_a_gpu_run_tied_to_the_end_is_not_presented_as_rvgg(tmp_path):
    """384 steps (24576 images in batches of 64) with tie_steps=400: tied to the end; a run with a
    tie fraction of 0.5 is not (the old GPU session's numbers, written by hand)."""

    def run(**train):
        return {
            "images": 24576,
            "width": 1.0,
            "seconds": 1.0,
            "train": {"batch_size": 64, **train},
        }

    session = {
        "training": {
            "training": {
                "walled": run(tie_steps=400),
                "baseline": run(tie_fraction=0.5),
            }
        }
    }
    assert S.tied_runs(session) == {"walled": (384, 384)}
    note = S.gpu_caveat_html(session)
    assert "Not a trained rVGG" in note and "walled (384 of 384 steps tied)" in note
    assert (
        S.gpu_caveat_html({"training": {"training": {"b": run(tie_fraction=0.5)}}})
        == ""
    )
    (tmp_path / "training.json").write_text(json.dumps(session["training"]))
    assert "Not a trained rVGG" in S.gpu_session_html(tmp_path)


def test_models_note_says_which_models_a_page_used(tmp_path, monkeypatch):
    """The shipped models, read by the real path (an empty cache, CAMWALLS_PRETRAINED=1); then
    the trained and mixed cases, with the training call replaced by its record."""
    from helpers.train import pretrained as P

    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(P.PRETRAINED_ENV, "1")
    monkeypatch.delenv("CAMWALLS_BOOK_BUILD", raising=False)
    note = S.models_note("quick")
    assert "shipped with helpers" in note and "CAMWALLS_PRETRAINED=0" in note
    assert "$CAMWALLS_HOME/checkpoints/quick/rvgg-walled-" in note
    assert str(tmp_path) not in note  # no machine path

    def fake(sources):
        def train_or_load(profile, walled, device):
            kind = "walled" if walled else "baseline"
            return None, {
                "source": sources[kind],
                "train_seconds": 300.0 if walled else 420.0,
                "checkpoint": str(tmp_path / "home" / f"{kind}.pt"),
            }

        return train_or_load

    monkeypatch.setattr(
        S.T, "train_or_load", fake(dict(walled="trained", baseline="trained"))
    )
    note = S.models_note("quick")
    assert "trained from scratch on this machine (7.0 min" in note  # 420 s: the slower
    assert "shipped" not in note
    monkeypatch.setenv("CAMWALLS_BOOK_BUILD", "1")
    assert "on the machine that built this page" in S.models_note("quick")
    monkeypatch.setattr(
        S.T, "train_or_load", fake(dict(walled="trained", baseline="pretrained"))
    )
    assert S.models_note("quick").endswith("; the baseline model shipped with helpers.")


def test_the_recorded_quick_run_is_of_the_current_recipe():
    """results/cpu/quick.json (chapter 04's recorded run) holds the two models of the current
    quick recipe, each above 90% on objects above the wall."""
    from helpers.train import config_key, training_config

    rec = S.cpu_runs()["quick"]
    for kind, walled in (("walled", True), ("baseline", False)):
        run = rec["runs"][kind]
        assert run["key"] == config_key(training_config("quick", walled=walled)), (
            f"The quick recipe changed since results/cpu/quick.json was written; rerun: "
            f"{rec['command']}"
        )
        assert run["position_accuracy"]["above"] >= 0.9, kind
