"""The command line of the training: ``python -m helpers.train`` trains (or loads) the walled
and/or the baseline rVGG of a profile; under ``torchrun`` with DDP, one process per GPU.

``python -m helpers.train --profile quick --walled`` (see ``--help``); ``--config-json`` trains
exactly the configuration in a file (what :func:`helpers.train.train_both` runs in each of its
processes); ``--summary-json`` also writes the runs' summaries for ``results/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch.distributed as dist

from .. import cli
from ..config import get_device, provenance
from .config import checkpoint_path, training_config
from .loop import dist_env
from .rvgg import train, train_both

__all__ = ["main"]


def _fraction(text: str) -> float:
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.train``: train (or load) the walled and/or the baseline rVGG.

    Returns the exit status: 0, or :data:`helpers.cli.EXIT_ERROR` after an error, printed as
    one ``error: ...`` line on stderr (``--debug``: the exception propagates, with its
    traceback). Usage errors exit through argparse (``SystemExit``).
    """
    parser = argparse.ArgumentParser(
        prog="python -m helpers.train",
        description="Train rVGG (walled and/or baseline) for a profile, or load it from the "
        "checkpoint cache. Under torchrun, trains with DDP (one process per GPU).",
    )
    parser.add_argument(
        "--profile",
        default=None,
        help="quick (CPU, synthetic) or full (GPU, real "
        "data); default $CAMWALLS_PROFILE or quick",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--walled", action="store_true", help="train the walled model only"
    )
    which.add_argument(
        "--baseline", action="store_true", help="train the baseline only"
    )
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1... (default: auto)"
    )
    parser.add_argument(
        "--width", type=_fraction, default=None, help="channel multiplier, e.g. 1/16"
    )
    parser.add_argument(
        "--wall-rows", type=int, default=None, help="hidden map rows (walled model)"
    )
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument(
        "--train-images", type=int, default=None, help="synthetic images per epoch"
    )
    parser.add_argument("--val-images", type=int, default=None)
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--source", default=None, help="synthetic, imagefolder or imagenette"
    )
    parser.add_argument(
        "--data-root", default=None, help="imagefolder root (train/ and val/ inside)"
    )
    parser.add_argument("--num-threads", type=int, default=None, help="CPU threads")
    parser.add_argument("--compile", action="store_true", help="torch.compile on GPU")
    parser.add_argument(
        "--checkpoint", default=None, help="checkpoint file (default: the cache)"
    )
    parser.add_argument(
        "--stop-after-epochs",
        type=int,
        default=None,
        help="stop after this many epochs (resume later)",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="ignore an unfinished checkpoint"
    )
    parser.add_argument(
        "--config-json",
        default=None,
        help="train exactly this configuration (a JSON file written by train_both)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other training or data setting, e.g. --set warmup_steps=50 "
        "(repeatable; values parsed as JSON when possible)",
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--summary-json",
        default=None,
        metavar="PATH",
        help="also write the runs' summaries (accuracies, per-epoch history, time, "
        "machine, command) to this JSON file, e.g. for results/",
    )
    return cli.parse_and_run(parser, argv, lambda args: _command(parser, args, argv))


def _read_config_json(path: Path) -> dict[str, Any]:
    """The training configuration in the JSON file ``path`` (``--config-json``).

    Raises:
        FileNotFoundError: when there is no such file.
        ValueError: when it is not JSON, or not a training configuration.
    """
    if not path.is_file():
        raise FileNotFoundError(
            f"--config-json {path}: no such file. Expected a training configuration in JSON, as "
            "train_both writes (helpers.train.training_config(...) dumped with json.dump); pass an "
            "existing file, or use --profile and the settings' options instead."
        )
    try:
        fixed = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"--config-json {path} is not valid JSON ({err}). Expected a training "
            "configuration as helpers.train.training_config returns it."
        ) from err
    missing = [
        k
        for k in ("train", "data", "wall_rows", "profile", "width")
        if not isinstance(fixed, dict) or k not in fixed
    ]
    if missing:
        raise ValueError(
            f"--config-json {path} is not a training configuration: it lacks {missing}. "
            "Expected what helpers.train.training_config returns, dumped as JSON."
        )
    return fixed


def _command(
    parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None
) -> int:
    """The body of :func:`main`, run under :func:`helpers.cli.run`."""
    overrides: dict[str, Any] = {}
    for name, key in [
        ("width", "width"),
        ("epochs", "epochs"),
        ("batch_size", "batch_size"),
        ("lr", "lr"),
        ("train_images", "train_images"),
        ("val_images", "val_images"),
        ("num_classes", "num_classes"),
        ("seed", "seed"),
        ("source", "source"),
        ("data_root", "root"),
        ("num_threads", "num_threads"),
    ]:
        value = getattr(args, name)
        if value is not None:
            overrides[key] = value
    if args.compile:
        overrides["compile"] = True
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    kinds = [True] if args.walled else [False] if args.baseline else [True, False]
    if args.wall_rows is not None:
        if args.baseline:
            parser.error("--wall-rows and --baseline contradict each other")
        overrides["wall_rows"] = args.wall_rows
        kinds = [args.wall_rows > 0]
    rank = dist_env()[0]
    fixed = None
    if args.config_json:
        fixed = _read_config_json(Path(args.config_json))
        kinds = [fixed["wall_rows"] > 0]
    if args.summary_json and rank == 0:  # fail now, not after the training
        cli.ensure_writable_folder(
            Path(args.summary_json).parent,
            "The folder of --summary-json",
            "Pass --summary-json a path in a folder you can write to.",
        )
    runs = []
    # both models on a CPU: trained at the same time, in two processes (train_both)
    pair = (
        len(kinds) == 2
        and fixed is None
        and not args.checkpoint
        and not args.fresh
        and args.stop_after_epochs is None
        and get_device(args.device).type == "cpu"
        and dist_env()[1] == 1
    )
    if pair:
        t0 = time.perf_counter()
        both = train_both(args.profile, device=args.device, **overrides)
        seconds = time.perf_counter() - t0
        results = [
            (both[name][0], both[name][1], seconds) for name in ("walled", "baseline")
        ]
    else:
        results = []
        for walled in kinds:
            config = (
                fixed
                if fixed is not None
                else training_config(args.profile, walled, **overrides)
            )
            path = Path(args.checkpoint) if args.checkpoint else checkpoint_path(config)
            t0 = time.perf_counter()
            model, info = train(
                config,
                device=args.device,
                checkpoint=path,
                resume=not args.fresh,
                stop_after_epochs=args.stop_after_epochs,
                show_progress=not args.no_progress,
            )
            results.append((model, info, time.perf_counter() - t0))
    for _, info, seconds in results:
        if rank == 0:
            summary = {
                k: info[k]
                for k in (
                    "walled",
                    "checkpoint",
                    "val_accuracy",
                    "position_accuracy",
                    "train_seconds",
                    "complete",
                    "epochs_done",
                    "from_cache",
                )
            }
            summary["wall_seconds"] = round(seconds, 1)
            print(json.dumps(summary, default=str))
            runs.append(
                {
                    **summary,
                    "key": info["key"],
                    "history": info["history"],
                    "config": info["config"],
                }
            )
    if args.summary_json and rank == 0:
        out = Path(args.summary_json)
        out.parent.mkdir(parents=True, exist_ok=True)
        stamp = provenance(
            "python -m helpers.train "
            + " ".join(sys.argv[1:] if argv is None else argv),
            args.device,
        )
        text = (
            json.dumps(
                {
                    **stamp,
                    "runs": runs,
                },
                indent=1,
                default=str,
            )
            + "\n"
        )
        try:
            out.write_text(text)
        except OSError as err:
            raise OSError(
                f"Cannot write the summary to --summary-json {out} ({type(err).__name__}: {err}). Nothing "
                f"trained is lost: the checkpoints are {', '.join(str(r['checkpoint']) for r in runs)}; run "
                "the same command again (without --fresh) with a writable --summary-json path: the runs then "
                "load from them."
            ) from err
        print(f"summary written to {out}")
    if dist_env()[1] > 1 and dist.is_initialized():
        dist.destroy_process_group()
    return 0
