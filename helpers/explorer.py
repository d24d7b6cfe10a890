"""The saliency explorer: pick a stacked image, a CAM method and a model, see the map and its mu.

The logic lives in :class:`Explorer` (no widget in it, so that tests can drive it):
``view(stack, index, method, model)`` returns a :class:`View` (the image, the 224x224 map
as the CAM helper scales it, its mu and the model's prediction), computed once and cached;
``small_multiples(...)`` draws a grid of maps for the static HTML book, where live widgets
have no kernel behind them; ``widget()`` wraps the same calls in ipywidgets for a live
notebook (Jupyter, Colab, Binder).

Defaults come from the book's helpers (``helpers.cams.saliency`` for the maps,
``helpers.metrics`` for mu, ``helpers.train.train_or_load`` and ``helpers.data`` in
:meth:`Explorer.for_book`); tests pass their own small functions instead.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from . import cams, evaluate, metrics, plots
from .config import IMAGE_SIZE
from .geometry import rvgg_geometry

__all__ = [
    "DEFAULT_METHODS",
    "STATIC_METHODS",
    "SLOW_METHODS",
    "Choice",
    "View",
    "as_images",
    "Explorer",
    "ExplorerUI",
]

#: Methods offered by the explorer (names of ``helpers.cams``; the paper's, plus LayerCAM), in the
#: order of the registry (:data:`helpers.cams.METHODS`), as in every table of the book.
DEFAULT_METHODS: tuple[str, ...] = (
    "gradcam",
    "gradcampp",
    "xgradcam",
    "scorecam",
    "ablationcam",
    "eigencam",
    "hirescam",
    "opticam",
    "layercam",
)
#: The methods of the pre-rendered small multiples in the HTML book, in the registry's order:
#: four with global weights and two element-wise ones (fast, gradient-based: they render within
#: the build's budget).
STATIC_METHODS: tuple[str, ...] = (
    "gradcam",
    "gradcampp",
    "xgradcam",
    "eigencam",
    "hirescam",
    "layercam",
)

#: Methods that optimize each map (Opti-CAM: some 100 forward and backward passes of the whole
#: network per image): offered live, left out of what the book build computes.
SLOW_METHODS: tuple[str, ...] = ("opticam",)

SaliencyFn = Callable[[torch.nn.Module, torch.Tensor, str], Any]
MuFn = Callable[[np.ndarray], Any]


@dataclass(frozen=True)
class Choice:
    """What the reader picked: a stack set, an image index in it, a method, a model."""

    stack: str
    index: int
    method: str
    model: str


@dataclass(frozen=True)
class View:
    """What the explorer shows for a :class:`Choice`.

    ``image``: ``(3, 224, 224)`` normalized tensor; ``cam``: ``(224, 224)`` float array (as the
    CAM helper returns it: ReLU'd, min-max scaled, upsampled); ``mu``: the map's share of L2
    norm in the walled model's unseen rows; ``predicted``: the model's top class (the class the map
    explains); ``label``: the stack's class, when known.
    """

    choice: Choice
    image: torch.Tensor
    cam: np.ndarray
    mu: float
    predicted: int
    label: int | None = None


def as_images(
    stack: Any,
) -> tuple[torch.Tensor, torch.Tensor | None, Sequence[str] | None]:
    """``(images, labels, class_names)`` of a stack set.

    Accepts a ``(N, 3, 224, 224)`` tensor, a ``(images, labels)`` pair, or an object with
    ``images`` (and optionally ``labels`` and ``classes``/``class_names``) attributes, such as
    ``helpers.data.StackSet``.

    Raises:
        TypeError / ValueError: for anything else, or images of the wrong shape.
    """
    labels = names = None
    if isinstance(stack, torch.Tensor):
        images = stack
    elif (
        isinstance(stack, (tuple, list))
        and len(stack) == 2
        and isinstance(stack[0], torch.Tensor)
    ):
        images, labels = stack
    elif hasattr(stack, "images"):
        images = stack.images
        labels = getattr(stack, "labels", None)
        names = getattr(stack, "classes", None) or getattr(stack, "class_names", None)
    else:
        raise TypeError(
            f"A stack set should be an image tensor, an (images, labels) pair or an object "
            f"with an 'images' attribute (helpers.data.StackSet); found {type(stack).__name__}."
        )
    if (
        not isinstance(images, torch.Tensor)
        or images.ndim != 4
        or images.shape[1] != 3
        or tuple(images.shape[-2:]) != (IMAGE_SIZE, IMAGE_SIZE)
    ):
        shape = (
            tuple(images.shape)
            if isinstance(images, torch.Tensor)
            else type(images).__name__
        )
        raise ValueError(
            f"Stack images must be a (N, 3, {IMAGE_SIZE}, {IMAGE_SIZE}) tensor; found {shape}."
        )
    if labels is not None:
        labels = torch.as_tensor(labels)
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"Stack labels must be one per image ({images.shape[0]}); found shape "
                f"{tuple(labels.shape)}."
            )
    return images, labels, names


def _registry_label(method: str) -> str:
    """The display name of a method in ``helpers.cams.METHODS`` (``"gradcampp"`` -> ``"GradCAM++"``),
    or the name itself when the registry does not know it (a test's own method)."""
    try:
        return cams.get_method(method).display
    except (ValueError, TypeError):
        return method


def _default_saliency_many(
    model: torch.nn.Module, images: torch.Tensor, methods: Sequence[str]
) -> dict[str, np.ndarray]:
    """Every method's 224x224 maps of ``images``, from one shared pass (:func:`helpers.cams.compute_cams`)."""
    results = cams.compute_cams(model, images, list(methods))
    return {m: results[cams.get_method(m).key].scaled for m in methods}


class Explorer:
    """Maps on demand for every (stack set, image, method, model), cached.

    Args:
        models: ``{"walled": model, "baseline": model}`` (any names; eval mode is set).
        stacks: ``{"STACK-MIX": stack, ...}``: see :func:`as_images` for what a stack may be.
        methods: method names understood by ``saliency``.
        saliency: ``saliency(model, images, method) -> (N, 224, 224)`` maps; default
            ``helpers.cams.saliency``.
        saliency_many: ``saliency_many(model, images, methods) -> {method: maps}``, several
            methods at once; default ``helpers.cams.compute_cams`` (one shared pass) when
            ``saliency`` is not given, else a loop over ``saliency``.
        mu: ``mu(map) -> float`` for one ``(224, 224)`` map; default from ``helpers.metrics``.
        cache_size: how many views to keep.
        labels: display names of the methods (``{"gradcampp": "GradCAM++"}``); default: the
            names of ``helpers.cams.METHODS`` where it knows the method, else the key.
    """

    def __init__(
        self,
        models: Mapping[str, torch.nn.Module],
        stacks: Mapping[str, Any],
        methods: Sequence[str] = DEFAULT_METHODS,
        saliency: SaliencyFn | None = None,
        mu: MuFn | None = None,
        saliency_many: Callable[..., Mapping[str, Any]] | None = None,
        cache_size: int = 512,
        labels: Mapping[str, str] | None = None,
    ):
        if not models:
            raise ValueError(
                "The explorer needs at least one model, e.g. {'walled': ..., 'baseline': ...}."
            )
        if not stacks:
            raise ValueError(
                "The explorer needs at least one stack set, e.g. {'STACK-MIX': ...}."
            )
        if not methods:
            raise ValueError("The explorer needs at least one CAM method name.")
        self.models = dict(models)
        for m in self.models.values():
            m.eval()
        self.stacks = {name: as_images(s) for name, s in stacks.items()}
        self.methods = list(methods)
        self.labels = {
            m: (labels or {}).get(m) or _registry_label(m) for m in self.methods
        }
        self._saliency = saliency
        self._saliency_many = saliency_many
        self._mu = mu
        self._cache: OrderedDict[Choice, View] = OrderedDict()
        if int(cache_size) < 1:
            raise ValueError(f"cache_size must be at least 1, got {cache_size!r}.")
        self._cache_size = int(cache_size)
        self.computed = (
            0  # maps computed so far (cache misses), for the curious and the tests
        )

    # -- what can be chosen
    @property
    def options(self) -> dict[str, list]:
        """The choices offered: stack names, methods, models, and the image count per stack."""
        return {
            "stack": list(self.stacks),
            "method": list(self.methods),
            "model": list(self.models),
            "images": {
                name: int(imgs.shape[0]) for name, (imgs, _, _) in self.stacks.items()
            },
        }

    def check(self, stack: str, index: int, method: str, model: str) -> Choice:
        """Validate a choice; raise ``ValueError`` naming the valid options otherwise."""
        if stack not in self.stacks:
            raise ValueError(
                f"Unknown stack set {stack!r}; choose one of {list(self.stacks)}."
            )
        n = int(self.stacks[stack][0].shape[0])
        if (
            isinstance(index, bool)
            or not isinstance(index, (int, np.integer))
            or not 0 <= int(index) < n
        ):
            raise ValueError(
                f"Image index {index!r} is out of range for {stack} (it has {n} images: 0..{n - 1})."
            )
        if method not in self.methods:
            raise ValueError(
                f"Unknown method {method!r}; choose one of {self.methods}."
            )
        if model not in self.models:
            raise ValueError(
                f"Unknown model {model!r}; choose one of {list(self.models)}."
            )
        return Choice(stack, int(index), method, model)

    # -- computing
    def _mu_fn(self) -> MuFn:
        if self._mu is None:
            self._mu = metrics.dead_zone_share
        return self._mu

    def _maps(
        self, net: torch.nn.Module, batch: torch.Tensor, methods: list[str]
    ) -> dict[str, np.ndarray]:
        """``{method: (N, 224, 224) maps}`` for a batch, one call for all methods when possible."""
        if self._saliency_many is None and self._saliency is None:
            self._saliency_many = _default_saliency_many
        if self._saliency_many is not None:
            out = self._saliency_many(net, batch, methods)
        else:
            out = {m: self._saliency(net, batch, m) for m in methods}
        maps = {}
        for m in methods:
            arr = out[m]
            arr = (
                arr.detach().cpu().numpy()
                if isinstance(arr, torch.Tensor)
                else np.asarray(arr)
            )
            if arr.shape != (batch.shape[0], IMAGE_SIZE, IMAGE_SIZE):
                raise ValueError(
                    f"The saliency function returned maps of shape {arr.shape} for "
                    f"{batch.shape[0]} images; expected ({batch.shape[0]}, {IMAGE_SIZE}, {IMAGE_SIZE})."
                )
            maps[m] = arr
        return maps

    def prefetch(
        self, stack: str, indices: Sequence[int], methods: Sequence[str], model: str
    ) -> dict[Choice, View]:
        """The views of several images and methods of one stack set and model, computing the
        missing ones in one batched call (one shared forward/backward pass with ``helpers.cams``)."""
        wanted = [
            self.check(stack, i, method, model) for method in methods for i in indices
        ]
        found = {c: self._cache[c] for c in wanted if c in self._cache}
        todo: dict[str, list[Choice]] = {}
        for c in wanted:
            if c not in found:
                todo.setdefault(c.method, []).append(c)
        if not todo:
            return found
        idx = sorted({c.index for cs in todo.values() for c in cs})
        pos = {i: k for k, i in enumerate(idx)}
        images, labels, _ = self.stacks[stack]
        batch = images[torch.tensor(idx)]
        net = self.models[model]
        device = next(net.parameters()).device
        with torch.no_grad():
            predicted = net(batch.to(device)).argmax(dim=1).tolist()
        maps = self._maps(net, batch, list(todo))
        mu_fn = self._mu_fn()
        for method, choices in todo.items():
            for c in choices:
                cam = maps[method][pos[c.index]].astype(np.float64)
                mu = float(np.asarray(mu_fn(cam)).reshape(-1)[0])
                label = int(labels[c.index]) if labels is not None else None
                found[c] = View(
                    c, images[c.index], cam, mu, int(predicted[pos[c.index]]), label
                )
                self._store(found[c])
                self.computed += 1
        return found

    def views(
        self, stack: str, indices: Sequence[int], method: str, model: str
    ) -> list[View]:
        """Views of several images of one stack set for one method and model (one batched
        saliency call for those not cached yet)."""
        got = self.prefetch(stack, indices, [method], model)
        return [got[self.check(stack, i, method, model)] for i in indices]

    def view(self, stack: str, index: int, method: str, model: str) -> View:
        """The :class:`View` of one choice (computed on the first request, then cached)."""
        return self.views(stack, [index], method, model)[0]

    def _store(self, view: View) -> None:
        self._cache[view.choice] = view
        self._cache.move_to_end(view.choice)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def class_name(self, stack: str, cls: int | None) -> str:
        """A class index as its name when the stack set knows names, else ``"class k"``."""
        if cls is None or cls < 0:  # -1: an unlabelled image
            return "unknown"
        names = self.stacks[stack][2]
        if names is not None and 0 <= cls < len(names):
            return str(names[cls])
        return f"class {cls}"

    # -- drawing
    def figure(self, view: View):
        """One view as a figure: the image with the wall, the map, and the overlay (with mu)."""
        c = view.choice
        fig, axes = plt.subplots(1, 3, figsize=(9.0, 3.4))
        truth = self.class_name(c.stack, view.label)
        plots.show_image(
            axes[0],
            view.image,
            title=f"{c.stack} #{c.index} ({truth})",
            normalized=True,
        )
        plots.show_map(
            axes[1],
            view.cam,
            title=f"{self.labels[c.method]} map, {c.model} model",
            vmin=0.0,
            vmax=max(float(view.cam.max()), 1e-12),
            colorbar=True,
        )
        plots.overlay(
            axes[2],
            view.image,
            view.cam,
            normalized=True,
            title=f"mu = {view.mu:.3f}, explains {self.class_name(c.stack, view.predicted)}",
        )
        fig.tight_layout()
        plots.stamp(fig)
        return fig

    def small_multiples(
        self,
        indices: Mapping[str, int] | None = None,
        methods: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        cell: float = 1.55,
    ):
        """A grid for the static book: one column per (stack set, model), one row per method
        (the top row shows the images with the wall), each map's mu in its title.

        ``indices``: the image shown for each stack set (default: image 0 of each).
        Returns ``(fig, views)`` with ``views[(stack, model, method)]`` the :class:`View` shown.
        """
        indices = dict(indices) if indices is not None else {s: 0 for s in self.stacks}
        methods = (
            list(methods)
            if methods is not None
            else [m for m in STATIC_METHODS if m in self.methods]
        )
        models = list(models) if models is not None else list(self.models)
        if not methods:
            raise ValueError(f"No method to draw; the explorer knows {self.methods}.")
        cols = [(s, m) for s in indices for m in models]
        for stack, model in cols:
            self.prefetch(stack, [indices[stack]], methods, model)
        fig, axes = plt.subplots(
            len(methods) + 1,
            len(cols),
            figsize=(cell * len(cols), cell * (len(methods) + 1) + 0.3),
            squeeze=False,
        )
        shown: dict[tuple[str, str, str], View] = {}
        for j, (stack, model) in enumerate(cols):
            images, labels, _ = self.stacks[
                self.check(stack, indices[stack], methods[0], model).stack
            ]
            name = stack.replace(" (", "\n(")  # "STACK-GEN (stand-in)" on two lines
            plots.show_image(
                axes[0, j],
                images[indices[stack]],
                normalized=True,
                title=f"{name}\n#{indices[stack]}, {model}",
            )
            axes[0, j].title.set_fontsize(9)
            for i, method in enumerate(methods, start=1):
                v = self.view(stack, indices[stack], method, model)
                shown[(stack, model, method)] = v
                plots.overlay(
                    axes[i, j],
                    v.image,
                    v.cam,
                    normalized=True,
                    title=f"mu = {v.mu:.2f}",
                )
                if j == 0:
                    axes[i, j].set_ylabel(self.labels[method], fontsize=9)
        fig.tight_layout()
        plots.stamp(fig)
        return fig, shown

    def widget(self) -> "ExplorerUI":
        """The interactive explorer (ipywidgets); display it in a live notebook."""
        return ExplorerUI(self)

    # -- the book's explorer
    @classmethod
    def for_book(
        cls, profile: Any = None, methods: Sequence[str] = DEFAULT_METHODS
    ) -> "Explorer":
        """The models and stack sets of the profile's Table 1 (``helpers.evaluate.load_models``
        and ``load_sets``): the trained walled and baseline rVGG (from the checkpoint cache, or
        trained now), or the authors' released ones when the profile uses real data and they
        are downloaded; STACK-MIX and STACK-GEN (or its stand-in)."""
        models, _source = evaluate.load_models(profile)
        sets = evaluate.load_sets(profile)
        return cls(models, sets, methods=methods)


class ExplorerUI:
    """ipywidgets around an :class:`Explorer`: stack set, image index, method, model -> figure.

    ``controls`` maps ``"stack"``, ``"index"``, ``"method"``, ``"model"`` to their widgets; any
    change redraws; ``last_view`` is the view drawn last; ``box`` is what to display.
    """

    def __init__(self, explorer: Explorer):
        self.explorer = explorer
        opts = explorer.options
        first = opts["stack"][0]
        self.controls = {
            "stack": w.Dropdown(
                options=opts["stack"], value=first, description="stack set"
            ),
            "index": w.IntSlider(
                value=0,
                min=0,
                max=opts["images"][first] - 1,
                description="image",
                continuous_update=False,
            ),
            "method": w.Dropdown(
                options=[(explorer.labels[m], m) for m in opts["method"]],
                value=opts["method"][0],
                description="method",
            ),
            "model": w.ToggleButtons(
                options=opts["model"], value=opts["model"][0], description="model"
            ),
        }
        self.output = w.Output()
        self.status = w.HTML()
        self.last_view: View | None = None
        for name, ctrl in self.controls.items():
            ctrl.observe(self._on_change, names="value")
        self.box = w.VBox(
            [
                w.HBox([self.controls["stack"], self.controls["index"]]),
                w.HBox([self.controls["method"], self.controls["model"]]),
                self.status,
                self.output,
            ]
        )
        self.update()

    def _on_change(self, change) -> None:
        if change["owner"] is self.controls["stack"]:
            n = self.explorer.options["images"][change["new"]]
            self.controls["index"].max = n - 1
        self.update()

    def choice(self) -> Choice:
        """The current choice of the controls."""
        c = self.controls
        return self.explorer.check(
            c["stack"].value, int(c["index"].value), c["method"].value, c["model"].value
        )

    def update(self) -> View:
        """Compute (or fetch) the current view and draw it into the output area."""
        view = self.explorer.view(*self._astuple(self.choice()))
        self.last_view = view
        self.status.value = (
            f"<b>mu = {view.mu:.3f}</b> (share of the map's norm behind the wall; "
            f"a uniform map scores {rvgg_geometry().uniform_mu:.3f}); the "
            f"{view.choice.model} model predicts "
            f"{self.explorer.class_name(view.choice.stack, view.predicted)}."
        )
        with self.output:
            self.output.clear_output(wait=True)
            fig = self.explorer.figure(view)
            display(fig)
            plt.close(fig)
        return view

    @staticmethod
    def _astuple(c: Choice) -> tuple[str, int, str, str]:
        return c.stack, c.index, c.method, c.model

    def _ipython_display_(self) -> None:
        display(self.box)
