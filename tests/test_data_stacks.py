"""Tests of helpers.data.stacks: STACK-MIX, STACK-GEN and their stand-ins, from the synthetic
world and from real images, also when the cache folder cannot be written."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from helpers import data as D
from helpers.config import CacheDirError, DataSettings, get_profile
from test_data_folders import save_image

#: The authors' reading, transcribed from their figure_code/heatmap.py (repository
#: MagamedT/cam-can-see-through-walls, commit 26bc4578251b76206f0fbd4af597e2489ada7955):
#: CustomImageDataset lists sorted(os.listdir(directory)) filtered on the lower-case name
#: ending in .png/.jpg/.jpeg and reads Image.open(path).convert('RGB'); load_dataset applies
#: ToTensor+Normalize to 'stackmix', Resize(256)+CenterCrop(224)+ToTensor+Normalize otherwise.
AUTHORS_NORMALIZE = transforms.Normalize(
    mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]
)
AUTHORS_TRANSFORMS = {
    "stackmix": transforms.Compose([transforms.ToTensor(), AUTHORS_NORMALIZE]),
    "stackgen": transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            AUTHORS_NORMALIZE,
        ]
    ),
}


def authors_load_dataset(directory: Path) -> tuple[list[str], torch.Tensor]:
    """The authors' load_dataset on ``directory`` (its files and its batch)."""
    names = [
        f
        for f in sorted(os.listdir(directory))
        if f.lower().endswith((".png", ".jpg", ".jpeg"))
    ]
    tf = AUTHORS_TRANSFORMS[directory.name]
    return names, torch.stack(
        [tf(Image.open(directory / f).convert("RGB")) for f in names]
    )


def _real_profile(root: Path):
    return get_profile("full").replace(
        data=DataSettings(
            source="imagefolder",
            num_classes=2,
            train_images=0,
            val_images=0,
            root=str(root),
        )
    )


def _noise(rng, h, w, channels=3, lo=0, hi=256):
    return rng.integers(lo, hi, size=(h, w, channels), dtype=np.uint8)


def _authors_folders(root: Path) -> Path:
    """STACK-MIX: 224x224 PNGs of noise whose rows above 170 and from 170 on differ (bright red
    above, dark blue below), named so that sorting by name matters; STACK-GEN: JPEGs of odd
    sizes and an RGBA PNG (whose alpha the authors drop, not compose). Plus files their code
    does not list."""
    rng = np.random.default_rng(0)
    mix, gen = root / "stackmix", root / "stackgen"
    mix.mkdir(parents=True)
    gen.mkdir(parents=True)
    for name in ("10.png", "9.png", "B.png", "a.PNG"):
        img = np.concatenate(
            [
                _noise(rng, 170, 224) | np.array([192, 0, 0], np.uint8),
                _noise(rng, 54, 224) & np.array([63, 63, 255], np.uint8),
            ]
        )
        Image.fromarray(img).save(mix / name)
    for name, (w, h) in (
        ("z.jpg", (331, 250)),
        ("b.jpeg", (250, 377)),
        ("c.JPG", (300, 300)),
    ):
        Image.fromarray(_noise(rng, h, w)).save(gen / name, quality=90)
    Image.fromarray(_noise(rng, 260, 280, channels=4), mode="RGBA").save(gen / "d.png")
    for folder in (mix, gen):
        (folder / "notes.txt").write_text("not an image")
        Image.fromarray(_noise(rng, 224, 224)).save(
            folder / "0.webp"
        )  # not listed by the authors
    return root


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
    assert torch.equal(
        D.stack_mix("quick", n=6, seed=1).images, s.images
    )  # exact: repeat
    c = D.stack_mix("quick", n=6, seed=1, variant="conflict")
    assert c.name == "STACK-MIX (conflict)" and bool(
        torch.all(c.labels != c.bottom_labels)
    )
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
    assert bool(
        torch.all((bottom[:, 0] >= 149) & (bottom[:, 0] <= 201))
    )  # lower one at the wall or below
    assert bool(torch.all(bottom[:, 1] > 170))  # and always partly hidden


def _unusable_home(kind: str, tmp_path: Path) -> Path:
    """A regular file ("file"), or a path below a regular file ("below-file": nothing can be
    created there, even by root)."""
    f = tmp_path / "x" / "file.txt"
    f.parent.mkdir(parents=True)
    f.write_text("not a folder")
    return f if kind == "file" else f / "sub"


@pytest.mark.parametrize("kind", ["file", "below-file"])
def test_pure_compute_works_when_home_is_unusable(kind, tmp_path, monkeypatch):
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
    with pytest.raises(
        CacheDirError,
        match=r"CAMWALLS_HOME='[^']*file\.txt(/sub)?'(.|\n)*file\.txt is a "
        r"regular file(.|\n)*Point CAMWALLS_HOME at a writable folder",
    ):
        D.download_authors_release(downloader=lambda *a: calls.append(a))
    assert calls == []
    with pytest.raises(CacheDirError, match="CAMWALLS_HOME"):
        D.imagenette(
            "val", size="160px", downloader=lambda url, dest: calls.append(url)
        )
    assert calls == []
    assert home.is_file() if kind == "file" else not home.exists()


def test_real_stacks_fall_back_when_home_is_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMWALLS_HOME", str(_unusable_home("file", tmp_path)))
    root = tmp_path / "imagenet"
    for c, colour in (("a", (250, 0, 0)), ("b", (0, 0, 250))):
        for i in range(2):
            save_image(root / "val" / c / f"{i}.png", fmt="PNG", colour=colour)
    prof = get_profile("full").replace(
        data=DataSettings(
            source="imagefolder",
            num_classes=2,
            train_images=0,
            val_images=0,
            root=str(root),
        )
    )
    assert D.stack_mix(prof, n=2, seed=0).images.shape == (2, 3, 224, 224)
    assert D.stack_gen(prof, n=2, seed=0).is_stand_in


def test_real_stacks_from_an_image_folder(tmp_path):
    root = tmp_path / "imagenet"
    for split in ("train", "val"):
        for c, colour in (("a", (250, 0, 0)), ("b", (0, 0, 250))):
            for i in range(3):
                save_image(
                    root / split / c / f"{i}.png",
                    fmt="PNG",
                    colour=colour,
                    size=(50 + i, 40),
                )
    prof = get_profile("full").replace(
        data=DataSettings(
            source="imagefolder",
            num_classes=2,
            train_images=0,
            val_images=0,
            root=str(root),
        )
    )
    s = D.stack_mix(prof, n=4, seed=0)
    assert s.images.shape == (4, 3, 224, 224) and torch.equal(
        s.labels, s.bottom_labels
    )  # exact: integer
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
    missing = prof.replace(
        data=DataSettings(
            source="imagefolder",
            num_classes=2,
            train_images=0,
            val_images=0,
            root=str(tmp_path / "nowhere"),
        )
    )
    with pytest.raises(D.MissingDataError, match="CAMWALLS_DATA_ROOT"):
        D.stack_mix(missing, n=2)


def test_training_examples_quick():
    x, y, names, source = D.training_examples("quick", n=3, seed=0)
    assert (
        x.shape == (3, 3, 224, 224) and y.shape == (3,) and source == "synthetic world"
    )
    assert names == D.SYNTHETIC_CLASSES


@pytest.mark.parametrize(
    "folder, build", [("stackmix", D.stack_mix), ("stackgen", D.stack_gen)]
)
def test_the_authors_stacks_are_read_exactly_as_the_authors_read_them(
    tmp_path, monkeypatch, folder, build
):
    """Same files, same order, same tensors as the authors' load_dataset (bit for bit: the same
    transforms on the same decoded images). STACK-MIX is not resized: resizing it to 256 and
    cropping would move the seam from row 170 to about row 178."""
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    _authors_folders(D.authors_dir())
    names, expected = authors_load_dataset(D.authors_dir() / folder)
    s = build(_real_profile(tmp_path / "nowhere"), n=len(names))
    assert (
        s.meta["files"]
        == names
        == (
            ["10.png", "9.png", "B.png", "a.PNG"]
            if folder == "stackmix"
            else ["b.jpeg", "c.JPG", "d.png", "z.jpg"]
        )
    )
    assert not s.is_stand_in and s.images.shape == (len(names), 3, 224, 224)
    assert torch.equal(s.images, expected)  # exact: repeat
    if folder == "stackmix":
        resized = torch.stack(
            [
                D.eval_transform(256)(
                    Image.open(D.authors_dir() / folder / f).convert("RGB")
                )
                for f in names
            ]
        )
        assert (
            float((resized - expected).abs().amax()) > 1.0
        )  # the resize would move the seam
        raw = D.denormalize(s.images)
        assert bool(torch.all(raw[:, 0, :170] > 0.74)) and bool(
            torch.all(raw[:, 0, 170:] < 0.25)
        )
    else:
        assert s.meta["conversions"] == "1 image(s) of mode RGBA converted to RGB"


def test_the_authors_stack_mix_is_224x224_and_complete(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    _authors_folders(D.authors_dir())
    prof = _real_profile(tmp_path / "nowhere")
    with pytest.raises(
        ValueError,
        match=r"holds 4 image file\(s\); expected at least 5(.|\n)*download_authors_release",
    ):
        D.stack_mix(prof, n=5)
    Image.new("RGB", (256, 256)).save(D.authors_dir() / "stackmix" / "11.png")
    with pytest.raises(
        ValueError,
        match=r"11\.png of the authors' STACK-MIX set is 256x256; expected 224x224",
    ):
        D.stack_mix(prof, n=5)


def test_the_authors_stacks_from_a_zip_in_the_cache(tmp_path, monkeypatch):
    """Only the repository's zip in the cache: reading a set unpacks it first (no network)."""
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    root = _authors_folders(tmp_path / "made")
    D.authors_dir().mkdir(parents=True)
    with zipfile.ZipFile(D.authors_dir() / D.AUTHORS_STACKS_ZIP, "w") as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(
                    p, f"processed_datasets_gradcam/{p.relative_to(root).as_posix()}"
                )
    names, expected = authors_load_dataset(root / "stackmix")
    s = D.stack_mix(_real_profile(tmp_path / "nowhere"), n=4)
    assert s.meta["files"] == names and torch.equal(s.images, expected)  # exact: repeat
    assert (D.authors_dir() / "stackmix" / "10.png").is_file() and not (
        D.authors_dir() / "stackgen"
    ).exists()
