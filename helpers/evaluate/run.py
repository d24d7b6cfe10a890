"""The evaluation itself: every CAM method x stack set x model, measured against the wall.

:func:`evaluate` computes it (and writes it, :mod:`helpers.evaluate.store`); :func:`evaluation`
and :func:`table1` load it when it is saved and current (:mod:`helpers.evaluate.keys`), and
compute it otherwise; :func:`per_image`, :func:`grid_maps` and :func:`grid_images` read one
cell of it.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import cams, cli
from .. import metrics as M
from ..config import HOME_ENV, Profile, get_device, get_profile, progress
from ..locks import cache_lock
from ..results import MODELS
from ..wall import unseen_rows
from .inputs import as_set, default_models, default_sets
from .keys import (
    EVAL_VERSION,
    eval_key,
    model_fingerprint,
    models_key,
    resolve_source,
    set_fingerprint,
    sets_key,
)
from .store import load_maps, load_results, results_paths, write_or_keep

__all__ = [
    "MODELS",
    "evaluate",
    "evaluation",
    "load_current",
    "table1",
    "per_image",
    "grid_maps",
    "grid_images",
]


def _unseen_rows(models: Mapping[str, torch.nn.Module]) -> np.ndarray:
    walled = models.get("walled")
    if walled is not None:
        rows = unseen_rows(walled)
        if len(rows):
            return rows
    return M.PAPER_UNSEEN_ROWS


def evaluate(
    profile: str | Profile | None = None,
    *,
    methods: Sequence[str] | str | None = None,
    models: Mapping[str, torch.nn.Module] | None = None,
    sets: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    source: str = "auto",
    n_images: int | None = None,
    write: bool = True,
    folder: str | Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Compute the whole evaluation (and write it, unless ``write=False``).

    Args:
        profile: profile name or object (``None``: ``$CAMWALLS_PROFILE``).
        methods: method keys/names (default: all of :data:`helpers.cams.METHODS`).
        models: ``{"walled": model, "baseline": model}`` to evaluate instead of the profile's
            (any subset; the walled model's unseen rows are used for mu).
        sets: ``{name: StackSet | images | (images, labels)}`` instead of the profile's sets.
        device: where to compute (default :func:`helpers.config.get_device`).
        source: ``"auto"``, ``"trained"`` or ``"authors"`` (see :mod:`helpers.evaluate`).
        n_images: images per set (default: the profile's ``eval.stack_images``).
        write: write CSV, JSON and maps to ``folder`` (default the profile's results folder).
        show_progress: a progress bar (silent during the book build).

    Returns:
        The results: ``{"rows": [...], "per_image": {model: {set: {method: {"mu": [...],
        "zero_fraction": [...], "first_zero_row": [...]}}}}, "targets", "labels", "settings",
        "models", "sets", "unseen_rows", "total_seconds", ...}``; ``rows`` are dicts with the
        keys :data:`~helpers.evaluate.CSV_COLUMNS`.

    Raises:
        ValueError, TypeError: on bad arguments (unknown method, source, model keys, empty set).
        helpers.cli.NotWritableError: with ``write=True``, *before* any model is loaded or
            trained and any map computed, when the results folder cannot be created or written.
        ResultsWriteError: with ``write=True``, when writing fails anyway once the results are
            computed (a full disk): the message says where a copy was kept instead, and the
            exception carries the results (``.results``).
    """
    prof = get_profile(profile)
    ev = prof.eval
    keys = cams.method_keys(methods)
    dev = get_device(device)
    models_given, sets_given = models is not None, sets is not None
    src = resolve_source(prof, source, models_given)
    n_target = ev.stack_images if n_images is None else int(n_images)
    if n_target < 1:
        raise ValueError(f"n_images must be positive, got {n_images!r}.")
    paths = results_paths(prof, folder)
    if write:  # now, not after minutes of computation
        cli.ensure_writable_folder(
            paths["json"].parent,
            "The results folder",
            f"Pass another folder (folder=..., or --out on the command line), set {HOME_ENV} to a "
            "writable folder, or pass write=False.",
        )
    model_infos: dict[str, dict] = {}
    if models is None:
        models, model_infos = default_models(prof, src, dev)
    else:
        bad = sorted(set(models) - set(MODELS))
        if bad:
            raise ValueError(f"models must be keyed by {MODELS}, got {bad}.")
        models = {name: m.to(dev).eval() for name, m in models.items()}
    if sets is None:
        sets = default_sets(prof, n_target)
    if not sets:
        raise ValueError("sets is empty: pass at least one stack set.")
    rows_unseen = _unseen_rows(models)
    options = {
        "opticam": {
            "iterations": int(ev.opticam_iterations),
            "lr": float(ev.opticam_lr),
        },
        "scorecam": {"chunk": int(ev.score_batch)},
    }
    options = {k: v for k, v in options.items() if k in keys}
    batch = int(ev.batch_size)
    prepared = {name: as_set(name, value) for name, value in sets.items()}
    for name, (images, _, _) in prepared.items():
        if images.shape[0] < 1:
            raise ValueError(f"stack set {name!r} is empty.")
    total_maps = (
        sum(min(len(imgs), n_target) for imgs, _, _ in prepared.values())
        * len(keys)
        * len(models)
    )
    bar = progress(
        total=total_maps,
        desc=f"CAM maps ({prof.name})",
        unit="map",
        disable=not show_progress,
    )
    per_image: dict[str, dict] = {}
    targets_out: dict[str, dict] = {}
    seconds: dict[tuple, float] = {}
    grids: dict[str, np.ndarray] = {}
    t_start = time.perf_counter()
    try:
        for model_name, model in models.items():
            per_image[model_name], targets_out[model_name] = {}, {}
            for set_name, (images, labels, _) in prepared.items():
                images = images[:n_target]
                cell = {
                    k: {
                        "mu": [],
                        "zero_fraction": [],
                        "zero_row_fraction": [],
                        "first_zero_row": [],
                        "all_zero": [],
                    }
                    for k in keys
                }
                scores: dict[str, list] = {
                    "initial_score": [],
                    "final_score": [],
                    "logit": [],
                    "steps": [],
                }
                tgt_all: list[np.ndarray] = []
                lows: dict[str, list] = {k: [] for k in keys}
                for start in range(0, images.shape[0], batch):
                    chunk = images[start : start + batch]
                    opts = dict(options)
                    if "randomcam" in keys:
                        opts["randomcam"] = {"seed": int(ev.seed) + start}
                    done = {k: 0 for k in keys}

                    def tick(key, n_done, done=done):
                        bar.update(n_done - done[key])
                        done[key] = n_done
                        nxt = keys[
                            (keys.index(key) + 1) % len(keys)
                        ]  # the method computed next
                        bar.set_postfix_str(
                            f"{model_name}, {set_name}, {cams.METHODS[nxt].display}",
                            refresh=False,
                        )

                    res = cams.compute_cams(
                        model,
                        chunk,
                        keys,
                        None,
                        batch_size=batch,
                        options=opts,
                        callback=tick,
                    )
                    for key, r in res.items():
                        c = cell[key]
                        c["mu"] += M.dead_zone_share(
                            r.scaled, rows=rows_unseen
                        ).tolist()
                        c["zero_fraction"] += M.zero_fraction(r.scaled).tolist()
                        c["zero_row_fraction"] += M.zero_row_fraction(r.scaled).tolist()
                        c["first_zero_row"] += M.first_zero_row(r.scaled).tolist()
                        c["all_zero"] += M.all_zero(r.scaled).tolist()
                        seconds[(model_name, set_name, key)] = (
                            seconds.get((model_name, set_name, key), 0.0)
                            + r.total_seconds
                        )
                        if key == "opticam":
                            for name in scores:
                                scores[name] += np.asarray(
                                    r.extras.get(name, [])
                                ).tolist()
                        have = sum(len(x) for x in lows[key])
                        if have < ev.grid_images:
                            lows[key].append(r.low[: ev.grid_images - have])
                    tgt_all.append(next(iter(res.values())).targets)
                per_image[model_name][set_name] = cell
                if "opticam" in keys:
                    cell["opticam"].update(scores)
                grids[f"images|{set_name}"] = (
                    images[: ev.grid_images].detach().cpu().numpy().astype(np.float16)
                )
                targets_out[model_name][set_name] = np.concatenate(tgt_all).tolist()
                for key in keys:
                    grids[f"{model_name}|{set_name}|{key}"] = np.concatenate(
                        lows[key]
                    ).astype(np.float32)
    finally:
        bar.close()
    total = time.perf_counter() - t_start

    labels_out = {
        name: (None if labels is None else torch.as_tensor(labels)[:n_target].tolist())
        for name, (_, labels, _) in prepared.items()
    }
    rows = []
    for model_name in models:
        for set_name in prepared:
            tg = np.asarray(targets_out[model_name][set_name])
            lab = labels_out[set_name]
            top1 = (
                float(np.mean(tg == np.asarray(lab)))
                if lab is not None and len(lab) == len(tg) and min(lab) >= 0
                else float("nan")
            )
            for key in keys:
                c = per_image[model_name][set_name][key]
                mu = np.asarray(c["mu"])
                stats = M.summarize(mu)
                meth = cams.METHODS[key]
                secs = seconds[(model_name, set_name, key)]
                note = ""
                if key == "opticam":
                    steps = c.get("steps") or []
                    taken = f"; mean {np.mean(steps):.0f} steps" if steps else ""
                    note = (
                        f"{ev.opticam_iterations} Adam steps at most, lr {ev.opticam_lr}, the authors' early "
                        f"stop{taken} (full profile: 100, 0.1)"
                    )
                    logit = float(np.mean(c.get("logit") or [np.nan]))
                    if logit > 0:
                        note += (
                            f"; masked logit {np.mean(c['final_score']) / logit:.0%} of the unmasked one "
                            f"(uniform weights: {np.mean(c['initial_score']) / logit:.0%})"
                        )
                rows.append(
                    {
                        "profile": prof.name,
                        "source": src,
                        "device": dev.type,
                        "model": model_name,
                        "dataset": set_name,
                        "method": key,
                        "display": meth.display,
                        "in_paper": meth.in_paper,
                        "weights": meth.weights,
                        "prediction": meth.prediction,
                        "mu_mean": stats["mean"],
                        "mu_std": stats["std"],
                        "mu_min": stats["min"],
                        "mu_max": stats["max"],
                        "mu_zero_share": float(np.mean(mu == 0)),
                        "zero_fraction": float(np.mean(c["zero_fraction"])),
                        "zero_row_fraction": float(np.mean(c["zero_row_fraction"])),
                        "zero_maps": int(np.sum(c["all_zero"])),
                        "top1": top1,
                        "n_images": int(mu.size),
                        "seconds": float(secs),
                        "seconds_per_image": float(secs / max(mu.size, 1)),
                        "note": note,
                    }
                )
    try:
        gc_version = version("grad-cam")
    except PackageNotFoundError:  # pragma: no cover
        gc_version = "unknown"
    results = {
        "version": EVAL_VERSION,
        "eval_key": eval_key(prof, keys, n_target),
        "models_key": None if models_given else models_key(prof, src),
        "sets_key": None if sets_given else sets_key(prof, n_target),
        "profile": prof.name,
        "source": src,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else dev.type,
        "torch": torch.__version__,
        "grad_cam": gc_version,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "total_seconds": total,
        "methods": keys,
        "settings": {
            "stack_images": n_target,
            "batch_size": batch,
            "opticam_iterations": ev.opticam_iterations,
            "opticam_lr": ev.opticam_lr,
            "opticam_stop": "image",
            "score_batch": ev.score_batch,
            "grid_images": ev.grid_images,
            "seed": ev.seed,
            "targets": "top class",
        },
        "unseen_rows": [int(rows_unseen[0]), int(rows_unseen[-1])],
        "unseen_row_count": int(len(rows_unseen)),
        "models": {
            name: {
                "fingerprint": model_fingerprint(m),
                "wall_rows": int(getattr(m, "wall_rows", -1)),
                **{k: v for k, v in model_infos.get(name, {}).items() if _jsonable(v)},
            }
            for name, m in models.items()
        },
        "sets": {
            name: dict(
                desc,
                n_images=int(min(len(images), n_target)),
                fingerprint=set_fingerprint(images[:n_target]),
            )
            for name, (images, _, desc) in prepared.items()
        },
        "rows": rows,
        "per_image": per_image,
        "targets": targets_out,
        "labels": labels_out,
    }
    if write:
        write_or_keep(results, grids, paths)
    results["_maps"] = grids
    return results


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def evaluation(
    profile: str | Profile | None = None,
    recompute: bool = False,
    *,
    models: Mapping[str, torch.nn.Module] | None = None,
    sets: Mapping[str, Any] | None = None,
    methods: Sequence[str] | str | None = None,
    source: str = "auto",
    folder: str | Path | None = None,
    show_progress: bool = True,
    **kwargs: Any,
) -> dict[str, Any]:
    """The full results of a profile: loaded when saved by the same evaluation settings for the
    same models and images, computed and written otherwise.

    The models are identified by their weights' fingerprints when ``models`` is given, else by
    the profile's training configuration (or the authors' checkpoint files); the stack sets by
    their images' fingerprints when ``sets`` is given, else by the profile's data settings.
    ``recompute=True`` always computes. Other keyword arguments go to :func:`evaluate`.
    """
    prof = get_profile(profile)
    keys = cams.method_keys(methods)
    n_target = int(kwargs.get("n_images") or prof.eval.stack_images)
    if not recompute:
        saved = load_current(prof, source, keys, n_target, models, sets, folder)
        if saved is not None:
            return saved
    # another process (a notebook built beside this one) may be computing it: wait, and look
    # again before computing
    with cache_lock(results_paths(prof, folder)["json"], what="Table 1"):
        if not recompute:
            saved = load_current(prof, source, keys, n_target, models, sets, folder)
            if saved is not None:
                return saved
        return evaluate(
            prof,
            methods=keys,
            models=models,
            sets=sets,
            source=source,
            folder=folder,
            show_progress=show_progress,
            **kwargs,
        )


def load_current(
    prof: Profile,
    source: str,
    keys: Sequence[str],
    n_target: int,
    models: Mapping | None,
    sets: Mapping | None,
    folder: str | Path | None,
) -> dict[str, Any] | None:
    """The saved results in ``folder`` (default: the cache) with their maps, when they are
    current for these settings (:func:`_still_valid`); ``None`` otherwise. Reads only."""
    saved = load_results(prof, folder)
    if saved is not None and _still_valid(
        saved, prof, source, keys, n_target, models, sets
    ):
        saved["_maps"] = load_maps(prof, folder)
        return saved
    return None


def _still_valid(
    saved: dict,
    prof: Profile,
    source: str,
    keys: Sequence[str],
    n_target: int,
    models: Mapping | None,
    sets: Mapping | None,
) -> bool:
    if saved.get("version") != EVAL_VERSION or saved.get("eval_key") != eval_key(
        prof, keys, n_target
    ):
        return False
    if models is not None:
        have = saved.get("models", {})
        if set(have) != set(models):
            return False
        if any(
            have[name].get("fingerprint") != model_fingerprint(m)
            for name, m in models.items()
        ):
            return False
    else:
        src = resolve_source(prof, source, False)
        if saved.get("source") != src or saved.get("models_key") is None:
            return False
        if saved["models_key"] != models_key(prof, src):
            return False
    if sets is not None:
        have = saved.get("sets", {})
        if set(have) != set(sets):
            return False
        for name, value in sets.items():
            images, _, _ = as_set(name, value)
            if have[name].get("fingerprint") != set_fingerprint(images[:n_target]):
                return False
    elif saved.get("sets_key") is None or saved["sets_key"] != sets_key(prof, n_target):
        return False
    return True


def table1(
    profile: str | Profile | None = None, recompute: bool = False, **kwargs: Any
) -> list[dict[str, Any]]:
    """Table 1 as a list of row dicts (keys :data:`helpers.evaluate.CSV_COLUMNS`): loaded from
    the results folder when present and current, computed and written otherwise (see
    :func:`evaluation`). :func:`helpers.results.table` makes the results table of it."""
    return evaluation(profile, recompute, **kwargs)["rows"]


def per_image(
    results: Mapping[str, Any],
    model: str,
    dataset: str,
    method: str,
    quantity: str = "mu",
) -> np.ndarray:
    """Per-image values (``"mu"``, ``"zero_fraction"``, ``"zero_row_fraction"``,
    ``"first_zero_row"``, ``"all_zero"``) of one cell of the results."""
    key = cams.get_method(method).key
    try:
        return np.asarray(results["per_image"][model][dataset][key][quantity])
    except KeyError:
        raise KeyError(
            f"No per-image {quantity!r} for model {model!r}, set {dataset!r}, method {key!r}; "
            f"the results hold models {list(results.get('per_image', {}))}."
        ) from None


def grid_maps(
    results: Mapping[str, Any],
    model: str,
    dataset: str,
    method: str,
    kind: str = "scaled",
) -> np.ndarray:
    """The first ``grid_images`` maps of a cell, from the saved 14x14 maps (FullGrad: 224x224).

    ``kind``: ``"scaled"`` -- as pytorch-grad-cam returns them ``(k, 224, 224)``, through
    :func:`helpers.cams.postprocess`; ``"low"`` -- the raw maps at the target layer's
    resolution (ReLU'd, not scaled); ``"upsampled"`` -- those resized, not scaled.
    """
    key = cams.get_method(method).key
    maps = results.get("_maps") or {}
    name = f"{model}|{dataset}|{key}"
    if name not in maps:
        raise KeyError(
            f"No saved maps for {name!r}; run the evaluation (helpers.evaluate.evaluation)."
        )
    if kind not in ("scaled", "low", "upsampled"):
        raise ValueError(f"kind must be 'scaled', 'low' or 'upsampled', got {kind!r}.")
    return cams.postprocess(maps[name], key, (224, 224))[kind]


def grid_images(results: Mapping[str, Any], dataset: str) -> torch.Tensor:
    """The first ``grid_images`` images of a stack set, as saved with the results
    ``(k, 3, 224, 224)`` (ImageNet-normalized, stored in float16: for display)."""
    maps = results.get("_maps") or {}
    name = f"images|{dataset}"
    if name not in maps:
        raise KeyError(
            f"No saved images for the set {dataset!r}; the results hold "
            f"{sorted(k[7:] for k in maps if k.startswith('images|'))}."
        )
    return torch.from_numpy(maps[name].astype(np.float32))
