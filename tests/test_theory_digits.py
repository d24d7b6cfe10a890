"""The theory chapter's handwritten digits as 29x29 images (helpers/theory/digits.py):
scikit-learn's digits offline, MNIST's test set from local files or a download, its SHA-256
check, and the error that says what to do offline."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets
from sklearn.datasets import load_digits

from helpers import theory as T


def test_sklearn_digits_are_padded_29x29():
    images, labels, source = T.digits_29(5, source="sklearn", seed=3)
    assert (
        source == "sklearn"
        and images.shape == (5, 1, 29, 29)
        and images.dtype == torch.float32
    )
    assert (
        labels.shape == (5,)
        and labels.dtype == torch.int64
        and set(labels.tolist()) <= set(range(10))
    )
    assert images.min() >= 0 and images.max() <= 1 and images.max() > 0.5
    assert (
        images[:, :, 0].abs().sum() == 0 and images[:, :, :, 28].abs().sum() == 0
    )  # the padding
    raw = load_digits()
    again, labels2, _ = T.digits_29(5, source="sklearn", seed=3)
    assert torch.equal(images, again) and torch.equal(labels, labels2)  # exact: repeat
    # the digit's mean brightness survives the bilinear upscaling (8x8 -> 28x28), roughly
    idx = np.flatnonzero(raw.target == labels[0].item())
    assert images[0].mean() > 0.05 and len(idx) > 0


def _write_idx(path: Path, array: np.ndarray) -> None:
    magic = {1: 2049, 3: 2051}[array.ndim]
    with open(path, "wb") as f:
        f.write(struct.pack(">" + "I" * (1 + array.ndim), magic, *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def _fake_mnist(root: Path, n: int = 6) -> np.ndarray:
    raw = root / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    for split in ("train", "t10k"):
        _write_idx(raw / f"{split}-images-idx3-ubyte", images)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    return images


def test_mnist_digits_from_local_files(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path))
    fake = _fake_mnist(tmp_path)
    images, labels, source = T.digits_29(6, source="mnist", seed=0, download=False)
    assert source == "mnist" and images.shape == (6, 1, 29, 29)
    order = labels.numpy()  # labels are the indices here
    assert np.allclose(images[:, 0, 1:, :28].numpy(), fake[order] / 255.0)
    assert images[:, :, 0].abs().sum() == 0 and images[:, :, :, 28].abs().sum() == 0
    assert T.digits_29(3, source="auto", download=False)[2] == "mnist"
    # a corrupt archive beside the files is refused
    with gzip.open(
        tmp_path / "data" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz", "wb"
    ) as f:
        f.write(b"not mnist")
    with pytest.raises(RuntimeError, match="SHA-256"):
        T.digits_29(2, source="mnist", download=False)


def test_mnist_offline_gives_a_clear_error_and_auto_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMWALLS_HOME", str(tmp_path))

    def offline(self):
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz: Name or service not known"
        )

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(RuntimeError, match="sklearn"):
        T.digits_29(2, source="mnist")
    with pytest.raises(RuntimeError, match="download=False"):
        T.digits_29(2, source="mnist", download=False)
    assert T.digits_29(2, source="auto")[2] == "sklearn"


def test_digits_bad_inputs():
    with pytest.raises(ValueError, match="source"):
        T.digits_29(2, source="emnist")
    with pytest.raises(ValueError, match="positive integer"):
        T.digits_29(0)
    with pytest.raises(ValueError, match="has 1797"):
        T.digits_29(5000, source="sklearn")
    with pytest.raises(ValueError, match="28x28"):
        T.pad_to_29(torch.zeros(29, 29))
    assert T.pad_to_29(torch.ones(28, 28)).shape == (29, 29)
