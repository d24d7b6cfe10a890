"""Tests of helpers.train.recipes: rVGG's initializations and training aids, each leaving a plain
rVGG (weights standardized then baked, batch norm folded, frozen convolutions, a tied head)."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import train as T
from helpers.models import rvgg
from tests.train_support import TINY, private_cache  # noqa: F401 (a fixture)


def test_dirac_init_is_a_shallow_network_at_start():
    # With no noise, every convolution after the first is an identity on (repeated) channels,
    # so the feature map is the first convolution's ReLU output max-pooled 16x: check by hand.
    import torch.nn.functional as F

    cfg = T.training_config("quick", width=1 / 16, init="dirac", init_noise=0.0)
    model = T.build_model(cfg).eval()
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        first = F.relu(convs[0](x))
        pooled = F.max_pool2d(first, 16)
        channel = torch.arange(convs[-1].out_channels)
        for conv in reversed(convs[1:]):  # output channel c reads input channel c % cin
            channel = channel % conv.in_channels
        expected = pooled[:, channel]
        got = model.features(x)
    assert torch.allclose(got, expected, atol=1e-6)
    # the first dense layer reads every visible position with the same weights
    w = (
        model.classifier[0]
        .weight.detach()
        .view(model.classifier[0].out_features, -1, 14, 14)
    )
    assert (
        torch.equal(w[:, :, 0, 0], w[:, :, 4, 13])
        and float(w[:, :, 5:].abs().max()) == 0.0
    )  # exact: exact-float
    with pytest.raises(ValueError, match="init"):
        T.build_model(T.training_config("quick", init="xavier"))


def test_weight_standardization_by_hand_and_baked_checkpoints():
    ws = T.ScaledWeightStandardization(3)
    w = torch.randn(3, 2, 3, 3) * 5 + 1
    out = ws(w)
    fan_in = 2 * 9
    assert torch.allclose(out.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-6)
    assert torch.allclose(
        out.std(dim=(1, 2, 3)), torch.full((3,), 1.7139 / math.sqrt(fan_in)), rtol=1e-4
    )
    # training with it (and with a position-tied head for half the steps) leaves a plain rVGG in
    # the checkpoint: a freshly built rvgg(...) loads it and gives the same logits
    model, info = T.train_or_load(
        "quick",
        walled=True,
        pair=False,
        **dict(TINY, weight_standardization=True, tie_fraction=0.5, init="pooled"),
    )
    state = torch.load(info["checkpoint"], weights_only=True)["model"]
    assert (
        not any("parametrizations" in k for k in state) and "features.0.weight" in state
    )
    plain = rvgg(
        num_classes=model.num_classes,
        width=model.width,
        wall_rows=model.wall_rows,
        dropout=0.0,
    )
    plain.load_state_dict(state, strict=True)
    assert [type(m) for m in plain.modules()] == [type(m) for m in model.modules()]
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(plain.eval()(x), model.eval()(x), rtol=1e-5, atol=1e-6)
    # the tie ended halfway: the head's weights now differ across the visible positions
    w1 = (
        model.classifier[0]
        .weight.detach()
        .view(model.classifier[0].out_features, -1, 14, 14)
    )
    assert float((w1[:, :, 0, 0] - w1[:, :, 4, 9]).abs().max()) > 1e-6
    assert float(w1[:, :, 5:].abs().max()) == 0.0  # exact: wall
    assert all(p.requires_grad for p in model.parameters())


def test_a_tie_that_would_last_the_whole_run_is_refused():
    assert T.tied_steps(0.5, 800) == 400 and T.tied_steps(0.0, 10) == 0
    with pytest.raises(ValueError, match="to the end"):
        T.tied_steps(0.9, 4)  # round(3.6) = 4 of 4 steps
    with pytest.raises(ValueError, match=r"tie_fraction must be in \[0, 1\)"):
        T.training_config("quick", tie_fraction=1.0)
    with pytest.raises(ValueError, match="to the end"):
        T.train_or_load(
            "quick",
            walled=True,
            pair=False,
            **dict(TINY, tie_fraction=0.9, init="pooled"),
        )


def test_frozen_convolutions_keep_their_initial_weights(tmp_path):
    from helpers.config import seed_everything

    cfg = T.training_config("quick", **dict(TINY, epochs=1, freeze_convs=2))
    seed_everything(cfg["train"]["seed"])
    init = T.build_model(cfg)
    model, _ = T.train(
        cfg, device="cpu", checkpoint=tmp_path / "f.pt", show_progress=False
    )
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    convs0 = [m for m in init.features if isinstance(m, torch.nn.Conv2d)]
    # exact: repeat (TESTING.md)
    assert torch.equal(convs[0].weight, convs0[0].weight) and torch.equal(
        convs[1].weight, convs0[1].weight
    )
    assert not torch.equal(convs[2].weight, convs0[2].weight)  # exact: repeat
    with pytest.raises(ValueError, match="freeze_convs"):
        T.freeze_convolutions(init, 20)


def test_batch_norm_folds_into_the_convolutions_exactly(tmp_path):
    from helpers import wall as W
    from helpers.models import rvgg

    torch.manual_seed(0)
    model = T.add_batch_norm(rvgg(num_classes=10, width=1 / 32))
    assert sum(isinstance(m, T.ConvBN) for m in model.features) == 13
    # give the norms non-trivial statistics and affine parameters
    model.train()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 0.5)
        for _ in range(3):
            model(torch.randn(4, 3, 224, 224) * 2 + 0.3)
    model.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = model(x)
        # by hand for the first convolution: BN(conv(x)) with the running statistics
        first = model.features[0]
        hand = (first.conv(x) - first.bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(
            first.bn.running_var.view(1, -1, 1, 1) + first.bn.eps
        ) * first.bn.weight.view(1, -1, 1, 1) + first.bn.bias.view(1, -1, 1, 1)
        T.fold_batch_norm(model)
        assert torch.allclose(model.features[0](x), hand, atol=1e-4)
        assert torch.allclose(model(x), expected, rtol=1e-4, atol=1e-4)
    # a plain rVGG again: the layout and keys of a model built without batch norm, and the wall
    assert set(model.state_dict()) == set(
        rvgg(num_classes=10, width=1 / 32).state_dict()
    )
    assert W.perturbation_check(model, x)["max_abs_diff"] == 0.0  # exact: wall
    # training with it leaves a plain rVGG in the checkpoint
    model2, info = T.train_or_load(
        "quick", walled=True, pair=False, **dict(TINY, batch_norm=True)
    )
    state = torch.load(info["checkpoint"], weights_only=True)["model"]
    assert (
        not any("bn" in k or "running_mean" in k for k in state)
        and "features.0.weight" in state
    )
