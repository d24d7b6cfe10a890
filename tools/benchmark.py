"""Throughput of rVGG: ``python -m tools.benchmark`` (a GPU benchmark; ``--tiny`` on a CPU).

Measures, with the data already on the device (random normalized images and labels, so the
input pipeline is out of the picture):

* training throughput (images/s) of full-width rVGG -- forward, backward and an SGD step with
  momentum and weight decay (the paper's optimizer), bf16 autocast (fp16 where bf16 is
  missing), channels_last, optionally ``torch.compile``;
* inference throughput (images/s, no gradient);
* the model FLOP utilization (MFU): achieved FLOP/s over the card's dense bf16 peak, where
  the FLOPs of a training image are 3x the forward FLOPs of
  :func:`helpers.models.rvgg_forward_flops` (forward, and a backward that costs twice the
  forward) and those of an inference image 1x.

The result is a JSON file stamped with the device name, torch version and date, written to
``results/benchmarks/`` at the repository root (the book reads that folder:
:func:`helpers.summary.read_results`). ``--tiny`` is a CPU configuration of a few seconds (the
tests run it).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from helpers import cli
from helpers.models import rvgg, rvgg_forward_flops

__all__ = [
    "PEAK_BF16_TFLOPS",
    "peak_tflops",
    "results_folder",
    "benchmark",
    "save_result",
    "main",
]

#: Dense bf16 tensor-core peaks (TFLOP/s, without sparsity) of common cards, from the vendors'
#: data sheets; matched against ``torch.cuda.get_device_name()`` in this order (first match).
PEAK_BF16_TFLOPS: list[tuple[str, float]] = [
    ("H200", 989.0),
    ("H100 PCIE", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
    ("RTX 3090", 71.0),
    ("V100", 125.0),  # fp16 tensor cores (no bf16 on V100)
    ("T4", 65.0),  # fp16 tensor cores
]


def peak_tflops(device_name: str) -> float | None:
    """The card's dense bf16 peak in TFLOP/s from :data:`PEAK_BF16_TFLOPS` (``None`` if unknown)."""
    name = device_name.upper()
    for key, value in PEAK_BF16_TFLOPS:
        if key in name:
            return value
    return None


def results_folder(create: bool = True) -> Path:
    """``results/benchmarks/`` at the repository root (created unless ``create=False``)."""
    folder = Path(__file__).resolve().parent.parent / "results" / "benchmarks"
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return (platform.processor() or platform.machine() or "cpu") + " (CPU)"


def benchmark(
    width: float = 1.0,
    batch_size: int = 128,
    steps: int = 30,
    warmup: int = 10,
    inference_batch_size: int | None = None,
    device: str | torch.device | None = None,
    amp: bool = True,
    channels_last: bool = True,
    compile: bool = False,
    num_classes: int = 1000,
    peak: float | None = None,
) -> dict[str, Any]:
    """Time training and inference steps of rVGG on random data already on ``device``.

    Args:
        width: rVGG channel multiplier (1.0 = the paper's network).
        batch_size: training batch size.
        steps: timed training (and inference) steps, after ``warmup`` untimed ones.
        inference_batch_size: default ``2 * batch_size``.
        device: default CUDA when available, else CPU.
        amp: bf16 autocast on CUDA (fp16 if the card has no bf16); ignored on the CPU.
        channels_last: NHWC memory format.
        compile: ``torch.compile`` the model (CUDA only).
        num_classes: output classes (1000, ImageNet).
        peak: the card's peak TFLOP/s (default: :func:`peak_tflops` of its name).

    Returns:
        A JSON-serialisable dict: ``device``, ``torch``, ``date``, the settings, and
        ``train_images_per_s``, ``train_tflops``, ``train_mfu``, ``inference_images_per_s``,
        ``inference_tflops``, ``inference_mfu`` (MFU ``None`` when the peak is unknown),
        ``peak_tflops``, ``max_memory_gib``.
    """
    if steps < 1 or warmup < 0 or batch_size < 1:
        raise ValueError(
            f"steps and batch_size must be positive and warmup >= 0, got {steps}, "
            f"{batch_size}, {warmup}."
        )
    device = (
        torch.device(device)
        if device is not None
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    on_cuda = device.type == "cuda"
    if on_cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats(device)
    amp_dtype = None
    if amp and on_cuda:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    inference_batch_size = inference_batch_size or 2 * batch_size
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    torch.manual_seed(0)
    model = rvgg(num_classes=num_classes, width=width).to(device).to(memory_format=fmt)
    net = torch.compile(model) if (compile and on_cuda) else model
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    x = torch.randn(batch_size, 3, 224, 224, device=device).contiguous(
        memory_format=fmt
    )
    y = torch.randint(0, num_classes, (batch_size,), device=device)

    def autocast():
        if amp_dtype is None:
            return torch.autocast(device_type="cpu", enabled=False)
        return torch.autocast(device_type="cuda", dtype=amp_dtype)

    def train_step() -> None:
        with autocast():
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    model.train()
    for _ in range(warmup):
        train_step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step()
    _sync(device)
    train_s = time.perf_counter() - t0

    xi = torch.randn(inference_batch_size, 3, 224, 224, device=device).contiguous(
        memory_format=fmt
    )
    model.eval()
    with torch.inference_mode():
        for _ in range(warmup):
            with autocast():
                net(xi)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            with autocast():
                net(xi)
        _sync(device)
        infer_s = time.perf_counter() - t0

    name = _device_name(device)
    peak = peak if peak is not None else (peak_tflops(name) if on_cuda else None)
    fwd = rvgg_forward_flops(width, num_classes)
    train_ips = batch_size * steps / train_s
    infer_ips = inference_batch_size * steps / infer_s
    train_tflops = 3 * fwd * train_ips / 1e12
    infer_tflops = fwd * infer_ips / 1e12
    return {
        "device": name,
        "device_type": device.type,
        "torch": str(torch.__version__),
        "cuda": torch.version.cuda if on_cuda else None,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "width": width,
        "num_classes": num_classes,
        "batch_size": batch_size,
        "inference_batch_size": inference_batch_size,
        "steps": steps,
        "warmup": warmup,
        "precision": str(amp_dtype).replace("torch.", "") if amp_dtype else "float32",
        "channels_last": channels_last,
        "compile": bool(compile and on_cuda),
        "forward_gflops_per_image": fwd / 1e9,
        "train_images_per_s": train_ips,
        "train_tflops": train_tflops,
        "train_mfu": train_tflops / peak if peak else None,
        "inference_images_per_s": infer_ips,
        "inference_tflops": infer_tflops,
        "inference_mfu": infer_tflops / peak if peak else None,
        "peak_tflops": peak,
        "max_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30
        if on_cuda
        else None,
    }


def save_result(result: dict[str, Any], folder: str | Path | None = None) -> Path:
    """Write ``result`` as ``<date>_<device>.json`` in ``folder`` (default :func:`results_folder`).

    Raises:
        OSError: when the folder cannot be created or the file cannot be written.
    """
    folder = Path(folder) if folder is not None else results_folder()
    folder.mkdir(parents=True, exist_ok=True)
    slug = (
        re.sub(r"[^A-Za-z0-9]+", "-", result["device"]).strip("-").lower() or "device"
    )
    stamp = result["date"].replace(":", "").replace("+0000", "Z")
    path = folder / f"{stamp}_{slug}{'_tiny' if result.get('tiny') else ''}.json"
    path.write_text(json.dumps(result, indent=1))
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.benchmark``: run the benchmark, print and save the JSON result.

    Returns the exit status: 0, or :data:`helpers.cli.EXIT_ERROR` after an error (no CUDA GPU
    for the full benchmark, an output folder that cannot be written, ...), printed as one
    ``error: ...`` line on stderr (``--debug``: the exception propagates, with its traceback).
    """
    parser = argparse.ArgumentParser(
        prog="python -m tools.benchmark",
        description="Training and inference throughput of full-width rVGG (images/s, MFU against "
        "the card's dense bf16 peak), data already on the device. Writes a JSON result to "
        "results/benchmarks/.",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="a CPU configuration of a few seconds "
        "(width 1/32, batch 2, 2 steps) for tests",
    )
    parser.add_argument("--width", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the model (CUDA)"
    )
    parser.add_argument(
        "--no-amp", action="store_true", help="float32 instead of bf16 autocast"
    )
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="override the card's peak"
    )
    parser.add_argument(
        "--out", default=None, help="folder for the JSON (default results/benchmarks)"
    )
    return cli.parse_and_run(parser, argv, _command)


def _command(args: argparse.Namespace) -> int:
    """The body of :func:`main`, run under :func:`helpers.cli.run`.

    Raises:
        RuntimeError: for the full benchmark on a machine without a CUDA GPU.
        helpers.cli.NotWritableError: before the benchmark, when the output folder cannot be
            written.
        OSError: when saving fails anyway afterwards (the result is printed before).
    """
    if args.tiny:
        settings = dict(
            width=1 / 32,
            batch_size=2,
            steps=2,
            warmup=1,
            device=args.device or "cpu",
            num_classes=10,
        )
    else:
        if not torch.cuda.is_available() and args.device in (None, "cuda"):
            raise RuntimeError(
                "No CUDA GPU here: the full benchmark needs one (torch sees none). Run it on a "
                "machine with a GPU, or use --tiny for the CPU check."
            )
        settings = dict(
            width=1.0, batch_size=128, steps=30, warmup=10, device=args.device
        )
    for key in ("width", "batch_size", "steps", "warmup"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    folder = args.out if args.out is not None else results_folder(create=False)
    cli.ensure_writable_folder(
        folder,
        "--out" if args.out is not None else "The results folder",
        "Pass --out a folder you can write to.",
    )
    result = benchmark(
        **settings, amp=not args.no_amp, compile=args.compile, peak=args.peak_tflops
    )
    result["tiny"] = bool(args.tiny)
    print(json.dumps(result, indent=1), flush=True)
    try:
        path = save_result(result, folder)
    except OSError as err:
        raise OSError(
            f"Cannot save the result in {folder} ({type(err).__name__}: {err}). Nothing is lost: "
            "the JSON is printed above; save it by hand, or free space and run again."
        ) from err
    print(f"saved to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
