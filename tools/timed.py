"""Run a command and print its wall time: ``python tools/timed.py "what" -- CMD ARG ...``.

What ``make test`` uses so that each of its steps prints how long it took (in CI's log too).
Exits with the command's exit status.
"""

from __future__ import annotations

import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") != 1 or len(argv) < 3:
        print('usage: python tools/timed.py "what" -- CMD [ARG ...]', file=sys.stderr)
        return 2
    what, cmd = argv[0], argv[2:]
    start = time.monotonic()
    print(f"== {what}: {' '.join(cmd)}", flush=True)
    code = subprocess.call(cmd)
    print(
        f"== {what}: {time.monotonic() - start:.0f} s, exit status {code}", flush=True
    )
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
