"""The one training loop (:func:`fit`), used by every training of the book: rVGG
(:func:`helpers.train.train`), the walled ResNet (:func:`helpers.train.train_or_load_resnet`)
and the walled heads of the wall-height sweep (:func:`helpers.train.train_walled_head`).

What differs between them comes in as arguments: the model (or the part of it that trains),
the batches (anything with ``len()`` steps per epoch and ``epoch(e)`` yielding ``(x, y)``), the
optimizer, the schedule (a learning rate per step, ``lr_at``, or a torch ``scheduler`` stepped
after each step), and what happens at the end of an epoch (validation, a checkpoint). The loop
itself is the same: cross-entropy, a gradient step (bf16 autocast and a gradient scaler where
asked, on a GPU; gradient-norm clipping if asked), running sums of loss and accuracy kept on the
device, a loss curve every ``log_every`` steps, one history row per epoch, a tqdm bar
(:func:`helpers.config.progress`). Under ``torchrun`` the model is wrapped in DDP.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..config import progress

__all__ = [
    "Batches",
    "FitState",
    "fit",
    "dist_env",
    "init_distributed",
    "amp_dtype",
    "autocast",
]


class Batches(Protocol):
    """What :func:`fit` trains on: ``len()`` steps per epoch, ``epoch(e)`` yields them."""

    def __len__(self) -> int: ...  # noqa: D105

    def epoch(self, epoch: int) -> Any: ...  # noqa: D102


@dataclass
class FitState:
    """Where a training run stands; what a checkpoint resumes from.

    Attributes:
        epoch: epochs done.
        step: the global step running (0-based; read by hooks during the step).
        history: one row per epoch done: ``epoch``, ``step`` (steps done), ``lr`` (of the last
            step), ``train_loss``, ``train_acc`` (means over the epoch), what the validation
            returned, ``seconds``.
        curve: ``[step, loss, accuracy]`` every ``log_every`` steps.
        seconds: training time so far.
    """

    epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    curve: list[list[float]] = field(default_factory=list)
    seconds: float = 0.0


def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment (1 process: 0, 1, 0)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, world, local


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join torchrun's process group (once; NCCL on GPUs, gloo on CPUs); ``(rank, world)``."""
    rank, world, _ = dist_env()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return rank, world


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast type on ``device``: bf16 (fp16 where a GPU lacks it); ``None`` off a GPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, mixed_precision: bool):
    """``torch.autocast`` with :func:`amp_dtype` when ``mixed_precision`` on a GPU; else nothing."""
    dtype = amp_dtype(device) if mixed_precision else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def fit(
    model: nn.Module,
    batches: Batches,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    device: torch.device,
    state: FitState | None = None,
    stop_epoch: int | None = None,
    lr_at: Callable[[int], float] | None = None,
    scheduler: Any = None,
    mixed_precision: bool = False,
    channels_last: bool = False,
    grad_clip: float = 0.0,
    log_every: int = 0,
    validate: Callable[[], dict[str, float]] | None = None,
    end_epoch: Callable[[FitState], None] | None = None,
    rank: int = 0,
    world: int = 1,
    compile: bool = False,
    show_progress: bool = True,
    desc: str = "training",
) -> FitState:
    """Train ``model`` on ``batches`` from epoch ``state.epoch`` to ``epochs`` (or ``stop_epoch``).

    Args:
        model: the module that trains (on ``device``; the loop puts it in training mode).
        batches: ``len(batches)`` steps per epoch; ``batches.epoch(e)`` yields ``(x, y)``.
        optimizer: over ``model``'s trainable parameters.
        epochs: the run's length (the last epoch completes it).
        device: where the batches go.
        state: where the run stands (a resumed run's; default: a fresh run). Updated in place.
        stop_epoch: stop after this epoch (the run is then unfinished; a later call resumes).
        lr_at: the learning rate of global step ``s`` (set on every parameter group before it).
        scheduler: a torch learning-rate scheduler, stepped after every optimizer step.
        mixed_precision: bf16 (or fp16 with a gradient scaler) autocast on a GPU.
        channels_last: the images in channels-last memory layout.
        grad_clip: clip the gradient norm to this (0: no clipping).
        log_every: a point of ``state.curve`` every this many steps (0: none).
        validate: called at the end of every epoch (model in training mode); its dict goes into
            the epoch's history row.
        end_epoch: called with ``state`` after every epoch (e.g. to write a checkpoint).
        rank, world: this process and their number (``world > 1``: DDP, a barrier per epoch).
        compile: ``torch.compile`` the model on a GPU.
        show_progress: a tqdm bar over the steps (rank 0 only).
        desc: the bar's label.

    Returns:
        ``state``, after the last epoch trained.
    """
    state = state if state is not None else FitState()
    net: nn.Module = model
    if world > 1:
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if compile and device.type == "cuda":
        net = torch.compile(net)
    scaler = torch.amp.GradScaler(
        "cuda", enabled=mixed_precision and amp_dtype(device) == torch.float16
    )
    steps = len(batches)
    last = epochs if stop_epoch is None else min(epochs, stop_epoch)
    bar = progress(
        total=max(0, last - state.epoch) * steps,
        disable=not show_progress or rank != 0,
        desc=desc,
        leave=False,
    )
    model.train()
    for epoch in range(state.epoch, last):
        t0 = time.perf_counter()
        # running sums stay on the device; they are read (a synchronisation) only every
        # log_every steps and at the end of the epoch
        run = torch.zeros(
            3, device=device, dtype=torch.float64
        )  # loss sum, correct, count
        win = torch.zeros(3, device=device, dtype=torch.float64)
        lr = float("nan")
        for step, (x, y) in enumerate(batches.epoch(epoch)):
            state.step = epoch * steps + step
            if lr_at is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(state.step)
            lr = optimizer.param_groups[0]["lr"]
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, mixed_precision):
                out = net(x)
                loss = F.cross_entropy(out.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
            if scheduler is not None:
                scheduler.step()
            with torch.no_grad():
                b = y.shape[0]
                stats = torch.stack(
                    [
                        loss.detach().double() * b,
                        (out.detach().argmax(1) == y).sum().double(),
                        torch.tensor(float(b), device=device, dtype=torch.float64),
                    ]
                )
                run += stats
                win += stats
            if log_every > 0 and (state.step + 1) % log_every == 0:
                w = win.tolist()
                state.curve.append([state.step + 1, w[0] / w[2], w[1] / w[2]])
                win.zero_()
                if rank == 0:
                    bar.set_postfix(loss=f"{w[0] / w[2]:.3f}", epoch=epoch + 1)
            bar.update(1)
        run_loss, run_correct, run_n = run.tolist()
        row = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * steps,
            "lr": lr,
            "train_loss": run_loss / max(run_n, 1),
            "train_acc": run_correct / max(run_n, 1),
        }
        if validate is not None:
            row.update(validate())
        model.train()
        row["seconds"] = time.perf_counter() - t0
        state.seconds += row["seconds"]
        state.history.append(row)
        state.epoch = epoch + 1
        if log_every <= 0 and rank == 0:
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", epoch=epoch + 1)
        if end_epoch is not None:
            end_epoch(state)
        if world > 1:
            dist.barrier()
    bar.close()
    return state
