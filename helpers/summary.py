"""The book's results pages, generated from result files and ``helpers``, never typed in.

Used by the landing page (``book/intro.md``) and the results page (``book/results.md``):

* :func:`load_table` gets the results table (:func:`helpers.results.table`, one row per method
  x stack set x model) from ``helpers.evaluate`` (which loads the saved evaluation or computes
  it) or from a ``table1.json``/``table1.csv`` that ``python -m helpers.evaluate`` wrote; what
  the pages show of it -- the paper's numbers beside ours, the verdicts, Table 1 itself -- is
  :mod:`helpers.results`'s;
* :func:`benchmark_records` / :func:`benchmark_html` read the GPU benchmark files
  (``results/benchmarks/*.json``) and say so, from code, when there are none;
* :func:`gpu_session` / :func:`gpu_session_html` read what ``tools/gpu_session.py`` wrote;
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

from . import results as R
from .geometry import rvgg_geometry

__all__ = [
    "load_table",
    "repo_root",
    "benchmark_dir",
    "benchmark_records",
    "benchmark_html",
    "run_stamp",
    "gpu_dir",
    "gpu_session",
    "cpu_runs",
    "gpu_training_html",
    "gpu_bench_cams_html",
    "gpu_session_html",
]


def load_table(source: Any = None, profile: Any = None) -> pd.DataFrame:
    """The results table (:func:`helpers.results.table`).

    ``source``: ``None`` asks ``helpers.evaluate`` (``table1(profile)``, which loads the saved
    results of the profile or computes them); else anything :func:`helpers.results.table`
    accepts (a ``table1.json``/``table1.csv`` path, the evaluation, its rows).
    """
    if source is None:
        from . import evaluate

        source = evaluate.table1(profile=profile)
    return R.table(source)


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _caption(text: str) -> str:
    return f"<caption>{html.escape(text)}</caption>"


# --------------------------------------------------------------------------------------------
# GPU benchmarks and the run stamp
# --------------------------------------------------------------------------------------------

def repo_root(start: str | Path | None = None) -> Path | None:
    """The book's repository root (a folder with ``_config.yml`` and ``helpers/``), searched
    upwards from ``start`` (default: the working directory), then from this package; ``None``
    when the helpers are installed without the book (e.g. pip in Colab)."""
    starts = [Path(start) if start is not None else Path.cwd(), Path(__file__).resolve().parent]
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
        data = _read_json(path, "Benchmark file", "rerun the benchmark or delete the file")
        if not isinstance(data, Mapping):
            raise ValueError(f"Benchmark file {path} should hold a JSON object, found {type(data).__name__}.")
        records.append({"file": path.name, **_flatten(data)})
    return records


_DEVICE_KEYS = ("gpu_name", "device_name", "gpu", "card", "device")


def benchmark_html(folder: str | Path | None = None) -> str:
    """The GPU benchmark results as HTML (one table per file), or a paragraph saying, from the
    folder's content, that no benchmark was run (no GPU was available when the book was made)."""
    folder_path = Path(folder) if folder is not None else benchmark_dir()
    records = benchmark_records(folder_path)
    where = "results/benchmarks/" if folder is None else str(folder_path)
    if not records:
        return (f"<p class=\"camwalls-note\">No GPU benchmark result is in <code>{html.escape(where)}</code>: "
                "no GPU was available where this book was built, so there are no GPU throughput or MFU "
                "figures to report. On a machine with a GPU, run the benchmark command "
                "(<code>python -m helpers.benchmark</code>); its JSON files land in that folder and appear "
                "here at the next build.</p>")
    standard = [r for r in records if "train_images_per_s" in r and "inference_images_per_s" in r]
    parts = []
    if standard:
        # the files of helpers.benchmark: one compact table, newest first
        from .benchmark import results_table

        table = results_table(sorted(standard, key=lambda r: r.get("date", ""), reverse=True))
        keys = list(table[0])
        head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(row[k]))}</td>" for k in keys) + "</tr>"
                       for row in table)
        peaks = sorted({f"{r['device']}: {r['peak_tflops']:g} TFLOP/s" for r in standard if r.get("peak_tflops")})
        cap = ("Full-width rVGG, random images already on the GPU, SGD with momentum; MFU: 3x the forward "
               f"FLOPs per training image (1x for inference) over the card's dense bf16 peak ({'; '.join(peaks)})")
        parts.append(f'<div class="camwalls-scroll"><table class="camwalls-table">{_caption(cap)}<thead><tr>{head}'
                     f"</tr></thead><tbody>{body}</tbody></table></div>")
    for rec in (r for r in records if r not in standard):
        device = next((rec[k] for k in _DEVICE_KEYS if rec.get(k)), "unknown device")
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt_any(v))}</td></tr>"
                       for k, v in rec.items() if k != "file")
        parts.append(f'<table class="camwalls-table"><caption>{html.escape(rec["file"])}: measured on '
                     f"{html.escape(str(device))}</caption><tbody>{rows}</tbody></table>")
    return "\n".join(parts)


def _fmt_any(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def run_stamp(profile: Any = None) -> str:
    """Which profile and device produced the results of this build, and when.

    E.g. ``"profile quick (CPU, synthetic images, ...) on cpu (2 cores); torch 2.4.1; 2026-05-01 12:00"``.
    """
    import torch

    from .config import get_device, get_profile

    prof = get_profile(profile)
    dev = get_device()
    if dev.type == "cuda":
        where = f"cuda ({torch.cuda.get_device_name(dev)})"
    else:
        where = f"{dev.type} ({os.cpu_count()} cores, {platform.machine() or 'unknown'})"
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (f"profile {prof.name} ({prof.description}) on {where}; torch {torch.__version__}; {when}")



# --------------------------------------------------------------------------------------------
# The GPU session (tools/gpu_session.py): full-width training, Table 1 and CAM speed on a GPU
# --------------------------------------------------------------------------------------------

def gpu_dir(root: str | Path | None = None) -> Path | None:
    """``<repo>/results/gpu`` (whether or not it exists), or ``None`` without a checkout."""
    base = Path(root) if root is not None else repo_root()
    return None if base is None else base / "results" / "gpu"


def gpu_session(folder: str | Path | None = None) -> dict[str, Any]:
    """The files ``tools/gpu_session.py`` wrote (``training.json``, ``evaluation.json``,
    ``bench_cams.json``), as ``{"training": ..., "evaluation": ..., "bench_cams": ...}``; a file
    that is missing is left out, a file that is not valid JSON raises ``ValueError`` naming it."""
    path = Path(folder) if folder is not None else gpu_dir()
    out: dict[str, Any] = {}
    if path is None or not path.is_dir():
        return out
    for name in ("training", "evaluation", "bench_cams"):
        file = path / f"{name}.json"
        if file.is_file():
            out[name] = _read_json(file, "GPU session file", "rerun tools/gpu_session.py or delete the file")
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


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.1f}%"


def gpu_training_html(session: Mapping[str, Any]) -> str:
    """The full-width training runs of the GPU session as an HTML table."""
    train = session.get("training", {})
    runs = train.get("training", {})
    if not runs:
        return ""
    body = []
    for name, r in runs.items():
        pos = r.get("position_accuracy") or {}
        t = r.get("train", {})
        recipe = (f"{t.get('optimizer')} lr {t.get('lr')}, batch {t.get('batch_size')}, "
                  f"{t.get('epochs')} epochs{', batch norm (folded)' if t.get('batch_norm') else ''}")
        body.append(f"<tr><td>{html.escape(name)}</td><td>{r.get('width'):g}</td><td style='white-space: normal; min-width: 12em'>{html.escape(recipe)}</td>"
                    f"<td>{r.get('images')}</td><td>{_fmt(r.get('seconds'), 1)}</td>"
                    f"<td>{_fmt(r.get('images_per_s'), 0)}</td><td>{_pct(r.get('val_accuracy'))}</td>"
                    f"<td>{_pct(pos.get('above'))}</td><td>{_pct(pos.get('straddle'))}</td>"
                    f"<td>{_pct(pos.get('below'))}</td></tr>")
    cap = (f"Full-width rVGG trained on the synthetic world on {train.get('device')} "
           f"(torch {train.get('torch')}, {str(train.get('date', ''))[:10]}); seconds: end to end, "
           "synthetic images drawn on the CPU included; accuracy by where the object lies: entirely "
           f"above row {rvgg_geometry().first_unseen_row}, across it, entirely below it (10 classes: "
           "chance is 10%)")
    return (f'<div class="camwalls-scroll"><table class="camwalls-table">{_caption(cap)}<thead><tr>'
            "<th>model</th><th>width</th><th>recipe</th><th>images</th><th>seconds</th><th>images/s</th>"
            "<th>val acc.</th><th>above</th><th>across</th><th>below</th></tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def gpu_bench_cams_html(session: Mapping[str, Any]) -> str:
    """``helpers.bench_cams`` at full width on the GPU as an HTML table."""
    bench = session.get("bench_cams")
    if not bench:
        return ""
    body = "".join(
        f"<tr><td>{html.escape(r['case'])}</td><td>{1000 * r['library_s']:.1f}</td><td>{1000 * r['ours_s']:.1f}</td>"
        f"<td>{r['speedup']:.1f}x</td><td>{r['max_abs_diff']:.1e}</td></tr>" for r in bench.get("rows", []))
    cap = (f"pytorch-grad-cam against helpers.cams, milliseconds per image, {bench.get('images')} STACK-MIX "
           f"images, full-width walled rVGG, on {bench.get('device')} ({str(bench.get('date', ''))[:10]})")
    return (f'<table class="camwalls-table">{_caption(cap)}<thead><tr><th>case</th><th>pytorch-grad-cam</th>'
            f"<th>helpers.cams</th><th>speed-up</th><th>max abs diff</th></tr></thead><tbody>{body}</tbody></table>")


def gpu_session_html(folder: str | Path | None = None) -> str:
    """Everything the GPU session measured, as HTML; a note when it has not been run."""
    session = gpu_session(folder)
    if not session:
        return ("<p class=\"camwalls-note\">No GPU session results are in <code>results/gpu/</code>. On a "
                "machine with a CUDA GPU, <code>python tools/gpu_session.py --out results/gpu</code> writes "
                "them; they appear here at the next build.</p>")
    parts = [gpu_training_html(session)]
    ev = session.get("evaluation")
    if ev:
        table = R.table(ev)
        parts.append(
            f"<p>Evaluation on {html.escape(str(ev.get('device')))}: every method, both stack sets, both "
            f"models, {ev['settings']['stack_images']} images per set, Opti-CAM with "
            f"{ev['settings']['opticam_iterations']} Adam steps: <b>{ev['total_seconds']:.1f} s</b> in all; "
            f"the paper's {len(ev['table1_methods'])} methods on the walled model (Table 1 proper): "
            f"<b>{ev['table1_seconds']:.1f} s</b>.</p>")
        parts.append(R.table_html(table, order="mu",
                                  stamp=f"Full-width rVGG on the synthetic world, {ev.get('device')}."))
    parts.append(gpu_bench_cams_html(session))
    return "\n".join(p for p in parts if p)
