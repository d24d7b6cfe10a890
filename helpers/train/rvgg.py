"""Training rVGG, the walled model and its baseline, from a CPU quick profile to several GPUs.

``train_or_load(profile, walled)`` is what notebooks call: it returns the trained model (eval
mode) and a dict of information, loading it from the checkpoint cache when a checkpoint of
*exactly* the same configuration is there (:func:`helpers.train.training_config`), training it
otherwise (:func:`train`, one run of :func:`helpers.train.fit`):

* data: the synthetic world (``quick``: batch ``b`` of epoch ``e`` is a pure function of the
  seed, ``e`` and ``b``) or a real dataset (``full``: ImageFolder / Imagenette, the paper's
  augmentation, a seeded shuffle per epoch);
* optimizer: SGD with momentum and weight decay, StepLR (the paper's recipe) or Adam with
  warm-up and a cosine schedule (the quick profile); gradient-norm clipping if asked; the
  quick profile's training aids (:mod:`helpers.train.recipes`), each leaving a plain rVGG;
* on a GPU: bf16 autocast (fp16 with a gradient scaler where bf16 is missing), channels_last,
  optional ``torch.compile``; on several GPUs, DDP when launched with ``torchrun``;
* a checkpoint after every epoch, written atomically (:mod:`helpers.train.checkpoints`); a run
  killed mid-way resumes from the last epoch and ends with the very same weights as an
  uninterrupted run (bit-identical on the CPU); a metrics log (CSV) beside it.

``train_both`` trains the walled model and the baseline at once, in two processes on a CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import cli
from .. import data as D
from ..config import Profile, get_device, seed_everything
from ..locks import cache_lock
from ..masked_forward import VisibleRowsNet
from ..models import RVGG
from .accuracy import evaluate_accuracy, evaluate_dataset, position_accuracy
from .checkpoints import (
    checkpoint_info,
    load_checkpoint,
    load_weights,
    resume_training,
    save_checkpoint,
    training_checkpoint,
)
from .config import checkpoint_path, config_key, profile_from_config, training_config
from .pretrained import pretrained_checkpoint, use_pretrained
from .loop import FitState, dist_env, fit, init_distributed
from .recipes import (
    add_batch_norm,
    build_model,
    finalize_model,
    freeze_convolutions,
    learning_rate,
    standardize_weights,
    tie_positions_hook,
    tied_steps,
)
from .streams import RealBatches, ShardedSynthetic

__all__ = [
    "train",
    "train_or_load",
    "train_both",
    "train_in_processes",
    "is_trained",
    "install_shipped",
]


def training_batches(
    config: dict[str, Any],
    rank: int = 0,
    world: int = 1,
    device: torch.device = torch.device("cpu"),
) -> ShardedSynthetic | RealBatches:
    """The training batches of ``config``: the synthetic stream (seed ``data.seed * 1000 +
    train.seed``) or the real training set (a shuffle seeded by ``train.seed`` and the epoch)."""
    d, t = config["data"], config["train"]
    if d["source"] == "synthetic":
        return ShardedSynthetic(
            int(d["train_images"]),
            int(t["batch_size"]),
            int(d["seed"]) * 1000 + int(t["seed"]),
            num_classes=int(d["num_classes"]),
            below_share=float(d["below_share"]),
            instances=int(d.get("instances", 1)),
            rank=rank,
            world=world,
        )
    dataset = D.real_dataset(profile_from_config(config), split="train")
    k, found = int(d["num_classes"]), len(dataset.classes)
    seed = int(t["seed"])
    return RealBatches(
        dataset,
        k,
        int(t["batch_size"]),
        lambda epoch: D.mix_seed(seed, epoch),
        seed=seed,
        num_workers=int(t["num_workers"]),
        pin_memory=device.type == "cuda",
        persistent_workers=True,
        rank=rank,
        world=world,
        remedy=f"Pass num_classes={found} (e.g. train_or_load(..., num_classes={found})).",
    )


def _validation(
    config: dict[str, Any], model: nn.Module, device: torch.device, channels_last: bool
) -> Callable[[], dict[str, float]]:
    """The end-of-epoch validation of ``config``: ``{"val_loss", "val_acc"}`` on fixed synthetic
    images or on the real validation set."""
    d, t = config["data"], config["train"]
    if d["source"] == "synthetic":
        b = D.synthetic_batch(
            int(d["val_images"]),
            D.mix_seed(int(d["seed"]), 424242),
            num_classes=int(d["num_classes"]),
            below_share=float(d["below_share"]),
        )

        def validate() -> dict[str, float]:
            acc, loss = evaluate_accuracy(
                model,
                b.images,
                b.labels,
                batch_size=int(t["batch_size"]),
                device=device,
                channels_last=channels_last,
            )
            return {"val_loss": loss, "val_acc": acc}

        return validate
    dataset = D.real_dataset(profile_from_config(config), split="val", train=False)

    def validate_real() -> dict[str, float]:
        acc, loss = evaluate_dataset(
            model,
            dataset,
            device,
            batch_size=int(t["batch_size"]),
            num_workers=int(t["num_workers"]),
            mixed_precision=bool(t["mixed_precision"]),
        )
        return {"val_loss": loss, "val_acc": acc}

    return validate_real


def _make_optimizer(model: nn.Module, config: dict[str, Any]) -> torch.optim.Optimizer:
    t = config["train"]
    params = [p for p in model.parameters() if p.requires_grad]
    if t["optimizer"] == "sgd":
        return torch.optim.SGD(
            params,
            lr=float(t["lr"]),
            momentum=float(t["momentum"]),
            weight_decay=float(t["weight_decay"]),
        )
    return torch.optim.Adam(
        params, lr=float(t["lr"]), weight_decay=float(t["weight_decay"])
    )


def train(
    config: dict[str, Any],
    device: str | torch.device | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    stop_after_epochs: int | None = None,
    show_progress: bool = True,
) -> tuple[RVGG, dict[str, Any]]:
    """Train rVGG for ``config`` (see :func:`training_config`), checkpointing every epoch.

    Args:
        config: the configuration.
        device: ``"cpu"``, ``"cuda"``... (default :func:`helpers.config.get_device`; under
            ``torchrun`` each process takes ``cuda:<LOCAL_RANK>``).
        checkpoint: the checkpoint file (default :func:`checkpoint_path`).
        resume: continue from an unfinished checkpoint of the same configuration (a checkpoint
            of another configuration raises :class:`ConfigMismatchError`).
        stop_after_epochs: stop after this many epochs *in this call* (the checkpoint is then
            unfinished; a later call resumes) -- used to show that resuming changes nothing.
        show_progress: a tqdm bar over the steps (silent in the book build).

    Returns:
        ``(model, info)``: the model in eval mode on ``device``, and the information dict
        (see :func:`train_or_load`).

    Raises:
        helpers.cli.NotWritableError: before the first step, when the checkpoint's folder
            cannot be created or written to.
        helpers.config.CheckpointError, ConfigMismatchError, helpers.models.WallError, ValueError:
            when resuming from a checkpoint that is unreadable, of another configuration, with
            an open wall, or of another layout (see :func:`load_checkpoint`); all ``ValueError``.
    """
    rank, world, local = dist_env()
    if world > 1 and device is None and torch.cuda.is_available():
        device = torch.device(f"cuda:{local}")
    device = get_device(device)
    if device.type == "cuda" and world > 1:
        torch.cuda.set_device(device)
    rank, world = init_distributed(device)
    t = config["train"]
    if device.type == "cpu" and int(t["num_threads"]) > 0:
        torch.set_num_threads(int(t["num_threads"]))
    path = Path(checkpoint) if checkpoint is not None else checkpoint_path(config)

    seed_everything(int(t["seed"]))
    model = build_model(config)
    freeze_convolutions(model, int(t.get("freeze_convs", 0)))
    if t.get("weight_standardization"):
        standardize_weights(model, skip=int(t.get("freeze_convs", 0)))
    if t.get("batch_norm"):
        add_batch_norm(model)
    channels_last = bool(t["channels_last"]) or device.type == "cpu"
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = _make_optimizer(model, config)
    state = FitState()
    if resume and path.is_file():
        ckpt = load_checkpoint(path, config)
        if ckpt.get("complete"):
            model = finalize_model(model)
            load_weights(model, ckpt["model"], path)
            model.eval()
            return model, _info(config, path, ckpt, device, from_cache=True)
        state = resume_training(ckpt, path, model, optimizer, device)
    # before the first epoch, not after it: the checkpoint folder must be writable (checked on
    # every process, so that all of a DDP run stop at once)
    cli.ensure_writable_folder(
        path.parent,
        "The checkpoint folder",
        "Pass another checkpoint path (checkpoint=..., --checkpoint) or set CAMWALLS_HOME to a "
        "writable folder.",
    )

    batches = training_batches(config, rank, world, device)
    validate = _validation(config, model, device, channels_last)
    steps, epochs = len(batches), int(t["epochs"])
    tie_steps = tied_steps(float(t.get("tie_fraction", 0.0)), steps * epochs)
    tie_handle = (
        tie_positions_hook(model, lambda: state.step < tie_steps)
        if tie_steps > 0
        else None
    )

    def end_epoch(state: FitState) -> None:
        if rank != 0:
            return
        complete = state.epoch == epochs
        if complete:
            finalize_model(model)  # plain rVGG weights from now on
        ckpt = training_checkpoint(
            config, model, optimizer, state, complete, device, world
        )
        if complete:
            ckpt["position_accuracy"] = _position_accuracy_from_config(
                model, config, device
            )
        save_checkpoint(ckpt, path)

    # a walled model needs only the input rows above the wall: the same logits and gradients
    # (batch norm's statistics would see the rows, so not with it)
    visible = (
        t.get("visible_rows") and config["wall_rows"] > 0 and not t.get("batch_norm")
    )
    net = VisibleRowsNet(model) if visible else model
    fit(
        net,
        batches,
        optimizer,
        epochs=epochs,
        device=device,
        state=state,
        stop_epoch=None
        if stop_after_epochs is None
        else state.epoch + int(stop_after_epochs),
        lr_at=lambda step: learning_rate(config, step, steps),
        mixed_precision=bool(t["mixed_precision"]),
        channels_last=channels_last,
        grad_clip=float(t["grad_clip"]),
        log_every=max(1, int(t["log_every"])),
        validate=validate,
        end_epoch=end_epoch,
        rank=rank,
        world=world,
        compile=bool(t["compile"]),
        show_progress=show_progress,
        desc=f"training {'walled' if config['wall_rows'] else 'baseline'} rVGG",
    )
    if tie_handle is not None:
        tie_handle.remove()
    if state.epoch == epochs:
        finalize_model(model)  # on every rank (rank 0 did it before saving)
    for p in model.parameters():  # frozen layers are ordinary layers again
        p.requires_grad_(True)
    model.eval()
    final = (
        load_checkpoint(path, config)
        if rank == 0
        else {
            "history": state.history,
            "curve": state.curve,
            "train_seconds": state.seconds,
            "complete": False,
            "epoch": state.epoch,
        }
    )
    return model, _info(config, path, final, device, from_cache=False)


def _position_accuracy_from_config(
    model: nn.Module, config: dict[str, Any], device: torch.device
) -> dict[str, float]:
    try:
        return position_accuracy(model, profile_from_config(config), device=device)
    except D.MissingDataError:
        return {}


def _info(
    config: dict[str, Any],
    path: Path,
    ckpt: dict[str, Any],
    device: torch.device,
    from_cache: bool,
) -> dict[str, Any]:
    info = checkpoint_info(config, path, ckpt, device, from_cache)
    history = info["history"]
    info.update(
        walled=config["wall_rows"] > 0,
        val_accuracy=history[-1]["val_acc"] if history else float("nan"),
        position_accuracy=dict(ckpt.get("position_accuracy", {})),
        source=ckpt.get("source", "trained"),
    )
    return info


def train_or_load(
    profile: str | Profile | None = None,
    walled: bool = True,
    device: str | torch.device | None = None,
    pair: bool = True,
    **overrides: Any,
) -> tuple[RVGG, dict[str, Any]]:
    """The trained rVGG of a profile (walled or baseline), from the cache or trained now.

    Args:
        profile: profile name or object (``None``: ``$CAMWALLS_PROFILE``).
        walled: the walled model (9 hidden map rows) or the baseline.
        device: where the returned model lives (default :func:`helpers.config.get_device`).
        pair: on a CPU with two cores or more, when neither this model nor its sibling (the
            baseline of a walled model, or the reverse; same overrides, no ``wall_rows``
            override) is in the cache, train both at once (:func:`train_both`), since the
            sibling is usually asked for next.
        **overrides: see :func:`training_config` (e.g. ``wall_rows=5``, ``epochs=2``,
            ``width=1/8``).

    Returns:
        ``(model, info)``: the model in eval mode; ``info`` holds ``config``, ``key``,
        ``checkpoint`` (path), ``metrics_csv``, ``history`` (one dict per epoch: ``epoch``,
        ``step``, ``lr``, ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``,
        ``seconds``), ``curve`` (``[step, loss, accuracy]`` every ``log_every`` steps),
        ``val_accuracy``, ``position_accuracy`` (``above``/``straddle``/``below``),
        ``train_seconds``, ``from_cache``, ``source``.

    Raises:
        ConfigMismatchError: when the checkpoint at the configuration's path holds another
            configuration (never silently used).
        helpers.config.CheckpointError: when the cached checkpoint is truncated or corrupt (the
            message names it: delete it and the next call trains the model again).
        helpers.models.WallError: when the cached checkpoint of a walled model has non-zero
            weights under the wall (all three are ``ValueError``).
    """
    config = training_config(profile, walled, **overrides)
    path = checkpoint_path(config)
    dev = get_device(device)
    pair = pair and "wall_rows" not in overrides
    sibling = (
        checkpoint_path(training_config(profile, not walled, **overrides))
        if pair
        else path
    )
    # another process (a notebook built beside this one) may be training it: wait, then load
    with cache_lock(path, sibling, what="the rVGG models"):
        install_shipped(config)
        if path.is_file():
            ckpt = load_checkpoint(path, config)
            if ckpt.get("complete"):
                model = build_model(config)
                load_weights(model, ckpt["model"], path)
                model.to(dev).eval()
                return model, _info(config, path, ckpt, dev, from_cache=True)
        if pair and not path.is_file():
            # its sibling (the baseline of a walled model, or the reverse) will be asked for
            # next: on a CPU, train both at the same time when both are missing
            if (
                dev.type == "cpu"
                and (os.cpu_count() or 1) >= 2
                and not sibling.is_file()
            ):
                both = train_both(profile, device=dev, **overrides)
                return both["walled" if walled else "baseline"]
        return train(config, device=dev, checkpoint=path, resume=True)


def install_shipped(config: dict[str, Any]) -> bool:
    """Put the model shipped with helpers for ``config`` (:mod:`helpers.train.pretrained`) into the
    checkpoint cache, when the cache has none, one was trained with exactly this configuration,
    and ``$CAMWALLS_PRETRAINED`` allows it. Returns whether it did."""
    path = checkpoint_path(config)
    if path.is_file() or not use_pretrained():
        return False
    shipped = pretrained_checkpoint(config)
    if shipped is None:
        return False
    cli.ensure_writable_folder(
        path.parent, "The checkpoint folder", "Set CAMWALLS_HOME to a writable folder."
    )
    save_checkpoint(shipped, path)
    return True


def is_trained(config: dict[str, Any]) -> bool:
    """Whether the cache holds a finished checkpoint of ``config``."""
    path = checkpoint_path(config)
    return path.is_file() and bool(load_checkpoint(path, config).get("complete"))


def train_in_processes(
    configs: dict[str, dict[str, Any]],
    device: str | torch.device | None = None,
    processes: int | None = None,
) -> None:
    """Train the configurations ``configs`` (name -> :func:`training_config`) that are not in the
    cache, ``processes`` at a time (default: one per core), each in its own
    process (``python -m helpers.train --config-json ...``) with ``cores // processes`` threads,
    its log beside its checkpoint (``.log``). Narrow convolutions use several threads poorly, so
    on a CPU two processes of one thread each train two models faster than one after the other.

    Raises:
        RuntimeError: when a training fails (after the others finish), with the end of its log.
    """
    paths = [checkpoint_path(cfg) for cfg in configs.values()]
    with cache_lock(*paths, what="the models " + ", ".join(configs)):
        _train_in_processes(configs, device, processes)


def _train_in_processes(
    configs: dict[str, dict[str, Any]],
    device: str | torch.device | None,
    processes: int | None,
) -> None:
    dev = get_device(device)
    cores = os.cpu_count() or 1
    todo = {name: cfg for name, cfg in configs.items() if not is_trained(cfg)}
    if not todo:
        return
    slots = max(1, min(len(todo), int(processes) if processes else cores))
    threads = max(1, cores // slots)
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        waiting = list(todo.items())
        running: list[tuple[str, subprocess.Popen, Any, Path]] = []
        while waiting or running:
            while waiting and len(running) < slots:
                name, cfg = waiting.pop(0)
                cfg = json.loads(json.dumps(cfg))
                cfg["train"]["num_threads"] = threads
                cfg_path = Path(tmp) / f"{len(waiting)}-{config_key(cfg)}.json"
                cfg_path.write_text(json.dumps(cfg))
                ckpt = checkpoint_path(cfg)
                cli.ensure_writable_folder(
                    ckpt.parent,
                    "The checkpoint folder",
                    "Set CAMWALLS_HOME to a writable folder.",
                )
                log = open(ckpt.with_suffix(".log"), "w")
                env = dict(os.environ, OMP_NUM_THREADS=str(threads))
                # --debug: a failure leaves its full traceback in the log
                cmd = [
                    sys.executable,
                    "-m",
                    "helpers.train",
                    "--config-json",
                    str(cfg_path),
                    "--checkpoint",
                    str(ckpt),
                    "--device",
                    str(dev),
                    "--no-progress",
                    "--debug",
                ]
                running.append(
                    (
                        name,
                        subprocess.Popen(
                            cmd, stdout=log, stderr=subprocess.STDOUT, env=env
                        ),
                        log,
                        ckpt,
                    )
                )
            done = [r for r in running if r[1].poll() is not None]
            if not done:
                time.sleep(0.5)
                continue
            for r in done:
                running.remove(r)
                name, proc, log, ckpt = r
                log.close()
                if proc.returncode != 0:
                    failed.append((name, ckpt.with_suffix(".log")))
    if failed:
        tail = failed[0][1].read_text()[-1500:] if failed[0][1].is_file() else ""
        raise RuntimeError(
            f"Training failed for {', '.join(n for n, _ in failed)}; see "
            f"{', '.join(str(p) for _, p in failed)}. End of the first log:\n{tail}"
        )


def train_both(
    profile: str | Profile | None = None,
    device: str | torch.device | None = None,
    parallel: bool | None = None,
    **overrides: Any,
) -> dict[str, tuple[RVGG, dict[str, Any]]]:
    """The walled model and the baseline, from the cache or trained now.

    On a CPU with at least two cores, when both are missing, the two trainings run at the same
    time in two processes (:func:`train_in_processes`) with half of the cores each -- faster
    than one after the other, since narrow convolutions use several threads poorly; elsewhere
    one after the other.

    Returns:
        ``{"walled": (model, info), "baseline": (model, info)}`` as :func:`train_or_load`.
    """
    dev = get_device(device)
    configs = {
        name: training_config(profile, walled=walled, **overrides)
        for name, walled in (("walled", True), ("baseline", False))
    }
    paths = [checkpoint_path(cfg) for cfg in configs.values()]
    with cache_lock(*paths, what="the rVGG models"):
        return _train_both(profile, dev, parallel, configs, overrides)


def _train_both(
    profile: str | Profile | None,
    dev: torch.device,
    parallel: bool | None,
    configs: dict[str, dict[str, Any]],
    overrides: dict[str, Any],
) -> dict[str, tuple[RVGG, dict[str, Any]]]:
    for cfg in configs.values():
        install_shipped(cfg)
    missing = [name for name, cfg in configs.items() if not is_trained(cfg)]
    if parallel is None:
        parallel = (
            dev.type == "cpu" and (os.cpu_count() or 1) >= 2 and len(missing) == 2
        )
    if parallel and len(missing) == 2:
        train_in_processes(configs, device=dev, processes=2)
    out = {}
    for name, walled in (("walled", True), ("baseline", False)):
        model, info = train_or_load(
            profile, walled=walled, device=dev, pair=False, **overrides
        )
        info["from_cache"] = (
            name not in missing
        )  # trained by this call, in its own process
        out[name] = (model, info)
    return out
