"""Training the walled ResNet of "Beyond the paper" (question 4): a small ResNet whose global
average pool does not read the bottom map rows (:func:`helpers.models.walled_resnet`).

It trains with the one loop (:func:`helpers.train.fit`) and the checkpoints of rVGG
(:mod:`helpers.train.checkpoints`: one per epoch, resumable, a configuration that differs is
refused): on the synthetic world (a fixed set generated once and reused every epoch, flipped on
odd epochs, up to :data:`FIXED_SET_LIMIT` images; fresh batches beyond) or on the profile's real
training set (its augmentation); SGD with Nesterov momentum and a one-cycle schedule. Its sizes
per profile are :data:`RESNET_SETTINGS`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import cli
from .. import data as D
from ..config import (
    Profile,
    cache_dir,
    get_device,
    get_profile,
    seed_everything,
)
from ..locks import cache_lock
from ..models import WalledResNet, walled_resnet
from .checkpoints import (
    checkpoint_info,
    load_checkpoint,
    load_weights,
    resume_training,
    save_checkpoint,
    training_checkpoint,
)
from .config import config_key
from .loop import FitState, fit
from .streams import RealBatches, ShuffledTensors

__all__ = [
    "RESNET_VERSION",
    "ResNetSettings",
    "RESNET_SETTINGS",
    "FIXED_SET_LIMIT",
    "resnet_training_config",
    "resnet_checkpoint_path",
    "resnet_batches",
    "train_or_load_resnet",
]

#: Version of the ResNet's training; part of its cache key (bump it when training changes).
RESNET_VERSION = 1


@dataclass(frozen=True)
class ResNetSettings:
    """The walled ResNet of a profile: channel multiplier, hidden map rows, synthetic training
    images, epochs, batch size and peak learning rate."""

    width: float
    wall_rows: int
    train_images: int
    epochs: int
    batch_size: int
    lr: float


#: The ResNet's sizes per profile.
RESNET_SETTINGS: dict[str, ResNetSettings] = {
    "quick": ResNetSettings(
        width=0.5, wall_rows=5, train_images=1024, epochs=12, batch_size=32, lr=0.1
    ),
    "full": ResNetSettings(
        width=4.0, wall_rows=5, train_images=50000, epochs=30, batch_size=128, lr=0.1
    ),
}

#: Up to this many training images the ResNet's images are generated once, kept in float16 and
#: reused every epoch (generating them costs about as much as a training step); beyond, every
#: epoch draws fresh batches from the synthetic stream.
FIXED_SET_LIMIT = 4096

_OVERRIDES = (
    "width",
    "train_images",
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "seed",
    "weight_decay",
    "num_workers",
)


def resnet_training_config(
    profile: str | Profile | None = None, wall_rows: int | None = None, **overrides: Any
) -> dict[str, Any]:
    """The configuration of the walled ResNet (a JSON-serialisable dict; its hash keys the
    checkpoint cache).

    Args:
        profile: profile name or object.
        wall_rows: hidden map rows (default :attr:`ResNetSettings.wall_rows` of the profile).
        **overrides: ``width``, ``train_images`` (synthetic data), ``epochs``, ``batch_size``,
            ``lr``, ``momentum``, ``weight_decay``, ``seed``, ``num_workers`` (real data loader).

    Raises:
        ValueError: on an unknown override, naming the valid ones.
    """
    prof = get_profile(profile)
    s = RESNET_SETTINGS[prof.name]
    cfg = {
        "arch": "walled_resnet",
        "profile": prof.name,
        "width": float(s.width),
        "wall_rows": int(s.wall_rows if wall_rows is None else wall_rows),
        "num_classes": int(prof.data.num_classes),
        "train_images": int(s.train_images),
        "epochs": int(s.epochs),
        "batch_size": int(s.batch_size),
        "lr": float(s.lr),
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "seed": 0,
        "num_workers": int(prof.train.num_workers),
        "data_version": D.DATA_VERSION,
        "version": RESNET_VERSION,
    }
    unknown = set(overrides) - set(_OVERRIDES)
    if unknown:
        raise ValueError(
            f"unknown ResNet override(s) {sorted(unknown)}; valid: {', '.join(sorted(_OVERRIDES))}."
        )
    cfg.update({k: type(cfg[k])(v) for k, v in overrides.items()})
    cfg["data"] = dataclasses.asdict(prof.data)
    return cfg


def resnet_checkpoint_path(cfg: dict[str, Any]) -> Path:
    """``<cache>/checkpoints/<profile>/resnet-w<rows>-<key>.pt`` (a path; no folder is made)."""
    return (
        cache_dir("checkpoints", cfg["profile"], create=False)
        / f"resnet-w{cfg['wall_rows']}-{config_key(cfg)}.pt"
    )


def resnet_batches(
    cfg: dict[str, Any],
    generator: torch.Generator,
    device: torch.device = torch.device("cpu"),
) -> ShuffledTensors | D.SyntheticStream | RealBatches:
    """The ResNet's training batches: a fixed synthetic set (up to :data:`FIXED_SET_LIMIT`
    images, shuffled by ``generator``), fresh synthetic batches, or the real training set."""
    n, bs, seed = int(cfg["train_images"]), int(cfg["batch_size"]), int(cfg["seed"])
    if cfg["data"]["source"] != "synthetic":
        prof = get_profile(cfg["profile"])
        prof = prof.replace(data=dataclasses.replace(prof.data, **cfg["data"]))
        dataset = D.real_dataset(prof, split="train")
        return RealBatches(
            dataset,
            int(cfg["num_classes"]),
            bs,
            lambda epoch: seed * 100003 + epoch,
            num_workers=int(cfg["num_workers"]),
            pin_memory=device.type == "cuda",
            remedy="Set the profile's data.num_classes to match.",
        )
    if n > FIXED_SET_LIMIT:
        return D.SyntheticStream(
            n, bs, 4242 + seed, num_classes=int(cfg["num_classes"])
        )
    chunk = 256
    images, labels = [], []
    for start in range(0, n, chunk):
        b = D.synthetic_batch(
            min(chunk, n - start),
            4242 + 1000 * seed + start,
            num_classes=int(cfg["num_classes"]),
        )
        images.append(b.images.half())
        labels.append(b.labels)
    return ShuffledTensors(
        torch.cat(images),
        torch.cat(labels),
        bs,
        generator,
        drop_last=True,
        flip_odd_epochs=True,
    )


def train_or_load_resnet(
    profile: str | Profile | None = None,
    wall_rows: int | None = None,
    device: str | torch.device | None = None,
    show_progress: bool = True,
    **overrides: Any,
) -> tuple[WalledResNet, dict[str, Any]]:
    """The trained :class:`~helpers.models.WalledResNet` of a profile, from the checkpoint cache
    or trained now (see the module's docstring); an unfinished checkpoint (a run killed mid-way)
    is resumed.

    Args:
        profile: profile name or object.
        wall_rows: hidden map rows (default: the profile's :data:`RESNET_SETTINGS`).
        device: where the model trains and is returned (default :func:`helpers.config.get_device`).
        show_progress: a tqdm bar over the steps.
        **overrides: see :func:`resnet_training_config`.

    Returns:
        ``(model, info)``: eval mode; ``info`` has ``config``, ``key``, ``checkpoint``,
        ``metrics_csv``, ``history`` (one row per epoch), ``train_seconds``, ``complete``,
        ``epochs_done``, ``from_cache``.

    Raises:
        ValueError: when the synthetic set is smaller than one batch, or the real training set
            has another number of classes; the checkpoint errors of
            :func:`helpers.train.load_checkpoint` (all ``ValueError``).
    """
    cfg = resnet_training_config(profile, wall_rows, **overrides)
    path = resnet_checkpoint_path(cfg)
    dev = get_device(device)
    # another process (a notebook built beside this one) may be training it: wait, then load
    with cache_lock(path, what="the walled ResNet"):
        return _train_or_load_resnet(cfg, path, dev, show_progress)


def _train_or_load_resnet(
    cfg: dict[str, Any], path: Path, dev: torch.device, show_progress: bool
) -> tuple[WalledResNet, dict[str, Any]]:
    ckpt = load_checkpoint(path, cfg) if path.is_file() else None
    if ckpt is not None and ckpt.get("complete"):
        model = walled_resnet(cfg["num_classes"], cfg["width"], cfg["wall_rows"])
        load_weights(model, ckpt["model"], path, "walled ResNet")
        return model.to(dev).eval(), checkpoint_info(
            cfg, path, ckpt, dev, from_cache=True
        )
    if cfg["data"]["source"] == "synthetic" and int(cfg["train_images"]) < int(
        cfg["batch_size"]
    ):
        raise ValueError(
            f"train_images={cfg['train_images']} is smaller than one batch ({cfg['batch_size']})."
        )
    # before training: a checkpoint that cannot be saved fails now, not after
    cli.ensure_writable_folder(
        path.parent, "The checkpoint folder", "Set CAMWALLS_HOME to a writable folder."
    )
    gen = seed_everything(int(cfg["seed"]))
    model = walled_resnet(cfg["num_classes"], cfg["width"], cfg["wall_rows"]).to(dev)
    t0 = time.perf_counter()
    batches = resnet_batches(cfg, gen, dev)
    epochs = int(cfg["epochs"])
    opt = torch.optim.SGD(
        model.parameters(),
        lr=cfg["lr"],
        momentum=cfg["momentum"],
        nesterov=True,
        weight_decay=cfg["weight_decay"],
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg["lr"], total_steps=len(batches) * epochs, pct_start=0.2
    )
    if ckpt is not None:
        state = resume_training(
            ckpt,
            path,
            model,
            opt,
            dev,
            scheduler=sched,
            generator=gen,
            what="walled ResNet",
        )
    else:
        state = FitState(
            seconds=time.perf_counter() - t0
        )  # the fixed set's making counts

    def end_epoch(state: FitState) -> None:
        save_checkpoint(
            training_checkpoint(
                cfg,
                model,
                opt,
                state,
                state.epoch == epochs,
                dev,
                scheduler=sched,
                generator=gen,
            ),
            path,
        )

    fit(
        model,
        batches,
        opt,
        epochs=epochs,
        device=dev,
        state=state,
        scheduler=sched,
        channels_last=True,
        end_epoch=end_epoch,
        show_progress=show_progress,
        desc="training the walled ResNet",
    )
    model.eval()
    return model, checkpoint_info(
        cfg, path, load_checkpoint(path, cfg), dev, from_cache=False
    )
