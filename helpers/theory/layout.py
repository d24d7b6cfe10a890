"""The theory model's layout: its sizes (29 -> 28 -> 14), the rows behind its wall, and the
checks of the arguments every other module of :mod:`helpers.theory` takes (a model, ``V``,
``hidden_rows``, one 29x29 image)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..models import TheoryCNN
from ..receptive_field import input_rows_reaching


#: Side of the theory model's input image, of its 28x28 ReLU maps (the GradCAM target layer)
#: and of the pooled 14x14 maps the dense layer reads.
INPUT_SIZE, MAP_SIZE, POOLED_SIZE = 29, 28, 14
#: Pooled rows behind the wall (the lower half of 14).
HIDDEN_ROWS = 7

# --------------------------------------------------------------------------------------------
# Geometry: which rows are behind the wall
# --------------------------------------------------------------------------------------------


def check_theory_model(model: nn.Module) -> None:
    """Raise ``TypeError`` unless ``model`` is a :class:`~helpers.models.TheoryCNN`."""
    if not isinstance(model, TheoryCNN):
        raise TypeError(
            f"expected a helpers.models.TheoryCNN, got {type(model).__name__}."
        )


def visible_pooled_rows(model: TheoryCNN) -> np.ndarray:
    """Rows of the 14x14 pooled map that the dense layer reads (any unmasked weight): 0..6."""
    check_theory_model(model)
    mask = model.dense.mask.view(model.filters, POOLED_SIZE, POOLED_SIZE)
    return np.flatnonzero((mask != 0).any(dim=(0, 2)).cpu().numpy())


def hidden_map_rows(model: TheoryCNN) -> np.ndarray:
    """Rows of the 28x28 GradCAM map (the ReLU output) that no visible pooled row reads: 14..27.

    Receptive-field arithmetic through the 2x2 max-pool (pooled row ``i`` reads map rows ``2i``
    and ``2i+1``).
    """
    seen = input_rows_reaching(
        [model.pool], visible_pooled_rows(model), image_size=MAP_SIZE
    )
    return np.setdiff1d(np.arange(MAP_SIZE), seen)


def theory_unseen_rows(
    model: TheoryCNN | None = None, hidden_rows: int = HIDDEN_ROWS
) -> np.ndarray:
    """The input rows (0-indexed, of 29) that the model's output cannot depend on: 15..28.

    Structural: the visible pooled rows (0..6) are pushed back through the 2x2 max-pool (map
    rows 0..13) and the 2x2 convolution (map row ``r`` reads input rows ``r`` and ``r+1``:
    input rows 0..14). The other 14 rows are unseen. ``model=None`` builds a small
    :class:`TheoryCNN` with ``hidden_rows`` to read its geometry.
    """
    if model is None:
        if (
            not isinstance(hidden_rows, (int, np.integer))
            or not 0 <= hidden_rows <= POOLED_SIZE
        ):
            raise ValueError(
                f"hidden_rows must be an integer in 0..{POOLED_SIZE}, got {hidden_rows!r}."
            )
        model = TheoryCNN(
            filters=1,
            num_classes=1,
            hidden_rows=int(hidden_rows),
            generator=torch.Generator().manual_seed(0),
        )
    check_theory_model(model)
    seen = input_rows_reaching(
        [model.conv, model.relu, model.pool],
        visible_pooled_rows(model),
        image_size=INPUT_SIZE,
    )
    return np.setdiff1d(np.arange(INPUT_SIZE), seen)


# --------------------------------------------------------------------------------------------
# The arguments the theory's functions take
# --------------------------------------------------------------------------------------------


def check_filters(filters) -> int:
    """``V``, the number of convolution filters, as an ``int >= 1`` (``ValueError`` otherwise)."""
    if (
        isinstance(filters, bool)
        or not isinstance(filters, (int, np.integer))
        or filters < 1
    ):
        raise ValueError(
            f"the number of filters V must be an integer >= 1, got {filters!r}."
        )
    return int(filters)


def check_hidden_rows(hidden_rows) -> int:
    """The pooled rows behind the wall, as an ``int`` in ``0..14`` (``ValueError`` otherwise)."""
    if (
        isinstance(hidden_rows, bool)
        or not isinstance(hidden_rows, (int, np.integer))
        or not 0 <= hidden_rows <= POOLED_SIZE
    ):
        raise ValueError(
            f"hidden_rows must be an integer in 0..{POOLED_SIZE}, got {hidden_rows!r}."
        )
    return int(hidden_rows)


def as_image(image) -> torch.Tensor:
    """A ``(1, 1, 29, 29)`` float32 tensor from an image of shape (29, 29), (1, 29, 29) or (1, 1, 29, 29)."""
    if isinstance(image, np.ndarray):
        t = torch.from_numpy(np.asarray(image, dtype=np.float32))
    elif isinstance(image, torch.Tensor):
        t = image.detach().to("cpu", torch.float32)
    else:
        raise TypeError(
            f"expected a numpy array or a torch tensor, got {type(image).__name__}."
        )
    shape = tuple(t.shape)
    if shape not in (
        (INPUT_SIZE, INPUT_SIZE),
        (1, INPUT_SIZE, INPUT_SIZE),
        (1, 1, INPUT_SIZE, INPUT_SIZE),
    ):
        hint = (
            " Pad a 28x28 MNIST-sized digit with helpers.theory.pad_to_29 (one row on top, one "
            "column on the right)."
            if shape[-2:] == (28, 28)
            else ""
        )
        raise ValueError(
            f"expected one 29x29 image (shape (29, 29), (1, 29, 29) or (1, 1, 29, 29)), "
            f"got shape {shape}.{hint}"
        )
    if not torch.isfinite(t).all():
        raise ValueError("the image contains NaN or infinite values.")
    return t.reshape(1, 1, INPUT_SIZE, INPUT_SIZE)
