"""Tests of helpers.plots: what the figures show, checked on the arrays they are drawn from."""

from __future__ import annotations

import numpy as np
import torch

from helpers import data, plots


def test_to_display_undoes_the_normalization_with_helpers_data():
    """The one denormalization (helpers.data.denormalize) in float64, computed here by hand with
    numpy: ``x * std + mean`` per channel, clipped, in any layout."""
    x = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0)) * 2
    by_hand = np.clip(
        x.numpy().transpose(1, 2, 0) * np.array(data.IMAGENET_STD)
        + np.array(data.IMAGENET_MEAN),
        0,
        1,
    )
    shown = plots.to_display(x, normalized=True)
    assert shown.shape == (5, 4, 3) and shown.dtype == np.float64
    np.testing.assert_allclose(shown, by_hand, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        plots.to_display(x.numpy().transpose(1, 2, 0), normalized=True),
        by_hand,
        rtol=0,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        plots.to_display(x.clamp(0, 1)),
        x.clamp(0, 1).numpy().transpose(1, 2, 0),
        rtol=0,
        atol=1e-7,
    )
