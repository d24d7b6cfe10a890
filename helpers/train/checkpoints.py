"""The checkpoints of every training (rVGG and the walled ResNet), in one format, and the
metrics log written beside them.

A checkpoint is a dict saved with ``torch.save`` after every epoch, atomically
(:func:`save_atomic`): ``config``, ``model`` (state dict), ``optimizer`` (and ``scheduler``,
``rng_data`` where the run has them), ``epoch``, ``history``, ``curve``, ``complete``,
``train_seconds``, ``rng_cpu`` (``rng_cuda``), ``device``, ``world_size``, ``torch``
(:func:`training_checkpoint`). A run killed mid-way resumes from the last one
(:func:`resume_training`) and ends with the very same weights as an uninterrupted run
(bit-identical on the CPU); a complete one keeps no optimizer state. Reading one
(:func:`load_checkpoint`) refuses a file of another configuration, naming the differences.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import read_checkpoint_file
from ..models import WallError
from .config import (
    ConfigMismatchError,
    canonical_config,
    config_differences,
    config_key,
)
from .loop import FitState

__all__ = [
    "save_atomic",
    "load_checkpoint",
    "load_weights",
    "training_checkpoint",
    "save_checkpoint",
    "resume_training",
    "checkpoint_info",
    "write_metrics_csv",
    "read_metrics",
]


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """``torch.save(obj, path)`` through a temporary file and a rename: a crash mid-write leaves
    the previous file (or none), never a truncated one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(
    path: str | Path, config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Read a checkpoint written by a training of :mod:`helpers.train`
    (:func:`helpers.config.read_checkpoint_file`: ``torch.load(weights_only=True)``).

    Raises:
        FileNotFoundError: when there is none at ``path``.
        helpers.config.CheckpointError: (a ``ValueError``) when torch cannot read the file
            (truncated by a full disk or a killed copy, corrupt, not a torch file); the message
            names the file and says to delete it and train again.
        ConfigMismatchError: when ``config`` is given and the checkpoint's differs (the
            differing fields are named).
        ValueError: when the file is not one of our checkpoints.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    ckpt = read_checkpoint_file(
        path,
        remedy=f"Delete {path} and run again: the checkpoint cache then trains this model anew "
        "(train_or_load, or python -m helpers.train).",
    )
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise ValueError(
            f"{path} is not a helpers.train checkpoint (no 'config'/'model' entries). "
            "For the authors' weights use helpers.data.load_authors_model."
        )
    if config is not None and canonical_config(ckpt["config"]) != canonical_config(
        config
    ):
        diffs = config_differences(ckpt["config"], config)
        raise ConfigMismatchError(
            f"The checkpoint {path} was made with another configuration; refusing to use it. "
            f"Differences: {'; '.join(diffs[:8]) or 'key order/types'}. Delete it or train with "
            "the checkpoint's settings."
        )
    return ckpt


def load_weights(
    model: nn.Module, state: dict[str, torch.Tensor], path: Path, what: str = "rVGG"
) -> None:
    """``model.load_state_dict(state)`` for the checkpoint at ``path``, with our errors.

    Raises:
        helpers.models.WallError: (a ``ValueError``) when ``state`` has non-zero weights under
            the wall of a walled model; the message names ``path`` and says to train again.
        ValueError: when the tensors do not fit the model (the ``what``) the configuration
            builds (names the first differences and says to delete the file).
    """
    try:
        model.load_state_dict(state)
    except WallError as err:
        raise WallError(
            f"The checkpoint {path}: {err} Or delete {path} and train again."
        ) from err
    except RuntimeError as err:
        detail = " | ".join(
            line.strip() for line in str(err).splitlines()[:4] if line.strip()
        )
        raise ValueError(
            f"The checkpoint {path} does not fit the {what} its configuration builds: {detail[:400]}. "
            f"Expected the tensors of that model. Delete {path} and train again."
        ) from err


def training_checkpoint(
    config: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: FitState,
    complete: bool,
    device: torch.device,
    world: int = 1,
    scheduler: Any = None,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """The checkpoint of a run after ``state.epoch`` epochs (see the module's docstring).

    A ``complete`` one keeps no optimizer or scheduler state (a finished model needs none)."""
    ckpt = {
        "config": config,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": state.epoch,
        "history": state.history,
        "curve": state.curve,
        "complete": complete,
        "train_seconds": state.seconds,
        "rng_cpu": torch.get_rng_state(),
        "device": str(device),
        "world_size": world,
        "torch": str(torch.__version__),
    }
    if scheduler is not None:
        ckpt["scheduler"] = scheduler.state_dict()
    if generator is not None:
        ckpt["rng_data"] = generator.get_state()
    if device.type == "cuda":
        ckpt["rng_cuda"] = torch.cuda.get_rng_state(device)
    if complete:
        ckpt.pop("optimizer")
        ckpt.pop("scheduler", None)
    return ckpt


def save_checkpoint(ckpt: dict[str, Any], path: Path) -> None:
    """Write ``ckpt`` to ``path`` (:func:`save_atomic`) and its history beside it (``.csv``)."""
    save_atomic(ckpt, path)
    write_metrics_csv(path.with_suffix(".csv"), ckpt["history"])


def resume_training(
    ckpt: dict[str, Any],
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    scheduler: Any = None,
    generator: torch.Generator | None = None,
    what: str = "rVGG",
) -> FitState:
    """Put the unfinished run of ``ckpt`` (read from ``path``) back: the weights (see
    :func:`load_weights`), the optimizer's and scheduler's state, the random generators; returns
    where it stands."""
    load_weights(model, ckpt["model"], path, what)
    optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    if generator is not None:
        generator.set_state(ckpt["rng_data"])
    torch.set_rng_state(ckpt["rng_cpu"])
    if device.type == "cuda" and "rng_cuda" in ckpt:
        torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
    return FitState(
        epoch=int(ckpt["epoch"]),
        history=list(ckpt["history"]),
        curve=[list(c) for c in ckpt["curve"]],
        seconds=float(ckpt["train_seconds"]),
    )


def checkpoint_info(
    config: dict[str, Any],
    path: Path,
    ckpt: dict[str, Any],
    device: torch.device,
    from_cache: bool,
) -> dict[str, Any]:
    """What every training returns beside its model: ``config``, ``key``, ``checkpoint`` (path),
    ``metrics_csv``, ``history``, ``curve``, ``train_seconds``, ``complete``, ``epochs_done``,
    ``device`` (where the model is), ``trained_on``, ``from_cache``."""
    return {
        "config": config,
        "key": config_key(config),
        "checkpoint": str(path),
        "metrics_csv": str(path.with_suffix(".csv")),
        "history": list(ckpt.get("history", [])),
        "curve": [list(c) for c in ckpt.get("curve", [])],
        "train_seconds": float(ckpt.get("train_seconds", float("nan"))),
        "complete": bool(ckpt.get("complete", False)),
        "epochs_done": int(ckpt.get("epoch", 0)),
        "device": str(device),
        "trained_on": ckpt.get("device", ""),
        "from_cache": from_cache,
    }


def write_metrics_csv(path: Path, history: list[dict[str, Any]]) -> None:
    """The per-epoch history as CSV (one row per epoch, the union of the rows' keys)."""
    if not history:
        return
    keys = list(history[0].keys())
    for row in history[1:]:
        keys += [k for k in row if k not in keys]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for row in history:
            writer.writerow(row)


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The per-epoch metrics log (CSV) written beside a checkpoint, as a list of dicts."""
    path = Path(path)
    if path.suffix == ".pt":
        path = path.with_suffix(".csv")
    with open(path, newline="") as fh:
        return [
            {
                k: float(v) if v not in ("", None) else float("nan")
                for k, v in row.items()
            }
            for row in csv.DictReader(fh)
        ]
