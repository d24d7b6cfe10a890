"""Table 1 and friends: every CAM method x stack set x model, measured against the wall.

For each model (the walled rVGG and its baseline), each stack set (STACK-MIX and STACK-GEN,
or its stand-in) and each method of :data:`helpers.cams.METHODS`, on the maps as
pytorch-grad-cam returns them, explaining each image's top class (as the paper):

* mu (:func:`helpers.metrics.dead_zone_share`, on the walled model's unseen rows,
  :func:`helpers.wall.unseen_rows`, for *both* models, so that they can be compared): mean, std,
  min, max over the images, and the share of images where it is exactly 0;
* the fraction of the map that is exactly zero, and of its rows that are zero all along;
* how often the map was zero everywhere (its mu then counts as 0);
* the time the method took (its own computation plus the shared forward pass it needs).

The command ``python -m helpers.evaluate`` writes ``table1.csv``, ``table1.json`` (the rows,
per-image values, settings, provenance) and ``maps.npz`` (the first ``grid_images`` 14x14
maps of each cell, for the chapters' grids) to :func:`helpers.config.results_dir`.
:func:`table1` (the table) and :func:`evaluation` (everything) load them when they are there
and were made by the same configuration, and compute (and write) them otherwise. What is read
from them -- the results table, the verdict, the paper's numbers, the rendered Table 1 -- is
:mod:`helpers.results`'s.

Where the models and stack sets come from (``source``): ``"trained"`` -- the profile's
models from :func:`helpers.train.train_or_load` and sets from :func:`helpers.data.stack_mix`
and :func:`helpers.data.stack_gen`; ``"authors"`` -- the authors' released checkpoints
(:func:`helpers.data.load_authors_model`) with the same set builders (which read the authors'
folders when present); ``"auto"`` (default) picks ``"authors"`` when the profile uses real
data and both checkpoints are in the cache, else ``"trained"``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import cams, cli
from . import metrics as M
from . import results as R
from .config import HOME_ENV, Profile, cache_dir, get_device, get_profile, progress

__all__ = [
    "EVAL_VERSION",
    "MODELS",
    "ResultsWriteError",
    "CSV_COLUMNS",
    "results_paths",
    "save_results",
    "evaluate",
    "evaluation",
    "load_models",
    "load_sets",
    "table1",
    "load_results",
    "load_maps",
    "grid_maps",
    "grid_images",
    "per_image",
    "main",
]

#: Bump when the evaluation changes what it computes (cached results are then recomputed).
EVAL_VERSION = 2  # 2: the authors' STACK-MIX is read as they read it (no resize)
#: The two models, in the order of the tables.
MODELS = R.MODELS
#: The columns of ``table1.csv`` (and the keys of every row).
CSV_COLUMNS = (
    "profile", "source", "device", "model", "dataset", "method", "display", "in_paper", "weights",
    "prediction", "mu_mean", "mu_std", "mu_min", "mu_max", "mu_zero_share", "zero_fraction",
    "zero_row_fraction", "zero_maps", "top1", "n_images", "seconds", "seconds_per_image", "note",
)


# --------------------------------------------------------------------------------------------
# Files and keys
# --------------------------------------------------------------------------------------------

class ResultsWriteError(OSError):
    """The results were computed but could not be written where asked.

    The message says where they are instead (another copy written before, or a temporary
    folder); :attr:`results` holds them (the dict :func:`evaluate` returns), :attr:`kept_in`
    the folder that holds a copy on disk (``None`` when no copy could be written at all).
    """

    def __init__(self, message: str, results: dict[str, Any] | None = None,
                 kept_in: Path | None = None) -> None:
        super().__init__(message)
        self.results = results
        self.kept_in = kept_in


def results_paths(profile: str | Profile | None = None, folder: str | Path | None = None) -> dict[str, Path]:
    """``{"csv", "json", "maps"}``: where the results of a profile live (``folder`` overrides
    :func:`helpers.config.results_dir`, ``<cache>/results/<profile>``). Only paths: no folder
    is created (reading must work where the cache cannot be written)."""
    base = Path(folder) if folder is not None else cache_dir("results", get_profile(profile).name, create=False)
    return {"csv": base / "table1.csv", "json": base / "table1.json", "maps": base / "maps.npz"}


def _fingerprint_tensors(tensors: Sequence[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        arr = t.detach().to("cpu", torch.float32).contiguous().numpy()
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def _model_fingerprint(model: torch.nn.Module) -> str:
    state = model.state_dict()
    return _fingerprint_tensors([state[k] for k in sorted(state)])


def _set_fingerprint(images: torch.Tensor) -> str:
    return _fingerprint_tensors([images])


def _authors_available() -> bool:
    try:
        from .data import AUTHORS_CHECKPOINTS, authors_dir

        folder = authors_dir()
    except (ImportError, OSError):  # OSError: a cache that cannot be written holds no such folder
        return False
    return all((folder / name).is_file() for name in AUTHORS_CHECKPOINTS.values())


def _resolve_source(prof: Profile, source: str, given_models: bool) -> str:
    if source not in ("auto", "trained", "authors", "given"):
        raise ValueError(f"source must be 'auto', 'trained' or 'authors', got {source!r}.")
    if given_models:
        return source if source in ("trained", "authors") else "given"
    if source == "given":
        raise ValueError("source='given' needs models=...")
    if source == "auto":
        return "authors" if prof.data.source != "synthetic" and _authors_available() else "trained"
    return source


def _hash(parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _eval_key(prof: Profile, keys: Sequence[str], n_images: int) -> str:
    """What the numbers depend on besides the models and images: the evaluation's settings
    and code version, the methods, the number of images."""
    return _hash({"version": EVAL_VERSION, "eval": dataclasses.asdict(prof.eval), "methods": list(keys),
                  "n_images": n_images})


def _models_key(prof: Profile, source: str) -> str | None:
    """Which models the profile gives, short of loading them: the training configurations'
    keys (the checkpoint cache keys), or the authors' checkpoint files. ``None`` when the
    models were given by the caller (then their weights' fingerprints identify them)."""
    if source == "trained":
        from .train import checkpoint_path, config_key, training_config

        parts = []
        for walled in (True, False):
            config = training_config(prof, walled=walled)
            path = checkpoint_path(config)
            st = path.stat() if path.is_file() else None
            # the checkpoint's size and time: a model trained again gives new results
            parts.append([config_key(config), st.st_size if st else None, st.st_mtime_ns if st else None])
        return _hash({"source": source, "train": parts})
    if source == "authors":
        from .data import AUTHORS_CHECKPOINTS, authors_dir

        try:
            folder: Path | None = authors_dir()
        except OSError:  # a cache that cannot be written: no authors' folder, no checkpoints
            folder = None
        stats = []
        for name in AUTHORS_CHECKPOINTS.values():
            path = folder / name if folder is not None else None
            st = path.stat() if path is not None and path.is_file() else None
            stats.append([name, st.st_size if st else None, int(st.st_mtime) if st else None])
        return _hash({"source": source, "checkpoints": stats})
    return None


def _sets_key(prof: Profile, n_images: int) -> str:
    """Which stack sets the profile builds: its data settings, the data code's version, the
    evaluation seed and the number of images."""
    try:
        from .data import DATA_VERSION
    except ImportError:  # pragma: no cover
        DATA_VERSION = None
    authors = []
    try:
        from .data import authors_dir

        authors = sorted(p.name for p in authors_dir().iterdir()) if prof.data.source != "synthetic" else []
    except (ImportError, OSError):
        pass
    return _hash({"data": dataclasses.asdict(prof.data), "data_version": DATA_VERSION, "seed": prof.eval.seed,
                  "n_images": n_images, "authors": authors})


# --------------------------------------------------------------------------------------------
# Models and sets
# --------------------------------------------------------------------------------------------

def _default_models(prof: Profile, source: str, device: torch.device) -> tuple[dict, dict]:
    models, infos = {}, {}
    for name, walled in (("walled", True), ("baseline", False)):
        if source == "authors":
            from .data import load_authors_model

            model = load_authors_model(walled=walled).to(device).eval()
            infos[name] = {"source": "authors"}
        else:
            from .train import train_or_load

            model, info = train_or_load(prof, walled=walled, device=device)
            infos[name] = {k: info.get(k) for k in ("key", "val_accuracy", "position_accuracy",
                                                     "from_cache", "source", "checkpoint")}
        models[name] = model
    return models, infos


def _default_sets(prof: Profile, n_images: int | None) -> dict:
    from .data import stack_gen, stack_mix

    sets = {}
    for builder in (stack_mix, stack_gen):
        s = builder(prof, n=n_images)
        sets[s.name] = s
    return sets


def load_models(profile: str | Profile | None = None, source: str = "auto",
                device: str | torch.device | None = None) -> tuple[dict[str, torch.nn.Module], str]:
    """The two models the evaluation of a profile uses, and where they come from.

    Returns:
        ``({"walled": model, "baseline": model}, source)`` with ``source`` ``"trained"`` (the
        profile's models, :func:`helpers.train.train_or_load`: a cache hit, or trained now) or
        ``"authors"`` (their released checkpoints), see the module docstring.
    """
    prof = get_profile(profile)
    src = _resolve_source(prof, source, False)
    models, _ = _default_models(prof, src, get_device(device))
    return models, src


def load_sets(profile: str | Profile | None = None, n_images: int | None = None) -> dict[str, Any]:
    """The stack sets of a profile, ``{name: StackSet}`` (STACK-MIX, then STACK-GEN or its
    stand-in), built by :func:`helpers.data.stack_mix` and :func:`helpers.data.stack_gen`."""
    prof = get_profile(profile)
    return _default_sets(prof, prof.eval.stack_images if n_images is None else n_images)


def _as_set(name: str, value: Any) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """(images, labels or None, description) of a stack set given as a StackSet-like object
    or a tensor / (images, labels) tuple."""
    if hasattr(value, "images"):
        labels = getattr(value, "labels", None)
        desc = {"name": getattr(value, "name", name),
                "stand_in": bool(getattr(value, "is_stand_in", "stand-in" in name)),
                "source": str(getattr(value, "meta", {}).get("source", "")),
                "class_names": [str(c) for c in getattr(value, "class_names", [])]}
        return value.images, labels, desc
    if isinstance(value, torch.Tensor):
        return value, None, {"name": name, "stand_in": "stand-in" in name, "source": "given", "class_names": []}
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return value[0], value[1], {"name": name, "stand_in": "stand-in" in name, "source": "given",
                                    "class_names": []}
    raise TypeError(f"stack set {name!r} must be a StackSet, an images tensor or an (images, labels) "
                    f"pair, got {type(value).__name__}.")


# --------------------------------------------------------------------------------------------
# The evaluation
# --------------------------------------------------------------------------------------------

def _unseen_rows(models: Mapping[str, torch.nn.Module]) -> np.ndarray:
    from .wall import unseen_rows

    walled = models.get("walled")
    if walled is not None:
        rows = unseen_rows(walled)
        if len(rows):
            return rows
    return M.PAPER_UNSEEN_ROWS


def evaluate(profile: str | Profile | None = None, *, methods: Sequence[str] | str | None = None,
             models: Mapping[str, torch.nn.Module] | None = None, sets: Mapping[str, Any] | None = None,
             device: str | torch.device | None = None, source: str = "auto", n_images: int | None = None,
             write: bool = True, folder: str | Path | None = None, show_progress: bool = True
             ) -> dict[str, Any]:
    """Compute the whole evaluation (and write it, unless ``write=False``).

    Args:
        profile: profile name or object (``None``: ``$CAMWALLS_PROFILE``).
        methods: method keys/names (default: all of :data:`helpers.cams.METHODS`).
        models: ``{"walled": model, "baseline": model}`` to evaluate instead of the profile's
            (any subset; the walled model's unseen rows are used for mu).
        sets: ``{name: StackSet | images | (images, labels)}`` instead of the profile's sets.
        device: where to compute (default :func:`helpers.config.get_device`).
        source: ``"auto"``, ``"trained"`` or ``"authors"`` (see the module docstring).
        n_images: images per set (default: the profile's ``eval.stack_images``).
        write: write CSV, JSON and maps to ``folder`` (default the profile's results folder).
        show_progress: a progress bar (silent during the book build).

    Returns:
        The results: ``{"rows": [...], "per_image": {model: {set: {method: {"mu": [...],
        "zero_fraction": [...], "first_zero_row": [...]}}}}, "targets", "labels", "settings",
        "models", "sets", "unseen_rows", "total_seconds", ...}``; ``rows`` are dicts with the
        keys :data:`CSV_COLUMNS`.

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
    src = _resolve_source(prof, source, models_given)
    n_target = ev.stack_images if n_images is None else int(n_images)
    if n_target < 1:
        raise ValueError(f"n_images must be positive, got {n_images!r}.")
    paths = results_paths(prof, folder)
    if write:  # now, not after minutes of computation
        cli.ensure_writable_folder(
            paths["json"].parent, "The results folder",
            f"Pass another folder (folder=..., or --out on the command line), set {HOME_ENV} to a "
            "writable folder, or pass write=False.")
    model_infos: dict[str, dict] = {}
    if models is None:
        models, model_infos = _default_models(prof, src, dev)
    else:
        bad = sorted(set(models) - set(MODELS))
        if bad:
            raise ValueError(f"models must be keyed by {MODELS}, got {bad}.")
        models = {name: m.to(dev).eval() for name, m in models.items()}
    if sets is None:
        sets = _default_sets(prof, n_target)
    if not sets:
        raise ValueError("sets is empty: pass at least one stack set.")
    rows_unseen = _unseen_rows(models)
    options = {"opticam": {"iterations": int(ev.opticam_iterations), "lr": float(ev.opticam_lr)},
               "scorecam": {"chunk": int(ev.score_batch)}}
    options = {k: v for k, v in options.items() if k in keys}
    batch = int(ev.batch_size)
    prepared = {name: _as_set(name, value) for name, value in sets.items()}
    for name, (images, _, _) in prepared.items():
        if images.shape[0] < 1:
            raise ValueError(f"stack set {name!r} is empty.")
    total_maps = sum(min(len(imgs), n_target) for imgs, _, _ in prepared.values()) * len(keys) * len(models)
    bar = progress(total=total_maps, desc=f"CAM maps ({prof.name})", unit="map", disable=not show_progress)
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
                cell = {k: {"mu": [], "zero_fraction": [], "zero_row_fraction": [], "first_zero_row": [],
                            "all_zero": []} for k in keys}
                scores: dict[str, list] = {"initial_score": [], "final_score": [], "logit": []}
                tgt_all: list[np.ndarray] = []
                lows: dict[str, list] = {k: [] for k in keys}
                for start in range(0, images.shape[0], batch):
                    chunk = images[start:start + batch]
                    opts = dict(options)
                    if "randomcam" in keys:
                        opts["randomcam"] = {"seed": int(ev.seed) + start}
                    done = {k: 0 for k in keys}

                    def tick(key, n_done, done=done):
                        bar.update(n_done - done[key])
                        done[key] = n_done
                        nxt = keys[(keys.index(key) + 1) % len(keys)]  # the method computed next
                        bar.set_postfix_str(f"{model_name}, {set_name}, {cams.METHODS[nxt].display}",
                                            refresh=False)

                    res = cams.compute_cams(model, chunk, keys, None, batch_size=batch, options=opts,
                                            callback=tick)
                    for key, r in res.items():
                        c = cell[key]
                        c["mu"] += M.dead_zone_share(r.scaled, rows=rows_unseen).tolist()
                        c["zero_fraction"] += M.zero_fraction(r.scaled).tolist()
                        c["zero_row_fraction"] += M.zero_row_fraction(r.scaled).tolist()
                        c["first_zero_row"] += M.first_zero_row(r.scaled).tolist()
                        c["all_zero"] += M.all_zero(r.scaled).tolist()
                        seconds[(model_name, set_name, key)] = (seconds.get((model_name, set_name, key), 0.0)
                                                                + r.total_seconds)
                        if key == "opticam":
                            for name in scores:
                                scores[name] += np.asarray(r.extras.get(name, [])).tolist()
                        have = sum(len(x) for x in lows[key])
                        if have < ev.grid_images:
                            lows[key].append(r.low[: ev.grid_images - have])
                    tgt_all.append(next(iter(res.values())).targets)
                per_image[model_name][set_name] = cell
                if "opticam" in keys:
                    cell["opticam"].update(scores)
                grids[f"images|{set_name}"] = images[: ev.grid_images].detach().cpu().numpy().astype(np.float16)
                targets_out[model_name][set_name] = np.concatenate(tgt_all).tolist()
                for key in keys:
                    grids[f"{model_name}|{set_name}|{key}"] = np.concatenate(lows[key]).astype(np.float32)
    finally:
        bar.close()
    total = time.perf_counter() - t_start

    labels_out = {name: (None if labels is None else torch.as_tensor(labels)[:n_target].tolist())
                  for name, (_, labels, _) in prepared.items()}
    rows = []
    for model_name in models:
        for set_name in prepared:
            tg = np.asarray(targets_out[model_name][set_name])
            lab = labels_out[set_name]
            top1 = (float(np.mean(tg == np.asarray(lab))) if lab is not None and len(lab) == len(tg)
                    and min(lab) >= 0 else float("nan"))
            for key in keys:
                c = per_image[model_name][set_name][key]
                mu = np.asarray(c["mu"])
                stats = M.summarize(mu)
                meth = cams.METHODS[key]
                secs = seconds[(model_name, set_name, key)]
                note = ""
                if key == "opticam":
                    note = f"{ev.opticam_iterations} Adam steps, lr {ev.opticam_lr} (paper: 100, 0.1)"
                    logit = float(np.mean(c.get("logit") or [np.nan]))
                    if logit > 0:
                        note += (f"; masked logit {np.mean(c['final_score']) / logit:.0%} of the unmasked one "
                                 f"(uniform weights: {np.mean(c['initial_score']) / logit:.0%})")
                rows.append({
                    "profile": prof.name, "source": src, "device": dev.type, "model": model_name,
                    "dataset": set_name, "method": key, "display": meth.display, "in_paper": meth.in_paper,
                    "weights": meth.weights, "prediction": meth.prediction,
                    "mu_mean": stats["mean"], "mu_std": stats["std"], "mu_min": stats["min"],
                    "mu_max": stats["max"], "mu_zero_share": float(np.mean(mu == 0)),
                    "zero_fraction": float(np.mean(c["zero_fraction"])),
                    "zero_row_fraction": float(np.mean(c["zero_row_fraction"])),
                    "zero_maps": int(np.sum(c["all_zero"])), "top1": top1, "n_images": int(mu.size),
                    "seconds": float(secs), "seconds_per_image": float(secs / max(mu.size, 1)), "note": note,
                })
    import pytorch_grad_cam  # noqa: F401  (version below)
    from importlib.metadata import PackageNotFoundError, version

    try:
        gc_version = version("grad-cam")
    except PackageNotFoundError:  # pragma: no cover
        gc_version = "unknown"
    results = {
        "version": EVAL_VERSION,
        "eval_key": _eval_key(prof, keys, n_target),
        "models_key": None if models_given else _models_key(prof, src),
        "sets_key": None if sets_given else _sets_key(prof, n_target),
        "profile": prof.name,
        "source": src,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type,
        "torch": torch.__version__,
        "grad_cam": gc_version,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "total_seconds": total,
        "methods": keys,
        "settings": {"stack_images": n_target, "batch_size": batch, "opticam_iterations": ev.opticam_iterations,
                     "opticam_lr": ev.opticam_lr, "score_batch": ev.score_batch, "grid_images": ev.grid_images,
                     "seed": ev.seed, "targets": "top class"},
        "unseen_rows": [int(rows_unseen[0]), int(rows_unseen[-1])],
        "unseen_row_count": int(len(rows_unseen)),
        "models": {name: {"fingerprint": _model_fingerprint(m), "wall_rows": int(getattr(m, "wall_rows", -1)),
                          **{k: v for k, v in model_infos.get(name, {}).items() if _jsonable(v)}}
                   for name, m in models.items()},
        "sets": {name: dict(desc, n_images=int(min(len(images), n_target)),
                            fingerprint=_set_fingerprint(images[:n_target]))
                 for name, (images, _, desc) in prepared.items()},
        "rows": rows,
        "per_image": per_image,
        "targets": targets_out,
        "labels": labels_out,
    }
    if write:
        _write_or_keep(results, grids, paths)
    results["_maps"] = grids
    return results


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _write(results: Mapping[str, Any], grids: Mapping[str, np.ndarray], paths: Mapping[str, Path]) -> None:
    """Write ``table1.csv``, ``table1.json`` and ``maps.npz``: all three to temporary files
    first, then each moved into place, ``table1.json`` (what :func:`evaluation` checks)
    last -- a failed write leaves the previous results whole, never a new JSON beside old maps.

    Raises:
        OSError: when a file cannot be written (the temporary files are removed).
    """
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    body = {k: v for k, v in results.items() if not k.startswith("_")}
    tmps = {"maps": paths["maps"].with_name("maps.tmp.npz"), "csv": paths["csv"].with_suffix(".csv.tmp"),
            "json": paths["json"].with_suffix(".json.tmp")}
    try:
        np.savez_compressed(tmps["maps"], **{k.replace("/", "_"): v for k, v in grids.items()})
        with tmps["csv"].open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS))
            writer.writeheader()
            for row in results["rows"]:
                writer.writerow({k: row[k] for k in CSV_COLUMNS})
        tmps["json"].write_text(json.dumps(body, indent=1, allow_nan=True))
        for key in ("maps", "csv", "json"):
            os.replace(tmps[key], paths[key])
    finally:
        for tmp in tmps.values():
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass


def save_results(results: Mapping[str, Any], folder: str | Path) -> dict[str, Path]:
    """Write results (the dict :func:`evaluate` or :func:`evaluation` returns, with its
    ``"_maps"``) to ``folder`` as ``table1.csv``, ``table1.json`` and ``maps.npz``.

    Returns:
        The paths written (:func:`results_paths`).

    Raises:
        OSError: when a file cannot be written (the previous files in ``folder`` stay whole).
    """
    paths = results_paths(None, folder)
    _write(results, results.get("_maps") or {}, paths)
    return paths


def _write_or_keep(results: dict[str, Any], grids: Mapping[str, np.ndarray], paths: Mapping[str, Path]) -> None:
    """:func:`_write`; when it fails, write a copy to a new temporary folder instead and raise.

    Raises:
        ResultsWriteError: naming the folder that could not be written, the cause, and where
            the copy is (or that none could be written); it carries the results.
    """
    try:
        _write(results, grids, paths)
        return
    except OSError as err:
        target, cause = paths["json"].parent, f"{type(err).__name__}: {err}"
    kept: Path | None = None
    try:
        kept = Path(tempfile.mkdtemp(prefix=f"camwalls-results-{results.get('profile', 'x')}-"))
        _write(results, grids, results_paths(None, kept))
        where = (f"Nothing is lost: a copy is in {kept} (table1.csv, table1.json, maps.npz); free space or "
                 f"fix the folder, then copy those files to {target}.")
    except OSError as second:
        if kept is not None:
            import shutil

            shutil.rmtree(kept, ignore_errors=True)
            kept = None
        where = (f"A copy in a temporary folder failed too ({type(second).__name__}: {second}); the results "
                 "are only in memory, on this exception's .results: free some disk space and write them "
                 "with helpers.evaluate.save_results(err.results, folder).")
    raise ResultsWriteError(
        f"The evaluation finished but its results could not be written to {target} ({cause}); expected a "
        f"folder that stays writable. {where}", results=dict(results, _maps=grids), kept_in=kept)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

def load_results(profile: str | Profile | None = None, folder: str | Path | None = None) -> dict | None:
    """The saved results of a profile (``table1.json``), or ``None`` when there are none."""
    path = results_paths(profile, folder)["json"]
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def load_maps(profile: str | Profile | None = None, folder: str | Path | None = None) -> dict[str, np.ndarray]:
    """The saved grid maps: ``{"<model>|<set>|<method>": (k, 14, 14) low maps}`` (FullGrad's are
    224x224) and images ``{"images|<set>": (k, 3, 224, 224)}``; empty when there are none."""
    path = results_paths(profile, folder)["maps"]
    if not path.is_file():
        return {}
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def evaluation(profile: str | Profile | None = None, recompute: bool = False, *,
               models: Mapping[str, torch.nn.Module] | None = None, sets: Mapping[str, Any] | None = None,
               methods: Sequence[str] | str | None = None, source: str = "auto",
               folder: str | Path | None = None, show_progress: bool = True, **kwargs: Any) -> dict[str, Any]:
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
        saved = _load_current(prof, source, keys, n_target, models, sets, folder)
        if saved is not None:
            return saved
    return evaluate(prof, methods=keys, models=models, sets=sets, source=source, folder=folder,
                    show_progress=show_progress, **kwargs)


def _load_current(prof: Profile, source: str, keys: Sequence[str], n_target: int, models: Mapping | None,
                  sets: Mapping | None, folder: str | Path | None) -> dict[str, Any] | None:
    """The saved results in ``folder`` (default: the cache) with their maps, when they are
    current for these settings (:func:`_still_valid`); ``None`` otherwise. Reads only."""
    saved = load_results(prof, folder)
    if saved is not None and _still_valid(saved, prof, source, keys, n_target, models, sets):
        saved["_maps"] = load_maps(prof, folder)
        return saved
    return None


def _still_valid(saved: dict, prof: Profile, source: str, keys: Sequence[str], n_target: int,
                 models: Mapping | None, sets: Mapping | None) -> bool:
    if saved.get("version") != EVAL_VERSION or saved.get("eval_key") != _eval_key(prof, keys, n_target):
        return False
    if models is not None:
        have = saved.get("models", {})
        if set(have) != set(models):
            return False
        if any(have[name].get("fingerprint") != _model_fingerprint(m) for name, m in models.items()):
            return False
    else:
        src = _resolve_source(prof, source, False)
        if saved.get("source") != src or saved.get("models_key") is None:
            return False
        try:
            if saved["models_key"] != _models_key(prof, src):
                return False
        except ImportError:
            return False
    if sets is not None:
        have = saved.get("sets", {})
        if set(have) != set(sets):
            return False
        for name, value in sets.items():
            images, _, _ = _as_set(name, value)
            if have[name].get("fingerprint") != _set_fingerprint(images[:n_target]):
                return False
    elif saved.get("sets_key") is None or saved["sets_key"] != _sets_key(prof, n_target):
        return False
    return True


def table1(profile: str | Profile | None = None, recompute: bool = False, **kwargs: Any) -> list[dict[str, Any]]:
    """Table 1 as a list of row dicts (keys :data:`CSV_COLUMNS`): loaded from the results
    folder when present and current, computed and written otherwise (see :func:`evaluation`).
    :func:`helpers.results.table` makes the results table of it."""
    return evaluation(profile, recompute, **kwargs)["rows"]


def per_image(results: Mapping[str, Any], model: str, dataset: str, method: str,
              quantity: str = "mu") -> np.ndarray:
    """Per-image values (``"mu"``, ``"zero_fraction"``, ``"zero_row_fraction"``,
    ``"first_zero_row"``, ``"all_zero"``) of one cell of the results."""
    key = cams.get_method(method).key
    try:
        return np.asarray(results["per_image"][model][dataset][key][quantity])
    except KeyError:
        raise KeyError(f"No per-image {quantity!r} for model {model!r}, set {dataset!r}, method {key!r}; "
                       f"the results hold models {list(results.get('per_image', {}))}.") from None


def grid_maps(results: Mapping[str, Any], model: str, dataset: str, method: str,
              kind: str = "scaled") -> np.ndarray:
    """The first ``grid_images`` maps of a cell, from the saved 14x14 maps (FullGrad: 224x224).

    ``kind``: ``"scaled"`` -- as pytorch-grad-cam returns them ``(k, 224, 224)``, through
    :func:`helpers.cams.postprocess`; ``"low"`` -- the raw maps at the target layer's
    resolution (ReLU'd, not scaled); ``"upsampled"`` -- those resized, not scaled.
    """
    key = cams.get_method(method).key
    maps = results.get("_maps") or {}
    name = f"{model}|{dataset}|{key}"
    if name not in maps:
        raise KeyError(f"No saved maps for {name!r}; run the evaluation (helpers.evaluate.evaluation).")
    if kind not in ("scaled", "low", "upsampled"):
        raise ValueError(f"kind must be 'scaled', 'low' or 'upsampled', got {kind!r}.")
    return cams.postprocess(maps[name], key, (224, 224))[kind]


def grid_images(results: Mapping[str, Any], dataset: str) -> torch.Tensor:
    """The first ``grid_images`` images of a stack set, as saved with the results
    ``(k, 3, 224, 224)`` (ImageNet-normalized, stored in float16: for display)."""
    maps = results.get("_maps") or {}
    name = f"images|{dataset}"
    if name not in maps:
        raise KeyError(f"No saved images for the set {dataset!r}; the results hold "
                       f"{sorted(k[7:] for k in maps if k.startswith('images|'))}.")
    return torch.from_numpy(maps[name].astype(np.float32))


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.evaluate``: compute (or load) Table 1 and print it.

    The results always go to the cache (:func:`results_paths`) first, where :func:`evaluation`
    finds them again; with ``--out`` they are then also written there. Both folders are checked
    before anything is computed (an ``--out`` that cannot be written stops the command at once;
    a cache that cannot be written is skipped when ``--out`` is given).

    Returns the exit status: 0, or :data:`helpers.cli.EXIT_ERROR` after an error, printed as
    one ``error: ...`` line on stderr (``--debug``: the exception propagates, with its
    traceback). Usage errors exit through argparse (``SystemExit``).
    """
    parser = argparse.ArgumentParser(
        prog="python -m helpers.evaluate",
        description="Every CAM method x stack set x model against the wall: mu (share of the map's "
        "L2 norm behind the wall), zero fraction, time. Writes CSV, JSON and maps to the results folder "
        "(the cache), and to --out when given.")
    parser.add_argument("--profile", default=None, help="quick or full (default $CAMWALLS_PROFILE or quick)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated methods (default: all; 'paper' for the paper's eight)")
    parser.add_argument("--images", type=int, default=None, help="images per stack set (default: profile's)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    parser.add_argument("--source", default="auto", choices=("auto", "trained", "authors"),
                        help="the profile's trained models, or the authors' released checkpoints")
    parser.add_argument("--force", action="store_true", help="recompute even when current results exist")
    parser.add_argument("--out", default=None,
                        help="also write the results to this folder (they always go to the cache first)")
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda: _command(args), debug=args.debug)


def _command(args: argparse.Namespace) -> int:
    """The body of :func:`main`, run under :func:`helpers.cli.run`.

    Raises:
        helpers.cli.NotWritableError: before any computation, when ``--out`` cannot be written,
            or neither ``--out`` nor the cache can.
        ResultsWriteError: when writing ``--out`` fails after the computation; the results
            are then in the cache (or in the folder the message names).
    """
    methods = None
    if args.methods:
        methods = "paper" if args.methods.strip() == "paper" else [m.strip() for m in args.methods.split(",")]
    prof = get_profile(args.profile)
    keys = cams.method_keys(methods)  # an unknown method fails here, before any work
    if args.images is not None and args.images < 1:
        raise ValueError(f"--images must be a positive number of images per stack set, got {args.images}.")
    n_target = args.images or prof.eval.stack_images
    out = None
    if args.out is not None:
        out = cli.ensure_writable_folder(args.out, "--out", "Pass --out a folder you can write to, or omit --out "
                                         "(the results always go to the cache).")
    cache = results_paths(prof)["json"].parent
    start = time.perf_counter()
    res, where = None, None
    if not args.force:
        for folder in ((None, out) if out is not None else (None,)):
            res = _load_current(prof, args.source, keys, n_target, None, None, folder)
            if res is not None:
                where = cache if folder is None else out
                break
    if res is None:
        problem = cli.folder_problem(cache)
        if problem is not None and out is None:
            raise cli.NotWritableError(
                f"The results folder {cache} (the cache, below ${HOME_ENV}) cannot be used: expected a "
                f"folder that can be created and written to, found that {problem}. Set {HOME_ENV} to a "
                "writable folder, or pass --out FOLDER.")
        if problem is not None:
            print(f"note: the cache {cache} cannot be written ({problem}); the results go to --out {out} only.",
                  file=sys.stderr)
        where = cache if problem is None else out
        res = evaluate(prof, methods=keys, source=args.source, device=args.device, n_images=args.images,
                       folder=where)
    if out is not None and where is not None and Path(where).resolve() != out.resolve():
        try:
            save_results(res, out)
        except OSError as err:
            raise ResultsWriteError(
                f"Cannot write the results to --out {out} ({type(err).__name__}: {err}). Nothing is lost: "
                f"they are in {where} (table1.csv, table1.json, maps.npz); copy them from there, or run "
                "the command again with a writable --out (it then loads them instead of computing).",
                results=res, kept_in=Path(where)) from err
    wall = time.perf_counter() - start
    paths = results_paths(prof, out if out is not None else where)
    print(R.table_text(R.table(res)))
    print(f"\nprofile {res['profile']}, source {res['source']}, device {res['device']}; "
          f"{res['settings']['stack_images']} images per set; Opti-CAM: "
          f"{res['settings']['opticam_iterations']} iterations.")
    print(f"evaluation time: {res['total_seconds']:.1f} s (computed {res['created']}); this command: {wall:.1f} s")
    print(f"results: {paths['csv']}\n         {paths['json']}\n         {paths['maps']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
