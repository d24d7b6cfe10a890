"""helpers.bench_cams: the library's maps against ours, timed; what counts as a failure."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import bench_cams as B
from helpers.models import rvgg


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))


def test_benchmark_rows_agree_with_the_library_and_time_both():
    torch.manual_seed(0)
    model = rvgg(num_classes=10, width=1 / 32).eval()
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    rows = B.benchmark(model, images, ["ablationcam", "gradient family"], repeat=1, batch_size=2, chunk=16)
    assert [r["case"] for r in rows] == ["ablationcam", "gradient family"]
    for r in rows:
        assert r["speedup"] == pytest.approx(r["library_s"] / r["ours_s"])
        assert set(r["per_method"]) == set(r["methods"]) == set(r["images_differing"])
        assert r["max_abs_diff"] == max(r["per_method"].values())
        assert r["max_abs_diff_exact"] <= B.TOLERANCE
    assert B.failures(rows) == []
    with pytest.raises(ValueError, match="Unknown benchmark case"):
        B.benchmark(model, images, ["gradcam"])


def test_failures_leave_out_only_the_principal_direction_methods():
    row = {"per_method": {"gradcam": 0.0, "eigengradcam": 1.0, "hirescam": 2e-4}}
    assert B.failures([row]) == ["hirescam"]
    row["per_method"]["hirescam"] = 0.0
    assert B.failures([row]) == []


def test_command_writes_its_json(capsys):
    assert B.main(["--model", "random", "--images", "1", "--cases", "ablationcam", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "ablationcam" in out and "written to" in out
    path = out.strip().splitlines()[-1].split("written to ")[-1]
    saved = json.loads(open(path).read())
    assert saved["rows"][0]["case"] == "ablationcam" and saved["model"] == "random init"
