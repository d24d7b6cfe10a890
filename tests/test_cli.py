"""helpers.cli: every command line stops on an error with one line, ``error: <message>``, and a
non-zero exit status; ``--debug`` shows the traceback instead."""

from __future__ import annotations

import argparse
import importlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import cli

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str):
    """A module of the tools/ package (``python -m tools.<name>``)."""
    return importlib.import_module(f"tools.{name}")


def _one_error_line(err: str) -> str:
    """The single line of ``err``, checked to be an ``error:`` line without a traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert lines[0].startswith("error: ") and "Traceback" not in err, err
    assert "--debug" in lines[0]
    return lines[0]


@pytest.fixture
def blocker(tmp_path) -> Path:
    """A regular file: no folder can be created below it, whoever runs the tests (root too)."""
    path = tmp_path / "afile.txt"
    path.write_text("a file where a folder should be")
    return path


# ---------------------------------------------------------------------------------------------
# helpers.cli itself
# ---------------------------------------------------------------------------------------------


def test_run_turns_an_exception_into_one_line_and_exit_status_2():
    def body():
        raise ValueError("the thing at /x is broken.\nDelete it and run again.")

    err = io.StringIO()
    assert cli.run(body, stream=err) == cli.EXIT_ERROR == 2
    assert err.getvalue() == (
        "error: the thing at /x is broken. | Delete it and run again. (ValueError; run "
        "again with --debug for the traceback)\n"
    )
    assert (
        cli.run(lambda: 0) == 0
        and cli.run(lambda: None) == 0
        and cli.run(lambda: 1) == 1
    )
    assert cli.error_line(KeyError()) == (
        "error: KeyError (no message) (KeyError; run again with --debug for "
        "the traceback)"
    )


def test_run_with_debug_lets_the_exception_through():
    def body():
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        cli.run(body, debug=True)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_run_never_swallows_interrupts_or_exits(exc):
    def body():
        raise exc()

    with pytest.raises(exc):
        cli.run(body, stream=io.StringIO())


def test_debug_argument_is_in_the_help():
    parser = cli.add_debug_argument(argparse.ArgumentParser(prog="x"))
    assert (
        parser.parse_args([]).debug is False
        and parser.parse_args(["--debug"]).debug is True
    )
    assert "--debug" in parser.format_help()


def test_writable_folder_checks(tmp_path, blocker):
    target = tmp_path / "new" / "deeper"
    assert cli.folder_problem(target) is None and target.is_dir()
    assert list(target.iterdir()) == []  # the probe file is gone
    assert cli.folder_problem(blocker / "out") == f"{blocker} is a file, not a folder"
    assert cli.folder_problem(blocker) == f"{blocker} is a file, not a folder"
    with pytest.raises(cli.NotWritableError) as info:
        cli.ensure_writable_folder(
            blocker / "out", "--out", "Pass --out a folder you can write to."
        )
    assert isinstance(info.value, OSError)
    assert str(info.value) == (
        f"--out {blocker / 'out'} cannot be used: expected a folder that can be created "
        f"and written to, found that {blocker} is a file, not a folder. Pass --out a "
        "folder you can write to."
    )
    assert cli.ensure_writable_folder(target, "--out", "") == target


# ---------------------------------------------------------------------------------------------
# Every command
# ---------------------------------------------------------------------------------------------

COMMANDS = [
    "helpers.train",
    "helpers.evaluate",
    "tools.benchmark",
    "tools.bench_cams",
    "tools.build",
    "tools.browsercheck",
    "tools.gpu_session",
    "tools.check_notebooks",
]


def _main(command: str):
    return importlib.import_module(command).main


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_lists_debug_in_its_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        _main(command)(["--help"])
    assert info.value.code == 0
    assert "--debug" in capsys.readouterr().out


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``python <args>`` from the repository root, with a cache of its own; a few seconds."""
    env = dict(
        os.environ,
        CAMWALLS_HOME=str(tmp_path / "home"),
        CAMWALLS_BOOK_BUILD="1",
        OMP_NUM_THREADS="1",
    )
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_evaluate_command_with_an_out_that_cannot_be_written(tmp_path, blocker):
    args = [
        "-m",
        "helpers.evaluate",
        "--methods",
        "gradcam",
        "--out",
        str(blocker / "out"),
    ]
    proc = _run(args, tmp_path)
    line = _one_error_line(proc.stderr)
    assert proc.returncode == 2 and proc.stdout == ""
    assert (
        f"--out {blocker / 'out'} cannot be used" in line
        and f"{blocker} is a file, not a folder" in line
    )
    assert not (tmp_path / "home").exists()  # it stopped before any work
    proc = _run(args + ["--debug"], tmp_path)
    assert (
        proc.returncode == 1
        and "Traceback" in proc.stderr
        and "NotWritableError" in proc.stderr
    )


def test_train_command_with_a_config_file_that_does_not_exist(tmp_path):
    missing = tmp_path / "nowhere.json"
    proc = _run(["-m", "helpers.train", "--config-json", str(missing)], tmp_path)
    line = _one_error_line(proc.stderr)
    assert proc.returncode == 2
    assert (
        f"--config-json {missing}: no such file" in line
        and "Expected a training configuration" in line
    )
    proc = _run(
        ["-m", "helpers.train", "--config-json", str(missing), "--debug"], tmp_path
    )
    assert (
        proc.returncode == 1
        and "Traceback" in proc.stderr
        and "FileNotFoundError" in proc.stderr
    )


def test_train_command_with_a_file_that_is_not_a_configuration(tmp_path, capsys):
    from helpers import train as T

    bad = tmp_path / "bad.json"
    bad.write_text('{"epochs": 3}')
    assert T.main(["--config-json", str(bad)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert (
        f"--config-json {bad} is not a training configuration" in line
        and "'train'" in line
    )


def test_benchmark_command_checks_its_folder_before_measuring(
    blocker, capsys, monkeypatch
):
    from tools import benchmark as B

    monkeypatch.setattr(
        B, "benchmark", lambda **kw: pytest.fail("measured before checking --out")
    )
    assert B.main(["--tiny", "--out", str(blocker / "out")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"--out {blocker / 'out'} cannot be used" in line


def test_bench_cams_command_checks_the_results_folder_first(
    blocker, capsys, monkeypatch
):
    from tools import bench_cams

    monkeypatch.setenv("CAMWALLS_HOME", str(blocker / "home"))
    monkeypatch.setattr(
        bench_cams,
        "benchmark",
        lambda *a, **k: pytest.fail("ran before checking the folder"),
    )
    assert (
        bench_cams.main(
            ["--model", "random", "--images", "1", "--cases", "ablationcam"]
        )
        == 2
    )
    line = _one_error_line(capsys.readouterr().err)
    assert (
        f"The results folder {blocker / 'home' / 'results'}" in line
        and "CAMWALLS_HOME" in line
    )


def test_build_command_without_jupyter_book(tmp_path, capsys, monkeypatch):
    from tools import build

    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    assert build.main([]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert (
        f"No jupyter-book at {tmp_path / 'bin' / 'jupyter-book'}" in line
        and "pip install" in line
    )


def test_browsercheck_command_without_a_browser(capsys, monkeypatch):
    browsercheck = _tool("browsercheck")
    monkeypatch.setattr(browsercheck, "find_browser", lambda: None)
    assert browsercheck.main([]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "Chromium or chromedriver not found" in line and "(BrowserNotFound;" in line
    assert "apt-get install -y chromium chromium-driver" in line


def test_gpu_session_command_errors(tmp_path, blocker, capsys):
    main = _tool("gpu_session").main
    assert (
        main(["--out", str(tmp_path / "out"), "--tiny", "--skip", "benchmark,trian"])
        == 2
    )
    line = _one_error_line(capsys.readouterr().err)
    assert (
        "unknown stage(s) ['trian']" in line
        and "benchmark, train, evaluate, bench_cams" in line
    )
    assert main(["--out", str(blocker / "out"), "--tiny"]) == 2
    assert f"--out {blocker / 'out'} cannot be used" in _one_error_line(
        capsys.readouterr().err
    )


def test_check_notebooks_command_with_a_missing_notebook(tmp_path, capsys):
    main = _tool("check_notebooks").main
    assert main([str(tmp_path / "missing.ipynb")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"No such notebook: {tmp_path / 'missing.ipynb'}" in line


def test_parse_and_run_adds_debug_parses_and_turns_errors_into_one_line(capsys):
    def body(args):
        if args.fail:
            raise ValueError("broken on purpose")
        return 0

    def parser():
        p = argparse.ArgumentParser(prog="probe")
        p.add_argument("--fail", action="store_true")
        return p

    assert cli.parse_and_run(parser(), [], body) == 0
    assert cli.parse_and_run(parser(), ["--fail"], body) == cli.EXIT_ERROR
    assert "error: broken on purpose" in capsys.readouterr().err
    with pytest.raises(ValueError, match="on purpose"):
        cli.parse_and_run(parser(), ["--fail", "--debug"], body)
    with pytest.raises(SystemExit) as usage:
        cli.parse_and_run(parser(), ["--nope"], body)
    assert usage.value.code == 2
