"""``python -m helpers.train`` (also under ``torchrun -m helpers.train``): :func:`helpers.train.cli.main`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
