"""What an evaluation evaluates: the profile's two models and its stack sets, or the caller's.

The models are the walled rVGG and its baseline, trained (:func:`helpers.train.train_or_load`)
or the authors' released checkpoints (:func:`helpers.data.load_authors_model`); the stack sets
are STACK-MIX and STACK-GEN (or its stand-in) from :func:`helpers.data.stack_mix` and
:func:`helpers.data.stack_gen`. A caller may give either instead (:func:`as_set` reads a set).
"""

from __future__ import annotations

from typing import Any

import torch

from ..config import Profile, get_device, get_profile
from ..data import load_authors_model, stack_gen, stack_mix
from ..train import train_or_load
from .keys import resolve_source

__all__ = ["default_models", "default_sets", "load_models", "load_sets", "as_set"]


def default_models(
    prof: Profile, source: str, device: torch.device
) -> tuple[dict, dict]:
    """``({"walled": model, "baseline": model}, {name: what is known of it})`` from ``source``
    (``"authors"`` or ``"trained"``)."""
    models, infos = {}, {}
    for name, walled in (("walled", True), ("baseline", False)):
        if source == "authors":
            model = load_authors_model(walled=walled).to(device).eval()
            infos[name] = {"source": "authors"}
        else:
            model, info = train_or_load(prof, walled=walled, device=device)
            infos[name] = {
                k: info.get(k)
                for k in (
                    "key",
                    "val_accuracy",
                    "position_accuracy",
                    "from_cache",
                    "source",
                    "checkpoint",
                )
            }
        models[name] = model
    return models, infos


def default_sets(prof: Profile, n_images: int | None) -> dict:
    """``{name: StackSet}`` of the profile: STACK-MIX, then STACK-GEN (or its stand-in)."""
    sets = {}
    for builder in (stack_mix, stack_gen):
        s = builder(prof, n=n_images)
        sets[s.name] = s
    return sets


def load_models(
    profile: str | Profile | None = None,
    source: str = "auto",
    device: str | torch.device | None = None,
) -> tuple[dict[str, torch.nn.Module], str]:
    """The two models the evaluation of a profile uses, and where they come from.

    Returns:
        ``({"walled": model, "baseline": model}, source)`` with ``source`` ``"trained"`` (the
        profile's models, :func:`helpers.train.train_or_load`: a cache hit, or trained now) or
        ``"authors"`` (their released checkpoints), see :mod:`helpers.evaluate`.
    """
    prof = get_profile(profile)
    src = resolve_source(prof, source, False)
    models, _ = default_models(prof, src, get_device(device))
    return models, src


def load_sets(
    profile: str | Profile | None = None, n_images: int | None = None
) -> dict[str, Any]:
    """The stack sets of a profile, ``{name: StackSet}`` (STACK-MIX, then STACK-GEN or its
    stand-in), built by :func:`helpers.data.stack_mix` and :func:`helpers.data.stack_gen`."""
    prof = get_profile(profile)
    return default_sets(prof, prof.eval.stack_images if n_images is None else n_images)


def as_set(name: str, value: Any) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """(images, labels or None, description) of a stack set given as a StackSet-like object
    or a tensor / (images, labels) tuple."""
    if hasattr(value, "images"):
        labels = getattr(value, "labels", None)
        desc = {
            "name": getattr(value, "name", name),
            "stand_in": bool(getattr(value, "is_stand_in", "stand-in" in name)),
            "source": str(getattr(value, "meta", {}).get("source", "")),
            "class_names": [str(c) for c in getattr(value, "class_names", [])],
        }
        return value.images, labels, desc
    if isinstance(value, torch.Tensor):
        return (
            value,
            None,
            {
                "name": name,
                "stand_in": "stand-in" in name,
                "source": "given",
                "class_names": [],
            },
        )
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return (
            value[0],
            value[1],
            {
                "name": name,
                "stand_in": "stand-in" in name,
                "source": "given",
                "class_names": [],
            },
        )
    raise TypeError(
        f"stack set {name!r} must be a StackSet, an images tensor or an (images, labels) "
        f"pair, got {type(value).__name__}."
    )
