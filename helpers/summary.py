"""The book's results summary, generated from result files and ``helpers``, never typed in.

Used by the landing page (``book/intro.md``) and the results page (``book/results.md``):

* :func:`load_table` gets the Table 1 records (one per method x stack set x model) from
  ``helpers.evaluate`` (which loads them from the results folder or computes them) or from
  a CSV/JSON file that ``python -m helpers.evaluate`` wrote;
* :func:`headline` extracts the two numbers the paper is known for (GradCAM's and HiResCAM's
  mu on the walled model) and puts the paper's values beside ours (:data:`PAPER_NUMBERS`);
* :func:`results_table_html` renders the whole table with the paper's values beside ours;
* :func:`benchmark_records` / :func:`benchmark_html` read the GPU benchmark files
  (``results/benchmarks/*.json``) and say so, from code, when there are none;
* :func:`run_stamp` says which profile and device produced the rendered results.

mu is the share of a saliency map's L2 norm in the rows the walled model cannot see
(rows 170..223 of a 224 image); lower is better; a uniform map scores sqrt(54/224) = 0.491.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import html
import inspect
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "PAPER_NUMBERS",
    "UNIFORM_MU",
    "ResultRow",
    "normalize_records",
    "load_table",
    "find_row",
    "headline",
    "headline_html",
    "results_table_html",
    "repo_root",
    "benchmark_dir",
    "benchmark_records",
    "benchmark_html",
    "run_stamp",
]

#: rows 170..223 of 224 are unseen: a uniform map puts sqrt(54/224) of its norm there.
UNIFORM_MU = math.sqrt(54 / 224)

#: The paper's numbers that are known to us (book/paper.md): mu on the walled rVGG, mean over
#: the stack sets. The other cells of the paper's Table 1 are not available.
PAPER_NUMBERS: dict[str, dict[str, Any]] = {
    "gradcam": {"method": "GradCAM", "model": "walled", "mu": 0.227,
                "note": "about 0.22-0.23 (22.7% on average)"},
    "hirescam": {"method": "HiResCAM", "model": "walled", "mu": 0.0, "note": "exactly 0"},
}

#: Column aliases accepted in result records (first match wins).
_ALIASES: dict[str, tuple[str, ...]] = {
    "method": ("display", "method", "Method", "cam", "cam_method", "name"),
    "dataset": ("dataset", "Dataset", "stack", "stack_set", "data", "set"),
    "model": ("model", "Model", "variant", "network"),
    "mu_mean": ("mu_mean", "mu", "mean_mu", "mu mean", "mu_avg"),
    "mu_std": ("mu_std", "std_mu", "mu std", "mu_sd"),
    "zero_fraction": ("zero_fraction", "zero_frac", "zero_area", "zero fraction"),
    "seconds": ("seconds", "time_s", "seconds_per_method", "time", "method_seconds"),
    "n_images": ("n_images", "images", "n", "count"),
    "profile": ("profile",),
    "device": ("device",),
}


@dataclass(frozen=True)
class ResultRow:
    """One cell group of Table 1: a method on a stack set and a model (walled or baseline)."""

    method: str
    dataset: str
    model: str  # "walled" or "baseline"
    mu_mean: float
    mu_std: float | None = None
    zero_fraction: float | None = None
    seconds: float | None = None
    n_images: int | None = None
    profile: str | None = None
    device: str | None = None


def _key(name: str) -> str:
    """Canonical spelling of a name for matching: ``"Grad-CAM"`` -> ``"gradcam"``,
    ``"GradCAM++"`` -> ``"gradcampp"`` (the keys of ``helpers.cams``)."""
    return "".join(ch for ch in str(name).lower().replace("+", "p") if ch.isalnum())


def _model_name(value: Any) -> str:
    if isinstance(value, bool):
        return "walled" if value else "baseline"
    text = _key(value)
    if text in ("walled", "wall", "masked", "true", "1"):
        return "walled"
    if text in ("baseline", "base", "nowall", "unmasked", "false", "0"):
        return "baseline"
    return str(value)


def _as_mappings(table: Any) -> list[Mapping[str, Any]]:
    if hasattr(table, "to_dict") and not isinstance(table, Mapping):  # a pandas DataFrame
        return list(table.to_dict("records"))
    if isinstance(table, Mapping):
        for key in ("rows", "records", "results", "table"):
            if key in table and isinstance(table[key], list):
                return _as_mappings(table[key])
        raise ValueError(f"A results mapping needs a 'rows' (or 'records', 'results', 'table') "
                         f"list; found keys {sorted(table)[:10]}.")
    if isinstance(table, (str, os.PathLike)):
        return _read_file(Path(table))
    rows = []
    for item in table:
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            rows.append(dataclasses.asdict(item))
        elif isinstance(item, Mapping):
            rows.append(item)
        elif hasattr(item, "_asdict"):
            rows.append(item._asdict())
        else:
            raise TypeError(f"Expected result records as dicts or dataclasses; found {type(item).__name__}.")
    return rows


def _read_file(path: Path) -> list[Mapping[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"No results file {path}: run `python -m helpers.evaluate` first "
                                "(or let helpers.evaluate compute the table).")
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as fh:
            return list(csv.DictReader(fh))
    if path.suffix.lower() == ".json":
        return _as_mappings(json.loads(path.read_text()))
    raise ValueError(f"Results file {path} should be .csv or .json, found {path.suffix!r}.")


def _get(rec: Mapping[str, Any], field: str) -> Any:
    for alias in _ALIASES[field]:
        if alias in rec and rec[alias] not in (None, ""):
            return rec[alias]
    return None


def _float(value: Any, field: str, rec: Mapping[str, Any]) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Field {field!r} of result record {dict(rec)} is not a number: {value!r}.") from None


def normalize_records(table: Any) -> list[ResultRow]:
    """Result records in any of the accepted shapes, as :class:`ResultRow` objects.

    Accepts a list of dicts or dataclasses, a dict holding such a list under ``rows``/
    ``records``/``results``/``table``, a pandas DataFrame, or the path of a CSV or JSON file.
    Column names may vary (``mu``/``mu_mean``, ``dataset``/``stack``, ``model``/``walled``...).

    Raises:
        ValueError: a record without a method, a stack set, a model or a mu mean, or with a
            mu that is not a number or outside [0, 1].
    """
    rows = []
    for rec in _as_mappings(table):
        method, dataset = _get(rec, "method"), _get(rec, "dataset")
        model = _get(rec, "model")
        if model is None and "walled" in rec:
            model = rec["walled"]
        mu = _get(rec, "mu_mean")
        missing = [n for n, v in (("method", method), ("dataset", dataset), ("model", model), ("mu_mean", mu))
                   if v is None]
        if missing:
            raise ValueError(f"Result record {dict(rec)} lacks {missing}; each record needs a method, "
                             "a stack set, a model (walled/baseline) and a mu mean.")
        mu_mean = _float(mu, "mu_mean", rec)
        if mu_mean is None or not (0.0 <= mu_mean <= 1.0):
            raise ValueError(f"mu must lie in [0, 1] (a share of a norm); record {dict(rec)} has {mu_mean}.")
        n = _get(rec, "n_images")
        rows.append(ResultRow(
            method=str(method), dataset=str(dataset), model=_model_name(model), mu_mean=mu_mean,
            mu_std=_float(_get(rec, "mu_std"), "mu_std", rec),
            zero_fraction=_float(_get(rec, "zero_fraction"), "zero_fraction", rec),
            seconds=_float(_get(rec, "seconds"), "seconds", rec),
            n_images=int(float(n)) if n is not None else None,
            profile=_get(rec, "profile"), device=_get(rec, "device"),
        ))
    if not rows:
        raise ValueError("The results table is empty: no method was evaluated.")
    return rows


def load_table(source: Any = None, profile: Any = None) -> list[ResultRow]:
    """Table 1 as :class:`ResultRow` records.

    ``source``: ``None`` asks ``helpers.evaluate`` (``table1(profile)``, which loads the saved
    results of the profile or computes them), a path to a CSV/JSON results file, or records.
    """
    if source is None:
        try:
            from . import evaluate
        except ImportError as err:
            raise RuntimeError("helpers.evaluate is not available, so there is no Table 1 to "
                               f"summarize ({err}); pass a results file instead.") from err
        takes_profile = "profile" in inspect.signature(evaluate.table1).parameters
        source = evaluate.table1(profile=profile) if takes_profile else evaluate.table1()
    return normalize_records(source)


def find_row(rows: Sequence[ResultRow], method: str, model: str = "walled",
             dataset: str | None = None) -> list[ResultRow]:
    """The rows of a method (and model, and optionally stack set); names match loosely."""
    return [r for r in rows if _key(r.method) == _key(method) and r.model == _model_name(model)
            and (dataset is None or _key(r.dataset) == _key(dataset))]


def headline(rows: Sequence[ResultRow]) -> list[dict[str, Any]]:
    """For each method the paper gives a number for, ours beside it.

    Returns one dict per known paper number: ``method``, ``model``, ``paper`` (mu),
    ``paper_note``, ``ours`` (mu mean over the stack sets found, NaN if the method is
    missing), ``per_dataset`` ({stack set: mu mean}) and ``datasets``.
    """
    out = []
    for key, known in PAPER_NUMBERS.items():
        found = find_row(rows, key, known["model"])
        per = {r.dataset: r.mu_mean for r in found}
        ours = sum(per.values()) / len(per) if per else float("nan")
        out.append({"method": known["method"], "model": known["model"], "paper": known["mu"],
                    "paper_note": known["note"], "ours": ours, "per_dataset": per,
                    "datasets": sorted(per)})
    return out


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _caption(text: str) -> str:
    return f"<caption>{html.escape(text)}</caption>"


def headline_html(rows: Sequence[ResultRow], stamp: str | None = None) -> str:
    """A small HTML table: the paper's known mu values beside ours, per stack set and on average."""
    heads = headline(rows)
    datasets = sorted({d for h in heads for d in h["datasets"]})
    head = "".join(f"<th>ours, {html.escape(d)}</th>" for d in datasets)
    body = []
    for h in heads:
        cells = "".join(f"<td>{_fmt(h['per_dataset'].get(d, float('nan')))}</td>" for d in datasets)
        body.append(f"<tr><td>{html.escape(h['method'])}</td><td>{h['model']}</td>"
                    f"<td>{_fmt(h['paper'])} <small>({html.escape(h['paper_note'])})</small></td>"
                    f"{cells}<td><b>{_fmt(h['ours'])}</b></td></tr>")
    cap = "mu = share of the map's L2 norm behind the wall (lower is better; a uniform map: " \
          f"{UNIFORM_MU:.3f})" + (f"; ours: {stamp}" if stamp else "")
    return (f'<table class="camwalls-table">{_caption(cap)}<thead><tr><th>method</th><th>model</th>'
            f"<th>paper</th>{head}<th>ours, mean</th></tr></thead><tbody>{''.join(body)}</tbody></table>")


def results_table_html(rows: Sequence[ResultRow], stamp: str | None = None) -> str:
    """Every method x stack set x model as an HTML table, mu mean +- std, the paper's value
    where it is known, the zero fraction and the time (rows sorted by walled-model mu)."""
    datasets = sorted({r.dataset for r in rows})
    models = [m for m in ("walled", "baseline") if any(r.model == m for r in rows)]
    models += sorted({r.model for r in rows} - set(models))
    methods: list[str] = []
    for r in rows:
        if r.method not in methods:
            methods.append(r.method)

    def walled_mu(method: str) -> float:
        vals = [r.mu_mean for r in find_row(rows, method, "walled")]
        return sum(vals) / len(vals) if vals else float("inf")

    methods.sort(key=walled_mu)
    cols = [(d, m) for d in datasets for m in models]
    top = "".join(f'<th colspan="{len(models)}">{html.escape(d)}</th>' for d in datasets)
    sub = "".join(f"<th>{m}</th>" for _, m in cols)
    body = []
    for method in methods:
        cells = []
        for d, m in cols:
            found = find_row(rows, method, m, d)
            if not found:
                cells.append("<td>&ndash;</td>")
                continue
            r = found[0]
            std = "" if r.mu_std is None else f"<br><small>&plusmn;&nbsp;{r.mu_std:.3f}</small>"
            cells.append(f"<td>{r.mu_mean:.3f}{std}</td>")
        paper = PAPER_NUMBERS.get(_key(method))
        paper_cell = _fmt(paper["mu"]) if paper else "&ndash;"
        zero = [r.zero_fraction for r in find_row(rows, method, "walled") if r.zero_fraction is not None]
        secs = [r.seconds for r in rows if _key(r.method) == _key(method) and r.seconds is not None]
        body.append(f"<tr><td>{html.escape(method)}</td>{''.join(cells)}<td>{paper_cell}</td>"
                    f"<td>{_fmt(sum(zero) / len(zero)) if zero else 'n/a'}</td>"
                    f"<td>{_fmt(sum(secs), 1) if secs else 'n/a'}</td></tr>")
    cap = ("Table 1, recomputed: mu mean &plusmn; std over the stack images (lower is better; uniform map "
           f"{UNIFORM_MU:.3f}); paper: its value on the walled model (&ndash;: not known to us); zero "
           "fraction: share of the walled model's map pixels that are exactly 0; seconds: all cells of "
           "the method together") + (f"; {html.escape(stamp)}" if stamp else "")
    return (f'<div class="camwalls-scroll"><table class="camwalls-table"><caption>{cap}</caption><thead>'
            f'<tr><th rowspan="2">method</th>{top}<th rowspan="2">paper</th><th rowspan="2">zero<br>fraction</th>'
            f'<th rowspan="2">seconds</th></tr><tr>{sub}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


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
           "above row 170, across it, entirely below it (10 classes: chance is 10%)")
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
        rows = normalize_records(ev["rows"])
        parts.append(
            f"<p>Evaluation on {html.escape(str(ev.get('device')))}: every method, both stack sets, both "
            f"models, {ev['settings']['stack_images']} images per set, Opti-CAM with "
            f"{ev['settings']['opticam_iterations']} Adam steps: <b>{ev['total_seconds']:.1f} s</b> in all; "
            f"the paper's {len(ev['table1_methods'])} methods on the walled model (Table 1 proper): "
            f"<b>{ev['table1_seconds']:.1f} s</b>.</p>")
        parts.append(results_table_html(rows, stamp=f"full-width rVGG on the synthetic world, {ev.get('device')}"))
    parts.append(gpu_bench_cams_html(session))
    return "\n".join(p for p in parts if p)
