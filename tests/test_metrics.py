"""helpers.metrics against hand computations."""

import copy
import math

import numpy as np
import pytest
import torch

from helpers import metrics
from helpers.models import rvgg
from helpers.wall import upsampled_zero_rows


def test_uniform_map_scores_sqrt_54_over_224():
    assert metrics.dead_zone_share(np.ones((224, 224))) == pytest.approx(
        math.sqrt(54 / 224), abs=1e-12
    )
    assert metrics.uniform_share() == pytest.approx(0.49099025303098287, abs=1e-12)
    # scale invariance: any constant, any positive factor
    assert metrics.dead_zone_share(np.full((224, 224), 3.7)) == pytest.approx(
        math.sqrt(54 / 224)
    )


def test_hand_computed_maps():
    top = np.zeros((224, 224))
    top[:170] = 1.0
    assert metrics.dead_zone_share(top) == 0.0  # exact: exact-float
    bottom = np.zeros((224, 224))
    bottom[170:] = 5.0
    assert metrics.dead_zone_share(bottom) == pytest.approx(1.0)
    # two rows: value 3 in row 0 and 4 in row 200 -> ||L_dead|| / ||L|| = 4*sqrt(224) / (5*sqrt(224))
    two = np.zeros((224, 224))
    two[0] = 3.0
    two[200] = 4.0
    assert metrics.dead_zone_share(two) == pytest.approx(0.8)
    # batch in, array out
    out = metrics.dead_zone_share(np.stack([top, bottom, two]))
    np.testing.assert_allclose(out, [0.0, 1.0, 0.8])


def test_all_zero_map_has_mu_zero_and_is_flagged():
    maps = np.zeros((2, 224, 224))
    maps[1, 0, 0] = 1.0
    np.testing.assert_array_equal(
        metrics.dead_zone_share(maps), [0.0, 0.0]
    )  # exact: exact-float
    np.testing.assert_array_equal(
        metrics.all_zero(maps), [True, False]
    )  # exact: integer


@pytest.fixture(scope="module")
def walled():
    return rvgg(10, width=1 / 32)


def test_rows_from_the_model_and_explicit_rows(walled):
    rng = np.random.default_rng(0)
    maps = rng.random((3, 224, 224))
    by_model = metrics.dead_zone_share(maps, model=walled)
    by_rows = metrics.dead_zone_share(maps, rows=range(170, 224))
    np.testing.assert_allclose(by_model, by_rows)
    # direct formula
    expected = [np.linalg.norm(m[170:]) / np.linalg.norm(m) for m in maps]
    np.testing.assert_allclose(by_rows, expected, rtol=1e-12)
    # torch input too
    np.testing.assert_allclose(
        metrics.dead_zone_share(torch.from_numpy(maps)), expected, rtol=1e-12
    )


def test_baseline_has_no_unseen_rows_and_says_so(walled):
    baseline = copy.deepcopy(walled)
    baseline.classifier[0] = torch.nn.Linear(
        baseline.classifier[0].in_features, 4
    )  # no wall
    with pytest.raises(ValueError, match="walled model's unseen rows"):
        metrics.dead_zone_share(np.ones((224, 224)), model=baseline)


def test_zero_fraction_and_zero_rows_of_hirescam_like_map():
    # A 14x14 map zero on rows 5..13, upsampled as cv2 does: zero from image row 88 on.
    import cv2

    low = np.zeros((14, 14), np.float32)
    low[:5] = np.arange(1, 71, dtype=np.float32).reshape(5, 14)
    up = cv2.resize(low, (224, 224))
    zero_rows = upsampled_zero_rows(range(5, 14))
    assert metrics.first_zero_row(up) == zero_rows[0] == 88
    assert metrics.zero_row_fraction(up) == pytest.approx(136 / 224)
    assert metrics.zero_fraction(up) == pytest.approx(
        136 / 224
    )  # the rows above are positive
    assert metrics.dead_zone_share(up) == 0.0  # exact: wall


def test_first_zero_row_edge_cases():
    m = np.ones((3, 10, 4))
    m[1, 6:] = 0
    m[2] = 0
    np.testing.assert_array_equal(
        metrics.first_zero_row(m), [10, 6, 0]
    )  # exact: integer
    assert metrics.zero_fraction(np.array([[0.0, 1.0], [0.0, 0.0]])) == 0.75


def test_summarize():
    s = metrics.summarize([0.1, 0.3])
    # the sample standard deviation (ddof 1), as torch.std computes it: sqrt(((0.1)^2 + (0.1)^2) / 1)
    assert s["mean"] == pytest.approx(0.2) and s["std"] == pytest.approx(0.1 * 2**0.5)
    assert s["std"] == pytest.approx(
        float(torch.tensor([0.1, 0.3], dtype=torch.float64).std())
    )
    assert (s["min"], s["max"], s["n"]) == (0.1, 0.3, 2)
    assert np.isnan(
        metrics.summarize([0.4])["std"]
    )  # one image: undefined, as torch.std says
    with pytest.raises(ValueError):
        metrics.summarize([])


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.ones(5), "shape"),
        (np.ones((2, 2, 2, 2)), "shape"),
        (np.full((224, 224), np.nan), "NaN"),
        ("not a map", "array"),
    ],
)
def test_bad_maps(bad, match):
    with pytest.raises((TypeError, ValueError), match=match):
        metrics.dead_zone_share(bad)


def test_bad_rows():
    with pytest.raises(ValueError, match="empty"):
        metrics.dead_zone_share(np.ones((224, 224)), rows=[])
    with pytest.raises(ValueError, match="0..223"):
        metrics.dead_zone_share(np.ones((224, 224)), rows=[230])
    with pytest.raises(ValueError, match="pass rows"):
        metrics.dead_zone_share(np.ones((29, 29)))
