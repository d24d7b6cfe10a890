"""The authors' released weights: their flat ``nn.Sequential`` layout, renamed to rVGG's, and loaded.

The release (book/paper.md, "The authors' release") holds ``params_vgg16_masked.pt`` and
``params_vgg16_baseline.pt``, state dicts of a flat ``nn.Sequential``: convolutions at
:data:`~helpers.models.rvgg.AUTHORS_CONV_INDICES`, the classifier at
:data:`AUTHORS_CLASSIFIER_INDEX`. :func:`load_authors_weights` reads one (``weights_only=True``),
checks it is what its name says (walled or baseline) and returns an :class:`~helpers.models.RVGG`.
Downloading and checking the files is :mod:`helpers.data.release`'s job.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch

from ..config import MAP_SIZE, WALL_ROWS, read_checkpoint_file
from .rvgg import AUTHORS_CONV_INDICES, RVGG, rvgg
from .wall_layer import wall_weights_zero

__all__ = [
    "AUTHORS_CLASSIFIER_INDEX",
    "AUTHORS_DRIVE_FOLDER",
    "AUTHORS_DRIVE_URL",
    "authors_to_rvgg_state_dict",
    "rvgg_to_authors_state_dict",
    "load_authors_weights",
]

#: Index of the classifier in the authors' flat ``nn.Sequential``.
AUTHORS_CLASSIFIER_INDEX = 31
#: The Google Drive folder of the authors' release (book/paper.md).
AUTHORS_DRIVE_FOLDER = "19LbSZcABEv3E0KB4KzlYQebjo8qDxr1S"
AUTHORS_DRIVE_URL = f"https://drive.google.com/drive/folders/{AUTHORS_DRIVE_FOLDER}"


def authors_to_rvgg_state_dict(
    state: Mapping[str, torch.Tensor],
) -> "OrderedDict[str, torch.Tensor]":
    """Rename a state dict of the authors' flat ``nn.Sequential`` to :class:`RVGG`'s names.

    ``"<i>.weight"`` (``i`` <= 28) becomes ``"features.<i>.weight"``; ``"31.<j>.*"`` becomes
    ``"classifier.<j>.*"``. A ``"module."`` prefix (DataParallel/DDP) is stripped.

    Raises:
        ValueError: on a key that belongs to neither part, naming it.
    """
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state.items():
        k = key[len("module.") :] if key.startswith("module.") else key
        head, _, rest = k.partition(".")
        if not head.isdigit() or not rest:
            raise ValueError(
                f"Unexpected key {key!r} in the authors' state dict: expected '<index>.weight', "
                f"'<index>.bias' or '{AUTHORS_CLASSIFIER_INDEX}.<j>.<param>'. Is this a checkpoint "
                "in the authors' flat nn.Sequential layout?"
            )
        idx = int(head)
        if idx in AUTHORS_CONV_INDICES:
            out[f"features.{idx}.{rest}"] = value
        elif idx == AUTHORS_CLASSIFIER_INDEX:
            out[f"classifier.{rest}"] = value
        else:
            raise ValueError(
                f"Unexpected key {key!r}: index {idx} is neither a convolution "
                f"{AUTHORS_CONV_INDICES} nor the classifier ({AUTHORS_CLASSIFIER_INDEX})."
            )
    return out


def rvgg_to_authors_state_dict(
    state: Mapping[str, torch.Tensor],
) -> "OrderedDict[str, torch.Tensor]":
    """The inverse of :func:`authors_to_rvgg_state_dict` (used by tests and exports)."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state.items():
        if key.startswith("features."):
            out[key[len("features.") :]] = value
        elif key.startswith("classifier."):
            out[f"{AUTHORS_CLASSIFIER_INDEX}.{key[len('classifier.') :]}"] = value
        else:
            raise ValueError(f"Unexpected rVGG key {key!r}.")
    return out


def _authors_remedy() -> str:
    """What to do with a broken or mislabelled file of the authors' release."""
    return (
        "Delete it and download it again: helpers.data.download_authors_release() (needs a "
        f"network; Drive first, else their GitHub repository), or by hand from the authors' Google "
        f"Drive folder {AUTHORS_DRIVE_URL}."
    )


def load_authors_weights(
    source: str | Path | Mapping[str, torch.Tensor],
    walled: bool = True,
    on_open_wall: str = "error",
    map_location: str | torch.device = "cpu",
) -> RVGG:
    """Build rVGG from the authors' checkpoint (``params_vgg16_masked.pt`` or
    ``params_vgg16_baseline.pt``), read with ``torch.load(..., weights_only=True)`` (through
    :func:`helpers.config.read_checkpoint_file`).

    The width is read from the first convolution (64 channels: the paper's full width), the
    number of classes from the last layer; every other tensor must then have rVGG's shape.

    Args:
        source: a path to the checkpoint, or an already loaded state dict.
        walled: build the walled model (``True``) or the baseline (``False``).
        on_open_wall: ``"error"`` refuses a walled checkpoint whose wall weights are not zero;
            ``"repair"`` zeroes them with a warning.
        map_location: passed to ``torch.load``.

    Raises:
        FileNotFoundError: when the file is missing (says where to get it).
        helpers.config.CheckpointError: (a ``ValueError``) when torch cannot read the file
            (truncated, corrupt, not a checkpoint); the message says to delete it and download
            it again.
        ValueError: when the tensors do not have rVGG's shapes, or ``walled=False`` is asked of
            a checkpoint whose wall weights are all exactly zero (the walled model: pass
            ``walled=True``).
        WallError: (a ``ValueError``) when ``walled=True``, ``on_open_wall="error"`` and the checkpoint has
            non-zero weights under the wall (from ``load_state_dict``, "under the wall").
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(
                f"No checkpoint at {path}. Download the authors' params_vgg16_masked.pt / "
                "params_vgg16_baseline.pt (helpers.data.download_authors_release, needs a "
                "network) or copy them there by hand."
            )
        state = read_checkpoint_file(
            path, remedy=_authors_remedy(), map_location=map_location
        )
        if (
            isinstance(state, Mapping)
            and "state_dict" in state
            and isinstance(state["state_dict"], Mapping)
        ):
            state = state["state_dict"]
        what = f"The checkpoint {path}"
    else:
        state = source
        what = "The given state dict"
    if not isinstance(state, Mapping):
        raise ValueError(
            f"expected a state dict (a mapping of tensors), got {type(state).__name__}."
        )
    renamed = authors_to_rvgg_state_dict(state)
    for needed in ("features.0.weight", "classifier.6.weight"):
        if needed not in renamed:
            raise ValueError(
                f"The checkpoint has no {needed!r} tensor; it is not in rVGG's layout "
                "(the authors' flat nn.Sequential)."
            )
    dense = renamed.get("classifier.0.weight")
    if (
        not walled
        and isinstance(dense, torch.Tensor)
        and dense.dim() == 2
        and dense.numel() > 0
        and dense.shape[1] % (MAP_SIZE * MAP_SIZE) == 0
        and wall_weights_zero(dense)
    ):
        raise ValueError(
            f"{what} was asked for as the baseline (walled=False), but every weight of its first "
            f"dense layer ({AUTHORS_CLASSIFIER_INDEX}.0.weight, {tuple(dense.shape)}) that reads the "
            f"lower {WALL_ROWS} rows of the {MAP_SIZE}x{MAP_SIZE} map is exactly zero: it is the "
            "walled model (params_vgg16_masked.pt), not the baseline, whose weights there are "
            "non-zero. Load it with walled=True; if the file is named params_vgg16_baseline.pt, the "
            "two checkpoints were swapped or mislabelled: " + _authors_remedy()
        )
    num_classes = int(renamed["classifier.6.weight"].shape[0])
    # The authors' checkpoints are full width (64 channels first); narrower ones in the same
    # layout (our quick profile exported with rvgg_to_authors_state_dict) load too.
    width = int(renamed["features.0.weight"].shape[0]) / 64
    model = rvgg(
        num_classes=num_classes,
        width=width,
        wall_rows=WALL_ROWS if walled else 0,
        on_open_wall=on_open_wall,
    )
    expected = model.state_dict()
    wrong = [
        f"{k}: checkpoint {tuple(v.shape)} vs rVGG {tuple(expected[k].shape)}"
        for k, v in renamed.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    missing = sorted(set(expected) - set(renamed))
    extra = sorted(set(renamed) - set(expected))
    if wrong or missing or extra:
        raise ValueError(
            "The checkpoint does not have rVGG's layout: "
            + "; ".join(
                filter(
                    None,
                    [
                        ("shape mismatches: " + ", ".join(wrong[:5])) if wrong else "",
                        ("missing: " + ", ".join(missing[:5])) if missing else "",
                        ("unexpected: " + ", ".join(extra[:5])) if extra else "",
                    ],
                )
            )
            + ". Expected the authors' flat nn.Sequential of rVGG (conv5_3 with 256 channels, "
            "first dense layer 50176 -> 4096)."
        )
    result = model.load_state_dict(renamed, strict=True)
    del result
    return model.eval()
