"""The evaluation sets: STACK-MIX and STACK-GEN, each from the authors' images when they are in
the cache, else built here (the synthetic world, or real validation images), and a look at a
profile's training images.

* **STACK-MIX** (:func:`stack_mix`, the paper's recipe): the rows above the wall hold one image
  of a class resized to them, the unseen rows below it another image of the same class resized
  to them. The ``"conflict"`` variant puts an image of *another* class below the wall. The
  authors' own 224x224 stacks, when they are in the cache, are read as they are (no resizing).
* **STACK-GEN** (:func:`stack_gen`): the authors' generated images (resize 256, centre crop
  224) when they are in the cache; offline a *stand-in*: composed scenes with two instances of
  one class, one above the wall and one partly or wholly below it, drawn from a distribution
  other than the training one (other backgrounds, sizes and placements). It is named a
  stand-in everywhere it appears.

The authors' images are read exactly as their ``figure_code/heatmap.py`` reads them: files in
sorted name order, ``Image.open(...).convert("RGB")``, and the transforms above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..config import IMAGE_SIZE, Profile, get_profile
from .folders import ImageReadError, real_dataset
from .release import (
    AUTHORS_STACK_IMAGES,
    _redownload,
    _wrong_size_message,
    authors_stack_files,
)
from .release_sources import authors_stack_folder
from .render import (
    _EXTENT,
    SYNTHETIC_CLASSES,
    _background,
    _bold_colours,
    _rand,
    render_synthetic,
)
from .synthetic import FIRST_UNSEEN_ROW, mix_seed, synthetic_batch
from .transforms import as_is_transform, eval_transform, normalize


@dataclass
class StackSet:
    """An evaluation set of stacked images (STACK-MIX, STACK-GEN or a stand-in).

    Attributes:
        images: ``(N, 3, 224, 224)`` float, ImageNet-normalized.
        labels: ``(N,)`` long, the class of the top image (above the wall): the class the
            walled model should see. ``-1`` where unknown (an unlabelled folder).
        bottom_labels: ``(N,)`` long, the class of the image (or object) below the wall.
        name: e.g. ``"STACK-MIX"``, ``"STACK-MIX (conflict)"``, ``"STACK-GEN (stand-in)"``.
        class_names: names of the label indices.
        profile: the profile that built it.
        meta: anything else (source, seed, boxes of the objects for synthetic sets...).
    """

    images: torch.Tensor
    labels: torch.Tensor
    bottom_labels: torch.Tensor
    name: str
    class_names: list[str]
    profile: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.dim() != 4 or tuple(self.images.shape[1:]) != (
            3,
            IMAGE_SIZE,
            IMAGE_SIZE,
        ):
            raise ValueError(
                f"StackSet images must be (N, 3, {IMAGE_SIZE}, {IMAGE_SIZE}), "
                f"got {tuple(self.images.shape)}."
            )
        if self.labels.shape != (n,) or self.bottom_labels.shape != (n,):
            raise ValueError(
                f"labels and bottom_labels must have shape ({n},), got "
                f"{tuple(self.labels.shape)} and {tuple(self.bottom_labels.shape)}."
            )

    @property
    def is_stand_in(self) -> bool:
        """Whether this is a stand-in for the authors' set (never to be reported as theirs)."""
        return "stand-in" in self.name

    def subset(self, index: Sequence[int] | torch.Tensor) -> "StackSet":
        """The images at ``index`` (a new :class:`StackSet` with the same name and metadata)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return StackSet(
            self.images[idx],
            self.labels[idx],
            self.bottom_labels[idx],
            self.name,
            list(self.class_names),
            self.profile,
            dict(self.meta),
        )


def stack_images(
    top: torch.Tensor, bottom: torch.Tensor, first_unseen_row: int = FIRST_UNSEEN_ROW
) -> torch.Tensor:
    """The paper's stacking: ``top`` resized to ``first_unseen_row`` x 224 above ``bottom``
    resized to ``(224 - first_unseen_row)`` x 224 (bilinear, antialiased).

    Works on normalized as well as ``[0, 1]`` images (resizing commutes with the per-channel
    affine normalization, since the interpolation weights sum to one).

    Args:
        top, bottom: ``(N, 3, H, W)`` float tensors (any ``H, W``).

    Returns:
        ``(N, 3, 224, 224)``.
    """
    for name, t in (("top", top), ("bottom", bottom)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[1] != 3:
            raise ValueError(
                f"{name} must be a (N, 3, H, W) tensor, got "
                f"{getattr(t, 'shape', type(t).__name__)}."
            )
    if top.shape[0] != bottom.shape[0]:
        raise ValueError(
            f"top and bottom hold {top.shape[0]} and {bottom.shape[0]} images; "
            "expected the same number."
        )
    if not 0 < first_unseen_row < IMAGE_SIZE:
        raise ValueError(
            f"first_unseen_row must be in 1..{IMAGE_SIZE - 1}, got {first_unseen_row}."
        )
    up = F.interpolate(
        top.float(),
        size=(first_unseen_row, IMAGE_SIZE),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    down = F.interpolate(
        bottom.float(),
        size=(IMAGE_SIZE - first_unseen_row, IMAGE_SIZE),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    return torch.cat([up, down], dim=2)


def _pair_labels(
    gen: torch.Generator, n: int, num_classes: int, variant: str
) -> tuple[torch.Tensor, torch.Tensor]:
    top = torch.randint(0, num_classes, (n,), generator=gen)
    if variant == "same":
        return top, top.clone()
    if variant == "conflict":
        shift = torch.randint(1, num_classes, (n,), generator=gen)
        return top, (top + shift) % num_classes
    raise ValueError(
        f"Unknown STACK-MIX variant {variant!r}; expected 'same' or 'conflict'."
    )


def _resolve(
    profile: str | Profile | None, n: int | None, seed: int | None
) -> tuple[Profile, int, int]:
    prof = get_profile(profile)
    n = prof.eval.stack_images if n is None else n
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    seed = prof.eval.seed if seed is None else seed
    return prof, n, int(seed)


def stack_mix(
    profile: str | Profile | None = None,
    n: int | None = None,
    seed: int | None = None,
    variant: str = "same",
) -> StackSet:
    """STACK-MIX by the paper's recipe: the rows above the wall (:data:`FIRST_UNSEEN_ROW` of
    them) one image of a class resized to them, the unseen rows below another image of the same
    class resized to them (:func:`stack_images`).

    In the ``quick`` profile the source images come from the synthetic world (a seed other
    than any training seed); with real data, the authors' own ``stackmix/`` images when they
    are in the cache (``<cache>/authors/stackmix``, or in a zip there, unpacked first; variant
    ``"same"``; the first ``n`` in sorted name order, read as they are, at 224x224, as the
    authors do), else stacks built from the validation split of the profile's
    dataset (:func:`real_dataset`). The synthetic world never looks at the cache, so it works
    wherever ``$CAMWALLS_HOME`` points.

    Args:
        profile: profile name or object (``None``: ``$CAMWALLS_PROFILE``).
        n: number of images (default ``profile.eval.stack_images`` = 100).
        seed: the set is a pure function of it (default ``profile.eval.seed``).
        variant: ``"same"`` (the paper's) or ``"conflict"`` (an image of *another* class below
            the wall; used by later chapters).

    Returns:
        A :class:`StackSet` named ``"STACK-MIX"`` (or ``"STACK-MIX (conflict)"``).

    Raises:
        ValueError: for an unknown variant or ``n``; with the authors' folder, when it holds
            fewer than ``n`` images, an image that cannot be decoded, or an image that is not
            224x224 (naming the file and saying to download it again).
    """
    prof, n, seed = _resolve(profile, n, seed)
    if variant not in ("same", "conflict"):
        raise ValueError(
            f"Unknown STACK-MIX variant {variant!r}; expected 'same' or 'conflict'."
        )
    gen = torch.Generator().manual_seed(mix_seed(seed, 1701))
    name = "STACK-MIX" if variant == "same" else f"STACK-MIX ({variant})"
    if variant == "same" and prof.data.source != "synthetic":
        authors = authors_stack_folder("stackmix")
        if authors is not None:
            return _authors_stack(authors, "STACK-MIX", prof, n)
    if prof.data.source == "synthetic":
        k = prof.data.num_classes
        top_labels, bottom_labels = _pair_labels(gen, n, k, variant)
        s1, s2 = mix_seed(seed, 1702), mix_seed(seed, 1703)
        top = synthetic_batch(n, s1, num_classes=k, labels=top_labels, below_share=0.0)
        bottom = synthetic_batch(
            n, s2, num_classes=k, labels=bottom_labels, below_share=0.0
        )
        images = stack_images(top.images, bottom.images)
        meta = {"source": "synthetic world", "seed": seed, "variant": variant}
        return StackSet(
            images,
            top_labels,
            bottom_labels,
            name,
            SYNTHETIC_CLASSES[:k],
            prof.name,
            meta,
        )
    dataset = real_dataset(prof, split="val", train=False)
    by_class = _indices_by_class(dataset)
    usable = [c for c, idx in by_class.items() if len(idx) >= 2]
    if not usable:
        raise ValueError(
            "STACK-MIX needs at least one class with two images in the validation data."
        )
    tops, bottoms, tl, bl = [], [], [], []
    for _ in range(n):
        c = usable[int(torch.randint(0, len(usable), (1,), generator=gen))]
        pool = by_class[c]
        i, j = torch.randperm(len(pool), generator=gen)[:2].tolist()
        if variant == "same":
            c2, jdx = c, pool[j]
        elif variant == "conflict":
            others = [d for d in by_class if d != c and by_class[d]]
            if not others:
                raise ValueError("The conflict variant needs at least two classes.")
            c2 = others[int(torch.randint(0, len(others), (1,), generator=gen))]
            jdx = by_class[c2][
                int(torch.randint(0, len(by_class[c2]), (1,), generator=gen))
            ]
        else:
            raise ValueError(
                f"Unknown STACK-MIX variant {variant!r}; expected 'same' or 'conflict'."
            )
        tops.append(dataset[pool[i]][0])
        bottoms.append(dataset[jdx][0])
        tl.append(c)
        bl.append(c2)
    images = stack_images(torch.stack(tops), torch.stack(bottoms))
    meta = {
        "source": getattr(dataset, "description", type(dataset).__name__),
        "seed": seed,
        "variant": variant,
    }
    return StackSet(
        images,
        torch.tensor(tl),
        torch.tensor(bl),
        name,
        list(dataset.classes),
        prof.name,
        meta,
    )


def stack_gen_standin(
    n: int = 100, seed: int = 0, num_classes: int = 10, profile: str = "quick"
) -> StackSet:
    """The offline stand-in for STACK-GEN in the synthetic world: composed scenes with two
    instances of one class, one entirely above the wall (bottom <= row 150) and one whose top
    lies in rows 150..200 (partly or wholly below the wall), on a sky/ground *scene* background
    and with sizes and placements unlike the training images. Not the authors' images.

    Returns:
        A :class:`StackSet` named ``"STACK-GEN (stand-in)"``; ``meta["top_boxes"]`` and
        ``meta["bottom_boxes"]`` hold the objects' boxes ``(top, bottom, left, right)``.
    """
    gen = torch.Generator().manual_seed(mix_seed(seed, 2024))
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    bg = _background(gen, n, IMAGE_SIZE, "scene")
    # The upper instance: larger, centred horizontally-ish, bottom at most at row 150.
    aspects = torch.exp(_rand(gen, n, math.log(0.8), math.log(1.2)))
    r1 = _rand(gen, n, 30.0, 48.0)
    e1 = r1 * _EXTENT[labels] * aspects + 1.0
    e1x = r1 * _EXTENT[labels] + 1.0
    row1 = e1 + (150.0 - 2 * e1) * torch.rand(n, generator=gen)
    col1 = e1x + (IMAGE_SIZE - 2 * e1x) * torch.rand(n, generator=gen)
    # The lower instance: smaller, its top in rows 150..200 (partly or wholly hidden).
    r2 = _rand(gen, n, 14.0, 24.0)
    e2 = r2 * _EXTENT[labels] + 1.0
    top2 = _rand(gen, n, 150.0, 200.0)
    row2 = torch.minimum(top2 + e2, IMAGE_SIZE - e2)
    col2 = e2 + (IMAGE_SIZE - 2 * e2) * torch.rand(n, generator=gen)
    img, box1 = render_synthetic(
        labels,
        torch.stack([row1, col1], 1),
        r1,
        _rand(gen, n, -0.5, 0.5),
        _bold_colours(gen, n),
        bg,
        aspects,
    )
    img, box2 = render_synthetic(
        labels,
        torch.stack([row2, col2], 1),
        r2,
        _rand(gen, n, 0.0, 2 * math.pi),
        _bold_colours(gen, n),
        img,
    )
    meta = {
        "source": "synthetic scenes (offline stand-in; not the authors' STACK-GEN)",
        "seed": seed,
        "top_boxes": box1,
        "bottom_boxes": box2,
    }
    return StackSet(
        normalize(img),
        labels,
        labels.clone(),
        "STACK-GEN (stand-in)",
        SYNTHETIC_CLASSES[:num_classes],
        profile,
        meta,
    )


def stack_gen(
    profile: str | Profile | None = None, n: int | None = None, seed: int | None = None
) -> StackSet:
    """STACK-GEN: the authors' generated images when their ``stackgen/`` folder is in the cache
    (``<cache>/authors/stackgen``, or in a zip there, unpacked first; the first ``n`` in sorted
    name order, resized to 256 and centre-cropped to 224, as the authors do), else the
    offline stand-in (:func:`stack_gen_standin` in the synthetic world; with real data, scenes
    composed from two validation images of one class), named as a stand-in.

    Args:
        profile, n, seed: as for :func:`stack_mix`.
    """
    prof, n, seed = _resolve(profile, n, seed)
    if prof.data.source != "synthetic":
        folder = authors_stack_folder("stackgen")
        if folder is not None:
            return _authors_stack(folder, "STACK-GEN", prof, n)
    if prof.data.source == "synthetic":
        return stack_gen_standin(n, seed, prof.data.num_classes, prof.name)
    return _composed_standin(prof, n, seed)


def _indices_by_class(dataset) -> dict[int, list[int]]:
    targets = getattr(dataset, "targets", None)
    if targets is None:
        targets = [
            label
            for _, label in getattr(
                dataset, "_samples", getattr(dataset, "samples", [])
            )
        ]
    out: dict[int, list[int]] = {}
    for i, t in enumerate(targets):
        out.setdefault(int(t), []).append(i)
    return out


def _read_as_authors(path: Path, name: str) -> tuple[Any, str]:
    """An image file read as the authors' ``CustomImageDataset`` reads it,
    ``Image.open(path).convert("RGB")`` (an alpha channel is dropped, not composed onto a
    background), and its original mode.

    Raises:
        ImageReadError: naming the file, when PIL cannot decode it.
    """
    try:
        with Image.open(path) as im:
            return im.convert("RGB"), im.mode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(
            f"Cannot read the image {path} of the authors' {name} set ({type(err).__name__}: "
            f"{err}). The file is corrupt or truncated: " + _redownload("it")
        ) from err


def _authors_stack(folder: Path, name: str, prof: Profile, n: int) -> StackSet:
    """The first ``n`` of the authors' stack images in ``folder``, read exactly as the authors'
    ``load_dataset`` reads them (``figure_code/heatmap.py`` of their repository): the files in
    their order (:func:`helpers.data.authors_stack_files`: sorted names), each
    ``Image.open(...).convert("RGB")``; STACK-MIX then ``ToTensor`` and ``Normalize`` only (its
    files are 224x224 stacks already: no resizing, so the wall stays at
    :data:`FIRST_UNSEEN_ROW`), STACK-GEN ``Resize(256)``, ``CenterCrop(224)``, ``ToTensor`` and
    ``Normalize``. With class sub-folders the labels are their indices in sorted order; a flat
    folder (the authors' layout) gives ``-1``.

    Raises:
        ValueError: when the folder holds no image or fewer than ``n``, or a STACK-MIX image is
            not 224x224 (naming the file and saying to download the release again).
        ImageReadError: for an image that cannot be decoded (naming it).
    """
    as_is = name == "STACK-MIX"
    tf = as_is_transform() if as_is else eval_transform(256)
    files, classes = authors_stack_files(folder)
    if len(files) < n:
        raise ValueError(
            f"The authors' {name} folder {folder} holds {len(files)} image file(s); expected at least "
            f"{n} (the paper's set has {AUTHORS_STACK_IMAGES}). The release is incomplete: "
            + _redownload("the folder")
        )
    files = files[:n]
    tensors, modes = [], {}
    for path, _ in files:
        img, mode = _read_as_authors(path, name)
        if as_is and img.size != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(_wrong_size_message(path, img.size))
        if mode != "RGB":
            modes[mode] = modes.get(mode, 0) + 1
        tensors.append(tf(img))
    images = torch.stack(tensors)
    labels = torch.tensor([c for _, c in files])
    how = "read as they are (224x224)" if as_is else "resized to 256, centre crop 224"
    conversions = "; ".join(
        f"{k} image(s) of mode {m} converted to RGB" for m, k in sorted(modes.items())
    )
    return StackSet(
        images,
        labels,
        labels.clone(),
        name,
        classes,
        prof.name,
        {
            "source": f"the authors' {name} images in {folder} ({how}, as the authors read them)",
            "files": [p.name for p, _ in files],
            "conversions": conversions or "no conversion",
        },
    )


def _composed_standin(prof: Profile, n: int, seed: int) -> StackSet:
    """STACK-GEN stand-in with real images: a validation image of a class fills the frame, and
    a second image of the same class, shrunk to 96x96, is pasted with its top in rows 150..200."""
    dataset = real_dataset(prof, split="val", train=False)
    by_class = {
        c: idx for c, idx in _indices_by_class(dataset).items() if len(idx) >= 2
    }
    if not by_class:
        raise ValueError(
            "The STACK-GEN stand-in needs a class with two validation images."
        )
    gen = torch.Generator().manual_seed(mix_seed(seed, 2025))
    keys = sorted(by_class)
    images, labels = [], []
    for _ in range(n):
        c = keys[int(torch.randint(0, len(keys), (1,), generator=gen))]
        i, j = torch.randperm(len(by_class[c]), generator=gen)[:2].tolist()
        base = dataset[by_class[c][i]][0].clone()
        small = F.interpolate(
            dataset[by_class[c][j]][0][None],
            size=(96, 96),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )[0]
        top = int(torch.randint(150, 201, (1,), generator=gen))
        left = int(torch.randint(0, IMAGE_SIZE - 96 + 1, (1,), generator=gen))
        h = min(96, IMAGE_SIZE - top)
        base[:, top : top + h, left : left + 96] = small[:, :h]
        images.append(base)
        labels.append(c)
    lab = torch.tensor(labels)
    return StackSet(
        torch.stack(images),
        lab,
        lab.clone(),
        "STACK-GEN (stand-in)",
        list(dataset.classes),
        prof.name,
        {
            "source": "scenes composed from two validation images of one class "
            "(offline stand-in; not the authors' STACK-GEN)",
            "seed": seed,
        },
    )


def training_examples(
    profile: str | Profile | None = None, n: int = 12, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, list[str], str]:
    """A few training images of a profile, as the network sees them (augmented, normalized).

    Returns:
        ``(images (n, 3, 224, 224), labels (n,), class_names, description)``.
    """
    prof = get_profile(profile)
    if prof.data.source == "synthetic":
        b = synthetic_batch(
            n,
            mix_seed(seed, 77),
            num_classes=prof.data.num_classes,
            below_share=prof.data.below_share,
            instances=getattr(prof.data, "instances", 1),
        )
        return (
            b.images,
            b.labels,
            SYNTHETIC_CLASSES[: prof.data.num_classes],
            "synthetic world",
        )
    ds = real_dataset(prof, split="train", train=True)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the random crops and flips
    idx = torch.randperm(len(ds), generator=gen)[:n].tolist()
    items = [ds[i] for i in idx]
    return (
        torch.stack([x for x, _ in items]),
        torch.tensor([int(y) for _, y in items]),
        list(ds.classes),
        getattr(ds, "description", "real images"),
    )
