"""Tests of python -m helpers.train (helpers.train.cli): help, a run with its summary JSON, usage
and writing errors."""

from __future__ import annotations

import json

import pytest

from helpers import train as T
from tests.train_support import private_cache  # noqa: F401 (a fixture)


def test_cli_help_and_run(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        T.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--walled" in text and "--profile" in text and "--wall-rows" in text
    assert (
        T.main(
            [
                "--profile",
                "quick",
                "--baseline",
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
                "--checkpoint",
                str(tmp_path / "cli.pt"),
                "--summary-json",
                str(tmp_path / "r" / "s.json"),
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-2])
    assert summary["complete"] and summary["walled"] is False
    assert lines[-1] == f"summary written to {tmp_path / 'r' / 's.json'}"
    written = json.loads((tmp_path / "r" / "s.json").read_text())
    assert written["command"].startswith(
        "python -m helpers.train --profile quick --baseline"
    )
    assert written["machine"]["cpu_count"] >= 1 and written["date"].endswith("Z")
    (run,) = written["runs"]
    assert run["position_accuracy"] == summary["position_accuracy"]
    assert [h["epoch"] for h in run["history"]] == [1] and run["config"]["train"][
        "epochs"
    ] == 1
    assert run["key"] == T.config_key(run["config"])
    with pytest.raises(SystemExit):
        T.main(["--baseline", "--wall-rows", "3"])


def test_cli_summary_json_that_cannot_be_written_fails_before_training(
    tmp_path, capsys
):
    blocker = tmp_path / "afile.txt"
    blocker.write_text("x")
    ckpt = tmp_path / "cli.pt"
    code = T.main(
        [
            "--profile",
            "quick",
            "--baseline",
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
            "--checkpoint",
            str(ckpt),
            "--summary-json",
            str(blocker / "s.json"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and not ckpt.exists()
    assert err.startswith("error: The folder of --summary-json") and str(blocker) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_both_models_train_together_and_a_second_call_returns_at_once_from_the_cache(
    tmp_path,
):
    # both models on a CPU: train_both (two processes); the second call reads the cache, writes the
    # same position accuracies, and trains nothing (far faster than the first)
    import time

    args = [
        "--profile",
        "quick",
        "--width",
        "1/32",
        "--epochs",
        "1",
        "--train-images",
        "8",
        "--batch-size",
        "4",
        "--val-images",
        "4",
        "--no-progress",
        "--set",
        "position_images=4",
    ]
    out1, out2 = tmp_path / "first.json", tmp_path / "second.json"
    t0 = time.perf_counter()
    assert T.main(args + ["--summary-json", str(out1)]) == 0
    first_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert T.main(args + ["--summary-json", str(out2)]) == 0
    second_seconds = time.perf_counter() - t0
    first, second = json.loads(out1.read_text()), json.loads(out2.read_text())
    assert [r["walled"] for r in first["runs"]] == [True, False]
    assert not any(r["from_cache"] for r in first["runs"]) and all(
        r["from_cache"] for r in second["runs"]
    )
    for a, b in zip(first["runs"], second["runs"]):
        assert set(b["position_accuracy"]) == {"above", "straddle", "below"}
        assert (
            a["position_accuracy"] == b["position_accuracy"]
        )  # exact: repeat (read back from the checkpoint)
        assert a["key"] == b["key"]
    assert second_seconds < first_seconds
