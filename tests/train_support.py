"""What the tests of helpers.train share (imported by tests/test_train*.py; not a test file): a tiny
rVGG configuration, a private checkpoint cache for every test, a tiny image folder."""

from __future__ import annotations

import numpy as np
import pytest

#: An rVGG that trains in seconds on a CPU (two epochs of two steps).
TINY = dict(
    width=1 / 32,
    epochs=2,
    train_images=8,
    batch_size=4,
    val_images=4,
    position_images=2,
    num_threads=1,
    log_every=1,
)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test of a module that imports this fixture gets its own cache, and silent progress bars."""
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CAMWALLS_BOOK_BUILD", "1")
    yield


@pytest.fixture()
def tiny_folder(tmp_path):
    """An ImageFolder root with train/ and val/, two classes of two random 40x50 images each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("a", "b"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(
                    folder / f"{i}.png"
                )
    return tmp_path
