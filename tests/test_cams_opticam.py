"""helpers.cams.opticam against the authors' Opti-CAM, step by step.

The reference: repository hanwei0912/OptiCAM, commit 964ad1491757fbeaafd6b97b8538be814bcfe9ce,
file ``util.py``: class ``Basic_OptCAM`` (``forward``, ``combine_activations``, ``get_loss``,
``get_f``, ``normalization``), functions ``f_logit_predict`` and ``normlization_max_min``, class
``Preprocessing_Layer``; run with the settings of its demo ``generate_opticam.py``
(``name_f='logit_predict'``, ``name_loss='plain'``, ``name_norm='max_min'``,
``name_mode='resnet'``, ``max_iter=50``, ``learning_rate=0.1``, a mean/std layer in front of
the model, images in ``[0, 1]``). The repository carries no licence, so :func:`reference_opticam`
re-expresses that code operation by operation rather than copying it; its departures: the
activations are grabbed with the installed pytorch-grad-cam's ``ActivationsAndGradients``
given ``[target_layer]`` (the authors vendored an older copy that took one layer), the
progress print is left out, and it also returns the step at which it stopped.

**Compared where the comparison is stable** (TESTING.md). Opti-CAM amplifies rounding: Adam
turns a gradient that is zero up to rounding (a dead channel's) into a step of any sign, a
1-ulp change of the mask moves a max-pool's winner, and the early stop compares losses that
differ in their last digits. A run on another batch size or memory layout ends, after 50 steps,
up to 0.1 away on a map in [0, 1], with the same algorithm. So both sides here run the same
float operations: the reference's model is fed our memory layout, its ``[0, 1]`` images are
ours (``x * std + mean``, of images whose round trip is exact), and an image's per-image run is
compared with the reference on that image alone through a model that runs images one at a time.
Then the maps agree to 1e-5 (they agree bit for bit on the CPUs this was written on) and the
stopping steps are the same.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
from torch import nn

from helpers import cams
from helpers.cams.api import postprocess
from helpers.cams.opticam import imagenet_stats, iteration_sweep
from helpers.cams.shared_pass import fast_layout
from helpers.data import IMAGENET_MEAN, IMAGENET_STD, normalize
from helpers.metrics import dead_zone_share
from helpers.models import rvgg

TOL = 1e-5  # on maps in [0, 1] (max-min normalized: the maximum is 1)


class _ChannelsLast(nn.Module):
    """Our passes' memory layout (``helpers.cams.shared_pass.fast_layout``), put in front of the
    model the reference runs, so that both sum in the same order."""

    def forward(self, x):
        return fast_layout(x)


class _MeanStd(nn.Module):
    """The reference's ``Preprocessing_Layer``: ``(img - mean) / std`` channel by channel."""

    def forward(self, img):
        out = img.clone()
        for c in range(3):
            out[:, c, :, :] = (img[:, c, :, :] - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        return out


def reference_opticam(
    model01: nn.Module,
    target_layer: nn.Module,
    images01: torch.Tensor,
    labels: torch.Tensor,
    max_iter: int,
    lr: float,
) -> tuple[torch.Tensor, int]:
    """``Basic_OptCAM(model01, device, max_iter, lr, target_layer, 'logit_predict', 'plain',
    'max_min', 'resnet')(images01, labels)``: the max-min normalized map ``(N, 1, H, W)`` and
    the step at which it stopped (``max_iter`` when the loss never rose)."""
    model01.eval()  # Basic_OptCAM.__init__: self.model = model.eval()
    n = images01.shape[0]

    def f(x):  # f_logit_predict: the labels' logits, picked with a one-hot mask
        outputs = model01(x)
        one_hot = torch.eye(len(outputs[0]))[labels]
        return torch.masked_select(outputs, one_hot.bool())

    def combine(w):  # combine_activations with normlization_max_min
        alpha = torch.softmax(w, dim=1)
        h, wd = feature.shape[2], feature.shape[3]
        sal = (alpha.repeat((1, 1, h, wd)) * feature).sum(axis=1).reshape((n, 1, h, wd))
        sal = F.interpolate(
            sal,
            size=(images01.shape[2], images01.shape[3]),
            mode="bilinear",
            align_corners=False,
        )
        hi = sal.view(n, -1).max(dim=-1)[0]
        lo = sal.view(n, -1).min(dim=-1)[0]
        delta = (
            (hi - lo).reshape((n, 1, 1, 1)).repeat((1, 1, sal.shape[2], sal.shape[3]))
        )
        lo = lo.reshape((n, 1, 1, 1)).repeat((1, 1, sal.shape[2], sal.shape[3]))
        norm = (sal - lo) / delta
        return norm, norm.repeat((1, images01.shape[1], 1, 1)) * images01

    grab = ActivationsAndGradients(model01, [target_layer], None)
    grab(images01)
    feature = torch.relu(grab.activations[0])
    grab.release()
    w = (
        0.5 * torch.ones((n, feature.shape[1], 1, 1), dtype=torch.float)
    ).requires_grad_(True)
    optimizer = torch.optim.Adam([w], lr=lr)
    prev = 1e10
    f_images = f(images01)
    for step in range(max_iter):
        norm, new_images = combine(w)
        loss = torch.sum(f_images - f(new_images))  # name_loss == 'plain'
        optimizer.zero_grad()
        loss.backward(retain_graph=True)
        optimizer.step()
        if step % (max_iter // 10) == 0:
            if loss > prev:
                return norm.detach(), step
            prev = loss
    norm, _ = combine(w)
    return norm.detach(), max_iter


def _as_reference_map(signed: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Our ``S(u*)`` upsampled and max-min normalized as the reference does, ``(N, H, W)``."""
    sal = F.interpolate(
        torch.from_numpy(signed)[:, None],
        size=size,
        mode="bilinear",
        align_corners=False,
    )
    lo = sal.amin(dim=(2, 3), keepdim=True)
    return ((sal - lo) / (sal.amax(dim=(2, 3), keepdim=True) - lo))[:, 0].numpy()


class _OneByOne(nn.Module):
    """The model run on one image at a time: the arithmetic of each image does not depend on
    the batch (a convolution over 4 images and over 1 rounds differently)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.target_layer = model, model.target_layer

    def forward(self, x):
        return torch.cat([self.model(x[i : i + 1]) for i in range(x.shape[0])])


@pytest.fixture(scope="module")
def model():
    """A narrow walled rVGG (16 channels at the target layer, three of them dead on these
    images), random weights, small biases."""
    torch.manual_seed(0)
    m = rvgg(10, width=1 / 16).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(mod.bias, 0.0, 0.05)
    for p in m.parameters():
        p.requires_grad_(False)
    return m


@pytest.fixture(scope="module")
def x():
    """Normalized images whose round trip through ``[0, 1]`` is exact: ``_MeanStd(x * std +
    mean)`` is ``x`` bit for bit (one round trip of random images reaches such a point)."""
    x = normalize(
        torch.rand(4, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    )
    mean, std = imagenet_stats(x)
    x = fast_layout(_MeanStd()(x * std + mean))
    assert torch.equal(
        _MeanStd()(x * std + mean), x
    )  # exact: repeat (the same operations twice)
    return x


@pytest.fixture(scope="module")
def images01(x):
    """The ``[0, 1]`` images the reference takes: ``x`` denormalized as Opti-CAM does."""
    mean, std = imagenet_stats(x)
    return x * std + mean


@pytest.fixture(scope="module")
def labels(model, x):
    with torch.no_grad():
        return model(x).argmax(dim=1)


@pytest.fixture(scope="module")
def reference_model(model):
    """What the reference runs: the mean/std layer, then the model, here fed our passes'
    memory layout."""
    return nn.Sequential(_MeanStd(), _ChannelsLast(), model)


def test_stop_batch_is_the_reference_on_the_batch(
    model, x, images01, labels, reference_model
):
    signed, info = cams.opticam(model, x, labels, iterations=50, lr=0.1, stop="batch")
    ref, step = reference_opticam(
        reference_model, model.target_layer, images01, labels, 50, 0.1
    )
    assert (
        np.abs(_as_reference_map(signed, x.shape[-2:]) - ref[:, 0].numpy()).max() <= TOL
    )
    assert step < 50  # the loss summed over the batch rose: the early stop is tested
    assert info["steps"].tolist() == [step] * len(
        x
    )  # exact: repeat (the same float operations)


def test_stop_image_is_the_reference_on_each_image_alone(
    model, x, images01, labels, reference_model
):
    """Each image stops on its own loss; the optimization of the others goes on, on a smaller
    batch. One thread, and the model run one image at a time, so that an image's arithmetic
    does not depend on the batch (with several threads, a sum over one image's pixels is split
    between them, and not over four images)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            acts = []
            hook = model.target_layer.register_forward_hook(
                lambda _m, _i, out: acts.append(out)
            )
            for i in range(len(x)):
                model(x[i : i + 1])
            hook.remove()
        signed, info = cams.opticam(
            _OneByOne(model).eval(),
            x,
            labels,
            iterations=50,
            lr=0.1,
            activations=torch.cat(acts),
        )
        refs = [
            reference_opticam(
                reference_model,
                model.target_layer,
                images01[i : i + 1],
                labels[i : i + 1],
                50,
                0.1,
            )
            for i in range(len(x))
        ]
    finally:
        torch.set_num_threads(threads)
    got = _as_reference_map(signed, x.shape[-2:])
    steps = [step for _, step in refs]
    for i, (ref, _) in enumerate(refs):
        assert np.abs(got[i] - ref[0, 0].numpy()).max() <= TOL, i
    assert info["steps"].tolist() == steps  # exact: repeat (the same float operations)
    # the case the test is for: some images stop early, the others go on (on a smaller batch)
    assert 0 < sum(step < 50 for step in steps) < len(steps), steps
    assert info["stopped"].tolist() == [s < 50 for s in steps]
    assert (info["iterations"], info["lr"], info["stop"]) == (50, 0.1, "image")


def test_compute_cams_gives_opticam_s_maps_and_records_the_settings(model, x, labels):
    signed, info = cams.opticam(model, x, labels, iterations=20, lr=0.1)
    res = cams.compute_cams(
        model,
        x,
        ["opticam"],
        labels,
        batch_size=len(x),
        options={"opticam": {"iterations": 20, "lr": 0.1}},
    )["opticam"]
    # a raw map, relative to its largest value (TESTING.md); the same batch and kernels
    np.testing.assert_allclose(
        res.signed, signed, rtol=0, atol=1e-5 * float(np.abs(signed).max())
    )
    assert res.extras["steps"].tolist() == info["steps"].tolist()
    assert (res.extras["iterations"], res.extras["lr"], res.extras["stop"]) == (
        20,
        0.1,
        "image",
    )
    for name in ("final_score", "initial_score", "logit"):  # logits: 1e-5 relative
        np.testing.assert_allclose(
            res.extras[name],
            info[name],
            rtol=0,
            atol=1e-5 * np.abs(info["logit"]).max(),
        )


class _Halves(nn.Module):
    """A target layer that is 1 on the left half of its 14x14 map and 0 on the right, whatever
    the image (56x56): Opti-CAM's mask is then 1 on the left of the image and 0 on the right.
    Records every input it sees."""

    def __init__(self):
        super().__init__()
        region = torch.zeros(1, 1, 14, 14)
        region[..., :7] = 1
        self.register_buffer("region", region)
        self.relu = nn.ReLU()
        self.target_layer = self.relu
        self.scale = nn.Parameter(torch.ones(1))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        a = self.relu(self.region.expand(x.shape[0], 1, 14, 14))
        y = self.scale * a.sum(dim=(1, 2, 3)) + x[:, 0].mean(dim=(1, 2))
        return torch.stack([y, -y], dim=1)


def test_a_masked_pixel_is_black_in_the_0_1_image():
    model = _Halves()
    image01 = (
        torch.rand(1, 3, 56, 56, generator=torch.Generator().manual_seed(4)) * 0.8 + 0.1
    )
    cams.opticam(model, normalize(image01), [0], iterations=1)
    masked = model.seen[-1]  # the masked image of the one iteration
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    as01 = masked * std + mean
    # the right half (mask 0, clear of the bilinear border) is black, not the mean colour
    assert as01[..., 32:].abs().max() <= 1e-6
    assert (masked[..., 32:] - (-mean / std)).abs().max() <= 1e-6
    # the left half (mask 1) is the image itself
    assert (as01[..., :24] - image01[..., :24]).abs().max() <= 1e-6


def test_iteration_sweep_is_the_evaluation_s_mu(model, x):
    x = x[:2]
    sweep = iteration_sweep(model, x, (0, 3, 10), lr=0.1)
    assert list(sweep) == [0, 3, 10]
    # 0 iterations: the channel mean, post-processed as pytorch-grad-cam and mu by hand
    store = {}
    h = model.target_layer.register_forward_hook(
        lambda m, i, o: store.setdefault("a", o.detach())
    )
    with torch.no_grad():
        model(x)
    h.remove()
    scaled = postprocess(store["a"].relu().mean(dim=1).numpy(), "opticam")[
        "scaled"
    ].astype(np.float64)
    rows = slice(170, 224)
    by_hand = np.sqrt(
        (scaled[:, rows] ** 2).sum(axis=(1, 2)) / (scaled**2).sum(axis=(1, 2))
    )
    np.testing.assert_allclose(
        sweep[0]["mu"], by_hand, rtol=0, atol=1e-4
    )  # mu: 1e-4 absolute
    assert sweep[0]["steps"].tolist() == [0, 0]
    # more iterations: the maps of opticam itself
    for count in (3, 10):
        signed, info = cams.opticam(model, x, iterations=count, lr=0.1)
        expected = dead_zone_share(postprocess(signed, "opticam")["scaled"])
        np.testing.assert_allclose(sweep[count]["mu"], expected, rtol=0, atol=1e-4)
        assert sweep[count]["steps"].tolist() == info["steps"].tolist()
        assert sweep[count]["seconds"] > 0
    with pytest.raises(ValueError, match="distinct non-negative"):
        iteration_sweep(model, x, (10, 10))
    with pytest.raises(ValueError, match="distinct non-negative"):
        iteration_sweep(model, x, 10)


def test_bad_settings_say_what_is_expected(model, x):
    x = x[:1]
    with pytest.raises(ValueError, match="stop must be one of"):
        cams.opticam(model, x, stop="never")
    with pytest.raises(ValueError, match="lr must be a positive"):
        cams.opticam(model, x, lr=0)
    with pytest.raises(ValueError, match="no option"):
        cams.compute_cams(model, x, ["opticam"], options={"opticam": {"patience": 3}})
    with pytest.raises(ValueError, match="RGB images"):
        imagenet_stats(torch.zeros(1, 1, 8, 8))
