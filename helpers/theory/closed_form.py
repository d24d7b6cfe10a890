"""The theorem's closed form in numbers: ``E[GradCAM(s)]`` on an image, ``tau``, the patch
norms, and ``E[chi_K]`` (exact, stable, and its large-``V`` approximation)."""

from __future__ import annotations

import functools
import math

import numpy as np
import sympy as sp
import torch
import torch.nn.functional as F
from scipy.special import gammaln
from scipy.stats import binom

from .layout import (
    HIDDEN_ROWS,
    MAP_SIZE,
    POOLED_SIZE,
    as_image,
    check_filters,
    check_hidden_rows,
)
from .symbolic import SYMBOLS, chi_binomial_asymptotics


def gradcam_tau(hidden_rows: int = HIDDEN_ROWS, sigma_W: float = 1.0) -> float:
    """Standard deviation of a GradCAM channel weight: ``sigma_W sqrt(M) / 784`` with
    ``M = (14 - hidden_rows) * 14`` visible pooling windows (``sigma_W / sqrt(6272)``, about
    ``0.01263 sigma_W``, for the book's model)."""
    hidden_rows = check_hidden_rows(hidden_rows)
    if not sigma_W > 0:
        raise ValueError(f"sigma_W must be positive, got {sigma_W!r}.")
    visible_windows = (POOLED_SIZE - hidden_rows) * POOLED_SIZE
    return float(sigma_W) * math.sqrt(visible_windows) / MAP_SIZE**2


def patch_norms(image) -> np.ndarray:
    """``||p(s)||``: the Euclidean norm of the 2x2 input patch under each position ``s`` of the
    28x28 map (map position ``(i, j)`` reads input rows ``i, i+1`` and columns ``j, j+1``).
    Shape ``(28, 28)``, float64."""
    x = as_image(image).double()
    return torch.sqrt(F.avg_pool2d(x**2, kernel_size=2, stride=1) * 4)[0, 0].numpy()


def positions_on_both_sides(image, per_side: int = 2) -> list[tuple[int, int, str]]:
    """Positions of the 28x28 map to tabulate, ``per_side`` in front of the wall (map rows
    0..13, read by the dense layer) and ``per_side`` behind it (rows 14..27): on each side the
    position with the largest patch norm, then positions at evenly spaced quantiles of the
    non-zero patch norms (the median for ``per_side=2``). Returns ``(row, col, side)`` with
    ``side`` in ``{"front", "behind"}``; a side without any lit patch contributes nothing.
    """
    if (
        isinstance(per_side, bool)
        or not isinstance(per_side, (int, np.integer))
        or per_side < 1
    ):
        raise ValueError(f"per_side must be a positive integer, got {per_side!r}.")
    norms = patch_norms(image)
    half = MAP_SIZE // 2
    out: list[tuple[int, int, str]] = []
    for side, rows in (("front", range(0, half)), ("behind", range(half, MAP_SIZE))):
        cand = [
            (norms[r, c], r, c)
            for r in rows
            for c in range(MAP_SIZE)
            if norms[r, c] > 0
        ]
        cand.sort(key=lambda t: (-t[0], t[1], t[2]))
        if not cand:
            continue
        picks = (
            [0]
            + [
                int(round(q * (len(cand) - 1)))
                for q in np.linspace(0.5, 0.9, per_side - 1)
            ]
            if per_side > 1
            else [0]
        )
        seen: set[int] = set()
        for i in picks:
            while i in seen and i + 1 < len(cand):
                i += 1
            if i not in seen:
                seen.add(i)
                out.append((int(cand[i][1]), int(cand[i][2]), side))
    return out


def expected_chi_binomial(V: int) -> float:
    """``E[chi_K]``, ``K ~ Binomial(V, 1/2)``: the exact finite sum, in log space (``gammaln``,
    ``binom.logpmf``) so that it is stable for any ``V`` (``V=1``: ``1/sqrt(2 pi)``)."""
    V = check_filters(V)
    k = np.arange(1, V + 1, dtype=np.float64)
    log_terms = (
        binom.logpmf(k, V, 0.5)
        + 0.5 * math.log(2.0)
        + gammaln((k + 1) / 2)
        - gammaln(k / 2)
    )
    top = log_terms.max()
    return float(np.exp(top) * np.exp(log_terms - top).sum())


@functools.lru_cache(maxsize=8)
def _asymptotic_coefficients(order: int) -> tuple[float, ...]:
    series = chi_binomial_asymptotics(order)
    inv = sp.Symbol("q")
    poly = sp.Poly(sp.expand(series.subs(SYMBOLS.V, 1 / inv)), inv)
    return tuple(float(poly.coeff_monomial(inv**j)) for j in range(order + 1))


def expected_chi_binomial_asymptotic(V: float, order: int = 2) -> float:
    """The large-``V`` approximation ``sqrt(V/2) (1 - 5/(8V) - 23/(128 V^2))`` (``order`` terms
    after the leading one; coefficients from :func:`chi_binomial_asymptotics`)."""
    if not V > 0:
        raise ValueError(f"V must be positive, got {V!r}.")
    coef = _asymptotic_coefficients(int(order))
    return float(math.sqrt(V / 2) * sum(c / V**j for j, c in enumerate(coef)))


def expected_gradcam(
    image,
    filters: int = 256,
    hidden_rows: int = HIDDEN_ROWS,
    sigma_w: float = 1.0,
    sigma_W: float = 1.0,
) -> np.ndarray:
    """The closed form of the theorem on an image: ``E[GradCAM(s)]`` for a fixed class, raw
    scores (no min-max scaling), at every position ``s`` of the 28x28 target map.

    Args:
        image: one 29x29 image (numpy or torch; shape (29, 29), (1, 29, 29) or (1, 1, 29, 29)).
        filters: ``V``, the number of convolution filters (>= 1).
        hidden_rows: pooled rows behind the wall (7 of 14).
        sigma_w, sigma_W: standard deviations of the convolution and dense weights.

    Returns:
        ``(28, 28)`` float64 array ``tau * sigma_w * ||p(s)|| * E[chi_K] / sqrt(2 pi)``.
    """
    filters = check_filters(filters)
    if not sigma_w > 0:
        raise ValueError(f"sigma_w must be positive, got {sigma_w!r}.")
    tau = gradcam_tau(hidden_rows, sigma_W)
    return (
        tau
        * float(sigma_w)
        * patch_norms(image)
        * expected_chi_binomial(filters)
        / math.sqrt(2 * math.pi)
    )
