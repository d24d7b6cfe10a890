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

``python -m helpers.evaluate --paper-table`` is the paper's Table 1 in one command: the full
profile on the authors' release (downloaded first when missing, and checked), the paper's eight
methods on both sets and both models, and the paper's numbers beside ours with the difference
(:mod:`helpers.evaluate.paper_table`).

The parts: ``keys`` (fingerprints and cache keys), ``inputs`` (models and stack sets),
``run`` (the evaluation and reading one cell of it), ``store`` (the files), ``paper_table``
(the paper's Table 1 in one command), ``cli`` (the command line).
"""

from .cli import main
from .inputs import load_models, load_sets
from .keys import EVAL_VERSION
from .run import MODELS, evaluate, evaluation, grid_images, grid_maps, per_image, table1
from .store import (
    CSV_COLUMNS,
    ResultsWriteError,
    load_maps,
    load_results,
    results_paths,
    save_results,
)

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
