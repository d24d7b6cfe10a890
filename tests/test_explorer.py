"""The explorer's logic (not the widgets' rendering): the right map, mu and prediction for each
choice, computed once, clear errors for bad choices, the static grid, and the controls."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from helpers import cams  # noqa: E402
from helpers import explorer as E  # noqa: E402


class TinyNet(nn.Module):
    """3 classes from a 4x4 average of the image: enough to have a prediction."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(3 * 16, 3)

    def forward(self, x):
        return self.fc(self.pool(x).flatten(1))


def fake_saliency(model, images, method):
    """A map computable by hand: channel mean, shifted to be >= 0, scaled to max 1, with a
    method-dependent power so that methods differ."""
    power = {"gradcam": 1.0, "hirescam": 2.0, "layercam": 3.0}[method]
    m = images.mean(dim=1)
    m = m - m.amin(dim=(1, 2), keepdim=True)
    m = m / m.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    return (m**power).numpy()


def hand_mu(cam: np.ndarray) -> float:
    """mu by hand: sqrt(sum of squares of rows 170..223) / sqrt(sum of all squares)."""
    total = sum(float(v) ** 2 for v in cam.ravel())
    below = sum(float(v) ** 2 for v in cam[170:].ravel())
    return (below / total) ** 0.5


@pytest.fixture()
def setup():
    gen = torch.Generator().manual_seed(0)
    mix = torch.randn(4, 3, 224, 224, generator=gen)
    gen_set = torch.randn(3, 3, 224, 224, generator=gen)
    labels = torch.tensor([0, 1, 2, 1])
    models = {"walled": TinyNet(1), "baseline": TinyNet(2)}
    ex = E.Explorer(
        models,
        {"STACK-MIX": (mix, labels), "STACK-GEN": gen_set},
        methods=["gradcam", "hirescam", "layercam"],
        saliency=fake_saliency,
        mu=hand_mu,
    )
    return ex, mix, gen_set, labels, models


def test_view_gives_the_map_mu_and_prediction(setup):
    ex, mix, _, labels, models = setup
    v = ex.view("STACK-MIX", 2, "hirescam", "baseline")
    expected = fake_saliency(None, mix[2:3], "hirescam")[0]
    np.testing.assert_allclose(v.cam, expected, rtol=0, atol=1e-7)
    # mu by a second, vectorized computation
    assert v.mu == pytest.approx(
        np.linalg.norm(expected[170:]) / np.linalg.norm(expected), rel=1e-6
    )
    assert v.predicted == int(models["baseline"](mix[2:3]).argmax())
    assert v.label == 2 and v.choice == E.Choice("STACK-MIX", 2, "hirescam", "baseline")
    assert torch.equal(v.image, mix[2])  # exact: exact-float


def test_views_are_computed_once_and_batched(setup):
    ex, *_ = setup
    calls = []

    def counting(model, images, method):
        calls.append(images.shape[0])
        return fake_saliency(model, images, method)

    ex._saliency = counting
    first = ex.views("STACK-MIX", [0, 1, 3], "gradcam", "walled")
    again = ex.view("STACK-MIX", 1, "gradcam", "walled")
    assert calls == [3] and ex.computed == 3
    assert again is first[1]
    ex.views("STACK-MIX", [1, 2], "gradcam", "walled")  # only image 2 is new
    assert calls == [3, 1] and ex.computed == 4


def test_cache_keeps_only_the_latest_views(setup):
    ex, *_ = setup
    ex._cache_size = 2
    for i in range(3):
        ex.view("STACK-GEN", i, "gradcam", "walled")
    assert [c.index for c in ex._cache] == [1, 2]
    # asking for more views at once than the cache holds still returns them all
    views = ex.views("STACK-MIX", [0, 1, 2, 3], "hirescam", "walled")
    assert [v.choice.index for v in views] == [0, 1, 2, 3] and len(ex._cache) == 2
    with pytest.raises(ValueError, match="cache_size"):
        E.Explorer({"m": TinyNet(0)}, {"S": torch.zeros(1, 3, 224, 224)}, cache_size=0)


@pytest.mark.parametrize(
    "args, message",
    [
        (("STACK-X", 0, "gradcam", "walled"), "Unknown stack set 'STACK-X'"),
        (
            ("STACK-GEN", 3, "gradcam", "walled"),
            "out of range for STACK-GEN \\(it has 3 images: 0..2\\)",
        ),
        (("STACK-GEN", -1, "gradcam", "walled"), "out of range"),
        (("STACK-GEN", True, "gradcam", "walled"), "out of range"),
        (("STACK-GEN", 0, "scorecam", "walled"), "Unknown method 'scorecam'"),
        (("STACK-GEN", 0, "gradcam", "other"), "Unknown model 'other'"),
    ],
)
def test_bad_choices_name_the_valid_options(setup, args, message):
    ex, *_ = setup
    with pytest.raises(ValueError, match=message):
        ex.view(*args)


def test_options_list_what_can_be_chosen(setup):
    ex, *_ = setup
    assert ex.options == {
        "stack": ["STACK-MIX", "STACK-GEN"],
        "method": ["gradcam", "hirescam", "layercam"],
        "model": ["walled", "baseline"],
        "images": {"STACK-MIX": 4, "STACK-GEN": 3},
    }


def test_stack_sets_in_every_accepted_shape_and_bad_ones():
    imgs = torch.zeros(2, 3, 224, 224)

    class StackSet:
        images = imgs
        labels = torch.tensor([1, 0])
        classes = ["disc", "star"]

    assert E.as_images(imgs)[0] is imgs
    got = E.as_images(StackSet())
    assert got[2] == ["disc", "star"] and got[1].tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"\(N, 3, 224, 224\)"):
        E.as_images(torch.zeros(2, 1, 224, 224))
    with pytest.raises(ValueError, match="one per image"):
        E.as_images((imgs, torch.tensor([0, 1, 2])))
    with pytest.raises(TypeError, match="StackSet"):
        E.as_images([1, 2, 3])
    with pytest.raises(ValueError, match="at least one model"):
        E.Explorer({}, {"S": imgs})


def test_a_saliency_function_of_the_wrong_shape_is_caught(setup):
    ex, *_ = setup
    ex._saliency = lambda model, images, method: np.zeros((images.shape[0], 14, 14))
    with pytest.raises(
        ValueError, match=r"shape \(1, 14, 14\).*expected \(1, 224, 224\)"
    ):
        ex.view("STACK-MIX", 0, "gradcam", "walled")


def test_class_names_from_the_stack_or_a_fallback(setup):
    ex, *_ = setup
    assert (
        ex.class_name("STACK-MIX", 2) == "class 2"
        and ex.class_name("STACK-MIX", None) == "unknown"
    )
    assert ex.class_name("STACK-MIX", -1) == "unknown"  # an unlabelled image


def test_small_multiples_grid_and_its_values(setup):
    ex, *_ = setup
    fig, shown = ex.small_multiples(
        {"STACK-MIX": 1, "STACK-GEN": 2}, methods=["gradcam", "hirescam"]
    )
    try:
        assert len(fig.axes) == 3 * 4  # (image row + 2 methods) x (2 stacks x 2 models)
        assert set(shown) == {
            (s, m, k)
            for s in ("STACK-MIX", "STACK-GEN")
            for m in ("walled", "baseline")
            for k in ("gradcam", "hirescam")
        }
        v = shown[("STACK-GEN", "walled", "hirescam")]
        assert v.choice.index == 2 and v.mu == pytest.approx(hand_mu(v.cam))
        titles = [ax.get_title() for ax in fig.axes]
        assert f"mu = {v.mu:.2f}" in titles
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="No method to draw"):
        ex.small_multiples(methods=[])


def test_figure_of_one_view_shows_mu(setup):
    ex, *_ = setup
    v = ex.view("STACK-MIX", 0, "layercam", "walled")
    fig = ex.figure(v)
    try:
        assert any(f"mu = {v.mu:.3f}" in ax.get_title() for ax in fig.axes)
    finally:
        plt.close(fig)


def test_widget_controls_drive_the_view(setup):
    pytest.importorskip("ipywidgets")
    ex, *_ = setup
    ui = ex.widget()
    assert ui.last_view.choice == E.Choice("STACK-MIX", 0, "gradcam", "walled")
    assert ui.controls["index"].max == 3
    ui.controls["method"].value = "hirescam"
    assert ui.last_view.choice.method == "hirescam"
    ui.controls["model"].value = "baseline"
    ui.controls["index"].value = 3
    assert ui.last_view.choice == E.Choice("STACK-MIX", 3, "hirescam", "baseline")
    ui.controls[
        "stack"
    ].value = "STACK-GEN"  # 3 images: the slider shrinks, index clamps to 2
    assert ui.controls["index"].max == 2
    assert ui.last_view.choice == E.Choice("STACK-GEN", 2, "hirescam", "baseline")
    assert f"mu = {ui.last_view.mu:.3f}" in ui.status.value
    plt.close("all")


def test_method_labels_come_from_the_cam_registry_or_are_given(setup):
    ex, *_ = setup
    assert ex.labels == {
        "gradcam": "GradCAM",
        "hirescam": "HiResCAM",
        "layercam": "LayerCAM",
    }
    imgs = torch.zeros(1, 3, 224, 224)
    other = E.Explorer(
        {"m": TinyNet(0)},
        {"S": imgs},
        methods=["gradcam", "mine"],
        saliency=fake_saliency,
        mu=hand_mu,
        labels={"gradcam": "Grad-CAM"},
    )
    assert other.labels == {"gradcam": "Grad-CAM", "mine": "mine"}


def test_with_the_real_cam_helper_hirescam_respects_a_real_wall():
    # Integration with helpers.cams on a tiny walled rVGG: HiResCAM's map is zero on rows
    # 170..223 (element-wise weights and the wall's geometry), so mu is exactly 0.
    from helpers.models import rvgg

    torch.manual_seed(0)
    models = {"walled": rvgg(4, width=1 / 32)}
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    ex = E.Explorer(models, {"S": images}, methods=["hirescam", "gradcam"], mu=hand_mu)
    v = ex.view("S", 1, "hirescam", "walled")
    assert (
        v.cam.shape == (224, 224) and float(np.abs(v.cam[170:]).max()) == 0.0
    )  # exact: wall
    assert v.mu == 0.0  # exact: wall
    assert v.predicted == int(models["walled"](images[1:2]).argmax())


def test_small_multiples_ask_for_all_methods_of_a_column_at_once(setup):
    ex, mix, *_ = setup
    calls = []

    def many(model, images, methods):
        calls.append((images.shape[0], tuple(methods)))
        return {m: fake_saliency(model, images, m) for m in methods}

    ex._saliency_many = many
    fig, shown = ex.small_multiples(
        {"STACK-MIX": 3}, methods=["gradcam", "layercam"], models=["walled"]
    )
    plt.close(fig)
    assert calls == [(1, ("gradcam", "layercam"))]
    np.testing.assert_allclose(
        shown[("STACK-MIX", "walled", "layercam")].cam,
        fake_saliency(None, mix[3:4], "layercam")[0],
        atol=1e-7,
    )
    ex.small_multiples(
        {"STACK-MIX": 3}, methods=["gradcam", "layercam"], models=["walled"]
    )
    plt.close("all")
    assert len(calls) == 1  # everything cached


def test_method_lists_follow_the_registry_order():
    """The explorer lists its methods as every table of the book does: the registry's order."""
    order = list(cams.METHODS)
    for names in (E.DEFAULT_METHODS, E.STATIC_METHODS):
        assert list(names) == sorted(names, key=order.index)
    assert set(E.STATIC_METHODS) <= set(E.DEFAULT_METHODS)
