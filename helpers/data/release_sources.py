"""Getting the authors' release into ``<cache>/authors``, from wherever it is: their Google
Drive folder (``gdown``); else their GitHub repository, the checkpoints as the Git LFS files of
the commit whose digests are pinned and the stack sets from ``processed_datasets_gradcam.zip``;
and a zip or a sub-folder already in the release folder (unpacked, moved up), or symbolic links
to files elsewhere (a mounted Google Drive in Colab). :mod:`helpers.data.release` checks
everything before it is used. The downloaders are arguments, so that the tests rehearse every
path without a network.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from ..config import ensure_dir
from ..models import AUTHORS_DRIVE_FOLDER, AUTHORS_DRIVE_URL, load_authors_weights
from .downloads import MissingDataError, _download_url, _set_record, sha256_file
from .release import (
    AUTHORS_CHECKPOINTS,
    AUTHORS_FOLDERS,
    AUTHORS_LFS_COMMIT,
    AUTHORS_PUBLISHED_CHECKPOINTS,
    AUTHORS_REPOSITORY,
    AUTHORS_STACK_IMAGES,
    AUTHORS_STACKS_ZIP,
    AUTHORS_STACKS_ZIP_URL,
    AuthorsReleaseError,
    _redownload,
    authors_dir,
    authors_lfs_url,
    authors_stack_files,
    verify_authors_checkpoint,
    verify_authors_release,
)

#: Where :func:`download_authors_release` looks, in its default order: ``"drive"`` (the
#: authors' Google Drive folder) and ``"github"`` (their repository: Git LFS checkpoints, the
#: stacks' zip).
AUTHORS_SOURCES = ("drive", "github")
_SOURCE_NAMES = {
    "drive": f"the Google Drive folder {AUTHORS_DRIVE_URL}",
    "github": f"the GitHub repository {AUTHORS_REPOSITORY}",
}
_PARTIAL = (
    ".download"  # suffix of a file being downloaded (renamed once it passed its checks)
)


def _download_drive_folder(folder_id: str, dest: Path) -> None:
    """Download a public Google Drive folder into ``dest`` with ``gdown``."""
    try:  # imported here: gdown (requests, beautifulsoup) takes half a second, needed only now
        import gdown
    except ImportError as err:  # pragma: no cover - gdown is a dependency of the book
        raise MissingDataError(
            "Downloading the authors' release needs the package gdown (pip install gdown)."
        ) from err
    gdown.download_folder(id=folder_id, output=str(dest), quiet=True)


def _not_a_download(path: Path) -> str:
    """What a small downloaded file that should be large is: a Git LFS pointer, or bytes."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    return (
        "a Git LFS pointer instead of the file"
        if head.startswith(b"version https://git-lfs")
        else f"{path.stat().st_size:,} bytes"
    )


def _fetch_published_checkpoint(
    dest: Path, name: str, fetch: Callable[[str, Path], None]
) -> Path:
    """Download the Git LFS file of checkpoint ``name`` (:func:`authors_lfs_url`) next to its
    place, check its size (before hashing) and then its SHA-256 against the published ones, and
    only then move it into place and record its digest. Nothing of a failed download is kept.

    Raises:
        AuthorsReleaseError: when the download is not the published file.
        MissingDataError: when the download produced no file.
    """
    published = AUTHORS_PUBLISHED_CHECKPOINTS[name]
    url, part = authors_lfs_url(name), dest / (name + _PARTIAL)
    part.unlink(missing_ok=True)
    fetch(url, part)
    if not part.is_file():
        raise MissingDataError(f"The download of {url} produced no file at {part}.")
    problem = None
    if part.stat().st_size != published.size:
        problem = f"it gave {_not_a_download(part)}, the published file is {published.size:,} bytes"
    elif (digest := sha256_file(part)) != published.sha256:
        problem = f"its SHA-256 is {digest[:16]}..., the published one {published.sha256[:16]}..."
    if problem:
        part.unlink()
        raise AuthorsReleaseError(
            f"The download of {url} is not the checkpoint the authors published (Git LFS pointer of "
            f"commit {AUTHORS_LFS_COMMIT[:12]}): {problem}. It is truncated or not their file; nothing "
            "was kept. Try again later, or download it by hand from the Google Drive folder "
            f"{AUTHORS_DRIVE_URL} into {dest}."
        )
    os.replace(part, dest / name)
    _set_record(dest / name, dest, published.sha256)
    return dest / name


def _fetch_repository_zip(
    dest: Path, folders: Sequence[str], fetch: Callable[[str, Path], None]
) -> list[str]:
    """Download the repository's ``processed_datasets_gradcam.zip`` into ``dest`` and unpack
    the stack ``folders`` from it; return the folders unpacked.

    Raises:
        AuthorsReleaseError: when the download is not a zip (nothing is kept) or holds none of
            ``folders``.
    """
    part = dest / (AUTHORS_STACKS_ZIP + _PARTIAL)
    part.unlink(missing_ok=True)
    fetch(AUTHORS_STACKS_ZIP_URL, part)
    if not part.is_file():
        raise MissingDataError(
            f"The download of {AUTHORS_STACKS_ZIP_URL} produced no file at {part}."
        )
    if not zipfile.is_zipfile(part):
        found = _not_a_download(part)
        part.unlink()
        raise AuthorsReleaseError(
            f"The download of {AUTHORS_STACKS_ZIP_URL} is not a zip ({found}); nothing "
            "was kept. Try again later, or download the zip by hand and put it in "
            f"{dest}."
        )
    os.replace(part, dest / AUTHORS_STACKS_ZIP)
    return unpack_authors_stacks(dest / AUTHORS_STACKS_ZIP, dest, folders)


def _zip_groups(
    archive: zipfile.ZipFile, folders: Sequence[str]
) -> dict[str, list[tuple[zipfile.ZipInfo, tuple]]]:
    """For each of ``folders`` found in the zip, its files (entry, path inside the folder): at
    the zip's root or under top folders, the place with the most files (then the shallowest).
    ``__MACOSX/``, hidden entries and names that would leave the folder are skipped."""
    places: dict[str, dict[tuple, list]] = {}
    for info in archive.infolist():
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if (
            info.is_dir()
            or not parts
            or parts[0] in ("/", "__MACOSX")
            or any(p.startswith(".") or p.endswith(":") for p in parts)
        ):
            continue
        at = next((i for i, part in enumerate(parts[:-1]) if part in folders), None)
        if at is not None:
            places.setdefault(parts[at], {}).setdefault(parts[:at], []).append(
                (info, parts[at + 1 :])
            )
    return {
        folder: max(by_place.items(), key=lambda kv: (len(kv[1]), -len(kv[0])))[1]
        for folder, by_place in places.items()
    }


def unpack_authors_stacks(
    archive: str | Path, dest: str | Path, folders: Sequence[str] = AUTHORS_FOLDERS
) -> list[str]:
    """Unpack the authors' stack ``folders`` from a zip (the repository's
    ``processed_datasets_gradcam.zip`` or the zip of their Google Drive folder) into ``dest``:
    ``<dest>/stackmix/...`` and ``<dest>/stackgen/...``, wherever they lie in the zip (at its
    root, or under a top folder). A folder that already holds images is left as it is; each
    folder is unpacked beside it first and then renamed, so that an interruption never leaves a
    half-filled folder behind.

    Returns:
        The folders unpacked.

    Raises:
        AuthorsReleaseError: for a file that is not a readable zip, or a zip that holds none of
            ``folders`` (the message lists what it holds).
    """
    archive, dest = Path(archive), Path(dest)
    done = []
    try:
        with zipfile.ZipFile(archive) as zf:
            groups = _zip_groups(zf, folders)
            if not groups:
                top = sorted(
                    {PurePosixPath(n).parts[0] for n in zf.namelist() if n.strip("/")}
                )
                raise AuthorsReleaseError(
                    f"The zip {archive} holds no {' or '.join(f + '/' for f in folders)} folder (its top "
                    f"level: {', '.join(top[:10]) or 'nothing'}); expected the authors' stack folders, at "
                    "its root or under one top folder. Is it the authors' processed_datasets_gradcam.zip?"
                )
            for folder, members in groups.items():
                target = dest / folder
                if authors_stack_files(target)[0]:
                    continue
                tmp = ensure_dir(dest) / f".{folder}.unpacking"
                shutil.rmtree(tmp, ignore_errors=True)
                for info, rest in members:
                    out = tmp.joinpath(*rest)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                if (
                    target.is_dir()
                ):  # an image-less folder (notes, a .DS_Store): move the images in
                    for item in tmp.iterdir():
                        os.replace(item, target / item.name)
                    tmp.rmdir()
                else:
                    os.replace(tmp, target)
                done.append(folder)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise AuthorsReleaseError(
            f"The file {archive} is not a readable zip ({type(err).__name__}: {err}). "
            + _redownload("it")
        ) from err
    return done


def _authors_missing(dest: Path) -> list[str]:
    """What of the release is not in ``dest``: checkpoints that are not files, stack folders
    that hold no image file (an empty or image-less folder is missing, not complete)."""
    missing = [
        name for name in AUTHORS_CHECKPOINTS.values() if not (dest / name).is_file()
    ]
    missing += [
        f"{name}/"
        for name in AUTHORS_FOLDERS
        if not authors_stack_files(dest / name)[0]
    ]
    return missing


def _move_up(src: Path, target: Path) -> None:
    """Put ``src`` (a file or folder one folder down) at ``target``: renamed when it lies on the
    same disk and not behind a symbolic link, else linked (a file on a mounted Google Drive is
    never copied, nor deleted from there)."""
    linked = src.is_symlink() or src.parent.is_symlink()
    if linked or os.stat(src).st_dev != os.stat(target.parent).st_dev:
        target.symlink_to(src.resolve(), target_is_directory=src.is_dir())
    else:
        os.replace(src, target)


def _gather(dest: Path, unpack: Sequence[str] | None = None) -> list[str]:
    """Put what is in ``dest`` in place, without a network: checkpoints and stack folders found
    one folder down (gdown may put the Drive folder's content in ``dest/<folder name>``) are
    moved up; missing stack folders are unpacked from the zips in ``dest`` or one folder down
    (only the folders ``unpack``, default all). Returns notes on zips that gave nothing."""
    if not dest.is_dir():
        return []
    subs = [
        p
        for p in sorted(dest.iterdir())
        if p.is_dir() and not p.name.startswith(".") and p.name not in AUTHORS_FOLDERS
    ]
    if unpack is None:
        for name in AUTHORS_CHECKPOINTS.values():
            found = next((s / name for s in subs if (s / name).is_file()), None)
            if found is not None and not (dest / name).is_file():
                _move_up(found, dest / name)
        for folder in AUTHORS_FOLDERS:
            found = next(
                (s / folder for s in subs if authors_stack_files(s / folder)[0]), None
            )
            if found is not None and not (dest / folder).exists():
                _move_up(found, dest / folder)
    wanted = [
        f
        for f in (AUTHORS_FOLDERS if unpack is None else unpack)
        if not authors_stack_files(dest / f)[0]
    ]
    zips = sorted(
        (
            p
            for d in (dest, *subs)
            for p in d.glob("*.zip")
            if p.is_file() and not p.name.startswith(".")
        ),
        key=lambda p: (p.name != AUTHORS_STACKS_ZIP, str(p)),
    )
    notes = []
    for archive in zips:
        if not wanted:
            break
        try:
            unpack_authors_stacks(archive, dest, wanted)
        except AuthorsReleaseError as err:
            notes.append(str(err))
        wanted = [f for f in wanted if not authors_stack_files(dest / f)[0]]
    return notes


def _fetch_from_github(
    dest: Path, todo: Sequence[str], fetch: Callable[[str, Path], None]
) -> None:
    """Fetch the items ``todo`` (names from :func:`_authors_missing`) from the authors'
    repository; every item is tried, then one error names all that failed."""
    errors = []
    for name in AUTHORS_CHECKPOINTS.values():
        if name in todo:
            try:
                _fetch_published_checkpoint(dest, name, fetch)
            except Exception as err:  # noqa: BLE001 - reported with the others below
                errors.append(f"{name}: {type(err).__name__}: {err}")
    folders = [f for f in AUTHORS_FOLDERS if f"{f}/" in todo]
    if folders:
        try:
            _fetch_repository_zip(dest, folders, fetch)
        except Exception as err:  # noqa: BLE001 - reported with the others below
            errors.append(f"{AUTHORS_STACKS_ZIP}: {type(err).__name__}: {err}")
    if errors:
        raise MissingDataError("; ".join(errors))


def download_authors_release(
    dest: str | Path | None = None,
    downloader: Callable[[str, Path], None] | None = None,
    force: bool = False,
    url_downloader: Callable[[str, Path], None] | None = None,
    sources: Sequence[str] = AUTHORS_SOURCES,
) -> Path:
    """The authors' release (checkpoints and ``stackmix/``, ``stackgen/``) in ``dest``
    (default :func:`helpers.data.authors_dir`), checked.

    What is in ``dest`` is put in place first, without a network: zips are unpacked, the
    content of a single sub-folder moved up, symbolic links used as they are. What is still
    missing is downloaded from each of ``sources`` in turn, until nothing is: ``"drive"``, the
    authors' Google Drive folder (``gdown``, whose quota errors are common); ``"github"``, their
    repository: the checkpoints as the Git LFS files of commit :data:`AUTHORS_LFS_COMMIT` (size
    and SHA-256 checked against the published ones before they are kept), the stack folders
    from ``processed_datasets_gradcam.zip``. Then everything is checked
    (:func:`helpers.data.verify_authors_release`): a checkpoint that is not the published file
    gets a warning and must load as rVGG and pass the wall check; a stack folder must hold
    :data:`AUTHORS_STACK_IMAGES` readable images (STACK-MIX ones 224x224).

    Args:
        dest: target folder (created only when something has to be downloaded).
        downloader: ``f(folder_id, dest)`` for Google Drive (default:
            ``gdown.download_folder``); tests pass a fake.
        force: download from the first source even when everything is present.
        url_downloader: ``f(url, file)`` for GitHub (default: torchvision's ``download_url``);
            tests pass a fake.
        sources: where to look, in order (see :data:`AUTHORS_SOURCES`).

    Returns:
        ``dest``.

    Raises:
        helpers.config.CacheDirError: when ``dest`` cannot be created or written (before any
            download).
        MissingDataError: when something is still missing after every source, naming it, what
            each source answered, and where to put the files by hand.
        AuthorsReleaseError: when a checkpoint or a stack folder fails its checks (naming it;
            nothing is recorded for it).
        ValueError: for an unknown source, or a file that differs from its recorded digest.
    """
    unknown = [s for s in sources if s not in AUTHORS_SOURCES]
    if unknown or not sources:
        raise ValueError(
            f"Unknown source(s) {unknown or list(sources)}; expected some of {AUTHORS_SOURCES}."
        )
    dest = Path(dest) if dest is not None else authors_dir()
    notes = _gather(dest)
    missing = _authors_missing(dest)
    if missing or force:
        ensure_dir(dest)
        tried = []
        everything = list(AUTHORS_CHECKPOINTS.values()) + [
            f"{f}/" for f in AUTHORS_FOLDERS
        ]
        for i, source in enumerate(sources):
            todo = everything if force and i == 0 else _authors_missing(dest)
            if not todo:
                break
            try:
                if source == "drive":
                    (downloader or _download_drive_folder)(AUTHORS_DRIVE_FOLDER, dest)
                else:
                    _fetch_from_github(dest, todo, url_downloader or _download_url)
            except Exception as err:  # noqa: BLE001 - reported below; the next source is tried
                tried.append(
                    f"{_SOURCE_NAMES[source]}: {type(err).__name__}: {' '.join(str(err).split())[:2000]}"
                )
            notes += _gather(dest)
        still = _authors_missing(dest)
        if still:
            raise MissingDataError(
                f"Could not download the authors' release into {dest}. Missing: {', '.join(still)}. "
                + (f"Tried {'; '.join(tried)}. " if tried else "")
                + (f"Also: {' '.join(dict.fromkeys(notes))} " if notes else "")
                + f"Download by hand the Google Drive folder {AUTHORS_DRIVE_URL} (or the checkpoints "
                f"{', '.join(authors_lfs_url(n) for n in AUTHORS_CHECKPOINTS.values())} and the zip "
                f"{AUTHORS_STACKS_ZIP_URL}) and put them in {dest}: files "
                f"{', '.join(AUTHORS_CHECKPOINTS.values())}, folders "
                f"{', '.join(f + '/' for f in AUTHORS_FOLDERS)} with {AUTHORS_STACK_IMAGES} images each, "
                "or their zip (unpacked on the next call). Symbolic links to them work too."
            )
    verify_authors_release(dest)
    return dest


def authors_checkpoint(
    walled: bool = True,
    download: bool = False,
    downloader: Callable[[str, Path], None] | None = None,
    url_downloader: Callable[[str, Path], None] | None = None,
) -> Path:
    """Path of the authors' checkpoint (``params_vgg16_masked.pt`` when ``walled``, else
    ``params_vgg16_baseline.pt``) in :func:`helpers.data.authors_dir`, checked by
    :func:`helpers.data.verify_authors_checkpoint` (the published file; or, with a warning, a
    file that loads as rVGG and passes the wall check, then its recorded digest).

    Raises:
        MissingDataError: when it is not there (and ``download`` is false or fails), saying
            where to put it.
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
                f"{AUTHORS_DRIVE_URL} (or {authors_lfs_url(path.name)}) and copy or symlink it there."
            )
        download_authors_release(
            folder, downloader=downloader, url_downloader=url_downloader
        )
    verify_authors_checkpoint(path, bool(walled), folder)
    return path


def load_authors_model(
    walled: bool = True, download: bool = False, map_location: str = "cpu"
):
    """The authors' trained rVGG (full width, 1000 ImageNet classes) in eval mode, through
    :func:`helpers.models.load_authors_weights` (``torch.load(weights_only=True)``).

    Raises:
        As :func:`authors_checkpoint`.
    """
    return load_authors_weights(
        authors_checkpoint(walled, download=download),
        walled=walled,
        map_location=map_location,
    )


def authors_stack_folder(folder: str) -> Path | None:
    """The authors' stack folder ``folder`` (``"stackmix"`` or ``"stackgen"``) in
    :func:`helpers.data.authors_dir`: when it holds no image but a zip there holds it, it is
    unpacked first (no network). ``None`` when there is no such folder (nor zip); a folder that
    exists without images is returned (reading it then says what is wrong)."""
    dest = authors_dir()
    path = dest / folder
    if not authors_stack_files(path)[0]:
        _gather(dest, unpack=[folder])
    if authors_stack_files(path)[0] or (path.is_dir() and any(path.iterdir())):
        return path
    return None
