"""Tests of helpers.data: the synthetic world, the stacks, real-image loaders and downloads."""

from __future__ import annotations

import io
import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import data as D
from helpers.config import DataSettings, get_profile

# --------------------------------------------------------------------------------------------
# normalization
# --------------------------------------------------------------------------------------------


def test_normalize_matches_torchvision_and_round_trips():
    from torchvision.transforms import Normalize

    x = torch.rand(2, 3, 8, 8)
    ref = Normalize(D.IMAGENET_MEAN, D.IMAGENET_STD)(x)
    assert torch.allclose(D.normalize(x), ref, atol=1e-6)
    assert torch.allclose(D.denormalize(D.normalize(x)), x, atol=1e-6)
    assert torch.allclose(D.denormalize(D.normalize(x[0])), x[0], atol=1e-6)
    # values outside [0, 1] are clipped for display
    assert float(D.denormalize(torch.full((3, 2, 2), 100.0)).max()) == 1.0  # exact: exact-float


def test_normalize_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="3, H, W"):
        D.normalize(torch.rand(2, 4, 8, 8))
    with pytest.raises(ValueError, match="normalized tensor"):
        D.denormalize(torch.rand(8, 8))


# --------------------------------------------------------------------------------------------
# the synthetic world
# --------------------------------------------------------------------------------------------


def _render_one(label: int, radius: float = 40.0, angle: float = 0.0, center=(112.0, 112.0)):
    bg = torch.full((1, 3, 224, 224), 0.5)
    img, box = D.render_synthetic(torch.tensor([label]), torch.tensor([center]), torch.tensor([radius]),
                                  torch.tensor([angle]), torch.tensor([[1.0, 1.0, 1.0]]), bg)
    return img[0], box[0]


@pytest.mark.parametrize("label, area", [
    (0, math.pi * 0.95 ** 2),                       # disc of radius 0.95
    (1, math.pi * (0.95 ** 2 - 0.65 ** 2)),         # ring between radii 0.65 and 0.95
    (2, 1.9 * 0.56),                                # bar 1.9 x 0.56
    (3, 2 * (1.9 * 0.4) - 0.4 ** 2),                # plus sign: two 1.9 x 0.4 bars minus overlap
    (5, 3 * math.sqrt(3) / 4),                      # equilateral triangle inscribed in the unit circle
    (6, 1.7 ** 2),                                  # stripes: square patch (colour and complement)
    (9, math.pi * 0.95 ** 2),                       # bullseye: disc patch
])
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
    assert top == pytest.approx(100 - 8.4, abs=1) and bottom == pytest.approx(100 + 8.4, abs=1)
    assert left == pytest.approx(120 - 28.5, abs=1) and right == pytest.approx(120 + 28.5, abs=1)
    rows = torch.nonzero((img - 0.5).abs().sum(0).sum(1) > 0).view(-1)
    assert (int(rows[0]), int(rows[-1]) + 1) == (int(top), int(bottom))


def test_synthetic_batch_is_a_function_of_the_seed():
    a = D.synthetic_batch(6, 123)
    b = D.synthetic_batch(6, 123)
    c = D.synthetic_batch(6, 124)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)  # exact: repeat
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
    centers, radii = D._sample_placement(gen, labels, 224, (18.0, 44.0), "below", 0.0, aspects)
    bg = torch.full((n, 3, 224, 224), 0.5)
    img, boxes = D.render_synthetic(labels, centers, radii, torch.rand(n, generator=gen) * 6.28,
                                    torch.zeros(n, 3), bg, aspects)
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
    boxes = torch.tensor([[10.0, 170.0, 0, 1], [170.0, 200.0, 0, 1], [160.0, 180.0, 0, 1]])
    assert D.placement_groups(boxes) == ["above", "below", "straddle"]
    with pytest.raises(ValueError, match="N, 4"):
        D.placement_groups(torch.zeros(3))


# --------------------------------------------------------------------------------------------
# STACK-MIX and STACK-GEN
# --------------------------------------------------------------------------------------------


def test_stack_images_rows():
    top = torch.ones(2, 3, 50, 60)
    bottom = torch.zeros(2, 3, 300, 200)
    out = D.stack_images(top, bottom)
    assert out.shape == (2, 3, 224, 224)
    assert torch.all(out[:, :, :170] == 1) and torch.all(out[:, :, 170:] == 0)
    # a horizontal ramp stays a ramp (bilinear resizing is exact on linear functions inside)
    ramp = torch.linspace(0, 1, 448).view(1, 1, 1, 448).expand(1, 3, 100, 448)
    res = D.stack_images(ramp, ramp)
    cols = res[0, 0, 100, 2:-2]
    expected = (torch.arange(224).float()[2:-2] + 0.5) / 224
    assert torch.allclose(cols, expected, atol=3e-3)
    with pytest.raises(ValueError, match="same number"):
        D.stack_images(torch.ones(2, 3, 5, 5), torch.ones(3, 3, 5, 5))


def test_stack_mix_synthetic():
    s = D.stack_mix("quick", n=6, seed=1)
    assert s.name == "STACK-MIX" and s.profile == "quick" and len(s) == 6
    assert s.images.shape == (6, 3, 224, 224)
    assert torch.equal(s.labels, s.bottom_labels)  # exact: integer
    assert s.class_names == D.SYNTHETIC_CLASSES
    assert torch.equal(D.stack_mix("quick", n=6, seed=1).images, s.images)  # exact: repeat
    c = D.stack_mix("quick", n=6, seed=1, variant="conflict")
    assert c.name == "STACK-MIX (conflict)" and bool(torch.all(c.labels != c.bottom_labels))
    with pytest.raises(ValueError, match="variant"):
        D.stack_mix("quick", n=2, variant="other")


def test_stack_mix_default_size_is_the_profiles():
    assert get_profile("quick").eval.stack_images == 100  # the paper's 100 images


def test_stack_gen_standin():
    s = D.stack_gen("quick", n=8, seed=2)
    assert s.is_stand_in and s.name == "STACK-GEN (stand-in)"
    assert torch.equal(s.labels, s.bottom_labels)  # exact: integer
    top, bottom = s.meta["top_boxes"], s.meta["bottom_boxes"]
    assert bool(torch.all(top[:, 1] <= 151))  # upper instance entirely above the wall
    assert bool(torch.all((bottom[:, 0] >= 149) & (bottom[:, 0] <= 201)))  # lower one at the wall or below
    assert bool(torch.all(bottom[:, 1] > 170))  # and always partly hidden


# --------------------------------------------------------------------------------------------
# real images
# --------------------------------------------------------------------------------------------


def _save(path: Path, mode: str = "RGB", size=(40, 30), fmt: str = "JPEG", colour=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = colour if colour is not None else {"RGB": (200, 30, 30), "L": 128, "RGBA": (0, 0, 255, 0)}[mode]
    Image.new(mode, size, colour).save(path, format=fmt)


def _tiny_folder(root: Path) -> Path:
    _save(root / "cat" / "a.jpg")
    _save(root / "cat" / "b.png", mode="L", fmt="PNG")
    _save(root / "dog" / "c.png", mode="RGBA", fmt="PNG")
    _save(root / "dog" / "d.jpg", size=(224, 224))
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_conversions(tmp_path):
    root = _tiny_folder(tmp_path / "train")
    report = D.check_image_folder(root)
    assert report.classes == ["cat", "dog"] and report.counts == {"cat": 2, "dog": 2}
    assert [p.name for p in report.skipped] == ["notes.txt"]
    assert report.modes == {"L": 1, "RGBA": 1} and report.sizes == {"224x224": 1, "other": 3}
    ds = D.image_folder(root)
    assert len(ds) == 4
    x, y = ds[2]  # dog/c.png: fully transparent blue, composed onto white
    assert x.shape == (3, 224, 224) and y == 1
    white = (1 - torch.tensor(D.IMAGENET_MEAN)) / torch.tensor(D.IMAGENET_STD)
    assert torch.allclose(x[:, 100, 100], white, atol=1e-2)
    g, _ = ds[1]  # grey 128 -> three equal channels before normalization
    raw = D.denormalize(g)
    assert torch.allclose(raw[0], raw[1], atol=1e-2) and float(raw[0, 5, 5]) == pytest.approx(128 / 255, abs=0.01)
    assert ds.conversions.modes == {"L": 1, "RGBA": 1}
    assert "converted from mode L" in ds.conversions.describe()


def test_image_folder_bad_input(tmp_path):
    with pytest.raises(D.MissingDataError, match="No image folder"):
        D.check_image_folder(tmp_path / "missing")
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(ValueError, match="no class sub-folder"):
        D.check_image_folder(tmp_path / "empty_root")
    root = _tiny_folder(tmp_path / "a")
    (root / "bird").mkdir()
    with pytest.raises(ValueError, match="bird"):
        D.check_image_folder(root)
    root = _tiny_folder(tmp_path / "b")
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good, format="JPEG")
    (root / "cat" / "broken.jpg").write_bytes(good.getvalue()[:200])  # truncated JPEG
    with pytest.raises(ValueError, match="broken.jpg"):
        D.check_image_folder(root)
    with pytest.raises(D.ImageReadError, match="broken.jpg"):
        D.ImageLoader()(root / "cat" / "broken.jpg")


def test_fetch_file_records_and_checks_sha256(tmp_path):
    calls = []

    def fake(url, dest):
        calls.append(url)
        dest.write_bytes(b"hello")

    dest = tmp_path / "dl" / "file.bin"
    D.fetch_file("http://example/file.bin", dest, downloader=fake)
    record = json.loads((dest.parent / D.CHECKSUMS_FILE).read_text())
    import hashlib

    assert record == {"file.bin": hashlib.sha256(b"hello").hexdigest()}
    D.fetch_file("http://example/file.bin", dest, downloader=fake)  # present: skipped, checked
    assert len(calls) == 1
    dest.write_bytes(b"hellO")
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        D.fetch_file("http://example/file.bin", dest, downloader=fake)

    def offline(url, dest):
        raise OSError("no network")

    with pytest.raises(D.MissingDataError, match=str(tmp_path / "other.bin").replace("\\", "\\\\")):
        D.fetch_file("http://example/other.bin", tmp_path / "other.bin", downloader=offline)


def test_imagenette_from_a_fake_archive(tmp_path):
    src = tmp_path / "src" / "imagenette2-160"
    for split in ("train", "val"):
        for wnid in ("n01440764", "n02102040"):
            for i in range(2):
                _save(src / split / wnid / f"{wnid}_{i}.JPEG", size=(60, 50))
    archive = tmp_path / "imagenette2-160.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="imagenette2-160")

    def fake(url, dest):
        assert url.endswith("imagenette2-160.tgz")
        dest.write_bytes(archive.read_bytes())

    root = tmp_path / "cache"
    ds = D.imagenette("val", size="160px", root=root, downloader=fake)
    assert len(ds) == 4 and ds.classes == ["tench", "English springer"]
    x, y = ds[3]
    assert x.shape == (3, 224, 224) and y == 1
    assert (root / D.CHECKSUMS_FILE).is_file()
    with pytest.raises(D.MissingDataError, match="Imagenette"):
        D.imagenette("val", size="320px", root=root, download=False)


# --- the authors' release, faked small: narrow rVGG checkpoints in their flat layout and a few
# images per stack folder (the count is lowered to FAKE_STACK_IMAGES for speed) ---------------

FAKE_STACK_IMAGES = 4


@pytest.fixture(scope="module")
def authors_states():
    """Narrow (width 1/32) walled and baseline rVGG state dicts in the authors' flat layout."""
    from helpers.models import rvgg, rvgg_to_authors_state_dict

    torch.manual_seed(0)
    return {True: rvgg_to_authors_state_dict(rvgg(10, width=1 / 32).state_dict()),
            False: rvgg_to_authors_state_dict(rvgg(10, width=1 / 32, wall_rows=0).state_dict())}


@pytest.fixture
def small_release(monkeypatch, tmp_path):
    """CAMWALLS_HOME in tmp_path and a stack count of FAKE_STACK_IMAGES."""
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(D, "AUTHORS_STACK_IMAGES", FAKE_STACK_IMAGES)
    return tmp_path


def _write_release(root: Path, states, stackmix_size=(224, 224), n=FAKE_STACK_IMAGES) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for walled, name in D.AUTHORS_CHECKPOINTS.items():
        torch.save(states[walled], root / name)
    for i in range(n):
        _save(root / "stackmix" / f"{i:03d}.png", fmt="PNG", size=stackmix_size, colour=(10 * i, 0, 0))
        _save(root / "stackgen" / f"{i:03d}.jpg", size=(300 + i, 260), colour=(0, 10 * i, 0))
    return root


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_authors_release_with_a_fake_download(small_release, authors_states):
    tmp_path = small_release

    def fake(folder_id, dest):
        assert folder_id == D.AUTHORS_DRIVE_FOLDER
        _write_release(dest / "cam-release", authors_states)  # gdown may put the content in a sub-folder

    with pytest.raises(D.MissingDataError, match="params_vgg16_masked.pt"):
        D.authors_checkpoint(walled=True)
    assert not D.authors_dir().exists()  # looking did not create anything
    dest = D.download_authors_release(downloader=fake)
    assert (dest / "params_vgg16_masked.pt").is_file() and (dest / "stackgen" / "000.jpg").is_file()
    record = json.loads((dest / D.CHECKSUMS_FILE).read_text())
    assert set(record) >= {"params_vgg16_masked.pt", "params_vgg16_baseline.pt", "stackgen/000.jpg",
                           "stackmix/003.png"}
    assert D.authors_checkpoint(walled=False).name == "params_vgg16_baseline.pt"
    model = D.load_authors_model(walled=True)
    assert model.wall_rows == 9 and model.num_classes == 10
    torch.save({"0.weight": torch.ones(1)}, dest / "params_vgg16_masked.pt")  # replaced file
    with pytest.raises(ValueError, match=r"SHA-256 mismatch(.|\n)*fails the content check"):
        D.authors_checkpoint(walled=True)

    def offline(folder_id, dest):
        raise OSError("no network")

    with pytest.raises(D.MissingDataError, match="drive.google.com"):
        D.download_authors_release(tmp_path / "elsewhere", downloader=offline)


def test_a_truncated_checkpoint_is_refused_not_recorded(small_release, authors_states):
    """The old bug: the truncated first download was recorded, then the good copy blamed."""
    tmp_path = small_release

    def truncated(folder_id, dest):
        _write_release(dest, authors_states)
        _truncate(dest / "params_vgg16_masked.pt")

    dest = tmp_path / "release"
    with pytest.raises(D.AuthorsReleaseError, match=r"params_vgg16_masked\.pt(.|\n)*Delete it and download it again"):
        D.download_authors_release(dest, downloader=truncated)
    record = json.loads((dest / D.CHECKSUMS_FILE).read_text()) if (dest / D.CHECKSUMS_FILE).exists() else {}
    assert "params_vgg16_masked.pt" not in record
    # as told: delete it and download again; the good copy is checked and recorded
    (dest / "params_vgg16_masked.pt").unlink()
    D.download_authors_release(dest, downloader=lambda folder_id, d: _write_release(d, authors_states))
    record = json.loads((dest / D.CHECKSUMS_FILE).read_text())
    assert record["params_vgg16_masked.pt"] == D.sha256_file(dest / "params_vgg16_masked.pt")


def test_a_checkpoint_copied_by_hand_is_checked_before_it_is_recorded(small_release, authors_states):
    folder = D.authors_dir()
    folder.mkdir(parents=True)
    torch.save(authors_states[True], folder / "params_vgg16_masked.pt")
    _truncate(folder / "params_vgg16_masked.pt")
    with pytest.raises(D.AuthorsReleaseError, match=r"Cannot read the checkpoint(.|\n)*download_authors_release"):
        D.authors_checkpoint(walled=True)
    assert not (folder / D.CHECKSUMS_FILE).exists()
    # the two checkpoints swapped: each fails its wall check, nothing is recorded
    torch.save(authors_states[True], folder / "params_vgg16_baseline.pt")
    torch.save(authors_states[False], folder / "params_vgg16_masked.pt")
    with pytest.raises(D.AuthorsReleaseError, match=r"params_vgg16_baseline\.pt was asked for as the baseline(.|\n)*exactly zero(.|\n)*walled=True"):
        D.authors_checkpoint(walled=False)
    with pytest.raises(D.AuthorsReleaseError, match=r"walled checkpoint(.|\n)*under the wall(.|\n)*Delete it"):
        D.authors_checkpoint(walled=True)
    assert not (folder / D.CHECKSUMS_FILE).exists()


def test_a_mismatch_says_whether_the_present_file_is_sound(small_release, authors_states):
    """A digest recorded by an older version from a broken copy: the good copy is not blamed blindly."""
    dest = _write_release(small_release / "release", authors_states)
    (dest / D.CHECKSUMS_FILE).write_text(json.dumps({"params_vgg16_masked.pt": "0" * 64}))
    with pytest.raises(ValueError, match=r"SHA-256 mismatch(.|\n)*passes the content check(.|\n)*delete the entry"):
        D.download_authors_release(dest)


def test_a_stack_folder_without_images_is_missing(small_release, authors_states):
    dest = _write_release(small_release / "release", authors_states)
    for p in (dest / "stackmix").iterdir():
        p.unlink()
    (dest / "stackmix" / "notes.txt").write_text("no image here")
    calls = []

    def offline(folder_id, d):
        calls.append(folder_id)
        raise OSError("no network")

    with pytest.raises(D.MissingDataError, match=r"Missing: stackmix/"):
        D.download_authors_release(dest, downloader=offline)
    assert calls  # an image-less folder is not a complete release: a download was attempted


@pytest.mark.parametrize("problem, match", [
    ("few", r"stackmix holds 3 image file\(s\); expected 4 images"),
    ("size", r"000\.png of the authors' STACK-MIX set is 200x180; expected 224x224"),
    ("corrupt", r"001\.png of the authors' STACK-MIX set cannot be decoded"),
])
def test_stack_folders_are_checked_before_they_are_recorded(small_release, authors_states, problem, match):
    dest = small_release / "release"
    if problem == "size":
        _write_release(dest, authors_states, stackmix_size=(200, 180))
    else:
        _write_release(dest, authors_states)
    if problem == "few":
        (dest / "stackmix" / "003.png").unlink()
    if problem == "corrupt":
        _truncate(dest / "stackmix" / "001.png")
    with pytest.raises(D.AuthorsReleaseError, match=match) as info:
        D.download_authors_release(dest, downloader=lambda *a: None)
    assert "download it again" in str(info.value)
    record = json.loads((dest / D.CHECKSUMS_FILE).read_text())
    assert "params_vgg16_masked.pt" in record  # what validated is kept
    assert not any(k.startswith("stackmix/") for k in record)


def test_the_paper_has_100_images_per_stack_set():
    assert D.AUTHORS_STACK_IMAGES == 100 == get_profile("full").eval.stack_images


def test_verify_or_record_records_only_what_validates(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")

    def bad(p):
        raise ValueError(f"{p.name} is broken")

    with pytest.raises(ValueError, match="f.bin is broken"):
        D.verify_or_record(path, validate=bad)
    assert not (tmp_path / D.CHECKSUMS_FILE).exists()
    seen = []
    digest = D.verify_or_record(path, validate=seen.append)
    assert seen == [path] and json.loads((tmp_path / D.CHECKSUMS_FILE).read_text()) == {"f.bin": digest}
    D.verify_or_record(path, validate=seen.append)  # recorded: not validated again
    assert seen == [path]


def test_the_authors_stack_mix_is_read_as_is(small_release, monkeypatch):
    """The authors' STACK-MIX files are 224x224 stacks: read without resizing, the wall stays at
    row 170 (a resize to 256 and a centre crop would move it)."""
    folder = D.authors_dir() / "stackmix"
    for i in range(3):
        img = np.zeros((224, 224, 3), dtype=np.uint8)
        img[:170, :, 0] = 255  # red above the wall, blue below
        img[170:, :, 2] = 255
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.png")
    prof = get_profile("full").replace(data=DataSettings(source="imagefolder", num_classes=2, train_images=0,
                                                         val_images=0, root=str(small_release / "nowhere")))
    s = D.stack_mix(prof, n=3)
    raw = D.denormalize(s.images)
    assert "authors" in s.meta["source"] and s.images.shape == (3, 3, 224, 224)
    assert bool(torch.all(raw[:, 0, :170] > 0.99)) and bool(torch.all(raw[:, 2, 170:] > 0.99))
    assert bool(torch.all(raw[:, 0, 170:] < 0.01))
    with pytest.raises(ValueError, match=r"holds 3 image file\(s\); expected at least 5(.|\n)*download_authors_release"):
        D.stack_mix(prof, n=5)
    Image.new("RGB", (256, 256)).save(folder / "3.png")
    with pytest.raises(ValueError, match=r"3\.png of the authors' STACK-MIX set is 256x256; expected 224x224"):
        D.stack_mix(prof, n=4)


# --- CAMWALLS_HOME that cannot be written ----------------------------------------------------


def _unusable_home(kind: str, tmp_path: Path) -> Path:
    """A regular file ("file"), or a path below a regular file ("below-file": nothing can be
    created there, even by root)."""
    f = tmp_path / "x" / "file.txt"
    f.parent.mkdir(parents=True)
    f.write_text("not a folder")
    return f if kind == "file" else f / "sub"


@pytest.mark.parametrize("kind", ["file", "below-file"])
def test_pure_compute_works_when_home_is_unusable(kind, tmp_path, monkeypatch):
    from helpers.config import CacheDirError

    home = _unusable_home(kind, tmp_path)
    monkeypatch.setenv("CAMWALLS_HOME", str(home))
    s = D.stack_mix("quick", n=2, seed=0)
    assert s.images.shape == (2, 3, 224, 224)
    assert D.stack_gen("quick", n=2, seed=0).is_stand_in
    x, _, _, _ = D.training_examples("quick", n=1)
    assert x.shape == (1, 3, 224, 224)
    assert D.authors_dir() == home / "authors"
    with pytest.raises(D.MissingDataError, match="params_vgg16_masked.pt"):
        D.authors_checkpoint(walled=True)
    # writing fails fast, before any download, naming CAMWALLS_HOME, its value and the remedy
    calls = []
    with pytest.raises(CacheDirError, match=r"CAMWALLS_HOME='[^']*file\.txt(/sub)?'(.|\n)*file\.txt is a "
                                            r"regular file(.|\n)*Point CAMWALLS_HOME at a writable folder"):
        D.download_authors_release(downloader=lambda *a: calls.append(a))
    assert calls == []
    with pytest.raises(CacheDirError, match="CAMWALLS_HOME"):
        D.imagenette("val", size="160px", downloader=lambda url, dest: calls.append(url))
    assert calls == []
    assert home.is_file() if kind == "file" else not home.exists()


def test_real_stacks_fall_back_when_home_is_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMWALLS_HOME", str(_unusable_home("file", tmp_path)))
    root = tmp_path / "imagenet"
    for c, colour in (("a", (250, 0, 0)), ("b", (0, 0, 250))):
        for i in range(2):
            _save(root / "val" / c / f"{i}.png", fmt="PNG", colour=colour)
    prof = get_profile("full").replace(data=DataSettings(source="imagefolder", num_classes=2, train_images=0,
                                                         val_images=0, root=str(root)))
    assert D.stack_mix(prof, n=2, seed=0).images.shape == (2, 3, 224, 224)
    assert D.stack_gen(prof, n=2, seed=0).is_stand_in


def test_real_stacks_from_an_image_folder(tmp_path):
    root = tmp_path / "imagenet"
    for split in ("train", "val"):
        for c, colour in (("a", (250, 0, 0)), ("b", (0, 0, 250))):
            for i in range(3):
                _save(root / split / c / f"{i}.png", fmt="PNG", colour=colour, size=(50 + i, 40))
    prof = get_profile("full").replace(data=DataSettings(source="imagefolder", num_classes=2, train_images=0,
                                                         val_images=0, root=str(root)))
    s = D.stack_mix(prof, n=4, seed=0)
    assert s.images.shape == (4, 3, 224, 224) and torch.equal(s.labels, s.bottom_labels)  # exact: integer
    raw = D.denormalize(s.images)
    for i in range(4):  # every row, top and bottom, has the colour of the image's class
        red = float(raw[i, 0].mean()) > 0.5
        assert red == (int(s.labels[i]) == 0)
    c = D.stack_mix(prof, n=4, seed=0, variant="conflict")
    top_red = D.denormalize(c.images)[:, 0, :170].mean(dim=(1, 2)) > 0.5
    bottom_red = D.denormalize(c.images)[:, 0, 171:].mean(dim=(1, 2)) > 0.5
    assert bool(torch.all(top_red != bottom_red))
    g = D.stack_gen(prof, n=3, seed=0)
    assert g.is_stand_in and g.images.shape == (3, 3, 224, 224)
    missing = prof.replace(data=DataSettings(source="imagefolder", num_classes=2, train_images=0,
                                             val_images=0, root=str(tmp_path / "nowhere")))
    with pytest.raises(D.MissingDataError, match="CAMWALLS_DATA_ROOT"):
        D.stack_mix(missing, n=2)


def test_top_row_placement_and_instances():
    b = D.synthetic_batch(4, 11, placement=["top=0", "top=100", "top=170", "top=190"], radius_range=(14.0, 20.0))
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
    area = lambda bx: (bx[:, 1] - bx[:, 0]) * (bx[:, 3] - bx[:, 2])
    assert float(area(many.boxes).sum()) > float(area(one.boxes).sum())


def test_training_examples_quick():
    x, y, names, source = D.training_examples("quick", n=3, seed=0)
    assert x.shape == (3, 3, 224, 224) and y.shape == (3,) and source == "synthetic world"
    assert names == D.SYNTHETIC_CLASSES
