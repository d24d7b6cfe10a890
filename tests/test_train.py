"""Tests of helpers.train's rVGG training: configuration and cache, resume, refusal of other
configurations, real data, the pair in parallel processes, DDP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import data as D
from helpers import train as T
from tests.train_support import TINY, private_cache  # noqa: F401 (a fixture)


def run_in_own_group(
    cmd: list[str], timeout: float, **kwargs
) -> subprocess.CompletedProcess:
    """Run ``cmd`` (text output captured) in its own process group (``start_new_session``).

    On a timeout the whole group -- the command and every process it started, torchrun's
    workers for instance -- is killed (``SIGKILL``), and the test fails with the output so far.
    ``kwargs`` go to ``subprocess.Popen`` (``env``, ``cwd``, ...).
    """
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # the group ended in between
            pass
        out, err = proc.communicate()
        pytest.fail(
            f"{' '.join(map(str, cmd))} timed out after {timeout} s; its process group was killed.\n"
            f"stdout (end):\n{(out or '')[-2000:]}\nstderr (end):\n{(err or '')[-2000:]}"
        )
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux ``/proc``)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc")
def test_a_timed_out_subprocess_leaves_no_child_running(tmp_path):
    """run_in_own_group kills the grandchildren too (as torchrun's workers), then fails."""
    pid_file = tmp_path / "child.pid"
    # the grandchild does not hold the pipes: killing only the direct child would then return
    # at once and leave it running (what this test detects)
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],\n"
        "                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(120)\n"
    )
    with pytest.raises(
        pytest.fail.Exception, match="timed out after 3 s(.|\n)*started"
    ):
        run_in_own_group([sys.executable, "-c", script], timeout=3)
    child = int(pid_file.read_text())
    import time

    for _ in range(50):  # SIGKILL is asynchronous: give the kernel a moment
        if not _running(child):
            break
        time.sleep(0.1)
    survived = _running(child)
    if survived:
        os.kill(child, signal.SIGKILL)  # leave nothing behind, then fail
    assert not survived, f"the grandchild {child} was still running after the timeout"


def test_config_and_key():
    c = T.training_config("quick", walled=True, **TINY)
    assert c["wall_rows"] == 9 and c["walled"] and c["width"] == 1 / 32
    assert c["train"]["epochs"] == 2 and c["data"]["train_images"] == 8
    b = T.training_config("quick", walled=False, **TINY)
    assert b["wall_rows"] == 0 and not b["walled"]
    assert T.config_key(c) != T.config_key(b)
    assert T.config_key(c) == T.config_key(
        T.training_config("quick", walled=True, **TINY)
    )
    h = T.training_config("quick", walled=True, wall_rows=5, **TINY)
    assert h["wall_rows"] == 5 and T.config_key(h) != T.config_key(c)
    assert "w5" in T.checkpoint_path(h).name and "walled" in T.checkpoint_path(h).name
    with pytest.raises(ValueError, match="Unknown training override 'epoch'"):
        T.training_config("quick", epoch=3)
    with pytest.raises(ValueError, match="wall_rows"):
        T.training_config("quick", wall_rows=20)


def test_the_walled_model_has_its_own_number_of_epochs():
    from helpers.config import get_profile

    quick = get_profile("quick").train
    assert quick.walled_epochs > quick.epochs  # the quick recipe uses it
    epochs = {
        walled: T.training_config("quick", walled=walled)["train"]["epochs"]
        for walled in (True, False)
    }
    assert epochs == {True: quick.walled_epochs, False: quick.epochs}
    # any walled height; an explicit epochs=... sets both; the full profile: the same for both
    assert (
        T.training_config("quick", wall_rows=5)["train"]["epochs"]
        == quick.walled_epochs
    )
    for walled in (True, False):
        assert (
            T.training_config("quick", walled=walled, epochs=3)["train"]["epochs"] == 3
        )
        assert T.training_config("full", walled=walled)["train"]["epochs"] == 90
    with pytest.raises(ValueError, match="walled_epochs"):
        T.training_config("quick", walled_epochs=-1)


def test_learning_rate_schedule_by_hand():
    c = T.training_config(
        "quick",
        lr=0.1,
        epochs=4,
        warmup_steps=4,
        schedule="step",
        lr_step_epochs=2,
        lr_gamma=0.5,
    )
    # warm-up: (step + 1) / 4 of the base rate; StepLR: x0.5 every 2 epochs of 10 steps
    assert T.learning_rate(c, 0, 10) == pytest.approx(0.025)
    assert T.learning_rate(c, 3, 10) == pytest.approx(0.1)
    assert T.learning_rate(c, 19, 10) == pytest.approx(0.1)
    assert T.learning_rate(c, 20, 10) == pytest.approx(0.05)
    k = T.training_config("quick", lr=0.1, epochs=2, warmup_steps=0, schedule="cosine")
    assert T.learning_rate(k, 10, 10) == pytest.approx(
        0.05
    )  # half-way: cos(pi/2) -> half
    assert T.learning_rate(k, 0, 10) == pytest.approx(0.1)


def test_train_or_load_trains_then_loads():
    model, info = T.train_or_load("quick", walled=True, pair=False, **TINY)
    assert not info["from_cache"] and info["complete"] and not model.training
    assert len(info["history"]) == 2 and info["curve"][0][0] == 1
    assert set(info["position_accuracy"]) == {"above", "straddle", "below"}
    assert Path(info["checkpoint"]).is_file() and Path(info["metrics_csv"]).is_file()
    rows = T.read_metrics(info["metrics_csv"])
    assert [r["epoch"] for r in rows] == [1.0, 2.0]
    assert rows[-1]["val_acc"] == pytest.approx(info["val_accuracy"])
    again, info2 = T.train_or_load("quick", walled=True, pair=False, **TINY)
    assert info2["from_cache"]
    trained, loaded = model.state_dict(), again.state_dict()
    assert set(trained) == set(loaded)
    for key, value in trained.items():
        assert torch.equal(value, loaded[key]), key  # exact: repeat
    # the wall holds in the trained model: rows 170.. change nothing
    x = torch.randn(2, 3, 224, 224)
    y = x.clone()
    y[:, :, 170:] = torch.randn(2, 3, 54, 224) * 5
    assert torch.equal(again(x), again(y))  # exact: wall
    # the reported validation accuracy is the accuracy recomputed on the same images
    val = D.synthetic_batch(4, D.mix_seed(0, 424242), below_share=0.15)
    acc, _ = T.evaluate_accuracy(again, val.images, val.labels)
    assert acc == pytest.approx(info["val_accuracy"])


def test_resume_after_interruption_is_bit_identical(tmp_path):
    cfg = T.training_config("quick", walled=True, **{**TINY, "epochs": 3})
    full, _ = T.train(
        cfg, device="cpu", checkpoint=tmp_path / "a.pt", show_progress=False
    )
    part, info = T.train(
        cfg,
        device="cpu",
        checkpoint=tmp_path / "b.pt",
        stop_after_epochs=1,
        show_progress=False,
    )
    assert not info["complete"] and info["epochs_done"] == 1
    resumed, info = T.train(
        cfg, device="cpu", checkpoint=tmp_path / "b.pt", show_progress=False
    )
    assert info["complete"] and len(info["history"]) == 3
    for (k, p), q in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), k  # exact: repeat


def test_kill_mid_epoch_then_resume(tmp_path, monkeypatch):
    cfg = T.training_config("quick", walled=False, **TINY)
    full, _ = T.train(
        cfg, device="cpu", checkpoint=tmp_path / "a.pt", show_progress=False
    )
    original = D.SyntheticStream.batch
    calls = {"n": 0}

    def dying(self, epoch, step):
        calls["n"] += 1
        if epoch == 1 and step == 1:
            raise KeyboardInterrupt("killed")
        return original(self, epoch, step)

    monkeypatch.setattr(D.SyntheticStream, "batch", dying)
    with pytest.raises(KeyboardInterrupt):
        T.train(cfg, device="cpu", checkpoint=tmp_path / "b.pt", show_progress=False)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(D.SyntheticStream, "batch", original)
    resumed, _ = T.train(
        cfg, device="cpu", checkpoint=tmp_path / "b.pt", show_progress=False
    )
    for p, q in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(p, q)  # exact: repeat


def test_checkpoint_of_another_configuration_is_refused(tmp_path):
    cfg = T.training_config("quick", walled=True, **{**TINY, "epochs": 1})
    T.train(cfg, device="cpu", checkpoint=tmp_path / "x.pt", show_progress=False)
    other = T.training_config("quick", walled=True, **{**TINY, "epochs": 1, "lr": 0.5})
    with pytest.raises(T.ConfigMismatchError, match="train.lr"):
        T.train(other, device="cpu", checkpoint=tmp_path / "x.pt", show_progress=False)
    # and train_or_load refuses a file at its path that holds another configuration
    path = T.checkpoint_path(other)
    path.parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "x.pt").rename(path)
    with pytest.raises(T.ConfigMismatchError, match="refusing"):
        T.train_or_load("quick", walled=True, **{**TINY, "epochs": 1, "lr": 0.5})
    torch.save({"weights": torch.zeros(1)}, tmp_path / "y.pt")
    with pytest.raises(ValueError, match="not a helpers.train checkpoint"):
        T.load_checkpoint(tmp_path / "y.pt")


def test_labels_out_of_range_are_refused():
    from helpers.models import rvgg

    m = rvgg(3, width=1 / 32)
    with pytest.raises(ValueError, match="out of range"):
        T.evaluate_accuracy(m, torch.zeros(1, 3, 224, 224), torch.tensor([5]))


def test_real_data_training_and_class_count_check(tmp_path):
    from PIL import Image

    from helpers.config import DataSettings, get_profile

    root = tmp_path / "imgs"
    for split in ("train", "val"):
        for c, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
            for i in range(2):
                (root / split / c).mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (40, 30), colour).save(root / split / c / f"{i}.png")
    prof = get_profile("full").replace(
        data=DataSettings(
            source="imagefolder",
            num_classes=2,
            train_images=0,
            val_images=0,
            root=str(root),
            position_images=2,
        )
    )
    over = dict(
        width=1 / 32,
        epochs=1,
        batch_size=2,
        num_workers=0,
        mixed_precision=False,
        channels_last=False,
    )
    model, info = T.train_or_load(prof, walled=True, device="cpu", pair=False, **over)
    assert (
        info["complete"]
        and len(info["history"]) == 1
        and 0 <= info["val_accuracy"] <= 1
    )
    assert set(info["position_accuracy"]) == {"above", "straddle", "below"}
    with pytest.raises(ValueError, match="num_classes=2"):
        T.train_or_load(
            prof, walled=True, device="cpu", pair=False, num_classes=5, **over
        )


def test_ddp_two_processes_end_with_identical_weights(tmp_path):
    env = dict(
        os.environ,
        CAMWALLS_HOME=str(tmp_path / "home"),
        CAMWALLS_BOOK_BUILD="1",
        OMP_NUM_THREADS="1",
    )
    script = tmp_path / "ddp.py"
    script.write_text(
        "import sys, torch, torch.distributed as dist\n"
        "from helpers import train as T\n"
        "cfg = T.training_config('quick', walled=True, width=1/32, epochs=1, train_images=4, batch_size=4,\n"
        "                        val_images=2, position_images=1, num_threads=1)\n"
        "model, info = T.train(cfg, device='cpu', checkpoint=sys.argv[1], show_progress=False)\n"
        "torch.save(model.state_dict(), sys.argv[2] + f'/rank{dist.get_rank()}.pt')\n"
        "dist.destroy_process_group()\n"
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(tmp_path / "ckpt.pt"),
        str(tmp_path),
    ]
    out = run_in_own_group(cmd, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    from helpers.config import seed_everything

    cfg = T.training_config(
        "quick",
        walled=True,
        width=1 / 32,
        epochs=1,
        train_images=4,
        batch_size=4,
        val_images=2,
        position_images=1,
        num_threads=1,
    )
    seed_everything(cfg["train"]["seed"])  # the same initial weights as in train()
    init = T.build_model(cfg)
    changed = False
    for k in a:
        assert torch.equal(a[k], b[k]), k  # exact: repeat
        changed |= not torch.equal(a[k], init.state_dict()[k])
    assert changed  # they trained (and stayed in sync)
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert ckpt["world_size"] == 2


def test_accuracy_by_row_groups():
    from helpers.models import rvgg

    model = rvgg(10, width=1 / 32).eval()
    rows = T.accuracy_by_row(model, "quick", top_rows=(0, 175), n=3)
    assert [r["top_row"] for r in rows] == [0.0, 175.0]
    assert rows[0]["hidden"] == 0.0 and rows[1]["hidden"] == 1.0  # exact: integer
    assert rows[1]["mean_top"] >= 175.0


def test_train_or_load_trains_the_pair_in_parallel_processes():
    over = dict(TINY, epochs=1)
    # asking for the walled model on an empty cache trains it and its baseline at once, in two
    # processes (python -m helpers.train --config-json ...), then loads the walled one
    w, iw = T.train_or_load("quick", walled=True, device="cpu", **over)
    assert (
        not iw["from_cache"] and iw["walled"] and iw["complete"]
    )  # trained by this call
    sibling = T.checkpoint_path(T.training_config("quick", walled=False, **over))
    assert sibling.is_file() and sibling.with_suffix(".log").is_file()
    both = T.train_both("quick", device="cpu", **over)  # now two cache hits
    (w2, _), (_, ib) = both["walled"], both["baseline"]
    assert ib["from_cache"] and not ib["walled"]
    assert torch.equal(w2.classifier[0].weight, w.classifier[0].weight)  # exact: repeat
    # the key ignores the thread count (speed only): the same checkpoint serves any thread count
    assert T.config_key(
        T.training_config("quick", **dict(over, num_threads=1))
    ) == T.config_key(T.training_config("quick", **dict(over, num_threads=2)))
