"""Helpers of the executable book "CAM-Based Methods Can See through Walls", replicated.

The library every chapter imports, one idea per module, in layers: a module imports only
modules of *lower* layers (``tests/test_layers.py`` checks it, function-local imports included),
so the arrows point one way, from the chapters down to the configuration.

1. ``cli`` -- what every command line does on an error (no torch);
2. ``config`` -- profiles, device, seeds, the cache folder, reading checkpoints;
3. ``receptive_field`` -- which input rows reach which output rows;
4. ``models/`` -- rVGG and its wall, the authors' weights, the theory CNN, the other walls
   (conv-walled rVGG, walled ResNet);
5. ``wall`` -- the rows a model cannot see, and the checks of it;
6. ``geometry`` -- every number of the wall, derived once from the model;
7. ``masked_forward`` (logits on the visible rows), ``metrics`` (mu), ``data/`` (synthetic
   world, stacks, real folders and downloads, the authors' release);
8. ``theory/`` (sympy, Monte Carlo, the 29x29 digits), ``plots`` (figures);
9. ``cams/`` -- every CAM method behind one call, one file per hand-written method;
10. ``results/`` -- the results table, the verdict, the paper's numbers, the renderer;
11. ``train/`` -- the one training loop, its recipes, checkpoints and CLI;
12. ``evaluate/`` (Table 1 and friends), ``experiments/`` (the open questions, one file each);
13. ``summary`` (the landing and results pages), ``explorer`` (the widget).

The commands that build, check and benchmark the book are not part of the library: they are
in ``tools/``.
"""

__version__ = "0.1.0"

#: The layers above, lowest first (``tests/test_layers.py`` reads this).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("config",),
    ("receptive_field", "locks"),
    ("models",),
    ("wall",),
    ("geometry",),
    ("masked_forward", "metrics", "data"),
    ("theory", "plots"),
    ("cams",),
    ("results",),
    ("train",),
    ("evaluate", "experiments"),
    ("summary", "explorer"),
    ("teaching",),
)
