"""The book's one rule for example images (:func:`helpers.experiments.example_image`) and its one
count of the predictions that held (:func:`helpers.experiments.prediction_tally`)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import cams
from helpers import experiments as E


def _brute_force(mu, correct, candidates):
    """The rule written out the long way: sort the eligible images by distance to the median,
    then by index, and take the first."""
    mu = list(map(float, mu))
    med = float(np.median(mu))
    k = len(mu) if candidates is None else min(candidates, len(mu))
    pool = [i for i in range(k) if correct is None or correct[i]] or list(range(k))
    return sorted(pool, key=lambda i: (abs(mu[i] - med), i))[0]


def test_example_image_is_the_typical_image():
    mu = [0.9, 0.1, 0.3, 0.5, 0.2]  # median 0.3, at image 2
    assert E.example_image(mu) == 2  # exact: integer
    assert (
        E.example_image(mu, correct=[True, True, False, True, True]) == 4
    )  # exact: integer
    assert E.example_image(mu, candidates=2) == 1  # exact: integer
    assert E.example_image(mu, correct=[False] * 5, candidates=2) == 1  # exact: integer
    assert (
        E.example_image([0.25, 0.75]) == 0
    )  # exact: integer  (a tie: the lower index)
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        values = np.round(rng.uniform(0, 1, n), 2)  # rounded: ties happen
        correct = rng.uniform(size=n) < 0.7
        candidates = int(rng.integers(1, n + 1))
        chosen = E.example_image(values, correct, candidates)
        assert chosen == _brute_force(values, correct, candidates)  # exact: integer


def test_example_image_of_an_odd_set_is_a_median_image():
    values = np.random.default_rng(1).permutation(np.linspace(0, 1, 11))
    i = E.example_image(values)
    assert i == int(np.argsort(values)[5])  # exact: integer


@pytest.mark.parametrize(
    "bad, match", [([], "at least one"), ([0.1, np.nan], "finite")]
)
def test_example_image_rejects(bad, match):
    with pytest.raises(ValueError, match=match):
        E.example_image(bad)
    with pytest.raises(ValueError, match="entries"):
        E.example_image([0.1, 0.2], correct=[True])
    with pytest.raises(ValueError, match="candidates"):
        E.example_image([0.1], candidates=0)


def _row(method, set_name, positive, n=10, mu=0.1):
    """A result row of the walled model with ``positive`` of ``n`` images above zero."""
    return {
        "model": "walled",
        "dataset": set_name,
        "method": method,
        "n_images": n,
        "mu_mean": mu if positive else 0.0,
        "mu_max": 2 * mu if positive else 0.0,
        "mu_zero_share": 1 - positive / n,
    }


def test_prediction_tally_counts_firm_predictions_only():
    rows = []
    outcome = {  # method: images with mu > 0 on (set A, set B), out of 10
        "gradcam": (10, 10),  # leaks, predicted: held
        "eigencam": (8, 0),  # predicted to leak, blind on set B: failed
        "hirescam": (0, 0),  # blind, predicted: held
        "layercam": (0, 1),  # predicted blind, leaks on one image of B: failed
        "eigengradcam": (3, 0),  # "may leak": no firm claim
    }
    for method, (a, b) in outcome.items():
        rows += [_row(method, "A", a), _row(method, "B", b)]
    rows.append(
        {**_row("gradcam", "A", 1), "model": "baseline"}
    )  # ignored: not the walled model
    tally = E.prediction_tally(rows)
    firm = [m for m in outcome if m != "eigengradcam"]
    held = [
        m
        for m in firm
        if (m in ("gradcam", "eigencam")) == all(outcome[m])
        and (m in ("hirescam", "layercam")) == (not any(outcome[m]))
    ]
    assert tally["tested"] == len(firm) and tally["held"] == len(held)  # exact: integer
    assert sorted(tally["failed"]) == sorted(set(firm) - set(held))
    assert tally["either_way"] == ["eigengradcam"]
    # registry order, and k of n per set, as the rows say
    order = [m["method"] for m in tally["methods"]]
    assert order == ["gradcam", "eigencam", "hirescam", "layercam", "eigengradcam"]
    for entry in tally["methods"]:
        counts = tuple(entry["sets"][s]["positive"] for s in ("A", "B"))
        assert counts == outcome[entry["method"]]  # exact: integer
        assert all(entry["sets"][s]["n"] == 10 for s in ("A", "B"))  # exact: integer
        assert entry["observed"] == ("leaks" if any(counts) else "blind")
    by = {m["method"]: m["held"] for m in tally["methods"]}
    assert by == {
        "gradcam": True,
        "eigencam": False,
        "hirescam": True,
        "layercam": False,
        "eigengradcam": None,
    }


def test_settings_list_methods_in_the_registry_order():
    """Chapter 07's tables and figures follow its settings' method lists: registry order."""
    order = list(cams.METHODS)
    for settings in E.SETTINGS.values():
        for names in (settings.methods, settings.sweep_methods):
            assert list(names) == sorted(names, key=order.index)
