"""The registry of CAM methods: what each method is, what it is called, what it accepts.

:data:`METHODS` holds one :class:`CamMethod` per method (its key, usual name, citation, kind
of weights, what the wall predicts for it, its formula, the pytorch-grad-cam class it
reproduces), in the order of the book's tables; :func:`get_method` finds one by any of its
names, :func:`method_keys` turns a selection into keys; the list itself is data, in
``methods.toml`` beside this file; :data:`LEFT_OUT` says what
pytorch-grad-cam has and the registry leaves out, and why; :data:`METHOD_OPTIONS` lists the
options each method accepts. No computation here: the maps are in the other files of
:mod:`helpers.cams`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class CamMethod:
    """One CAM method of the registry.

    Attributes:
        key: the registry key (lower case, letters and digits only, e.g. ``"gradcampp"``).
        display: the usual name (``"GradCAM++"``).
        cite: its key in ``book/references.bib``.
        weights: ``"global"`` (one number per channel for the whole map), ``"element-wise"``
            (a weight per channel *and* position) or ``"element-wise, centred"`` (element-wise
            products, then a projection on their principal direction after removing each
            channel's spatial mean -- a global offset).
        prediction: what the grouping predicts on the walled model: ``"leaks"``, ``"blind"``
            (exactly zero behind the wall) or ``"may leak"`` (a constant behind the wall).
        signal: what the method reads: ``"gradient"``, ``"activations"``, ``"forward passes"``,
            ``"optimization"``, ``"all layers"`` or ``"random"``.
        formula: the map in one line of LaTeX (notation of the chapter "CAM methods, one
            formula each").
        library: the pytorch-grad-cam class it reproduces (``None`` for Opti-CAM).
        in_paper: whether the paper's Table 1 has it.
        note: one sentence on what to know.
    """

    key: str
    display: str
    cite: str
    weights: str
    prediction: str
    signal: str
    formula: str
    library: str | None
    in_paper: bool
    note: str = ""


#: The note of the methods that need one forward and one backward pass ("grad_note" in the file).
GRAD_NOTE = (
    "one forward pass and a backward pass through the layers after the target layer"
)

#: The file that lists the methods (package data, next to this module).
METHODS_FILE = "methods.toml"


def read_methods(text: str | None = None) -> list[CamMethod]:
    """The methods listed in ``methods.toml`` (or in ``text``, TOML of the same form), in order.

    Raises:
        ValueError: for an entry whose fields are not :class:`CamMethod`'s (names the entry).
    """
    if text is None:
        text = (
            resources.files(__package__)
            .joinpath(METHODS_FILE)
            .read_text(encoding="utf-8")
        )
    fields = {f.name for f in dataclasses.fields(CamMethod)}
    out = []
    for i, entry in enumerate(tomllib.loads(text).get("method", [])):
        unknown = sorted(set(entry) - fields)
        if unknown:
            raise ValueError(
                f"{METHODS_FILE}, method {i + 1} ({entry.get('key', '?')}): unknown "
                f"field(s) {unknown}; expected some of {sorted(fields)}."
            )
        if entry.get("note") == "grad_note":
            entry = {**entry, "note": GRAD_NOTE}
        try:
            out.append(CamMethod(**{"library": None, **entry}))
        except TypeError as err:
            raise ValueError(
                f"{METHODS_FILE}, method {i + 1} ({entry.get('key', '?')}): {err}."
            ) from None
    return out


_METHOD_LIST = read_methods()

#: Every method, by key, in the order of the book's tables (the paper's eight first).
METHODS: dict[str, CamMethod] = {m.key: m for m in _METHOD_LIST}

#: The eight methods of the paper's Table 1, in its order.
PAPER_METHODS: tuple[str, ...] = tuple(m.key for m in _METHOD_LIST if m.in_paper)

#: What pytorch-grad-cam 1.5.7 has and the registry leaves out, with the reason.
LEFT_OUT: dict[str, str] = {
    "GuidedBackpropReLUModel": "not a CAM: an input-space gradient with modified ReLU "
    "backward passes, no activation map and no channel weights (Guided GradCAM is its product "
    "with GradCAM).",
    "RefineCAM": "a meta-method that multiplies the CAMs of several target layers; with the one "
    "target layer of the paper it is its base method (GradCAM++).",
    "SESS": "a meta-method that runs a base CAM on sliding windows of rescaled copies of the "
    "image; the windows move the wall, whose geometry holds only for the 224x224 image as is.",
    "DeepFeatureFactorization": "not a class saliency map: a non-negative matrix factorization "
    "of the activations into several 'concept' maps.",
    "AblationCAM (multilayer)": "ablation_cam_multilayer.py is an experimental, unexported "
    "variant of AblationCAM for several layers.",
    "sobel_cam": "an edge detector on the image (a visual baseline), not a map of the model.",
    "aug_smooth / eigen_smooth": "options that smooth any method (test-time augmentation, or a "
    "principal-component projection); they change the methods, so they are off, as in the paper.",
}

#: Options each method accepts (through ``options={"opticam": {...}}`` or ``**options``).
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {
    "scorecam": ("chunk", "visible_rows"),
    "ablationcam": ("chunk",),
    "kpcacam": ("kernel", "gamma"),
    "fem": ("k",),
    "randomcam": ("seed",),
    "finercam": ("alpha", "n_compare"),
    "opticam": ("iterations", "lr", "stop"),
}

_ALIASES = {
    "gradcamplusplus": "gradcampp",
    "gradcam++": "gradcampp",
    "gradcamelementwise": "gradcamelementwise",
    "gradcamew": "gradcamelementwise",
    "kpca": "kpcacam",
    "optcam": "opticam",
    "ablation": "ablationcam",
    "score": "scorecam",
    "random": "randomcam",
    "fullgradcam": "fullgrad",
    "finer": "finercam",
    "shapley": "shapleycam",
    "segeigen": "segeigencam",
}


def _normalize_name(name: str) -> str:
    text = str(name).strip().lower().replace("++", "pp")
    return "".join(ch for ch in text if ch.isalnum())


def get_method(name: str | CamMethod) -> CamMethod:
    """The :class:`CamMethod` called ``name`` (a key, a display name, or a pytorch-grad-cam
    class name: ``"GradCAM++"``, ``"GradCAMPlusPlus"``, ``"gradcampp"`` all work).

    Raises:
        ValueError: for an unknown name (lists the known ones) or a left-out one (says why).
    """
    if isinstance(name, CamMethod):
        return name
    if not isinstance(name, str):
        raise TypeError(
            f"method must be a string such as 'gradcam', got {type(name).__name__}."
        )
    key = _normalize_name(name)
    key = _ALIASES.get(key, key)
    if key in METHODS:
        return METHODS[key]
    for m in _METHOD_LIST:
        if m.library and _normalize_name(m.library) == key:
            return m
    for left, why in LEFT_OUT.items():
        if _normalize_name(left.split(" ")[0]) == key:
            raise ValueError(f"{name!r} is not in the registry on purpose: {why}")
    raise ValueError(
        f"Unknown CAM method {name!r}; expected one of {list(METHODS)} "
        "(display names such as 'GradCAM++' or 'Opti-CAM' work too)."
    )


def method_keys(methods: Sequence[str] | str | None = None) -> list[str]:
    """Registry keys of ``methods`` (``None`` or ``"all"``: every method; ``"paper"``: the
    paper's eight), in the registry's order, without duplicates."""
    if methods is None or (isinstance(methods, str) and methods.lower() == "all"):
        return list(METHODS)
    if isinstance(methods, str) and methods.lower() == "paper":
        return list(PAPER_METHODS)
    if isinstance(methods, (str, CamMethod)):
        methods = [methods]
    keys = [get_method(m).key for m in methods]
    if not keys:
        raise ValueError("methods is empty; pass at least one method, or None for all.")
    return [k for k in METHODS if k in set(keys)]
