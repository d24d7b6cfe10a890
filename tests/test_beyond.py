"""The experiments of "Beyond the paper", each checked against a number computed another way."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from helpers import beyond as B
from helpers import theory as T
from helpers import wall
from helpers.data import StackSet
from helpers.models import WalledLinear, rvgg, wall_mask
from helpers.variants import map_row_coverage, walled_resnet

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
    return B.erf_kernels(walled, 1)


# ---------------------------------------------------------------------------------------------
# 5. Deep theory models
# ---------------------------------------------------------------------------------------------

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
        self.rest = nn.ModuleList(nn.Linear(W.shape[1], W.shape[0], bias=False) for W in layers)
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
    layers = [torch.randn(widths[i + 1], widths[i], generator=gen) for i in range(depth - 1)]
    model = _DeepTheory(conv_w, W1, layers)
    parts = T.gradcam_parts(model, image, None if target == "top" else target)
    # the reduced quantities, from the explicit first layer
    M = wall_mask(V, 14, 7).view(V, 196)  # visible pooled positions of each channel
    W1m = W1 * wall_mask(V, 14, 7)
    Q = torch.stack([W1m.view(-1, V, 196)[:, v, :] @ M[v] for v in range(V)], dim=1)  # (H1, V)
    pooled = torch.nn.functional.max_pool2d(torch.relu(model.conv(image)), 2).flatten()
    h1 = W1m @ pooled
    cam, classes = B.deep_gradcam_reduced(conv_w[None], B._patches(image), Q[None], h1[None],
                                          [W[None] for W in layers], target)
    assert int(classes[0]) == int(parts["class_index"][0])
    ref = parts["cam"][0].flatten()
    assert torch.allclose(cam[0], ref, rtol=1e-4, atol=1e-6 * float(ref.abs().max() + 1))


def test_monte_carlo_depth_one_matches_the_closed_form():
    image = T.digits_29(1, source="sklearn")[0][0]
    res = B.deep_gradcam_monte_carlo(image, 1, target=0, filters=16, n_models=800, seed=3,
                                     show_progress=False)
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
    ours = B.deep_gradcam_monte_carlo(image, 1, target="top", filters=16, n_models=800, seed=4,
                                      show_progress=False)
    theirs = T.monte_carlo_gradcam(image, filters=16, n_models=800, target="top", seed=5, batch=200)
    lit = T.patch_norms(image) > 0.5 * T.patch_norms(image).max()
    a, b = ours["mean"][lit].mean(), theirs["mean"][lit].mean()
    se = math.hypot(ours["sem"][lit].mean(), theirs["sem"][lit].mean())
    assert abs(a - b) < 4 * se
    # the top class is biased towards positive scores (unlike a fixed class)
    assert ours["positive"][lit].mean() > 0.6


def test_twin_digit_image_has_identical_patches_on_both_sides():
    image = B.twin_digit_image(T.digits_29(1, source="sklearn")[0][0])
    norms = T.patch_norms(image)
    assert image.shape == (1, 1, 29, 29)
    assert np.array_equal(norms[:14], norms[14:]) and norms.max() > 0  # exact: exact-float
    p = B._patches(image).view(28, 28, 4)
    assert torch.equal(p[:14], p[14:])  # exact: exact-float
    res = B.deep_gradcam_monte_carlo(image, 2, target="top", filters=8, hidden=8, n_models=20,
                                     show_progress=False)
    # identical patches -> identical GradCAM, every draw (to rounding: the two halves may be
    # summed by other vector lanes of a kernel, TESTING.md)
    assert res["half_max_abs_diff"] <= 1e-6


def test_monte_carlo_bad_input():
    image = torch.zeros(1, 1, 29, 29)
    with pytest.raises(ValueError, match="depth"):
        B.deep_gradcam_monte_carlo(image, 0)
    with pytest.raises(ValueError, match="target"):
        B.deep_gradcam_monte_carlo(image, 1, target=10)
    with pytest.raises(ValueError, match="28x28"):
        B.twin_digit_image(torch.zeros(10, 10))


# ---------------------------------------------------------------------------------------------
# 7. Wall-aware upsampling
# ---------------------------------------------------------------------------------------------

def test_bilinear_matrix_is_cv2_resize():
    low = np.random.default_rng(0).random((14, 14)).astype(np.float32)
    M = B.bilinear_matrix(14, 224)
    ours = M @ low.astype(np.float64) @ M.T
    assert np.abs(ours - cv2.resize(low, (224, 224))).max() < 1e-5
    assert np.allclose(M.sum(axis=1), 1.0)


def test_wall_aware_bilinear_matrix_by_hand():
    M = B.bilinear_matrix(14, 224, last_row=4, last_seen=169)
    assert np.count_nonzero(M[170:]) == 0
    assert np.allclose(M[:170].sum(axis=1), 1.0)
    # map row 4's centre is image row 71.5: from row 72 on the last visible row is repeated
    assert np.array_equal(M[72:170], np.tile(np.eye(14)[4], (98, 1)))  # exact: exact-float
    assert np.array_equal(M[:72], B.bilinear_matrix(14, 224)[:72])  # exact: repeat
    with pytest.raises(ValueError, match="last_row"):
        B.bilinear_matrix(14, 224, last_row=14)


def test_erf_kernels_vanish_exactly_outside_the_receptive_field(walled, kernels):
    kr, kc = kernels
    cov = map_row_coverage(walled)
    # exact: wall (TESTING.md)
    assert kr[~cov].max() == 0 and kc[~cov].max() == 0  # gradients vs receptive-field arithmetic
    assert (kr[cov] > 0).mean() > 0.99
    assert np.allclose(kr.sum(axis=1), 1.0) and np.allclose(kc.sum(axis=1), 1.0)


def test_wall_aware_upsample_zero_region_is_the_unseen_strip(walled, kernels):
    rng = np.random.default_rng(1)
    low = rng.random((3, 14, 14)) + 0.1
    low[:, 5:, :] = 0.0  # an element-wise map of the walled model
    unseen = wall.unseen_rows(walled)
    bil = B.wall_aware_upsample(low, "bilinear")
    assert np.all(bil[:, 88:] == 0) and np.all(bil[:, :88].max(axis=2) > 0)  # wall.upsampled_zero_rows
    assert wall.upsampled_zero_rows(range(5, 14)).tolist() == list(range(88, 224))
    for how in ("clamped", "erf"):
        up = B.wall_aware_upsample(low, how, model=walled, kernels=kernels)
        assert np.all(up[:, unseen] == 0), how
        assert np.all(up[:, :unseen[0]].max(axis=2) > 0), how
    # a constant map stays constant under the normalized receptive-field upsampling
    flat = B.wall_aware_upsample(np.ones((1, 14, 14)), "erf", kernels=kernels)
    assert np.allclose(flat, 1.0)
    with pytest.raises(ValueError, match="kernels"):
        B.wall_aware_upsample(low, "erf")
    with pytest.raises(ValueError, match="positive number"):
        B.erf_kernels(walled, 0)
    with pytest.raises(ValueError, match="model"):
        B.wall_aware_upsample(low, "clamped")
    with pytest.raises(ValueError, match="how"):
        B.wall_aware_upsample(low, "nearest")
    with pytest.raises(ValueError, match="14, 14"):
        B.wall_aware_upsample(np.zeros((2, 7, 7)), "bilinear")


def test_energy_in_boxes_by_hand():
    maps = np.zeros((2, 4, 4))
    maps[0, 0, 0], maps[0, 3, 3] = 3.0, 1.0
    boxes = np.array([[0, 2, 0, 2], [0, 4, 0, 4]])
    assert B.energy_in_boxes(maps, boxes).tolist() == [0.75, 0.0]
    with pytest.raises(ValueError, match="non-negative"):
        B.energy_in_boxes(-maps - 1, boxes)


def test_hirescam_repair_report(walled, images, kernels):
    rep = B.hirescam_repair_report(walled, images, boxes=np.array([[0, 100, 0, 224]] * 2), kernels=kernels)
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


# ---------------------------------------------------------------------------------------------
# 1, 2, 6: reports on models
# ---------------------------------------------------------------------------------------------

def test_method_leak_report():
    table = [{"method": "gradcam", "model": "walled", "dataset": "S", "mu_mean": 0.2},
             {"method": "hirescam", "model": "walled", "dataset": "S", "mu_mean": 0.0},
             {"method": "eigengradcam", "model": "walled", "dataset": "S", "mu_mean": 0.0},
             {"method": "layercam", "model": "walled", "dataset": "S", "mu_mean": 0.1},
             {"method": "gradcam", "model": "baseline", "dataset": "S", "mu_mean": 0.3}]
    rows = {r["method"]: r for r in B.method_leak_report(table)}
    assert len(rows) == 4
    assert rows["gradcam"]["observed"] == "leaks" and rows["gradcam"]["agrees"]
    assert rows["hirescam"]["observed"] == "blind" and rows["hirescam"]["agrees"]
    assert rows["eigengradcam"]["agrees"]  # "may leak" agrees with either outcome
    assert not rows["layercam"]["agrees"]
    assert rows["gradcam"]["set"] == "S"
    with pytest.raises(ValueError, match="walled"):
        B.method_leak_report(table[-1:])
    # the book's one criterion (helpers.results.verdict): any mu > 0 on any image is a leak,
    # however small; the share of images with mu > 0 comes with it
    tiny = [{"method": "hirescam", "model": "walled", "dataset": "S", "mu_mean": 1e-9, "mu_max": 1e-7,
             "mu_zero_share": 0.99, "n_images": 100}]
    (row,) = B.method_leak_report(tiny)
    assert row["observed"] == "leaks" and not row["agrees"]
    assert row["positive_share"] == pytest.approx(0.01)


def test_outcome_reason():
    assert "geometry" in B.outcome_reason("fullgrad", "blind")
    assert "constant" in B.outcome_reason("eigengradcam", "leaks")
    assert "whole activation maps" in B.outcome_reason("gradcam", "leaks")
    with pytest.raises(ValueError, match="observed"):
        B.outcome_reason("gradcam", "maybe")


def test_conv_wall_prediction():
    assert B.conv_wall_prediction("gradcam", "at")[0] == "zero"
    assert B.conv_wall_prediction("GradCAM++", "at")[0] == "zero"
    assert B.conv_wall_prediction("eigencam", "at")[0] == "constant"
    assert B.conv_wall_prediction("kpcacam", "at")[0] == "constant"
    assert B.conv_wall_prediction("fullgrad", "at")[0] == "as the dense wall"
    assert B.conv_wall_prediction("gradcam", "after")[0] == "as the dense wall"
    with pytest.raises(ValueError, match="placement"):
        B.conv_wall_prediction("gradcam", "before")


def test_conv_wall_comparison(walled, images):
    res = B.conv_wall_comparison(walled, images, ["gradcam", "hirescam", "eigencam"], keep_maps=2)
    assert max(res["logit_max_diff"].values()) < 1e-6
    meas = res["measured"]
    # "after": the very same maps as the dense wall
    for key in ("gradcam", "eigencam"):
        assert np.array_equal(meas["after"][key]["low"], meas["dense"][key]["low"])  # exact: repeat
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
    assert rows[("at", "gradcam")]["mu_mean"] == 0.0 and rows[("at", "gradcam")]["prediction"] == "zero"


def test_conflict_report(walled, images):
    labels = torch.tensor([0, 1])
    stack = StackSet(images, labels, torch.tensor([2, 3]), "STACK-MIX (conflict)", list("abcd"), "quick")
    res = B.conflict_report({"walled": walled}, stack, ["gradcam", "hirescam"], keep_maps=2)
    pred = res["predictions"]["walled"]["predicted"]
    with torch.no_grad():
        assert np.array_equal(pred, walled(images).argmax(1).numpy())  # exact: repeat
    assert res["predictions"]["walled"]["top"] == float(np.mean(pred == labels.numpy()))
    rows = {r["method"]: r for r in res["rows"]}
    assert rows["hirescam"]["mu_mean"] == 0.0 and rows["hirescam"]["peak_on_bottom"] == 0.0  # exact: wall
    maps = res["measured"]["walled"]["gradcam"]["scaled"]
    sel = pred == labels.numpy() if (pred == labels.numpy()).any() else np.ones(2, bool)
    by_hand = [np.sqrt((m[170:] ** 2).sum() / (m ** 2).sum()) if m.any() else 0.0 for m in maps[sel]]
    assert rows["gradcam"]["mu_mean"] == pytest.approx(float(np.mean(by_hand)), abs=1e-6)


# ---------------------------------------------------------------------------------------------
# 3. Wall heights
# ---------------------------------------------------------------------------------------------

def test_walled_head_and_sweep(walled, images):
    feats = B.target_features(walled, images)
    with torch.no_grad():
        assert torch.allclose(walled.classifier(feats.flatten(1)), walled(images), atol=1e-5)
    gen = torch.Generator().manual_seed(0)
    def fake(n, rows):  # random features whose class shows (+3) in the given map rows only
        y = torch.arange(n) % 2
        f = torch.rand(n, *feats.shape[1:], generator=gen)
        f[:, :, rows] += 3.0 * y.view(-1, 1, 1, 1).float()
        return f, y

    def held_out_accuracy(m, rows):
        f, y = fake(64, rows)
        with torch.no_grad():
            return float((m.classifier(f.flatten(1)).argmax(1) == y).float().mean())

    probe_f, probe_y = fake(32, slice(0, 2))  # visible rows 0..1 of a 12-row wall
    model, info = B.train_walled_head(walled, probe_f, probe_y, wall_rows=12, epochs=100, lr=1e-2)
    assert info["train_accuracy"] > 0.9 and held_out_accuracy(model, slice(0, 2)) > 0.9
    hidden_f, hidden_y = fake(32, slice(2, 14))  # behind the wall only
    blind, _ = B.train_walled_head(walled, hidden_f, hidden_y, wall_rows=12, epochs=100, lr=1e-2)
    assert held_out_accuracy(blind, slice(2, 14)) < 0.8  # chance is 0.5: the head cannot read it
    first = model.classifier[0]
    # exact: wall (TESTING.md)
    assert isinstance(first, WalledLinear) and first.effective_weight.view(-1, feats.shape[1], 14, 14)[:, :, 2:].abs().max() == 0
    for a, b in zip(model.features.state_dict().values(), walled.features.state_dict().values()):
        assert torch.equal(a, b)  # exact: repeat
    res = B.wall_height_sweep(walled, images, [0, 9], ["gradcam", "hirescam"], (probe_f, probe_y), epochs=1,
                              show_progress=False)
    geo = {g["wall_rows"]: g for g in res["geometry"]}
    assert geo[0]["unseen_rows"] == 0 and geo[9]["unseen_rows"] == 54 and geo[9]["first_unseen_row"] == 170
    assert geo[9]["hirescam_zero_rows"] == 136
    rows = {(r["wall_rows"], r["method"]): r for r in res["rows"]}
    assert rows[(9, "hirescam")]["mu_mean"] == 0.0  # exact: wall
    assert rows[(9, "gradcam")]["uniform_mu"] == pytest.approx(math.sqrt(54 / 224))
    # exact: wall (TESTING.md)
    assert rows[(0, "gradcam")]["mu_mean"] == 0.0  # nothing unseen
    with pytest.raises(ValueError, match="labels"):
        B.train_walled_head(walled, probe_f, probe_y[:3], wall_rows=9)


# ---------------------------------------------------------------------------------------------
# 4. The walled ResNet
# ---------------------------------------------------------------------------------------------

def test_gap_gradcam_identity(images):
    torch.manual_seed(0)
    model = walled_resnet(num_classes=3, width=0.25, wall_rows=5).eval()
    res = B.gap_gradcam_identity(model, images)
    assert res["scale"] > 0
    assert res["gradcam_max_abs_diff"] <= 1e-5 * res["scale"]
    assert res["hirescam_max_abs_diff"] <= 1e-5 * res["scale"]
    with pytest.raises(TypeError, match="WalledResNet"):
        B.gap_gradcam_identity(nn.Linear(2, 2), images)


def test_train_or_load_resnet_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path))
    kw = dict(width=0.25, train_images=8, epochs=1, batch_size=4)
    model, info = B.train_or_load_resnet("quick", show_progress=False, device="cpu", **kw)
    assert not info["from_cache"] and len(info["history"]) == 1
    again, info2 = B.train_or_load_resnet("quick", show_progress=False, device="cpu", **kw)
    assert info2["from_cache"] and info2["checkpoint"] == info["checkpoint"]
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())  # exact: repeat
    with pytest.raises(ValueError, match="unknown ResNet override"):
        B.resnet_training_config("quick", depth=3)


# ---------------------------------------------------------------------------------------------
# Chapter helpers
# ---------------------------------------------------------------------------------------------

def test_html_table_formats_and_escapes():
    out = B.html_table([{"a": 0.12345, "b": "<x>", "c": float("nan")}], [("a", "A"), ("b", "B"), ("c", "C")],
                       caption="cap", formats={"a": ".2f"})
    assert "<td>0.12</td>" in out and "&lt;x&gt;" in out and "&ndash;" in out and "<caption>cap</caption>" in out
    with pytest.raises(ValueError, match="columns"):
        B.html_table([], [])


def test_fwhm_by_hand():
    assert B.fwhm(np.array([0, 0.5, 1, 0.5, 0])) == pytest.approx(2.0)
    assert B.fwhm(np.array([0, 0, 1, 0, 0])) == pytest.approx(1.0)
    # the bilinear kernel of map row 7 in a 14 -> 224 upsampling, sampled at the pixel centres:
    # weights 1 - |(y + 0.5)/16 - 7.5|, peak 31/32 at rows 119 and 120, half of it (31/64) crossed
    # between rows 111 (15/32) and 112 (17/32) at 111.25, and symmetrically at 127.75
    assert B.fwhm(B.bilinear_matrix()[:, 7]) == pytest.approx(127.75 - 111.25)
    with pytest.raises(ValueError, match="non-negative"):
        B.fwhm(np.array([-1.0, 1.0]))


# ---------------------------------------------------------------------------------------------
# Data for the chapter, synthetic and real
# ---------------------------------------------------------------------------------------------

def test_labelled_images_and_objects_above_synthetic():
    from helpers.data import synthetic_batch

    x, y = B.labelled_images("quick", 3, seed=5)
    ref = synthetic_batch(3, 5)
    assert torch.equal(x, ref.images) and torch.equal(y, ref.labels)  # exact: repeat
    images, boxes = B.objects_above("quick", 4, seed=6)
    assert images.shape == (4, 3, 224, 224)
    assert (boxes[:, 1] <= 170).all() and (boxes[:, 0] < boxes[:, 1]).all()
    with pytest.raises(ValueError, match="positive"):
        B.objects_above("quick", 0)


@pytest.fixture()
def tiny_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("a", "b"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return tmp_path


def test_real_data_paths(tiny_folder, tmp_path, monkeypatch):
    import dataclasses

    from helpers.config import get_profile

    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    full = get_profile("full")
    prof = full.replace(data=dataclasses.replace(full.data, root=str(tiny_folder), num_classes=2))
    images, boxes = B.objects_above(prof, 3, seed=1, size=32)
    for img, (t, b, lf, rt) in zip(images, boxes.long().tolist()):
        assert b <= 170 and b - t == 32 and rt - lf == 32
        outside = img.clone()
        outside[:, t:b, lf:rt] = 0
        assert outside.abs().max() == 0 and img[:, t:b, lf:rt].abs().max() > 0  # exact: exact-float
    x, y = B.labelled_images(prof, 3)
    assert x.shape == (3, 3, 224, 224) and set(y.tolist()) <= {0, 1}
    model, info = B.train_or_load_resnet(prof, device="cpu", show_progress=False, width=0.25, epochs=1,
                                         batch_size=2, num_workers=0)
    assert len(info["history"]) == 1 and info["config"]["data"]["source"] == "imagefolder"
    wrong = full.replace(data=dataclasses.replace(full.data, root=str(tiny_folder), num_classes=5))
    with pytest.raises(ValueError, match="classes"):
        B.train_or_load_resnet(wrong, device="cpu", show_progress=False, width=0.25, epochs=1,
                               batch_size=2, num_workers=0)
