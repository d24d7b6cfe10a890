"""Files fetched once and checked ever after: a SHA-256 record in every download folder.

A file's digest is recorded the first time it is seen -- only after its content passed the
caller's check, so a truncated download is refused, not recorded -- and compared on every later
call; a mismatch says whether the file present is sound and what to delete. The record is
keyed by each file's path inside the folder as written, so a file symlinked into the folder (from
a mounted Google Drive) is keyed by the link's name. :func:`fetch_file` downloads what is missing
(Imagenette's archive); :mod:`helpers.data.release` uses the same record for the authors'
release, where a file whose digest the authors published is recorded as such.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from torchvision.datasets.utils import download_url

from ..config import cache_dir_error, ensure_dir

#: File name of the SHA-256 record kept in every download folder.
CHECKSUMS_FILE = "SHA256SUMS.json"


class MissingDataError(FileNotFoundError):
    """Data that is not here and cannot be downloaded now; the message says where to put it."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file (read in chunks of ``chunk`` bytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _load_record(folder: Path) -> dict[str, str]:
    path = folder / CHECKSUMS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(
            f"The checksum record {path} is not valid JSON ({err}); delete it to "
            "re-record the digests of the files present."
        ) from err
    if not isinstance(data, dict):
        raise ValueError(
            f"The checksum record {path} should map file names to SHA-256 digests."
        )
    return {str(k): str(v) for k, v in data.items()}


def _write_record(folder: Path, record: dict[str, str]) -> None:
    """Write the record atomically (a temporary file, then a rename: an interrupted write never
    leaves a half-written record behind).

    Raises:
        helpers.config.CacheDirError: when the folder is not writable.
    """
    path = folder / CHECKSUMS_FILE
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as err:
        raise cache_dir_error(folder, err) from err


def _record_key(path: Path, folder: Path) -> str:
    """The record's key for ``path``: its path relative to ``folder``, as written (``..`` and
    ``.`` folded, symbolic links *not* followed), so that a file symlinked into the folder (a
    checkpoint on a mounted Google Drive, linked into the cache) is keyed by the link's name.
    Only a path that is not below ``folder`` as written is compared with symbolic links
    resolved on both sides (a resolved path given for a symlinked folder)."""
    lexical = Path(os.path.abspath(path)), Path(os.path.abspath(folder))
    resolved = path.resolve(), folder.resolve()
    for p, f in (lexical, resolved):
        if p.is_relative_to(f) and p != f:
            return p.relative_to(f).as_posix()
    raise ValueError(
        f"{path} is not inside the record folder {folder}; expected a file below it."
    )


def _set_record(path: Path, folder: Path, digest: str) -> None:
    """Record ``digest`` for ``path`` in ``folder``'s record, replacing any other (for a file
    whose digest is known from elsewhere: the authors' published checkpoints)."""
    record = _load_record(folder)
    key = _record_key(path, folder)
    if record.get(key) != digest:
        record[key] = digest
        _write_record(folder, record)


def _mismatch(
    path: Path,
    folder: Path,
    key: str,
    recorded: str,
    digest: str,
    validate: Callable[[Path], object] | None,
) -> ValueError:
    """The error for a file whose digest differs from the recorded one; with ``validate``, it
    also says whether the file present passes the content checks."""
    message = (
        f"SHA-256 mismatch for {path}: recorded {recorded[:16]}..., found {digest[:16]}... "
        f"The file differs from the one whose digest was recorded in {folder / CHECKSUMS_FILE}."
    )
    if validate is not None:
        try:
            validate(path)
        except ValueError as err:
            message += (
                f" The file present also fails the content check ({err}) "
                f"-- it is truncated, corrupt or replaced. Delete it to download it again "
                f"(keep the recorded digest)."
            )
        except Exception as err:  # noqa: BLE001 - the check could not run: say so, keep the advice
            message += (
                f" (The content check of the file present could not run: {type(err).__name__}: "
                f"{err}.) Delete the file and download it again, or, if you trust this copy, "
                f"delete the entry {key!r} from {folder / CHECKSUMS_FILE}."
            )
        else:
            message += (
                f" The file present passes the content check, so it may be a newer copy, or the "
                f"digest may have been recorded by an older version of the helpers that recorded "
                f"files before checking them. If you trust this copy, delete the entry {key!r} from "
                f"{folder / CHECKSUMS_FILE}; otherwise delete the file and download it again."
            )
    else:
        message += (
            f" It is truncated, corrupt or replaced. Delete it (and its entry {key!r} in "
            f"{folder / CHECKSUMS_FILE}) to download it again."
        )
    return ValueError(message)


def _verify_files(
    paths: Sequence[Path],
    folder: Path,
    validate_all: Callable[[], object] | None = None,
    validate_one: Callable[[Path], object] | None = None,
    known: Mapping[Path, str] | None = None,
) -> dict[Path, str]:
    """Check ``paths`` against their recorded digests; record the new ones (one write), but only
    after ``validate_all()`` returned (it is called when at least one digest is new). ``known``
    holds digests already computed (a large file is not hashed twice).

    Returns:
        The digest of every path.

    Raises:
        ValueError: on a mismatch (see :func:`_mismatch`; ``validate_one`` checks the file).
        Whatever ``validate_all`` raises (nothing is recorded then).
        helpers.config.CacheDirError: when the record cannot be written.
    """
    record = _load_record(folder)
    digests, new = {}, {}
    for path in paths:
        key = _record_key(path, folder)
        digest = known[path] if known and path in known else sha256_file(path)
        if key in record and record[key] != digest:
            raise _mismatch(path, folder, key, record[key], digest, validate_one)
        if key not in record:
            new[key] = digest
        digests[path] = digest
    if new:
        if validate_all is not None:
            validate_all()
        record.update(new)
        _write_record(folder, record)
    return digests


def verify_or_record(
    path: str | Path,
    record_folder: str | Path | None = None,
    validate: Callable[[Path], object] | None = None,
    digest: str | None = None,
) -> str:
    """Check ``path`` against the SHA-256 recorded for it, or record it if none is -- after
    ``validate(path)`` returned, when given, so that only content that passed its checks is
    ever recorded (a truncated download is refused, not recorded).

    The record is ``SHA256SUMS.json`` in ``record_folder`` (default: the file's folder), keyed
    by the path relative to that folder as written (a symbolic link inside the folder is keyed
    by its own name, wherever it points).

    Args:
        path: the file.
        record_folder: the folder of the record.
        validate: a content check that raises on a bad file (for the authors' checkpoints:
            :func:`validate_authors_checkpoint`); run only when no digest is recorded yet (and,
            on a mismatch, to say whether the present file is sound).
        digest: the file's SHA-256 when the caller computed it already (not hashed again).

    Returns:
        The file's digest.

    Raises:
        ValueError: when a digest is recorded and the file's differs (the file changed since it
            was first checked: corrupt, truncated or replaced).
        Whatever ``validate`` raises (then nothing is recorded).
        helpers.config.CacheDirError: when the record cannot be written.
    """
    path = Path(path)
    folder = Path(record_folder) if record_folder is not None else path.parent
    check = (lambda: validate(path)) if validate is not None else None
    known = {path: digest} if digest is not None else None
    return _verify_files(
        [path], folder, validate_all=check, validate_one=validate, known=known
    )[path]


def _download_url(url: str, dest: Path) -> None:
    """Download ``url`` to the file ``dest`` (torchvision's downloader)."""
    download_url(url, str(dest.parent), filename=dest.name)


def fetch_file(
    url: str,
    dest: str | Path,
    downloader: Callable[[str, Path], None] | None = None,
    what: str = "file",
) -> Path:
    """Make sure the file ``dest`` is here: download it from ``url`` when missing, record its
    SHA-256 on the first download and check it on every later call.

    Args:
        url: where it comes from.
        dest: where it goes (its folder holds the ``SHA256SUMS.json`` record; created only when
            a download is needed).
        downloader: ``f(url, dest)`` (default: torchvision's ``download_url``); tests pass a fake.
        what: a name for error messages.

    Raises:
        MissingDataError: when the download fails (offline), saying where to put the file by hand.
        helpers.config.CacheDirError: when the folder cannot be created or written (before
            anything is downloaded).
        ValueError: on a digest mismatch (see :func:`verify_or_record`).
    """
    dest = Path(dest)
    if not dest.is_file():
        ensure_dir(dest.parent)
        try:
            (downloader or _download_url)(url, dest)
        except Exception as err:  # noqa: BLE001 - any network failure gets the same advice
            raise MissingDataError(
                f"Could not download the {what} from {url} ({type(err).__name__}: {err}). "
                f"Without a network, download it elsewhere and copy it to {dest}."
            ) from err
        if not dest.is_file():
            raise MissingDataError(
                f"The download of {url} produced no file at {dest}; copy the "
                f"{what} there by hand."
            )
    verify_or_record(dest)
    return dest
