"""Tests of helpers.data.release: the authors' release, faked small (narrow rVGG checkpoints in
their flat layout and a few images per stack folder), downloaded, checked before it is recorded,
and read as the authors read it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import data as D
from helpers.config import DataSettings, get_profile
from helpers.data import release
from helpers.models import rvgg, rvgg_to_authors_state_dict
from test_data_folders import save_image


#: The authors' stack folders hold 100 images; these tests lower the count to this, for speed.
FAKE_STACK_IMAGES = 4


@pytest.fixture(scope="module")
def authors_states():
    """Narrow (width 1/32) walled and baseline rVGG state dicts in the authors' flat layout."""
    torch.manual_seed(0)
    return {True: rvgg_to_authors_state_dict(rvgg(10, width=1 / 32).state_dict()),
            False: rvgg_to_authors_state_dict(rvgg(10, width=1 / 32, wall_rows=0).state_dict())}


@pytest.fixture
def small_release(monkeypatch, tmp_path):
    """CAMWALLS_HOME in tmp_path and a stack count of FAKE_STACK_IMAGES."""
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(release, "AUTHORS_STACK_IMAGES", FAKE_STACK_IMAGES)
    return tmp_path


def _write_release(root: Path, states, stackmix_size=(224, 224), n=FAKE_STACK_IMAGES) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for walled, name in D.AUTHORS_CHECKPOINTS.items():
        torch.save(states[walled], root / name)
    for i in range(n):
        save_image(root / "stackmix" / f"{i:03d}.png", fmt="PNG", size=stackmix_size, colour=(10 * i, 0, 0))
        save_image(root / "stackgen" / f"{i:03d}.jpg", size=(300 + i, 260), colour=(0, 10 * i, 0))
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
