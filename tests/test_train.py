"""Tests of helpers.train: configuration and cache, resume, refusal of other configurations, DDP."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import data as D
from helpers import train as T

TINY = dict(width=1 / 32, epochs=2, train_images=8, batch_size=4, val_images=4, position_images=2,
            num_threads=1, log_every=1)


def run_in_own_group(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd`` (text output captured) in its own process group (``start_new_session``).

    On a timeout the whole group -- the command and every process it started, torchrun's
    workers for instance -- is killed (``SIGKILL``), and the test fails with the output so far.
    ``kwargs`` go to ``subprocess.Popen`` (``env``, ``cwd``, ...).
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # the group ended in between
            pass
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(map(str, cmd))} timed out after {timeout} s; its process group was killed.\n"
                    f"stdout (end):\n{(out or '')[-2000:]}\nstderr (end):\n{(err or '')[-2000:]}")
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
    script = ("import subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],\n"
              "                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
              f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
              "print('started', flush=True)\n"
              "time.sleep(120)\n")
    with pytest.raises(pytest.fail.Exception, match="timed out after 3 s(.|\n)*started"):
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


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CAMWALLS_BOOK_BUILD", "1")  # silent progress bars
    yield


def test_config_and_key():
    c = T.training_config("quick", walled=True, **TINY)
    assert c["wall_rows"] == 9 and c["walled"] and c["width"] == 1 / 32
    assert c["train"]["epochs"] == 2 and c["data"]["train_images"] == 8
    b = T.training_config("quick", walled=False, **TINY)
    assert b["wall_rows"] == 0 and not b["walled"]
    assert T.config_key(c) != T.config_key(b)
    assert T.config_key(c) == T.config_key(T.training_config("quick", walled=True, **TINY))
    h = T.training_config("quick", walled=True, wall_rows=5, **TINY)
    assert h["wall_rows"] == 5 and T.config_key(h) != T.config_key(c)
    assert "w5" in T.checkpoint_path(h).name and "walled" in T.checkpoint_path(h).name
    with pytest.raises(ValueError, match="Unknown training override 'epoch'"):
        T.training_config("quick", epoch=3)
    with pytest.raises(ValueError, match="wall_rows"):
        T.training_config("quick", wall_rows=20)


def test_learning_rate_schedule_by_hand():
    c = T.training_config("quick", lr=0.1, epochs=4, warmup_steps=4, schedule="step", lr_step_epochs=2,
                          lr_gamma=0.5)
    # warm-up: (step + 1) / 4 of the base rate; StepLR: x0.5 every 2 epochs of 10 steps
    assert T.learning_rate(c, 0, 10) == pytest.approx(0.025)
    assert T.learning_rate(c, 3, 10) == pytest.approx(0.1)
    assert T.learning_rate(c, 19, 10) == pytest.approx(0.1)
    assert T.learning_rate(c, 20, 10) == pytest.approx(0.05)
    k = T.training_config("quick", lr=0.1, epochs=2, warmup_steps=0, schedule="cosine")
    assert T.learning_rate(k, 10, 10) == pytest.approx(0.05)  # half-way: cos(pi/2) -> half
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
    val = D.synthetic_batch(4, D._mix_seed(0, 424242), below_share=0.15)
    acc, _ = T.evaluate_accuracy(again, val.images, val.labels)
    assert acc == pytest.approx(info["val_accuracy"])


def test_resume_after_interruption_is_bit_identical(tmp_path):
    cfg = T.training_config("quick", walled=True, **{**TINY, "epochs": 3})
    full, _ = T.train(cfg, device="cpu", checkpoint=tmp_path / "a.pt", show_progress=False)
    part, info = T.train(cfg, device="cpu", checkpoint=tmp_path / "b.pt", stop_after_epochs=1,
                         show_progress=False)
    assert not info["complete"] and info["epochs_done"] == 1
    resumed, info = T.train(cfg, device="cpu", checkpoint=tmp_path / "b.pt", show_progress=False)
    assert info["complete"] and len(info["history"]) == 3
    for (k, p), q in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), k  # exact: repeat


def test_kill_mid_epoch_then_resume(tmp_path, monkeypatch):
    cfg = T.training_config("quick", walled=False, **TINY)
    full, _ = T.train(cfg, device="cpu", checkpoint=tmp_path / "a.pt", show_progress=False)
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
    resumed, _ = T.train(cfg, device="cpu", checkpoint=tmp_path / "b.pt", show_progress=False)
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
    prof = get_profile("full").replace(data=DataSettings(source="imagefolder", num_classes=2, train_images=0,
                                                         val_images=0, root=str(root), position_images=2))
    over = dict(width=1 / 32, epochs=1, batch_size=2, num_workers=0, mixed_precision=False,
                channels_last=False)
    model, info = T.train_or_load(prof, walled=True, device="cpu", pair=False, **over)
    assert info["complete"] and len(info["history"]) == 1 and 0 <= info["val_accuracy"] <= 1
    assert set(info["position_accuracy"]) == {"above", "straddle", "below"}
    with pytest.raises(ValueError, match="num_classes=2"):
        T.train_or_load(prof, walled=True, device="cpu", pair=False, num_classes=5, **over)


def test_cli_help_and_run(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        T.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--walled" in text and "--profile" in text and "--wall-rows" in text
    assert T.main(["--profile", "quick", "--baseline", "--width", "1/32", "--epochs", "1", "--train-images", "4",
                   "--batch-size", "4", "--val-images", "2", "--no-progress", "--set", "position_images=2",
                   "--checkpoint", str(tmp_path / "cli.pt"), "--summary-json", str(tmp_path / "r" / "s.json")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-2])
    assert summary["complete"] and summary["walled"] is False
    assert lines[-1] == f"summary written to {tmp_path / 'r' / 's.json'}"
    written = json.loads((tmp_path / "r" / "s.json").read_text())
    assert written["command"].startswith("python -m helpers.train --profile quick --baseline")
    assert written["machine"]["cpu_count"] >= 1 and written["date"].endswith("Z")
    (run,) = written["runs"]
    assert run["position_accuracy"] == summary["position_accuracy"]
    assert [h["epoch"] for h in run["history"]] == [1] and run["config"]["train"]["epochs"] == 1
    assert run["key"] == T.config_key(run["config"])
    with pytest.raises(SystemExit):
        T.main(["--baseline", "--wall-rows", "3"])


def test_ddp_two_processes_end_with_identical_weights(tmp_path):
    env = dict(os.environ, CAMWALLS_HOME=str(tmp_path / "home"), CAMWALLS_BOOK_BUILD="1",
               OMP_NUM_THREADS="1")
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
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(tmp_path / "ckpt.pt"), str(tmp_path)]
    out = run_in_own_group(cmd, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    from helpers.config import seed_everything

    cfg = T.training_config('quick', walled=True, width=1/32, epochs=1, train_images=4, batch_size=4,
                            val_images=2, position_images=1, num_threads=1)
    seed_everything(cfg["train"]["seed"])  # the same initial weights as in train()
    init = T.build_model(cfg)
    changed = False
    for k in a:
        assert torch.equal(a[k], b[k]), k  # exact: repeat
        changed |= not torch.equal(a[k], init.state_dict()[k])
    assert changed  # they trained (and stayed in sync)
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert ckpt["world_size"] == 2


def test_dirac_init_is_a_shallow_network_at_start():
    # With no noise, every convolution after the first is an identity on (repeated) channels,
    # so the feature map is the first convolution's ReLU output max-pooled 16x: check by hand.
    import torch.nn.functional as F

    cfg = T.training_config("quick", width=1 / 16, init="dirac", init_noise=0.0)
    model = T.build_model(cfg).eval()
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        first = F.relu(convs[0](x))
        pooled = F.max_pool2d(first, 16)
        channel = torch.arange(convs[-1].out_channels)
        for conv in reversed(convs[1:]):  # output channel c reads input channel c % cin
            channel = channel % conv.in_channels
        expected = pooled[:, channel]
        got = model.features(x)
    assert torch.allclose(got, expected, atol=1e-6)
    # the first dense layer reads every visible position with the same weights
    w = model.classifier[0].weight.detach().view(model.classifier[0].out_features, -1, 14, 14)
    assert torch.equal(w[:, :, 0, 0], w[:, :, 4, 13]) and float(w[:, :, 5:].abs().max()) == 0.0  # exact: exact-float
    with pytest.raises(ValueError, match="init"):
        T.build_model(T.training_config("quick", init="xavier"))


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
    assert iw["from_cache"] and iw["walled"] and iw["complete"]
    sibling = T.checkpoint_path(T.training_config("quick", walled=False, **over))
    assert sibling.is_file() and sibling.with_suffix(".log").is_file()
    both = T.train_both("quick", device="cpu", **over)  # now two cache hits
    (w2, _), (b, ib) = both["walled"], both["baseline"]
    assert ib["from_cache"] and not ib["walled"]
    assert torch.equal(w2.classifier[0].weight, w.classifier[0].weight)  # exact: repeat
    # the key ignores the thread count (speed only): the same checkpoint serves any thread count
    assert T.config_key(T.training_config("quick", **dict(over, num_threads=1))) == \
        T.config_key(T.training_config("quick", **dict(over, num_threads=2)))


def test_weight_standardization_by_hand_and_baked_checkpoints():
    ws = T.ScaledWeightStandardization(3)
    w = torch.randn(3, 2, 3, 3) * 5 + 1
    out = ws(w)
    fan_in = 2 * 9
    assert torch.allclose(out.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-6)
    assert torch.allclose(out.std(dim=(1, 2, 3)), torch.full((3,), 1.7139 / math.sqrt(fan_in)), rtol=1e-4)
    # training with it (and with a position-tied head) leaves a plain rVGG in the checkpoint
    model, info = T.train_or_load("quick", walled=True, pair=False, **dict(TINY, weight_standardization=True, tie_steps=100,
                                                              init="pooled"))
    state = torch.load(info["checkpoint"], weights_only=True)["model"]
    assert not any("parametrizations" in k for k in state) and "features.0.weight" in state
    # the head stayed shared across the visible positions (tied for the whole run)
    w1 = model.classifier[0].weight.detach().view(model.classifier[0].out_features, -1, 14, 14)
    assert torch.allclose(w1[:, :, 0, 0], w1[:, :, 4, 9], atol=1e-6)
    assert float(w1[:, :, 5:].abs().max()) == 0.0  # exact: wall
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_convolutions_keep_their_initial_weights(tmp_path):
    from helpers.config import seed_everything

    cfg = T.training_config("quick", **dict(TINY, epochs=1, freeze_convs=2))
    seed_everything(cfg["train"]["seed"])
    init = T.build_model(cfg)
    model, _ = T.train(cfg, device="cpu", checkpoint=tmp_path / "f.pt", show_progress=False)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    convs0 = [m for m in init.features if isinstance(m, torch.nn.Conv2d)]
    # exact: repeat (TESTING.md)
    assert torch.equal(convs[0].weight, convs0[0].weight) and torch.equal(convs[1].weight, convs0[1].weight)
    assert not torch.equal(convs[2].weight, convs0[2].weight)  # exact: repeat
    with pytest.raises(ValueError, match="freeze_convs"):
        T.freeze_convolutions(init, 20)


def test_batch_norm_folds_into_the_convolutions_exactly(tmp_path):
    from helpers import wall as W
    from helpers.models import rvgg

    torch.manual_seed(0)
    model = T.add_batch_norm(rvgg(num_classes=10, width=1 / 32))
    assert sum(isinstance(m, T.ConvBN) for m in model.features) == 13
    # give the norms non-trivial statistics and affine parameters
    model.train()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 0.5)
        for _ in range(3):
            model(torch.randn(4, 3, 224, 224) * 2 + 0.3)
    model.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = model(x)
        # by hand for the first convolution: BN(conv(x)) with the running statistics
        first = model.features[0]
        hand = (first.conv(x) - first.bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(
            first.bn.running_var.view(1, -1, 1, 1) + first.bn.eps) * first.bn.weight.view(1, -1, 1, 1) \
            + first.bn.bias.view(1, -1, 1, 1)
        T.fold_batch_norm(model)
        assert torch.allclose(model.features[0](x), hand, atol=1e-4)
        assert torch.allclose(model(x), expected, rtol=1e-4, atol=1e-4)
    # a plain rVGG again: the layout and keys of a model built without batch norm, and the wall
    assert set(model.state_dict()) == set(rvgg(num_classes=10, width=1 / 32).state_dict())
    assert W.perturbation_check(model, x)["max_abs_diff"] == 0.0  # exact: wall
    # training with it leaves a plain rVGG in the checkpoint
    model2, info = T.train_or_load("quick", walled=True, pair=False, **dict(TINY, batch_norm=True))
    state = torch.load(info["checkpoint"], weights_only=True)["model"]
    assert not any("bn" in k or "running_mean" in k for k in state) and "features.0.weight" in state


# ---------------------------------------------------------------------------------------------
# Fail safe: broken cache entries, open walls, folders that cannot be written
# ---------------------------------------------------------------------------------------------

ONE_EPOCH = dict(TINY, epochs=1)


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory) -> Path:
    """A complete checkpoint of the walled TINY model (one epoch), outside any cache."""
    path = tmp_path_factory.mktemp("trained") / "walled.pt"
    cfg = T.training_config("quick", walled=True, **ONE_EPOCH)
    T.train(cfg, device="cpu", checkpoint=path, show_progress=False)
    return path


def _into_cache(source: Path, state_change=None) -> Path:
    """Copy ``source`` to the cache path of the walled TINY model, its weights changed by
    ``state_change(state)`` when given."""
    cfg = T.training_config("quick", walled=True, **ONE_EPOCH)
    path = T.checkpoint_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = torch.load(source, weights_only=True)
    if state_change is not None:
        state_change(ckpt["model"])
    torch.save(ckpt, path)
    return path


def test_a_truncated_cached_checkpoint_names_itself_and_the_remedy(trained_checkpoint):
    from helpers.config import CheckpointError

    path = _into_cache(trained_checkpoint)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a copy cut in half (a full disk, a killed copy)
    with pytest.raises(CheckpointError) as info:
        T.train_or_load("quick", walled=True, pair=False, **ONE_EPOCH)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(path) in message and f"{len(data) // 2:,} bytes" in message
    assert f"Delete {path}" in message and "trains this model anew" in message
    with pytest.raises(CheckpointError, match="truncated, corrupt"):  # the resume path too
        T.train(T.training_config("quick", walled=True, **ONE_EPOCH), device="cpu", checkpoint=path,
                show_progress=False)
    # the remedy works: once deleted, the cache trains the model again
    path.unlink()
    _, info2 = T.train_or_load("quick", walled=True, pair=False, **ONE_EPOCH)
    assert info2["complete"] and not info2["from_cache"] and path.is_file()


def test_an_open_wall_in_a_cached_checkpoint_is_a_value_error(trained_checkpoint):
    from helpers.wall import WallError

    def open_the_wall(state):
        state["classifier.0.weight"].add_(0.5)  # every weight, those under the wall included

    path = _into_cache(trained_checkpoint, open_the_wall)
    with pytest.raises(WallError) as info:
        T.train_or_load("quick", walled=True, pair=False, **ONE_EPOCH)
    assert isinstance(info.value, ValueError) and not isinstance(info.value, RuntimeError)
    assert str(path) in str(info.value) and "under the wall" in str(info.value)
    assert "expected exactly 0" in str(info.value) and "train again" in str(info.value)
    with pytest.raises(WallError):  # the same through train(resume=True)
        T.train(T.training_config("quick", walled=True, **ONE_EPOCH), device="cpu", checkpoint=path,
                show_progress=False)


def test_a_checkpoint_of_another_layout_is_a_value_error(trained_checkpoint):
    path = _into_cache(trained_checkpoint, lambda state: state.pop("classifier.6.bias"))
    with pytest.raises(ValueError, match="does not fit the rVGG") as info:
        T.train_or_load("quick", walled=True, pair=False, **ONE_EPOCH)
    assert "classifier.6.bias" in str(info.value) and f"Delete {path}" in str(info.value)


def test_reading_the_cache_creates_no_folder(trained_checkpoint, tmp_path, monkeypatch):
    cfg = T.training_config("quick", walled=True, **ONE_EPOCH)
    assert not T.checkpoint_path(cfg).parent.exists()  # a path, no folder made
    _into_cache(trained_checkpoint)

    def no_mkdir(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied (a read-only cache)", str(self))

    monkeypatch.setattr(Path, "mkdir", no_mkdir)
    model, info = T.train_or_load("quick", walled=True, pair=False, **ONE_EPOCH)
    assert info["from_cache"] and not model.training


def test_an_unwritable_checkpoint_folder_fails_before_training(tmp_path, monkeypatch):
    from helpers.cli import NotWritableError

    blocker = tmp_path / "afile.txt"
    blocker.write_text("a file where a folder should be")

    def no_data(*args, **kwargs):
        raise AssertionError("training started although the checkpoint cannot be written")

    monkeypatch.setattr(T, "_ShardedSynthetic", no_data)
    cfg = T.training_config("quick", walled=True, **ONE_EPOCH)
    with pytest.raises(NotWritableError) as info:
        T.train(cfg, device="cpu", checkpoint=blocker / "sub" / "x.pt", show_progress=False)
    message = str(info.value)
    assert str(blocker / "sub") in message and f"{blocker} is a file, not a folder" in message
    assert "CAMWALLS_HOME" in message


def test_cli_summary_json_that_cannot_be_written_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "afile.txt"
    blocker.write_text("x")
    ckpt = tmp_path / "cli.pt"
    code = T.main(["--profile", "quick", "--baseline", "--width", "1/32", "--epochs", "1", "--train-images", "4",
                   "--batch-size", "4", "--val-images", "2", "--no-progress", "--checkpoint", str(ckpt),
                   "--summary-json", str(blocker / "s.json")])
    err = capsys.readouterr().err
    assert code == 2 and not ckpt.exists()
    assert err.startswith("error: The folder of --summary-json") and str(blocker) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
