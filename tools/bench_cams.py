"""Speed of helpers.cams against pytorch-grad-cam at equal output: ``python -m tools.bench_cams``.

Runs :func:`helpers.cams.reference.benchmark` (what it compares, case by case, is written
there) on the profile's walled rVGG (trained when its checkpoint is cached, else a random-init
one of the same width) and a few STACK-MIX images, and prints the seconds per image, the
speed-up and the largest absolute difference between the two sets of maps (which must stay
below 1e-4). Timings are wall-clock, best of ``--repeat`` runs, on whatever else the machine is
doing (the load average is printed with them). Results also go to
``<results>/bench_cams.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import torch

from helpers import cli
from helpers.cams.reference import CASES, TOLERANCE, benchmark, failures
from helpers.config import (
    cache_dir,
    get_device,
    get_profile,
    profile_label,
    results_dir,
)
from helpers.data import stack_mix
from helpers.models import rvgg
from helpers.train import checkpoint_path, train_or_load, training_config

__all__ = ["benchmark", "failures", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.bench_cams``: print the speed-ups and differences; exit 1 when a
    difference exceeds 1e-4, :data:`helpers.cli.EXIT_ERROR` after an error (one ``error: ...``
    line on stderr; ``--debug``: the exception propagates, with its traceback)."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench_cams", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--profile", default=None, help="quick or full (the model's width and classes)"
    )
    parser.add_argument(
        "--images", type=int, default=8, help="images (from STACK-MIX; default 8)"
    )
    parser.add_argument(
        "--model",
        default="auto",
        choices=("auto", "trained", "random"),
        help="the profile's trained walled model (auto: when its checkpoint is cached) "
        "or a random-init one of the same width",
    )
    parser.add_argument(
        "--cases", default=None, help=f"comma-separated, among {list(CASES)}"
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="timed runs per case (best is kept)"
    )
    parser.add_argument("--device", default=None)
    return cli.parse_and_run(parser, argv, _command)


def _command(args: argparse.Namespace) -> int:
    """The body of :func:`main`, run under :func:`helpers.cli.run`.

    Raises:
        helpers.cli.NotWritableError: before the benchmark, when the results folder (where
            ``bench_cams.json`` goes) cannot be written.
    """
    prof = get_profile(args.profile)
    dev = get_device(args.device)
    cli.ensure_writable_folder(
        cache_dir("results", prof.name, create=False),
        "The results folder",
        "Set CAMWALLS_HOME to a writable folder.",
    )
    model, which = None, "random init"
    if args.model == "trained" or (
        args.model == "auto"
        and checkpoint_path(training_config(prof, walled=True)).is_file()
    ):
        model, _ = train_or_load(prof, walled=True, device=dev)
        which = "trained"
    if model is None:
        torch.manual_seed(0)
        model = rvgg(prof.data.num_classes, width=prof.width).to(dev).eval()
    images = stack_mix(prof, n=args.images).images.to(dev)
    cases = None if args.cases is None else [c.strip() for c in args.cases.split(",")]
    rows = benchmark(
        model,
        images,
        cases,
        repeat=args.repeat,
        batch_size=prof.eval.batch_size,
        chunk=prof.eval.score_batch,
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{profile_label(prof, dev)}; {which} rVGG, width {prof.width:g}; {images.shape[0]} images; "
        f"{torch.get_num_threads()} torch threads; load average {load:.1f}"
    )
    print(
        f"{'case':18s} {'pytorch-grad-cam':>18s} {'helpers.cams':>14s} {'speed-up':>9s} {'max abs diff':>13s}"
    )
    for r in rows:
        print(
            f"{r['case']:18s} {r['library_s'] * 1000:15.1f} ms {r['ours_s'] * 1000:11.1f} ms "
            f"{r['speedup']:8.1f}x {r['max_abs_diff']:13.2e}"
        )
    path = results_dir(prof) / "bench_cams.json"
    path.write_text(
        json.dumps(
            {
                "profile": prof.name,
                "device": str(dev),
                "model": which,
                "load_average": load,
                "torch_threads": torch.get_num_threads(),
                "rows": rows,
            },
            indent=1,
        )
    )
    print(f"written to {path}")
    flips = {k: v for r in rows for k, v in r["images_sign_flipped"].items() if v}
    if flips:
        print(
            f"principal-direction methods where the library's SVD picked the other sign (images): {flips}"
        )
    for r in rows:
        if "fullgrad_layout_spread" in r:
            print(
                f"pytorch-grad-cam's FullGrad against itself with the input in the other memory layout: "
                f"{r['fullgrad_layout_spread']:.2e} (max-pool ties decided by rounding, see "
                "helpers.cams.reference.benchmark)"
            )
    bad = failures(rows)
    if bad:
        print(
            f"error: maps differ by more than {TOLERANCE:g} for {bad}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
