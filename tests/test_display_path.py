"""helpers.config.display_path: the book prints cache paths relative to $CAMWALLS_HOME."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import config


def test_cache_paths_print_relative_to_camwalls_home(tmp_path: Path, monkeypatch):
    home = tmp_path / "some" / "machine" / "cache"
    monkeypatch.setenv("CAMWALLS_HOME", str(home))
    ckpt = config.cache_dir("checkpoints", "quick", "rvgg-walled.pt", create=False)
    shown = config.display_path(ckpt)
    assert shown == "$CAMWALLS_HOME/checkpoints/quick/rvgg-walled.pt"
    assert str(tmp_path) not in shown
    # Checked another way: the shell's own expansion of the printed text gives the path back.
    assert os.path.expandvars(shown) == str(ckpt)
    assert config.display_path(home) == "$CAMWALLS_HOME"
    assert config.display_path(str(ckpt)) == shown  # a string works as well as a Path


def test_a_symlinked_cache_root_and_paths_outside_it(tmp_path: Path, monkeypatch):
    real = tmp_path / "real"
    (real / "authors").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    monkeypatch.setenv("CAMWALLS_HOME", str(link))
    assert config.display_path(real / "authors") == "$CAMWALLS_HOME/authors"
    assert config.display_path(tmp_path / "elsewhere.txt") == str(
        tmp_path / "elsewhere.txt"
    )
    # relative, outside the cache: as given
    assert config.display_path("results/cpu") == "results/cpu"


def test_paths_under_the_users_home_print_with_a_tilde(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "cache"))
    shown = config.display_path(tmp_path / "user" / "data" / "imagenet")
    assert shown == "~/data/imagenet"
    assert os.path.expanduser(shown) == str(tmp_path / "user" / "data" / "imagenet")
    # With CAMWALLS_HOME unset, the default cache root (under the home folder) is $CAMWALLS_HOME.
    monkeypatch.delenv("CAMWALLS_HOME")
    authors = config.cache_dir("authors", create=False)
    assert config.display_path(authors) == "$CAMWALLS_HOME/authors"
