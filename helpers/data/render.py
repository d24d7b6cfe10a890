"""Painting the synthetic world: ten classes of bold objects on backgrounds of lower contrast.

The objects are six solid shapes and four textures (:data:`SYNTHETIC_CLASSES`), each drawn from
a signed-distance-like field on the pixel grid (anti-aliased over one pixel, vectorized torch,
a whole batch class by class), with any position, size, colour, stretch and rotation. Where
the objects go and what seed draws them is :mod:`helpers.data.synthetic`'s job.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: The ten classes of the synthetic world: six solid shapes and four textures. They are chosen
#: to differ in coarse, colour-free cues (solid or thin, round or straight, spiky, periodic in
#: one or two directions, dotted, concentric), so that a narrow network learns them from a few
#: thousand images; the textures have a fixed period in pixels whatever the object's size.
SYNTHETIC_CLASSES = [
    "disc",
    "ring",
    "bar",
    "cross",
    "star",
    "triangle",
    "stripes",
    "checkerboard",
    "dots",
    "bullseye",
]


def _rand(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    return coords.view(1, size, 1), coords.view(1, 1, size)  # y (rows), x (columns)


def _bold_colours(gen: torch.Generator, n: int) -> torch.Tensor:
    """``(n, 3)`` object colours of high *luminance* contrast with the mid-grey backgrounds:
    half of them bright (every channel in 0.7..1), half dark (every channel in 0..0.3), each
    with a random tint, so a luminance edge always outlines the object whatever its colour."""
    bright = torch.rand(n, 1, generator=gen) < 0.5
    tint = 0.3 * torch.rand(n, 3, generator=gen)
    return torch.where(bright, 1.0 - tint, tint)


def _background(gen: torch.Generator, n: int, size: int, style: str) -> torch.Tensor:
    """``(n, 3, size, size)`` backgrounds in ``[0, 1]`` of lower contrast than the objects.

    ``"clutter"`` (training): mid grey with smooth colour noise and irregular blobs of a muted
    colour (every channel within about 0.5 +- 0.2). ``"scene"`` (the STACK-GEN stand-in): a
    two-tone sky/ground scene with a horizon and soft vertical gradient, a different distribution.
    """
    if style == "clutter":
        low = size // 4  # built at a quarter of the resolution, then upsampled once
        # a mid-grey base (the same for every image: a global colour cast would only add a
        # nuisance that the network has to learn to ignore) with local clutter of low contrast
        base = _rand(gen, n * 3, 0.47, 0.53).view(n, 3, 1, 1)
        smooth = F.interpolate(
            torch.rand(n, 3, 6, 6, generator=gen) - 0.5,
            size=(low, low),
            mode="bilinear",
            align_corners=False,
        )
        blob_field = F.interpolate(
            torch.rand(n, 1, 14, 14, generator=gen),
            size=(low, low),
            mode="bilinear",
            align_corners=False,
        )
        blobs = (blob_field > 0.62).float()
        blob_colour = _rand(gen, n * 3, -0.09, 0.09).view(n, 3, 1, 1)
        fine = 0.04 * (torch.rand(n, 1, low, low, generator=gen) - 0.5)
        img = base + 0.14 * smooth + blobs * blob_colour + fine
        return F.interpolate(
            img, size=(size, size), mode="bilinear", align_corners=False
        ).clamp(0.0, 1.0)
    if style == "scene":
        y, _ = _grid(size)
        horizon = _rand(gen, n, 0.35, 0.75).view(n, 1, 1) * size
        sky = _rand(gen, n * 3, 0.55, 0.75).view(n, 3, 1, 1) * torch.tensor(
            [0.8, 0.9, 1.0]
        ).view(1, 3, 1, 1)
        ground = _rand(gen, n * 3, 0.3, 0.5).view(n, 3, 1, 1) * torch.tensor(
            [0.9, 1.0, 0.8]
        ).view(1, 3, 1, 1)
        below = (y.unsqueeze(1) > horizon.unsqueeze(1)).float()  # (n, 1, size, 1)
        ramp = (y.unsqueeze(1) / size - 0.5) * 0.12
        img = sky * (1 - below) + ground * below + ramp
        speckle = F.interpolate(
            torch.rand(n, 1, size // 8, size // 8, generator=gen) - 0.5,
            size=(size, size),
            mode="bilinear",
            align_corners=False,
        )
        return (img + 0.06 * speckle).clamp(0.0, 1.0)
    raise ValueError(
        f"Unknown background style {style!r}; expected 'clutter' or 'scene'."
    )


#: Largest distance from the centre of each class's shape, in radius units (for any rotation).
_EXTENT = torch.tensor(
    [
        0.95,
        0.95,
        math.hypot(0.95, 0.28),
        math.hypot(0.95, 0.2),
        1.0,
        1.0,
        0.85 * math.sqrt(2),
        0.85 * math.sqrt(2),
        0.95,
        0.95,
    ]
)
#: Texture periods in pixels: stripes, checkerboard cells, dot spacing, bullseye rings.
_PERIOD = {6: 10.0, 7: 9.0, 8: 11.0, 9: 10.0}


def _class_distance(
    k: int, u: torch.Tensor, v: torch.Tensor, rad: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Signed distance-like field (negative inside, radius units) of class ``k``'s shape on the
    object-centred, rotated coordinates ``u, v`` (radius units; the shape fits in the disc of
    radius ``_EXTENT[k]``), and its two-colour pattern (1 where the second colour shows) for the
    textures, else ``None``. ``rad``: the radius in pixels (``(m, 1, 1)``), for the textures'
    fixed periods."""
    if k == 0:  # disc
        return torch.sqrt(u * u + v * v) - 0.95, None
    if k == 1:  # ring: a thin annulus between radii 0.65 and 0.95
        return (torch.sqrt(u * u + v * v) - 0.8).abs() - 0.15, None
    if k == 2:  # bar: a 1.9 x 0.56 rectangle
        return torch.maximum(u.abs() - 0.95, v.abs() - 0.28), None
    if k == 3:  # cross (plus sign) with thin arms
        arm = 0.2
        au, av = u.abs(), v.abs()
        return torch.minimum(
            torch.maximum(au - 0.95, av - arm), torch.maximum(av - 0.95, au - arm)
        ), None
    if k == 4:  # five-pointed star: r < 0.4 + 0.6 * max(cos 5 theta, 0)^1.5
        r2 = u * u + v * v + 1e-12
        r = torch.sqrt(r2)
        # cos(5 theta) = Re((u + i v)^5) / r^5, without atan2
        re5 = u**5 - 10 * u**3 * v * v + 5 * u * v**4
        c5 = re5 / (r2 * r2 * r)
        return r - (0.4 + 0.6 * c5.clamp(min=0) ** 1.5), None
    if k == 5:  # equilateral triangle, apex up, vertices at distance 1 from the centre
        k3 = math.sqrt(3.0)
        return torch.maximum(
            torch.maximum((k3 * u - v) / 2.0, (-k3 * u - v) / 2.0), v
        ) - 0.5, None
    if k not in _PERIOD:
        raise ValueError(
            f"class {k} is not a class of the synthetic world (0..{len(SYNTHETIC_CLASSES) - 1})."
        )
    period = _PERIOD[k]
    px, py = u * rad, v * rad  # pixels, in the object's rotated frame
    if k == 6:  # stripes in a square patch
        outline = torch.maximum(u.abs(), v.abs()) - 0.85
        pattern = torch.sin(2 * math.pi * px / period) > 0
    elif k == 7:  # checkerboard in a square patch
        outline = torch.maximum(u.abs(), v.abs()) - 0.85
        pattern = (
            torch.sin(math.pi * px / period) * torch.sin(math.pi * py / period)
        ) > 0
    elif k == 8:  # dots in a disc
        outline = torch.sqrt(u * u + v * v) - 0.95
        cu = torch.remainder(px / period, 1.0) - 0.5
        cv = torch.remainder(py / period, 1.0) - 0.5
        pattern = (cu * cu + cv * cv) < 0.09
    else:  # bullseye: concentric rings in a disc
        outline = torch.sqrt(u * u + v * v) - 0.95
        pattern = torch.sin(2 * math.pi * torch.sqrt(px * px + py * py) / period) > 0
    return outline, pattern.float()


def render_synthetic(
    labels: torch.Tensor,
    centers: torch.Tensor,
    radii: torch.Tensor,
    angles: torch.Tensor,
    colours: torch.Tensor,
    background: torch.Tensor,
    aspects: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paint one object per image onto ``background`` (a whole batch at once, class by class).

    Args:
        labels: ``(N,)`` long, classes in ``0..9`` (:data:`SYNTHETIC_CLASSES`).
        centers: ``(N, 2)`` float, ``(row, column)`` of the object's centre, in pixels.
        radii: ``(N,)`` float, the object's size (its shape fits in a disc of about this radius),
            in pixels.
        angles: ``(N,)`` float, rotation in radians.
        colours: ``(N, 3)`` float in ``[0, 1]``, the object's colour; the textures alternate it
            with its complement.
        background: ``(N, 3, S, S)`` float in ``[0, 1]`` (not modified).
        aspects: ``(N,)`` float, vertical stretch of the rotated object (height / width of the
            image of a disc); ``None`` means 1. Values below 1 squash objects vertically, as
            STACK-MIX's resizing does.

    Returns:
        ``(images, boxes)``: ``(N, 3, S, S)`` float images in ``[0, 1]`` (not normalized) and
        ``(N, 4)`` bounding boxes ``(top, bottom, left, right)`` of the painted pixels
        (``bottom``/``right`` exclusive), read from the coverage itself.
    """
    n, _, size, _ = background.shape
    out = background.clone()
    boxes = torch.zeros(n, 4)
    for k in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == k).view(-1)
        m = idx.numel()
        # Render on a square window around each object only (much smaller than the image).
        stretch = 1.0 if aspects is None else aspects[idx].clamp(min=1.0)
        half = radii[idx] * stretch * _EXTENT[k] + 2.0
        win = int(min(size, math.ceil(2 * float(half.max())) + 2))
        top = (centers[idx, 0] - win / 2).round().clamp(0, size - win).long()
        left = (centers[idx, 1] - win / 2).round().clamp(0, size - win).long()
        grid = torch.arange(win, dtype=torch.float32) + 0.5
        y = grid.view(1, win, 1) + top.view(m, 1, 1)
        x = grid.view(1, 1, win) + left.view(m, 1, 1)
        rad = radii[idx].view(m, 1, 1)
        cy = centers[idx, 0].view(m, 1, 1)
        cx = centers[idx, 1].view(m, 1, 1)
        cos, sin = (
            torch.cos(angles[idx]).view(m, 1, 1),
            torch.sin(angles[idx]).view(m, 1, 1),
        )
        dx, dy = (x - cx) / rad, (y - cy) / rad
        if aspects is not None:
            dy = dy / aspects[idx].view(m, 1, 1)
        u = cos * dx + sin * dy
        v = -sin * dx + cos * dy
        d, pattern = _class_distance(int(k), u, v, rad)
        cover = torch.clamp(0.5 - d * rad, 0.0, 1.0).unsqueeze(
            1
        )  # anti-aliased over one pixel
        colour = colours[idx].view(m, 3, 1, 1)
        fill = (
            colour
            if pattern is None
            else colour + (1.0 - 2.0 * colour) * pattern.unsqueeze(1)
        )
        inside = cover[:, 0] > 0
        rows, cols = inside.any(dim=2), inside.any(dim=1)
        for j, i in enumerate(idx.tolist()):
            t0, l0 = int(top[j]), int(left[j])
            patch = out[i, :, t0 : t0 + win, l0 : l0 + win]
            patch.mul_(1 - cover[j]).add_(fill[j] * cover[j])
            rr = torch.nonzero(rows[j]).view(-1)
            cc = torch.nonzero(cols[j]).view(-1)
            if rr.numel():
                boxes[i, 0], boxes[i, 1] = t0 + rr[0], t0 + rr[-1] + 1
                boxes[i, 2], boxes[i, 3] = l0 + cc[0], l0 + cc[-1] + 1
    return out, boxes
