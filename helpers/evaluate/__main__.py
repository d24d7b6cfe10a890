"""``python -m helpers.evaluate``: see :func:`helpers.evaluate.main`."""

import sys

from .cli import main

sys.exit(main())
