"""helpers.train.ablation: each run differs from the quick recipe in exactly the settings it
names; the command trains the runs, writes them with the command, and reads them back from the
cache at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.train import ablation as A
from helpers.train import config_differences, config_key, training_config

TINY = {
    "epochs": 1,
    "train_images": 32,
    "val_images": 16,
    "position_images": 8,
    "width": 1 / 32,
}


def test_every_run_takes_back_exactly_the_settings_it_names():
    configs = A.ablation_configs("quick")
    recipe = training_config("quick", walled=True)
    assert configs["quick recipe"] == recipe
    for name, config in configs.items():
        assert config["wall_rows"] == recipe["wall_rows"] > 0  # exact: integer
        diffs = {line.split(":")[0] for line in config_differences(recipe, config)}
        assert diffs == {
            f"train.{k}"
            for k, v in A.ABLATIONS[name]["changes"].items()
            if recipe["train"][k] != v
        }, name
    # the quick recipe really has the aids the runs take back
    assert (
        recipe["train"]["tie_fraction"] == 0
        and recipe["train"]["weight_standardization"]
    )  # exact: exact-float
    assert (
        recipe["train"]["init"] == "pooled" and recipe["train"]["optimizer"] == "adam"
    )


def test_a_run_that_changes_nothing_is_refused(monkeypatch):
    monkeypatch.setitem(
        A.ABLATIONS, "no-op", {"changes": {"tie_fraction": 0.0}, "why": ""}
    )
    with pytest.raises(ValueError, match="no-op"):
        A.ablation_configs("quick")


def test_the_command_writes_every_run_and_reads_them_back_from_the_cache(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(
        A, "ABLATIONS", {k: A.ABLATIONS[k] for k in ("quick recipe", "position tie")}
    )
    out = tmp_path / "ablation.json"
    args = ["--out", str(out), "--processes", "2"] + [
        f"--set={k}={json.dumps(v)}" for k, v in TINY.items()
    ]
    assert A.main(args) == 0
    first = json.loads(out.read_text())
    assert first["command"].startswith("python -m helpers.train.ablation --out")
    assert [r["name"] for r in first["runs"]] == ["quick recipe", "position tie"]
    for run in first["runs"]:
        assert set(run["position_accuracy"]) == {"above", "straddle", "below"}
        assert all(0.0 <= v <= 1.0 for v in run["position_accuracy"].values())
        assert run["steps"] == 32 // 16  # exact: integer
    assert first["runs"][0]["key"] != first["runs"][1]["key"]
    assert A.main(args) == 0
    again = json.loads(out.read_text())
    assert all(r["from_cache"] for r in again["runs"])
    assert [r["position_accuracy"] for r in again["runs"]] == [
        r["position_accuracy"] for r in first["runs"]
    ]  # exact: repeat


def test_the_recorded_study_is_of_the_current_recipe():
    """results/cpu/ablation/ablation.json (what chapter 04 shows) was written for the current
    quick recipe: each run's configuration key is the one its command would train now."""
    root = Path(__file__).resolve().parent.parent
    study = json.loads(
        (root / "results" / "cpu" / "ablation" / "ablation.json").read_text()
    )
    configs = A.ablation_configs("quick", **study["overrides"])
    now = {name: config_key(cfg) for name, cfg in configs.items()}
    recorded = {run["name"]: run["key"] for run in study["runs"]}
    assert recorded == now, (
        "The quick recipe changed since results/cpu/ablation/ablation.json was written; "
        f"rerun: {study['command']}"
    )
