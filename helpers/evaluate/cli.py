"""The command line ``python -m helpers.evaluate``: compute (or load) Table 1 and print it."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .. import cams, cli
from .. import results as R
from ..config import HOME_ENV, get_profile
from .paper_table import comparison_text, ensure_release, paper_table_settings
from .run import evaluate, load_current
from .store import ResultsWriteError, results_paths, save_results

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.evaluate``: compute (or load) Table 1 and print it.

    With ``--paper-table``: the paper's Table 1 (:mod:`helpers.evaluate.paper_table`): the
    full profile on the authors' release, put in the cache first (downloaded when missing,
    checked), the paper's eight methods, and the paper's numbers beside ours.

    The results always go to the cache (:func:`~helpers.evaluate.results_paths`) first, where
    :func:`~helpers.evaluate.evaluation` finds them again; with ``--out`` they are then also
    written there. Both folders are checked before anything is computed (an ``--out`` that
    cannot be written stops the command at once; a cache that cannot be written is skipped
    when ``--out`` is given).

    Returns 0, or :data:`helpers.cli.EXIT_ERROR` after an error (see :mod:`helpers.cli`:
    one ``error: ...`` line on stderr; with ``--debug``, the traceback); usage errors exit
    through argparse.
    """
    parser = argparse.ArgumentParser(
        prog="python -m helpers.evaluate",
        description="Every CAM method x stack set x model against the wall: mu (share of the map's "
        "L2 norm behind the wall), zero fraction, time. Writes CSV, JSON and maps to the results folder "
        "(the cache), and to --out when given.",
    )
    parser.add_argument(
        "--profile",
        default=None,
        help="quick or full (default $CAMWALLS_PROFILE or quick)",
    )
    parser.add_argument(
        "--methods",
        default=None,
        help="comma-separated methods (default: all; 'paper' for the paper's eight)",
    )
    parser.add_argument(
        "--images",
        type=int,
        default=None,
        help="images per stack set (default: profile's)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    parser.add_argument(
        "--source",
        default="auto",
        choices=("auto", "trained", "authors"),
        help="the profile's trained models, or the authors' released checkpoints",
    )
    parser.add_argument(
        "--force", action="store_true", help="recompute even when current results exist"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="also write the results to this folder (they always go to the cache first)",
    )
    parser.add_argument(
        "--paper-table",
        action="store_true",
        help="the paper's Table 1: the full profile on the authors' release (downloaded first "
        "when missing), the paper's eight methods; prints the paper's numbers beside ours",
    )
    return cli.parse_and_run(parser, argv, _command)


def _command(args: argparse.Namespace) -> int:
    """What :func:`main` does once the arguments are read (under :func:`helpers.cli.run`).

    Raises:
        helpers.cli.NotWritableError: before any computation, when ``--out`` cannot be written,
            or neither ``--out`` nor the cache can.
        ResultsWriteError: when writing ``--out`` fails after the computation; the results
            are then in the cache (or in the folder the message names).
    """
    if (
        args.paper_table
    ):  # its settings; the release comes after the cheap checks, before any work
        settings = paper_table_settings(args.profile, args.source, args.methods)
        args.profile, args.source, args.methods = (
            settings["profile"],
            settings["source"],
            settings["methods"],
        )
    methods = None
    if args.methods:
        methods = (
            "paper"
            if args.methods.strip() == "paper"
            else [m.strip() for m in args.methods.split(",")]
        )
    prof = get_profile(args.profile)
    keys = cams.method_keys(methods)  # an unknown method fails here, before any work
    if args.images is not None and args.images < 1:
        raise ValueError(
            f"--images must be a positive number of images per stack set, got {args.images}."
        )
    n_target = args.images or prof.eval.stack_images
    out = None
    if args.out is not None:
        out = cli.ensure_writable_folder(
            args.out,
            "--out",
            "Pass --out a folder you can write to, or omit --out "
            "(the results always go to the cache).",
        )
    if args.paper_table:
        print(f"the authors' release: {ensure_release()} (checked)", file=sys.stderr)
    cache = results_paths(prof)["json"].parent
    start = time.perf_counter()
    res, where = None, None
    if not args.force:
        for folder in (None, out) if out is not None else (None,):
            res = load_current(prof, args.source, keys, n_target, None, None, folder)
            if res is not None:
                where = cache if folder is None else out
                break
    if res is None:
        problem = cli.folder_problem(cache)
        if problem is not None and out is None:
            raise cli.NotWritableError(
                f"The results folder {cache} (the cache, below ${HOME_ENV}) cannot be used: expected a "
                f"folder that can be created and written to, found that {problem}. Set {HOME_ENV} to a "
                "writable folder, or pass --out FOLDER."
            )
        if problem is not None:
            print(
                f"note: the cache {cache} cannot be written ({problem}); the results go to --out {out} only.",
                file=sys.stderr,
            )
        where = cache if problem is None else out
        res = evaluate(
            prof,
            methods=keys,
            source=args.source,
            device=args.device,
            n_images=args.images,
            folder=where,
        )
    if out is not None and where is not None and Path(where).resolve() != out.resolve():
        try:
            save_results(res, out)
        except OSError as err:
            raise ResultsWriteError(
                f"Cannot write the results to --out {out} ({type(err).__name__}: {err}). Nothing is lost: "
                f"they are in {where} (table1.csv, table1.json, maps.npz); copy them from there, or run "
                "the command again with a writable --out (it then loads them instead of computing).",
                results=res,
                kept_in=Path(where),
            ) from err
    wall = time.perf_counter() - start
    paths = results_paths(prof, out if out is not None else where)
    print(R.table_text(R.table(res)))
    print(
        f"\nprofile {res['profile']}, source {res['source']}, device {res['device']}; "
        f"{res['settings']['stack_images']} images per set; Opti-CAM: "
        f"{res['settings']['opticam_iterations']} iterations."
    )
    print(
        f"evaluation time: {res['total_seconds']:.1f} s (computed {res['created']}); this command: {wall:.1f} s"
    )
    print(
        f"results: {paths['csv']}\n         {paths['json']}\n         {paths['maps']}"
    )
    if args.paper_table:
        print("\n" + comparison_text(R.table(res)))
    return 0
