"""The experiments of chapter 07 that run on a model (questions 1, 2, 3, 4, 6 and 7 of
:mod:`helpers.experiments`), on a tiny walled rVGG, each checked against a number computed
another way."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from helpers import experiments as E
from helpers import wall
from helpers.data import StackSet
from helpers.models import map_row_coverage, rvgg, walled_resnet

TINY = 1 / 32


@pytest.fixture(scope="module")
def walled():
    torch.manual_seed(0)
    model = rvgg(num_classes=4, width=TINY).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.bias.normal_(0.0, 0.1)
    return model


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def kernels(walled):
    return E.erf_kernels(walled, 1)


# ---------------------------------------------------------------------------------------------
# 1, 2, 6: reports on models
# ---------------------------------------------------------------------------------------------


def test_method_leak_report():
    table = [
        {"method": "gradcam", "model": "walled", "dataset": "S", "mu_mean": 0.2},
        {"method": "hirescam", "model": "walled", "dataset": "S", "mu_mean": 0.0},
        {"method": "eigengradcam", "model": "walled", "dataset": "S", "mu_mean": 0.0},
        {"method": "layercam", "model": "walled", "dataset": "S", "mu_mean": 0.1},
        {"method": "gradcam", "model": "baseline", "dataset": "S", "mu_mean": 0.3},
    ]
    rows = {r["method"]: r for r in E.method_leak_report(table)}
    assert len(rows) == 4
    assert rows["gradcam"]["observed"] == "leaks" and rows["gradcam"]["agrees"]
    assert rows["hirescam"]["observed"] == "blind" and rows["hirescam"]["agrees"]
    assert rows["eigengradcam"]["agrees"]  # "may leak" agrees with either outcome
    assert not rows["layercam"]["agrees"]
    assert rows["gradcam"]["set"] == "S"
    with pytest.raises(ValueError, match="walled"):
        E.method_leak_report(table[-1:])
    # the book's one criterion (helpers.results.verdict): any mu > 0 on any image is a leak,
    # however small; the share of images with mu > 0 comes with it
    tiny = [
        {
            "method": "hirescam",
            "model": "walled",
            "dataset": "S",
            "mu_mean": 1e-9,
            "mu_max": 1e-7,
            "mu_zero_share": 0.99,
            "n_images": 100,
        }
    ]
    (row,) = E.method_leak_report(tiny)
    assert row["observed"] == "leaks" and not row["agrees"]
    assert row["positive_share"] == pytest.approx(0.01)


def test_outcome_reason():
    assert "geometry" in E.outcome_reason("fullgrad", "blind")
    assert "constant" in E.outcome_reason("eigengradcam", "leaks")
    assert "whole activation maps" in E.outcome_reason("gradcam", "leaks")
    with pytest.raises(ValueError, match="observed"):
        E.outcome_reason("gradcam", "maybe")


def test_conv_wall_prediction():
    assert E.conv_wall_prediction("gradcam", "at")[0] == "zero"
    assert E.conv_wall_prediction("GradCAM++", "at")[0] == "zero"
    assert E.conv_wall_prediction("eigencam", "at")[0] == "constant"
    assert E.conv_wall_prediction("kpcacam", "at")[0] == "constant"
    assert E.conv_wall_prediction("fullgrad", "at")[0] == "as the dense wall"
    assert E.conv_wall_prediction("gradcam", "after")[0] == "as the dense wall"
    with pytest.raises(ValueError, match="placement"):
        E.conv_wall_prediction("gradcam", "before")


def test_conv_wall_comparison(walled, images):
    res = E.conv_wall_comparison(
        walled, images, ["gradcam", "hirescam", "eigencam"], keep_maps=2
    )
    assert max(res["logit_max_diff"].values()) < 1e-6
    meas = res["measured"]
    # "after": the very same maps as the dense wall
    for key in ("gradcam", "eigencam"):
        assert np.array_equal(
            meas["after"][key]["low"], meas["dense"][key]["low"]
        )  # exact: repeat
    # "at": GradCAM keeps the same channel weights, so its map equals the dense one in front of
    # the wall and is exactly zero behind it
    g_at, g_dense = meas["at"]["gradcam"]["low"], meas["dense"]["gradcam"]["low"]
    assert np.abs(g_at[:, :5] - g_dense[:, :5]).max() <= 1e-6 * max(1.0, g_dense.max())
    assert np.count_nonzero(g_at[:, 5:]) == 0
    # EigenCAM at the wall: a constant behind it (centred projection of zero vectors)
    e = meas["at"]["eigencam"]["low"][:, 5:]
    assert np.allclose(e, e[:, :1, :1])
    rows = {(r["variant"], r["method"]): r for r in res["rows"]}
    # exact: wall (TESTING.md)
    assert (
        rows[("at", "gradcam")]["mu_mean"] == 0.0
        and rows[("at", "gradcam")]["prediction"] == "zero"
    )


def test_conflict_report(walled, images):
    labels = torch.tensor([0, 1])
    stack = StackSet(
        images,
        labels,
        torch.tensor([2, 3]),
        "STACK-MIX (conflict)",
        list("abcd"),
        "quick",
    )
    res = E.conflict_report(
        {"walled": walled}, stack, ["gradcam", "hirescam"], keep_maps=2
    )
    pred = res["predictions"]["walled"]["predicted"]
    with torch.no_grad():
        assert np.array_equal(pred, walled(images).argmax(1).numpy())  # exact: repeat
    assert res["predictions"]["walled"]["top"] == float(np.mean(pred == labels.numpy()))
    rows = {r["method"]: r for r in res["rows"]}
    assert (
        rows["hirescam"]["mu_mean"] == 0.0 and rows["hirescam"]["peak_on_bottom"] == 0.0
    )  # exact: wall
    maps = res["measured"]["walled"]["gradcam"]["scaled"]
    sel = pred == labels.numpy() if (pred == labels.numpy()).any() else np.ones(2, bool)
    by_hand = [
        np.sqrt((m[170:] ** 2).sum() / (m**2).sum()) if m.any() else 0.0
        for m in maps[sel]
    ]
    assert rows["gradcam"]["mu_mean"] == pytest.approx(
        float(np.mean(by_hand)), abs=1e-6
    )


# ---------------------------------------------------------------------------------------------
# 3. Wall heights
# ---------------------------------------------------------------------------------------------


def test_target_features_feed_the_classifier(walled, images):
    feats = E.target_features(walled, images)
    with torch.no_grad():
        assert torch.allclose(
            walled.classifier(feats.flatten(1)), walled(images), atol=1e-5
        )


def test_wall_height_sweep(walled, images):
    gen = torch.Generator().manual_seed(0)
    probe = (
        torch.rand(32, int(walled.map_channels), 14, 14, generator=gen),
        torch.arange(32) % 2,
    )
    res = E.wall_height_sweep(
        walled,
        images,
        [0, 9],
        ["gradcam", "hirescam"],
        probe,
        epochs=1,
        show_progress=False,
    )
    geo = {g["wall_rows"]: g for g in res["geometry"]}
    assert (
        geo[0]["unseen_rows"] == 0
        and geo[9]["unseen_rows"] == 54
        and geo[9]["first_unseen_row"] == 170
    )
    assert geo[9]["hirescam_zero_rows"] == 136
    rows = {(r["wall_rows"], r["method"]): r for r in res["rows"]}
    assert rows[(9, "hirescam")]["mu_mean"] == 0.0  # exact: wall
    assert rows[(9, "gradcam")]["uniform_mu"] == pytest.approx(math.sqrt(54 / 224))
    # exact: wall (TESTING.md)
    assert rows[(0, "gradcam")]["mu_mean"] == 0.0  # nothing unseen


# ---------------------------------------------------------------------------------------------
# 4. The walled ResNet
# ---------------------------------------------------------------------------------------------


def test_gap_gradcam_identity(images):
    torch.manual_seed(0)
    model = walled_resnet(num_classes=3, width=0.25, wall_rows=5).eval()
    res = E.gap_gradcam_identity(model, images)
    assert res["scale"] > 0
    assert res["gradcam_max_abs_diff"] <= 1e-5 * res["scale"]
    assert res["hirescam_max_abs_diff"] <= 1e-5 * res["scale"]
    with pytest.raises(TypeError, match="WalledResNet"):
        E.gap_gradcam_identity(nn.Linear(2, 2), images)


# ---------------------------------------------------------------------------------------------
# 7. Wall-aware upsampling
# ---------------------------------------------------------------------------------------------


def test_bilinear_matrix_is_cv2_resize():
    low = np.random.default_rng(0).random((14, 14)).astype(np.float32)
    M = E.bilinear_matrix(14, 224)
    ours = M @ low.astype(np.float64) @ M.T
    assert np.abs(ours - cv2.resize(low, (224, 224))).max() < 1e-5
    assert np.allclose(M.sum(axis=1), 1.0)


def test_wall_aware_bilinear_matrix_by_hand():
    M = E.bilinear_matrix(14, 224, last_row=4, last_seen=169)
    assert np.count_nonzero(M[170:]) == 0
    assert np.allclose(M[:170].sum(axis=1), 1.0)
    # map row 4's centre is image row 71.5: from row 72 on the last visible row is repeated
    assert np.array_equal(
        M[72:170], np.tile(np.eye(14)[4], (98, 1))
    )  # exact: exact-float
    assert np.array_equal(M[:72], E.bilinear_matrix(14, 224)[:72])  # exact: repeat
    with pytest.raises(ValueError, match="last_row"):
        E.bilinear_matrix(14, 224, last_row=14)


def test_erf_kernels_vanish_exactly_outside_the_receptive_field(walled, kernels):
    kr, kc = kernels
    cov = map_row_coverage(walled)
    # exact: wall (TESTING.md)
    assert (
        kr[~cov].max() == 0 and kc[~cov].max() == 0
    )  # gradients vs receptive-field arithmetic
    assert (kr[cov] > 0).mean() > 0.99
    assert np.allclose(kr.sum(axis=1), 1.0) and np.allclose(kc.sum(axis=1), 1.0)


def test_wall_aware_upsample_zero_region_is_the_unseen_strip(walled, kernels):
    rng = np.random.default_rng(1)
    low = rng.random((3, 14, 14)) + 0.1
    low[:, 5:, :] = 0.0  # an element-wise map of the walled model
    unseen = wall.unseen_rows(walled)
    bil = E.wall_aware_upsample(low, "bilinear")
    assert np.all(bil[:, 88:] == 0) and np.all(
        bil[:, :88].max(axis=2) > 0
    )  # wall.upsampled_zero_rows
    assert wall.upsampled_zero_rows(range(5, 14)).tolist() == list(range(88, 224))
    for how in ("clamped", "erf"):
        up = E.wall_aware_upsample(low, how, model=walled, kernels=kernels)
        assert np.all(up[:, unseen] == 0), how
        assert np.all(up[:, : unseen[0]].max(axis=2) > 0), how
    # a constant map stays constant under the normalized receptive-field upsampling
    flat = E.wall_aware_upsample(np.ones((1, 14, 14)), "erf", kernels=kernels)
    assert np.allclose(flat, 1.0)
    with pytest.raises(ValueError, match="kernels"):
        E.wall_aware_upsample(low, "erf")
    with pytest.raises(ValueError, match="positive number"):
        E.erf_kernels(walled, 0)
    with pytest.raises(ValueError, match="model"):
        E.wall_aware_upsample(low, "clamped")
    with pytest.raises(ValueError, match="how"):
        E.wall_aware_upsample(low, "nearest")
    with pytest.raises(ValueError, match="14, 14"):
        E.wall_aware_upsample(np.zeros((2, 7, 7)), "bilinear")


def test_energy_in_boxes_by_hand():
    maps = np.zeros((2, 4, 4))
    maps[0, 0, 0], maps[0, 3, 3] = 3.0, 1.0
    boxes = np.array([[0, 2, 0, 2], [0, 4, 0, 4]])
    assert E.energy_in_boxes(maps, boxes).tolist() == [0.75, 0.0]
    with pytest.raises(ValueError, match="non-negative"):
        E.energy_in_boxes(-maps - 1, boxes)


def test_hirescam_repair_report(walled, images, kernels):
    rep = E.hirescam_repair_report(
        walled, images, boxes=np.array([[0, 100, 0, 224]] * 2), kernels=kernels
    )
    rows = {r["how"]: r for r in rep["rows"]}
    assert all(r["mu_mean"] == 0.0 for r in rows.values())  # exact: wall
    for how in ("clamped", "erf"):
        assert np.all(rep["maps"][how][:, 170:] == 0)
        assert rows[how]["zero_rows_share"] >= 54 / 224
    # where HiResCAM's 14x14 map has a lit pixel in row 4, the bilinear map is zero from row 88
    # (wall.upsampled_zero_rows) and the clamped map keeps every seen row
    if np.all(rep["low"][:, 4].max(axis=1) > 0):
        assert rows["bilinear"]["first_zero_row"] == 88.0
        assert rows["clamped"]["seen_rows_supported"] == 1.0  # exact: integer
    assert 0 <= rows["erf"]["energy_in_box"] <= 1


def test_fwhm_by_hand():
    assert E.fwhm(np.array([0, 0.5, 1, 0.5, 0])) == pytest.approx(2.0)
    assert E.fwhm(np.array([0, 0, 1, 0, 0])) == pytest.approx(1.0)
    # the bilinear kernel of map row 7 in a 14 -> 224 upsampling, sampled at the pixel centres:
    # weights 1 - |(y + 0.5)/16 - 7.5|, peak 31/32 at rows 119 and 120, half of it (31/64) crossed
    # between rows 111 (15/32) and 112 (17/32) at 111.25, and symmetrically at 127.75
    assert E.fwhm(E.bilinear_matrix()[:, 7]) == pytest.approx(127.75 - 111.25)
    with pytest.raises(ValueError, match="non-negative"):
        E.fwhm(np.array([-1.0, 1.0]))
