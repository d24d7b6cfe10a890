"""Profiles, cache directory, device and seeds."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from helpers import config


def test_default_profile_is_quick(monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    assert config.get_profile().name == "quick"


def test_profile_from_environment_and_argument(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "FULL")
    assert config.get_profile().name == "full"
    assert config.get_profile("quick").name == "quick"  # the argument wins
    prof = config.get_profile("full")
    assert config.get_profile(prof) is prof


def test_full_profile_is_the_papers_recipe():
    full = config.get_profile("full")
    t = full.train
    assert (full.width, full.wall_rows, full.image_size) == (1.0, 9, 224)
    assert (t.epochs, t.batch_size, t.optimizer, t.lr, t.momentum, t.weight_decay) == (
        90,
        256,
        "sgd",
        0.03,
        0.9,
        1e-4,
    )
    assert (t.lr_step_epochs, t.lr_gamma, t.seed) == (30, 0.1, 3)
    assert full.eval.stack_images == 100


def test_quick_profile_keeps_the_geometry():
    quick = config.get_profile("quick")
    assert (quick.image_size, quick.wall_rows) == (224, 9) and 0 < quick.width < 1


@pytest.mark.parametrize("bad", ["fast", "", "quick!"])
def test_unknown_profile_is_a_clear_error(bad, monkeypatch):
    with pytest.raises(ValueError, match="expected one of"):
        config.get_profile(bad or "nope")
    monkeypatch.setenv(config.PROFILE_ENV, "turbo")
    with pytest.raises(ValueError, match="CAMWALLS_PROFILE"):
        config.get_profile()


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(config.HOME_ENV, str(tmp_path / "home"))
    path = config.cache_dir("checkpoints", "quick")
    assert path == tmp_path / "home" / "checkpoints" / "quick" and path.is_dir()
    assert config.results_dir("full") == tmp_path / "home" / "results" / "full"
    monkeypatch.delenv(config.HOME_ENV)
    assert config.cache_dir(create=False) == config.Path.home() / ".cache" / "camwalls"


def test_device_choice(monkeypatch):
    monkeypatch.delenv(config.DEVICE_ENV, raising=False)
    assert config.get_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else None
    if expected:
        assert config.get_device().type == "cuda"
    else:
        with pytest.raises(ValueError, match="no CUDA GPU"):
            config.get_device("cuda")
    with pytest.raises(ValueError, match="Unknown device"):
        config.get_device("tpu-ish")


def test_seed_everything_reproduces_all_generators():
    def draw():
        gen = config.seed_everything(7)
        return (
            random.random(),
            np.random.rand(),
            torch.rand(1).item(),
            torch.rand(1, generator=gen).item(),
        )

    assert draw() == draw()
    with pytest.raises(ValueError, match="non-negative"):
        config.seed_everything(-1)


def test_profile_label_and_replace():
    assert config.profile_label("quick", torch.device("cpu")) == "profile: quick (cpu)"
    narrow = config.get_profile("quick").replace(width=0.5)
    assert narrow.width == 0.5 and config.get_profile("quick").width != 0.5
    assert (
        narrow.as_dict()["train"]["optimizer"]
        == config.get_profile("quick").train.optimizer
    )


def test_progress_is_silent_during_book_builds(monkeypatch):
    monkeypatch.setenv(config.BUILD_ENV, "1")
    bar = config.progress(range(3))
    assert bar.disable and list(bar) == [0, 1, 2]


# --- CAMWALLS_HOME that cannot be written: a clear error, and only when writing -----------------


def _regular_file(tmp_path):
    f = tmp_path / "x" / "file.txt"
    f.parent.mkdir(parents=True)
    f.write_text("not a folder")
    return f


def test_home_pointing_at_a_regular_file(monkeypatch, tmp_path):
    home = _regular_file(tmp_path)
    monkeypatch.setenv(config.HOME_ENV, str(home))
    # reading the paths works and creates nothing
    assert config.cache_dir("authors", create=False) == home / "authors"
    assert config.results_dir("quick", create=False) == home / "results" / "quick"
    with pytest.raises(
        config.CacheDirError,
        match=(
            r"Cannot create or write the folder .*file\.txt/checkpoints/quick in the cache "
            r"\(CAMWALLS_HOME='.*file\.txt'\): .*file\.txt is a regular file, not a folder\. "
            r"Expected a writable folder.*Point CAMWALLS_HOME at a writable folder"
        ),
    ) as info:
        config.cache_dir("checkpoints", "quick")
    assert isinstance(info.value, OSError)
    with pytest.raises(config.CacheDirError, match="CAMWALLS_HOME"):
        config.results_dir("quick")
    assert home.is_file()


def test_home_below_a_regular_file_is_unwritable_even_for_root(monkeypatch, tmp_path):
    home = _regular_file(tmp_path) / "sub"
    monkeypatch.setenv(config.HOME_ENV, str(home))
    with pytest.raises(
        config.CacheDirError,
        match=r"CAMWALLS_HOME='.*file\.txt/sub'.*file\.txt is a regular file",
    ):
        config.cache_dir("data")
    assert config.cache_dir("data", create=False) == home / "data"


def test_home_folder_without_write_permission(monkeypatch, tmp_path):
    """Tests run as root, for whom chmod does not bite: the probe file's creation is faked to fail
    as on a read-only folder."""
    from helpers import cli

    home = tmp_path / "readonly"
    home.mkdir()
    monkeypatch.setenv(config.HOME_ENV, str(home))

    def refuse(*_a, **_k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cli.tempfile, "mkstemp", refuse)
    with pytest.raises(
        config.CacheDirError,
        match=r"readonly/results/quick in the cache .*: writing in it fails with PermissionError: "
        r"Permission denied.*Point CAMWALLS_HOME at a writable folder",
    ):
        config.ensure_dir(config.results_dir("quick", create=False))
    # a folder that exists stays usable for reading: cache_dir only makes sure it exists
    assert config.results_dir("quick").is_dir()


def test_unset_home_is_named_in_the_message(monkeypatch, tmp_path):
    monkeypatch.delenv(config.HOME_ENV, raising=False)
    fake_home = _regular_file(tmp_path)
    monkeypatch.setattr(config, "DEFAULT_HOME", fake_home)
    with pytest.raises(
        config.CacheDirError,
        match=r"CAMWALLS_HOME is not set, so the default .*file\.txt is used",
    ):
        config.cache_dir("checkpoints")


def test_ensure_dir_outside_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(config.HOME_ENV, str(tmp_path / "home"))
    target = _regular_file(tmp_path) / "out"
    with pytest.raises(
        config.CacheDirError,
        match=r"folder .*file\.txt/out: .*regular file.*Choose a writable folder",
    ) as info:
        config.ensure_dir(target)
    assert "CAMWALLS_HOME" not in str(info.value)
    assert config.ensure_dir(tmp_path / "a" / "b").is_dir()
