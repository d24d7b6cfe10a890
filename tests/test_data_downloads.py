"""Tests of helpers.data.downloads: files fetched once, their SHA-256 recorded (only after they
validate) and checked ever after."""

from __future__ import annotations

import hashlib
import json

import pytest

from helpers import data as D


def test_fetch_file_records_and_checks_sha256(tmp_path):
    calls = []

    def fake(url, dest):
        calls.append(url)
        dest.write_bytes(b"hello")

    dest = tmp_path / "dl" / "file.bin"
    D.fetch_file("http://example/file.bin", dest, downloader=fake)
    record = json.loads((dest.parent / D.CHECKSUMS_FILE).read_text())
    assert record == {"file.bin": hashlib.sha256(b"hello").hexdigest()}
    D.fetch_file(
        "http://example/file.bin", dest, downloader=fake
    )  # present: skipped, checked
    assert len(calls) == 1
    dest.write_bytes(b"hellO")
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        D.fetch_file("http://example/file.bin", dest, downloader=fake)

    def offline(url, dest):
        raise OSError("no network")

    with pytest.raises(
        D.MissingDataError, match=str(tmp_path / "other.bin").replace("\\", "\\\\")
    ):
        D.fetch_file(
            "http://example/other.bin", tmp_path / "other.bin", downloader=offline
        )


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
    assert seen == [path] and json.loads((tmp_path / D.CHECKSUMS_FILE).read_text()) == {
        "f.bin": digest
    }
    D.verify_or_record(path, validate=seen.append)  # recorded: not validated again
    assert seen == [path]


def test_a_symlinked_file_is_keyed_by_the_links_name(tmp_path):
    """A file linked into the record folder from elsewhere (a mounted Google Drive) is recorded
    under the link's name; a file named through a linked folder, resolved or not, too."""
    elsewhere = tmp_path / "drive" / "weights.pt"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"weights")
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "params.pt").symlink_to(elsewhere)
    digest = D.verify_or_record(folder / "params.pt", folder)
    assert json.loads((folder / D.CHECKSUMS_FILE).read_text()) == {
        "params.pt": hashlib.sha256(b"weights").hexdigest()
    }
    assert digest == hashlib.sha256(b"weights").hexdigest()
    (tmp_path / "linked").symlink_to(elsewhere.parent, target_is_directory=True)
    D.verify_or_record(
        elsewhere, tmp_path / "linked"
    )  # the real path of a file in a linked folder
    assert json.loads((elsewhere.parent / D.CHECKSUMS_FILE).read_text()) == {
        "weights.pt": digest
    }
    with pytest.raises(ValueError, match=r"is not inside the record folder"):
        D.verify_or_record(elsewhere, folder)


def test_a_digest_computed_by_the_caller_is_not_computed_again(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    calls = []
    monkeypatch.setattr(D.downloads, "sha256_file", lambda p: calls.append(p))
    assert (
        D.verify_or_record(path, digest=hashlib.sha256(b"abc").hexdigest())
        == hashlib.sha256(b"abc").hexdigest()
    )
    assert calls == []
