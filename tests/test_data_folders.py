"""Tests of helpers.data.folders: reading image files as RGB, checking class folders,
ImageFolder and Imagenette (from a fake archive)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from helpers import data as D


def save_image(
    path: Path, mode: str = "RGB", size=(40, 30), fmt: str = "JPEG", colour=None
) -> None:
    """An image file of one colour (``mode``, ``size`` as width x height, format ``fmt``), its
    folders created (the other data tests use it too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = (
        colour
        if colour is not None
        else {"RGB": (200, 30, 30), "L": 128, "RGBA": (0, 0, 255, 0)}[mode]
    )
    Image.new(mode, size, colour).save(path, format=fmt)


def _tiny_folder(root: Path) -> Path:
    save_image(root / "cat" / "a.jpg")
    save_image(root / "cat" / "b.png", mode="L", fmt="PNG")
    save_image(root / "dog" / "c.png", mode="RGBA", fmt="PNG")
    save_image(root / "dog" / "d.jpg", size=(224, 224))
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_conversions(tmp_path):
    root = _tiny_folder(tmp_path / "train")
    report = D.check_image_folder(root)
    assert report.classes == ["cat", "dog"] and report.counts == {"cat": 2, "dog": 2}
    assert [p.name for p in report.skipped] == ["notes.txt"]
    assert report.modes == {"L": 1, "RGBA": 1} and report.sizes == {
        "224x224": 1,
        "other": 3,
    }
    ds = D.image_folder(root)
    assert len(ds) == 4
    x, y = ds[2]  # dog/c.png: fully transparent blue, composed onto white
    assert x.shape == (3, 224, 224) and y == 1
    white = (1 - torch.tensor(D.IMAGENET_MEAN)) / torch.tensor(D.IMAGENET_STD)
    assert torch.allclose(x[:, 100, 100], white, atol=1e-2)
    g, _ = ds[1]  # grey 128 -> three equal channels before normalization
    raw = D.denormalize(g)
    assert torch.allclose(raw[0], raw[1], atol=1e-2) and float(
        raw[0, 5, 5]
    ) == pytest.approx(128 / 255, abs=0.01)
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


def test_imagenette_from_a_fake_archive(tmp_path):
    src = tmp_path / "src" / "imagenette2-160"
    for split in ("train", "val"):
        for wnid in ("n01440764", "n02102040"):
            for i in range(2):
                save_image(src / split / wnid / f"{wnid}_{i}.JPEG", size=(60, 50))
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
