"""The theory chapter: GradCAM of a walled CNN at initialization, its theorem proved in sympy
and checked in numbers.

- ``layout`` -- the theory model's sizes (29 -> 28 -> 14), the rows behind its wall, and the
  checks of the arguments the other modules take;
- ``symbolic`` -- the theorem and its proof, step by step in sympy (the derivation's summary is
  its docstring);
- ``closed_form`` -- the theorem in numbers: ``E[GradCAM(s)]`` on an image, ``tau``, the patch
  norms, ``E[chi_K]`` exact and asymptotic;
- ``montecarlo`` -- GradCAM of the real :class:`~helpers.models.TheoryCNN` by autograd: one
  model, and the Monte Carlo over random models;
- ``digits`` -- handwritten digits as 29x29 images (scikit-learn's, or MNIST's test set).

Every public name is re-exported here: ``from helpers import theory; theory.expected_gradcam``.
"""

from .closed_form import (
    expected_chi_binomial,
    expected_chi_binomial_asymptotic,
    expected_gradcam,
    gradcam_tau,
    patch_norms,
    positions_on_both_sides,
)
from .digits import MNIST_TEST_SHA256, digits_29, pad_to_29
from .layout import (
    HIDDEN_ROWS,
    INPUT_SIZE,
    MAP_SIZE,
    POOLED_SIZE,
    hidden_map_rows,
    theory_unseen_rows,
    visible_pooled_rows,
)
from .montecarlo import (
    gradcam_parts,
    monte_carlo_gradcam,
    predicted_channel_weights,
    raw_gradcam,
)
from .symbolic import (
    SYMBOLS,
    channel_weight_sum,
    channel_weight_variance,
    chi_binomial_asymptotics,
    chi_binomial_mean,
    chi_mean,
    chi_pdf,
    conditional_gradcam_mean,
    expected_gradcam_asymptotics,
    expected_gradcam_symbolic,
    gaussian_sum_mgf,
    relu_gaussian_mean,
    relu_gaussian_moment,
)

__all__ = [
    "INPUT_SIZE",
    "MAP_SIZE",
    "POOLED_SIZE",
    "HIDDEN_ROWS",
    "SYMBOLS",
    # layout: which rows are behind the wall
    "visible_pooled_rows",
    "hidden_map_rows",
    "theory_unseen_rows",
    # symbolic: the proof
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
    # closed_form: numbers
    "gradcam_tau",
    "patch_norms",
    "positions_on_both_sides",
    "expected_chi_binomial",
    "expected_chi_binomial_asymptotic",
    "expected_gradcam",
    # montecarlo: torch
    "gradcam_parts",
    "raw_gradcam",
    "predicted_channel_weights",
    "monte_carlo_gradcam",
    # digits: data
    "pad_to_29",
    "digits_29",
    "MNIST_TEST_SHA256",
]
