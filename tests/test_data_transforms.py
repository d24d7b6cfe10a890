"""Tests of helpers.data.transforms: ImageNet normalization and its inverse."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import Normalize

from helpers import data as D


def test_normalize_matches_torchvision_and_round_trips():
    x = torch.rand(2, 3, 8, 8)
    ref = Normalize(D.IMAGENET_MEAN, D.IMAGENET_STD)(x)
    assert torch.allclose(D.normalize(x), ref, atol=1e-6)
    assert torch.allclose(D.denormalize(D.normalize(x)), x, atol=1e-6)
    assert torch.allclose(D.denormalize(D.normalize(x[0])), x[0], atol=1e-6)
    # values outside [0, 1] are clipped for display
    assert (
        float(D.denormalize(torch.full((3, 2, 2), 100.0)).max()) == 1.0
    )  # exact: exact-float


def test_normalize_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="3, H, W"):
        D.normalize(torch.rand(2, 4, 8, 8))
    with pytest.raises(ValueError, match="normalized tensor"):
        D.denormalize(torch.rand(8, 8))


def test_denormalize_against_numbers_by_hand():
    """A normalized 0 is the channel's mean, a normalized 1 the mean plus one standard deviation
    (the paper's ImageNet statistics, added by hand), a very negative one is clipped to 0."""
    z = torch.zeros(3, 1, 3)
    z[:, 0, 1] = 1.0
    z[:, 0, 2] = -100.0
    expected = torch.tensor(
        [
            [0.485, 0.485 + 0.229, 0.0],
            [0.456, 0.456 + 0.224, 0.0],
            [0.406, 0.406 + 0.225, 0.0],
        ]
    )
    assert torch.allclose(D.denormalize(z)[:, 0], expected, atol=1e-6)
    assert D.denormalize(z).dtype == torch.float32
    assert (
        D.denormalize(z.double()).dtype == torch.float64
    )  # float64 in, float64 out (plots)
    assert torch.allclose(
        D.denormalize(z.double())[:, 0], expected.double(), atol=1e-12
    )
