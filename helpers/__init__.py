"""Helpers of the executable book "CAM-Based Methods Can See through Walls", replicated.

The library every chapter imports, one idea per module, in layers: a module imports only
modules of *lower* layers (``tests/test_layers.py`` checks it, function-local imports included),
so the arrows point one way, from the chapters down to the configuration.

1. ``cli`` -- what every command line does on an error (no torch);
2. ``config`` -- profiles, device, seeds, the cache folder, reading checkpoints;
3. ``receptive_field`` -- which input rows reach which output rows;
4. ``models`` -- rVGG and its wall, the theory CNN, the authors' weights;
5. ``wall`` -- the rows a model cannot see, and the checks of it;
6. ``geometry`` -- every number of the wall, derived once from the model;
7. ``variants`` (other walls), ``masked_forward`` (logits on the visible rows), ``metrics``
   (mu), ``data`` (synthetic world, stacks, real data), ``theory`` (sympy, Monte Carlo),
   ``plots`` (figures);
8. ``cams`` -- every CAM method behind one call;
9. ``results`` -- the results table, the verdict, the paper's numbers, the renderer (below
   ``evaluate`` and ``beyond``, which judge and render with it);
10. ``train`` -- the training loop, its checkpoints and CLI;
11. ``evaluate`` (Table 1 and friends), ``beyond`` (the open questions), ``benchmark`` (GPU
    throughput);
12. ``summary`` (the landing and results pages), ``explorer`` (the widget);
13. ``bench_cams``, ``build`` -- commands that use everything below.
"""

__version__ = "0.1.0"

#: The layers above, lowest first (``tests/test_layers.py`` reads this).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("config",),
    ("receptive_field",),
    ("models",),
    ("wall",),
    ("geometry",),
    ("variants", "masked_forward", "metrics", "data", "theory", "plots"),
    ("cams",),
    ("results",),
    ("train",),
    ("evaluate", "beyond", "benchmark"),
    ("summary", "explorer"),
    ("bench_cams", "build"),
)
