"""Tests of helpers.data.render and helpers.data.synthetic: the synthetic world's shapes,
batches, placements relative to the wall and training stream."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import data as D
from helpers.data.synthetic import _sample_placement


def _render_one(
    label: int, radius: float = 40.0, angle: float = 0.0, center=(112.0, 112.0)
):
    bg = torch.full((1, 3, 224, 224), 0.5)
    img, box = D.render_synthetic(
        torch.tensor([label]),
        torch.tensor([center]),
        torch.tensor([radius]),
        torch.tensor([angle]),
        torch.tensor([[1.0, 1.0, 1.0]]),
        bg,
    )
    return img[0], box[0]


@pytest.mark.parametrize(
    "label, area",
    [
        (0, math.pi * 0.95**2),  # disc of radius 0.95
        (1, math.pi * (0.95**2 - 0.65**2)),  # ring between radii 0.65 and 0.95
        (2, 1.9 * 0.56),  # bar 1.9 x 0.56
        (3, 2 * (1.9 * 0.4) - 0.4**2),  # plus sign: two 1.9 x 0.4 bars minus overlap
        (5, 3 * math.sqrt(3) / 4),  # equilateral triangle inscribed in the unit circle
        (6, 1.7**2),  # stripes: square patch (colour and complement)
        (9, math.pi * 0.95**2),  # bullseye: disc patch
    ],
)
def test_rendered_area_matches_closed_form(label, area):
    r = 40.0
    img, _ = _render_one(label, radius=r, angle=0.3)
    # coverage from pixels: white (or black, for a texture's complement) over grey 0.5
    painted = float((img - 0.5).abs().sum() / 0.5 / 3)
    assert painted == pytest.approx(area * r * r, rel=0.02)


def test_boxes_match_axis_aligned_bar():
    img, box = _render_one(2, radius=30.0, center=(100.0, 120.0))
    # half-width 0.95 * 30 = 28.5 px, half-height 0.28 * 30 = 8.4 px (plus anti-aliasing)
    top, bottom, left, right = box.tolist()
    assert top == pytest.approx(100 - 8.4, abs=1) and bottom == pytest.approx(
        100 + 8.4, abs=1
    )
    assert left == pytest.approx(120 - 28.5, abs=1) and right == pytest.approx(
        120 + 28.5, abs=1
    )
    rows = torch.nonzero((img - 0.5).abs().sum(0).sum(1) > 0).view(-1)
    assert (int(rows[0]), int(rows[-1]) + 1) == (int(top), int(bottom))


def test_synthetic_batch_is_a_function_of_the_seed():
    a = D.synthetic_batch(6, 123)
    b = D.synthetic_batch(6, 123)
    c = D.synthetic_batch(6, 124)
    assert torch.equal(a.images, b.images) and torch.equal(
        a.labels, b.labels
    )  # exact: repeat
    assert not torch.equal(a.images, c.images)  # exact: repeat
    assert a.images.shape == (6, 3, 224, 224) and a.images.dtype == torch.float32
    assert a.labels.dtype == torch.long and int(a.labels.max()) < 10
    # normalized: back in [0, 1] after denormalize, and not already in [0, 1]
    assert float(a.images.min()) < 0


@pytest.mark.parametrize("placement", ["above", "below", "straddle"])
def test_placement_groups_of_placed_batches(placement):
    b = D.synthetic_batch(8, 7, placement=placement)
    assert D.placement_groups(b.boxes) == [placement] * 8


def test_below_objects_leave_the_visible_rows_untouched():
    # Render "below" objects on a constant background: nothing changes above row 170.
    n = 10
    labels = torch.arange(n)
    gen = torch.Generator().manual_seed(0)
    aspects = torch.ones(n)
    centers, radii = _sample_placement(
        gen, labels, 224, (18.0, 44.0), "below", 0.0, aspects
    )
    bg = torch.full((n, 3, 224, 224), 0.5)
    img, boxes = D.render_synthetic(
        labels,
        centers,
        radii,
        torch.rand(n, generator=gen) * 6.28,
        torch.zeros(n, 3),
        bg,
        aspects,
    )
    changed_rows = torch.nonzero((img - 0.5).abs().amax(dim=(0, 1, 3)) > 0).view(-1)
    assert int(changed_rows.min()) >= 170
    assert D.placement_groups(boxes) == ["below"] * n


def test_any_placement_contains_objects_below_the_wall():
    b = D.synthetic_batch(60, 3, below_share=0.5)
    groups = D.placement_groups(b.boxes)
    assert 15 <= groups.count("below") <= 45  # Binomial(60, >= 0.5): far from 0
    assert groups.count("above") > 0


def test_synthetic_stream_resumes_identically():
    s = D.SyntheticStream(images_per_epoch=8, batch_size=4, seed=5)
    assert len(s) == 2
    full = list(s.epoch(1))
    tail = list(s.epoch(1, start_step=1))
    assert torch.equal(full[1][0], tail[0][0])  # exact: repeat
    assert not torch.equal(full[0][0], list(s.epoch(2))[0][0])  # exact: repeat


def test_synthetic_bad_input():
    with pytest.raises(ValueError, match="num_classes"):
        D.synthetic_batch(2, 0, num_classes=11)
    with pytest.raises(ValueError, match="placement"):
        D.synthetic_batch(2, 0, placement="left")
    with pytest.raises(ValueError, match="out of range"):
        D.synthetic_batch(2, 0, labels=torch.tensor([0, 12]))
    with pytest.raises(ValueError, match="integers"):
        D.check_labels(torch.tensor([0.5]), 10)


def test_placement_groups_by_hand():
    boxes = torch.tensor(
        [[10.0, 170.0, 0, 1], [170.0, 200.0, 0, 1], [160.0, 180.0, 0, 1]]
    )
    assert D.placement_groups(boxes) == ["above", "below", "straddle"]
    with pytest.raises(ValueError, match="N, 4"):
        D.placement_groups(torch.zeros(3))


def test_top_row_placement_and_instances():
    b = D.synthetic_batch(
        4,
        11,
        placement=["top=0", "top=100", "top=170", "top=190"],
        radius_range=(14.0, 20.0),
    )
    tops = b.boxes[:, 0]
    # the painted top is at the asked row or a little below (a rotated shape may not reach its
    # bounding circle), never above it
    assert bool(torch.all(tops >= torch.tensor([0.0, 100.0, 170.0, 190.0])))
    assert bool(torch.all(tops <= torch.tensor([0.0, 100.0, 170.0, 190.0]) + 12))
    assert D.placement_groups(b.boxes)[2:] == ["below", "below"]
    with pytest.raises(ValueError, match="top row"):
        D.synthetic_batch(1, 0, placement="top=300")
    one = D.synthetic_batch(6, 5, instances=1)
    many = D.synthetic_batch(6, 5, instances=3)

    # more instances: at least as much painted area (boxes bound every instance)
    def area(bx):
        return (bx[:, 1] - bx[:, 0]) * (bx[:, 3] - bx[:, 2])

    assert float(area(many.boxes).sum()) > float(area(one.boxes).sum())
