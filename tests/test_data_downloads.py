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
    D.fetch_file("http://example/file.bin", dest, downloader=fake)  # present: skipped, checked
    assert len(calls) == 1
    dest.write_bytes(b"hellO")
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        D.fetch_file("http://example/file.bin", dest, downloader=fake)

    def offline(url, dest):
        raise OSError("no network")

    with pytest.raises(D.MissingDataError, match=str(tmp_path / "other.bin").replace("\\", "\\\\")):
        D.fetch_file("http://example/other.bin", tmp_path / "other.bin", downloader=offline)


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
    assert seen == [path] and json.loads((tmp_path / D.CHECKSUMS_FILE).read_text()) == {"f.bin": digest}
    D.verify_or_record(path, validate=seen.append)  # recorded: not validated again
    assert seen == [path]
