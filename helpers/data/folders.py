"""Real images from folders: reading any image file as RGB, checking a class-per-folder tree,
and the profile's real dataset (an ImageNet-style folder or Imagenette).

Every reader converts what it meets (grayscale, RGBA, palette, 16-bit...) to RGB and counts it,
and names the file it cannot decode; a folder that is not there says what to put where.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from torchvision.datasets import ImageFolder, Imagenette
from torchvision.datasets.utils import extract_archive

from ..config import IMAGE_SIZE, Profile, cache_dir, get_profile
from .downloads import MissingDataError, fetch_file, verify_or_record
from .transforms import eval_transform, train_transform

#: Image file extensions read from folders (torchvision's list).
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)
DATA_ROOT_ENV = "CAMWALLS_DATA_ROOT"


class ImageReadError(ValueError):
    """An image file that cannot be decoded (corrupt, truncated, or not an image)."""


@dataclass
class Conversions:
    """What :class:`ImageLoader` converted while reading (counts by original mode, and the
    number of images whose size was not 224x224)."""

    modes: dict[str, int] = field(default_factory=dict)
    resized: int = 0

    def describe(self) -> str:
        """One sentence for notebooks and logs."""
        parts = [
            f"{k} image(s) converted from mode {m} to RGB"
            for m, k in sorted(self.modes.items())
        ]
        if self.resized:
            parts.append(
                f"{self.resized} image(s) not 224x224, resized by the transform"
            )
        return "; ".join(parts) if parts else "no conversion"


class ImageLoader:
    """Read an image file as RGB with PIL, converting other modes (grayscale ``L``, ``RGBA``,
    palette ``P``, ``CMYK``, 16-bit ``I;16``...) to RGB and counting them in
    :attr:`conversions`; RGBA is composed onto white. A file that PIL cannot decode raises
    :class:`ImageReadError` naming it."""

    def __init__(self) -> None:
        self.conversions = Conversions()

    def __call__(self, path: str | Path):
        try:
            with Image.open(path) as im:
                im.load()
                img = im.copy()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise ImageReadError(
                f"Cannot read the image {path} ({type(err).__name__}: {err}). The file is corrupt, "
                "truncated or not an image: delete or replace it, or check the folder with "
                "helpers.data.check_image_folder."
            ) from err
        if img.size != (IMAGE_SIZE, IMAGE_SIZE):
            self.conversions.resized += 1
        if img.mode != "RGB":
            self.conversions.modes[img.mode] = (
                self.conversions.modes.get(img.mode, 0) + 1
            )
            if img.mode in ("RGBA", "LA", "PA") or (
                img.mode == "P" and "transparency" in img.info
            ):
                img = img.convert("RGBA")
                white = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(white, img).convert("RGB")
            elif img.mode.startswith("I;16") or img.mode == "I":
                arr = np.asarray(img, dtype=np.float64)
                arr = (arr / max(arr.max(), 1.0) * 255.0).astype("uint8")
                img = Image.fromarray(arr, mode="L").convert("RGB")
            else:
                img = img.convert("RGB")
        return img


@dataclass
class FolderReport:
    """What :func:`check_image_folder` found in a class-per-folder image tree."""

    root: Path
    classes: list[str]
    counts: dict[str, int]
    skipped: list[Path]  # files that are not images (by extension): ignored
    unreadable: list[Path]  # image files PIL cannot decode
    modes: dict[str, int]  # non-RGB modes found (converted to RGB when read)
    sizes: dict[str, int]  # "224x224" and "other" counts

    def describe(self) -> str:
        """A short summary for notebooks."""
        lines = [
            f"{self.root}: {len(self.classes)} classes, {sum(self.counts.values())} images"
        ]
        if self.skipped:
            lines.append(
                f"{len(self.skipped)} non-image file(s) ignored, e.g. {self.skipped[0].name}"
            )
        if self.modes:
            lines.append(
                "converted to RGB when read: "
                + ", ".join(f"{k} {m}" for m, k in self.modes.items())
            )
        if self.sizes.get("other"):
            lines.append(
                f"{self.sizes['other']} image(s) not 224x224 (resized by the transforms)"
            )
        return "; ".join(lines)


def check_image_folder(root: str | Path, verify: bool = True) -> FolderReport:
    """Check a class-per-folder image tree (``root/<class>/<image>``) before using it.

    Non-image files (by extension) are listed and ignored; grayscale, RGBA and other modes are
    listed (they are converted to RGB when read); images of other sizes are counted (the
    transforms resize them).

    Args:
        root: the folder.
        verify: also decode every image (slower; finds corrupt files up front).

    Raises:
        MissingDataError: when ``root`` does not exist (says what to put there).
        ValueError: when ``root`` has no class folder, a class folder holds no image, or an
            image cannot be decoded (naming the file).
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingDataError(
            f"No image folder at {root}. Expected one sub-folder per class with the images inside "
            f"(root/<class>/<image>.jpg), e.g. ImageNet's train/ or val/ folders; or set "
            f"{DATA_ROOT_ENV} to where your data is."
        )
    classes = sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if not classes:
        raise ValueError(
            f"{root} has no class sub-folder; expected root/<class>/<image>.jpg."
        )
    counts, skipped, unreadable, modes, sizes = (
        {},
        [],
        [],
        {},
        {"224x224": 0, "other": 0},
    )
    for c in classes:
        n = 0
        for path in sorted((root / c).rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.append(path)
                continue
            n += 1
            if verify:
                try:
                    with Image.open(path) as im:
                        im.load()
                        if im.mode != "RGB":
                            modes[im.mode] = modes.get(im.mode, 0) + 1
                        sizes[
                            "224x224"
                            if im.size == (IMAGE_SIZE, IMAGE_SIZE)
                            else "other"
                        ] += 1
                except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
                    unreadable.append(path)
        counts[c] = n
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise ValueError(
            f"Class folder(s) with no image in {root}: {', '.join(empty[:5])}. Every class needs at "
            f"least one image ({', '.join(IMAGE_EXTENSIONS)}); remove the empty folder(s) or add images."
        )
    if unreadable:
        raise ValueError(
            f"{len(unreadable)} image file(s) in {root} cannot be decoded (corrupt or truncated), "
            f"e.g. {unreadable[0]}. Delete or replace them."
        )
    return FolderReport(root, classes, counts, skipped, unreadable, modes, sizes)


def image_folder(
    root: str | Path, train: bool = False, check: bool = True, resize: int = IMAGE_SIZE
):
    """A torchvision ``ImageFolder`` over ``root/<class>/<image>`` with the paper's transforms,
    read through :class:`ImageLoader` (non-RGB converted and counted in ``.conversions``).

    Args:
        root: the folder.
        train: training augmentation (else the validation transform).
        check: run :func:`check_image_folder` first (clear errors for a missing folder, an
            empty class, a corrupt image).
        resize: the validation resize (ignored when ``train``).
    """
    report = check_image_folder(root, verify=check) if check else None
    if not Path(root).is_dir():
        raise MissingDataError(f"No image folder at {root}.")
    loader = ImageLoader()
    ds = ImageFolder(
        str(root),
        transform=train_transform() if train else eval_transform(resize),
        loader=loader,
        is_valid_file=lambda p: Path(p).suffix.lower() in IMAGE_EXTENSIONS,
    )
    ds.conversions = loader.conversions  # type: ignore[attr-defined]
    ds.report = report  # type: ignore[attr-defined]
    ds.description = f"image folder {root}"  # type: ignore[attr-defined]
    return ds


def imagenette(
    split: str = "train",
    size: str = "320px",
    train: bool | None = None,
    root: str | Path | None = None,
    download: bool = True,
    downloader: Callable[[str, Path], None] | None = None,
):
    """Imagenette (10 easy ImageNet classes) through ``torchvision.datasets.Imagenette``.

    The archive is downloaded (when ``download`` and missing) into ``root`` (default
    ``<cache>/data/imagenette``), its SHA-256 recorded on first download and checked afterwards,
    then extracted; the images are read through :class:`ImageLoader`.

    Args:
        split: ``"train"`` or ``"val"``.
        size: ``"full"``, ``"320px"`` or ``"160px"`` (torchvision's archives).
        train: training augmentation (default: ``split == "train"``).
        root, download, downloader: where, whether, and how (tests pass a fake downloader).

    Raises:
        MissingDataError: offline and not present, saying where to put the archive.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}.")
    if size not in Imagenette._ARCHIVES:
        raise ValueError(
            f"size must be one of {sorted(Imagenette._ARCHIVES)}, got {size!r}."
        )
    root = (
        Path(root)
        if root is not None
        else cache_dir("data", "imagenette", create=False)
    )
    url, _ = Imagenette._ARCHIVES[size]
    archive = root / Path(url).name
    extracted = root / Path(url).stem
    if not extracted.is_dir():
        if not archive.is_file() and not download:
            raise MissingDataError(
                f"Imagenette ({size}) is not in {root}. Download {url} and put it at {archive} "
                "(or call with download=True where there is a network)."
            )
        fetch_file(
            url, archive, downloader=downloader, what=f"Imagenette archive ({size})"
        )
        extract_archive(str(archive), str(root))
        if not extracted.is_dir():
            raise ValueError(
                f"The archive {archive} did not contain the folder {extracted.name}/."
            )
    elif archive.is_file():
        verify_or_record(archive)
    check_image_folder(extracted / split, verify=False)
    loader = ImageLoader()
    train = (split == "train") if train is None else train
    ds = Imagenette(
        str(root),
        split=split,
        size=size,
        download=False,
        loader=loader,
        transform=train_transform() if train else eval_transform(),
    )
    ds.conversions = loader.conversions  # type: ignore[attr-defined]
    ds.classes = [
        names[0] for names in ds.classes
    ]  # the first English name of each class
    ds.description = f"Imagenette {size} ({split})"  # type: ignore[attr-defined]
    return ds


def data_root(profile: str | Profile | None = None) -> Path:
    """The root of an ImageNet-style folder (``train/`` and ``val/`` inside): the profile's
    ``data.root``, else ``$CAMWALLS_DATA_ROOT``, else ``<cache>/data/imagenet``."""
    prof = get_profile(profile)
    root = getattr(prof.data, "root", "") or os.environ.get(DATA_ROOT_ENV, "").strip()
    return (
        Path(root).expanduser() if root else cache_dir("data", "imagenet", create=False)
    )


def real_dataset(
    profile: str | Profile | None = None,
    split: str = "train",
    train: bool | None = None,
):
    """The real dataset of a profile whose ``data.source`` is ``"imagefolder"`` or
    ``"imagenette"``, for ``split`` ``"train"`` or ``"val"``.

    Raises:
        ValueError: for the synthetic source (use :class:`SyntheticStream`) or an unknown one.
        MissingDataError: when the data is not here (with what to do).
    """
    prof = get_profile(profile)
    train = (split == "train") if train is None else train
    if prof.data.source == "imagefolder":
        root = data_root(prof) / split
        if not root.is_dir():
            raise MissingDataError(
                f"No {split}/ folder under {data_root(prof)}. The full profile trains on an "
                "ImageNet-style folder: put train/<class>/*.JPEG and val/<class>/*.JPEG there, set "
                f"{DATA_ROOT_ENV} to where they are, or use the Imagenette source "
                "(profile.replace(data=...source='imagenette'))."
            )
        return image_folder(root, train=train, check=True)
    if prof.data.source == "imagenette":
        return imagenette(split=split, train=train)
    if prof.data.source == "synthetic":
        raise ValueError(
            "The synthetic source has no dataset object: use SyntheticStream / "
            "synthetic_batch."
        )
    raise ValueError(
        f"Unknown data source {prof.data.source!r}; expected 'synthetic', "
        "'imagefolder' or 'imagenette'."
    )
