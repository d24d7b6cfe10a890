"""Every CAM method behind one call, scaled as pytorch-grad-cam scales them, plus Opti-CAM.

One call gives a saliency map for any method of the registry :data:`METHODS`::

    maps = saliency(model, images, "gradcam")              # (N, 224, 224), in [0, 1]
    raw = saliency(model, images, "gradcam", raw=True)      # (N, 224, 224), unscaled

and :func:`compute_cams` gives everything at once (several methods sharing one forward and
backward pass per batch, the 14x14 maps, the classes explained, the time) as
:class:`CamResult` objects. Every map is the library's, to 1e-4 (``tests/test_cams.py``
compares each method with pytorch-grad-cam's own class; :mod:`helpers.cams.reference` does it
on the book's model, timed).

The package, as pytorch-grad-cam lays out its methods: one registry, one shared pass, one
file per method written by hand.

* ``registry.py`` -- :class:`CamMethod`, :data:`METHODS`, :data:`PAPER_METHODS`,
  :data:`LEFT_OUT` (and why), :func:`get_method`, :func:`method_keys`, :data:`METHOD_OPTIONS`;
* ``shared_pass.py`` -- the forward/backward pass the methods of a call share, and the checks
  of images, model and targets (:func:`resolve_targets`, :func:`fast_layout`);
* ``library.py`` -- the methods that are pytorch-grad-cam's own formula on the shared pass
  (the gradient formulas, the projections, FEM, RandomCAM, ShapleyCAM);
* ``scorecam.py`` -- ScoreCAM, batched;
* ``ablationcam.py`` -- AblationCAM on the layers after the target layer only;
* ``fullgrad.py`` -- FullGrad, in torch (no target layer: a pass of its own);
* ``opticam.py`` -- Opti-CAM (:func:`opticam`), which pytorch-grad-cam does not have;
* ``finercam.py`` -- Finer-CAM, GradCAM of a contrast between classes;
* ``api.py`` -- :class:`CamResult`, :func:`postprocess` (pytorch-grad-cam's scaling),
  :func:`compute_cams`, :func:`activations_and_gradients`, :func:`saliency`, and the table of
  runners;
* ``reference.py`` -- the check against pytorch-grad-cam, timed (``python -m tools.bench_cams``
  and chapter 06 run it); not imported here.

**Adding a method.** Add its :class:`CamMethod` to the list in ``registry.py`` (and its
options to :data:`METHOD_OPTIONS`); write its runner ``run_<key>(ps, **options) -> (signed
maps (B, h, w), extras)`` -- in ``library.py`` if it is a formula of pytorch-grad-cam on the
activations and gradients of the shared pass ``ps``, else in a file of its own; add it to
``_RUNNERS`` in ``api.py``; and compare it with the library's class in ``tests/test_cams.py``.
"""

from .api import (
    CamResult,
    activations_and_gradients,
    compute_cams,
    postprocess,
    saliency,
)
from .opticam import iteration_sweep, opticam
from .registry import (
    LEFT_OUT,
    METHOD_OPTIONS,
    METHODS,
    PAPER_METHODS,
    CamMethod,
    get_method,
    method_keys,
)
from .shared_pass import fast_layout, resolve_targets

__all__ = [
    "CamMethod",
    "METHODS",
    "PAPER_METHODS",
    "LEFT_OUT",
    "CamResult",
    "get_method",
    "method_keys",
    "saliency",
    "compute_cams",
    "postprocess",
    "opticam",
    "iteration_sweep",
    "resolve_targets",
    "activations_and_gradients",
    "METHOD_OPTIONS",
    "fast_layout",
]
