"""rVGG, its wall, the theory CNN and the authors' layout, checked against independent builds."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import vgg16
from torchvision.models.vgg import cfgs as vgg_cfgs
from torchvision.models.vgg import make_layers

from helpers.models import (
    AUTHORS_CONV_INDICES,
    RVGG,
    WalledLinear,
    authors_to_rvgg_state_dict,
    load_authors_weights,
    rvgg,
    rvgg_channels,
    rvgg_forward_flops,
    rvgg_to_authors_state_dict,
    theory_cnn,
    wall_mask,
    wall_weights_zero,
)

TINY = 1 / 32


def test_wall_mask_counts_rows_by_hand():
    mask = wall_mask(channels=2, map_size=14, wall_rows=9).view(2, 14, 14)
    # rows 0..4 visible, 5..13 hidden, in every channel and column
    assert mask[:, :5].eq(1).all() and mask[:, 5:].eq(0).all()
    assert int(mask.sum()) == 2 * 5 * 14
    with pytest.raises(ValueError, match="wall_rows"):
        wall_mask(2, 14, 15)


def test_rvgg_shapes_and_target_layer():
    torch.manual_seed(0)
    model = rvgg(num_classes=7, width=TINY).eval()
    seen = {}
    model.target_layer.register_forward_hook(lambda m, i, o: seen.setdefault("a", o))
    out = model(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 7)
    assert seen["a"].shape == (2, model.map_channels, 14, 14)
    assert isinstance(model.target_layer, nn.ReLU) and not model.target_layer.inplace
    # Same depth as VGG16: 13 convolutions, 4 max-pools (the fifth is removed).
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert len(convs) == 13 and len(pools) == 4
    assert [
        i for i, m in enumerate(model.features) if isinstance(m, nn.Conv2d)
    ] == list(AUTHORS_CONV_INDICES)


def test_full_width_channels_match_the_paper():
    cfg_out = [v for v in rvgg_channels(1.0) if v != "M"]
    assert cfg_out == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 256]


def test_wall_is_structural_under_training_and_loading():
    torch.manual_seed(1)
    model = rvgg(num_classes=5, width=TINY)
    first = model.classifier[0]
    assert isinstance(first, WalledLinear)
    hidden = first.mask == 0
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-2)
    x = torch.randn(4, 3, 224, 224)
    for _ in range(3):
        opt.zero_grad()
        model(x).logsumexp(1).sum().backward()
        # The gradient reaching hidden weights is exactly zero (they are never read).
        assert first.weight.grad[:, hidden].abs().max() == 0  # exact: wall
        opt.step()
    assert first.effective_weight[:, hidden].abs().max() == 0  # exact: wall
    # Even if someone writes into the stored weights, the forward pass does not read them.
    with torch.no_grad():
        first.weight[:, hidden] = 123.0
    model.eval()
    y1 = model(x)
    with torch.no_grad():
        first.weight[:, hidden] = float("nan")
    assert torch.isfinite(y1).all() and torch.equal(y1, model(x))  # exact: repeat


def test_loading_an_open_wall_is_refused_or_repaired():
    torch.manual_seed(2)
    model = rvgg(num_classes=5, width=TINY)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["classifier.0.weight"][:, -1] = (
        1.0  # last feature is in row 13: under the wall
    )
    with pytest.raises(ValueError, match="under the wall"):  # helpers.models.WallError
        rvgg(num_classes=5, width=TINY).load_state_dict(state)
    fixed = rvgg(num_classes=5, width=TINY, on_open_wall="repair")
    with pytest.warns(UserWarning, match="zeroing"):
        fixed.load_state_dict(state)
    first = fixed.classifier[0]
    assert first.weight[:, first.mask == 0].abs().max() == 0  # exact: wall
    # a state dict of another shape gives the usual clear size-mismatch error
    other = rvgg(num_classes=6, width=TINY).state_dict()
    with pytest.raises(RuntimeError, match="size mismatch"):
        rvgg(num_classes=5, width=TINY).load_state_dict(other)


def test_bad_inputs_are_clear_errors():
    model = rvgg(num_classes=3, width=TINY).eval()
    with pytest.raises(ValueError, match="224x224"):
        model(torch.randn(1, 3, 256, 256))
    with pytest.raises(ValueError, match="grayscale"):
        model(torch.randn(1, 1, 224, 224))
    with pytest.raises(ValueError, match="batch dimension"):
        model(torch.randn(3, 224, 224))
    with pytest.raises(ValueError, match="image_size"):
        RVGG(num_classes=3, width=TINY, image_size=256)
    with pytest.raises(ValueError, match="width"):
        rvgg(width=0)
    with pytest.raises(ValueError, match="num_classes"):
        rvgg(num_classes=0, width=TINY)


def test_forward_flops_match_torch_flop_counter():
    model = rvgg(num_classes=10, width=1 / 16).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    counted = counter.get_total_flops()
    assert counted == pytest.approx(rvgg_forward_flops(1 / 16, 10), rel=1e-9)


def _authors_model(num_classes: int = 10, width: float = 1.0) -> nn.Sequential:
    """The authors' flat layout, built independently with torchvision's VGG16 ("D") recipe."""
    cfg = [v if v == "M" else int(v * width) for v in vgg_cfgs["D"]]
    feats = list(make_layers(cfg).children())[:30]  # drop the fifth max-pool
    feats[28] = nn.Conv2d(int(512 * width), int(256 * width), kernel_size=3, padding=1)
    hidden = int(4096 * width)
    classifier = nn.Sequential(
        nn.Linear(int(256 * width) * 14 * 14, hidden),
        nn.ReLU(True),
        nn.Dropout(),
        nn.Linear(hidden, hidden),
        nn.ReLU(True),
        nn.Dropout(),
        nn.Linear(hidden, num_classes),
    )
    return nn.Sequential(*feats, nn.Flatten(), classifier)


@pytest.fixture(scope="module")
def authors_pair():
    torch.manual_seed(3)
    theirs = _authors_model(num_classes=10, width=1 / 8).eval()
    with (
        torch.no_grad()
    ):  # close the wall the way the authors do: zero the lower 9 rows' weights
        w = theirs[31][0].weight.view(512, 32, 14, 14)
        w[:, :, 5:, :] = 0
    return theirs


def test_authors_full_width_layout_matches_rvgg_on_meta_device():
    with torch.device("meta"):
        theirs = vgg16(weights=None)  # torchvision's own VGG16, nothing allocated
        flat = _authors_model(num_classes=1000, width=1.0)
        ours = rvgg(num_classes=1000, width=1.0)
    mapped = authors_to_rvgg_state_dict(flat.state_dict())
    assert {k: tuple(v.shape) for k, v in mapped.items()} == {
        k: tuple(v.shape) for k, v in ours.state_dict().items()
    }
    # the 12 first convolutions are exactly torchvision's VGG16 ones
    for i in AUTHORS_CONV_INDICES[:-1]:
        assert theirs.features[i].weight.shape == ours.features[i].weight.shape


def test_authors_layout_gives_identical_outputs(authors_pair, tmp_path):
    theirs = authors_pair
    path = tmp_path / "params_vgg16_masked.pt"
    torch.save(theirs.state_dict(), path)
    ours = load_authors_weights(path, walled=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
    # round trip of the key mapping
    back = rvgg_to_authors_state_dict(ours.state_dict())
    assert set(back) == set(theirs.state_dict())


def test_authors_open_wall_refused_then_repaired(authors_pair):
    state = {k: v.clone() for k, v in authors_pair.state_dict().items()}
    state["31.0.weight"].view(512, 32, 14, 14)[0, 0, 13, 0] = 0.5
    with pytest.raises(ValueError, match="under the wall"):  # helpers.models.WallError
        load_authors_weights(state, walled=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_authors_weights(state, walled=True, on_open_wall="repair")
    assert any("zeroing 1 non-zero" in str(w.message) for w in caught)
    assert model.classifier[0].weight.view(512, 32, 14, 14)[0, 0, 13, 0] == 0
    # the baseline accepts the same weights as they are
    base = load_authors_weights(state, walled=False)
    assert base.classifier[0].weight.view(512, 32, 14, 14)[0, 0, 13, 0] == 0.5


def test_authors_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Download"):
        load_authors_weights(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="Unexpected key"):
        authors_to_rvgg_state_dict({"features.0.weight": torch.zeros(1)})
    small = rvgg_to_authors_state_dict(rvgg(10, width=TINY).state_dict())
    small["31.3.weight"] = small["31.3.weight"][:, :-1]
    with pytest.raises(ValueError, match="layout"):
        load_authors_weights(small)


def test_a_truncated_authors_checkpoint_says_to_download_it_again(tmp_path):
    from helpers.config import CheckpointError

    path = tmp_path / "params_vgg16_masked.pt"
    torch.save(rvgg_to_authors_state_dict(rvgg(10, width=TINY).state_dict()), path)
    assert (
        load_authors_weights(path, walled=True).num_classes == 10
    )  # the whole file loads
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointError,
        match=(
            r"Cannot read the checkpoint .*params_vgg16_masked\.pt \(.* bytes\).*truncated, corrupt.*"
            r"Delete it and download it again: helpers\.data\.download_authors_release\(\).*"
            r"drive\.google\.com/drive/folders/"
        ),
    ) as info:
        load_authors_weights(path, walled=True)
    assert isinstance(info.value, ValueError)


def test_a_walled_checkpoint_loaded_as_baseline_is_refused(tmp_path):
    torch.manual_seed(4)
    walled_state = rvgg_to_authors_state_dict(rvgg(10, width=TINY).state_dict())
    with pytest.raises(
        ValueError,
        match=(
            r"given state dict was asked for as the baseline \(walled=False\).*lower 9 rows of the "
            r"14x14 map is exactly zero: it is the walled model.*Load it with walled=True"
        ),
    ):
        load_authors_weights(walled_state, walled=False)
    path = tmp_path / "params_vgg16_baseline.pt"
    torch.save(walled_state, path)
    with pytest.raises(
        ValueError,
        match=r"params_vgg16_baseline\.pt was asked for as the baseline.*swapped",
    ):
        load_authors_weights(path, walled=False)
    assert (
        load_authors_weights(path, walled=True).wall_rows == 9
    )  # as the walled model: fine
    # a real baseline (weights under the wall non-zero) loads as the baseline
    base_state = rvgg_to_authors_state_dict(
        rvgg(10, width=TINY, wall_rows=0).state_dict()
    )
    assert load_authors_weights(base_state, walled=False).wall_rows == 0


def test_wall_weights_zero_by_hand():
    w = torch.randn(6, 2 * 14 * 14)
    w.view(6, 2, 14, 14)[:, :, 5:, :] = 0
    assert wall_weights_zero(w) and wall_weights_zero(w, chunk=4)
    assert not wall_weights_zero(w, wall_rows=10)  # row 4 is visible: non-zero there
    w.view(6, 2, 14, 14)[5, 1, 13, 13] = 1e-30  # one tiny weight in the last chunk
    assert not wall_weights_zero(w, chunk=4)
    w.view(6, 2, 14, 14)[5, 1, 13, 13] = float("nan")
    assert not wall_weights_zero(w)
    with pytest.raises(ValueError, match="channels\\*196"):
        wall_weights_zero(torch.zeros(3, 100))
    with pytest.raises(ValueError, match="wall_rows"):
        wall_weights_zero(torch.zeros(3, 196), wall_rows=0)


def test_theory_cnn_wall_and_statistics():
    model = theory_cnn(filters=64, num_classes=10, hidden_rows=7, seed=0)
    w = model.dense.effective_weight.view(10, 64, 14, 14)
    assert w[:, :, 7:].abs().max() == 0  # exact: wall
    visible = w[:, :, :7].flatten()
    # standard Gaussian initialisation: mean ~ 0, variance ~ 1 (62720 samples)
    visible = visible.detach()
    assert abs(float(visible.mean())) < 0.02 and abs(float(visible.var()) - 1) < 0.03
    with pytest.raises(ValueError, match="29x29"):
        model(torch.randn(1, 1, 28, 28))


def test_theory_cnn_unseen_rows_by_arithmetic_and_gradient():
    from helpers.wall import perturbation_check, unseen_rows, unseen_rows_by_gradient

    model = theory_cnn(filters=8, num_classes=3, hidden_rows=7, seed=1)
    # pooled rows 0..6 <- map rows 0..13 <- input rows 0..14 (2x2 conv): 15..28 unseen
    assert unseen_rows(model, image_size=29).tolist() == list(range(15, 29))
    assert unseen_rows_by_gradient(
        model, image_size=29, channels=1, n_inputs=2
    ).tolist() == list(range(15, 29))
    x = torch.randn(4, 1, 29, 29)
    assert perturbation_check(model, x, fill="noise")["identical"] == 1.0  # exact: wall
