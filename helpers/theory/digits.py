"""Handwritten digits as 29x29 images for the theory model: scikit-learn's digits (offline) or
MNIST's test set (downloaded once, checked against its SHA-256), padded from 28x28."""

from __future__ import annotations

import contextlib
import io
import socket
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torchvision.datasets import MNIST

from ..config import cache_dir, ensure_dir
from ..data import sha256_file


#: SHA-256 of the MNIST test archives (as distributed by LeCun et al. and mirrored by torchvision).
MNIST_TEST_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


def pad_to_29(images: torch.Tensor) -> torch.Tensor:
    """``(..., 28, 28)`` -> ``(..., 29, 29)``: one zero row on top, one zero column on the right
    (as the authors pad MNIST for the theory model)."""
    if (
        not isinstance(images, torch.Tensor)
        or images.dim() < 2
        or tuple(images.shape[-2:]) != (28, 28)
    ):
        shape = (
            tuple(images.shape)
            if isinstance(images, torch.Tensor)
            else type(images).__name__
        )
        raise ValueError(
            f"expected a tensor of 28x28 images (..., 28, 28), got {shape}."
        )
    return F.pad(images, (0, 1, 1, 0))


def _mnist_test(download: bool, timeout: float) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST's 10,000 test digits ``(10000, 28, 28)`` uint8 and labels, via torchvision, from
    ``cache_dir("data")``; archives present in the raw folder are checked against
    :data:`MNIST_TEST_SHA256`."""
    root = cache_dir("data", create=False)
    try:
        dataset = MNIST(str(root), train=False, download=False)
    except RuntimeError:
        if not download:
            raise RuntimeError(
                f"MNIST is not in {root / 'MNIST' / 'raw'} and download=False. Use source='sklearn' "
                "(the handwritten digits that ship with scikit-learn work offline)."
            ) from None
        ensure_dir(root)  # the download writes there: an unusable cache fails before it
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout)
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                dataset = MNIST(str(root), train=False, download=True)
        except Exception as err:  # noqa: BLE001 - any network failure gets the same clear message
            raise RuntimeError(
                f"Could not download MNIST into {root / 'MNIST' / 'raw'} ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}). MNIST needs a network the first "
                "time (torchvision downloads t10k-images-idx3-ubyte.gz and friends), or the four "
                "idx files copied there by hand. Use source='sklearn' instead: the handwritten "
                "digits that ship with scikit-learn work offline."
            ) from err
        finally:
            socket.setdefaulttimeout(old)
    raw = Path(dataset.raw_folder)
    for name, expected in MNIST_TEST_SHA256.items():
        archive = raw / name
        if archive.is_file():
            found = sha256_file(archive)
            if found != expected:
                raise RuntimeError(
                    f"{archive} has SHA-256 {found}, expected {expected}: the file is corrupt or not "
                    "MNIST's. Delete the MNIST folder and download again."
                )
    return dataset.data, dataset.targets


def digits_29(
    n: int,
    source: str = "sklearn",
    seed: int = 0,
    download: bool = True,
    timeout: float = 20.0,
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``n`` handwritten digits as 29x29 images for :class:`TheoryCNN`, drawn without replacement.

    Args:
        n: number of digits (1 .. size of the source).
        source: ``"sklearn"`` -- the 1,797 8x8 digits that ship with scikit-learn
            (Alpaydin and Kaynak's UCI set; offline), upscaled bilinearly to 28x28 and scaled to
            [0, 1]; ``"mnist"`` -- MNIST's 10,000 test digits (LeCun et al.) via
            torchvision, downloaded into ``cache_dir("data")`` when missing (needs a network
            once); ``"auto"`` -- MNIST when it is cached or can be downloaded within
            ``timeout`` seconds, scikit-learn's digits otherwise.
        seed: which digits are drawn.
        download, timeout: for MNIST, whether to download it when missing, and the socket timeout.

    Returns:
        ``images (n, 1, 29, 29)`` float32 in [0, 1] (the 28x28 digit with one zero row on top and
        one zero column on the right), ``labels (n,)`` int64, and the source used.

    Raises:
        RuntimeError: ``source="mnist"`` without the files and without a network (says what is
            missing and that ``source="sklearn"`` works offline).
    """
    if source not in ("sklearn", "mnist", "auto"):
        raise ValueError(
            f"source must be 'sklearn', 'mnist' or 'auto', got {source!r}."
        )
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    if source in ("mnist", "auto"):
        try:
            data, targets = _mnist_test(download=download, timeout=timeout)
            images28 = data.to(torch.float32) / 255.0
            used = "mnist"
        except RuntimeError:
            if source == "mnist":
                raise
            source = "sklearn"
    if source == "sklearn":
        digits = load_digits()
        small = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[
            :, None
        ]  # (1797, 1, 8, 8)
        images28 = F.interpolate(
            small, size=(28, 28), mode="bilinear", align_corners=False
        )[:, 0]
        images28 = images28.clamp(0.0, 1.0)
        targets = torch.from_numpy(digits.target.astype(np.int64))
        used = "sklearn"
    total = images28.shape[0]
    if n > total:
        raise ValueError(f"n={n} digits requested, but the {used} source has {total}.")
    idx = torch.from_numpy(
        np.random.default_rng(seed).choice(total, size=int(n), replace=False)
    )
    images = pad_to_29(images28[idx]).unsqueeze(1).contiguous()
    return images, targets[idx].to(torch.int64), used
