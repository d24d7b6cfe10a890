"""GradCAM at initialization: the theorem of the theory chapter, its proof in sympy, and checks.

The model (book/paper.md, "The theory model"; :class:`helpers.models.TheoryCNN`): a one-channel
29x29 image ``x``; ``V`` convolution filters ``w_v`` of size 2x2, no bias, i.i.d.
``N(0, sigma_w^2)`` entries; ReLU, giving maps ``A_v`` of 28x28 (the GradCAM target layer);
2x2 max-pooling to 14x14; one dense layer, no bias, i.i.d. ``N(0, sigma_W^2)`` weights, except
that every weight reading one of the lower ``hidden_rows`` (7) of the 14 pooled rows is zero
(the wall).

GradCAM for a class ``c`` at a position ``s`` of the 28x28 map, *before* any min-max scaling:

    GradCAM(s) = ReLU( sum_v alpha_v A_v(s) ),   alpha_v = (1/784) sum_s' dy_c / dA_v(s').

**Theorem (the book's own; the paper's exact statement is not available to us).** For a fixed
class ``c`` and every position ``s``, with ``p(s)`` the 2x2 input patch under ``s``,

    E[GradCAM(s)] = tau * sigma_w * ||p(s)|| * E[chi_K] / sqrt(2 pi),   K ~ Binomial(V, 1/2),
    tau^2 = sigma_W^2 * (number of visible pooling windows) / 784^2   (= sigma_W^2 / 6272 here),

where ``chi_K`` is a chi variable with ``K`` degrees of freedom (``chi_0 = 0``). Hence the
expected GradCAM is strictly positive wherever the patch is not zero, and it depends on the
patch only through its norm: it is the same above and below the wall, although the network's
output provably does not depend on input rows 15..28. For large ``V``:
``E[GradCAM(s)] ~ tau sigma_w ||p(s)|| sqrt(V) / (2 sqrt(pi)) * (1 - 5/(8V) - 23/(128 V^2) + ...)``.

Proof in five steps, each a function below that returns a sympy result:

1. :func:`relu_gaussian_moment` -- ``E[ReLU(X)] = s/sqrt(2 pi)`` for ``X ~ N(0, s^2)``;
2. :func:`channel_weight_variance` -- ``alpha_v`` is a sum of masked dense weights (the max-pool
   routes one gradient per window, wherever it goes), hence centred Gaussian with variance
   ``tau^2``, independent of the convolution weights, independent across ``v``;
3. :func:`conditional_gradcam_mean` -- given the convolution weights, ``sum_v alpha_v A_v(s)``
   is ``N(0, tau^2 ||A(s)||^2)``, so ``E[GradCAM(s) | w] = tau ||A(s)|| / sqrt(2 pi)``;
4. :func:`chi_mean` and :func:`chi_binomial_mean` -- ``||A(s)|| = sigma_w ||p(s)|| chi_K``:
   each ``ReLU(<w_v, p>)^2`` is 0 (probability 1/2) or a squared standard Gaussian;
5. :func:`expected_gradcam_symbolic` and :func:`chi_binomial_asymptotics`.

Numbers: :func:`expected_gradcam` (the closed form on an image), :func:`expected_chi_binomial`
(exact, stable), :func:`monte_carlo_gradcam` (the real :class:`~helpers.models.TheoryCNN`, autograd
GradCAM, raw scores), :func:`raw_gradcam` (one model, hooks), :func:`digits_29` (handwritten
digits as 29x29 images), :func:`theory_unseen_rows` (the hidden half, by receptive fields).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import itertools
import math
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import sympy as sp
import torch
import torch.nn.functional as F
from scipy.special import gammaln
from scipy.stats import binom
from torch import nn

from .config import cache_dir, ensure_dir, progress
from .models import TheoryCNN
from .receptive_field import input_rows_reaching

__all__ = [
    "INPUT_SIZE",
    "MAP_SIZE",
    "POOLED_SIZE",
    "HIDDEN_ROWS",
    "SYMBOLS",
    # geometry
    "visible_pooled_rows",
    "hidden_map_rows",
    "theory_unseen_rows",
    # sympy: the proof
    "relu_gaussian_moment",
    "relu_gaussian_mean",
    "chi_pdf",
    "chi_mean",
    "channel_weight_sum",
    "channel_weight_variance",
    "gaussian_sum_mgf",
    "conditional_gradcam_mean",
    "chi_binomial_mean",
    "expected_gradcam_symbolic",
    "chi_binomial_asymptotics",
    "expected_gradcam_asymptotics",
    # numbers
    "gradcam_tau",
    "patch_norms",
    "positions_on_both_sides",
    "expected_chi_binomial",
    "expected_chi_binomial_asymptotic",
    "expected_gradcam",
    # torch
    "gradcam_parts",
    "raw_gradcam",
    "predicted_channel_weights",
    "monte_carlo_gradcam",
    # data
    "pad_to_29",
    "digits_29",
    "MNIST_TEST_SHA256",
]

#: Side of the theory model's input image, of its 28x28 ReLU maps (the GradCAM target layer)
#: and of the pooled 14x14 maps the dense layer reads.
INPUT_SIZE, MAP_SIZE, POOLED_SIZE = 29, 28, 14
#: Pooled rows behind the wall (the lower half of 14).
HIDDEN_ROWS = 7

# --------------------------------------------------------------------------------------------
# Symbols shared by the derivations (so that a notebook and the tests speak of the same ones)
# --------------------------------------------------------------------------------------------

SYMBOLS = SimpleNamespace(
    x=sp.Symbol("x", real=True),
    z=sp.Symbol("z", real=True),
    t=sp.Symbol("t", real=True),
    r=sp.Symbol("r", positive=True),
    s=sp.Symbol("s", positive=True),  # a standard deviation
    k=sp.Symbol("k", positive=True),  # degrees of freedom
    V=sp.Symbol("V", positive=True, integer=True),  # number of filters
    N=sp.Symbol("N", positive=True, integer=True),  # positions of the target map (28*28)
    M=sp.Symbol("M", positive=True, integer=True),  # visible pooling windows (7*14)
    a=sp.Symbol("a", nonnegative=True),
    tau=sp.Symbol("tau", positive=True),
    sigma_w=sp.Symbol("sigma_w", positive=True),
    sigma_W=sp.Symbol("sigma_W", positive=True),
    p=sp.Symbol(r"\|p\|", positive=True),  # norm of the input patch under a position
    A=sp.Symbol(r"\|A\|", nonnegative=True),  # norm of the activation vector (A_v(s))_v
)
"""The sympy symbols used by every derivation of this module (``SYMBOLS.s``, ``SYMBOLS.V`` ...)."""


def _gaussian_pdf(var: sp.Symbol, std: sp.Expr) -> sp.Expr:
    return sp.exp(-var**2 / (2 * std**2)) / (std * sp.sqrt(2 * sp.pi))


# --------------------------------------------------------------------------------------------
# Geometry: which rows are behind the wall
# --------------------------------------------------------------------------------------------

def _check_theory_model(model: nn.Module) -> None:
    if not isinstance(model, TheoryCNN):
        raise TypeError(f"expected a helpers.models.TheoryCNN, got {type(model).__name__}.")


def visible_pooled_rows(model: TheoryCNN) -> np.ndarray:
    """Rows of the 14x14 pooled map that the dense layer reads (any unmasked weight): 0..6."""
    _check_theory_model(model)
    mask = model.dense.mask.view(model.filters, POOLED_SIZE, POOLED_SIZE)
    return np.flatnonzero((mask != 0).any(dim=(0, 2)).cpu().numpy())


def hidden_map_rows(model: TheoryCNN) -> np.ndarray:
    """Rows of the 28x28 GradCAM map (the ReLU output) that no visible pooled row reads: 14..27.

    Receptive-field arithmetic through the 2x2 max-pool (pooled row ``i`` reads map rows ``2i``
    and ``2i+1``).
    """
    seen = input_rows_reaching([model.pool], visible_pooled_rows(model), image_size=MAP_SIZE)
    return np.setdiff1d(np.arange(MAP_SIZE), seen)


def theory_unseen_rows(model: TheoryCNN | None = None, hidden_rows: int = HIDDEN_ROWS) -> np.ndarray:
    """The input rows (0-indexed, of 29) that the model's output cannot depend on: 15..28.

    Structural: the visible pooled rows (0..6) are pushed back through the 2x2 max-pool (map
    rows 0..13) and the 2x2 convolution (map row ``r`` reads input rows ``r`` and ``r+1``:
    input rows 0..14). The other 14 rows are unseen. ``model=None`` builds a small
    :class:`TheoryCNN` with ``hidden_rows`` to read its geometry.
    """
    if model is None:
        if not isinstance(hidden_rows, (int, np.integer)) or not 0 <= hidden_rows <= POOLED_SIZE:
            raise ValueError(f"hidden_rows must be an integer in 0..{POOLED_SIZE}, got {hidden_rows!r}.")
        model = TheoryCNN(filters=1, num_classes=1, hidden_rows=int(hidden_rows),
                          generator=torch.Generator().manual_seed(0))
    _check_theory_model(model)
    seen = input_rows_reaching([model.conv, model.relu, model.pool], visible_pooled_rows(model),
                               image_size=INPUT_SIZE)
    return np.setdiff1d(np.arange(INPUT_SIZE), seen)


# --------------------------------------------------------------------------------------------
# Step 1: the mean of a rectified Gaussian
# --------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=16)
def relu_gaussian_moment(order: int = 1) -> sp.Eq:
    """``E[ReLU(X)^order]`` for ``X ~ N(0, s^2)``, by integration (``s = SYMBOLS.s``).

    Returns ``Eq(Integral(x^order * pdf(x), (x, 0, oo)), value)``: the ReLU kills the negative
    half line. ``order=1`` gives ``s/sqrt(2 pi)``; ``order=2`` gives ``s^2/2``.
    """
    if not isinstance(order, (int, np.integer)) or order < 0:
        raise ValueError(f"order must be a non-negative integer, got {order!r}.")
    x, s = SYMBOLS.x, SYMBOLS.s
    if order == 0:  # ReLU(X)^0 = 1 everywhere (0^0 = 1): the density integrates to one
        density = _gaussian_pdf(x, s)
        return sp.Eq(sp.Integral(density, (x, -sp.oo, sp.oo)), sp.integrate(density, (x, -sp.oo, sp.oo)))
    integrand = x**int(order) * _gaussian_pdf(x, s)
    value = sp.simplify(sp.integrate(integrand, (x, 0, sp.oo)))
    return sp.Eq(sp.Integral(integrand, (x, 0, sp.oo)), value)


def relu_gaussian_mean() -> sp.Eq:
    """Step 1 of the proof: ``E[ReLU(X)] = s / sqrt(2 pi)`` for ``X ~ N(0, s^2)`` (sympy)."""
    return relu_gaussian_moment(1)


# --------------------------------------------------------------------------------------------
# The chi distribution
# --------------------------------------------------------------------------------------------

def chi_pdf(r: sp.Expr | None = None, k: sp.Expr | None = None) -> sp.Expr:
    """Density of the chi distribution with ``k`` degrees of freedom (the norm of a standard
    Gaussian vector of ``R^k``): ``r^(k-1) exp(-r^2/2) / (2^(k/2-1) Gamma(k/2))`` on ``r > 0``."""
    r = SYMBOLS.r if r is None else r
    k = SYMBOLS.k if k is None else k
    return r**(k - 1) * sp.exp(-r**2 / 2) / (2**(k / 2 - 1) * sp.gamma(k / 2))


@functools.lru_cache(maxsize=1)
def chi_mean() -> sp.Eq:
    """``E[chi_k] = sqrt(2) Gamma((k+1)/2) / Gamma(k/2)``, by integrating ``r`` against
    :func:`chi_pdf` (``k = SYMBOLS.k > 0``). Returns ``Eq(Integral, value)``."""
    r, k = SYMBOLS.r, SYMBOLS.k
    integrand = r * chi_pdf(r, k)
    value = sp.simplify(sp.integrate(integrand, (r, 0, sp.oo), conds="none"))
    return sp.Eq(sp.Integral(integrand, (r, 0, sp.oo)), value)


# --------------------------------------------------------------------------------------------
# Step 2: the GradCAM channel weights
# --------------------------------------------------------------------------------------------

def channel_weight_sum(pool_windows: int = 1, pool: int = 2) -> sp.Eq:
    """Why routing does not matter: ``sum_s dy/dA_v(s)`` over the positions of pooling windows.

    For one channel ``v`` and ``pool_windows`` windows of ``pool x pool`` positions, the max-pool
    sends the gradient ``W_w`` of window ``w`` to exactly one position of the window, the one
    chosen by the forward pass (``routing``, any function of the activations). Symbolically,
    with indicator ``[s = route(w)]``,

        sum_s dy/dA_v(s) = sum_w W_w * sum_{s in w} [s = route(w)] = sum_w W_w,

    whatever the routing. The function builds this sum with sympy for every possible routing
    of ``pool_windows`` windows and returns ``Eq(Sum(g_j), W_1 + ... )`` once it has checked
    that every routing gives the same sum (``g_j`` is the gradient at position ``j`` of the
    ``pool_windows * pool**2`` positions).
    """
    if not isinstance(pool_windows, (int, np.integer)) or not 1 <= pool_windows <= 4:
        raise ValueError(f"pool_windows must be an integer in 1..4 (4^n routings are enumerated), got {pool_windows!r}.")
    size = pool * pool
    weights = sp.symbols(f"W_1:{pool_windows + 1}", real=True)
    target = sp.Add(*weights)
    for routing in itertools.product(range(size), repeat=int(pool_windows)):
        # gradient at position j of window w: W_w if the forward pass routed window w to j, else 0
        grads = [weights[w] * (1 if routing[w] == j else 0) for w in range(pool_windows) for j in range(size)]
        if sp.simplify(sp.Add(*grads) - target) != 0:  # pragma: no cover - cannot happen
            raise AssertionError(f"routing {routing} changes the sum of the gradients")
    j = sp.Symbol("j", integer=True, positive=True)
    lhs = sp.Sum(sp.Indexed(sp.IndexedBase("g"), j), (j, 1, int(pool_windows) * size))
    return sp.Eq(lhs, target)


def channel_weight_variance(hidden_rows: int | None = None, map_size: int = MAP_SIZE,
                            pool: int = 2) -> sp.Eq:
    """Step 2: ``tau^2 = Var(alpha_v) = sigma_W^2 M / N^2``.

    ``alpha_v = (1/N) sum_{visible windows w} W_{c,v,w}`` (see :func:`channel_weight_sum`) with
    ``N = map_size^2`` positions and ``M`` visible windows; the ``W`` are independent
    ``N(0, sigma_W^2)``, so the variance of the sum is the sum of the variances (computed here
    with sympy's ``Sum``). With ``hidden_rows=None`` the result is symbolic in ``M`` and ``N``;
    with a number, ``N = 784`` and ``M = (14 - hidden_rows) * 14`` are substituted (``7`` gives
    ``tau^2 = sigma_W^2 / 6272``).

    ``alpha_v`` depends on the dense weights only: it is independent of the convolution weights,
    hence of every activation ``A_v(s)``, and the ``alpha_v`` of different channels are sums of
    disjoint sets of weights, hence independent.
    """
    N, M, sW = SYMBOLS.N, SYMBOLS.M, SYMBOLS.sigma_W
    w = sp.Symbol("w", integer=True, positive=True)
    tau2 = sp.Sum(sW**2 / N**2, (w, 1, M)).doit()
    lhs = sp.Symbol(r"\tau^2")
    if hidden_rows is None:
        return sp.Eq(lhs, tau2)
    pooled = map_size // pool
    if not isinstance(hidden_rows, (int, np.integer)) or not 0 <= hidden_rows <= pooled:
        raise ValueError(f"hidden_rows must be an integer in 0..{pooled}, got {hidden_rows!r}.")
    return sp.Eq(lhs, tau2.subs({N: map_size**2, M: (pooled - int(hidden_rows)) * pooled}))


# --------------------------------------------------------------------------------------------
# Step 3: conditional Gaussianity
# --------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def gaussian_sum_mgf(n_terms: int = 3) -> sp.Eq:
    """The moment generating function of ``sum_v alpha_v a_v`` for fixed ``a_v >= 0`` and i.i.d.
    ``alpha_v ~ N(0, tau^2)``, computed term by term with sympy for ``n_terms`` terms.

    Each factor ``E[exp(t alpha a)] = exp(tau^2 a^2 t^2 / 2)`` is an integral; the product is
    ``exp(tau^2 t^2 ||a||^2 / 2)``, the MGF of ``N(0, tau^2 ||a||^2)``. Returns
    ``Eq(product of the integrals' values, exp(tau^2 t^2 sum a_v^2 / 2))``.
    """
    if not isinstance(n_terms, (int, np.integer)) or not 1 <= n_terms <= 8:
        raise ValueError(f"n_terms must be an integer in 1..8, got {n_terms!r}.")
    t, tau, a = SYMBOLS.t, SYMBOLS.tau, SYMBOLS.a
    al = sp.Symbol("alpha", real=True)
    one = sp.powsimp(sp.expand(
        sp.integrate(sp.exp(t * al * a) * _gaussian_pdf(al, tau), (al, -sp.oo, sp.oo), conds="none")))
    if not isinstance(one, sp.exp):  # pragma: no cover - another sympy version's form
        one = sp.simplify(one)
    avec = sp.symbols(f"a_1:{n_terms + 1}", nonnegative=True)
    product = sp.powsimp(sp.Mul(*[one.subs(a, ai) for ai in avec]), combine="exp")
    target = sp.exp(tau**2 * t**2 * sp.Add(*[ai**2 for ai in avec]) / 2)
    if sp.expand(product.as_base_exp()[1] - target.as_base_exp()[1]) != 0:  # pragma: no cover
        raise AssertionError(f"unexpected MGF: {product}")
    return sp.Eq(product, target)


def conditional_gradcam_mean() -> sp.Eq:
    """Step 3: ``E[GradCAM(s) | conv weights] = tau ||A(s)|| / sqrt(2 pi)``.

    Given the convolution weights, ``sum_v alpha_v A_v(s) ~ N(0, tau^2 ||A(s)||^2)``
    (:func:`gaussian_sum_mgf`, :func:`channel_weight_variance`); :func:`relu_gaussian_mean` with
    ``s = tau ||A(s)||`` gives the value (``SYMBOLS.A`` is ``||A(s)||``).
    """
    step1 = relu_gaussian_mean()
    lhs = sp.Symbol(r"\mathbb{E}[\mathrm{GradCAM}(s) \mid w]")
    return sp.Eq(lhs, step1.rhs.subs(SYMBOLS.s, SYMBOLS.tau * SYMBOLS.A))


# --------------------------------------------------------------------------------------------
# Step 4: chi with binomial degrees of freedom
# --------------------------------------------------------------------------------------------

def chi_binomial_mean(V: int | sp.Symbol | None = None) -> sp.Eq:
    """``E[chi_K]`` for ``K ~ Binomial(V, 1/2)``: ``sum_{k=1}^V C(V,k) 2^-V E[chi_k]``.

    Why chi: ``A_v(s) = ReLU(<w_v, p(s)>)`` and ``<w_v, p(s)> = sigma_w ||p(s)|| Z_v`` with
    ``Z_v`` i.i.d. standard Gaussian; ``ReLU(Z)^2 = [Z > 0] Z^2`` where the sign is independent
    of ``Z^2`` and positive with probability 1/2. So ``||A(s)||^2 / (sigma_w ||p||)^2`` is a sum
    of ``K ~ Binomial(V, 1/2)`` independent squared standard Gaussians: ``||A(s)|| =
    sigma_w ||p(s)|| chi_K`` (``chi_0 = 0``). With an integer ``V`` the sum is evaluated exactly
    (``V=1`` gives ``1/sqrt(2 pi)``, the mean of ``ReLU(Z)``); with ``None`` it stays symbolic.
    """
    if V is None:
        V = SYMBOLS.V
    elif not isinstance(V, sp.Basic):
        if isinstance(V, bool) or not isinstance(V, (int, np.integer)) or V < 1:
            raise ValueError(f"V (the number of filters) must be an integer >= 1, got {V!r}.")
        V = sp.Integer(int(V))
    k = sp.Symbol("k", integer=True, positive=True)
    term = sp.binomial(V, k) / 2**V * sp.sqrt(2) * sp.gamma((k + 1) / 2) / sp.gamma(k / 2)
    total = sp.Sum(term, (k, 1, V))
    lhs = sp.Symbol(r"\mathbb{E}[\chi_K]")
    if isinstance(V, sp.Integer):
        return sp.Eq(lhs, sp.nsimplify(sp.simplify(total.doit())))
    return sp.Eq(lhs, total)


# --------------------------------------------------------------------------------------------
# Step 5: the closed form and its asymptotics
# --------------------------------------------------------------------------------------------

def expected_gradcam_symbolic() -> sp.Eq:
    """The theorem: ``E[GradCAM(s)] = tau sigma_w ||p(s)|| E[chi_K] / sqrt(2 pi)``.

    Built from step 3 (:func:`conditional_gradcam_mean`) by substituting
    ``||A(s)|| = sigma_w ||p(s)|| chi_K`` and taking the expectation over the convolution
    weights (linear in ``chi_K``). ``E[chi_K]`` appears as the symbol ``\\mathbb{E}[\\chi_K]``.
    """
    chi = sp.Symbol(r"\mathbb{E}[\chi_K]", positive=True)
    step3 = conditional_gradcam_mean().rhs
    rhs = step3.subs(SYMBOLS.A, SYMBOLS.sigma_w * SYMBOLS.p * chi)
    return sp.Eq(sp.Symbol(r"\mathbb{E}[\mathrm{GradCAM}(s)]"), rhs)


def _central_moments_of_sum(cumulants: Sequence[sp.Expr], V: sp.Symbol, degree: int) -> dict[int, sp.Expr]:
    """Central moments 2..degree of a sum of ``V`` i.i.d. variables with the given cumulants
    (``cumulants[j]`` is the ``j``-th cumulant, ``j >= 2``), from the cumulant generating function."""
    u = sp.Symbol("u")
    cgf = sum(V * cumulants[j] * u**j / sp.factorial(j) for j in range(2, degree + 1))
    mgf = sp.series(sp.exp(cgf), u, 0, degree + 1).removeO()
    return {j: sp.expand(mgf.coeff(u, j) * sp.factorial(j)) for j in range(2, degree + 1)}


@functools.lru_cache(maxsize=8)
def chi_binomial_asymptotics(order: int = 2) -> sp.Expr:
    """Large-``V`` expansion of ``E[chi_K] / sqrt(V/2)``, ``K ~ Binomial(V, 1/2)``, up to
    ``V^-order`` included: ``1 - 5/(8V) - 23/(128 V^2) + O(V^-3)``.

    Derivation (delta method): ``chi_K^2 = S = sum_v Y_v`` with ``Y = ReLU(Z)^2``, whose moments
    ``E[Y^j] = E[ReLU(Z)^(2j)]`` come from :func:`relu_gaussian_moment`; the cumulants of ``S``
    are ``V`` times those of ``Y``. Expanding ``sqrt(V/2 + e)`` in ``e = S - V/2`` to degree
    ``2*order`` and taking expectations gives every term of relative order up to ``V^-order``
    of the asymptotic expansion (the central moment of degree ``j`` of ``S`` grows like
    ``V^floor(j/2)``, so degree ``j`` contributes from ``V^-ceil(j/2)`` on; ``S`` is near 0 only
    with probability ``2^-V``). The tests confirm the coefficients against the exact sum.
    Returns a polynomial in ``1/V`` (no ``O`` term).
    """
    if not isinstance(order, (int, np.integer)) or not 0 <= order <= 4:
        raise ValueError(f"order must be an integer in 0..4, got {order!r}.")
    order = int(order)
    V = SYMBOLS.V
    degree = 2 * order
    s = SYMBOLS.s
    # raw moments E[Y^j] = E[ReLU(Z)^(2j)] for a standard Gaussian Z
    raw = [sp.Integer(1)] + [relu_gaussian_moment(2 * j).rhs.subs(s, 1) for j in range(1, max(degree, 1) + 1)]
    mean_y = raw[1]
    # cumulants of Y from its raw moments (via the log of the MGF)
    u = sp.Symbol("u")
    mgf = sum(raw[j] * u**j / sp.factorial(j) for j in range(0, max(degree, 1) + 1))
    log_mgf = sp.series(sp.log(mgf), u, 0, max(degree, 1) + 1).removeO()
    cumulants = {j: sp.simplify(log_mgf.coeff(u, j) * sp.factorial(j)) for j in range(1, max(degree, 1) + 1)}
    if sp.simplify(cumulants[1] - mean_y) != 0:  # pragma: no cover - consistency of the algebra
        raise AssertionError("first cumulant is not the mean")
    if order == 0:
        return sp.Integer(1)
    central = _central_moments_of_sum(cumulants, V, degree)
    mu = V * mean_y
    e = sp.Symbol("epsilon")
    taylor = sp.series(sp.sqrt(mu + e), e, 0, degree + 1).removeO()
    expectation = taylor.coeff(e, 0) + sum(taylor.coeff(e, j) * central[j] for j in range(2, degree + 1))
    ratio = sp.expand(sp.simplify(expectation / sp.sqrt(mu)))
    series = sp.series(ratio, V, sp.oo, order + 1).removeO()
    return sp.expand(series)


def expected_gradcam_asymptotics(order: int = 1) -> sp.Eq:
    """``E[GradCAM(s)]`` for large ``V``: ``tau sigma_w ||p|| sqrt(V) / (2 sqrt(pi))`` times
    :func:`chi_binomial_asymptotics` (``order=1``: ``1 - 5/(8V)``)."""
    closed = expected_gradcam_symbolic().rhs
    chi = sp.Symbol(r"\mathbb{E}[\chi_K]", positive=True)
    V = SYMBOLS.V
    leading = SYMBOLS.tau * SYMBOLS.sigma_w * SYMBOLS.p * sp.sqrt(V) / (2 * sp.sqrt(sp.pi))
    if sp.simplify(closed.subs(chi, sp.sqrt(V / 2)) - leading) != 0:  # pragma: no cover
        raise AssertionError("the leading term does not follow from the closed form")
    return sp.Eq(sp.Symbol(r"\mathbb{E}[\mathrm{GradCAM}(s)]"), sp.Mul(leading, chi_binomial_asymptotics(order)))


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------

def _check_filters(filters) -> int:
    if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
        raise ValueError(f"the number of filters V must be an integer >= 1, got {filters!r}.")
    return int(filters)


def _check_hidden_rows(hidden_rows) -> int:
    if isinstance(hidden_rows, bool) or not isinstance(hidden_rows, (int, np.integer)) \
            or not 0 <= hidden_rows <= POOLED_SIZE:
        raise ValueError(f"hidden_rows must be an integer in 0..{POOLED_SIZE}, got {hidden_rows!r}.")
    return int(hidden_rows)


def gradcam_tau(hidden_rows: int = HIDDEN_ROWS, sigma_W: float = 1.0) -> float:
    """Standard deviation of a GradCAM channel weight: ``sigma_W sqrt(M) / 784`` with
    ``M = (14 - hidden_rows) * 14`` visible pooling windows (``sigma_W / sqrt(6272)``, about
    ``0.01263 sigma_W``, for the book's model)."""
    hidden_rows = _check_hidden_rows(hidden_rows)
    if not sigma_W > 0:
        raise ValueError(f"sigma_W must be positive, got {sigma_W!r}.")
    visible_windows = (POOLED_SIZE - hidden_rows) * POOLED_SIZE
    return float(sigma_W) * math.sqrt(visible_windows) / MAP_SIZE**2


def _as_image(image) -> torch.Tensor:
    """A ``(1, 1, 29, 29)`` float32 tensor from an image of shape (29, 29), (1, 29, 29) or (1, 1, 29, 29)."""
    if isinstance(image, np.ndarray):
        t = torch.from_numpy(np.asarray(image, dtype=np.float32))
    elif isinstance(image, torch.Tensor):
        t = image.detach().to("cpu", torch.float32)
    else:
        raise TypeError(f"expected a numpy array or a torch tensor, got {type(image).__name__}.")
    shape = tuple(t.shape)
    if shape not in ((INPUT_SIZE, INPUT_SIZE), (1, INPUT_SIZE, INPUT_SIZE), (1, 1, INPUT_SIZE, INPUT_SIZE)):
        hint = (" Pad a 28x28 MNIST-sized digit with helpers.theory.pad_to_29 (one row on top, one "
                "column on the right)." if shape[-2:] == (28, 28) else "")
        raise ValueError(f"expected one 29x29 image (shape (29, 29), (1, 29, 29) or (1, 1, 29, 29)), "
                         f"got shape {shape}.{hint}")
    if not torch.isfinite(t).all():
        raise ValueError("the image contains NaN or infinite values.")
    return t.reshape(1, 1, INPUT_SIZE, INPUT_SIZE)


def patch_norms(image) -> np.ndarray:
    """``||p(s)||``: the Euclidean norm of the 2x2 input patch under each position ``s`` of the
    28x28 map (map position ``(i, j)`` reads input rows ``i, i+1`` and columns ``j, j+1``).
    Shape ``(28, 28)``, float64."""
    x = _as_image(image).double()
    return torch.sqrt(F.avg_pool2d(x**2, kernel_size=2, stride=1) * 4)[0, 0].numpy()


def positions_on_both_sides(image, per_side: int = 2) -> list[tuple[int, int, str]]:
    """Positions of the 28x28 map to tabulate, ``per_side`` in front of the wall (map rows
    0..13, read by the dense layer) and ``per_side`` behind it (rows 14..27): on each side the
    position with the largest patch norm, then positions at evenly spaced quantiles of the
    non-zero patch norms (the median for ``per_side=2``). Returns ``(row, col, side)`` with
    ``side`` in ``{"front", "behind"}``; a side without any lit patch contributes nothing.
    """
    if isinstance(per_side, bool) or not isinstance(per_side, (int, np.integer)) or per_side < 1:
        raise ValueError(f"per_side must be a positive integer, got {per_side!r}.")
    norms = patch_norms(image)
    half = MAP_SIZE // 2
    out: list[tuple[int, int, str]] = []
    for side, rows in (("front", range(0, half)), ("behind", range(half, MAP_SIZE))):
        cand = [(norms[r, c], r, c) for r in rows for c in range(MAP_SIZE) if norms[r, c] > 0]
        cand.sort(key=lambda t: (-t[0], t[1], t[2]))
        if not cand:
            continue
        picks = [0] + [int(round(q * (len(cand) - 1))) for q in np.linspace(0.5, 0.9, per_side - 1)] \
            if per_side > 1 else [0]
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
    V = _check_filters(V)
    k = np.arange(1, V + 1, dtype=np.float64)
    log_terms = binom.logpmf(k, V, 0.5) + 0.5 * math.log(2.0) + gammaln((k + 1) / 2) - gammaln(k / 2)
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


def expected_gradcam(image, filters: int = 256, hidden_rows: int = HIDDEN_ROWS, sigma_w: float = 1.0,
                     sigma_W: float = 1.0) -> np.ndarray:
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
    filters = _check_filters(filters)
    if not sigma_w > 0:
        raise ValueError(f"sigma_w must be positive, got {sigma_w!r}.")
    tau = gradcam_tau(hidden_rows, sigma_W)
    return tau * float(sigma_w) * patch_norms(image) * expected_chi_binomial(filters) / math.sqrt(2 * math.pi)


# --------------------------------------------------------------------------------------------
# GradCAM on one model, by autograd
# --------------------------------------------------------------------------------------------

def gradcam_parts(model: nn.Module, x: torch.Tensor, class_index: int | Sequence[int] | None = None
                  ) -> dict[str, torch.Tensor]:
    """Everything GradCAM computes, with hooks on ``model.target_layer`` (as pytorch-grad-cam).

    Args:
        model: a network with a ``target_layer`` attribute whose output is ``(N, V, H, W)``
            (:class:`TheoryCNN`: the ReLU, 28x28; rVGG: the last ReLU, 14x14).
        x: a batch the model accepts (``(N, 1, 29, 29)`` for :class:`TheoryCNN`).
        class_index: the class explained: ``None`` (each image's top class, as
            pytorch-grad-cam with ``targets=None``), one ``int`` for every image, or one per image.

    Returns:
        ``logits (N, C)``, ``class_index (N,)``, ``activations (N, V, H, W)``,
        ``gradients (N, V, H, W)`` (of the chosen logit w.r.t. the activations),
        ``weights (N, V)`` (``alpha``: gradients averaged over positions), ``cam (N, H, W)``
        (``ReLU(sum_v alpha_v A_v)``, raw, unscaled). All detached.
    """
    if not hasattr(model, "target_layer"):
        raise ValueError(f"{type(model).__name__} has no target_layer attribute; GradCAM needs the layer to explain.")
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"expected a batch of images (N, C, H, W), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}.")
    store: dict[str, torch.Tensor] = {}
    handle = model.target_layer.register_forward_hook(lambda module, inputs, output: store.__setitem__("A", output))
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # so that the target layer's output is in the graph
            logits = model(x)
            n, num_classes = logits.shape
            if class_index is None:
                chosen = logits.detach().argmax(dim=1).cpu()
            elif isinstance(class_index, (int, np.integer)) and not isinstance(class_index, bool):
                chosen = torch.full((n,), int(class_index), dtype=torch.long)
            else:
                chosen = torch.as_tensor(list(class_index), dtype=torch.long)
                if chosen.shape != (n,):
                    raise ValueError(f"class_index has {chosen.numel()} entries for a batch of {n}.")
            if (chosen < 0).any() or (chosen >= num_classes).any():
                raise ValueError(f"class_index must be in 0..{num_classes - 1}, got {chosen.tolist()}.")
            acts = store["A"]
            if acts.dim() != 4:
                raise ValueError(f"the target layer's output has shape {tuple(acts.shape)}; expected (N, V, H, W).")
            # the gradient of the chosen logits w.r.t. the activations (no parameter .grad is touched)
            (grads,) = torch.autograd.grad(logits.gather(1, chosen.view(-1, 1).to(logits.device)).sum(), acts)
    finally:
        handle.remove()
        model.train(was_training)
    acts, grads = acts.detach(), grads.detach()
    weights = grads.mean(dim=(2, 3))
    cam = torch.relu((weights[:, :, None, None] * acts).sum(dim=1))
    return {"logits": logits.detach(), "class_index": chosen, "activations": acts, "gradients": grads,
            "weights": weights, "cam": cam}


def raw_gradcam(model: nn.Module, x: torch.Tensor, class_index: int | Sequence[int] | None = None) -> torch.Tensor:
    """Raw GradCAM ``ReLU(sum_v alpha_v A_v)`` at ``model.target_layer``, before any min-max
    scaling or resizing: ``(N, H, W)`` (28x28 for :class:`TheoryCNN`). See :func:`gradcam_parts`."""
    return gradcam_parts(model, x, class_index)["cam"]


def predicted_channel_weights(model: TheoryCNN, class_index: int) -> torch.Tensor:
    """Step 2 as a formula: ``alpha_v = (1/784) sum_{visible windows} W_{c,v,window}``, shape ``(V,)``.

    Read from the dense weights only (no image, no convolution weights): :func:`gradcam_parts`
    must give the same weights for any input, which the tests check.
    """
    _check_theory_model(model)
    if not isinstance(class_index, (int, np.integer)) or not 0 <= class_index < model.num_classes:
        raise ValueError(f"class_index must be an integer in 0..{model.num_classes - 1}, got {class_index!r}.")
    w = model.dense.effective_weight.detach()[int(class_index)].view(model.filters, POOLED_SIZE, POOLED_SIZE)
    return w.sum(dim=(1, 2)) / MAP_SIZE**2


# --------------------------------------------------------------------------------------------
# Monte Carlo over random models
# --------------------------------------------------------------------------------------------

def _grouped_gradcam(big: TheoryCNN, x: torch.Tensor, groups: int, target: str,
                     class_index: int | None, mirror: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Raw GradCAM of ``groups`` independent models packed into one :class:`TheoryCNN`.

    ``big`` has ``groups * V`` filters. Sub-model ``b`` is the :class:`TheoryCNN` made of filters
    ``b*V .. (b+1)*V - 1`` and of the dense weights that read them (a contiguous block of the
    flattened features). Each logit of the big model is the sum of the sub-models' logits, and
    each of those depends on its own channels only; so the big model's gradient on the channels
    of sub-model ``b`` *is* sub-model ``b``'s gradient, computed by autograd through the real
    layers (max-pool routing included).

    Returns ``(cams, top)``: ``cams (groups, 28, 28)`` is, per sub-model, the raw GradCAM for the
    target, averaged over the classes used (``class_index=None``) and over the model and its
    mirror twin (``mirror=True``: dense weights negated, whose raw GradCAM is
    ``ReLU(-sum_v alpha_v A_v)`` because logits and gradients are linear in the dense weights);
    ``top (groups,)`` is each sub-model's top class (``None`` for the fixed target).
    """
    V = big.filters // groups
    store: dict[str, torch.Tensor] = {}
    h1 = big.target_layer.register_forward_hook(lambda m, i, o: store.__setitem__("A", o))
    h2 = big.dense.register_forward_hook(lambda m, i, o: store.__setitem__("features", i[0]))
    try:
        with torch.enable_grad():
            logits = big(x.detach().clone().requires_grad_(True))  # (1, C)
    finally:
        h1.remove()
        h2.remove()
    acts = store["A"]  # (1, groups*V, 28, 28), in the autograd graph
    num_classes = logits.shape[1]
    classes = [int(class_index)] if (target == "fixed" and class_index is not None) else list(range(num_classes))
    alphas = []
    for j, c in enumerate(classes):
        (grad,) = torch.autograd.grad(logits[0, c], acts, retain_graph=j < len(classes) - 1)
        alphas.append(grad.mean(dim=(2, 3)).view(groups, V))
    alpha = torch.stack(alphas, dim=1)  # (groups, classes, V)
    pre = torch.bmm(alpha, acts.detach().view(groups, V, MAP_SIZE * MAP_SIZE))  # sum_v alpha_v A_v
    if target == "fixed":
        # with the twin: (ReLU(pre) + ReLU(-pre)) / 2 = |pre| / 2
        cam = 0.5 * pre.abs() if mirror else torch.relu(pre)
        cam = cam.mean(dim=1) if cam.shape[1] > 1 else cam[:, 0]
        return cam.view(groups, MAP_SIZE, MAP_SIZE), None
    # top class: each sub-model's own logits (the dense layer restricted to its block of features)
    feats = store["features"].detach().view(groups, -1)
    weight = big.dense.effective_weight.detach().view(num_classes, groups, -1)
    sub_logits = torch.einsum("gf,cgf->gc", feats, weight)  # (groups, C)
    scale = float(logits.detach().abs().max()) + 1e-12
    if not torch.allclose(sub_logits.sum(0), logits.detach()[0], rtol=1e-4, atol=1e-4 * scale):
        raise RuntimeError("the sub-models' logits do not add up to the packed model's logits.")
    rows = torch.arange(groups)
    top = sub_logits.argmax(1)
    cam = torch.relu(pre[rows, top])
    if mirror:  # the twin's logits are -logits: its top class is our bottom class
        cam = 0.5 * (cam + torch.relu(-pre[rows, sub_logits.argmin(1)]))
    return cam.view(groups, MAP_SIZE, MAP_SIZE), top


def monte_carlo_gradcam(image, filters: int, n_models: int, target: str = "fixed",
                        class_index: int | None = 0, seed: int = 0, batch: int | None = None,
                        num_classes: int = 10, hidden_rows: int = HIDDEN_ROWS, sigma_w: float = 1.0,
                        sigma_W: float = 1.0, mirror: bool = False) -> dict:
    """Monte Carlo of the raw GradCAM of random :class:`TheoryCNN` models on one image.

    Each model has fresh i.i.d. Gaussian weights (``N(0, sigma_w^2)`` convolution,
    ``N(0, sigma_W^2)`` dense, zero behind the wall); its GradCAM is taken by autograd at the
    ReLU (the target layer, 28x28), raw (no min-max scaling). For speed, ``batch`` models are
    packed into one :class:`TheoryCNN` with ``batch * V`` filters and evaluated by one forward
    pass and one backward pass per class; the packing is exact (see :func:`_grouped_gradcam`,
    and the tests, which compare with :func:`raw_gradcam` on each model built separately).

    Args:
        image: one 29x29 image (see :func:`expected_gradcam`).
        filters: ``V``, filters per model.
        n_models: number of independent models (>= 2).
        target: ``"fixed"`` (the class ``class_index``) or ``"top"`` (each model's top-scoring
            class, what pytorch-grad-cam does with ``targets=None``).
        class_index: for ``"fixed"``: the class (``0 <= class_index < num_classes``), or ``None``
            to average, for each model, the GradCAMs of all its classes (each one is a
            fixed-class GradCAM with the same expectation; this lowers the variance).
        seed: seed of the weights (results depend on ``seed`` and ``batch``).
        batch: models per packed forward pass (default: about 4096 filters per pass).
        num_classes, hidden_rows, sigma_w, sigma_W: the models' construction.
        mirror: also use each model's mirror twin (dense weights negated, an equally likely
            draw): an antithetic pair whose raw GradCAM needs no new backward pass.

    Returns:
        dict with ``mean`` and ``sem`` (``(28, 28)`` float64: the Monte Carlo mean and its
        standard error, over models), ``sides`` (``{"front": (mean, sem), "behind": (mean,
        sem)}``: the raw GradCAM summed over map rows 0..13, in front of the wall, and over rows
        14..27, behind it, per model, then averaged), ``n_models``, ``filters``, ``target``, ``class_index``,
        ``mirror``, ``seconds``, and ``class_counts`` (top target: how often each class won).
    """
    filters = _check_filters(filters)
    if isinstance(n_models, bool) or not isinstance(n_models, (int, np.integer)) or n_models < 2:
        raise ValueError(f"n_models must be an integer >= 2 (a standard error needs two models), got {n_models!r}.")
    if target not in ("fixed", "top"):
        raise ValueError(f"target must be 'fixed' or 'top', got {target!r}.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
    if target == "fixed" and class_index is not None and (
            isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer))
            or not 0 <= class_index < num_classes):
        raise ValueError(f"class_index must be None or an integer in 0..{num_classes - 1}, got {class_index!r}.")
    hidden_rows = _check_hidden_rows(hidden_rows)
    if not (sigma_w > 0 and sigma_W > 0):
        raise ValueError(f"sigma_w and sigma_W must be positive, got {sigma_w!r}, {sigma_W!r}.")
    if batch is None:
        batch = max(1, 4096 // filters)
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}.")
    x = _as_image(image)
    n_models, batch = int(n_models), int(min(batch, n_models))
    rng = np.random.default_rng(int(seed))  # numpy's ziggurat sampler: a few times faster than torch's
    visible = POOLED_SIZE - hidden_rows
    total = torch.zeros(MAP_SIZE, MAP_SIZE, dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    side_total = torch.zeros(2, dtype=torch.float64)  # per model: sum over map rows 0..13, 14..27
    side_total_sq = torch.zeros_like(side_total)
    counts = torch.zeros(num_classes, dtype=torch.long)
    packed: dict[int, TheoryCNN] = {}
    start = time.perf_counter()
    done = 0
    bar = progress(total=n_models, desc=f"GradCAM Monte Carlo, V={filters}", leave=False)
    try:
        while done < n_models:
            groups = min(batch, n_models - done)
            if groups not in packed:
                big = TheoryCNN(filters=groups * filters, num_classes=num_classes, hidden_rows=hidden_rows,
                                generator=torch.Generator().manual_seed(0)).eval()
                for param in big.parameters():
                    param.requires_grad_(False)
                packed = {groups: big}
            big = packed[groups]
            with torch.no_grad():  # fresh weights; the dense weights behind the wall stay zero
                big.conv.weight.copy_(torch.from_numpy(
                    rng.standard_normal(tuple(big.conv.weight.shape), dtype=np.float32)).mul_(float(sigma_w)))
                dense = big.dense.weight.view(num_classes, groups * filters, POOLED_SIZE, POOLED_SIZE)
                dense[:, :, :visible, :].copy_(torch.from_numpy(rng.standard_normal(
                    (num_classes, groups * filters, visible, POOLED_SIZE), dtype=np.float32)).mul_(float(sigma_W)))
            cams, top = _grouped_gradcam(big, x, groups, target, class_index, mirror)
            total += cams.sum(dim=0, dtype=torch.float64)
            total_sq += (cams * cams).sum(dim=0, dtype=torch.float64)
            sides = cams.view(groups, 2, -1).sum(dim=2, dtype=torch.float64)  # (groups, 2)
            side_total += sides.sum(dim=0)
            side_total_sq += (sides * sides).sum(dim=0)
            if top is not None:
                counts += torch.bincount(top, minlength=num_classes)
            done += groups
            bar.update(groups)
    finally:
        bar.close()
    mean = total / n_models
    var = torch.clamp(total_sq - n_models * mean**2, min=0.0) / (n_models - 1)
    side_mean = side_total / n_models
    side_var = torch.clamp(side_total_sq - n_models * side_mean**2, min=0.0) / (n_models - 1)
    side_sem = torch.sqrt(side_var / n_models)
    out = {"mean": mean.numpy(), "sem": torch.sqrt(var / n_models).numpy(), "n_models": n_models,
           "sides": {"front": (float(side_mean[0]), float(side_sem[0])),
                     "behind": (float(side_mean[1]), float(side_sem[1]))},
           "filters": filters, "target": target, "class_index": class_index if target == "fixed" else None,
           "mirror": bool(mirror), "seconds": time.perf_counter() - start}
    if target == "top":
        out["class_counts"] = counts.numpy()
    return out


# --------------------------------------------------------------------------------------------
# Digits as 29x29 images
# --------------------------------------------------------------------------------------------

#: SHA-256 of the MNIST test archives (as distributed by LeCun et al. and mirrored by torchvision).
MNIST_TEST_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


def pad_to_29(images: torch.Tensor) -> torch.Tensor:
    """``(..., 28, 28)`` -> ``(..., 29, 29)``: one zero row on top, one zero column on the right
    (as the authors pad MNIST for the theory model)."""
    if not isinstance(images, torch.Tensor) or images.dim() < 2 or tuple(images.shape[-2:]) != (28, 28):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected a tensor of 28x28 images (..., 28, 28), got {shape}.")
    return F.pad(images, (0, 1, 1, 0))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _mnist_test(download: bool, timeout: float) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST's 10,000 test digits ``(10000, 28, 28)`` uint8 and labels, via torchvision, from
    ``cache_dir("data")``; archives present in the raw folder are checked against
    :data:`MNIST_TEST_SHA256`."""
    from torchvision.datasets import MNIST

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
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
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
            found = _sha256(archive)
            if found != expected:
                raise RuntimeError(
                    f"{archive} has SHA-256 {found}, expected {expected}: the file is corrupt or not "
                    "MNIST's. Delete the MNIST folder and download again."
                )
    return dataset.data, dataset.targets


def digits_29(n: int, source: str = "sklearn", seed: int = 0, download: bool = True,
              timeout: float = 20.0) -> tuple[torch.Tensor, torch.Tensor, str]:
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
        raise ValueError(f"source must be 'sklearn', 'mnist' or 'auto', got {source!r}.")
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
        from sklearn.datasets import load_digits

        digits = load_digits()
        small = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]  # (1797, 1, 8, 8)
        images28 = F.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False)[:, 0]
        images28 = images28.clamp(0.0, 1.0)
        targets = torch.from_numpy(digits.target.astype(np.int64))
        used = "sklearn"
    total = images28.shape[0]
    if n > total:
        raise ValueError(f"n={n} digits requested, but the {used} source has {total}.")
    idx = torch.from_numpy(np.random.default_rng(seed).choice(total, size=int(n), replace=False))
    images = pad_to_29(images28[idx]).unsqueeze(1).contiguous()
    return images, targets[idx].to(torch.int64), used
