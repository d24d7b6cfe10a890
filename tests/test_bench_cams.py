"""helpers.cams.reference (the library's maps against ours, timed; what counts as a failure)
and its command, tools.bench_cams."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import cams
from helpers.cams import reference as B
from helpers.models import rvgg
from tools import bench_cams


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))


def test_benchmark_rows_agree_with_the_library_and_time_both():
    torch.manual_seed(0)
    model = rvgg(num_classes=10, width=1 / 32).eval()
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    rows = B.benchmark(
        model,
        images,
        ["ablationcam", "gradient family", "fullgrad"],
        repeat=1,
        batch_size=2,
        chunk=16,
    )
    assert [r["case"] for r in rows] == ["ablationcam", "gradient family", "fullgrad"]
    for r in rows:
        assert r["speedup"] == pytest.approx(r["library_s"] / r["ours_s"])
        assert (
            set(r["per_method"])
            == set(r["methods"])
            == set(r["images_differing"])
            == set(r["images_sign_flipped"])
        )
        assert r["max_abs_diff"] == max(r["per_method"].values()) <= B.TOLERANCE
    # the library against itself in the other memory layout: measured, a number >= 0
    assert rows[2]["fullgrad_layout_spread"] >= 0
    assert B.failures(rows) == []
    with pytest.raises(ValueError, match="Unknown benchmark case"):
        B.benchmark(model, images, ["gradcam"])


def test_failures_are_the_methods_over_the_tolerance():
    row = {"per_method": {"gradcam": 0.0, "eigengradcam": 1.0, "hirescam": 2e-4}}
    assert B.failures([row]) == ["eigengradcam", "hirescam"]
    row["per_method"].update(hirescam=0.0, eigengradcam=B.TOLERANCE)
    assert B.failures([row]) == []


def test_principal_directions_are_compared_up_to_their_sign():
    """The library's map built by hand from the opposite projection: the comparison takes our
    map with the other sign and finds no difference; GradCAM gets no such allowance."""
    torch.manual_seed(0)
    model = rvgg(num_classes=10, width=1 / 32).eval()
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    res = cams.compute_cams(model, images, ["eigencam", "gradcam"])
    eig = res["eigencam"]
    opposite = cams.postprocess(-eig.signed, "eigencam", (224, 224))["scaled"]
    assert np.abs(opposite - eig.scaled).max() > 0.1  # the other sign is another map
    library = np.stack(
        [eig.scaled[0], opposite[1]]
    )  # image 1 "computed" with the other sign
    d, flipped = B.map_differences(library, eig)
    assert d.max() <= 1e-6 and flipped.tolist() == [False, True]
    g = res["gradcam"]
    other = cams.postprocess(-g.signed, "gradcam", (224, 224))["scaled"]
    d, flipped = B.map_differences(other, g)
    assert (d > 0.1).all() and not flipped.any()


def test_command_writes_its_json(capsys):
    assert (
        bench_cams.main(
            [
                "--model",
                "random",
                "--images",
                "1",
                "--cases",
                "ablationcam",
                "--repeat",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "ablationcam" in out and "written to" in out
    path = out.strip().splitlines()[-1].split("written to ")[-1]
    saved = json.loads(open(path).read())
    assert saved["rows"][0]["case"] == "ablationcam" and saved["model"] == "random init"
