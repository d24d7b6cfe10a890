"""Tests of helpers.data.release and helpers.data.release_sources: the authors' release, faked
small (narrow rVGG checkpoints in their flat layout, a few images per stack folder, zips laid
out as theirs), got from every source with fake downloaders (no network), checked before it is
recorded, pinned to the digests the authors published."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from helpers import data as D
from helpers.config import get_profile
from helpers.data import release, release_sources
from helpers.models import rvgg, rvgg_to_authors_state_dict
from test_data_folders import save_image

#: The authors' stack folders hold 100 images; these tests lower the count to this, for speed.
FAKE_STACK_IMAGES = 4
#: The Git LFS pointers of the authors' checkpoints, as stored in their repository
#: (MagamedT/cam-can-see-through-walls, commit 6ba9e36ba500561bb78812807a2337421e7438ef,
#: vgg16_experiment/params_vgg16_{masked,baseline}.pt).
LFS_POINTERS = {
    "params_vgg16_masked.pt": "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:25d860de9bd7a84bbf900b338f4b35fb3fadd05431194bd7f94c4c370e9b8bce\nsize 959763686\n",
    "params_vgg16_baseline.pt": "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:46b3efe49e2546dc7874a9cecbf004b1da04335ddb4df0d5819e8c0a91f9630a\nsize 959763758\n",
}
UNPUBLISHED = "ignore::helpers.data.UnpublishedCheckpointWarning"


class FileURLRetrievalError(Exception):
    """What gdown raises when Google Drive refuses a file (its quota)."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """The real downloaders fail here: a test that forgets its fake never reaches a network."""

    def offline(*args):
        raise OSError("no network in the tests")

    monkeypatch.setattr(release_sources, "_download_drive_folder", offline)
    monkeypatch.setattr(release_sources, "_download_url", offline)


@pytest.fixture(scope="module")
def authors_states():
    """Narrow (width 1/32) walled and baseline rVGG state dicts in the authors' flat layout."""
    torch.manual_seed(0)
    return {
        True: rvgg_to_authors_state_dict(rvgg(10, width=1 / 32).state_dict()),
        False: rvgg_to_authors_state_dict(
            rvgg(10, width=1 / 32, wall_rows=0).state_dict()
        ),
    }


@pytest.fixture
def small_release(monkeypatch, tmp_path):
    """CAMWALLS_HOME in tmp_path and a stack count of FAKE_STACK_IMAGES."""
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(release, "AUTHORS_STACK_IMAGES", FAKE_STACK_IMAGES)
    return tmp_path


def _write_release(
    root: Path,
    states,
    stackmix_size=(224, 224),
    n=FAKE_STACK_IMAGES,
    stacks=True,
    checkpoints=True,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for walled, name in D.AUTHORS_CHECKPOINTS.items():
        if checkpoints:
            torch.save(states[walled], root / name)
    for i in range(n if stacks else 0):
        save_image(
            root / "stackmix" / f"{i:03d}.png",
            fmt="PNG",
            size=stackmix_size,
            colour=(10 * i, 0, 0),
        )
        save_image(
            root / "stackgen" / f"{i:03d}.jpg",
            size=(300 + i, 260),
            colour=(0, 10 * i, 0),
        )
    return root


def _zip_stacks(archive: Path, release_root: Path, top: str | None = None) -> Path:
    """The stack folders of ``release_root`` in a zip, at its root or under ``top``, with the
    junk a zip made on macOS carries (``__MACOSX/``, ``.DS_Store``)."""
    prefix = f"{top}/" if top else ""
    with zipfile.ZipFile(archive, "w") as zf:
        for folder in D.AUTHORS_FOLDERS:
            zf.writestr(f"{prefix}{folder}/", "")
            for p in sorted((release_root / folder).iterdir()):
                zf.write(p, f"{prefix}{folder}/{p.name}")
                zf.writestr(
                    f"__MACOSX/{prefix}{folder}/._{p.name}", b"\0\5\26\7 not an image"
                )
            zf.writestr(f"{prefix}{folder}/.DS_Store", b"\0\0\0\1Bud1")
    return archive


def _pin(monkeypatch, folder: Path, sha256: str | None = None) -> None:
    """Pretend that the checkpoints in ``folder`` are the published ones (or, with ``sha256``,
    files of the published size with another digest)."""
    for name in D.AUTHORS_CHECKPOINTS.values():
        data = (folder / name).read_bytes()
        monkeypatch.setitem(
            D.AUTHORS_PUBLISHED_CHECKPOINTS,
            name,
            D.PublishedFile(sha256 or hashlib.sha256(data).hexdigest(), len(data)),
        )


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _count_calls(monkeypatch, module, name) -> list:
    calls = []
    original = getattr(module, name)
    monkeypatch.setattr(
        module, name, lambda *a, **k: calls.append(a) or original(*a, **k)
    )
    return calls


def test_the_published_checkpoints_are_pinned():
    """The pinned digests and sizes are those of the authors' Git LFS pointers, read here from
    the pointers' text."""
    for name, pointer in LFS_POINTERS.items():
        fields = dict(line.split(" ", 1) for line in pointer.splitlines())
        assert D.AUTHORS_PUBLISHED_CHECKPOINTS[name] == (
            fields["oid"].removeprefix("sha256:"),
            int(fields["size"]),
        )
        assert D.authors_lfs_url(name) == (
            "https://media.githubusercontent.com/media/MagamedT/"
            "cam-can-see-through-walls/6ba9e36ba500561bb78812807a2337421e7438ef/"
            f"vgg16_experiment/{name}"
        )
    assert set(D.AUTHORS_PUBLISHED_CHECKPOINTS) == set(D.AUTHORS_CHECKPOINTS.values())
    assert D.AUTHORS_STACKS_ZIP_URL.endswith(
        "MagamedT/cam-can-see-through-walls/raw/HEAD/processed_datasets_gradcam.zip"
    )


@pytest.mark.filterwarnings(UNPUBLISHED)
def test_authors_release_with_a_fake_download(small_release, authors_states):
    tmp_path = small_release

    def fake(folder_id, dest):
        assert folder_id == D.AUTHORS_DRIVE_FOLDER
        _write_release(
            dest / "cam-release", authors_states
        )  # gdown may put the content in a sub-folder

    with pytest.raises(D.MissingDataError, match="params_vgg16_masked.pt"):
        D.authors_checkpoint(walled=True)
    assert not D.authors_dir().exists()  # looking did not create anything
    dest = D.download_authors_release(downloader=fake)
    assert (dest / "params_vgg16_masked.pt").is_file() and (
        dest / "stackgen" / "000.jpg"
    ).is_file()
    record = json.loads((dest / D.CHECKSUMS_FILE).read_text())
    assert set(record) >= {
        "params_vgg16_masked.pt",
        "params_vgg16_baseline.pt",
        "stackgen/000.jpg",
        "stackmix/003.png",
    }
    assert D.authors_checkpoint(walled=False).name == "params_vgg16_baseline.pt"
    model = D.load_authors_model(walled=True)
    assert model.wall_rows == 9 and model.num_classes == 10
    torch.save(
        {"0.weight": torch.ones(1)}, dest / "params_vgg16_masked.pt"
    )  # replaced file
    with pytest.raises(
        ValueError, match=r"SHA-256 mismatch(.|\n)*fails the content check"
    ):
        D.authors_checkpoint(walled=True)

    def offline(folder_id, dest):
        raise OSError("no network")

    with pytest.raises(
        D.MissingDataError,
        match=r"Missing: params_vgg16_masked\.pt(.|\n)*drive\.google\.com"
        r"(.|\n)*OSError: no network(.|\n)*media\.githubusercontent\.com",
    ):
        D.download_authors_release(tmp_path / "elsewhere", downloader=offline)


def test_a_published_checkpoint_is_the_authors(
    small_release, authors_states, monkeypatch
):
    """A file with the published size and digest is not loaded to be checked, and its digest
    replaces whatever was recorded before."""
    dest = _write_release(small_release / "release", authors_states)
    _pin(monkeypatch, dest)
    (dest / D.CHECKSUMS_FILE).write_text(
        json.dumps({"params_vgg16_masked.pt": "0" * 64})
    )

    def must_not_load(path, walled):
        raise AssertionError(
            f"{path} was loaded: the published file needs no content check"
        )

    monkeypatch.setattr(release, "validate_authors_checkpoint", must_not_load)
    with warnings.catch_warnings():
        warnings.simplefilter("error", D.UnpublishedCheckpointWarning)
        D.download_authors_release(
            dest, downloader=lambda *a: pytest.fail("nothing is missing")
        )
    record = json.loads((dest / D.CHECKSUMS_FILE).read_text())
    for name, published in D.AUTHORS_PUBLISHED_CHECKPOINTS.items():
        assert (
            record[name]
            == published.sha256
            == hashlib.sha256((dest / name).read_bytes()).hexdigest()
        )


def test_an_unpublished_checkpoint_warns_and_is_checked(
    small_release, authors_states, monkeypatch
):
    """Another size: a warning, no hashing against the published digest, the content checks. The
    published size with another digest: a warning naming the digest, the file hashed once."""
    folder = _write_release(D.authors_dir(), authors_states, stacks=False)
    pinned_hashes = _count_calls(monkeypatch, release, "sha256_file")
    record_hashes = _count_calls(monkeypatch, D.downloads, "sha256_file")
    with pytest.warns(
        D.UnpublishedCheckpointWarning,
        match=r"params_vgg16_masked\.pt is not the walled checkpoint "
        r"the authors published(.|\n)*bytes, the published file 959,763,686(.|\n)*may have been re-saved",
    ):
        assert D.authors_checkpoint(walled=True) == folder / "params_vgg16_masked.pt"
    assert len(pinned_hashes) == 0 and len(record_hashes) == 1
    _truncate(folder / "params_vgg16_baseline.pt")
    with (
        pytest.warns(D.UnpublishedCheckpointWarning),
        pytest.raises(D.AuthorsReleaseError, match="Delete it"),
    ):
        D.authors_checkpoint(walled=False)
    torch.save(authors_states[False], folder / "params_vgg16_baseline.pt")
    _pin(monkeypatch, folder, sha256="f" * 64)
    pinned_hashes.clear()
    record_hashes.clear()
    with pytest.warns(
        D.UnpublishedCheckpointWarning,
        match=r"published size, but its SHA-256 is [0-9a-f]{16}\.\.\., "
        r"not ffffffffffffffff",
    ):
        D.authors_checkpoint(walled=False)
    assert (
        len(pinned_hashes) == 1 and len(record_hashes) == 0
    )  # hashed once, the digest reused


def _fake_github(
    published: Path, zip_bytes: bytes | None, requested: list, lfs_body=None
):
    """A downloader serving the Git LFS checkpoints from ``published`` and the stacks' zip."""

    def fetch(url, dest):
        requested.append(url)
        name = url.rsplit("/", 1)[-1]
        if url == D.AUTHORS_STACKS_ZIP_URL and zip_bytes is not None:
            dest.write_bytes(zip_bytes)
        elif url == D.authors_lfs_url(name):
            dest.write_bytes(
                lfs_body(name) if lfs_body else (published / name).read_bytes()
            )
        else:
            raise OSError(f"404 {url}")

    return fetch


@pytest.mark.parametrize("refused", ["everything", "the checkpoints"])
def test_when_drive_refuses_github_gives_the_release(
    small_release, authors_states, monkeypatch, refused
):
    published = _write_release(small_release / "published", authors_states)
    _pin(monkeypatch, published)
    archive = _zip_stacks(
        small_release / "processed_datasets_gradcam.zip",
        published,
        top="processed_datasets_gradcam",
    )

    def drive(folder_id, dest):
        if refused == "the checkpoints":
            _write_release(dest, authors_states, checkpoints=False)
        raise FileURLRetrievalError(
            "Too many users have viewed or downloaded this file recently."
        )

    requested = []
    dest = small_release / "release"
    with warnings.catch_warnings():
        warnings.simplefilter("error", D.UnpublishedCheckpointWarning)
        D.download_authors_release(
            dest,
            downloader=drive,
            url_downloader=_fake_github(published, archive.read_bytes(), requested),
        )
    expected = [
        D.authors_lfs_url(n)
        for n in ("params_vgg16_masked.pt", "params_vgg16_baseline.pt")
    ]
    assert requested == expected + (
        [D.AUTHORS_STACKS_ZIP_URL] if refused == "everything" else []
    )
    for name in D.AUTHORS_CHECKPOINTS.values():
        assert (dest / name).read_bytes() == (published / name).read_bytes()
    assert not list(dest.glob("*.download")) and not list(dest.glob(".*.unpacking"))
    assert sorted(p.name for p in (dest / "stackmix").iterdir()) == [
        f"{i:03d}.png" for i in range(FAKE_STACK_IMAGES)
    ]
    record = json.loads((dest / D.CHECKSUMS_FILE).read_text())
    assert (
        record["params_vgg16_masked.pt"]
        == D.AUTHORS_PUBLISHED_CHECKPOINTS["params_vgg16_masked.pt"].sha256
    )
    assert "stackgen/003.jpg" in record


@pytest.mark.parametrize(
    "body, match",
    [
        ("half", r"it gave [0-9,]+ bytes, the published file is [0-9,]+ bytes"),
        ("pointer", r"it gave a Git LFS pointer instead of the file"),
    ],
)
def test_a_wrong_lfs_download_is_not_kept(
    small_release, authors_states, monkeypatch, body, match
):
    published = _write_release(
        small_release / "published", authors_states, stacks=False
    )
    _pin(monkeypatch, published)
    hashes = _count_calls(monkeypatch, release_sources, "sha256_file")

    def lfs_body(name):
        data = (published / name).read_bytes()
        return data[: len(data) // 2] if body == "half" else LFS_POINTERS[name].encode()

    dest = _write_release(small_release / "release", authors_states, checkpoints=False)
    fetch = _fake_github(published, None, [], lfs_body=lfs_body)
    with pytest.raises(
        D.MissingDataError,
        match=r"not the checkpoint the authors published(.|\n)*" + match,
    ):
        D.download_authors_release(dest, url_downloader=fetch, sources=("github",))
    assert hashes == []  # the size was wrong: nothing was hashed
    assert not list(dest.glob("*.pt")) and not list(dest.glob("*.download"))


@pytest.mark.filterwarnings(UNPUBLISHED)
@pytest.mark.parametrize("top", [None, "processed_datasets_gradcam"])
@pytest.mark.parametrize("how", ["drive", "by hand"])
def test_the_stacks_from_a_zip(small_release, authors_states, top, how):
    published = _write_release(small_release / "published", authors_states)
    dest = (
        _write_release(small_release / "release", authors_states, stacks=False)
        if how == "by hand"
        else None
    )
    archive_name = "processed_datasets_gradcam.zip" if how == "by hand" else "data.zip"

    def drive(folder_id, d):
        _write_release(d, authors_states, stacks=False)
        _zip_stacks(d / archive_name, published, top)

    if how == "by hand":
        _zip_stacks(dest / archive_name, published, top)
        D.download_authors_release(
            dest, downloader=lambda *a: pytest.fail("nothing to download")
        )
    else:
        dest = D.download_authors_release(small_release / "release", downloader=drive)
    for folder in D.AUTHORS_FOLDERS:
        assert sorted(os.listdir(dest / folder)) == sorted(
            os.listdir(published / folder)
        )
    assert not (dest / "__MACOSX").exists()


def test_a_zip_without_the_stack_folders_says_what_it_holds(
    small_release, authors_states
):
    dest = _write_release(small_release / "release", authors_states, stacks=False)
    with zipfile.ZipFile(dest / "old.zip", "w") as zf:
        zf.writestr("processed_datasets_gradcam/gen_cropped/0.png", b"x")
    with pytest.raises(
        D.AuthorsReleaseError,
        match=r"holds no stackmix/ or stackgen/ folder \(its top level: "
        r"processed_datasets_gradcam\)",
    ):
        D.unpack_authors_stacks(dest / "old.zip", dest)
    with pytest.raises(
        D.MissingDataError,
        match=r"Missing: stackmix/, stackgen/(.|\n)*old\.zip holds no",
    ):
        D.download_authors_release(dest)
    (dest / "old.zip").write_bytes(b"PK\3\4 truncated")
    with pytest.raises(D.AuthorsReleaseError, match=r"old\.zip is not a readable zip"):
        D.unpack_authors_stacks(dest / "old.zip", dest)


@pytest.mark.filterwarnings(UNPUBLISHED)
def test_a_release_of_symbolic_links(small_release, authors_states):
    """As in Colab: files on a mounted Google Drive linked into the cache. The record is keyed by
    the links' names, and nothing is moved off the Drive."""
    drive = _write_release(small_release / "drive" / "MyDrive" / "cam", authors_states)
    dest = D.authors_dir()
    dest.mkdir(parents=True)
    for name in D.AUTHORS_CHECKPOINTS.values():
        (dest / name).symlink_to(drive / name)
    (dest / "stackmix").symlink_to(drive / "stackmix", target_is_directory=True)
    (dest / "linked").symlink_to(
        drive, target_is_directory=True
    )  # stackgen/ one folder down, linked
    D.download_authors_release(downloader=lambda *a: pytest.fail("nothing to download"))
    record = json.loads((dest / D.CHECKSUMS_FILE).read_text())
    assert set(record) == {
        *D.AUTHORS_CHECKPOINTS.values(),
        *(
            f"{f}/{i:03d}.{'png' if f == 'stackmix' else 'jpg'}"
            for f in D.AUTHORS_FOLDERS
            for i in range(FAKE_STACK_IMAGES)
        ),
    }
    assert (dest / "stackgen").is_symlink() and (
        drive / "stackgen" / "000.jpg"
    ).is_file()
    assert D.authors_checkpoint(walled=True) == dest / "params_vgg16_masked.pt"
    D.download_authors_release(
        downloader=lambda *a: pytest.fail("nothing to download")
    )  # the record holds


@pytest.mark.filterwarnings(UNPUBLISHED)
def test_a_truncated_checkpoint_is_refused_not_recorded(small_release, authors_states):
    """The old bug: the truncated first download was recorded, then the good copy blamed."""
    tmp_path = small_release

    def truncated(folder_id, dest):
        _write_release(dest, authors_states)
        _truncate(dest / "params_vgg16_masked.pt")

    dest = tmp_path / "release"
    with pytest.raises(
        D.AuthorsReleaseError,
        match=r"params_vgg16_masked\.pt(.|\n)*Delete it and download it again",
    ):
        D.download_authors_release(dest, downloader=truncated)
    record = (
        json.loads((dest / D.CHECKSUMS_FILE).read_text())
        if (dest / D.CHECKSUMS_FILE).exists()
        else {}
    )
    assert "params_vgg16_masked.pt" not in record
    # as told: delete it and download again; the good copy is checked and recorded
    (dest / "params_vgg16_masked.pt").unlink()
    D.download_authors_release(
        dest, downloader=lambda folder_id, d: _write_release(d, authors_states)
    )
    record = json.loads((dest / D.CHECKSUMS_FILE).read_text())
    assert record["params_vgg16_masked.pt"] == D.sha256_file(
        dest / "params_vgg16_masked.pt"
    )


@pytest.mark.filterwarnings(UNPUBLISHED)
def test_a_checkpoint_copied_by_hand_is_checked_before_it_is_recorded(
    small_release, authors_states
):
    folder = D.authors_dir()
    folder.mkdir(parents=True)
    torch.save(authors_states[True], folder / "params_vgg16_masked.pt")
    _truncate(folder / "params_vgg16_masked.pt")
    with pytest.raises(
        D.AuthorsReleaseError,
        match=r"Cannot read the checkpoint(.|\n)*download_authors_release",
    ):
        D.authors_checkpoint(walled=True)
    assert not (folder / D.CHECKSUMS_FILE).exists()
    # the two checkpoints swapped: each fails its wall check, nothing is recorded
    torch.save(authors_states[True], folder / "params_vgg16_baseline.pt")
    torch.save(authors_states[False], folder / "params_vgg16_masked.pt")
    with pytest.raises(
        D.AuthorsReleaseError,
        match=r"params_vgg16_baseline\.pt was asked for as the baseline(.|\n)*exactly zero(.|\n)*walled=True",
    ):
        D.authors_checkpoint(walled=False)
    with pytest.raises(
        D.AuthorsReleaseError,
        match=r"walled checkpoint(.|\n)*under the wall(.|\n)*Delete it",
    ):
        D.authors_checkpoint(walled=True)
    assert not (folder / D.CHECKSUMS_FILE).exists()


@pytest.mark.filterwarnings(UNPUBLISHED)
def test_a_mismatch_says_whether_the_present_file_is_sound(
    small_release, authors_states
):
    """A digest recorded by an older version from a broken copy: the good copy is not blamed blindly."""
    dest = _write_release(small_release / "release", authors_states)
    (dest / D.CHECKSUMS_FILE).write_text(
        json.dumps({"params_vgg16_masked.pt": "0" * 64})
    )
    with pytest.raises(
        ValueError,
        match=r"SHA-256 mismatch(.|\n)*passes the content check(.|\n)*delete the entry",
    ):
        D.download_authors_release(dest)


def test_a_stack_folder_without_images_is_missing(small_release, authors_states):
    dest = _write_release(small_release / "release", authors_states)
    for p in (dest / "stackmix").iterdir():
        p.unlink()
    (dest / "stackmix" / "notes.txt").write_text("no image here")
    (dest / "stackmix" / "photo.webp").write_bytes(b"not read by the authors' code")
    calls = []

    def offline(*args):
        calls.append(args[0])
        raise OSError("no network")

    with pytest.raises(D.MissingDataError, match=r"Missing: stackmix/"):
        D.download_authors_release(dest, downloader=offline, url_downloader=offline)
    # an image-less folder is not a complete release: both sources were asked for it
    assert calls == [D.AUTHORS_DRIVE_FOLDER, D.AUTHORS_STACKS_ZIP_URL]
    with pytest.raises(ValueError, match="Unknown source"):
        D.download_authors_release(dest, sources=("dropbox",))


@pytest.mark.filterwarnings(UNPUBLISHED)
@pytest.mark.parametrize(
    "problem, match",
    [
        ("few", r"stackmix holds 3 image file\(s\); expected 4 images"),
        (
            "size",
            r"000\.png of the authors' STACK-MIX set is 200x180; expected 224x224",
        ),
        ("corrupt", r"001\.png of the authors' STACK-MIX set cannot be decoded"),
    ],
)
def test_stack_folders_are_checked_before_they_are_recorded(
    small_release, authors_states, problem, match
):
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
