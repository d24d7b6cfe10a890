"""The authors' release and its checks: their two checkpoints, pinned to the digests they
published, and their ``stackmix/`` and ``stackgen/`` folders, in ``<cache>/authors``.

A checkpoint whose size and SHA-256 are the ones the authors published through Git LFS
(:data:`AUTHORS_PUBLISHED_CHECKPOINTS`) is theirs. Any other file under that name gets an
:class:`UnpublishedCheckpointWarning` (the Google Drive copy may have been re-saved) and the
content checks: it must load as rVGG and pass the wall check. A stack folder must hold the
paper's 100 readable images (STACK-MIX ones 224x224), listed as the authors list them
(:func:`authors_stack_files`). Only what passed is recorded (:mod:`helpers.data.downloads`), and
every later call compares the record. Every error names the file, what was expected and what
was found, and says to delete it and download it again. Where the release comes from (Google
Drive, the authors' GitHub repository, a zip): :mod:`helpers.data.release_sources`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import NamedTuple

from PIL import Image, UnidentifiedImageError

from ..config import IMAGE_SIZE, CheckpointError, cache_dir
from ..models import AUTHORS_DRIVE_URL, load_authors_weights
from .downloads import _set_record, _verify_files, sha256_file, verify_or_record
from .synthetic import FIRST_UNSEEN_ROW

#: What the authors' release holds (files and folders), relative to :func:`authors_dir`.
AUTHORS_CHECKPOINTS = {
    True: "params_vgg16_masked.pt",
    False: "params_vgg16_baseline.pt",
}
AUTHORS_FOLDERS = ("stackmix", "stackgen")
#: Images in each of the authors' stack folders: the paper's STACK-MIX and STACK-GEN hold 100.
AUTHORS_STACK_IMAGES = 100
#: The files the authors' ``CustomImageDataset`` lists (``figure_code/heatmap.py``): names
#: ending so, compared in lower case.
AUTHORS_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
#: The display name of each stack folder.
_STACK_NAMES = {"stackmix": "STACK-MIX", "stackgen": "STACK-GEN"}

#: The authors' GitHub repository, and the commit whose ``vgg16_experiment/`` folder holds
#: both checkpoints as Git LFS files.
AUTHORS_REPOSITORY = "MagamedT/cam-can-see-through-walls"
AUTHORS_LFS_COMMIT = "6ba9e36ba500561bb78812807a2337421e7438ef"
#: The zip of the two stack folders at the root of the authors' repository (a plain git file).
AUTHORS_STACKS_ZIP = "processed_datasets_gradcam.zip"
AUTHORS_STACKS_ZIP_URL = (
    f"https://github.com/{AUTHORS_REPOSITORY}/raw/HEAD/{AUTHORS_STACKS_ZIP}"
)


class PublishedFile(NamedTuple):
    """A file's SHA-256 and size in bytes, as published (a Git LFS pointer gives both)."""

    sha256: str
    size: int


#: The checkpoints as the authors published them: the Git LFS pointers of
#: ``vgg16_experiment/params_vgg16_{masked,baseline}.pt`` at :data:`AUTHORS_LFS_COMMIT`.
AUTHORS_PUBLISHED_CHECKPOINTS = {
    "params_vgg16_masked.pt": PublishedFile(
        "25d860de9bd7a84bbf900b338f4b35fb3fadd05431194bd7f94c4c370e9b8bce", 959_763_686
    ),
    "params_vgg16_baseline.pt": PublishedFile(
        "46b3efe49e2546dc7874a9cecbf004b1da04335ddb4df0d5819e8c0a91f9630a", 959_763_758
    ),
}


def authors_lfs_url(name: str) -> str:
    """Where GitHub serves the Git LFS file ``vgg16_experiment/<name>`` of
    :data:`AUTHORS_LFS_COMMIT` (its media URL)."""
    return (
        f"https://media.githubusercontent.com/media/{AUTHORS_REPOSITORY}/{AUTHORS_LFS_COMMIT}/"
        f"vgg16_experiment/{name}"
    )


class AuthorsReleaseError(ValueError):
    """A file or folder of the authors' release that does not hold what it should (a checkpoint
    that does not load as rVGG or fails the wall check, a download that is not the published
    file, a stack folder with the wrong number of images, an unreadable or wrongly sized image,
    a zip without the stack folders). The message names it and says what to do."""


class UnpublishedCheckpointWarning(UserWarning):
    """A file named as one of the authors' checkpoints whose size or SHA-256 differs from the
    published one (:data:`AUTHORS_PUBLISHED_CHECKPOINTS`); its content is checked instead."""


def _redownload(what: str = "it") -> str:
    """The advice for a broken item of the authors' release."""
    return (
        f"Delete {what} and download it again with helpers.data.download_authors_release() "
        f"(needs a network: the authors' Google Drive folder, else their GitHub repository "
        f"{AUTHORS_REPOSITORY}), or by hand from the authors' Google Drive folder {AUTHORS_DRIVE_URL}."
    )


def _wrong_size_message(path: Path, size: tuple[int, int]) -> str:
    return (
        f"The image {path} of the authors' STACK-MIX set is {size[0]}x{size[1]}; expected "
        f"{IMAGE_SIZE}x{IMAGE_SIZE} (the authors' STACK-MIX images are stacked at "
        f"{IMAGE_SIZE}x{IMAGE_SIZE} and read without resizing, so that the wall falls at row "
        f"{FIRST_UNSEEN_ROW}). " + _redownload("it (or the whole stackmix/ folder)")
    )


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
    before the file's digest is recorded (later calls only compare digests), and never for a
    file that is the published one (:func:`verify_authors_checkpoint`).

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


def verify_authors_checkpoint(
    path: str | Path, walled: bool, record_folder: str | Path | None = None
) -> str:
    """Check one of the authors' checkpoints; return its SHA-256.

    Its size is compared with the published one first (a file of another size is not hashed
    against the published digest). A file with the published size and SHA-256
    (:data:`AUTHORS_PUBLISHED_CHECKPOINTS`) is the authors': its digest is recorded, replacing
    any other, and no content check is needed. Any other file gets an
    :class:`UnpublishedCheckpointWarning`, then what every download gets
    (:func:`helpers.data.verify_or_record`): the content checks
    (:func:`validate_authors_checkpoint`) before its digest is first recorded, the recorded
    digest on every later call. A file is hashed once per call.

    Args:
        path: the checkpoint (a symbolic link is fine: the record is keyed by its own name).
        walled: which of the two it should be.
        record_folder: the folder of the digest record (default: the file's folder).

    Raises:
        FileNotFoundError: when there is no file.
        AuthorsReleaseError: when an unpublished file fails the content checks.
        ValueError: when an unpublished file differs from its recorded digest.
        helpers.config.CacheDirError: when the record cannot be written.
    """
    path = Path(path)
    folder = Path(record_folder) if record_folder is not None else path.parent
    name = AUTHORS_CHECKPOINTS[bool(walled)]
    published = AUTHORS_PUBLISHED_CHECKPOINTS[name]
    if not path.is_file():
        raise FileNotFoundError(
            f"No checkpoint at {path}; expected the authors' {name}. Download it with "
            "helpers.data.download_authors_release() (needs a network), or by hand from "
            f"{AUTHORS_DRIVE_URL} or {authors_lfs_url(name)}."
        )
    size = path.stat().st_size
    digest = None
    if size == published.size:
        digest = sha256_file(path)
        if digest == published.sha256:
            _set_record(path, folder, digest)
            return digest
        found = f"it has the published size, but its SHA-256 is {digest[:16]}..., not {published.sha256[:16]}..."
    else:
        found = f"it is {size:,} bytes, the published file {published.size:,}"
    warnings.warn(
        UnpublishedCheckpointWarning(
            f"{path} is not the {'walled' if walled else 'baseline'} checkpoint the authors published "
            f"through Git LFS (commit {AUTHORS_LFS_COMMIT[:12]} of {AUTHORS_REPOSITORY}): {found}. The "
            "Google Drive copy may have been re-saved, or this is another file; its content is checked "
            "instead (it must load as rVGG and pass the wall check). For the published file, delete this "
            f"one and run helpers.data.download_authors_release(sources=('github',)), or download "
            f"{authors_lfs_url(name)}."
        ),
        stacklevel=2,
    )
    return verify_or_record(
        path,
        folder,
        validate=lambda p: validate_authors_checkpoint(p, walled=bool(walled)),
        digest=digest,
    )


def _is_authors_image(path: Path) -> bool:
    """Whether the authors' ``CustomImageDataset`` lists ``path`` (its name ends in one of
    :data:`AUTHORS_IMAGE_EXTENSIONS`), skipping what it could not read: folders, and hidden
    files (``.DS_Store``, macOS's ``._`` companions)."""
    return (
        path.name.lower().endswith(AUTHORS_IMAGE_EXTENSIONS)
        and not path.name.startswith(".")
        and path.is_file()
    )


def authors_stack_files(folder: str | Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """The image files of a stack folder in the authors' order, with their labels, and the
    class names. The authors' layout is a flat folder, listed as their ``CustomImageDataset``
    lists it (``sorted(os.listdir(folder))``, names ending in ``.png``, ``.jpg`` or ``.jpeg`` in
    any case); its images get the label ``-1``. A folder with no such file but class
    sub-folders gives the images inside them, labelled by the sub-folder's index in sorted
    order. Hidden files and folders are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        return [], []
    names = sorted(os.listdir(folder))
    flat = [folder / n for n in names if _is_authors_image(folder / n)]
    if flat:
        return [(p, -1) for p in flat], []
    subdirs = [
        folder / n for n in names if not n.startswith(".") and (folder / n).is_dir()
    ]
    files = [
        (d / n, i)
        for i, d in enumerate(subdirs)
        for n in sorted(os.listdir(d))
        if _is_authors_image(d / n)
    ]
    return files, [d.name for d in subdirs]


def validate_authors_stack(
    folder: str | Path, expected: int | None = None
) -> list[Path]:
    """Check one of the authors' stack folders (``stackmix/`` or ``stackgen/``, told apart by
    the folder's name): it holds ``expected`` image files (default
    :data:`AUTHORS_STACK_IMAGES`, the paper's 100), every one decodes, and the STACK-MIX ones
    are 224x224 (STACK-GEN images may have any size: they are resized when read).

    Returns:
        The image files, in the order they are read (:func:`authors_stack_files`).

    Raises:
        AuthorsReleaseError: (a ``ValueError``) naming the folder or the file, what was
            expected and what was found, and saying to delete it and download it again.
    """
    folder = Path(folder)
    expected = AUTHORS_STACK_IMAGES if expected is None else expected
    name = _STACK_NAMES.get(folder.name, folder.name)
    files = [p for p, _ in authors_stack_files(folder)[0]]
    if len(files) != expected:
        what = "no folder" if not folder.is_dir() else f"{len(files)} image file(s)"
        raise AuthorsReleaseError(
            f"The authors' {name} folder {folder} holds {what}; expected {expected} images "
            f"({', '.join(AUTHORS_IMAGE_EXTENSIONS)}). The download is incomplete or the folder is not "
            "the authors': " + _redownload("the folder")
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
    files = [p for p, _ in authors_stack_files(folder)[0]]
    if len(files) != AUTHORS_STACK_IMAGES:
        validate_authors_stack(folder)  # raises, naming the count
    _verify_files(files, dest, validate_all=lambda: validate_authors_stack(folder))


def verify_authors_release(dest: str | Path) -> None:
    """Check everything of the release in ``dest``: both checkpoints
    (:func:`verify_authors_checkpoint`) and both stack folders (their images' record, or
    :func:`validate_authors_stack` before they are first recorded).

    Raises:
        As :func:`verify_authors_checkpoint` and :func:`validate_authors_stack`.
    """
    dest = Path(dest)
    for walled, name in AUTHORS_CHECKPOINTS.items():
        verify_authors_checkpoint(dest / name, walled, dest)
    for folder in AUTHORS_FOLDERS:
        _verify_authors_stack(dest, folder)
