"""One lock per cached result: :func:`cache_lock`, so that two processes that want the same
checkpoint or results file (two notebooks of a book built two at a time, two readers' kernels)
compute it once, the second waiting and then reading the cache."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from .config import BUILD_ENV, display_path

try:  # POSIX; elsewhere cache_lock holds no lock (one process at a time, as before)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["cache_lock"]

#: The lock files this process holds: path -> [open file, depth] (cache_lock is re-entrant).
_HELD_LOCKS: dict[str, list[Any]] = {}


@contextlib.contextmanager
def cache_lock(*paths: str | Path, what: str = "a cached result"):
    """Hold an exclusive lock on each of ``paths`` (a file ``<path>.lock`` beside each) while the
    block runs, so that two processes that want the same cached result (two notebooks of a book
    built two at a time, two readers' kernels) compute it once: the second waits, then finds it
    in the cache.

    The locks are taken in sorted order (two callers that want the same pair cannot deadlock),
    re-entrant within a process (a function that holds a lock may call another that takes it),
    and released when the block ends, or when the process dies (``flock``). Where the folder
    cannot be written, or the system has no ``fcntl`` (Windows), the block runs without a lock;
    the write itself then reports a folder problem as before.

    Args:
        paths: the files being computed (a checkpoint, a results file).
        what: named in the message printed while waiting (silent in the book build).
    """
    keys = sorted({os.path.abspath(os.fspath(p)) + ".lock" for p in paths})
    taken: list[str] = []
    try:
        for key in keys:
            held = _HELD_LOCKS.get(key)
            if held is not None:
                held[1] += 1
                taken.append(key)
                continue
            if fcntl is None:
                continue
            try:
                Path(key).parent.mkdir(parents=True, exist_ok=True)
                handle = open(key, "a")  # noqa: SIM115 - held until the block ends
            except OSError:
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not os.environ.get(BUILD_ENV):
                    print(
                        f"Waiting for another process that is computing {what} "
                        f"({display_path(key)})...",
                        flush=True,
                    )
                fcntl.flock(handle, fcntl.LOCK_EX)
            _HELD_LOCKS[key] = [handle, 1]
            taken.append(key)
        yield
    finally:
        for key in reversed(taken):
            held = _HELD_LOCKS[key]
            held[1] -= 1
            if held[1] == 0:
                del _HELD_LOCKS[key]
                fcntl.flock(held[0], fcntl.LOCK_UN)
                held[0].close()
