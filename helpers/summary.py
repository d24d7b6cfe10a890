"""The book's results pages, generated from result files and ``helpers``, never typed in.

Used by the landing page (``book/intro.md``) and the results page (``book/results.md``):

* :func:`load_table` gets the results table (:func:`helpers.results.table`, one row per method
  x stack set x model) from ``helpers.evaluate`` (which loads the saved evaluation or computes
  it) or from a ``table1.json``/``table1.csv`` that ``python -m helpers.evaluate`` wrote; what
  the pages show of it -- the paper's numbers beside ours, the verdicts, Table 1 itself -- is
  :mod:`helpers.results`'s;
* :func:`benchmark_records` reads the GPU benchmark files (``results/benchmarks/*.json``, what
  ``python -m tools.benchmark`` writes); :func:`read_results` keeps the throughput runs,
  :func:`results_table` makes one display row of each, and :func:`benchmark_html` shows them
  (or says, from code, that there are none);
* :func:`gpu_session` / :func:`gpu_session_html` read what ``python -m tools.gpu_session`` wrote;
  :func:`cpu_runs` the longer CPU training runs;
* :func:`run_stamp` says which profile and device produced the rendered results.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from . import evaluate
from . import results as R
from . import train as T
from .config import BUILD_ENV, display_path, get_device, get_profile
from .geometry import rvgg_geometry
from .results import html_table

__all__ = [
    "models_note",
    "load_table",
    "repo_root",
    "benchmark_dir",
    "benchmark_records",
    "read_results",
    "results_table",
    "markdown_table",
    "benchmark_html",
    "run_stamp",
    "gpu_dir",
    "gpu_session",
    "cpu_runs",
    "tied_runs",
    "gpu_caveat_html",
    "gpu_training_html",
    "gpu_bench_cams_html",
    "gpu_session_html",
]


def models_note(profile: Any = None) -> str:
    """One sentence (Markdown) saying which models a page used: the quick models trained here,
    the ones shipped with helpers (:mod:`helpers.train.pretrained`), or the authors' release.

    Every page that shows a trained model's output prints it, so that a reader of the built book
    and a Colab user know which of the two paths ran (``$CAMWALLS_PRETRAINED``). The models are
    read from the checkpoint cache (trained first if missing, as the page itself would).
    """
    prof = get_profile(profile)
    if evaluate.keys.resolve_source(prof, "auto", False) == "authors":
        return (
            "Models on this page: the authors' released walled VGG16 and its baseline "
            "(their checkpoints, `helpers.data.load_authors_model`)."
        )
    infos = {
        name: T.train_or_load(prof, walled=walled, device="cpu")[1]
        for name, walled in (("walled", True), ("baseline", False))
    }
    shipped = [n for n, i in infos.items() if i.get("source") == "pretrained"]
    where = ", ".join(f"`{display_path(i['checkpoint'])}`" for i in infos.values())
    if len(shipped) == len(infos):
        return (
            f"Models on this page: the {prof.name} walled rVGG and its baseline shipped with "
            f"helpers (`helpers/pretrained`, trained with this very recipe by `python -m "
            f"helpers.train --profile {prof.name}`), copied to {where}. Set "
            f"`CAMWALLS_PRETRAINED=0` to train your own."
        )
    by = (
        "on the machine that built this page"
        if os.environ.get(BUILD_ENV)
        else "on this machine"
    )
    minutes = max(float(i.get("train_seconds") or 0) for i in infos.values()) / 60
    text = (
        f"Models on this page: the {prof.name} walled rVGG and its baseline, trained from "
        f"scratch {by} ({minutes:.1f} min, the two at once; {where})"
    )
    if shipped:
        text += f"; the {' and '.join(shipped)} model shipped with helpers"
    return text + "."


def load_table(source: Any = None, profile: Any = None) -> pd.DataFrame:
    """The results table (:func:`helpers.results.table`).

    ``source``: ``None`` asks ``helpers.evaluate`` (``table1(profile)``, which loads the saved
    results of the profile or computes them); else anything :func:`helpers.results.table`
    accepts (a ``table1.json``/``table1.csv`` path, the evaluation, its rows).
    """
    if source is None:
        source = evaluate.table1(profile=profile)
    return R.table(source)


def _fmt(x: float, digits: int = 3) -> str:
    return (
        "n/a"
        if x is None or (isinstance(x, float) and math.isnan(x))
        else f"{x:.{digits}f}"
    )


# --------------------------------------------------------------------------------------------
# GPU benchmarks and the run stamp
# --------------------------------------------------------------------------------------------


def repo_root(start: str | Path | None = None) -> Path | None:
    """The book's repository root (a folder with ``_config.yml`` and ``helpers/``), searched
    upwards from ``start`` (default: the working directory), then from this package; ``None``
    when the helpers are installed without the book (e.g. pip in Colab)."""
    starts = [
        Path(start) if start is not None else Path.cwd(),
        Path(__file__).resolve().parent,
    ]
    for base in starts:
        for folder in (base.resolve(), *base.resolve().parents):
            if (folder / "_config.yml").is_file() and (folder / "helpers").is_dir():
                return folder
    return None


def benchmark_dir(root: str | Path | None = None) -> Path | None:
    """``<repo>/results/benchmarks`` (whether or not it exists), or ``None`` without a checkout."""
    base = Path(root) if root is not None else repo_root()
    return None if base is None else base / "results" / "benchmarks"


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, name + "."))
        elif isinstance(v, (str, int, float, bool)) or v is None:
            out[name] = v
    return out


def _read_json(path: Path, what: str, fix: str) -> Any:
    """The JSON in ``path``; a file that is not valid JSON raises ``ValueError`` saying what to do."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {path} is not valid JSON ({err}); {fix}.") from err


def benchmark_records(folder: str | Path | None = None) -> list[dict[str, Any]]:
    """Every ``*.json`` of the benchmark folder, flattened (nested keys joined by dots), with
    its file name under ``"file"``; ``[]`` when the folder is missing or empty.

    Raises:
        ValueError: a file that is not valid JSON, or whose top level is not an object.
    """
    folder = Path(folder) if folder is not None else benchmark_dir()
    if folder is None or not folder.is_dir():
        return []
    records = []
    for path in sorted(folder.glob("*.json")):
        data = _read_json(
            path, "Benchmark file", "rerun the benchmark or delete the file"
        )
        if not isinstance(data, Mapping):
            raise ValueError(
                f"Benchmark file {path} should hold a JSON object, found {type(data).__name__}."
            )
        records.append({"file": path.name, **_flatten(data)})
    return records


def _throughput(record: Mapping[str, Any]) -> bool:
    """Whether a benchmark record is a throughput run of ``python -m tools.benchmark``."""
    return "train_images_per_s" in record and "inference_images_per_s" in record


def _newest_first(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: r.get("date", ""), reverse=True)


def read_results(
    folder: str | Path | None = None, include_tiny: bool = False
) -> list[dict[str, Any]]:
    """The throughput runs of ``python -m tools.benchmark`` among :func:`benchmark_records`
    (default folder: :func:`benchmark_dir`), newest first. Runs of its ``--tiny`` CPU
    configuration are left out unless ``include_tiny``.

    Raises:
        ValueError: a file that is not valid JSON (:func:`benchmark_records`).
    """
    return _newest_first(
        [
            r
            for r in benchmark_records(folder)
            if _throughput(r) and (include_tiny or not r.get("tiny"))
        ]
    )


def results_table(results: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row (a dict of display strings and numbers) per benchmark run, for the book's tables."""
    rows = []
    for r in results:
        rows.append(
            {
                "device": r["device"],
                "date": r["date"][:10],
                "torch": r["torch"],
                "precision": r["precision"],
                "batch": r["batch_size"],
                "compile": r["compile"],
                "train img/s": round(r["train_images_per_s"], 1),
                "train MFU": "n/a"
                if r.get("train_mfu") is None
                else f"{100 * r['train_mfu']:.1f}%",
                "inference img/s": round(r["inference_images_per_s"], 1),
                "inference MFU": "n/a"
                if r.get("inference_mfu") is None
                else f"{100 * r['inference_mfu']:.1f}%",
            }
        )
    return rows


def markdown_table(rows: list[Mapping[str, Any]]) -> str:
    """A Markdown table of ``rows`` (dicts with the same keys); ``""`` for no rows."""
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


_DEVICE_KEYS = ("gpu_name", "device_name", "gpu", "card", "device")


def benchmark_html(folder: str | Path | None = None) -> str:
    """The GPU benchmark results as HTML (one table per file), or a paragraph saying, from the
    folder's content, that no benchmark was run (no GPU was available when the book was made)."""
    folder_path = Path(folder) if folder is not None else benchmark_dir()
    records = benchmark_records(folder_path)
    where = "results/benchmarks/" if folder is None else str(folder_path)
    if not records:
        return (
            f'<p class="camwalls-note">No GPU benchmark result is in <code>{html.escape(where)}</code>: '
            "no GPU was available where this book was built, so there are no GPU throughput or MFU "
            "figures to report. On a machine with a GPU, run the benchmark command "
            "(<code>python -m tools.benchmark</code>); its JSON files land in that folder and appear "
            "here at the next build.</p>"
        )
    standard = _newest_first([r for r in records if _throughput(r)])
    parts = []
    if standard:  # the files of tools.benchmark: one compact table, newest first
        peaks = sorted(
            {
                f"{r['device']}: {r['peak_tflops']:g} TFLOP/s"
                for r in standard
                if r.get("peak_tflops")
            }
        )
        cap = (
            "Full-width rVGG, random images already on the GPU, SGD with momentum; MFU: 3x the forward "
            f"FLOPs per training image (1x for inference) over the card's dense bf16 peak ({'; '.join(peaks)})"
        )
        parts.append(
            html_table(results_table(standard), caption=cap, wrap=True, scroll=True)
        )
    for rec in (r for r in records if r not in standard):
        device = next((rec[k] for k in _DEVICE_KEYS if rec.get(k)), "unknown device")
        rows = [{"key": k, "value": _fmt_any(v)} for k, v in rec.items() if k != "file"]
        parts.append(
            html_table(
                rows,
                [("key", "quantity"), ("value", "value")],
                caption=f"{rec['file']}: measured on {device}",
            )
        )
    return "\n".join(parts)


def _fmt_any(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def run_stamp(profile: Any = None) -> str:
    """Which profile and device produced the results of this build, and when.

    E.g. ``"profile quick (CPU, synthetic images, ...) on cpu (2 cores); torch 2.4.1; 2026-05-01 12:00"``.
    """
    prof = get_profile(profile)
    dev = get_device()
    if dev.type == "cuda":
        where = f"cuda ({torch.cuda.get_device_name(dev)})"
    else:
        where = (
            f"{dev.type} ({os.cpu_count()} cores, {platform.machine() or 'unknown'})"
        )
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"profile {prof.name} ({prof.description}) on {where}; torch {torch.__version__}; {when}"


# --------------------------------------------------------------------------------------------
# The GPU session (python -m tools.gpu_session): full-width training, Table 1 and CAM speed on a GPU
# --------------------------------------------------------------------------------------------


def gpu_dir(root: str | Path | None = None) -> Path | None:
    """``<repo>/results/gpu`` (whether or not it exists), or ``None`` without a checkout."""
    base = Path(root) if root is not None else repo_root()
    return None if base is None else base / "results" / "gpu"


def gpu_session(folder: str | Path | None = None) -> dict[str, Any]:
    """The files ``python -m tools.gpu_session`` wrote (``training.json``, ``evaluation.json``,
    ``bench_cams.json``), as ``{"training": ..., "evaluation": ..., "bench_cams": ...}``; a file
    that is missing is left out, a file that is not valid JSON raises ``ValueError`` naming it."""
    path = Path(folder) if folder is not None else gpu_dir()
    out: dict[str, Any] = {}
    if path is None or not path.is_dir():
        return out
    for name in ("training", "evaluation", "bench_cams"):
        file = path / f"{name}.json"
        if file.is_file():
            out[name] = _read_json(
                file,
                "GPU session file",
                "rerun python -m tools.gpu_session or delete the file",
            )
    return out


def cpu_runs(folder: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The training summaries ``python -m helpers.train ... --summary-json results/cpu/<name>.json``
    wrote (longer CPU runs than the quick profile's), as ``{name: summary}`` with the runs under
    ``summary["runs"]`` keyed ``"walled"``/``"baseline"``; ``{}`` when there are none. A file
    that is not valid JSON, or lacks ``runs``, raises ``ValueError`` naming it."""
    if folder is not None:
        path: Path | None = Path(folder)
    else:
        root = repo_root()
        path = None if root is None else root / "results" / "cpu"
    out: dict[str, dict[str, Any]] = {}
    if path is None or not path.is_dir():
        return out
    fix = "rerun the command in its 'command' field or delete the file"
    for file in sorted(path.glob("*.json")):
        data = _read_json(file, "CPU training summary", fix)
        if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
            raise ValueError(f"CPU training summary {file} has no 'runs' list; {fix}.")
        runs = {("walled" if r.get("walled") else "baseline"): r for r in data["runs"]}
        out[file.stem] = {**data, "runs": runs}
    return out


def tied_runs(session: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """The training runs of a GPU session whose first dense layer stayed tied across positions to
    the end (their head is a sum over positions, not rVGG's), as ``{model: (tied steps, steps)}``.

    A run's steps are its training images over its batch size; an old run records ``tie_steps``,
    a newer one ``tie_fraction`` (which :func:`helpers.train.tied_steps` never lets reach the end).
    """
    out = {}
    for name, run in session.get("training", {}).get("training", {}).items():
        t = run.get("train", {})
        steps = int(run.get("images", 0)) // max(1, int(t.get("batch_size", 1)))
        tied = (
            int(t["tie_steps"])
            if "tie_steps" in t
            else int(round(float(t.get("tie_fraction", 0.0)) * steps))
        )
        if steps and tied >= steps:
            out[name] = (min(tied, steps), steps)
    return out


def gpu_caveat_html(session: Mapping[str, Any]) -> str:
    """A note saying which GPU runs are not a trained rVGG (:func:`tied_runs`), or ``""``."""
    tied = tied_runs(session)
    if not tied:
        return ""
    which = ", ".join(
        f"{name} ({steps} of {total} steps tied)"
        for name, (steps, total) in tied.items()
    )
    return (
        '<p class="camwalls-note"><b>Not a trained rVGG.</b> In this GPU run the first dense layer '
        f"kept the same weights at every map position for the whole run: {html.escape(which)}. Its head "
        "is a sum over positions, not rVGG's dense layer with a weight per position, so these "
        "networks are not presented as trained rVGGs (one sign: the baseline's GradCAM equals its "
        "HiResCAM). The timings stand; the accuracies and mu values describe that other network. "
        "The tie is now a fraction of the steps and <code>helpers.train</code> refuses one that lasts to "
        "the end; the rerun of <code>python -m tools.gpu_session</code> with the fixed recipe waits "
        "for a GPU.</p>"
    )


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.1f}%"


def gpu_training_html(session: Mapping[str, Any]) -> str:
    """The full-width training runs of the GPU session as an HTML table."""
    train = session.get("training", {})
    runs = train.get("training", {})
    if not runs:
        return ""
    rows = []
    for name, r in runs.items():
        pos = r.get("position_accuracy") or {}
        t = r.get("train", {})
        recipe = (
            f"{t.get('optimizer')} lr {t.get('lr')}, batch {t.get('batch_size')}, "
            f"{t.get('epochs')} epochs{', batch norm (folded)' if t.get('batch_norm') else ''}"
        )
        rows.append(
            {
                "model": name,
                "width": f"{r.get('width'):g}",
                "recipe": recipe,
                "images": str(r.get("images")),
                "seconds": _fmt(r.get("seconds"), 1),
                "images/s": _fmt(r.get("images_per_s"), 0),
                "val acc.": _pct(r.get("val_accuracy")),
                "above": _pct(pos.get("above")),
                "across": _pct(pos.get("straddle")),
                "below": _pct(pos.get("below")),
            }
        )
    cap = (
        f"Full-width rVGG trained on the synthetic world on {train.get('device')} "
        f"(torch {train.get('torch')}, {str(train.get('date', ''))[:10]}); seconds: end to end, "
        "synthetic images drawn on the CPU included; accuracy by where the object lies: entirely "
        f"above row {rvgg_geometry().first_unseen_row}, across it, entirely below it (10 classes: "
        "chance is 10%)"
    )
    return html_table(rows, caption=cap, wrap=True, scroll=True)


def gpu_bench_cams_html(session: Mapping[str, Any]) -> str:
    """``tools.bench_cams`` at full width on the GPU as an HTML table."""
    bench = session.get("bench_cams")
    if not bench:
        return ""
    rows = [
        {
            "case": r["case"],
            "library": 1000 * r["library_s"],
            "ours": 1000 * r["ours_s"],
            "speedup": f"{r['speedup']:.1f}x",
            "diff": r["max_abs_diff"],
        }
        for r in bench.get("rows", [])
    ]
    cap = (
        f"pytorch-grad-cam against helpers.cams, milliseconds per image, {bench.get('images')} STACK-MIX "
        f"images, full-width walled rVGG, on {bench.get('device')} ({str(bench.get('date', ''))[:10]})"
    )
    columns = [
        ("case", "case"),
        ("library", "pytorch-grad-cam"),
        ("ours", "helpers.cams"),
        ("speedup", "speed-up"),
        ("diff", "max abs diff"),
    ]
    return html_table(
        rows,
        columns,
        caption=cap,
        formats={"library": ".1f", "ours": ".1f", "diff": ".1e"},
    )


def gpu_session_html(folder: str | Path | None = None) -> str:
    """Everything the GPU session measured, as HTML; a note when it has not been run."""
    session = gpu_session(folder)
    if not session:
        return (
            '<p class="camwalls-note">No GPU session results are in <code>results/gpu/</code>. On a '
            "machine with a CUDA GPU, <code>python -m tools.gpu_session --out results/gpu</code> writes "
            "them; they appear here at the next build.</p>"
        )
    parts = [gpu_caveat_html(session), gpu_training_html(session)]
    ev = session.get("evaluation")
    if ev:
        table = R.table(ev)
        parts.append(
            f"<p>Evaluation on {html.escape(str(ev.get('device')))}: every method, both stack sets, both "
            f"models, {ev['settings']['stack_images']} images per set, Opti-CAM with "
            f"{ev['settings']['opticam_iterations']} Adam steps: <b>{ev['total_seconds']:.1f} s</b> in all; "
            f"the paper's {len(ev['table1_methods'])} methods on the walled model (Table 1 proper): "
            f"<b>{ev['table1_seconds']:.1f} s</b>.</p>"
        )
        parts.append(
            R.table_html(
                table,
                order="mu",
                stamp=f"Full-width rVGG on the synthetic world, {ev.get('device')}.",
            )
        )
    parts.append(gpu_bench_cams_html(session))
    return "\n".join(p for p in parts if p)
