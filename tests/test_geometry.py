"""helpers.geometry: the wall's numbers against arithmetic done here by hand (receptive field,
bilinear resizing, a uniform map), and a guard that no wall number is typed anywhere else in the
library, the chapters or the book's pages."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from helpers import data, geometry, metrics, plots, wall
from helpers.models import rvgg

ROOT = Path(__file__).resolve().parent.parent

# rVGG's convolution stack by hand: 3x3 convolutions in blocks of 2, 2, 3, 3, 3 (the last block
# has no pool after it), a 2x2 max-pool of stride 2 after each of the first four blocks.
CONVS_PER_BLOCK = (2, 2, 3, 3, 3)
POOLS = 4


def _receptive_field_by_hand() -> tuple[int, int]:
    size, jump = 1, 1
    for block, convs in enumerate(CONVS_PER_BLOCK):
        size += (
            convs * 2 * jump
        )  # each 3x3 convolution adds 2 input pixels at the current jump
        if block < POOLS:
            size += jump  # a 2x2 pool adds one more
            jump *= 2
    return size, jump


def test_receptive_field_and_first_unseen_row_by_hand():
    g = geometry.rvgg_geometry()
    size, stride = _receptive_field_by_hand()
    assert (size, stride) == (196, 16) == (g.rf_size, g.rf_stride)
    # a unit of map row r sees input rows stride*r - pad .. stride*r - pad + size - 1, where the
    # zero padding shifts the field by pad = (size - stride) / 2 = 90 rows; the last visible
    # map row is 4 (9 of 14 rows hidden), so the first unseen input row is 16 * 5 + 90
    pad = (size - stride) // 2
    visible = 14 - 9
    assert g.visible_map_rows == tuple(range(visible)) and g.hidden_map_rows == tuple(
        range(visible, 14)
    )
    assert g.first_unseen_row == stride * visible + pad == 170
    assert g.last_seen_row == stride * (visible - 1) - pad + size - 1
    assert g.unseen_rows == tuple(range(stride * visible + pad, 224))
    assert g.n_unseen == 224 - 170 == 54
    assert g.unseen_share == pytest.approx(54 / 224)


@pytest.mark.parametrize("wall_rows", range(6, 14))
def test_other_wall_heights_follow_the_same_arithmetic(wall_rows):
    size, stride = _receptive_field_by_hand()
    g = geometry.rvgg_geometry(wall_rows)
    assert g.first_unseen_row == stride * (14 - wall_rows) + (size - stride) // 2


def test_a_wall_with_nothing_unseen_is_refused():
    with pytest.raises(ValueError, match="unseen input rows"):
        geometry.rvgg_geometry(3)  # the last visible unit's field reaches the bottom


def test_the_zero_rows_of_an_upsampled_map_by_cv2():
    """A 14x14 map, random and positive on the visible rows, zero on the hidden ones, resized
    as pytorch-grad-cam does (cv2.resize, bilinear): the rows that come out exactly zero."""
    g = geometry.rvgg_geometry()
    rng = np.random.default_rng(0)
    cam = rng.uniform(0.2, 1.0, (14, 14)).astype(np.float32)
    cam[list(g.hidden_map_rows)] = 0
    up = cv2.resize(cam, (224, 224))
    zero = np.flatnonzero((up == 0).all(axis=1))
    assert g.zero_rows == tuple(zero.tolist())
    assert g.first_zero_row == zero[0] == 88 and g.n_zero == len(zero) == 224 - 88
    assert g.zero_share == pytest.approx(136 / 224)
    assert f"{100 * g.zero_share:.1f}%" == "60.7%"


def test_uniform_map_mu_by_the_metric():
    g = geometry.rvgg_geometry()
    uniform = np.ones((224, 224))
    assert metrics.dead_zone_share(uniform, rows=g.unseen_rows) == pytest.approx(
        g.uniform_mu, abs=1e-12
    )
    assert g.uniform_mu == pytest.approx(math.sqrt(54 * 224) / math.sqrt(224 * 224))
    assert f"{g.uniform_mu:.3f}" == "0.491"


def test_the_geometry_is_the_models_at_any_width():
    """Derived at width 1/64; the same at another width, and by the input gradient."""
    g = geometry.rvgg_geometry()
    torch.manual_seed(0)
    other = rvgg(num_classes=10, width=1 / 16).eval()
    assert tuple(wall.unseen_rows(other).tolist()) == g.unseen_rows
    tiny = rvgg(num_classes=10, width=1 / 64).eval()
    assert (
        tuple(wall.unseen_rows_by_gradient(tiny, n_inputs=2).tolist()) == g.unseen_rows
    )


def test_the_library_reads_its_wall_numbers_from_here():
    g = geometry.rvgg_geometry()
    assert geometry.rvgg_geometry() is g  # computed once
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.rf_size = 1
    assert data.FIRST_UNSEEN_ROW == plots.FIRST_UNSEEN_ROW == g.first_unseen_row
    assert (
        type(data.FIRST_UNSEEN_ROW) is int
    )  # plain ints: cache keys hash them as before
    np.testing.assert_array_equal(
        metrics.PAPER_UNSEEN_ROWS, g.unseen_array()
    )  # exact: integer
    assert metrics.uniform_share() == pytest.approx(g.uniform_mu)


def test_deriving_the_geometry_leaves_the_random_stream_alone():
    """It is computed when helpers.data, plots or metrics is first imported, perhaps after a
    chapter seeded torch: building its tiny model must not draw from the seeded stream."""
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    geometry.rvgg_geometry(7)  # a height nobody asked for yet: really computed now
    assert torch.equal(torch.rand(4), expected)  # exact: repeat


def test_texts_are_the_numbers_as_the_prose_writes_them():
    t = geometry.texts()
    assert all(k.startswith("geo_") for k in t)
    assert t["geo_first_unseen_row"] == "170" and t["geo_unseen_rows"] == "170..223"
    assert t["geo_unseen_count"] == "54" and t["geo_unseen_share"] == "24.1%"
    assert (
        t["geo_zero_first_row"] == "88"
        and t["geo_zero_rows"] == "88..223"
        and t["geo_zero_share"] == "60.7%"
    )
    assert t["geo_blind_band"] == "88..169" and t["geo_last_seen_row"] == "169"
    assert (
        t["geo_uniform_mu"] == "0.491"
        and t["geo_uniform_formula"] == "\u221a(54/224) = 0.491"
    )
    assert t["geo_hidden_map_rows"] == "5..13" and t["geo_visible_map_rows"] == "0..4"


# ---------------------------------------------------------------------------------------------
# No wall number typed twice
# ---------------------------------------------------------------------------------------------

#: The wall's numbers as prose or code would type them; a digit or a decimal point next to one
#: (e.g. 0.170, 1700, 170.5) is another number, not this one.
LITERALS = {
    "first unseen row 170": r"(?<![\d.])170(?!\d|\.\d)",
    "uniform mu 0.491 (or 0.49)": r"(?<![\d.])0\.491?(?!\d)",
    "unseen share 24.1%": r"(?<![\d.])24\.1\s*%",
    "upsampled zero share 60.7%": r"(?<![\d.])60\.7\s*%",
    "first upsampled-zero row 88": r"\brows?\s+88\b",
    "unseen rows 54/224": r"(?<![\d.])54\s*/\s*224\b",
    "54 unseen rows": r"(?<![\d.])54\s+(?:hidden\s+|unseen\s+)?rows\b",
}
#: Files allowed to hold them, and why.
EXEMPT = {
    "helpers/geometry.py": "derives every number of the wall (and may explain them)",
}


def _find(text: str) -> list[str]:
    return [
        f"{what}: {m.group(0)!r}"
        for what, pattern in LITERALS.items()
        for m in re.finditer(pattern, text)
    ]


def _sources() -> dict[str, str]:
    out = {}
    for path in [*sorted((ROOT / "helpers").rglob("*.py")), ROOT / "README.md"]:
        out[str(path.relative_to(ROOT))] = path.read_text()
    for path in sorted((ROOT / "book").glob("*.md")):
        out[str(path.relative_to(ROOT))] = path.read_text()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] in ("markdown", "code"):
                out[f"{path.relative_to(ROOT)} cell {i} ({cell['cell_type']})"] = (
                    "".join(cell["source"])
                )
    return out


def test_the_literal_finder_finds_them_and_only_them():
    assert _find(
        "rows 170..223, 24.1% unseen; blank from row\n88 on: 60.7 %; sqrt(54/224) = 0.491"
    )
    assert (
        len(_find("np.arange(170, 224)")) == 1 and len(_find("the bottom 54 rows")) == 1
    )
    assert len(_find("about 0.49.")) == 1 and len(_find("170x224")) == 1
    assert (
        _find("0.170, 1700, 170.5, 2170, row 880, 24.15%, 0.4912, 154 rows, 5..13")
        == []
    )


def test_no_wall_number_is_typed_outside_helpers_geometry():
    found = []
    for where, text in _sources().items():
        if where.split(" ")[0] in EXEMPT:
            continue
        found += [f"{where}: {hit}" for hit in _find(text)]
    assert not found, (
        "wall numbers typed instead of derived (use helpers.geometry, and glue "
        "geometry.texts() into prose):\n" + "\n".join(found)
    )


def test_every_wall_number_the_prose_pastes_is_glued_on_its_page():
    """A page that pastes {glue:text}`geo_...` glues geometry.texts() itself (a glue is per page)."""
    keys = set(geometry.texts())
    pages = {
        str(p.relative_to(ROOT)): (p.read_text(), p.read_text())
        for p in sorted((ROOT / "book").glob("*.md"))
    }
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        pages[str(path.relative_to(ROOT))] = tuple(
            "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == kind)
            for kind in ("markdown", "code")
        )
    pasting = 0
    for where, (prose, code) in pages.items():
        used = set(re.findall(r"\{glue:text\}`(geo_[a-z_]+)", prose))
        assert used <= keys, (
            f"{where} pastes unknown wall numbers {sorted(used - keys)}"
        )
        if used:
            pasting += 1
            assert "geometry.texts(" in code, (
                f"{where} pastes {sorted(used)} but never glues geometry.texts()"
            )
    assert pasting >= 5  # the chapters and pages that talk about the wall
