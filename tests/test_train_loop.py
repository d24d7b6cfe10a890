"""Tests of helpers.train.loop (the one training loop), its batch sources and the one checkpoint
format, on toy models that train in milliseconds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import train as T


def _toy_data(n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 8, generator=gen) + 2.0 * nn.functional.one_hot(y, 8).float()
    return x, y


def _toy_model() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


def test_shuffled_tensors_batches_every_item_once_per_epoch():
    x, y = torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10)
    keep = T.ShuffledTensors(x, y, 4, torch.Generator().manual_seed(0))
    batches = list(keep.epoch(0))
    assert len(keep) == 3 and [len(b) for _, b in batches] == [4, 4, 2]
    assert sorted(torch.cat([b for _, b in batches]).tolist()) == list(range(10))
    drop = T.ShuffledTensors(
        x.half(),
        y,
        4,
        torch.Generator().manual_seed(0),
        drop_last=True,
        flip_odd_epochs=True,
    )
    assert len(drop) == 2 and [len(b) for _, b in drop.epoch(0)] == [4, 4]
    bx, by = next(drop.epoch(1))
    assert bx.dtype == torch.float32 and torch.equal(
        bx.flatten(), by.float()
    )  # exact: exact-float
    images = torch.arange(12.0).view(3, 1, 1, 4)
    flip = T.ShuffledTensors(
        images,
        torch.arange(3),
        3,
        torch.Generator().manual_seed(0),
        flip_odd_epochs=True,
    )
    (even, ye), (odd, yo) = next(flip.epoch(0)), next(flip.epoch(1))
    assert torch.equal(even, images[ye]) and torch.equal(
        odd, images[yo].flip(3)
    )  # exact: exact-float


def test_fit_learns_and_records_a_history():
    torch.manual_seed(0)
    x, y = _toy_data()
    model = _toy_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = T.ShuffledTensors(x, y, 8, torch.Generator().manual_seed(1))
    seen = []
    state = T.fit(
        model,
        batches,
        opt,
        epochs=4,
        device=torch.device("cpu"),
        lr_at=lambda s: 0.1 / (1 + s),
        log_every=2,
        validate=lambda: {"val_acc": 0.5},
        end_epoch=lambda s: seen.append(s.epoch),
        show_progress=False,
    )
    assert seen == [1, 2, 3, 4] and state.epoch == 4 and len(state.history) == 4
    row = state.history[-1]
    assert list(row) == [
        "epoch",
        "step",
        "lr",
        "train_loss",
        "train_acc",
        "val_acc",
        "seconds",
    ]
    assert row["step"] == 12 and row["lr"] == pytest.approx(
        0.1 / 12
    )  # the last step's (step 11)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 / 12)
    assert [c[0] for c in state.curve] == [2, 4, 6, 8, 10, 12]
    assert state.history[-1]["train_loss"] < state.history[0]["train_loss"]
    assert 0 <= row["train_acc"] <= 1 and model.training


def test_fit_steps_a_scheduler_after_every_step():
    torch.manual_seed(0)
    x, y = _toy_data()
    model = _toy_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=9)
    T.fit(
        model,
        T.ShuffledTensors(x, y, 8, torch.Generator()),
        opt,
        epochs=3,
        device=torch.device("cpu"),
        scheduler=sched,
        show_progress=False,
    )
    assert sched.last_epoch == 9  # exact: integer


def _toy_run(tmp_path, stop_epoch=None, fresh=True):
    """A toy run with everything a resumed run must put back: dropout (the global generator), a
    data order drawn from its own generator, Adam's moments and a one-cycle schedule."""
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "toy.pt"
    cfg = {"toy": 1}
    torch.manual_seed(0)
    model = _toy_model()
    gen = torch.Generator().manual_seed(5)
    x, y = _toy_data()
    batches = T.ShuffledTensors(x, y, 8, gen)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.01, total_steps=4 * len(batches)
    )
    dev = torch.device("cpu")
    state = T.FitState()
    if not fresh:
        state = T.resume_training(
            T.load_checkpoint(path, cfg),
            path,
            model,
            opt,
            dev,
            scheduler=sched,
            generator=gen,
        )

    def end_epoch(state):
        T.save_checkpoint(
            T.training_checkpoint(
                cfg,
                model,
                opt,
                state,
                state.epoch == 4,
                dev,
                scheduler=sched,
                generator=gen,
            ),
            path,
        )

    T.fit(
        model,
        batches,
        opt,
        epochs=4,
        device=dev,
        state=state,
        stop_epoch=stop_epoch,
        scheduler=sched,
        end_epoch=end_epoch,
        show_progress=False,
    )
    return model, path


def test_a_stopped_run_resumed_from_its_checkpoint_is_bit_identical(tmp_path):
    full, path = _toy_run(tmp_path / "a")
    ckpt = T.load_checkpoint(path)
    assert (
        ckpt["complete"]
        and "optimizer" not in ckpt
        and "scheduler" not in ckpt
        and ckpt["epoch"] == 4
    )
    assert [r["epoch"] for r in T.read_metrics(path)] == [1.0, 2.0, 3.0, 4.0]
    _, path = _toy_run(tmp_path / "b", stop_epoch=2)
    half = T.load_checkpoint(path)
    assert (
        not half["complete"]
        and half["epoch"] == 2
        and {"optimizer", "scheduler", "rng_data"} <= set(half)
    )
    resumed, _ = _toy_run(tmp_path / "b", fresh=False)
    for (k, p), q in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), k  # exact: repeat
    with pytest.raises(T.ConfigMismatchError, match="toy"):
        T.load_checkpoint(path, {"toy": 2})
