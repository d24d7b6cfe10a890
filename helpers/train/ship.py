"""``python -m helpers.train.ship --export | --check``: the quick models shipped with helpers
(:mod:`helpers.train.pretrained`): copy the cached ones into ``helpers/pretrained/``, or say
whether the shipped ones match the current quick recipe (exit status 1 when they do not)."""

from __future__ import annotations

import argparse
import sys

from .. import cli
from .pretrained import REGENERATE, export_pretrained, stale_models

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.train.ship [--export | --check]``."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.train.ship", description=__doc__.split("\n")[0]
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--export",
        action="store_true",
        help="copy the cached quick models into helpers/pretrained/",
    )
    what.add_argument(
        "--check",
        action="store_true",
        help="say whether the shipped models match the quick recipe",
    )
    parser.add_argument(
        "--folder", default=None, help="another folder than helpers/pretrained/"
    )

    def command(args: argparse.Namespace) -> int:
        if args.export:
            result = export_pretrained(
                folder=args.folder,
                command="python -m helpers.train.ship "
                + " ".join(sys.argv[1:] if argv is None else argv),
            )
            for kind, entry in result["models"].items():
                print(
                    f"{kind}: {entry['file']} ({entry['bytes'] / 1e6:.1f} MB, key {entry['key']})"
                )
            return 0
        stale = stale_models(folder=args.folder)
        print(
            "the shipped models match the quick recipe"
            if not stale
            else "the shipped models do not match the quick recipe:\n  "
            + "\n  ".join(stale)
            + f"\nRegenerate: {REGENERATE}"
        )
        return 0 if not stale else 1

    return cli.parse_and_run(parser, argv, command)


if __name__ == "__main__":
    sys.exit(main())
