"""Where an evaluation's results live, and writing and reading them whole.

Three files per results folder (:func:`results_paths`; by default the profile's folder of
:func:`helpers.config.results_dir`): ``table1.csv`` (the rows, :data:`CSV_COLUMNS`),
``table1.json`` (rows, per-image values, settings, provenance) and ``maps.npz`` (the first
``grid_images`` maps of each cell, for the chapters' grids). They are written all three or not
at all; results that cannot be written where asked are kept elsewhere, never lost
(:class:`ResultsWriteError`).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Profile, cache_dir, get_profile

__all__ = [
    "CSV_COLUMNS",
    "ResultsWriteError",
    "results_paths",
    "save_results",
    "write_or_keep",
    "load_results",
    "load_maps",
]

#: The columns of ``table1.csv`` (and the keys of every row).
CSV_COLUMNS = (
    "profile",
    "source",
    "device",
    "model",
    "dataset",
    "method",
    "display",
    "in_paper",
    "weights",
    "prediction",
    "mu_mean",
    "mu_std",
    "mu_min",
    "mu_max",
    "mu_zero_share",
    "zero_fraction",
    "zero_row_fraction",
    "zero_maps",
    "top1",
    "n_images",
    "seconds",
    "seconds_per_image",
    "note",
)


class ResultsWriteError(OSError):
    """The results were computed but could not be written where asked.

    The message says where they are instead (another copy written before, or a temporary
    folder); :attr:`results` holds them (the dict :func:`helpers.evaluate.evaluate` returns),
    :attr:`kept_in` the folder that holds a copy on disk (``None`` when no copy could be
    written at all).
    """

    def __init__(
        self,
        message: str,
        results: dict[str, Any] | None = None,
        kept_in: Path | None = None,
    ) -> None:
        super().__init__(message)
        self.results = results
        self.kept_in = kept_in


def results_paths(
    profile: str | Profile | None = None, folder: str | Path | None = None
) -> dict[str, Path]:
    """``{"csv", "json", "maps"}``: where the results of a profile live (``folder`` overrides
    :func:`helpers.config.results_dir`, ``<cache>/results/<profile>``). Only paths: no folder
    is created (reading must work where the cache cannot be written)."""
    base = (
        Path(folder)
        if folder is not None
        else cache_dir("results", get_profile(profile).name, create=False)
    )
    return {
        "csv": base / "table1.csv",
        "json": base / "table1.json",
        "maps": base / "maps.npz",
    }


def _write(
    results: Mapping[str, Any],
    grids: Mapping[str, np.ndarray],
    paths: Mapping[str, Path],
) -> None:
    """Write ``table1.csv``, ``table1.json`` and ``maps.npz``: all three to temporary files
    first, then each moved into place, ``table1.json`` (what
    :func:`helpers.evaluate.evaluation` checks) last -- a failed write leaves the previous
    results whole, never a new JSON beside old maps.

    Raises:
        OSError: when a file cannot be written (the temporary files are removed).
    """
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    body = {k: v for k, v in results.items() if not k.startswith("_")}
    tmps = {
        "maps": paths["maps"].with_name("maps.tmp.npz"),
        "csv": paths["csv"].with_suffix(".csv.tmp"),
        "json": paths["json"].with_suffix(".json.tmp"),
    }
    try:
        np.savez_compressed(
            tmps["maps"], **{k.replace("/", "_"): v for k, v in grids.items()}
        )
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
    """Write results (the dict :func:`helpers.evaluate.evaluate` or
    :func:`helpers.evaluate.evaluation` returns, with its ``"_maps"``) to ``folder`` as
    ``table1.csv``, ``table1.json`` and ``maps.npz``.

    Returns:
        The paths written (:func:`results_paths`).

    Raises:
        OSError: when a file cannot be written (the previous files in ``folder`` stay whole).
    """
    paths = results_paths(None, folder)
    _write(results, results.get("_maps") or {}, paths)
    return paths


def write_or_keep(
    results: dict[str, Any], grids: Mapping[str, np.ndarray], paths: Mapping[str, Path]
) -> None:
    """Write the results to ``paths``; when that fails, write a copy to a new temporary folder
    instead and raise.

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
        kept = Path(
            tempfile.mkdtemp(prefix=f"camwalls-results-{results.get('profile', 'x')}-")
        )
        _write(results, grids, results_paths(None, kept))
        where = (
            f"Nothing is lost: a copy is in {kept} (table1.csv, table1.json, maps.npz); free space or "
            f"fix the folder, then copy those files to {target}."
        )
    except OSError as second:
        if kept is not None:
            shutil.rmtree(kept, ignore_errors=True)
            kept = None
        where = (
            f"A copy in a temporary folder failed too ({type(second).__name__}: {second}); the results "
            "are only in memory, on this exception's .results: free some disk space and write them "
            "with helpers.evaluate.save_results(err.results, folder)."
        )
    raise ResultsWriteError(
        f"The evaluation finished but its results could not be written to {target} ({cause}); expected a "
        f"folder that stays writable. {where}",
        results=dict(results, _maps=grids),
        kept_in=kept,
    )


def load_results(
    profile: str | Profile | None = None, folder: str | Path | None = None
) -> dict | None:
    """The saved results of a profile (``table1.json``), or ``None`` when there are none."""
    path = results_paths(profile, folder)["json"]
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def load_maps(
    profile: str | Profile | None = None, folder: str | Path | None = None
) -> dict[str, np.ndarray]:
    """The saved grid maps: ``{"<model>|<set>|<method>": (k, 14, 14) low maps}`` (FullGrad's are
    224x224) and images ``{"images|<set>": (k, 3, 224, 224)}``; empty when there are none."""
    path = results_paths(profile, folder)["maps"]
    if not path.is_file():
        return {}
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
