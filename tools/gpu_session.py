"""Everything this book measures on a GPU, in one command (one short lease of a GPU machine).

    python tools/gpu_session.py --out results/gpu          # on a machine with a CUDA GPU
    python tools/gpu_session.py --out /tmp/x --tiny        # a CPU rehearsal of a minute

Stages, each skipped (and said so) when the time budget (``--budget`` seconds) is spent:

1. ``tools.benchmark``: full-width rVGG training and inference throughput (bf16 autocast,
   channels_last, data already on the GPU) and MFU, at batch 128 and 256, eager; then batch
   256 under ``torch.compile``. One JSON per run (``benchmark_*.json``, the format of
   ``results/benchmarks/``).
2. Full-width rVGG (the paper's channel widths) trained on the synthetic world, walled and
   baseline, with the quick profile's recipe: end-to-end training speed (synthetic images drawn
   on the CPU included) and accuracy (``training.json``).
3. ``helpers.evaluate`` at full width on the GPU: every CAM method x {STACK-MIX, STACK-GEN
   stand-in} x {walled, baseline}, with the full profile's evaluation settings (Opti-CAM: 100
   Adam steps) -> the time of the full-width Table 1 and its numbers (``evaluation.json``).
4. ``helpers.cams.reference`` at full width: pytorch-grad-cam's ScoreCAM, AblationCAM, the gradient
   family and FullGrad against ``helpers.cams`` on 16 STACK-MIX images (``bench_cams.json``).

Every file is stamped with the card's name, the torch version and the date; the book's results
page reads them from ``results/gpu/`` and ``results/benchmarks/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import cams  # noqa: E402
from helpers import cli  # noqa: E402
from helpers import evaluate as E  # noqa: E402
from helpers import train as T  # noqa: E402
from helpers.config import get_profile  # noqa: E402
from tools import benchmark as B  # noqa: E402

T0 = time.perf_counter()


def elapsed() -> float:
    return time.perf_counter() - T0


def stamp(device: torch.device) -> dict:
    return {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else "CPU",
        "torch": str(torch.__version__),
        "cuda": torch.version.cuda,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write(out: Path, name: str, obj: dict) -> None:
    path = out / name
    path.write_text(json.dumps(obj, indent=1, default=str))
    print(f"[{elapsed():6.1f} s] wrote {path}", flush=True)


def stage_benchmark(out: Path, device: torch.device, tiny: bool, budget: float) -> None:
    runs = (
        [dict(width=1 / 32, batch_size=2, steps=2, warmup=1, num_classes=10)]
        if tiny
        else [
            dict(batch_size=128),
            dict(batch_size=256),
            dict(batch_size=256, compile=True),
        ]
    )
    for i, kw in enumerate(runs):
        if elapsed() > budget * (0.15 if not kw.get("compile") else 0.2):
            print(f"benchmark {kw}: skipped (time budget)", flush=True)
            continue
        settings = dict(width=1.0, steps=30, warmup=10, device=device)
        settings.update(kw)
        try:
            res = B.benchmark(**settings)
        except Exception:  # noqa: BLE001 -- a failed run is reported, the session goes on
            traceback.print_exc()
            continue
        res["tiny"] = tiny
        print(
            json.dumps(
                {
                    k: res[k]
                    for k in (
                        "device",
                        "batch_size",
                        "compile",
                        "train_images_per_s",
                        "train_mfu",
                        "inference_images_per_s",
                        "inference_mfu",
                        "max_memory_gib",
                    )
                }
            ),
            flush=True,
        )
        write(out, f"benchmark_{i}.json", res)


def stage_train(device: torch.device, tiny: bool, args) -> tuple[dict, dict]:
    over = dict(
        width=1 / 32 if tiny else 1.0,
        epochs=1 if tiny else args.epochs,
        train_images=64 if tiny else args.train_images,
        val_images=32 if tiny else 256,
        position_images=8 if tiny else 200,
        batch_size=16 if tiny else args.batch_size,
        lr=args.lr,
        mixed_precision=True,
        channels_last=True,
        num_threads=os.cpu_count() or 1,
    )
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            over[key] = json.loads(value)
        except json.JSONDecodeError:
            over[key] = value
    models, infos = {}, {}
    for name, walled in (("walled", True), ("baseline", False)):
        config = T.training_config("quick", walled=walled, **over)
        ckpt = Path(args.scratch) / f"{name}.pt"
        t = time.perf_counter()
        model, info = T.train(
            config, device=device, checkpoint=ckpt, resume=False, show_progress=False
        )
        secs = time.perf_counter() - t
        n_images = int(config["data"]["train_images"]) * int(config["train"]["epochs"])
        infos[name] = {
            "wall_rows": config["wall_rows"],
            "width": config["width"],
            "train": config["train"],
            "data": config["data"],
            "seconds": secs,
            "train_seconds": info.get("train_seconds"),
            "images": n_images,
            "images_per_s": n_images / secs,
            "val_accuracy": info.get("val_accuracy"),
            "position_accuracy": info.get("position_accuracy"),
            "history": info.get("history"),
        }
        print(
            f"[{elapsed():6.1f} s] {name}: {secs:.1f} s, val {info.get('val_accuracy')}, "
            f"by position {info.get('position_accuracy')}",
            flush=True,
        )
        models[name] = model
    return models, infos


def stage_evaluate(
    out: Path, device: torch.device, tiny: bool, models: dict, infos: dict
) -> None:
    quick, full = get_profile("quick"), get_profile("full")
    ev = (
        dataclasses.replace(quick.eval, stack_images=4, opticam_iterations=3)
        if tiny
        else full.eval
    )
    prof = quick.replace(width=1.0, eval=ev)
    n = ev.stack_images
    sets = E.load_sets("quick", n_images=n)
    res = E.evaluate(
        prof,
        models=models,
        sets=sets,
        device=device,
        n_images=n,
        write=False,
        show_progress=False,
    )
    paper = [k for k, m in cams.METHODS.items() if m.in_paper]
    table1_seconds = sum(
        r["seconds"]
        for r in res["rows"]
        if r["model"] == "walled" and r["method"] in paper
    )
    summary = {
        k: res[k]
        for k in (
            "device_name",
            "torch",
            "grad_cam",
            "total_seconds",
            "methods",
            "settings",
            "unseen_rows",
            "unseen_row_count",
            "sets",
            "rows",
        )
    }
    summary.update(stamp(device))
    summary["table1_seconds"] = table1_seconds
    summary["table1_methods"] = paper
    summary["training"] = infos
    summary["tiny"] = tiny
    write(out, "evaluation.json", summary)
    print(
        f"[{elapsed():6.1f} s] evaluation: {res['total_seconds']:.1f} s in all; the paper's methods on the "
        f"walled model (Table 1): {table1_seconds:.1f} s",
        flush=True,
    )
    for r in res["rows"]:
        if r["model"] == "walled":
            print(
                f"  {r['dataset']:>10} {r['display']:>20} mu {r['mu_mean']:.3f} +- {r['mu_std']:.3f} "
                f"({r['seconds']:.2f} s)",
                flush=True,
            )


def stage_bench_cams(
    out: Path, device: torch.device, tiny: bool, model: torch.nn.Module
) -> None:
    from helpers.cams import reference as bench_cams
    from helpers.data import stack_mix

    n = 2 if tiny else 16
    images = stack_mix("quick", n=n).images.to(device)
    rows = bench_cams.benchmark(
        model,
        images,
        repeat=1,
        batch_size=50 if not tiny else 2,
        chunk=256 if not tiny else 16,
    )
    for r in rows:
        print(
            f"  {r['case']:18s} library {r['library_s'] * 1000:9.1f} ms/image, ours {r['ours_s'] * 1000:9.1f} "
            f"ms/image, {r['speedup']:.1f}x, max abs diff {r['max_abs_diff']:.1e}",
            flush=True,
        )
    write(
        out,
        "bench_cams.json",
        dict(
            stamp(device),
            images=n,
            width=1 / 32 if tiny else 1.0,
            model="walled rVGG trained in stage 2",
            rows=rows,
            tiny=tiny,
        ),
    )


def main(argv: list[str] | None = None) -> int:
    """``python tools/gpu_session.py``: run the stages; exit status 0, or
    :data:`helpers.cli.EXIT_ERROR` after an error (one ``error: ...`` line on stderr; ``--debug``:
    the exception propagates, with its traceback). Files written before the error stay."""
    parser = argparse.ArgumentParser(
        prog="python tools/gpu_session.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", required=True, help="folder for the JSON results")
    parser.add_argument(
        "--tiny", action="store_true", help="a CPU rehearsal (tiny sizes)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=420.0,
        help="seconds; later stages are skipped past it",
    )
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train-images", type=int, default=5120)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another training setting (helpers.train.training_config), e.g. batch_norm=true",
    )
    parser.add_argument("--scratch", default="/tmp/camwalls-gpu")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated stages to skip: benchmark,train,evaluate,bench_cams",
    )
    return cli.parse_and_run(parser, argv, _command)


STAGES = ("benchmark", "train", "evaluate", "bench_cams")


def _command(args: argparse.Namespace) -> int:
    """The body of :func:`main`, run under :func:`helpers.cli.run`.

    Raises:
        ValueError: on an unknown stage in ``--skip``.
        helpers.cli.NotWritableError: before any stage, when ``--out`` or ``--scratch`` cannot
            be written.
        RuntimeError: without ``--tiny`` on a machine without a CUDA GPU.
    """
    skip = set(filter(None, (s.strip() for s in args.skip.split(","))))
    if skip - set(STAGES):
        raise ValueError(
            f"--skip {args.skip!r}: unknown stage(s) {sorted(skip - set(STAGES))}; expected some of "
            f"{', '.join(STAGES)}, comma-separated."
        )
    out = cli.ensure_writable_folder(
        args.out, "--out", "Pass --out a folder you can write to."
    )
    cli.ensure_writable_folder(
        args.scratch, "--scratch", "Pass --scratch a folder you can write to."
    )
    device = torch.device(
        "cpu" if args.tiny or not torch.cuda.is_available() else "cuda"
    )
    if device.type == "cpu" and not args.tiny:
        raise RuntimeError(
            "No CUDA GPU here (torch sees none): run this on a machine with a GPU, or use --tiny "
            "for the CPU rehearsal."
        )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    print(json.dumps(stamp(device)), flush=True)
    if "benchmark" not in skip:
        stage_benchmark(out, device, args.tiny, args.budget)
    if "train" in skip:
        return 0
    models, infos = stage_train(device, args.tiny, args)
    write(out, "training.json", dict(stamp(device), training=infos, tiny=args.tiny))
    if "evaluate" not in skip:
        if elapsed() > args.budget * 0.7:
            print("evaluation skipped (time budget)", flush=True)
        else:
            stage_evaluate(out, device, args.tiny, models, infos)
    if "bench_cams" not in skip:
        if elapsed() > args.budget * 0.85:
            print("bench_cams skipped (time budget)", flush=True)
        else:
            stage_bench_cams(out, device, args.tiny, models["walled"])
    print(f"[{elapsed():6.1f} s] done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
