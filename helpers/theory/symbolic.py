"""GradCAM at initialization: the theorem of the theory chapter and its proof, step by step in sympy.

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

The numbers that check it are in the package's other modules:
:func:`~helpers.theory.closed_form.expected_gradcam` (the closed form on an image),
:func:`~helpers.theory.closed_form.expected_chi_binomial` (exact, stable),
:func:`~helpers.theory.montecarlo.monte_carlo_gradcam` (the real
:class:`~helpers.models.TheoryCNN`, autograd GradCAM, raw scores),
:func:`~helpers.theory.montecarlo.raw_gradcam` (one model, hooks),
:func:`~helpers.theory.digits.digits_29` (handwritten digits as 29x29 images),
:func:`~helpers.theory.layout.theory_unseen_rows` (the hidden half, by receptive fields).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np
import sympy as sp

from .layout import MAP_SIZE


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
    N=sp.Symbol(
        "N", positive=True, integer=True
    ),  # positions of the target map (28*28)
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
    return sp.exp(-(var**2) / (2 * std**2)) / (std * sp.sqrt(2 * sp.pi))


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
        return sp.Eq(
            sp.Integral(density, (x, -sp.oo, sp.oo)),
            sp.integrate(density, (x, -sp.oo, sp.oo)),
        )
    integrand = x ** int(order) * _gaussian_pdf(x, s)
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
    return r ** (k - 1) * sp.exp(-(r**2) / 2) / (2 ** (k / 2 - 1) * sp.gamma(k / 2))


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
        raise ValueError(
            f"pool_windows must be an integer in 1..4 (4^n routings are enumerated), got {pool_windows!r}."
        )
    size = pool * pool
    weights = sp.symbols(f"W_1:{pool_windows + 1}", real=True)
    target = sp.Add(*weights)
    for routing in itertools.product(range(size), repeat=int(pool_windows)):
        # gradient at position j of window w: W_w if the forward pass routed window w to j, else 0
        grads = [
            weights[w] * (1 if routing[w] == j else 0)
            for w in range(pool_windows)
            for j in range(size)
        ]
        if (
            sp.simplify(sp.Add(*grads) - target) != 0
        ):  # pragma: no cover - cannot happen
            raise AssertionError(f"routing {routing} changes the sum of the gradients")
    j = sp.Symbol("j", integer=True, positive=True)
    lhs = sp.Sum(sp.Indexed(sp.IndexedBase("g"), j), (j, 1, int(pool_windows) * size))
    return sp.Eq(lhs, target)


def channel_weight_variance(
    hidden_rows: int | None = None, map_size: int = MAP_SIZE, pool: int = 2
) -> sp.Eq:
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
        raise ValueError(
            f"hidden_rows must be an integer in 0..{pooled}, got {hidden_rows!r}."
        )
    return sp.Eq(
        lhs, tau2.subs({N: map_size**2, M: (pooled - int(hidden_rows)) * pooled})
    )


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
    one = sp.powsimp(
        sp.expand(
            sp.integrate(
                sp.exp(t * al * a) * _gaussian_pdf(al, tau),
                (al, -sp.oo, sp.oo),
                conds="none",
            )
        )
    )
    if not isinstance(one, sp.exp):  # pragma: no cover - another sympy version's form
        one = sp.simplify(one)
    avec = sp.symbols(f"a_1:{n_terms + 1}", nonnegative=True)
    product = sp.powsimp(sp.Mul(*[one.subs(a, ai) for ai in avec]), combine="exp")
    target = sp.exp(tau**2 * t**2 * sp.Add(*[ai**2 for ai in avec]) / 2)
    if (
        sp.expand(product.as_base_exp()[1] - target.as_base_exp()[1]) != 0
    ):  # pragma: no cover
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
            raise ValueError(
                f"V (the number of filters) must be an integer >= 1, got {V!r}."
            )
        V = sp.Integer(int(V))
    k = sp.Symbol("k", integer=True, positive=True)
    term = (
        sp.binomial(V, k) / 2**V * sp.sqrt(2) * sp.gamma((k + 1) / 2) / sp.gamma(k / 2)
    )
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


def _central_moments_of_sum(
    cumulants: Sequence[sp.Expr], V: sp.Symbol, degree: int
) -> dict[int, sp.Expr]:
    """Central moments 2..degree of a sum of ``V`` i.i.d. variables with the given cumulants
    (``cumulants[j]`` is the ``j``-th cumulant, ``j >= 2``), from the cumulant generating function."""
    u = sp.Symbol("u")
    cgf = sum(V * cumulants[j] * u**j / sp.factorial(j) for j in range(2, degree + 1))
    mgf = sp.series(sp.exp(cgf), u, 0, degree + 1).removeO()
    return {
        j: sp.expand(mgf.coeff(u, j) * sp.factorial(j)) for j in range(2, degree + 1)
    }


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
    raw = [sp.Integer(1)] + [
        relu_gaussian_moment(2 * j).rhs.subs(s, 1) for j in range(1, max(degree, 1) + 1)
    ]
    mean_y = raw[1]
    # cumulants of Y from its raw moments (via the log of the MGF)
    u = sp.Symbol("u")
    mgf = sum(raw[j] * u**j / sp.factorial(j) for j in range(0, max(degree, 1) + 1))
    log_mgf = sp.series(sp.log(mgf), u, 0, max(degree, 1) + 1).removeO()
    cumulants = {
        j: sp.simplify(log_mgf.coeff(u, j) * sp.factorial(j))
        for j in range(1, max(degree, 1) + 1)
    }
    if (
        sp.simplify(cumulants[1] - mean_y) != 0
    ):  # pragma: no cover - consistency of the algebra
        raise AssertionError("first cumulant is not the mean")
    if order == 0:
        return sp.Integer(1)
    central = _central_moments_of_sum(cumulants, V, degree)
    mu = V * mean_y
    e = sp.Symbol("epsilon")
    taylor = sp.series(sp.sqrt(mu + e), e, 0, degree + 1).removeO()
    expectation = taylor.coeff(e, 0) + sum(
        taylor.coeff(e, j) * central[j] for j in range(2, degree + 1)
    )
    ratio = sp.expand(sp.simplify(expectation / sp.sqrt(mu)))
    series = sp.series(ratio, V, sp.oo, order + 1).removeO()
    return sp.expand(series)


def expected_gradcam_asymptotics(order: int = 1) -> sp.Eq:
    """``E[GradCAM(s)]`` for large ``V``: ``tau sigma_w ||p|| sqrt(V) / (2 sqrt(pi))`` times
    :func:`chi_binomial_asymptotics` (``order=1``: ``1 - 5/(8V)``)."""
    closed = expected_gradcam_symbolic().rhs
    chi = sp.Symbol(r"\mathbb{E}[\chi_K]", positive=True)
    V = SYMBOLS.V
    leading = (
        SYMBOLS.tau * SYMBOLS.sigma_w * SYMBOLS.p * sp.sqrt(V) / (2 * sp.sqrt(sp.pi))
    )
    if sp.simplify(closed.subs(chi, sp.sqrt(V / 2)) - leading) != 0:  # pragma: no cover
        raise AssertionError("the leading term does not follow from the closed form")
    return sp.Eq(
        sp.Symbol(r"\mathbb{E}[\mathrm{GradCAM}(s)]"),
        sp.Mul(leading, chi_binomial_asymptotics(order)),
    )
