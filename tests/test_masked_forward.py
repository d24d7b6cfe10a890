"""helpers.masked_forward: the rows a walled rVGG's logits depend on, worked out by receptive-field
arithmetic, match the paper's wall (row 170); masked images computed on those rows give the full
forward pass's logits; masks below the wall score as a black image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import VGG
from torchvision.models.vgg import make_layers

from helpers import cams
from helpers import wall
from helpers.masked_forward import (
    VisibleRowsForward,
    VisibleRowsNet,
    rows_needed,
    support_rows,
    supports_model,
)
from helpers.models import rvgg


def _with_biases(m: nn.Module) -> nn.Module:
    """Non-zero biases everywhere, so that the black image's features are far from zero and a
    shortcut that ignored them would show."""
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(mod.bias, 0.0, 0.1)
    return m.eval()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return _with_biases(rvgg(10, width=1 / 32))


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    "wall_rows, expected_rows", [(9, 170), (0, 224), (7, 202), (13, 106)]
)
def test_input_rows_follow_the_receptive_field(wall_rows, expected_rows):
    # the map row r = 13 - wall_rows is the last one read; a conv5_3 unit's receptive field
    # reaches input row 16 r + 7.5 + 98 (stride 16, size 196, book/paper.md), so the first input row
    # the logits never see is 16 r + 106, capped at 224: 170 for the paper's 9 hidden rows
    m = rvgg(10, width=1 / 32, wall_rows=wall_rows).eval()
    fast = VisibleRowsForward(m, (224, 224))
    assert fast.read_rows == 14 - wall_rows
    last = 13 - wall_rows
    assert fast.input_rows == min(224, 16 * last + 106) == expected_rows
    assert fast.rows == min(224, -(-expected_rows // 16) * 16)


def test_the_logits_do_not_change_when_the_unseen_rows_do(images):
    # the rows input_rows.. are truly unseen and the row above them is seen: a check of the
    # receptive-field arithmetic on the model itself, independent of VisibleRowsForward
    torch.manual_seed(0)
    model = rvgg(10, width=1 / 32).eval()  # torchvision's init: no dead network
    fast = VisibleRowsForward(model, (224, 224))
    noise = 5 * torch.randn(images.shape, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        base = model(images)
        for first, seen in ((fast.input_rows, False), (fast.input_rows - 1, True)):
            changed = images.clone()
            changed[:, :, first:] = noise[:, :, first:]
            diff = float((model(changed) - base).abs().max())
            assert (diff > 0) == seen, (first, diff)


@pytest.mark.parametrize("wall_rows", [9, 0])
def test_logits_equal_the_full_forward_pass(images, wall_rows):
    torch.manual_seed(1)
    m = _with_biases(rvgg(10, width=1 / 32, wall_rows=wall_rows))
    masks = torch.rand(5, 1, 224, 224, generator=torch.Generator().manual_seed(2))
    masks[1, :, :100] = 0.0  # support starting low
    img = torch.tensor([0, 1, 2, 0, 1])
    fast = VisibleRowsForward(m, (224, 224))
    with torch.no_grad():
        expected = m(images[img] * masks)
        got = fast(images, masks, img)
    assert float(expected.abs().max()) > 1e-3  # not trivially zero
    assert float((got - expected).abs().max()) <= 1e-5 * max(
        1.0, float(expected.abs().max())
    )
    assert fast.share == (176 / 224 if wall_rows else 1.0)


def test_masks_below_the_wall_score_as_a_black_image(images):
    torch.manual_seed(0)
    model = rvgg(10, width=1 / 32).eval()
    fast = VisibleRowsForward(model, (224, 224))
    below = torch.zeros(2, 1, 224, 224)
    below[0, 0, 170:200, 40:90] = 1.0  # entirely below row 170: unseen
    below[1, 0, 169:200, 40:90] = 1.0  # one row above it: seen
    assert fast.unread(below).tolist() == [True, False]
    with torch.no_grad():
        np.testing.assert_allclose(
            model(images[:1] * below[:1])[0], fast.zero_logits, atol=1e-6
        )
        np.testing.assert_allclose(
            fast.zero_logits, model(torch.zeros(1, 3, 224, 224))[0], atol=1e-6
        )
        assert float((model(images[:1] * below[1:]) - fast.zero_logits).abs().max()) > 0


def test_support_rows_against_a_loop_and_the_rows_agree_with_the_wall_module(model):
    masks = torch.zeros(4, 1, 20, 30)
    masks[0, 0, 3, 7] = 0.5
    masks[1, 0, 12:, :] = 1.0
    masks[3, 0, 0, 29] = 1e-9
    assert support_rows(masks).tolist() == [3, 12, 20, 0]
    fast = VisibleRowsForward(model, (224, 224))
    mask = model.classifier[0].mask.reshape(model.map_channels, 14, 14)
    rows_read = [r for r in range(14) if bool((mask[:, r] != 0).any())]
    assert fast.read_rows == max(rows_read) + 1 == 5
    # the first row the logits do not depend on is the first of helpers.wall's unseen rows
    assert fast.input_rows == int(wall.unseen_rows(model)[0]) == 170


def test_other_networks_are_refused_with_a_clear_error():
    bn_vgg = VGG(
        make_layers([8, "M", 8, "M"], batch_norm=True),
        num_classes=3,
        init_weights=False,
    )
    assert not supports_model(bn_vgg)
    assert not supports_model(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1)))
    with pytest.raises(ValueError, match="3x3"):
        VisibleRowsForward(bn_vgg, (224, 224))
    assert supports_model(rvgg(10, width=1 / 32))


def test_scorecam_maps_are_the_same_with_and_without_the_wall_rows(model, images):
    # a map with its support below the wall, so that some masks are unread
    kw = dict(batch_size=3)
    fast = cams.compute_cams(
        model, images, ["scorecam"], options={"scorecam": {"visible_rows": True}}, **kw
    )
    slow = cams.compute_cams(
        model, images, ["scorecam"], options={"scorecam": {"visible_rows": False}}, **kw
    )
    assert fast["scorecam"].extras["rows_share"] == 176 / 224
    assert slow["scorecam"].extras["rows_share"] == 1.0  # exact: integer
    f, s = fast["scorecam"].extras, slow["scorecam"].extras
    assert f["forward_images"] + f["unread_masks"] == s["forward_images"]
    assert np.abs(fast["scorecam"].scaled - slow["scorecam"].scaled).max() <= 1e-5


@pytest.mark.parametrize("wall_rows", [9, 5, 0])
def test_training_on_the_visible_rows_gives_the_full_passs_logits_and_gradients(
    images, wall_rows
):
    # VisibleRowsNet (the walled model's training pass) against the model itself: same logits and
    # the same gradient for every weight, including the first dense layer's under the wall (zero)
    torch.manual_seed(3)
    m = _with_biases(rvgg(10, width=1 / 32, wall_rows=wall_rows, dropout=0.0)).train()
    net = VisibleRowsNet(m)
    read, needed, rows = rows_needed(m, 224)
    assert net.rows == rows == min(224, -(-needed // 16) * 16)  # exact: integer
    assert net.read_rows == read == 14 - wall_rows  # exact: integer
    x = images.contiguous(memory_format=torch.channels_last)
    full, fast = m(x), net(x)
    scale = float(full.detach().abs().max())
    assert scale > 1e-3
    assert float((fast - full).detach().abs().max()) <= 1e-5 * scale
    params = list(m.parameters())
    g_full = torch.autograd.grad(full.square().sum(), params)
    g_fast = torch.autograd.grad(net(x).square().sum(), params)
    for a, b in zip(g_full, g_fast):
        assert float((a - b).abs().max()) <= 1e-5 * max(float(a.abs().max()), 1e-12)
    with pytest.raises(ValueError, match="224 rows tall"):
        net(images[:, :, :200])
