"""What one rVGG training run is: its configuration, the hash that keys the checkpoint cache,
and where its checkpoint lives.

The cache key is a hash of the full configuration (every profile setting that matters for
training, the wall height, the data generator's version and any override), so a changed
setting never silently reuses a stale model; :func:`config_differences` names the fields in
which a checkpoint's configuration differs from the one asked for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from .. import data as D
from ..config import Profile, cache_dir, get_profile

__all__ = [
    "TRAIN_VERSION",
    "ConfigMismatchError",
    "training_config",
    "config_key",
    "canonical_config",
    "config_differences",
    "checkpoint_path",
    "profile_from_config",
]

#: Version of the training code; part of the cache key (bump it when training changes).
TRAIN_VERSION = 1

_TOP_LEVEL = ("width", "wall_rows", "image_size")


class ConfigMismatchError(ValueError):
    """A checkpoint was made with another configuration than the one asked for."""


def training_config(
    profile: str | Profile | None = None, walled: bool = True, **overrides: Any
) -> dict[str, Any]:
    """The full configuration of one training run, as a JSON-serialisable dict.

    Args:
        profile: profile name or object (``None``: ``$CAMWALLS_PROFILE``).
        walled: the walled model (``wall_rows`` from the profile, 9) or the baseline (0).
        **overrides: any field of the profile's ``TrainSettings`` (``epochs``, ``lr``, ...) or
            ``DataSettings`` (``train_images``, ``num_classes``, ...), or ``width`` /
            ``wall_rows``. ``wall_rows`` overrides ``walled`` (a later chapter trains several
            wall heights; ``walled`` is then ``wall_rows > 0``).

    Returns:
        ``{"profile", "width", "wall_rows", "walled", "image_size", "data": {...}, "train": {...},
        "data_version", "train_version"}``.

    Raises:
        ValueError: on an unknown override, naming the valid ones.
    """
    prof = get_profile(profile)
    train_fields = {f.name for f in dataclasses.fields(prof.train)}
    data_fields = {f.name for f in dataclasses.fields(prof.data)}
    train_changes, data_changes, top = {}, {}, {}
    for key, value in overrides.items():
        if key in _TOP_LEVEL:
            top[key] = value
        elif key in train_fields:
            train_changes[key] = value
        elif key in data_fields:
            data_changes[key] = value
        else:
            raise ValueError(
                f"Unknown training override {key!r}. Valid: {', '.join(_TOP_LEVEL)}, the train "
                f"settings {sorted(train_fields)} and the data settings {sorted(data_fields)}."
            )
    wall_rows = int(top.get("wall_rows", prof.wall_rows if walled else 0))
    if not 0 <= wall_rows <= 14:
        raise ValueError(f"wall_rows must be in 0..14, got {wall_rows}.")
    width = float(top.get("width", prof.width))
    train_s = dataclasses.replace(prof.train, **train_changes)
    if train_s.walled_epochs < 0:
        raise ValueError(
            f"walled_epochs must be 0 (as many as epochs) or positive, got "
            f"{train_s.walled_epochs}."
        )
    if wall_rows > 0 and train_s.walled_epochs > 0 and "epochs" not in train_changes:
        # the walled model's own length (an explicit epochs=... sets both)
        train_s = dataclasses.replace(train_s, epochs=train_s.walled_epochs)
    data_s = dataclasses.replace(prof.data, **data_changes)
    if train_s.epochs < 1 or train_s.batch_size < 1 or not train_s.lr > 0:
        raise ValueError(
            f"epochs, batch_size and lr must be positive, got {train_s.epochs}, "
            f"{train_s.batch_size}, {train_s.lr}."
        )
    if train_s.optimizer not in ("sgd", "adam"):
        raise ValueError(
            f"optimizer must be 'sgd' or 'adam', got {train_s.optimizer!r}."
        )
    if not 0.0 <= float(train_s.tie_fraction) < 1.0:
        raise ValueError(
            f"tie_fraction must be in [0, 1), got {train_s.tie_fraction}: the position tie of the first "
            "dense layer must end before the run does, or the trained model is a sum over positions, "
            "not rVGG (whose first dense layer has a weight per position). Use e.g. tie_fraction=0.5."
        )
    if train_s.schedule not in ("step", "cosine"):
        raise ValueError(
            f"schedule must be 'step' or 'cosine', got {train_s.schedule!r}."
        )
    return {
        "profile": prof.name,
        "width": width,
        "wall_rows": wall_rows,
        "walled": wall_rows > 0,
        "image_size": int(top.get("image_size", prof.image_size)),
        "data": dataclasses.asdict(data_s),
        "train": dataclasses.asdict(train_s),
        "data_version": D.DATA_VERSION,
        "train_version": TRAIN_VERSION,
    }


def profile_from_config(config: dict[str, Any]) -> Profile:
    """The profile of ``config`` with its data and train settings (and width) as in ``config``."""
    prof = get_profile(config["profile"])
    return prof.replace(
        width=config["width"],
        data=dataclasses.replace(prof.data, **config["data"]),
        train=dataclasses.replace(prof.train, **config["train"]),
    )


#: Settings that change how fast a run goes, not what it learns: left out of the cache key.
_NOT_IN_KEY = {"train": ("num_threads", "num_workers")}


def _key_view(config: dict[str, Any]) -> dict[str, Any]:
    view = json.loads(json.dumps(config, default=str))
    for part, names in _NOT_IN_KEY.items():
        for name in names:
            view.get(part, {}).pop(name, None)
    return view


def canonical_config(config: dict[str, Any]) -> str:
    """``config`` as canonical JSON (sorted keys), without the settings left out of the key."""
    return json.dumps(
        _key_view(config), sort_keys=True, separators=(",", ":"), default=str
    )


def config_key(config: dict[str, Any]) -> str:
    """A 16-hex-digit hash of the configuration (the checkpoint cache key). Settings that only
    change the speed (CPU threads, data-loading workers) are left out."""
    return hashlib.sha256(canonical_config(config).encode()).hexdigest()[:16]


def config_differences(stored: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """The fields in which two configurations differ (the speed-only ones ignored), one
    ``"train.lr: checkpoint 0.5 vs asked 0.002"`` line each."""
    return _diff(_key_view(stored), _key_view(asked))


def _diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: checkpoint {va!r} vs asked {vb!r}")
    return out


def checkpoint_path(config: dict[str, Any], folder: str | Path | None = None) -> Path:
    """Where the checkpoint of ``config`` lives:
    ``<cache>/checkpoints/<profile>/rvgg-<walled|baseline>-w<rows>-<key>.pt``.

    Only a path: no folder is created (reading the cache must work where it cannot be
    written; :func:`helpers.train.train` creates the folder before it trains)."""
    folder = (
        Path(folder)
        if folder is not None
        else cache_dir("checkpoints", config["profile"], create=False)
    )
    kind = "walled" if config["wall_rows"] > 0 else "baseline"
    return folder / f"rvgg-{kind}-w{config['wall_rows']}-{config_key(config)}.pt"
