"""Tables, code and formulas that fit the book's column (issue 16): html_table wraps wide tables
by default, and book/_static/camwalls.css has the rules the browser check relies on."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import results as R
from helpers.results import render

ROOT = Path(__file__).resolve().parent.parent
CSS = (ROOT / "book" / "_static" / "camwalls.css").read_text()


def _columns(html: str) -> int:
    """Columns of the first body row, counted from the HTML (not from the writer's arguments)."""
    row = re.search(r"<tbody><tr>(.*?)</tr>", html).group(1)
    return len(re.findall(r"<td\b", row))


def test_wide_tables_wrap_by_default_and_narrow_ones_do_not():
    for n in (2, render.WRAP_COLUMNS - 1, render.WRAP_COLUMNS, render.WRAP_COLUMNS + 3):
        row = {f"c{i}": i for i in range(n)}
        out = R.html_table([row])
        assert _columns(out) == n
        assert ("camwalls-wrap" in out) == (_columns(out) >= 8), (n, out[:80])
        assert "camwalls-wrap" not in R.html_table(
            [row], wrap=False
        )  # the caller decides
        assert "camwalls-wrap" in R.html_table([row], wrap=True)


def _rule(selector_part: str) -> str:
    bodies = [
        body
        for sel, body in re.findall(r"([^{}]+)\{([^}]*)\}", CSS)
        if selector_part in sel
    ]
    assert bodies, f"no rule for {selector_part!r} in camwalls.css"
    return " ".join(bodies)


def test_the_css_lets_code_formulas_and_tables_fit():
    # Sphinx writes inline code as span.pre, white-space: nowrap: it must be allowed to wrap.
    assert "white-space: normal" in _rule("code.literal span.pre")
    assert "overflow-wrap: anywhere" in _rule(".bd-article code.literal")
    # Formulas wider than the column scroll in their own box instead of being clipped.
    assert "overflow-x: auto" in _rule(".bd-article div.math")
    assert "min-width: 0" in _rule("div.math > mjx-container")
    # Table cells wrap (no nowrap left anywhere), and captions stay on screen in a scrolling box.
    assert "white-space: nowrap" not in _rule("table.camwalls-table td")
    assert "position: sticky" in _rule("table.camwalls-table caption")
    assert "overflow-x: auto" in _rule("div.camwalls-scroll")
