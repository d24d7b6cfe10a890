"""helpers.locks.cache_lock: two processes that want the same cached result compute it once.

Checked against what another process observes: a child holds the lock and records when it lets
go; the parent, blocked meanwhile, must enter only after that time. And end to end: two
processes asking ``train_or_load`` for the same model at the same time train it once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import locks

pytestmark = pytest.mark.skipif(
    locks.fcntl is None, reason="no fcntl: cache_lock holds no lock here"
)

ROOT = Path(__file__).resolve().parent.parent

HOLDER = """
import sys, time
from helpers.locks import cache_lock
target, ready, released = sys.argv[1:4]
with cache_lock(target):
    open(ready, "w").close()
    time.sleep(1.5)
    open(released, "w").write(repr(time.time()))
"""


def _start_holder(tmp_path: Path, target: Path) -> tuple[subprocess.Popen, Path, Path]:
    ready, released = tmp_path / "ready", tmp_path / "released"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(target), str(ready), str(released)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    deadline = time.time() + 60
    while not ready.exists():
        assert proc.poll() is None, "the lock holder died"
        assert time.time() < deadline, "the lock holder never took the lock"
        time.sleep(0.05)
    return proc, ready, released


def test_a_second_process_waits_until_the_first_lets_go(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMWALLS_BOOK_BUILD", "1")  # no waiting message
    target = tmp_path / "result.json"
    proc, _, released = _start_holder(tmp_path, target)
    with locks.cache_lock(target):
        entered = time.time()
        # the holder wrote its release time before letting go: it must be there, and earlier
        assert released.exists()
        assert entered >= float(released.read_text())
    assert proc.wait(timeout=60) == 0


def test_the_lock_is_reentrant_and_released_at_the_end(tmp_path):
    target = tmp_path / "model.pt"
    with locks.cache_lock(target):
        with locks.cache_lock(target, tmp_path / "other.pt"):
            assert len(locks._HELD_LOCKS) == 2
        assert list(locks._HELD_LOCKS) == [str(target) + ".lock"]
    assert locks._HELD_LOCKS == {}
    # released: another process takes it at once
    proc, _, _ = _start_holder(tmp_path, target)
    assert proc.wait(timeout=60) == 0


def test_the_waiting_message_names_what_is_awaited(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CAMWALLS_BOOK_BUILD", raising=False)
    target = tmp_path / "table1.json"
    proc, _, _ = _start_holder(tmp_path, target)
    with locks.cache_lock(target, what="Table 1"):
        pass
    assert proc.wait(timeout=60) == 0
    out = capsys.readouterr().out
    assert "Waiting for another process that is computing Table 1" in out
    assert "table1.json.lock" in out


def test_an_unwritable_folder_runs_the_block_without_a_lock(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    ran = []
    with locks.cache_lock(blocker / "sub" / "model.pt"):
        ran.append(True)
    assert ran == [True] and locks._HELD_LOCKS == {}


TRAIN = """
import json, sys
from helpers.train import train_or_load
sys.path.insert(0, sys.argv[2])
from train_support import TINY
model, info = train_or_load("quick", walled=True, pair=False, **TINY)
open(sys.argv[1], "w").write(json.dumps({"from_cache": info["from_cache"]}))
"""


def test_two_processes_asking_for_one_model_train_it_once(tmp_path):
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        CAMWALLS_HOME=str(tmp_path / "home"),
        CAMWALLS_BOOK_BUILD="1",
        CAMWALLS_PRETRAINED="0",
        OMP_NUM_THREADS="1",
    )
    outs = [tmp_path / f"out{i}.json" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TRAIN, str(out), str(ROOT / "tests")],
            cwd=ROOT,
            env=env,
        )
        for out in outs
    ]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    flags = sorted(json.loads(out.read_text())["from_cache"] for out in outs)
    assert flags == [False, True]  # one trained it, the other waited and loaded it
