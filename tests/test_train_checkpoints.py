"""Tests of helpers.train.checkpoints, fail safe: broken cache entries, open walls, checkpoints of
another layout, folders that cannot be written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import train as T
from tests.train_support import TINY, private_cache  # noqa: F401 (a fixture)


# ---------------------------------------------------------------------------------------------
# Fail safe: broken cache entries, open walls, folders that cannot be written
# ---------------------------------------------------------------------------------------------

ONE_EPOCH = dict(TINY, epochs=1)


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory) -> Path:
    """A complete checkpoint of the walled TINY model (one epoch), outside any cache."""
    path = tmp_path_factory.mktemp("trained") / "walled.pt"
    cfg = T.training_config("quick", walled=True, **ONE_EPOCH)
    T.train(cfg, device="cpu", checkpoint=path, show_progress=False)
    return path


def _into_cache(source: Path, state_change=None) -> Path:
    """Copy ``source`` to the cache path of the walled TINY model, its weights changed by
    ``state_change(state)`` when given."""
    cfg = T.training_config("quick", walled=True, **ONE_EPOCH)
    path = T.checkpoint_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = torch.load(source, weights_only=True)
    if state_change is not None:
        state_change(ckpt["model"])
    torch.save(ckpt, path)
    return path


def test_a_truncated_cached_checkpoint_names_itself_and_the_remedy(trained_checkpoint):
    from helpers.config import CheckpointError

    path = _into_cache(trained_checkpoint)
    data = path.read_bytes()
    path.write_bytes(
        data[: len(data) // 2]
    )  # a copy cut in half (a full disk, a killed copy)
    with pytest.raises(CheckpointError) as info:
        T.train_or_load("quick", walled=True, pair=False, **ONE_EPOCH)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(path) in message and f"{len(data) // 2:,} bytes" in message
    assert f"Delete {path}" in message and "trains this model anew" in message
    with pytest.raises(
        CheckpointError, match="truncated, corrupt"
    ):  # the resume path too
        T.train(
            T.training_config("quick", walled=True, **ONE_EPOCH),
            device="cpu",
            checkpoint=path,
            show_progress=False,
        )
    # the remedy works: once deleted, the cache trains the model again
    path.unlink()
    _, info2 = T.train_or_load("quick", walled=True, pair=False, **ONE_EPOCH)
    assert info2["complete"] and not info2["from_cache"] and path.is_file()


def test_an_open_wall_in_a_cached_checkpoint_is_a_value_error(trained_checkpoint):
    from helpers.wall import WallError

    def open_the_wall(state):
        state["classifier.0.weight"].add_(
            0.5
        )  # every weight, those under the wall included

    path = _into_cache(trained_checkpoint, open_the_wall)
    with pytest.raises(WallError) as info:
        T.train_or_load("quick", walled=True, pair=False, **ONE_EPOCH)
    assert isinstance(info.value, ValueError) and not isinstance(
        info.value, RuntimeError
    )
    assert str(path) in str(info.value) and "under the wall" in str(info.value)
    assert "expected exactly 0" in str(info.value) and "train again" in str(info.value)
    with pytest.raises(WallError):  # the same through train(resume=True)
        T.train(
            T.training_config("quick", walled=True, **ONE_EPOCH),
            device="cpu",
            checkpoint=path,
            show_progress=False,
        )


def test_a_checkpoint_of_another_layout_is_a_value_error(trained_checkpoint):
    path = _into_cache(trained_checkpoint, lambda state: state.pop("classifier.6.bias"))
    with pytest.raises(ValueError, match="does not fit the rVGG") as info:
        T.train_or_load("quick", walled=True, pair=False, **ONE_EPOCH)
    assert "classifier.6.bias" in str(info.value) and f"Delete {path}" in str(
        info.value
    )


def test_reading_the_cache_creates_no_folder(trained_checkpoint, tmp_path, monkeypatch):
    cfg = T.training_config("quick", walled=True, **ONE_EPOCH)
    assert not T.checkpoint_path(cfg).parent.exists()  # a path, no folder made
    _into_cache(trained_checkpoint)

    def no_mkdir(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied (a read-only cache)", str(self))

    monkeypatch.setattr(Path, "mkdir", no_mkdir)
    model, info = T.train_or_load("quick", walled=True, pair=False, **ONE_EPOCH)
    assert info["from_cache"] and not model.training


def test_an_unwritable_checkpoint_folder_fails_before_training(tmp_path, monkeypatch):
    from helpers.cli import NotWritableError

    blocker = tmp_path / "afile.txt"
    blocker.write_text("a file where a folder should be")

    def no_data(*args, **kwargs):
        raise AssertionError(
            "training started although the checkpoint cannot be written"
        )

    monkeypatch.setattr("helpers.train.rvgg.ShardedSynthetic", no_data)
    cfg = T.training_config("quick", walled=True, **ONE_EPOCH)
    with pytest.raises(NotWritableError) as info:
        T.train(
            cfg, device="cpu", checkpoint=blocker / "sub" / "x.pt", show_progress=False
        )
    message = str(info.value)
    assert (
        str(blocker / "sub") in message
        and f"{blocker} is a file, not a folder" in message
    )
    assert "CAMWALLS_HOME" in message
