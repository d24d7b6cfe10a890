"""Profiles, device, seeds and the cache directory.

Two profiles share one code path (see README.md):

* ``quick`` -- the default. Synthetic images generated on the fly, a narrow rVGG with the
  very same depth, kernels and pooling as the paper's (hence the same wall geometry), short
  training on the CPU. The whole book executes in minutes on 2 cores.
* ``full`` -- full-width rVGG on real data (an ImageNet folder, Imagenette, or the authors'
  released weights and stacks), meant for a GPU.

The profile is chosen by the argument of :func:`get_profile` or, when that is ``None``, by
the environment variable ``CAMWALLS_PROFILE``. Nothing in a notebook branches on the profile
beyond asking ``helpers`` for data, model and settings.

Every artefact that depends on the profile (checkpoints, data, results) lives below
:func:`cache_dir` (``CAMWALLS_HOME``, default ``~/.cache/camwalls``).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .cli import NotWritableError, folder_problem

__all__ = [
    "PROFILE_ENV",
    "HOME_ENV",
    "PROFILES",
    "Profile",
    "get_profile",
    "CacheDirError",
    "cache_dir",
    "display_path",
    "ensure_dir",
    "cache_dir_error",
    "results_dir",
    "get_device",
    "seed_everything",
    "profile_label",
    "provenance",
    "progress",
    "CheckpointError",
    "read_checkpoint_file",
]

PROFILE_ENV = "CAMWALLS_PROFILE"
HOME_ENV = "CAMWALLS_HOME"
DEVICE_ENV = "CAMWALLS_DEVICE"
#: Set by ``tools.build`` while the book is built: progress bars are then silent, since a
#: bar written during the build would only clutter the HTML (and stderr output fails the build).
BUILD_ENV = "CAMWALLS_BOOK_BUILD"

#: The geometry of the paper: a 224x224 input gives a 14x14 map after conv5_3.
IMAGE_SIZE = 224
MAP_SIZE = 14
#: Number of hidden rows of the 14x14 map (the wall), as in the paper.
WALL_ROWS = 9


@dataclass(frozen=True)
class TrainSettings:
    """How ``helpers.train`` trains rVGG in a profile."""

    epochs: int
    batch_size: int
    optimizer: str  # "sgd" (the paper's recipe) or "adam"
    lr: float
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_step_epochs: int = 30
    lr_gamma: float = 0.1
    seed: int = 3
    mixed_precision: bool = False
    channels_last: bool = False
    compile: bool = False
    num_workers: int = 0
    dropout: float = 0.5  # rVGG's classifier dropout (the paper's VGG16: 0.5)
    warmup_steps: int = 0  # linear learning-rate warm-up over the first steps
    grad_clip: float = 0.0  # clip the gradient norm to this (0: no clipping)
    schedule: str = (
        "step"  # "step" (StepLR, the paper's) or "cosine" (to zero, per step)
    )
    num_threads: int = (
        0  # torch.set_num_threads while training on the CPU (0: leave as is)
    )
    log_every: int = 10  # steps between two points of the training-loss curve
    init: str = (
        "torchvision"  # "torchvision" (VGG's), "pooled" or "dirac" (see helpers.train)
    )
    init_noise: float = (
        0.3  # "dirac": scale of the Kaiming noise added to the identity kernels
    )
    weight_standardization: bool = False  # train the convolutions through scaled weight
    #   standardization (a reparametrization, baked into plain weights at the end)
    tie_fraction: float = (
        0.0  # share of the steps, at the start, with the first dense layer's weights
    )
    #   shared across positions (must end before the run does: helpers.train refuses 1.0)
    freeze_convs: int = 0  # the first convolutions keep their initial (random) weights
    batch_norm: bool = (
        False  # train with batch norm after every convolution, folded into the
    )
    #   convolution at the end (the trained model is a plain rVGG, see helpers.train)
    walled_epochs: int = (
        0  # the walled model's epochs, when not ``epochs`` (0: the same)
    )
    visible_rows: bool = (
        False  # a walled model trains on the input rows its logits depend on
    )
    #   (helpers.masked_forward.VisibleRowsNet: the same logits and gradients, less work)


@dataclass(frozen=True)
class DataSettings:
    """Where the images come from in a profile."""

    source: str  # "synthetic", "imagefolder", "imagenette"
    num_classes: int
    train_images: int  # per epoch; ignored for real folders (their size is the data's)
    val_images: int
    seed: int = 0
    below_share: float = (
        0.15  # synthetic: share of training objects entirely below the wall
    )
    root: str = ""  # imagefolder: folder with train/ and val/ ("" = $CAMWALLS_DATA_ROOT or cache)
    position_images: int = (
        200  # synthetic: images per position group in the final evaluation
    )
    instances: int = (
        1  # synthetic: up to this many instances of the class per training image
    )


@dataclass(frozen=True)
class EvalSettings:
    """How the CAM evaluation runs in a profile."""

    stack_images: int = 100  # images per stack set (the paper uses 100)
    batch_size: int = 16  # images per shared CAM pass (helpers.cams.compute_cams)
    seed: int = 0
    opticam_iterations: int = 100  # Adam steps of Opti-CAM (the paper's default: 100)
    opticam_lr: float = 0.1  # Opti-CAM's learning rate (the paper's: 0.1)
    score_batch: int = 64  # masked images per forward pass in ScoreCAM
    grid_images: int = 10  # maps per method and set kept for the chapters' grids


@dataclass(frozen=True)
class Profile:
    """A named set of settings. Immutable; use :meth:`replace` to derive a variant."""

    name: str
    width: float  # rVGG channel multiplier (1.0 = the paper's rVGG)
    data: DataSettings
    train: TrainSettings
    eval: EvalSettings = field(default_factory=EvalSettings)
    image_size: int = IMAGE_SIZE
    wall_rows: int = WALL_ROWS
    description: str = ""

    def replace(self, **changes: Any) -> "Profile":
        """A copy with some fields changed (``profile.replace(width=0.25)``)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every setting (used to key caches)."""
        return dataclasses.asdict(self)


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        width=1 / 16,
        data=DataSettings(
            source="synthetic",
            num_classes=10,
            train_images=2560,
            val_images=256,
            below_share=0.15,
            position_images=200,
        ),
        train=TrainSettings(
            # the walled model learns from its visible rows only: two more epochs (each costs
            # 176/224 of a baseline epoch), so that both reach 90% and finish together
            epochs=8,
            walled_epochs=10,
            batch_size=16,
            optimizer="adam",
            lr=1e-3,
            weight_decay=0.0,
            schedule="cosine",
            warmup_steps=20,
            dropout=0.0,
            init="pooled",
            weight_standardization=True,
            tie_fraction=0.0,
            visible_rows=True,
            num_threads=2,
            log_every=10,
        ),
        # Opti-CAM: 10 Adam steps instead of the paper's 100, to fit the CPU time budget
        # (helpers.evaluate records the number with the results).
        eval=EvalSettings(
            stack_images=100, batch_size=25, opticam_iterations=10, score_batch=128
        ),
        description="CPU, synthetic images, narrow rVGG (same geometry), minutes to train",
    ),
    "full": Profile(
        name="full",
        width=1.0,
        data=DataSettings(
            source="imagefolder", num_classes=1000, train_images=0, val_images=0
        ),
        train=TrainSettings(
            epochs=90,
            batch_size=256,
            optimizer="sgd",
            lr=0.03,
            momentum=0.9,
            weight_decay=1e-4,
            lr_step_epochs=30,
            lr_gamma=0.1,
            seed=3,
            mixed_precision=True,
            channels_last=True,
            compile=False,
            num_workers=8,
        ),
        eval=EvalSettings(
            stack_images=100, batch_size=50, opticam_iterations=100, score_batch=256
        ),
        description="GPU, real images (ImageNet folder, Imagenette or the authors' release), "
        "full-width rVGG, the paper's recipe",
    ),
}


def get_profile(name: str | Profile | None = None) -> Profile:
    """The profile called ``name``; ``None`` reads ``$CAMWALLS_PROFILE`` (default ``quick``).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if isinstance(name, Profile):
        return name
    source = "argument"
    if name is None:
        name = os.environ.get(PROFILE_ENV, "").strip() or "quick"
        source = f"environment variable {PROFILE_ENV}"
    key = str(name).strip().lower()
    if key not in PROFILES:
        raise ValueError(
            f"Unknown profile {name!r} (from the {source}); expected one of "
            f"{sorted(PROFILES)}. Set {PROFILE_ENV}=quick (CPU, synthetic data) or "
            f"{PROFILE_ENV}=full (GPU, real data)."
        )
    return PROFILES[key]


class CacheDirError(NotWritableError):
    """A folder of the cache (``$CAMWALLS_HOME``) or another output folder that cannot be
    created or written to: the message names the folder, the environment variable and its
    value, what is in the way (a regular file, a folder that is not writable) and what to do."""


#: The cache directory when ``$CAMWALLS_HOME`` is not set.
DEFAULT_HOME = Path("~") / ".cache" / "camwalls"


def _home() -> Path:
    """The cache root: ``$CAMWALLS_HOME`` when set (``~`` expanded), else ``~/.cache/camwalls``."""
    root = os.environ.get(HOME_ENV, "").strip()
    return Path(root).expanduser() if root else DEFAULT_HOME.expanduser()


def _home_setting() -> str:
    """How the cache root was chosen, for messages: ``CAMWALLS_HOME='/x'`` or the default."""
    root = os.environ.get(HOME_ENV, "").strip()
    if root:
        return f"{HOME_ENV}={root!r}"
    return f"{HOME_ENV} is not set, so the default {DEFAULT_HOME.expanduser()} is used"


def _is_within(path: Path, base: Path) -> bool:
    """Whether ``path`` is ``base`` or lies below it (lexically, after making both absolute)."""
    path, base = Path(os.path.abspath(path)), Path(os.path.abspath(base))
    return path == base or base in path.parents


def cache_dir_error(
    path: str | Path, err: BaseException | None = None, problem: str | None = None
) -> CacheDirError:
    """A :class:`CacheDirError` explaining why the folder ``path`` cannot be created or written.

    ``problem`` (from :func:`helpers.cli.folder_problem`) says what was found; without it, the
    nearest existing path among ``path`` and its parents is looked at (a regular file where a
    folder is needed), else the OS error ``err`` is quoted. When ``path`` lies in the cache, the
    message names ``$CAMWALLS_HOME`` and its value and says to point it at a writable folder.
    """
    path = Path(path)
    if problem is None:
        blocker = next((p for p in (path, *path.parents) if os.path.lexists(p)), None)
        if blocker is not None and not blocker.is_dir():
            problem = f"{blocker} is a regular file, not a folder"
        elif err is not None:
            problem = f"{type(err).__name__}: {err}"
        else:
            problem = f"{path} cannot be written to"
    if _is_within(path, _home()):
        where = f" in the cache ({_home_setting()})"
        todo = (
            f"Point {HOME_ENV} at a writable folder (for example `export {HOME_ENV}=/tmp/camwalls`), "
            "or fix the file or the permissions in the way"
        )
    else:
        where = ""
        todo = "Choose a writable folder, or fix the file or the permissions in the way"
    return CacheDirError(
        f"Cannot create or write the folder {path}{where}: {problem}. Expected a writable folder "
        f"(or a path where one can be created). {todo}."
    )


def ensure_dir(path: str | Path, writable: bool = True) -> Path:
    """Create the folder ``path`` (and its parents) if needed and, with ``writable``, check
    that a file can be written into it (:func:`helpers.cli.folder_problem` writes and removes a
    probe file: a permission bit says nothing to root, a read-only or full disk says nothing to
    the permission bits); call it right before writing there.

    Args:
        path: the folder.
        writable: also check that an existing folder can be written to (``False``: only make
            sure the folder exists, for callers that may only read from it).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        CacheDirError: when the folder cannot be created (a regular file in the way, a parent
            that is not writable) or, with ``writable``, cannot be written to (see
            :func:`cache_dir_error`).
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise cache_dir_error(path, err) from err
    if writable:
        problem = folder_problem(path)
        if problem is not None:
            raise cache_dir_error(path, problem=problem)
    return path


def cache_dir(*parts: str, create: bool = True) -> Path:
    """The cache directory ``$CAMWALLS_HOME`` (default ``~/.cache/camwalls``), or a path in it.

    ``cache_dir("checkpoints", "quick")`` returns (and creates) that sub-directory. Callers that
    only read (look whether a file is there) pass ``create=False``, so that they work even where
    the cache cannot be written; writers create the folder when they write, with
    :func:`ensure_dir` (which also checks the write permission of a folder that exists).

    Raises:
        CacheDirError: with ``create=True``, when the folder cannot be created (for example
            ``$CAMWALLS_HOME`` points at a regular file, or below one, or into a read-only
            place); the message names ``CAMWALLS_HOME`` and its value.
    """
    path = _home().joinpath(*parts)
    if create:
        ensure_dir(path, writable=False)
    return path


def display_path(path: str | Path) -> str:
    """``path`` as the book prints it, free of this machine's folders: in the cache it reads
    ``$CAMWALLS_HOME/checkpoints/quick/x.pt`` (whatever the cache root is here), under the
    user's home folder ``~/...``, and any other path as given.

    ``os.path.expandvars(os.path.expanduser(display_path(p)))`` is ``p`` again (as an absolute
    path) wherever ``$CAMWALLS_HOME`` is set as when it was printed; when it is not set, the
    default cache root ``~/.cache/camwalls`` prints as ``$CAMWALLS_HOME`` too, which is the
    variable a reader sets to move it.
    """
    given = Path(path).expanduser()
    absolute = Path(os.path.abspath(given))
    roots = [(_home(), f"${HOME_ENV}")] + (
        [(Path.home(), "~")] if given.is_absolute() else []
    )
    for root, name in roots:
        pairs = (
            (absolute, Path(os.path.abspath(root))),
            (absolute.resolve(), root.resolve()),
        )
        for here, base in pairs:
            if _is_within(here, base):
                rel = here.relative_to(base).as_posix()
                return name if rel == "." else f"{name}/{rel}"
    return str(given)


def results_dir(profile: str | Profile | None = None, create: bool = True) -> Path:
    """Where evaluation results (CSV/JSON) of a profile are written: ``<cache>/results/<name>``.

    Args:
        profile: the profile (name, object, or ``None`` for ``$CAMWALLS_PROFILE``).
        create: create the folder (pass ``False`` to only read results).

    Raises:
        CacheDirError: with ``create=True``, when the folder cannot be created.
    """
    return cache_dir("results", get_profile(profile).name, create=create)


def get_device(preference: str | torch.device | None = None) -> torch.device:
    """The torch device to use.

    ``preference`` (or ``$CAMWALLS_DEVICE``) may be ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``
    or ``"auto"`` (default: CUDA if available, then MPS, then CPU).

    Raises:
        ValueError: when the requested device is not available here.
    """
    if isinstance(preference, torch.device):
        return preference
    pref = (preference or os.environ.get(DEVICE_ENV, "") or "auto").strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if (
            getattr(torch.backends, "mps", None) is not None
            and torch.backends.mps.is_available()
        ):
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(pref)
    except RuntimeError as err:
        raise ValueError(
            f"Unknown device {pref!r}; expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"Device {pref!r} was requested but torch sees no CUDA GPU here; "
            "use 'cpu' or 'auto' (or run on a machine with a GPU)."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"Device {pref!r} was requested but MPS is not available; use 'cpu'."
        )
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a fresh ``torch.Generator`` seeded with ``seed``."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    return torch.Generator().manual_seed(int(seed))


def profile_label(
    profile: str | Profile | None = None, device: torch.device | None = None
) -> str:
    """A short stamp for figures and tables, e.g. ``"profile: quick (cpu)"``."""
    prof = get_profile(profile)
    dev = device if device is not None else get_device()
    return f"profile: {prof.name} ({dev.type})"


def provenance(
    command: str, device: str | torch.device | None = None
) -> dict[str, Any]:
    """What every result file of ours starts with: the ``command`` that wrote it, the UTC
    ``date`` and the ``machine`` (cores, torch threads and version, platform, device, the GPU's
    name where there is one), so that a number in the book says where it comes from."""
    import datetime
    import platform

    machine = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "platform": platform.platform(),
        "device": str(get_device(device)),
    }
    if torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name(0)
    return {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "machine": machine,
    }


def progress(iterable=None, **kwargs):
    """A tqdm progress bar (``tqdm.auto``: a widget in Jupyter, text in a terminal).

    Silent while the book is built (``$CAMWALLS_BOOK_BUILD`` set) or when ``disable=True``.
    Accepts every ``tqdm`` keyword argument.
    """
    if os.environ.get(BUILD_ENV):
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)


class CheckpointError(ValueError):
    """A checkpoint file that torch cannot read: truncated, corrupt, or not a torch file."""


def read_checkpoint_file(
    path: str | Path, remedy: str, map_location: str | torch.device = "cpu"
) -> Any:
    """``torch.load(path, weights_only=True)``, with a clear error for a file that is not readable.

    Args:
        path: the checkpoint.
        remedy: what the reader should do with a broken file (for example "Delete it and train
            again" or "Delete it and download it again"), appended to the message.
        map_location: passed to ``torch.load``.

    Raises:
        FileNotFoundError: when there is no file at ``path``.
        CheckpointError: when torch cannot read it (truncated, corrupt, not a checkpoint, or
            holding objects that ``weights_only=True`` refuses); the message names the path,
            its size and the remedy.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}. {remedy}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
    ) as err:
        first = (str(err).strip().splitlines() or [""])[0].split(". ")[0]
        raise CheckpointError(
            f"Cannot read the checkpoint {path} ({path.stat().st_size:,} bytes): torch says "
            f"{type(err).__name__}: {first[:160]}. Expected a torch checkpoint of tensors; the file is "
            f"truncated, corrupt or of another kind. {remedy}"
        ) from err
