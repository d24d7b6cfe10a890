"""Tests of helpers.train.resnet: the walled ResNet trained with the one loop, cached in the one
checkpoint format, resumed after an interruption, on synthetic or real data."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers import train as T
from helpers.config import get_profile
from tests.train_support import private_cache, tiny_folder  # noqa: F401 (fixtures)

KW = dict(width=0.25, train_images=8, epochs=1, batch_size=4)


def test_train_or_load_resnet_caches():
    model, info = T.train_or_load_resnet(
        "quick", show_progress=False, device="cpu", **KW
    )
    assert not info["from_cache"] and len(info["history"]) == 1 and info["complete"]
    assert T.read_metrics(info["metrics_csv"])[0]["epoch"] == 1.0  # exact: integer
    again, info2 = T.train_or_load_resnet(
        "quick", show_progress=False, device="cpu", **KW
    )
    assert info2["from_cache"] and info2["checkpoint"] == info["checkpoint"]
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())  # exact: repeat
    with pytest.raises(ValueError, match="unknown ResNet override"):
        T.resnet_training_config("quick", depth=3)
    with pytest.raises(ValueError, match="smaller than one batch"):
        T.train_or_load_resnet(
            "quick", show_progress=False, device="cpu", **dict(KW, train_images=2)
        )


def test_resnet_configuration_and_its_key():
    cfg = T.resnet_training_config("quick")
    s = T.RESNET_SETTINGS["quick"]
    assert (
        cfg["width"],
        cfg["wall_rows"],
        cfg["train_images"],
        cfg["epochs"],
        cfg["batch_size"],
        cfg["lr"],
    ) == (s.width, s.wall_rows, s.train_images, s.epochs, s.batch_size, s.lr)
    assert cfg["version"] == T.RESNET_VERSION and cfg["arch"] == "walled_resnet"
    assert T.resnet_training_config("quick", wall_rows=3)["wall_rows"] == 3
    other = T.resnet_training_config("quick", lr=0.05)
    assert (
        T.config_key(other) != T.config_key(cfg)
        and T.config_key(cfg) in T.resnet_checkpoint_path(cfg).name
    )


def test_resnet_batches_fixed_set_or_fresh_stream(monkeypatch):
    cfg = T.resnet_training_config("quick", **KW)
    fixed = T.resnet_batches(cfg, torch.Generator().manual_seed(0))
    assert (
        isinstance(fixed, T.ShuffledTensors)
        and len(fixed) == 2
        and fixed.inputs.dtype == torch.float16
    )
    monkeypatch.setattr("helpers.train.resnet.FIXED_SET_LIMIT", 4)
    fresh = T.resnet_batches(cfg, torch.Generator())
    assert not isinstance(fresh, T.ShuffledTensors) and len(fresh) == 2


def test_an_interrupted_resnet_run_resumes_bit_identical(tmp_path, monkeypatch):
    kw = dict(KW, epochs=2)
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "a"))
    full, _ = T.train_or_load_resnet("quick", show_progress=False, device="cpu", **kw)
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path / "b"))
    original = T.ShuffledTensors.epoch

    def dying(self, epoch, start_step=0):
        if epoch == 1:
            raise KeyboardInterrupt("killed")
        return original(self, epoch, start_step)

    monkeypatch.setattr(T.ShuffledTensors, "epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        T.train_or_load_resnet("quick", show_progress=False, device="cpu", **kw)
    path = T.resnet_checkpoint_path(T.resnet_training_config("quick", **kw))
    assert (
        T.load_checkpoint(path)["epoch"] == 1
        and not T.load_checkpoint(path)["complete"]
    )
    monkeypatch.setattr(T.ShuffledTensors, "epoch", original)
    resumed, info = T.train_or_load_resnet(
        "quick", show_progress=False, device="cpu", **kw
    )
    assert not info["from_cache"] and info["complete"] and len(info["history"]) == 2
    for (k, p), q in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), k  # exact: repeat


def test_resnet_on_real_data_and_its_class_count(tiny_folder):
    full = get_profile("full")
    prof = full.replace(
        data=dataclasses.replace(full.data, root=str(tiny_folder), num_classes=2)
    )
    model, info = T.train_or_load_resnet(
        prof,
        device="cpu",
        show_progress=False,
        width=0.25,
        epochs=1,
        batch_size=2,
        num_workers=0,
    )
    assert (
        len(info["history"]) == 1 and info["config"]["data"]["source"] == "imagefolder"
    )
    wrong = full.replace(
        data=dataclasses.replace(full.data, root=str(tiny_folder), num_classes=5)
    )
    with pytest.raises(ValueError, match="classes"):
        T.train_or_load_resnet(
            wrong,
            device="cpu",
            show_progress=False,
            width=0.25,
            epochs=1,
            batch_size=2,
            num_workers=0,
        )
