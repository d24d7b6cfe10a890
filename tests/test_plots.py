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


def test_cam_grid_font_size_value_place_and_colour_key():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = torch.zeros(3, 3, 224, 224)
    maps = {"A": np.zeros((3, 224, 224)), "B": np.ones((3, 224, 224))}
    mus = {"A": np.array([0.1, 0.2, 0.3]), "B": np.array([0.4, 0.5, 0.6])}
    fig, ax = plots.cam_grid(
        images, maps, values=mus, fontsize=11, title="t", colorbar=True
    )
    assert [t.get_text() for t in ax.get_yticklabels()] == ["image", "A", "B"]
    assert {t.get_fontsize() for t in ax.get_yticklabels()} == {11.0}
    assert [t.get_text() for t in ax.texts] == [
        "0.10",
        "0.20",
        "0.30",
        "0.40",
        "0.50",
        "0.60",
    ]
    assert {t.get_fontsize() for t in ax.texts} == {
        11.0
    } and ax.title.get_fontsize() == 12
    # tiles of 112 pixels (step 2) and gaps of 3: row i's tiles start at i * 115; "top" puts
    # each value 2 pixels below its tile's top, "bottom" 3 pixels above its bottom
    assert [t.get_position()[1] for t in ax.texts[:3]] == [117, 117, 117]
    assert len(fig.axes) == 2  # the grid and its colour key
    plt.close(fig)
    fig, ax = plots.cam_grid(images, maps, values=mus, values_at="bottom")
    assert [t.get_position()[1] for t in ax.texts[3:]] == [2 * 115 + 109] * 3
    assert len(fig.axes) == 1 and {t.get_fontsize() for t in ax.texts} == {9.0}
    plt.close(fig)
    try:
        plots.cam_grid(images, maps, values_at="middle")
    except ValueError as err:
        assert "values_at" in str(err)
    else:
        raise AssertionError("values_at='middle' was accepted")
