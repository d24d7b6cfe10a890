"""helpers.train.pretrained: the quick models shipped with helpers match the current quick recipe
(else this test names the commands that regenerate them), load in place of training, are refused
when broken or of another configuration, and export again to the very same files."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from helpers.config import CheckpointError
from helpers.models import rvgg
from helpers.train import pretrained as P
from helpers.train import ship, train_or_load, training_config


def test_the_shipped_models_match_the_quick_recipe():
    stale = P.stale_models()
    assert not stale, (
        "The quick recipe changed but the shipped models did not: regenerate them with\n  "
        + P.REGENERATE
        + "\nDifferences:\n  "
        + "\n  ".join(stale)
    )
    for kind, entry in P.manifest()["models"].items():
        path = P.PRETRAINED_DIR / entry["file"]
        assert path.stat().st_size == entry["bytes"] < 4_000_000  # exact: integer
        assert P._sha256(path) == entry["sha256"], kind
        assert set(entry["position_accuracy"]) == {"above", "straddle", "below"}
    assert ship.main(["--check"]) == 0


@pytest.fixture()
def shipped_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(P.PRETRAINED_ENV, "1")
    return tmp_path


def test_a_fresh_cache_loads_the_shipped_models_instead_of_training(shipped_home):
    for walled in (True, False):
        model, info = train_or_load("quick", walled=walled, device="cpu")
        assert (
            info["source"] == "pretrained" and info["complete"] and info["from_cache"]
        )
        kind = "walled" if walled else "baseline"
        entry = P.manifest()["models"][kind]
        assert (
            info["position_accuracy"] == entry["position_accuracy"]
        )  # exact: repeat (read back)
        # the same weights loaded by hand into a freshly built rVGG give the same logits
        state = torch.load(P.PRETRAINED_DIR / entry["file"], weights_only=True)["model"]
        config = training_config("quick", walled=walled)
        fresh = rvgg(
            num_classes=10,
            width=config["width"],
            wall_rows=config["wall_rows"],
            dropout=0.0,
        ).eval()
        fresh.load_state_dict({k: v.float() for k, v in state.items()})
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            a, b = model(x), fresh(x)
        assert float((a - b).abs().max()) <= 1e-5 * float(a.abs().max())


def test_the_shipped_models_are_not_used_when_switched_off_or_of_another_configuration(
    shipped_home, monkeypatch
):
    assert (
        P.pretrained_checkpoint(training_config("quick", walled=True, epochs=3)) is None
    )
    assert P.pretrained_checkpoint(training_config("quick", walled=True)) is not None
    monkeypatch.setenv(P.PRETRAINED_ENV, "0")
    assert not P.use_pretrained()
    from helpers.train import install_shipped

    assert not install_shipped(training_config("quick", walled=True))


def test_a_broken_shipped_file_is_refused_with_the_regenerating_command(tmp_path):
    folder = tmp_path / "pretrained"
    shutil.copytree(P.PRETRAINED_DIR, folder)
    path = folder / "rvgg-walled.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(
        CheckpointError,
        match="does not match its manifest.*helpers.train.ship --export",
    ):
        P.pretrained_checkpoint(training_config("quick", walled=True), folder)


def test_exporting_the_loaded_models_gives_the_same_weights(shipped_home):
    for walled in (True, False):
        train_or_load(
            "quick", walled=walled, device="cpu"
        )  # the shipped models, now in the cache
    out = shipped_home / "again"
    result = P.export_pretrained(folder=out)
    before = P.manifest()["models"]
    for kind, entry in result["models"].items():
        assert entry["key"] == before[kind]["key"]
        a = torch.load(out / entry["file"], weights_only=True)["model"]
        b = torch.load(P.PRETRAINED_DIR / before[kind]["file"], weights_only=True)[
            "model"
        ]
        assert a.keys() == b.keys() and all(
            torch.equal(a[k], b[k]) for k in a
        )  # exact: exact-float (fp16 round trip)
    assert json.loads((out / "manifest.json").read_text())["models"].keys() == {
        "walled",
        "baseline",
    }
