"""The theory chapter's theorem, checked step by step against numbers computed other ways:
numerical integration (scipy), Monte Carlo on plain numbers, Monte Carlo on the real
TheoryCNN, pytorch-grad-cam, receptive-field arithmetic and gradient support. (The 29x29
digits are checked in tests/test_theory_digits.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from scipy import integrate
from scipy.special import gamma as gamma_fn

from helpers import theory as T
from helpers.models import TheoryCNN, theory_cnn
from helpers.theory.montecarlo import _grouped_gradcam
from helpers.wall import perturbation_check, unseen_rows_by_gradient

S = T.SYMBOLS


def _sparse_image() -> torch.Tensor:
    """A 29x29 image with two lit 2x2 blocks: one above the wall (rows 4-5), one below it
    (rows 20-21), with the same pixel values, plus one single pixel (row 10)."""
    img = torch.zeros(29, 29)
    block = torch.tensor([[0.9, 0.3], [0.5, 0.7]])
    img[4:6, 7:9] = block
    img[20:22, 17:19] = block
    img[10, 3] = 0.8
    return img


# ------------------------------------------------------------------------------------ step 1


def test_relu_gaussian_mean_by_sympy_quad_and_sampling():
    eq = T.relu_gaussian_mean()
    assert sp.simplify(eq.rhs - S.s / sp.sqrt(2 * sp.pi)) == 0
    s = 1.7
    by_quad, _ = integrate.quad(
        lambda x: (
            max(x, 0.0) * math.exp(-x * x / (2 * s * s)) / (s * math.sqrt(2 * math.pi))
        ),
        -np.inf,
        np.inf,
    )
    assert float(eq.rhs.subs(S.s, s)) == pytest.approx(by_quad, rel=1e-9)
    assert float(eq.lhs.subs(S.s, s).evalf()) == pytest.approx(by_quad, rel=1e-9)
    draws = np.maximum(np.random.default_rng(0).normal(0.0, s, 200_000), 0.0)
    assert abs(draws.mean() - by_quad) < 4 * draws.std() / math.sqrt(draws.size)


@pytest.mark.parametrize(
    "order, expected", [(0, 1), (2, S.s**2 / 2), (4, 3 * S.s**4 / 2)]
)
def test_relu_gaussian_moments(order, expected):
    eq = T.relu_gaussian_moment(order)
    assert sp.simplify(eq.rhs - expected) == 0
    by_quad, _ = integrate.quad(
        lambda x: (
            max(x, 0.0) ** order * math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
            if x > 0 or order == 0
            else 0.0
        ),
        -np.inf,
        np.inf,
    )
    assert float(eq.rhs.subs(S.s, 1)) == pytest.approx(by_quad, rel=1e-8)
    with pytest.raises(ValueError, match="non-negative integer"):
        T.relu_gaussian_moment(-1)


# ------------------------------------------------------------------------------ chi means


@pytest.mark.parametrize("k", [1.0, 2.0, 3.5, 7.0])
def test_chi_mean_against_quadrature(k):
    eq = T.chi_mean()
    assert (
        sp.simplify(eq.rhs - sp.sqrt(2) * sp.gamma((S.k + 1) / 2) / sp.gamma(S.k / 2))
        == 0
    )
    pdf = sp.lambdify(S.r, T.chi_pdf().subs(S.k, k), "math")
    mass, _ = integrate.quad(pdf, 0, np.inf)
    mean, _ = integrate.quad(lambda r: r * pdf(r), 0, np.inf)
    assert mass == pytest.approx(1.0, rel=1e-9)
    assert float(eq.rhs.subs(S.k, k)) == pytest.approx(mean, rel=1e-8)
    assert float(eq.rhs.subs(S.k, k)) == pytest.approx(
        math.sqrt(2) * gamma_fn((k + 1) / 2) / gamma_fn(k / 2)
    )


def test_chi_binomial_mean_exact_values_and_sampling():
    assert (
        sp.simplify(T.chi_binomial_mean(1).rhs - 1 / sp.sqrt(2 * sp.pi)) == 0
    )  # E[ReLU(Z)]
    for V in (2, 3, 5):
        assert float(T.chi_binomial_mean(V).rhs) == pytest.approx(
            T.expected_chi_binomial(V), rel=1e-12
        )
    symbolic = T.chi_binomial_mean().rhs
    assert float(symbolic.subs(S.V, 6).doit()) == pytest.approx(
        T.expected_chi_binomial(6), rel=1e-12
    )
    # sqrt(sum_v ReLU(Z_v)^2) sampled directly: the chi-of-a-binomial description is right
    z = np.random.default_rng(1).standard_normal((200_000, 4))
    draws = np.sqrt((np.maximum(z, 0) ** 2).sum(axis=1))
    assert abs(draws.mean() - T.expected_chi_binomial(4)) < 4 * draws.std() / math.sqrt(
        len(draws)
    )
    with pytest.raises(ValueError, match="integer >= 1"):
        T.chi_binomial_mean(0)


def test_expected_chi_binomial_is_stable_and_matches_the_asymptotics():
    assert T.expected_chi_binomial(1) == pytest.approx(
        1 / math.sqrt(2 * math.pi), rel=1e-14
    )
    big = T.expected_chi_binomial(100_000)
    assert math.isfinite(big) and big == pytest.approx(math.sqrt(50_000), rel=1e-5)
    for V in (256, 1024, 4096):
        exact = T.expected_chi_binomial(V)
        assert T.expected_chi_binomial_asymptotic(V, order=2) == pytest.approx(
            exact, rel=0.2 / V**3
        )
        # the V^-2 coefficient, read off the exact values
        assert V**2 * (exact / math.sqrt(V / 2) - 1 + 5 / (8 * V)) == pytest.approx(
            -23 / 128, rel=0.02
        )
    for bad in (0, -3, 2.5, True, "4"):
        with pytest.raises(ValueError, match="integer >= 1"):
            T.expected_chi_binomial(bad)


def test_asymptotic_series_coefficients():
    series = T.chi_binomial_asymptotics(2)
    assert (
        sp.simplify(
            series - (1 - sp.Rational(5, 8) / S.V - sp.Rational(23, 128) / S.V**2)
        )
        == 0
    )
    third = T.chi_binomial_asymptotics(3)
    c3 = float(
        sp.Poly(
            sp.expand(third.subs(S.V, 1 / sp.Symbol("q"))), sp.Symbol("q")
        ).coeff_monomial(sp.Symbol("q") ** 3)
    )
    V = 512
    exact = T.expected_chi_binomial(V)
    assert V**3 * (
        exact / math.sqrt(V / 2) - 1 + 5 / (8 * V) + 23 / (128 * V**2)
    ) == pytest.approx(c3, rel=0.03)
    asym = T.expected_gradcam_asymptotics(1).rhs
    value = asym.subs({S.tau: 1, S.sigma_w: 1, S.p: 1, S.V: 64})
    assert float(value) == pytest.approx(
        math.sqrt(64) / (2 * math.sqrt(math.pi)) * (1 - 5 / 512)
    )
    with pytest.raises(ValueError, match="order"):
        T.chi_binomial_asymptotics(7)


# ----------------------------------------------------------------------- step 2: the alphas


def test_routing_does_not_change_the_sum_of_gradients():
    eq = T.channel_weight_sum(3)
    assert eq.rhs == sp.Add(*sp.symbols("W_1:4", real=True))
    with pytest.raises(ValueError):
        T.channel_weight_sum(0)


def test_channel_weights_are_the_masked_dense_sums_whatever_the_input():
    model = theory_cnn(filters=6, num_classes=4, seed=3)
    gen = torch.Generator().manual_seed(0)
    images = torch.cat(
        [
            torch.randn(3, 1, 29, 29, generator=gen),
            torch.zeros(1, 1, 29, 29),  # all ties
            torch.ones(1, 1, 29, 29),
        ]
    )
    for c in range(4):
        predicted = T.predicted_channel_weights(model, c)
        parts = T.gradcam_parts(model, images, class_index=c)
        assert torch.allclose(
            parts["weights"], predicted.expand(len(images), -1), rtol=1e-5, atol=1e-9
        )
    # new convolution weights, same dense weights: the same alphas (independence of the convs)
    with torch.no_grad():
        model.conv.weight.normal_(generator=gen)
    assert torch.allclose(
        T.gradcam_parts(model, images[:2], 1)["weights"][0],
        T.predicted_channel_weights(model, 1),
        rtol=1e-5,
        atol=1e-9,
    )
    with pytest.raises(ValueError, match="class_index"):
        T.predicted_channel_weights(model, 4)


def test_channel_weight_variance_formula_and_sampling():
    assert (
        sp.simplify(T.channel_weight_variance().rhs - S.M * S.sigma_W**2 / S.N**2) == 0
    )
    assert sp.simplify(T.channel_weight_variance(7).rhs - S.sigma_W**2 / 6272) == 0
    assert T.gradcam_tau(7, sigma_W=2.0) == pytest.approx(2.0 / math.sqrt(6272))
    assert T.gradcam_tau(0) ** 2 == pytest.approx(196 / 784**2)
    # 3000 independent alphas from one wide random model, through autograd
    model = theory_cnn(filters=3000, num_classes=1, hidden_rows=3, seed=5, sigma_W=1.5)
    alphas = T.gradcam_parts(model, torch.rand(1, 1, 29, 29), 0)["weights"][0].double()
    expected = T.gradcam_tau(3, sigma_W=1.5) ** 2
    assert alphas.var().item() == pytest.approx(expected, rel=5 * math.sqrt(2 / 3000))
    assert abs(alphas.mean().item()) < 5 * math.sqrt(expected / 3000)
    with pytest.raises(ValueError, match="hidden_rows"):
        T.channel_weight_variance(15)


# ---------------------------------------------------------------- step 3: conditional Gaussian


def test_mgf_of_the_weighted_sum_by_sampling():
    eq = T.gaussian_sum_mgf(3)
    a, tau, t = np.array([0.4, 0.0, 1.3]), 0.7, 0.9
    subs = {
        S.tau: tau,
        S.t: t,
        **{sp.Symbol(f"a_{i + 1}", nonnegative=True): a[i] for i in range(3)},
    }
    value = float(eq.rhs.subs(subs))
    alpha = np.random.default_rng(2).normal(0, tau, size=(200_000, 3))
    draws = np.exp(t * alpha @ a)
    assert abs(draws.mean() - value) < 5 * draws.std() / math.sqrt(len(draws))
    assert float(eq.lhs.subs(subs)) == pytest.approx(value)


def test_conditional_mean_given_the_convolutions():
    model = theory_cnn(filters=5, num_classes=1, seed=7)
    parts = T.gradcam_parts(model, _sparse_image()[None, None], 0)
    acts = parts["activations"][0, :, 4, 7].double().numpy()  # A(s) at a lit position
    tau = T.gradcam_tau()
    formula = sp.lambdify((S.tau, S.A), T.conditional_gradcam_mean().rhs)
    alpha = np.random.default_rng(3).normal(0, tau, size=(200_000, 5))
    draws = np.maximum(alpha @ acts, 0)
    assert np.linalg.norm(acts) > 0
    assert abs(
        draws.mean() - formula(tau, np.linalg.norm(acts))
    ) < 4 * draws.std() / math.sqrt(len(draws))


# ---------------------------------------------------------------- the closed form vs the model


def test_closed_form_structure():
    eq = T.expected_gradcam_symbolic()
    chi = sp.Symbol(r"\mathbb{E}[\chi_K]", positive=True)
    value = eq.rhs.subs({S.tau: 2, S.sigma_w: 3, S.p: 5, chi: 7})
    assert float(value) == pytest.approx(2 * 3 * 5 * 7 / math.sqrt(2 * math.pi))


def test_closed_form_is_positive_on_lit_patches_and_equal_across_the_wall():
    img = _sparse_image()
    expected = T.expected_gradcam(img, filters=16)
    norms = T.patch_norms(img)
    assert np.array_equal(expected > 0, norms > 0)  # exact: exact-float
    assert norms[3:6, 6:9].sum() > 0 and norms[19:22, 16:19].sum() > 0
    # the same patches above (map rows 3..5) and below the wall (map rows 19..21)
    assert np.allclose(
        expected[3:6, 6:9], expected[19:22, 16:19], rtol=0, atol=0
    )  # exact: exact-float
    assert (
        19 in T.hidden_map_rows(theory_cnn(2, seed=0)) and 20 in T.theory_unseen_rows()
    )
    # patch norms by hand at one position
    assert norms[4, 7] == pytest.approx(
        math.sqrt(0.9**2 + 0.3**2 + 0.5**2 + 0.7**2), rel=1e-6
    )


def test_patch_norms_by_hand_on_a_random_image():
    img = np.random.default_rng(4).random((29, 29))
    norms = T.patch_norms(img)
    i, j = 17, 5
    assert norms.shape == (28, 28)
    assert norms[i, j] == pytest.approx(np.sqrt((img[i : i + 2, j : j + 2] ** 2).sum()))


@pytest.mark.parametrize(
    "filters, n_models, num_classes, class_index, mirror",
    [
        (1, 8_000, 1, 0, False),
        (3, 4_000, 1, 0, True),
        (8, 1_000, 4, None, True),
    ],
)
def test_closed_form_matches_the_monte_carlo_of_the_real_model(
    filters, n_models, num_classes, class_index, mirror
):
    img = _sparse_image()
    mc = T.monte_carlo_gradcam(
        img,
        filters,
        n_models,
        class_index=class_index,
        num_classes=num_classes,
        mirror=mirror,
        seed=filters,
    )
    closed = T.expected_gradcam(img, filters)
    lit = T.patch_norms(img) > 0
    assert lit.sum() == 9 + 9 + 4  # two 2x2 blocks and one pixel
    z = (mc["mean"][lit] - closed[lit]) / mc["sem"][lit]
    assert np.abs(z).max() < 4.5, z
    assert (
        mc["sem"][lit] / closed[lit]
    ).max() < 0.05  # a test that can fail: the error bars are small
    for side, rows in (("front", slice(0, 14)), ("behind", slice(14, 28))):
        mean, sem = mc["sides"][side]
        assert mean == pytest.approx(mc["mean"][rows].sum(), rel=1e-9)
        assert abs(mean - closed[rows].sum()) < 4.5 * sem
    assert np.all(mc["mean"][~lit] == 0) and np.all(mc["sem"][~lit] == 0)


def test_monte_carlo_packing_is_exact():
    V, G, C = 3, 3, 4
    big = TheoryCNN(
        filters=V * G, num_classes=C, generator=torch.Generator().manual_seed(1)
    )
    x = torch.rand(1, 1, 29, 29, generator=torch.Generator().manual_seed(2))
    for target, ci in [("fixed", 2), ("fixed", None), ("top", None)]:
        cams, top = _grouped_gradcam(big, x, G, target, ci, mirror=False)
        twin, _ = _grouped_gradcam(big, x, G, target, ci, mirror=True)
        for b in range(G):
            sub = TheoryCNN(filters=V, num_classes=C)
            with torch.no_grad():
                sub.conv.weight.copy_(big.conv.weight[b * V : (b + 1) * V])
                sub.dense.weight.copy_(big.dense.weight.view(C, G, V * 196)[:, b])
            if target == "top":
                ref = T.raw_gradcam(sub, x)[0]
                assert int(top[b]) == int(sub(x).argmax())
                with torch.no_grad():
                    sub.dense.weight.neg_()
                mirrored = T.raw_gradcam(sub, x)[0]
            else:
                classes = [ci] if ci is not None else range(C)
                ref = torch.stack([T.raw_gradcam(sub, x, c)[0] for c in classes]).mean(
                    0
                )
                with torch.no_grad():
                    sub.dense.weight.neg_()
                mirrored = torch.stack(
                    [T.raw_gradcam(sub, x, c)[0] for c in classes]
                ).mean(0)
            assert torch.allclose(cams[b], ref, rtol=1e-5, atol=1e-8)
            assert torch.allclose(twin[b], 0.5 * (ref + mirrored), rtol=1e-5, atol=1e-8)


def test_monte_carlo_top_class_sees_through_the_wall():
    img = _sparse_image()
    mc = T.monte_carlo_gradcam(img, 4, 400, target="top", seed=0, batch=400)
    assert mc["class_counts"].sum() == 400 and (mc["class_counts"] > 0).all()
    lit_below = T.patch_norms(img)[19:22, 16:19] > 0
    below, sem = mc["mean"][19:22, 16:19][lit_below], mc["sem"][19:22, 16:19][lit_below]
    assert (below > 3 * sem).all()  # positive, by many standard errors, behind the wall
    # same seed, same batch: reproducible; another seed: different
    first = T.monte_carlo_gradcam(img, 4, 20, target="top", seed=0)["mean"]
    assert np.array_equal(
        first, T.monte_carlo_gradcam(img, 4, 20, target="top", seed=0)["mean"]
    )  # exact: repeat
    assert not np.array_equal(
        first, T.monte_carlo_gradcam(img, 4, 20, target="top", seed=1)["mean"]
    )  # exact: repeat


def test_monte_carlo_bad_inputs():
    img = _sparse_image()
    with pytest.raises(ValueError, match="n_models"):
        T.monte_carlo_gradcam(img, 2, 1)
    with pytest.raises(ValueError, match="target"):
        T.monte_carlo_gradcam(img, 2, 10, target="best")
    with pytest.raises(ValueError, match="class_index"):
        T.monte_carlo_gradcam(img, 2, 10, class_index=10)
    with pytest.raises(ValueError, match="integer >= 1"):
        T.monte_carlo_gradcam(img, 0, 10)
    with pytest.raises(ValueError, match="29x29"):
        T.monte_carlo_gradcam(torch.zeros(28, 28), 2, 10)
    with pytest.raises(ValueError, match="batch"):
        T.monte_carlo_gradcam(img, 2, 10, batch=0)


def test_expected_gradcam_bad_inputs():
    with pytest.raises(ValueError, match="pad_to_29"):
        T.expected_gradcam(np.zeros((28, 28)), 4)
    with pytest.raises(ValueError, match="29x29"):
        T.expected_gradcam(np.zeros((2, 29, 29)), 4)
    with pytest.raises(ValueError, match="integer >= 1"):
        T.expected_gradcam(np.zeros((29, 29)), 0)
    with pytest.raises(ValueError, match="NaN"):
        T.expected_gradcam(np.full((29, 29), np.nan), 2)
    with pytest.raises(TypeError):
        T.expected_gradcam([[0.0] * 29] * 29, 2)
    with pytest.raises(ValueError, match="hidden_rows"):
        T.gradcam_tau(hidden_rows=20)


# ----------------------------------------------------------------- raw GradCAM vs the library


@pytest.mark.parametrize("targets", [None, 3])
def test_raw_gradcam_agrees_with_pytorch_grad_cam(targets):
    model = theory_cnn(filters=8, seed=11)
    images, _, _ = T.digits_29(3, seed=1)
    parts = T.gradcam_parts(model, images, class_index=targets)
    lib_targets = None if targets is None else [ClassifierOutputTarget(targets)] * 3
    with GradCAM(model=model, target_layers=[model.target_layer]) as cam:
        scaled = cam(input_tensor=images, targets=lib_targets)
        acts = cam.activations_and_grads.activations[0].numpy()
        grads = cam.activations_and_grads.gradients[0].numpy()
        unscaled = cam.get_cam_image(
            images, model.target_layer, lib_targets, acts, grads
        )
    ours = parts["cam"].numpy()
    assert np.allclose(np.maximum(unscaled, 0), ours, rtol=1e-5, atol=1e-7 * ours.max())
    # the library's own pipeline applied to ours: ReLU, min-max scale + resize to 29x29, rescale
    assert np.allclose(
        scale_cam_image(scale_cam_image(ours, (29, 29))), scaled, atol=1e-5
    )
    assert scaled.shape == (3, 29, 29)
    if targets is None:
        assert parts["class_index"].tolist() == model(images).argmax(1).tolist()


def test_raw_gradcam_bad_inputs():
    model = theory_cnn(filters=2, seed=0)
    with pytest.raises(ValueError, match="class_index"):
        T.raw_gradcam(model, torch.zeros(1, 1, 29, 29), class_index=10)
    with pytest.raises(ValueError, match="entries"):
        T.raw_gradcam(model, torch.zeros(2, 1, 29, 29), class_index=[1, 2, 3])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        T.raw_gradcam(model, torch.zeros(29, 29))
    with pytest.raises(ValueError, match="target_layer"):
        T.raw_gradcam(torch.nn.Linear(2, 2), torch.zeros(1, 1, 2, 2))


# ------------------------------------------------------------------------- the hidden half


def test_unseen_rows_by_receptive_fields_gradients_and_perturbation():
    model = theory_cnn(filters=8, seed=2)
    unseen = T.theory_unseen_rows(model)
    assert unseen.tolist() == list(
        range(15, 29)
    )  # map rows 0..13 read input rows 0..14
    assert T.visible_pooled_rows(model).tolist() == list(range(7))
    assert T.hidden_map_rows(model).tolist() == list(range(14, 28))
    assert (
        unseen_rows_by_gradient(model, image_size=29, channels=1, n_inputs=3).tolist()
        == unseen.tolist()
    )
    images, _, _ = T.digits_29(4, seed=0)
    assert (
        perturbation_check(model, images, rows=unseen, fill=0.0)["identical"] == 1.0
    )  # exact: wall
    assert (
        perturbation_check(model, images, rows=unseen, fill="noise")["identical"] == 1.0
    )  # exact: wall
    # exact: wall (TESTING.md)
    assert (
        perturbation_check(model, images, rows=[14], fill="noise")["identical"] == 0.0
    )  # control
    # another wall: 3 hidden pooled rows -> map rows 0..21 -> input rows 0..22 seen
    assert T.theory_unseen_rows(hidden_rows=3).tolist() == list(range(23, 29))
    assert T.theory_unseen_rows(hidden_rows=0).tolist() == []
    with pytest.raises(TypeError):
        T.theory_unseen_rows(torch.nn.Linear(2, 2))
