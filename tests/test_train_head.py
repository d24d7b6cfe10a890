"""Tests of helpers.train.head: a walled head trained alone on cached features, with the one loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import train as T
from helpers.models import WalledLinear, rvgg


@pytest.fixture(scope="module")
def walled():
    torch.manual_seed(0)
    model = rvgg(num_classes=4, width=1 / 32).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.bias.normal_(0.0, 0.1)
    return model


def _fake(n, rows, channels, gen):
    """Random features whose class shows (+3) in the given map rows only."""
    y = torch.arange(n) % 2
    f = torch.rand(n, channels, 14, 14, generator=gen)
    f[:, :, rows] += 3.0 * y.view(-1, 1, 1, 1).float()
    return f, y


def test_a_walled_head_reads_only_the_visible_rows(walled):
    gen = torch.Generator().manual_seed(0)
    channels = walled.map_channels

    def held_out_accuracy(m, rows):
        f, y = _fake(64, rows, channels, gen)
        return T.head_accuracy(m, f, y)

    probe_f, probe_y = _fake(
        32, slice(0, 2), channels, gen
    )  # visible rows 0..1 of a 12-row wall
    model, info = T.train_walled_head(
        walled, probe_f, probe_y, wall_rows=12, epochs=100, lr=1e-2
    )
    assert info["train_accuracy"] > 0.9 and held_out_accuracy(model, slice(0, 2)) > 0.9
    assert len(info["losses"]) == 100 and info["losses"][-1] < info["losses"][0]
    hidden_f, hidden_y = _fake(32, slice(2, 14), channels, gen)  # behind the wall only
    blind, _ = T.train_walled_head(
        walled, hidden_f, hidden_y, wall_rows=12, epochs=100, lr=1e-2
    )
    assert (
        held_out_accuracy(blind, slice(2, 14)) < 0.8
    )  # chance is 0.5: the head cannot read it
    first = model.classifier[0]
    # exact: wall (TESTING.md)
    assert (
        isinstance(first, WalledLinear)
        and first.effective_weight.view(-1, channels, 14, 14)[:, :, 2:].abs().max() == 0
    )
    for a, b in zip(
        model.features.state_dict().values(), walled.features.state_dict().values()
    ):
        assert torch.equal(a, b)  # exact: repeat
    assert not model.training and all(
        p.requires_grad is False for p in model.features.parameters()
    )


def test_the_same_seed_trains_the_same_head(walled):
    f, y = _fake(20, slice(0, 5), walled.map_channels, torch.Generator().manual_seed(3))
    a, ia = T.train_walled_head(
        walled, f, y, wall_rows=0, epochs=3, batch_size=8, seed=1
    )
    b, ib = T.train_walled_head(
        walled, f, y, wall_rows=0, epochs=3, batch_size=8, seed=1
    )
    assert type(a.classifier[0]) is nn.Linear and a.wall_rows == 0
    assert ia["losses"] == ib["losses"]  # exact: repeat
    for p, q in zip(a.classifier.parameters(), b.classifier.parameters()):
        assert torch.equal(p, q)  # exact: repeat
    with torch.no_grad():
        by_hand = float((a.classifier(f.flatten(1)).argmax(1) == y).float().mean())
    assert T.head_accuracy(a, f, y) == pytest.approx(by_hand)


def test_bad_head_inputs_are_refused(walled):
    f, y = _fake(4, slice(0, 2), walled.map_channels, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="labels"):
        T.train_walled_head(walled, f, y[:3], wall_rows=9)
    with pytest.raises(ValueError, match="features"):
        T.train_walled_head(walled, f.flatten(1), y, wall_rows=9)
    with pytest.raises(ValueError, match="wall_rows"):
        T.train_walled_head(walled, f, y, wall_rows=15)
