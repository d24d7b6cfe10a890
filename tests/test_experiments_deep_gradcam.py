"""Question 5 of chapter 07 (:mod:`helpers.experiments.deep_gradcam`): GradCAM of theory models
with more than one dense layer, against autograd on explicit models and against the theory
chapter's closed form and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from helpers import experiments as E
from helpers import theory as T
from helpers.models import WalledLinear, wall_mask


class _DeepTheory(nn.Module):
    """An explicit deep theory model (conv 2x2 -> ReLU [target] -> max-pool -> walled dense ->
    (ReLU -> dense)*), no biases, for autograd GradCAM."""

    def __init__(self, conv_w, W1, layers):
        super().__init__()
        V = conv_w.shape[0]
        self.conv = nn.Conv2d(1, V, 2, bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.first = WalledLinear(V * 196, W1.shape[0], wall_mask(V, 14, 7), bias=False)
        self.rest = nn.ModuleList(
            nn.Linear(W.shape[1], W.shape[0], bias=False) for W in layers
        )
        with torch.no_grad():
            self.conv.weight.copy_(conv_w.view(V, 1, 2, 2))
            self.first.weight.copy_(W1 * self.first.mask)
            for lin, W in zip(self.rest, layers):
                lin.weight.copy_(W)

    @property
    def target_layer(self):
        return self.relu

    def forward(self, x):
        h = self.first(torch.flatten(self.pool(self.relu(self.conv(x))), 1))
        for lin in self.rest:
            h = lin(torch.relu(h))
        return h


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("target", [1, "top"])
def test_reduced_gradcam_equals_autograd(depth, target):
    gen = torch.Generator().manual_seed(depth)
    V, H, C = 6, 5, 4
    image = torch.rand(1, 1, 29, 29, generator=gen)
    conv_w = torch.randn(V, 4, generator=gen)
    widths = [C] if depth == 1 else [H] * (depth - 1) + [C]
    W1 = torch.randn(widths[0], V * 196, generator=gen)
    layers = [
        torch.randn(widths[i + 1], widths[i], generator=gen) for i in range(depth - 1)
    ]
    model = _DeepTheory(conv_w, W1, layers)
    parts = T.gradcam_parts(model, image, None if target == "top" else target)
    # the reduced quantities, from the explicit first layer
    M = wall_mask(V, 14, 7).view(V, 196)  # visible pooled positions of each channel
    W1m = W1 * wall_mask(V, 14, 7)
    Q = torch.stack(
        [W1m.view(-1, V, 196)[:, v, :] @ M[v] for v in range(V)], dim=1
    )  # (H1, V)
    pooled = torch.nn.functional.max_pool2d(torch.relu(model.conv(image)), 2).flatten()
    h1 = W1m @ pooled
    cam, classes = E.deep_gradcam_reduced(
        conv_w[None],
        E.patches(image),
        Q[None],
        h1[None],
        [W[None] for W in layers],
        target,
    )
    assert int(classes[0]) == int(parts["class_index"][0])
    ref = parts["cam"][0].flatten()
    assert torch.allclose(
        cam[0], ref, rtol=1e-4, atol=1e-6 * float(ref.abs().max() + 1)
    )


def test_monte_carlo_depth_one_matches_the_closed_form():
    image = T.digits_29(1, source="sklearn")[0][0]
    res = E.deep_gradcam_monte_carlo(
        image, 1, target=0, filters=16, n_models=800, seed=3, show_progress=False
    )
    closed = T.expected_gradcam(image, filters=16)
    lit = closed > 0.5 * closed.max()
    z = (res["mean"] - closed)[lit] / res["sem"][lit]
    assert np.abs(z).max() < 4.5
    # P[GradCAM(s) > 0] = 1/2 for a fixed class wherever some filter is active
    assert abs(np.mean(res["positive"][lit]) - 0.5) < 0.08


def test_monte_carlo_top_class_matches_theory_autograd_monte_carlo():
    """Top class, depth 1: the exact sampling of (Q, h1) against helpers.theory's Monte Carlo of
    real TheoryCNN models with autograd (an independent computation)."""
    image = T.digits_29(1, source="sklearn", seed=2)[0][0]
    ours = E.deep_gradcam_monte_carlo(
        image, 1, target="top", filters=16, n_models=800, seed=4, show_progress=False
    )
    theirs = T.monte_carlo_gradcam(
        image, filters=16, n_models=800, target="top", seed=5, batch=200
    )
    lit = T.patch_norms(image) > 0.5 * T.patch_norms(image).max()
    a, b = ours["mean"][lit].mean(), theirs["mean"][lit].mean()
    se = math.hypot(ours["sem"][lit].mean(), theirs["sem"][lit].mean())
    assert abs(a - b) < 4 * se
    # the top class is biased towards positive scores (unlike a fixed class)
    assert ours["positive"][lit].mean() > 0.6


def test_twin_digit_image_has_identical_patches_on_both_sides():
    image = E.twin_digit_image(T.digits_29(1, source="sklearn")[0][0])
    norms = T.patch_norms(image)
    assert image.shape == (1, 1, 29, 29)
    assert (
        np.array_equal(norms[:14], norms[14:]) and norms.max() > 0
    )  # exact: exact-float
    p = E.patches(image).view(28, 28, 4)
    assert torch.equal(p[:14], p[14:])  # exact: exact-float
    res = E.deep_gradcam_monte_carlo(
        image, 2, target="top", filters=8, hidden=8, n_models=20, show_progress=False
    )
    # identical patches -> identical GradCAM, every draw (to rounding: the two halves may be
    # summed by other vector lanes of a kernel, TESTING.md)
    assert res["half_max_abs_diff"] <= 1e-6


def test_monte_carlo_bad_input():
    image = torch.zeros(1, 1, 29, 29)
    with pytest.raises(ValueError, match="depth"):
        E.deep_gradcam_monte_carlo(image, 0)
    with pytest.raises(ValueError, match="target"):
        E.deep_gradcam_monte_carlo(image, 1, target=10)
    with pytest.raises(ValueError, match="28x28"):
        E.twin_digit_image(torch.zeros(10, 10))
