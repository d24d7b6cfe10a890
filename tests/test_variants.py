"""The wall's variants: conv-level walls (two placements) and a walled ResNet; their unseen rows
checked by hand, by gradients and by perturbation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import wall
from helpers.models import RVGG, rvgg
from helpers.models import (
    PLACEMENTS,
    ConvWalledRVGG,
    RowWall,
    WalledResNet,
    conv_walled_from,
    conv_walled_rvgg,
    map_row_coverage,
    walled_resnet,
)

TINY = 1 / 32


@pytest.fixture(scope="module")
def dense_walled():
    torch.manual_seed(0)
    model = rvgg(num_classes=4, width=TINY).eval()
    with (
        torch.no_grad()
    ):  # non-zero biases, so that activations below the wall are not trivial
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.bias.normal_(0.0, 0.1)
    return model


@pytest.fixture(scope="module")
def twins(dense_walled):
    # building an rVGG costs about a second (torchvision allocates VGG16's default classifier
    # first), so the twins are built once
    return {p: conv_walled_from(dense_walled, p) for p in PLACEMENTS}


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


def test_row_wall_zeroes_exactly_and_blocks_the_gradient():
    x = torch.randn(2, 3, 14, 14, requires_grad=True)
    y = RowWall(5)(x)
    assert torch.equal(y[:, :, 5:], torch.zeros_like(y[:, :, 5:]))  # exact: wall
    assert torch.equal(y[:, :, :5], x[:, :, :5])  # exact: exact-float
    (g,) = torch.autograd.grad((y * torch.randn_like(y)).sum(), x)
    assert (
        torch.count_nonzero(g[:, :, 5:]) == 0 and torch.count_nonzero(g[:, :, :5]) > 0
    )
    with pytest.raises(ValueError, match="non-negative"):
        RowWall(-1)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        RowWall(2)(torch.zeros(3, 4))


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_conv_walled_twin_computes_the_same_function(
    dense_walled, twins, images, placement
):
    twin = twins[placement]
    with torch.no_grad():
        a, b = dense_walled(images), twin(images)
    # the dense layer reads W * A with W = 0 under the wall, the twin reads W * 0 there
    assert torch.allclose(a, b, rtol=0, atol=1e-6)
    assert isinstance(twin, ConvWalledRVGG) and twin.wall_rows == 9


def _target_output(model, x):
    store = {}
    h = model.target_layer.register_forward_hook(
        lambda _m, _i, o: store.__setitem__("a", o.detach())
    )
    with torch.no_grad():
        model(x)
    h.remove()
    return store["a"]


def test_placement_decides_what_the_target_layer_shows(dense_walled, twins, images):
    after = _target_output(twins["after"], images)
    at = _target_output(twins["at"], images)
    dense = _target_output(dense_walled, images)
    # exact: repeat (TESTING.md)
    assert torch.equal(
        after, dense
    )  # after: CAM methods see the dense model's activations
    assert torch.count_nonzero(after[:, :, 5:]) > 0
    assert torch.count_nonzero(at[:, :, 5:]) == 0  # at: exactly zero behind the wall
    assert torch.equal(at[:, :, :5], dense[:, :, :5])  # exact: wall


def test_conv_wall_trains_like_the_dense_wall(dense_walled, twins, images):
    """One training step's gradient on every convolution is the same for the dense wall and the
    conv wall at the target layer: training either from the same start gives the same features."""
    twin = twins["at"]
    y = torch.tensor([0, 3])
    grads = []
    for model in (dense_walled, twin):
        model.zero_grad()
        F.cross_entropy(model(images), y).backward()
        grads.append(
            [
                m.weight.grad.clone()
                for m in model.features.modules()
                if isinstance(m, torch.nn.Conv2d)
            ]
        )
        model.zero_grad()
    for ga, gb in zip(*grads):
        assert torch.allclose(ga, gb, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_conv_walled_unseen_rows_by_hand_gradient_and_perturbation(
    twins, images, placement
):
    twin = twins[placement]
    rows = wall.unseen_rows(twin)
    # by hand: conv5_3 row r sees input rows up to 16 r + 105; the last visible row is 4
    assert rows.tolist() == list(range(16 * 4 + 105 + 1, 224))
    assert np.array_equal(
        wall.unseen_rows_by_gradient(twin, n_inputs=1), rows
    )  # exact: integer
    check = wall.perturbation_check(twin, images, rows=rows)
    assert (
        check["identical"] == 1.0 and check["max_abs_input_change"] > 1
    )  # exact: wall
    assert wall.visible_map_rows(twin).tolist() == [0, 1, 2, 3, 4]


def test_conv_walled_bad_input(twins):
    with pytest.raises(ValueError, match="placement"):
        conv_walled_rvgg(num_classes=3, width=TINY, placement="before")
    with pytest.raises(ValueError, match="wall_rows >= 1"):
        conv_walled_rvgg(num_classes=3, width=TINY, wall_rows=0)
    with pytest.raises(ValueError, match="wall_rows"):
        conv_walled_rvgg(num_classes=3, width=TINY, wall_rows=15)
    baseline = copy.deepcopy(
        twins["after"]
    )  # an RVGG whose classifier[0] is a plain Linear
    baseline.__class__ = RVGG
    baseline.wall_rows = 0
    with pytest.raises(TypeError, match="no wall"):
        conv_walled_from(baseline)
    with pytest.raises(TypeError, match="dense-walled"):
        conv_walled_from(walled_resnet(num_classes=3, width=0.25))
    with pytest.raises(TypeError, match="dense-walled"):
        conv_walled_from(twins["at"])
    with pytest.raises(ValueError, match="224"):
        twins["at"].unseen_rows(image_size=200)


# ---------------------------------------------------------------------------------------------
# The walled ResNet
# ---------------------------------------------------------------------------------------------


def test_walled_resnet_unseen_rows_by_hand():
    """Walk the largest reached row back by hand from the last visible map row (8 for
    wall_rows=5). A block of stride s: output row r reads conv2 rows r-1..r+1, which read input
    rows s(r-1)-1 .. s(r+1)+1 through conv1 (3x3, stride s, padding 1); the shortcut (average
    pool s, then 1x1) reads s r .. s r + s - 1, inside that range."""
    r = 8
    r = 2 * (r + 1) + 1  # layer3 (stride 2): 19
    r = 2 * (r + 1) + 1  # layer2 (stride 2): 41
    r = r + 2  # layer1 (stride 1, two 3x3 convs): 43
    r = 2 * r + 1  # max-pool 2x2: 87
    r = 2 * r + 1  # stem conv 3x3, stride 2, padding 1: 175
    model = walled_resnet(num_classes=3, width=0.25, wall_rows=5)
    assert wall.unseen_rows(model).tolist() == list(range(r + 1, 224))
    assert len(wall.unseen_rows(model)) == 48


@pytest.mark.parametrize("wall_rows", [0, 3, 9, 13])
def test_walled_resnet_unseen_rows_match_the_gradient_support(wall_rows):
    torch.manual_seed(wall_rows)
    model = walled_resnet(num_classes=3, width=0.25, wall_rows=wall_rows).eval()
    # exact: integer (TESTING.md)
    assert np.array_equal(
        wall.unseen_rows(model),
        wall.unseen_rows_by_gradient(model, n_inputs=1, seed=wall_rows),
    )


def test_walled_resnet_perturbation_eval_and_batch_norm_in_training(images):
    torch.manual_seed(0)
    model = walled_resnet(num_classes=3, width=0.25, wall_rows=5)
    rows = wall.unseen_rows(model)
    assert (
        wall.perturbation_check(model.eval(), images, rows=rows)["identical"] == 1.0
    )  # exact: wall
    # in training mode batch norm normalizes with statistics over *all* rows: the hidden rows
    # then reach the logits (the wall is exact in eval mode only)
    model.train()
    changed = images.clone()
    changed[:, :, rows] = 10 * torch.randn_like(changed[:, :, rows])
    with torch.no_grad():
        assert (model(images) - model(changed)).abs().max() > 1e-4
    model.eval()


def test_walled_resnet_head_and_shapes(images):
    torch.manual_seed(0)
    model = walled_resnet(num_classes=3, width=0.25, wall_rows=5).eval()
    with torch.no_grad():
        a = model.features(images)
        logits = model(images)
    assert a.shape[1:] == (model.map_channels, 14, 14)
    by_hand = model.fc(a[:, :, :9, :].reshape(2, model.map_channels, -1).mean(-1))
    assert torch.allclose(logits, by_hand, atol=1e-6)
    assert _target_output(model, images).shape == a.shape
    assert model.visible_map_rows().tolist() == list(range(9))


def test_walled_resnet_bad_input():
    with pytest.raises(ValueError, match="whole map"):
        walled_resnet(wall_rows=14)
    with pytest.raises(ValueError, match="width"):
        walled_resnet(width=0)
    with pytest.raises(ValueError, match="num_classes"):
        WalledResNet(num_classes=0)
    with pytest.raises(ValueError, match="224"):
        WalledResNet(image_size=128)
    with pytest.raises(ValueError, match="channels"):
        walled_resnet(num_classes=3, width=0.25)(torch.zeros(1, 1, 224, 224))


def test_map_row_coverage_by_hand_and_against_unseen_rows(dense_walled):
    cov = map_row_coverage(dense_walled)
    for r in range(
        14
    ):  # rVGG: receptive field [16 r - 90, 16 r + 105], clipped to the image
        assert np.flatnonzero(cov[r]).tolist() == list(
            range(max(0, 16 * r - 90), min(223, 16 * r + 105) + 1)
        )
    model = walled_resnet(num_classes=3, width=0.25, wall_rows=5)
    cov = map_row_coverage(model)
    seen = np.flatnonzero(cov[model.visible_map_rows()].any(axis=0))
    assert np.array_equal(
        np.setdiff1d(np.arange(224), seen), wall.unseen_rows(model)
    )  # exact: integer
    with pytest.raises(TypeError, match="rVGG and WalledResNet"):
        map_row_coverage(torch.nn.Linear(2, 2))
