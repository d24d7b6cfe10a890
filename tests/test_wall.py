"""The unseen rows, computed structurally, checked by gradients, by hand and by perturbation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.models import rvgg
from helpers.wall import (
    WallError,
    input_rows_reaching,
    perturbation_check,
    receptive_field,
    unseen_rows,
    unseen_rows_by_gradient,
    unseen_share,
    upsampled_zero_rows,
)

TINY = 1 / 32


def _last_visible_input_row(last_visible_map_row: int) -> int:
    """By hand: a conv5_3 unit at map row r sees input rows [16 r - 90, 16 r + 105]
    (receptive field 196, stride 16, centred on 16 r + 7.5)."""
    return min(223, 16 * last_visible_map_row + 105)


@pytest.mark.parametrize("width", [1 / 32, 1 / 16, 0.25])
def test_unseen_rows_of_rvgg(width):
    rows = unseen_rows(rvgg(num_classes=4, width=width))
    assert rows.tolist() == list(range(170, 224))
    assert len(rows) == 54 and unseen_share(rows) == pytest.approx(54 / 224)


def test_receptive_field_by_hand():
    rf = receptive_field(rvgg(4, width=TINY).features)
    # each 3x3 conv adds 2 x (product of the strides before it), each 2x2 pool adds 1 x that
    # product; the product doubles after each of the 4 pools
    by_hand = 1 + 2 * (2 * 1 + 2 * 2 + 3 * 4 + 3 * 8 + 3 * 16) + (1 + 2 + 4 + 8)
    assert (rf.size, rf.stride) == (by_hand, 16) == (196, 16)


@pytest.mark.parametrize("wall_rows", [0, 3, 6, 9, 12, 14])
def test_unseen_rows_for_other_wall_heights(wall_rows):
    rows = unseen_rows(rvgg(num_classes=4, width=TINY, wall_rows=wall_rows))
    if wall_rows == 14:
        expected = list(range(224))
    else:
        expected = list(range(_last_visible_input_row(13 - wall_rows) + 1, 224))
    assert rows.tolist() == expected


def test_unseen_rows_agree_with_input_gradient_support():
    torch.manual_seed(0)
    model = rvgg(num_classes=4, width=TINY)
    by_grad = unseen_rows_by_gradient(model, n_inputs=2, seed=1)
    assert by_grad.tolist() == unseen_rows(model).tolist()
    base = rvgg(num_classes=4, width=TINY, wall_rows=0)
    assert (
        unseen_rows_by_gradient(base, n_inputs=1).tolist()
        == []
        == unseen_rows(base).tolist()
    )


@pytest.mark.parametrize("fill", ["noise", "swap", 0.0, 1e6])
def test_perturbation_of_unseen_rows_leaves_logits_bit_identical(fill):
    torch.manual_seed(0)
    model = rvgg(num_classes=4, width=TINY)
    x = torch.randn(3, 3, 224, 224)
    result = perturbation_check(model, x, fill=fill)
    assert result["identical"] == 1.0 and result["max_abs_diff"] == 0.0  # exact: wall
    assert result["max_abs_input_change"] > 0


def test_perturbation_of_the_last_visible_row_changes_logits():
    torch.manual_seed(0)
    model = rvgg(num_classes=4, width=TINY)
    x = torch.randn(2, 3, 224, 224)
    result = perturbation_check(model, x, rows=[169], fill="noise")
    assert result["identical"] == 0.0 and result["max_abs_diff"] > 0  # exact: integer


def test_input_rows_reaching_small_stack_by_hand():
    layers = [nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    # map row 0 of the pooled output <- conv rows 0,1 <- input rows 0..2
    assert input_rows_reaching(layers, [0], image_size=8).tolist() == [0, 1, 2]
    assert input_rows_reaching(layers, [3], image_size=8).tolist() == [5, 6, 7]
    with pytest.raises(ValueError, match="outside"):
        input_rows_reaching(layers, [4], image_size=8)
    with pytest.raises(ValueError, match="Cannot do receptive-field"):
        input_rows_reaching([nn.Upsample(scale_factor=2)], [0], image_size=8)


def test_upsampled_zero_rows_match_cv2_and_torch():
    rows = upsampled_zero_rows(range(5, 14), map_size=14, image_size=224)
    assert rows.tolist() == list(range(88, 224))
    assert len(rows) / 224 == pytest.approx(0.607, abs=1e-3)
    rng = np.random.default_rng(0)
    for zero_rows in [range(5, 14), range(9, 14), [0, 1, 2], range(14)]:
        cam = rng.uniform(0.1, 1.0, size=(14, 14)).astype(np.float32)
        cam[list(zero_rows)] = 0
        by_cv2 = np.flatnonzero((cv2.resize(cam, (224, 224)) == 0).all(axis=1))
        by_torch = np.flatnonzero(
            (
                F.interpolate(
                    torch.from_numpy(cam)[None, None],
                    size=(224, 224),
                    mode="bilinear",
                    align_corners=False,
                )[0, 0]
                == 0
            )
            .all(dim=1)
            .numpy()
        )
        expected = upsampled_zero_rows(zero_rows)
        assert by_cv2.tolist() == expected.tolist() == by_torch.tolist()


def test_bad_image_size():
    with pytest.raises(ValueError, match="224x224"):
        unseen_rows(rvgg(4, width=TINY), image_size=256)


def test_an_open_wall_is_refused_on_loading_as_a_value_error():
    torch.manual_seed(0)
    model = rvgg(num_classes=4, width=TINY)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)  # a walled model's own state: fine
    mask = model.classifier[0].mask
    hidden = torch.nonzero(mask == 0).flatten()
    for value in (
        1e-3,
        float("nan"),
    ):  # a NaN under the wall is not a closed wall either
        opened = dict(
            state, **{"classifier.0.weight": state["classifier.0.weight"].clone()}
        )
        opened["classifier.0.weight"][2, hidden[7]] = value
        with pytest.raises(
            WallError, match=r"1 of the \d+ weights under the wall are non-zero"
        ) as info:
            model.load_state_dict(opened)
        assert isinstance(info.value, ValueError) and str(info.value).startswith(
            "classifier.0.weight:"
        )
    # a baseline's state is refused by a walled model, and a baseline has no wall to check
    baseline = rvgg(num_classes=4, width=TINY, wall_rows=0)
    with pytest.raises(WallError, match="non-zero"):
        model.load_state_dict(baseline.state_dict())
    baseline.load_state_dict(baseline.state_dict())
