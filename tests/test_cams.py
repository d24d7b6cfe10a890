"""helpers.cams: every method against pytorch-grad-cam's own class, the wall's exact zeros,
Opti-CAM on a model whose answer is known, and bad input."""

from __future__ import annotations

import contextlib
import copy
import io
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import pytorch_grad_cam as pgc
from helpers import cams, metrics
from helpers.models import rvgg, theory_cnn

ROOT = Path(__file__).resolve().parent.parent
DEAD_CHANNELS = (
    1,
    5,
)  # conv5_3 filters set to zero: flat (all-zero) activation channels


@pytest.fixture(scope="module")
def model():
    """A walled rVGG at width 1/32 (8 channels at the target layer), random init, with small
    non-zero biases (FullGrad reads them) and two dead channels (flat maps)."""
    torch.manual_seed(0)
    m = rvgg(10, width=1 / 32).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.normal_(mod.bias, 0.0, 0.05)
            elif isinstance(mod, nn.Linear):
                nn.init.normal_(mod.bias, 0.0, 0.01)
        last = m.features[28]
        for k in DEAD_CHANNELS:
            last.weight[k] = 0.0
            last.bias[k] = -1.0  # ReLU(-1) = 0 everywhere
    return m


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def ours(model, images):
    with warnings.catch_warnings():
        warnings.simplefilter(
            "error"
        )  # nothing of ours may warn (the book fails on stderr)
        return cams.compute_cams(
            model, images, None, batch_size=2, options={"opticam": {"iterations": 2}}
        )


@contextlib.contextmanager
def _quiet_and_fast(model, full_backward=False):
    """Silence the library's progress bars; freeze the parameters it does not need gradients
    for (its results do not depend on them; its backward pass is then 2-3x cheaper)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    if not full_backward and hasattr(model, "target_layer"):
        # keep one layer before the target trainable, so that its output requires grad
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        for p in convs[-1].parameters():
            p.requires_grad_(True)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
            yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _release(cam):
    ag = (
        cam.activations_and_grads
        if hasattr(cam, "activations_and_grads")
        else cam.base_cam.activations_and_grads
    )
    ag.gradients, ag.activations = [], []
    ag.release()


def _library(model, images, name):
    """pytorch-grad-cam's own class, run the usual way."""
    cls = getattr(pgc, name)
    with _quiet_and_fast(model, full_backward=name in ("FullGrad", "ShapleyCAM")):
        cam = cls(model, []) if name == "FullGrad" else cls(model, [model.target_layer])
        out = cam(images, None)
        _release(cam)
    return out


#: Library classes that only read the target layer's activations and gradients: one library
#: forward/backward pass (GradCAM's) serves them all, through each class's own pipeline.
_SHARED = (
    "GradCAM",
    "GradCAMPlusPlus",
    "XGradCAM",
    "HiResCAM",
    "LayerCAM",
    "GradCAMElementWise",
    "EigenCAM",
    "EigenGradCAM",
    "SegEigenCAM",
    "KPCA_CAM",
    "FEM",
)


class _Captured:
    """A frozen copy of the activations and gradients the library captured (so that one
    class's clean-up cannot clear another's)."""

    def __init__(self, ag):
        self.activations, self.gradients, self.handles = (
            list(ag.activations),
            list(ag.gradients),
            [],
        )

    def release(self):
        pass


@pytest.fixture(scope="module")
def library(model, images):
    out = {}
    with _quiet_and_fast(model):
        base = pgc.GradCAM(model, [model.target_layer])
        out["GradCAM"] = base(images, None)
        targets = [
            pgc.utils.model_targets.ClassifierOutputTarget(int(c))
            for c in base.outputs.argmax(dim=1)
        ]
        for name in _SHARED[1:]:
            cam = getattr(pgc, name)(model, [model.target_layer])
            cam.activations_and_grads.release()
            cam.activations_and_grads = _Captured(base.activations_and_grads)
            per_layer = cam.compute_cam_per_layer(images, targets, False)
            out[name] = cam.aggregate_multi_layers(per_layer)
        _release(base)
    for name in ("ScoreCAM", "AblationCAM", "FullGrad", "ShapleyCAM", "FinerCAM"):
        out[name] = _library(model, images, name)
    return out


LIBRARY_METHODS = [
    m.key for m in cams.METHODS.values() if m.library and m.key != "randomcam"
]


@pytest.mark.parametrize("key", LIBRARY_METHODS)
def test_every_method_equals_pytorch_grad_cam(library, ours, key):
    expected = library[cams.METHODS[key].library]
    got = ours[key].scaled
    assert got.shape == expected.shape == (2, 224, 224)
    assert np.abs(got - expected).max() <= 1e-4
    assert got.max() > 0.99  # not a trivially equal pair of zero maps


def test_randomcam_equals_the_library_with_the_same_seed(model, images):
    np.random.seed(7)
    with _quiet_and_fast(model):
        cam = pgc.RandomCAM(model, [model.target_layer])
        expected = cam(images[:1], None)
        _release(cam)
    got = cams.saliency(model, images[:1], "randomcam", seed=7)
    assert np.abs(got - expected).max() <= 1e-5
    # and each image's map does not depend on the batching: the random weights are the same,
    # the activations of a batch of 1 and of 2 differ by rounding only (another kernel order:
    # 1.5e-6 on an AVX2 machine), so the maps agree to the map tolerance (TESTING.md), 1e-4.
    a = cams.compute_cams(model, images, ["randomcam"], batch_size=1)["randomcam"]
    b = cams.compute_cams(model, images, ["randomcam"], batch_size=2)["randomcam"]
    np.testing.assert_allclose(a.scaled, b.scaled, rtol=0, atol=1e-4)


def test_scorecam_skips_flat_channels_and_counts_them(ours):
    a = ours["scorecam"].extras
    assert a["flat_channels"] + a["forward_images"] + a["unread_masks"] == 2 * 8
    assert a["flat_channels"] >= 2 * len(DEAD_CHANNELS)
    assert (
        a["rows_share"] == 176 / 224
    )  # the walled model's masked images run on the top 176 rows


def test_raw_maps_are_the_scaled_maps_before_min_max(model, images, ours):
    for key in ("gradcam", "hirescam", "scorecam", "opticam"):
        r = ours[key]
        assert r.low.shape == r.signed.shape == (2, 14, 14)
        np.testing.assert_array_equal(
            r.low, np.maximum(r.signed, 0)
        )  # exact: exact-float
        for i in range(2):
            np.testing.assert_allclose(
                r.upsampled[i], cv2.resize(r.low[i], (224, 224)), rtol=0, atol=1e-6
            )
            up = r.upsampled[i]
            expected = (up - up.min()) / (up.max() - up.min())
            np.testing.assert_allclose(r.scaled[i], expected, atol=1e-5)
    raw = cams.saliency(model, images, "gradcam", raw=True)
    np.testing.assert_allclose(raw, ours["gradcam"].upsampled, rtol=1e-5, atol=1e-7)
    # FullGrad is born at the input's size
    assert ours["fullgrad"].low.shape == (2, 224, 224)


def test_gradcam_by_hand(model, images, ours):
    """GradCAM's 14x14 map from autograd directly: relu(sum_k mean(dy/dA_k) A_k)."""
    store = {}
    handle = model.target_layer.register_forward_hook(
        lambda m, i, o: store.setdefault("a", o)
    )
    x = images[:1].clone()
    logits = model(x)
    handle.remove()
    c = int(logits.argmax())
    (g,) = torch.autograd.grad(logits[0, c], store["a"])
    expected = (
        torch.relu((g.mean(dim=(2, 3), keepdim=True) * store["a"]).sum(1))[0]
        .detach()
        .numpy()
    )
    np.testing.assert_allclose(ours["gradcam"].low[0], expected, rtol=1e-4, atol=1e-6)
    assert ours["gradcam"].targets[0] == c


def test_the_wall_exactly(model, images, ours):
    """On a walled model: element-wise methods are exactly 0 behind the wall (mu = 0 on every
    image, map rows 5..13 zero); GradCAM is not (mu > 0)."""
    for key in ("hirescam", "layercam", "gradcamelementwise", "fullgrad"):
        mu = metrics.dead_zone_share(ours[key].scaled, model=model)
        np.testing.assert_array_equal(mu, 0.0)  # exact: wall
        assert (ours[key].scaled.max(axis=(1, 2)) > 0).all()
    for key in ("hirescam", "layercam", "gradcamelementwise"):
        assert (ours[key].signed[:, 5:] == 0).all()
        assert (metrics.first_zero_row(ours[key].scaled) <= 88).all()
    # FullGrad's finest term (the input gradient) is zero exactly on the unseen rows
    assert (metrics.first_zero_row(ours["fullgrad"].scaled) == 170).all()
    assert (metrics.dead_zone_share(ours["gradcam"].scaled, model=model) > 0).all()


def test_shapleycam_is_gradcam_when_the_head_is_piecewise_linear(ours):
    assert ours["shapleycam"].extras["max_abs_hvp"] == 0.0  # exact: wall
    np.testing.assert_allclose(
        ours["shapleycam"].scaled, ours["gradcam"].scaled, atol=1e-6
    )


def test_explicit_targets(model, images, ours):
    top = ours["gradcam"].targets
    same = cams.saliency(model, images, "gradcam", targets=list(top))
    np.testing.assert_allclose(same, ours["gradcam"].scaled, atol=1e-6)
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    other = [(int(t) + 1) % 10 for t in top]
    a = cams.saliency(model, images, "hirescam", targets=other)
    b = cams.saliency(
        model, images, "hirescam", targets=[ClassifierOutputTarget(t) for t in other]
    )
    np.testing.assert_array_equal(a, b)  # exact: repeat
    assert (
        np.abs(a - ours["hirescam"].scaled).max() > 0.01
    )  # another class, another map
    one = cams.saliency(model, images, "gradcam", targets=3)
    np.testing.assert_allclose(
        one, cams.saliency(model, images, "gradcam", targets=[3, 3])
    )


def test_targets_of_the_wrong_length_are_an_error(model, images):
    with pytest.raises(ValueError, match="3 entries but the batch has 2"):
        cams.saliency(model, images, "gradcam", targets=[1, 2, 3])
    # every method checks the classes, FullGrad (which has a pass of its own) included
    for method in ("gradcam", "fullgrad", "scorecam"):
        with pytest.raises(
            ValueError,
            match=r"class indices in 0\.\.9 \(the model has 10 classes\), got 1\.\.10",
        ):
            cams.saliency(model, images, method, targets=[1, 10])
    with pytest.raises(TypeError, match="class index"):
        cams.saliency(model, images, "gradcam", targets=["cat", 1])


def test_all_flat_activations_give_zero_maps_not_nan(model, images):
    """conv5_3 switched off: every channel flat (all zero), logits all zero."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.features[28].weight.zero_()
        m.features[28].bias.zero_()
        for layer in m.classifier:
            if isinstance(layer, nn.Linear):
                layer.bias.zero_()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = cams.compute_cams(
            m, images[:2], None, options={"opticam": {"iterations": 1}}
        )
    for key, r in res.items():
        for arr in (r.scaled, r.upsampled, r.low, r.signed):
            assert np.isfinite(arr).all(), key
        assert "nonfinite_replaced" not in r.extras, key
        if key not in ("fullgrad",):
            assert (r.scaled == 0).all(), key
    assert res["ablationcam"].extras["zero_logit_images"] == 2


class _KnownAnswer(nn.Module):
    """Three channels at the target layer, each the 4x4-pooled first input channel (56x56
    images, a 14x14 map) on a fixed region: R0 = map rows 0..8, R1 = rows 5..12, R2 = columns 0..3 (they overlap;
    row 13 right of column 3 is in none, so the map's minimum is 0).
    The class-0 logit reads channel 0 only: y0 = sum_s A_0(s).

    Opti-CAM's mask is S / max S on the regions (S = sum_k w_k R_k); on the cells of R0
    that no other region covers it equals w_0 / max S, which is 1 only when w_1 = w_2 = 0.
    So the optimum puts all the weight on channel 0, and the masked logit then equals the
    unmasked one up to the blur of the upsampled mask's border.
    """

    def __init__(self):
        super().__init__()
        regions = torch.zeros(3, 14, 14)
        regions[0, :9] = 1
        regions[1, 5:13] = 1
        regions[2, :, :4] = 1
        self.register_buffer("regions", regions)
        self.pool = nn.AvgPool2d(4)
        self.relu = nn.ReLU()
        self.unused = nn.Parameter(torch.zeros(1))
        self.target_layer = self.relu

    def forward(self, x):
        a = self.relu(self.pool(x[:, :1]) * self.regions[None])
        y0 = a[:, 0].sum(dim=(1, 2))
        return torch.stack([y0, torch.zeros_like(y0)], dim=1)


def test_opticam_finds_the_known_answer():
    model = _KnownAnswer()
    x = torch.ones(1, 3, 56, 56)
    signed, info = cams.opticam(model, x, targets=[0], iterations=60, lr=0.1)
    w = info["weights"][0]
    assert w[0] > 0.95 and w[0] == w.max()
    assert info["final_score"][0] > info["initial_score"][0] + 10
    assert (
        info["final_score"][0] >= 0.9 * info["logit"][0]
    )  # masked to black: the blurred border costs more
    assert info["logit"][0] == pytest.approx(
        9 * 14
    )  # 126 cells of R0, each pooled to 1
    # the map is then (almost) channel 0 alone
    np.testing.assert_allclose(
        signed[0] / signed[0].max(), model.regions[0].numpy(), atol=0.06
    )


def test_opticam_without_iterations_is_the_channel_mean(model, images):
    signed, info = cams.opticam(model, images[:2], iterations=0)
    store = {}
    h = model.target_layer.register_forward_hook(
        lambda m, i, o: store.setdefault("a", o.detach())
    )
    with torch.no_grad():
        model(images[:2])
    h.remove()
    np.testing.assert_allclose(
        signed, store["a"].relu().mean(dim=1).numpy(), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(info["weights"], 1 / 8)
    np.testing.assert_allclose(info["final_score"], info["initial_score"])


def test_any_model_through_the_generic_head():
    """The theory CNN is not VGG-shaped: the layers after the target run through the whole
    model with the target's output replaced. AblationCAM still equals the library's."""
    tm = theory_cnn(filters=6, num_classes=4, seed=0).eval()
    x = torch.randn(2, 1, 29, 29, generator=torch.Generator().manual_seed(3))
    res = cams.compute_cams(tm, x, ["ablationcam", "gradcam", "hirescam"])
    for key in res:
        expected = _library(tm, x, cams.METHODS[key].library)
        assert res[key].scaled.shape == (2, 29, 29)
        assert np.abs(res[key].scaled - expected).max() <= 1e-4, key
    # the theory model hides map rows 7..13 of its 14x14 dense input: HiResCAM sees nothing there
    assert (res["hirescam"].signed[:, 14:] == 0).all()


def test_registry_is_complete_and_cited():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    for m in cams.METHODS.values():
        assert m.cite in keys, m.key
        assert m.weights in ("global", "element-wise", "element-wise, centred")
        assert (
            m.prediction
            == {
                "global": "leaks",
                "element-wise": "blind",
                "element-wise, centred": "may leak",
            }[m.weights]
        )
        assert m.key.isalnum() and m.key == m.key.lower()
        assert cams.get_method(m.display) is m
        if m.library:
            assert cams.get_method(m.library) is m
    assert cams.PAPER_METHODS == (
        "gradcam",
        "gradcampp",
        "xgradcam",
        "scorecam",
        "ablationcam",
        "eigencam",
        "hirescam",
        "opticam",
    )
    # every CAM class pytorch-grad-cam exports is either in the registry or left out with a reason
    exported = {
        name
        for name in dir(pgc)
        if isinstance(getattr(pgc, name), type)
        and (
            name.endswith("CAM")
            or name
            in (
                "FullGrad",
                "FEM",
                "SESS",
                "GuidedBackpropReLUModel",
                "DeepFeatureFactorization",
            )
        )
    }
    covered = {m.library for m in cams.METHODS.values() if m.library}
    left = {name.split(" ")[0] for name in cams.LEFT_OUT}
    assert exported - covered - left == set()


def test_every_method_has_a_runner_and_its_options_a_method():
    """What adding a method takes (``helpers/cams/__init__.py``): a registry entry and a runner."""
    from helpers.cams import api

    assert set(api._RUNNERS) | {"fullgrad"} == set(cams.METHODS)
    assert set(cams.METHOD_OPTIONS) <= set(cams.METHODS)
    assert all(hasattr(cams, name) for name in cams.__all__)


@pytest.mark.parametrize(
    "name, match",
    [
        ("grad-cam", None),
        ("Grad-CAM++", None),
        ("GradCAMPlusPlus", None),
        ("Opti-CAM", None),
        ("KPCA_CAM", None),
        ("nosuchcam", "Unknown CAM method"),
        ("GuidedBackpropReLUModel", "not a CAM"),
        ("SESS", "move the wall"),
    ],
)
def test_method_names(name, match):
    if match is None:
        assert cams.get_method(name).key in cams.METHODS
    else:
        with pytest.raises(ValueError, match=match):
            cams.get_method(name)


def test_bad_input(model, images):
    with pytest.raises(TypeError, match="torch.from_numpy"):
        cams.saliency(model, images.numpy(), "gradcam")
    with pytest.raises(ValueError, match="unsqueeze"):
        cams.saliency(model, images[0], "gradcam")
    with pytest.raises(TypeError, match="floating point"):
        cams.saliency(model, images.to(torch.uint8), "gradcam")
    with pytest.raises(ValueError, match="NaN"):
        cams.saliency(model, images * float("nan"), "gradcam")
    with pytest.raises(ValueError, match="empty"):
        cams.saliency(model, images[:0], "gradcam")
    with pytest.raises(ValueError, match="no option"):
        cams.saliency(model, images, "gradcam", iterations=3)
    with pytest.raises(ValueError, match="not a module of this model"):
        cams.saliency(model, images, "gradcam", target_layer=nn.ReLU())
    with pytest.raises(ValueError, match="target_layer"):
        cams.saliency(
            nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten()), images, "gradcam"
        )
    with pytest.raises(ValueError, match="iterations"):
        cams.opticam(model, images, iterations=-1)
    with pytest.raises(ValueError, match="batch_size"):
        cams.compute_cams(model, images, ["gradcam"], batch_size=0)


def test_activations_and_gradients_know_the_wall(model, images, ours):
    A, G, targets = cams.activations_and_gradients(model, images)
    assert A.shape == G.shape == (2, 8, 14, 14)
    np.testing.assert_array_equal(targets, ours["gradcam"].targets)  # exact: integer
    assert (G[:, :, 5:] == 0).all() and np.abs(
        G[:, :, :5]
    ).max() > 0  # the wall, exactly
    assert (A[:, :, 5:] > 0).any()  # ... but not in the activations
    # GradCAM from them by hand
    gradcam = np.maximum((G.mean(axis=(2, 3), keepdims=True) * A).sum(axis=1), 0)
    np.testing.assert_allclose(gradcam, ours["gradcam"].low, rtol=1e-5, atol=1e-7)


def test_the_registry_file_reads_back_as_written_by_hand():
    from helpers.cams import registry

    text = (
        '[[method]]\nkey = "toy"\ndisplay = "Toy"\ncite = "x"\nweights = "global"\nprediction = "leaks"\n'
        'signal = "gradient"\nformula = \'\\alpha_k\'\nin_paper = false\nnote = "grad_note"\n'
    )
    (toy,) = registry.read_methods(text)
    assert toy == registry.CamMethod(
        "toy",
        "Toy",
        "x",
        "global",
        "leaks",
        "gradient",
        "\\alpha_k",
        None,
        False,
        registry.GRAD_NOTE,
    )
    with pytest.raises(ValueError, match="unknown field"):
        registry.read_methods(text + 'colour = "red"\n')
    # the file holds the paper's eight methods first, in the order of its Table 1
    assert list(registry.PAPER_METHODS) == [m.key for m in registry.read_methods()][:8]
    assert registry.PAPER_METHODS == (
        "gradcam",
        "gradcampp",
        "xgradcam",
        "scorecam",
        "ablationcam",
        "eigencam",
        "hirescam",
        "opticam",
    )
