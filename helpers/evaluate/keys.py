"""What an evaluation's numbers depend on, as short hashes: the cache keys of saved results.

Saved results are reused only when they were made by the same evaluation code
(:data:`EVAL_VERSION`) and settings, for the same models (their weights' fingerprints, or the
profile's training configurations, or the authors' checkpoint files) and the same stack sets
(their images' fingerprints, or the profile's data settings). Also here: where the models come
from, :func:`resolve_source`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..config import Profile
from ..data import AUTHORS_CHECKPOINTS, DATA_VERSION, authors_dir
from ..train import checkpoint_path, config_key, training_config

__all__ = [
    "EVAL_VERSION",
    "model_fingerprint",
    "set_fingerprint",
    "authors_available",
    "resolve_source",
    "eval_key",
    "models_key",
    "sets_key",
]

#: Bump when the evaluation changes what it computes (cached results are then recomputed).
EVAL_VERSION = 3  # 2: the authors' STACK-MIX is read as they read it (no resize); 3: std with ddof 1, Opti-CAM as published


def _fingerprint_tensors(tensors: Sequence[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        arr = t.detach().to("cpu", torch.float32).contiguous().numpy()
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def model_fingerprint(model: torch.nn.Module) -> str:
    """A hash of a model's weights (its state dict, keys sorted)."""
    state = model.state_dict()
    return _fingerprint_tensors([state[k] for k in sorted(state)])


def set_fingerprint(images: torch.Tensor) -> str:
    """A hash of a stack set's images."""
    return _fingerprint_tensors([images])


def authors_available() -> bool:
    """Whether both of the authors' released checkpoints are in the cache."""
    try:
        folder = authors_dir()
    except OSError:  # a cache that cannot be written holds no such folder
        return False
    return all((folder / name).is_file() for name in AUTHORS_CHECKPOINTS.values())


def resolve_source(prof: Profile, source: str, given_models: bool) -> str:
    """Where the models come from: ``"trained"``, ``"authors"`` or ``"given"`` (models passed
    by the caller); ``"auto"`` picks ``"authors"`` when the profile uses real data and both
    checkpoints are in the cache, else ``"trained"``."""
    if source not in ("auto", "trained", "authors", "given"):
        raise ValueError(
            f"source must be 'auto', 'trained' or 'authors', got {source!r}."
        )
    if given_models:
        return source if source in ("trained", "authors") else "given"
    if source == "given":
        raise ValueError("source='given' needs models=...")
    if source == "auto":
        return (
            "authors"
            if prof.data.source != "synthetic" and authors_available()
            else "trained"
        )
    return source


def _hash(parts: Any) -> str:
    return hashlib.sha256(
        json.dumps(parts, sort_keys=True, default=str).encode()
    ).hexdigest()[:16]


def eval_key(prof: Profile, keys: Sequence[str], n_images: int) -> str:
    """What the numbers depend on besides the models and images: the evaluation's settings
    and code version, the methods, the number of images."""
    return _hash(
        {
            "version": EVAL_VERSION,
            "eval": dataclasses.asdict(prof.eval),
            "methods": list(keys),
            "n_images": n_images,
        }
    )


def models_key(prof: Profile, source: str) -> str | None:
    """Which models the profile gives, short of loading them: the training configurations'
    keys (the checkpoint cache keys), or the authors' checkpoint files. ``None`` when the
    models were given by the caller (then their weights' fingerprints identify them)."""
    if source == "trained":
        parts = []
        for walled in (True, False):
            config = training_config(prof, walled=walled)
            path = checkpoint_path(config)
            st = path.stat() if path.is_file() else None
            # the checkpoint's size and time: a model trained again gives new results
            parts.append(
                [
                    config_key(config),
                    st.st_size if st else None,
                    st.st_mtime_ns if st else None,
                ]
            )
        return _hash({"source": source, "train": parts})
    if source == "authors":
        try:
            folder: Path | None = authors_dir()
        except (
            OSError
        ):  # a cache that cannot be written: no authors' folder, no checkpoints
            folder = None
        stats = []
        for name in AUTHORS_CHECKPOINTS.values():
            path = folder / name if folder is not None else None
            st = path.stat() if path is not None and path.is_file() else None
            stats.append(
                [name, st.st_size if st else None, int(st.st_mtime) if st else None]
            )
        return _hash({"source": source, "checkpoints": stats})
    return None


def sets_key(prof: Profile, n_images: int) -> str:
    """Which stack sets the profile builds: its data settings, the data code's version, the
    evaluation seed and the number of images."""
    authors = []
    try:
        authors = (
            sorted(p.name for p in authors_dir().iterdir())
            if prof.data.source != "synthetic"
            else []
        )
    except OSError:
        pass
    return _hash(
        {
            "data": dataclasses.asdict(prof.data),
            "data_version": DATA_VERSION,
            "seed": prof.eval.seed,
            "n_images": n_images,
            "authors": authors,
        }
    )
