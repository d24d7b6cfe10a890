"""The tolerance policy of TESTING.md, enforced on the test suite itself.

Every assertion of exact equality between computed values (``assert_array_equal``,
``torch.equal``, ``array_equal``, ``atol=0`` without a positive ``rtol``, ``== 0.0``, ``== 1.0``,
``.max() == 0``) must say why it is exact on every CPU: a comment ``# exact: <case>`` on the same
line (or on a line of the same statement, when the formatter wraps it) or on one of the two
lines above it, with ``<case>`` one of :data:`CASES` (TESTING.md
explains each).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
CASES = ("wall", "repeat", "integer", "exact-float")
EXACT = re.compile(
    r"assert_array_equal\(|torch\.equal\(|array_equal\(|rtol=0, atol=0\b|atol=0\)|== 0\.0\b|== 1\.0\b"
    r"|\.max\(\) == 0\b"
)
TAG = re.compile(r"#\s*exact:\s*([a-z-]+)")


def exact_assertions_without_a_case(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of every exact-equality assertion in ``text`` that carries no
    ``# exact: <case>`` comment with a known case on its line or the two lines above."""
    lines = text.splitlines()
    bad = []
    for i, line in enumerate(lines):
        code = line.split("#", 1)[0]
        if not EXACT.search(code) or not ("assert" in code or "np.testing" in code):
            continue
        # the statement may go on over the next lines (a call the formatter wrapped): the
        # comment may sit on any of them, up to the line that closes its brackets
        end, depth = i, 0
        while end < len(lines):
            part = lines[end].split("#", 1)[0]
            depth += sum(part.count(c) for c in "([{") - sum(
                part.count(c) for c in ")]}"
            )
            if depth <= 0:
                break
            end += 1
        window = lines[max(0, i - 2) : end + 1]
        cases = [m.group(1) for w in window for m in TAG.finditer(w)]
        if not any(c in CASES for c in cases):
            bad.append((i + 1, line.strip()))
    return bad


def test_the_checker_finds_an_untagged_exact_assertion():
    text = (
        "x = 1\nnp.testing.assert_array_equal(a, b)\nassert y == 0.0  # exact: wall\n"
    )
    assert exact_assertions_without_a_case(text) == [
        (2, "np.testing.assert_array_equal(a, b)")
    ]
    assert (
        exact_assertions_without_a_case("# exact: repeat\nassert torch.equal(a, b)\n")
        == []
    )
    assert (
        exact_assertions_without_a_case("assert torch.equal(a, b)  # exact: hope\n")
        != []
    )
    wrapped = "assert torch.equal(\n    a, b\n)  # exact: repeat\nx = 1\ny = 2\nassert torch.equal(c, d)\n"
    assert exact_assertions_without_a_case(wrapped) == [(6, "assert torch.equal(c, d)")]


@pytest.mark.parametrize("path", sorted(TESTS.glob("test_*.py")), ids=lambda p: p.name)
def test_every_exact_assertion_says_why_it_is_exact(path):
    if path.name == Path(__file__).name:
        return
    bad = exact_assertions_without_a_case(path.read_text())
    assert not bad, (
        f"{path.name}: exact-equality assertions without '# exact: <case>' (one of {CASES}, see "
        f"TESTING.md); compare with a stated tolerance instead, or name the case:\n"
        + "\n".join(f"  line {n}: {line}" for n, line in bad)
    )


def test_the_modules_run_once_exist_and_compute_no_tolerance_checked_float():
    """Every module of conftest.ISA_INDEPENDENT exists, says why, and none of them asserts a
    float against a tolerance of TESTING.md's table (those must run under both instruction sets),
    except the differential test of the authors' path, named with its reason."""
    from tests.conftest import ISA_INDEPENDENT

    here = Path(__file__).parent
    for name, why in ISA_INDEPENDENT.items():
        path = here / f"{name}.py"
        assert path.is_file(), (
            f"tests/conftest.py names {name}, which is not a test module"
        )
        assert len(why) > 10, name
        if name not in (
            "test_authors_path",
            "test_policy",
        ):  # this file names the patterns itself
            text = path.read_text()
            assert "1e-5 *" not in text and "1e-4" not in text, (
                f"{name} compares floats: it must run twice"
            )
