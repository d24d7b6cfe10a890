"""Tests of tools.benchmark (the --tiny CPU configuration; no timing is asserted), and of what the
book reads of its files (helpers.summary)."""

from __future__ import annotations

import json

import pytest

from helpers import summary as S
from helpers.models import rvgg_forward_flops
from tools import benchmark as B


def test_peak_table_by_device_name():
    assert B.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert B.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert B.peak_tflops("NVIDIA H200") == 989.0
    assert B.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert B.peak_tflops("Some Unknown Card") is None


def test_tiny_run_writes_a_consistent_result(tmp_path):
    assert B.main(["--tiny", "--out", str(tmp_path)]) == 0
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    res = json.loads(files[0].read_text())
    assert res["tiny"] is True and res["device_type"] == "cpu" and res["torch"]
    # the FLOP accounting, recomputed by hand: 3 x forward FLOPs per training image
    fwd = rvgg_forward_flops(1 / 32, 10)
    assert res["forward_gflops_per_image"] == pytest.approx(fwd / 1e9)
    assert res["train_tflops"] == pytest.approx(
        3 * fwd * res["train_images_per_s"] / 1e12
    )
    assert res["inference_tflops"] == pytest.approx(
        fwd * res["inference_images_per_s"] / 1e12
    )
    assert res["train_mfu"] is None  # no known peak for a CPU
    # the book's reader leaves tiny runs out unless asked
    assert S.read_results(tmp_path) == []
    assert len(S.read_results(tmp_path, include_tiny=True)) == 1


def test_mfu_uses_the_given_peak():
    res = B.benchmark(
        width=1 / 32,
        batch_size=1,
        steps=1,
        warmup=0,
        device="cpu",
        num_classes=10,
        peak=1.0,
    )
    assert res["train_mfu"] == pytest.approx(res["train_tflops"] / 1.0)


def test_bad_settings():
    with pytest.raises(ValueError, match="steps"):
        B.benchmark(steps=0, device="cpu")


def test_results_table(tmp_path):
    r = {
        "device": "NVIDIA H100",
        "date": "2026-01-01T00:00:00+00:00",
        "torch": "2.x",
        "precision": "bfloat16",
        "batch_size": 128,
        "compile": False,
        "train_images_per_s": 1000.0,
        "train_mfu": 0.5,
        "inference_images_per_s": 3000.0,
        "inference_mfu": 0.4,
    }
    B.save_result(r, tmp_path)
    B.save_result(dict(r, date="2026-02-01T00:00:00+00:00", train_mfu=None), tmp_path)
    (tmp_path / "other.json").write_text(
        json.dumps({"gpu_name": "x", "width": 1.0})
    )  # not a throughput run
    rows = S.results_table(S.read_results(tmp_path))
    assert [row["date"] for row in rows] == ["2026-02-01", "2026-01-01"]  # newest first
    assert (
        rows[1]["train MFU"] == "50.0%"
        and rows[1]["device"] == "NVIDIA H100"
        and rows[0]["train MFU"] == "n/a"
    )
    md = S.markdown_table(rows)
    assert md.splitlines()[0].startswith("| device |") and "50.0%" in md.splitlines()[3]
    assert S.markdown_table([]) == ""
    (tmp_path / "broken.json").write_text(
        "{not json"
    )  # the one reader refuses it, naming it
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        S.read_results(tmp_path)
