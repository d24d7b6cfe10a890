"""The quick profile's two models, shipped with helpers, so that a chapter opened in a fresh
runtime (Colab) starts in seconds instead of training for minutes first.

``python -m helpers.train.ship --export`` copies the quick models from the checkpoint
cache (train them first: ``python -m helpers.train --profile quick``) into
``helpers/pretrained/`` as fp16 weights, with their configuration, training history, accuracy
by position, training time and machine, and a ``manifest.json`` with each file's SHA-256.

:func:`helpers.train.train_or_load` uses a shipped model when the cache has none of the asked
configuration, the shipped one was trained with *exactly* that configuration (same cache key),
its digest checks, and ``$CAMWALLS_PRETRAINED`` is not ``0``. The book build and CI set it to
``0``: they train from scratch. A test fails when the quick recipe changes and the shipped
models are not exported again, and names the commands that do it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from ..config import CheckpointError, read_checkpoint_file
from .checkpoints import load_checkpoint
from .config import checkpoint_path, config_differences, config_key, training_config

__all__ = [
    "PRETRAINED_ENV",
    "PRETRAINED_DIR",
    "REGENERATE",
    "use_pretrained",
    "manifest",
    "pretrained_checkpoint",
    "export_pretrained",
    "stale_models",
]

#: ``0`` (or ``false``/``no``): never use the shipped models, train instead.
PRETRAINED_ENV = "CAMWALLS_PRETRAINED"
#: Where the shipped models live (package data of helpers).
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
#: The commands that regenerate the shipped models.
REGENERATE = (
    "python -m helpers.train --profile quick && python -m helpers.train.ship --export"
)
_KINDS = {"walled": True, "baseline": False}


def use_pretrained() -> bool:
    """Whether :func:`helpers.train.train_or_load` may use a shipped model (``$CAMWALLS_PRETRAINED``
    is not ``0``, ``false``, ``no`` or ``off``)."""
    return os.environ.get(PRETRAINED_ENV, "1").strip().lower() not in (
        "0",
        "false",
        "no",
        "off",
    )


def manifest(folder: str | Path | None = None) -> dict[str, Any]:
    """The shipped models' manifest (``{"models": {"walled": {...}, "baseline": {...}}, ...}``);
    ``{}`` when none are shipped."""
    path = Path(folder or PRETRAINED_DIR) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err}); regenerate the shipped models: {REGENERATE}"
        ) from err


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pretrained_checkpoint(
    config: dict[str, Any], folder: str | Path | None = None
) -> dict[str, Any] | None:
    """The shipped model of ``config`` as a complete checkpoint (fp32 weights, marked
    ``source = "pretrained"``), or ``None`` when none was trained with exactly this configuration.

    Raises:
        helpers.config.CheckpointError: when the shipped file does not match its recorded SHA-256
            (a broken or edited file), naming the commands that regenerate it.
    """
    folder = Path(folder or PRETRAINED_DIR)
    kind = "walled" if config["wall_rows"] > 0 else "baseline"
    entry = manifest(folder).get("models", {}).get(kind)
    if not entry or entry.get("key") != config_key(config):
        return None
    path = folder / entry["file"]
    if not path.is_file() or _sha256(path) != entry["sha256"]:
        found = _sha256(path) if path.is_file() else "no file"
        raise CheckpointError(
            f"The shipped {kind} model {path} does not match its manifest (SHA-256 expected "
            f"{entry['sha256']}, found {found}). Regenerate it: {REGENERATE}; or set "
            f"{PRETRAINED_ENV}=0 to train instead."
        )
    ckpt = read_checkpoint_file(
        path,
        f"Regenerate it: {REGENERATE}; or set {PRETRAINED_ENV}=0 to train instead.",
    )
    ckpt["model"] = {
        k: (v.float() if v.is_floating_point() else v) for k, v in ckpt["model"].items()
    }
    ckpt["config"] = config
    ckpt["source"] = "pretrained"
    return ckpt


def export_pretrained(
    profile: str = "quick", folder: str | Path | None = None, command: str = ""
) -> dict[str, Any]:
    """Copy the cached models of ``profile`` (walled and baseline) into ``folder`` (default
    :data:`PRETRAINED_DIR`) as fp16 weights with their configuration, history, accuracy by
    position and training time, and write ``manifest.json``. Returns the manifest.

    Raises:
        FileNotFoundError: when a model is not in the cache (train it first).
    """
    folder = Path(folder or PRETRAINED_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    models = {}
    for kind, walled in _KINDS.items():
        config = training_config(profile, walled=walled)
        path = checkpoint_path(config)
        if not path.is_file():
            raise FileNotFoundError(
                f"No trained {kind} model of the {profile} profile in the cache ({path}); "
                f"train it first: python -m helpers.train --profile {profile}"
            )
        ckpt = load_checkpoint(path, config)
        if not ckpt.get("complete"):
            raise FileNotFoundError(
                f"The {kind} model at {path} is not finished; run python -m helpers.train "
                f"--profile {profile} again to complete it."
            )
        keep = {
            k: ckpt[k]
            for k in (
                "config",
                "epoch",
                "history",
                "curve",
                "complete",
                "train_seconds",
                "device",
                "torch",
                "position_accuracy",
            )
            if k in ckpt
        }
        keep["model"] = {
            k: (v.half() if v.is_floating_point() else v)
            for k, v in ckpt["model"].items()
        }
        out = folder / f"rvgg-{kind}.pt"
        torch.save(keep, out)
        models[kind] = {
            "file": out.name,
            "sha256": _sha256(out),
            "bytes": out.stat().st_size,
            "key": config_key(config),
            "config": config,
            "epochs": ckpt.get("epoch"),
            "train_seconds": ckpt.get("train_seconds"),
            "position_accuracy": ckpt.get("position_accuracy", {}),
            "history": ckpt.get("history", []),
        }
    result = {
        "command": command or "python -m helpers.train.ship --export",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "torch": str(torch.__version__),
        },
        "precision": "float16 weights (loaded as float32)",
        "models": models,
    }
    (folder / "manifest.json").write_text(
        json.dumps(result, indent=1, default=str) + "\n"
    )
    return result


def stale_models(profile: str = "quick", folder: str | Path | None = None) -> list[str]:
    """What differs between the shipped models' configuration and the current quick recipe (one
    line per field and model; ``[]`` when they match)."""
    shipped = manifest(folder).get("models", {})
    out = []
    for kind, walled in _KINDS.items():
        current = training_config(profile, walled=walled)
        if kind not in shipped:
            out.append(f"{kind}: not shipped")
            continue
        out += [
            f"{kind}: {line}"
            for line in config_differences(shipped[kind]["config"], current)
        ]
    return out
