"""What every command line of the book does on an error, written once.

The commands (``python -m helpers.train``, ``helpers.evaluate``, and ``python -m tools.X`` for
``benchmark``, ``bench_cams``, ``build``, ``browsercheck``, ``gpu_session``, ``check_notebooks``)
all follow the same pattern::

    def main(argv=None) -> int:
        parser = argparse.ArgumentParser(...)
        ...
        return cli.parse_and_run(parser, argv, _command)  # --debug added; usage errors: exit 2

:func:`run` calls the command's body. An exception (any ``Exception``; ``KeyboardInterrupt``
and ``SystemExit`` pass through untouched) becomes *one* line on stderr,
``error: <message> (<ExceptionType>; run again with --debug for the traceback)``, and the exit
status :data:`EXIT_ERROR`; with ``--debug`` the exception propagates instead, so Python
prints the full traceback (exit status 1).

:func:`ensure_writable_folder` and :func:`folder_problem` check, before any long computation,
that a command will be able to write its output where it is asked to.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

__all__ = [
    "EXIT_ERROR",
    "DEBUG_OPTION",
    "NotWritableError",
    "add_debug_argument",
    "error_line",
    "run",
    "parse_and_run",
    "folder_problem",
    "ensure_writable_folder",
]

#: Exit status of a command that stopped on an error (argparse uses the same for usage errors).
EXIT_ERROR = 2
#: The option that shows the traceback instead of the one-line message.
DEBUG_OPTION = "--debug"


class NotWritableError(OSError):
    """A folder that a command must write to cannot be created or written to."""


def add_debug_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--debug`` (stored as ``args.debug``) to ``parser``, so that it shows in ``--help``.

    Returns:
        ``parser`` itself.
    """
    parser.add_argument(
        DEBUG_OPTION,
        action="store_true",
        help="on an error, show the full Python traceback instead of the one-line "
        "'error: ...' message",
    )
    return parser


def parse_and_run(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    command: Callable[[argparse.Namespace], int | None],
) -> int:
    """What every command's ``main`` does: add ``--debug`` (:func:`add_debug_argument`), parse
    ``argv`` (argparse's own message and exit status 2 on a usage error), then :func:`run`
    ``command(args)``.

    Returns:
        ``command``'s exit status, or :data:`EXIT_ERROR` after an exception.
    """
    args = add_debug_argument(parser).parse_args(argv)
    return run(lambda: command(args), debug=args.debug)


def error_line(err: BaseException) -> str:
    """The one line printed for ``err``: ``error: <message> (<type>; run again with --debug
    for the traceback)``. A message spread over several lines is joined into one (`` | ``
    between its lines); an exception without a message is named by its type."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    message = " | ".join(lines) if lines else f"{type(err).__name__} (no message)"
    return f"error: {message} ({type(err).__name__}; run again with {DEBUG_OPTION} for the traceback)"


def run(
    body: Callable[[], int | None], debug: bool = False, stream: TextIO | None = None
) -> int:
    """Run a command's ``body`` and turn an exception into one line and an exit status.

    Args:
        body: the command, called without arguments; returns its exit status (``None``: 0).
        debug: let an exception propagate (the caller, usually Python itself, prints the
            traceback) instead of printing :func:`error_line`.
        stream: where the line goes (default ``sys.stderr``, looked up at call time).

    Returns:
        ``body``'s exit status, or :data:`EXIT_ERROR` after an exception.

    Raises:
        KeyboardInterrupt, SystemExit: always passed through.
        Exception: whatever ``body`` raised, only when ``debug`` is true.
    """
    try:
        code = body()
    except Exception as err:  # noqa: BLE001 -- the point: one line instead of a traceback
        if debug:
            raise
        out = stream if stream is not None else sys.stderr
        print(error_line(err), file=out, flush=True)
        return EXIT_ERROR
    return 0 if code is None else int(code)


def _obstacle(folder: Path) -> str | None:
    """What stands in the way of creating ``folder``: a file at its place or at a parent's."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if not candidate.is_dir():
                return f"{candidate} is a file, not a folder"
            return None
    return None


def folder_problem(folder: str | Path) -> str | None:
    """Why ``folder`` cannot hold a command's output, or ``None`` when it can.

    Creates ``folder`` (with its parents) when missing, then creates and removes a probe file
    in it: this is what a later write needs, checked before the work that produces it.
    Never raises for an unwritable place; the returned sentence says what was found (a file
    in the way, no permission, a read-only or full file system, ...).
    """
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".camwalls-write-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        return (
            _obstacle(folder)
            or f"writing in it fails with {type(err).__name__}: {err.strerror or err}"
        )
    return None


def ensure_writable_folder(folder: str | Path, what: str, remedy: str) -> Path:
    """``folder`` as a ``Path``, after checking (:func:`folder_problem`) that it can be written.

    Args:
        folder: the folder a command will write to (created when missing).
        what: how the user named it, e.g. ``"--out"`` or ``"the results folder"``.
        remedy: what to do instead, appended to the message.

    Raises:
        NotWritableError: naming the folder, what was expected, what was found and ``remedy``.
    """
    path = Path(folder).expanduser()
    problem = folder_problem(path)
    if problem is not None:
        raise NotWritableError(
            f"{what} {path} cannot be used: expected a folder that can be created and written to, "
            f"found that {problem}. {remedy}"
        )
    return path
