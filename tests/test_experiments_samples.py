"""The images chapter 07 feeds its experiments (:mod:`helpers.experiments.samples`), synthetic
and from a real image folder."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers import experiments as E
from helpers.config import get_profile
from helpers.data import synthetic_batch
from test_train_resnet import tiny_folder  # noqa: F401  (fixture: a two-class image folder)


def test_labelled_images_and_objects_above_synthetic():
    x, y = E.labelled_images("quick", 3, seed=5)
    ref = synthetic_batch(3, 5)
    assert torch.equal(x, ref.images) and torch.equal(y, ref.labels)  # exact: repeat
    images, boxes = E.objects_above("quick", 4, seed=6)
    assert images.shape == (4, 3, 224, 224)
    assert (boxes[:, 1] <= 170).all() and (boxes[:, 0] < boxes[:, 1]).all()
    with pytest.raises(ValueError, match="positive"):
        E.objects_above("quick", 0)


def test_real_data_paths(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "home"))
    full = get_profile("full")
    prof = full.replace(
        data=dataclasses.replace(full.data, root=str(tiny_folder), num_classes=2)
    )
    images, boxes = E.objects_above(prof, 3, seed=1, size=32)
    for img, (t, b, lf, rt) in zip(images, boxes.long().tolist()):
        assert b <= 170 and b - t == 32 and rt - lf == 32
        outside = img.clone()
        outside[:, t:b, lf:rt] = 0
        assert (
            outside.abs().max() == 0 and img[:, t:b, lf:rt].abs().max() > 0
        )  # exact: exact-float
    x, y = E.labelled_images(prof, 3)
    assert x.shape == (3, 3, 224, 224) and set(y.tolist()) <= {0, 1}
