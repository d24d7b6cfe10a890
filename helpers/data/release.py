"""The authors' release: their two checkpoints and their ``stackmix/`` and ``stackgen/`` folders,
downloaded from their Google Drive folder into ``<cache>/authors`` and checked before use.

A checkpoint must load as rVGG and pass the wall check; a stack folder must hold the paper's
100 readable images (STACK-MIX ones 224x224). Only then is a file's SHA-256 recorded
(:mod:`helpers.data.downloads`), and every later call compares it. Every error names the file,
what was expected and what was found, and says to delete it and download it again.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..config import IMAGE_SIZE, CheckpointError, cache_dir, ensure_dir
from ..models import AUTHORS_DRIVE_FOLDER, AUTHORS_DRIVE_URL, load_authors_weights
from .downloads import MissingDataError, _verify_files, verify_or_record
from .folders import IMAGE_EXTENSIONS
from .synthetic import FIRST_UNSEEN_ROW

#: What the authors' release holds (files and folders), relative to :func:`authors_dir`.
AUTHORS_CHECKPOINTS = {True: "params_vgg16_masked.pt", False: "params_vgg16_baseline.pt"}
AUTHORS_FOLDERS = ("stackmix", "stackgen")
#: Images in each of the authors' stack folders: the paper's STACK-MIX and STACK-GEN hold 100.
AUTHORS_STACK_IMAGES = 100
#: The display name of each stack folder.
_STACK_NAMES = {"stackmix": "STACK-MIX", "stackgen": "STACK-GEN"}


class AuthorsReleaseError(ValueError):
    """A file or folder of the authors' release that does not hold what it should (a checkpoint
    that does not load as rVGG or fails the wall check, a stack folder with the wrong number of
    images, an unreadable or wrongly sized image). The message names it and says to delete it and
    download it again."""


def _redownload(what: str = "it") -> str:
    """The advice for a broken item of the authors' release."""
    return (f"Delete {what} and download it again with helpers.data.download_authors_release() "
            f"(needs a network), or by hand from the authors' Google Drive folder {AUTHORS_DRIVE_URL}.")


def _wrong_size_message(path: Path, size: tuple[int, int]) -> str:
    return (f"The image {path} of the authors' STACK-MIX set is {size[0]}x{size[1]}; expected "
            f"{IMAGE_SIZE}x{IMAGE_SIZE} (the authors' STACK-MIX images are stacked at "
            f"{IMAGE_SIZE}x{IMAGE_SIZE} and read without resizing, so that the wall falls at row "
            f"{FIRST_UNSEEN_ROW}). " + _redownload("it (or the whole stackmix/ folder)"))


def authors_dir() -> Path:
    """Where the authors' release lives: ``<cache>/authors`` (checkpoints, ``stackmix/``,
    ``stackgen/``). Only the path: the folder is not created (that happens when something is
    downloaded into it), so reading it works wherever ``$CAMWALLS_HOME`` points."""
    return cache_dir("authors", create=False)


def validate_authors_checkpoint(path: str | Path, walled: bool) -> None:
    """Check that ``path`` is the authors' walled (``walled=True``) or baseline checkpoint: it
    loads with ``torch.load(weights_only=True)``, builds rVGG, and passes the wall check (the
    walled checkpoint's weights under the wall are all zero; the baseline's are not).

    Loading a full-width checkpoint takes a few seconds and a few GB of memory; it is done once,
    before the file's digest is recorded (later calls only compare digests).

    Raises:
        FileNotFoundError: when there is no file.
        AuthorsReleaseError: (a ``ValueError``) naming the file, what was expected and what was
            found, and saying to delete it and download it again.
    """
    path = Path(path)
    kind = "walled" if walled else "baseline"
    try:
        load_authors_weights(path, walled=walled, on_open_wall="error")
    except CheckpointError as err:  # names the file, its size and the advice already
        raise AuthorsReleaseError(str(err)) from err
    except (ValueError, RuntimeError) as err:
        # A RuntimeError is a content problem only when load_state_dict refused the tensors (an
        # open wall); any other (out of memory...) says nothing about the file: let it through.
        if isinstance(err, RuntimeError) and "loading state_dict" not in str(err):
            raise
        found = " ".join(str(err).split())[:1500]
        if str(path) in found:  # the message names the file and says what to do already
            raise AuthorsReleaseError(found) from err
        raise AuthorsReleaseError(
            f"The authors' {kind} checkpoint {path} does not pass the checks: {found} Expected "
            f"rVGG's weights in the authors' flat layout with the {kind} model's wall "
            f"({'every weight under the wall zero' if walled else 'weights under the wall non-zero'}). "
            + _redownload("it")
        ) from err


def _stack_files(folder: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """The image files of a stack folder in sorted order with their labels, and the class names:
    a flat folder (the authors' layout) gives label ``-1``; with class sub-folders, the images
    inside them labelled by the sub-folder's index. Hidden files and folders are ignored."""
    if not folder.is_dir():
        return [], []

    def images(d: Path) -> list[Path]:
        return [p for p in sorted(d.iterdir()) if p.is_file() and not p.name.startswith(".")
                and p.suffix.lower() in IMAGE_EXTENSIONS]

    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs:
        return [(p, i) for i, d in enumerate(subdirs) for p in images(d)], [d.name for d in subdirs]
    return [(p, -1) for p in images(folder)], []


def validate_authors_stack(folder: str | Path, expected: int | None = None) -> list[Path]:
    """Check one of the authors' stack folders (``stackmix/`` or ``stackgen/``, told apart by
    the folder's name): it holds ``expected`` image files (default
    :data:`AUTHORS_STACK_IMAGES`, the paper's 100), every one decodes, and the STACK-MIX ones
    are 224x224 (STACK-GEN images may have any size: they are resized when read).

    Returns:
        The image files, in the order they are read.

    Raises:
        AuthorsReleaseError: (a ``ValueError``) naming the folder or the file, what was
            expected and what was found, and saying to delete it and download it again.
    """
    folder = Path(folder)
    expected = AUTHORS_STACK_IMAGES if expected is None else expected
    name = _STACK_NAMES.get(folder.name, folder.name)
    files = [p for p, _ in _stack_files(folder)[0]]
    if len(files) != expected:
        what = "no folder" if not folder.is_dir() else f"{len(files)} image file(s)"
        raise AuthorsReleaseError(
            f"The authors' {name} folder {folder} holds {what}; expected {expected} images "
            f"({', '.join(IMAGE_EXTENSIONS)}). The download is incomplete or the folder is not the "
            "authors': " + _redownload("the folder")
        )
    for path in files:
        try:
            with Image.open(path) as im:
                im.load()
                size = im.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise AuthorsReleaseError(
                f"The image {path} of the authors' {name} set cannot be decoded ({type(err).__name__}: "
                f"{err}); expected a readable image. The file is truncated or corrupt: "
                + _redownload("it (or the whole folder)")
            ) from err
        if name == "STACK-MIX" and size != (IMAGE_SIZE, IMAGE_SIZE):
            raise AuthorsReleaseError(_wrong_size_message(path, size))
    return files


def _verify_authors_stack(dest: Path, folder_name: str) -> None:
    """Check the digests of a stack folder's images against the record in ``dest``; record the
    new ones only after the whole folder passed :func:`validate_authors_stack`. The image count
    is checked every time (cheap: a listing)."""
    folder = dest / folder_name
    files = [p for p, _ in _stack_files(folder)[0]]
    if len(files) != AUTHORS_STACK_IMAGES:
        validate_authors_stack(folder)  # raises, naming the count
    _verify_files(files, dest, validate_all=lambda: validate_authors_stack(folder))


def _download_drive_folder(folder_id: str, dest: Path) -> None:
    """Download a public Google Drive folder into ``dest`` with ``gdown``."""
    try:  # imported here: gdown (requests, beautifulsoup) takes half a second, needed only now
        import gdown
    except ImportError as err:  # pragma: no cover - gdown is a dependency of the book
        raise MissingDataError(
            "Downloading the authors' release needs the package gdown (pip install gdown)."
        ) from err
    gdown.download_folder(id=folder_id, output=str(dest), quiet=True)


def download_authors_release(dest: str | Path | None = None,
                             downloader: Callable[[str, Path], None] | None = None,
                             force: bool = False) -> Path:
    """The authors' release (checkpoints and ``stackmix/``, ``stackgen/``) in ``dest``
    (default :func:`authors_dir`), downloaded from their Google Drive folder with ``gdown`` when
    something is missing, then checked: every checkpoint must load as rVGG and pass the wall
    check (:func:`validate_authors_checkpoint`), every stack folder must hold
    :data:`AUTHORS_STACK_IMAGES` readable images (STACK-MIX ones 224x224,
    :func:`validate_authors_stack`). The SHA-256 of a file is recorded only once its content
    passed these checks, and compared on every later call.

    Args:
        dest: target folder (created only when something has to be downloaded).
        downloader: ``f(folder_id, dest)`` (default: ``gdown.download_folder``); tests pass a fake.
        force: download even when everything is present.

    Returns:
        ``dest``.

    Raises:
        helpers.config.CacheDirError: when ``dest`` cannot be created or written (before the
            download starts).
        MissingDataError: offline, naming the missing items and where to put them by hand.
        AuthorsReleaseError: when a checkpoint or a stack folder fails its checks (naming it;
            nothing is recorded for it).
        ValueError: when a file differs from its recorded digest.
    """
    dest = Path(dest) if dest is not None else authors_dir()
    missing = _authors_missing(dest)
    if missing or force:
        ensure_dir(dest)
        try:
            (downloader or _download_drive_folder)(AUTHORS_DRIVE_FOLDER, dest)
        except Exception as err:  # noqa: BLE001
            raise MissingDataError(
                f"Could not download the authors' release ({type(err).__name__}: {err}). Missing: "
                f"{', '.join(missing) or 'nothing (a forced download)'}. Download the Google Drive "
                f"folder {AUTHORS_DRIVE_URL} by hand and put its content in {dest} (files "
                f"{', '.join(AUTHORS_CHECKPOINTS.values())}, folders "
                f"{', '.join(f + '/' for f in AUTHORS_FOLDERS)} with {AUTHORS_STACK_IMAGES} images each)."
            ) from err
        # gdown puts the folder's content in dest, or in dest/<folder name>: accept both.
        _flatten_single_subfolder(dest)
        still = _authors_missing(dest)
        if still:
            raise MissingDataError(
                f"After the download, still missing in {dest}: {', '.join(still)}. Expected the "
                f"files and folders of the authors' Google Drive folder {AUTHORS_DRIVE_URL}; put "
                "the missing ones there by hand."
            )
    for walled, name in AUTHORS_CHECKPOINTS.items():
        verify_or_record(dest / name, dest,
                         validate=lambda p, w=walled: validate_authors_checkpoint(p, walled=w))
    for folder in AUTHORS_FOLDERS:
        _verify_authors_stack(dest, folder)
    return dest


def _authors_missing(dest: Path) -> list[str]:
    """What of the release is not in ``dest``: checkpoints that are not files, stack folders
    that hold no image file (an empty or image-less folder is missing, not complete)."""
    missing = [name for name in AUTHORS_CHECKPOINTS.values() if not (dest / name).is_file()]
    missing += [f"{name}/" for name in AUTHORS_FOLDERS if not _stack_files(dest / name)[0]]
    return missing


def _flatten_single_subfolder(dest: Path) -> None:
    if _authors_missing(dest):
        for sub in dest.iterdir():
            if sub.is_dir() and sub.name not in AUTHORS_FOLDERS and not _authors_missing(sub):
                for item in sub.iterdir():
                    target = dest / item.name
                    if not target.exists():
                        shutil.move(str(item), str(target))
                break


def authors_checkpoint(walled: bool = True, download: bool = False,
                       downloader: Callable[[str, Path], None] | None = None) -> Path:
    """Path of the authors' checkpoint (``params_vgg16_masked.pt`` when ``walled``, else
    ``params_vgg16_baseline.pt``), checked against its recorded SHA-256; a file seen for the
    first time (copied by hand) is first checked with :func:`validate_authors_checkpoint`.

    Raises:
        MissingDataError: when it is not in :func:`authors_dir` (and ``download`` is false or
            fails), saying where to put it.
        AuthorsReleaseError: when the file does not load as rVGG or fails the wall check.
        ValueError: when it differs from its recorded digest.
        helpers.config.CacheDirError: when the digest cannot be recorded (folder not writable).
    """
    folder = authors_dir()
    path = folder / AUTHORS_CHECKPOINTS[bool(walled)]
    if not path.is_file():
        if not download:
            raise MissingDataError(
                f"The authors' checkpoint {path.name} is not in {folder}. Call "
                "helpers.data.download_authors_release() (needs a network), or download it from "
                f"{AUTHORS_DRIVE_URL} and copy it there."
            )
        download_authors_release(folder, downloader=downloader)
    verify_or_record(path, folder, validate=lambda p: validate_authors_checkpoint(p, walled=bool(walled)))
    return path


def load_authors_model(walled: bool = True, download: bool = False, map_location: str = "cpu"):
    """The authors' trained rVGG (full width, 1000 ImageNet classes) in eval mode, through
    :func:`helpers.models.load_authors_weights` (``torch.load(weights_only=True)``).

    Raises:
        As :func:`authors_checkpoint`.
    """
    return load_authors_weights(authors_checkpoint(walled, download=download), walled=walled,
                                map_location=map_location)
