"""The browser check (tools/browsercheck.py): on a tiny site written here, it passes the good
page and fails the bad ones.

The browser tests need Debian's headless Chromium and chromedriver (`make browser` installs
them) and selenium; without them they are skipped with a reason (everything else runs anywhere).
"""

from __future__ import annotations

import importlib.util
import struct
import sys
import urllib.request
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "browsercheck", ROOT / "tools" / "browsercheck.py"
)
bc = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bc  # its dataclasses look their module up there
_spec.loader.exec_module(bc)


def _png(width: int, height: int) -> bytes:
    """A valid RGB PNG of the given size, written by hand (no imaging library)."""
    raw = b"".join(b"\x00" + b"\x20\x40\x80" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _png_width(path: Path) -> int:
    return struct.unpack(">I", path.read_bytes()[16:20])[0]


PAGE = "<!doctype html><html><head><title>{title}</title></head><body><main>{body}</main></body></html>"


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    """good.html passes; broken_img.html has a missing image; broken_link.html a dead link and a
    dead anchor; math_page.html has math that no MathJax renders."""
    root = tmp_path / "html"
    (root / "sub").mkdir(parents=True)
    (root / "_images").mkdir()
    (root / "_images" / "fig.png").write_bytes(_png(30, 20))
    (root / "_static").mkdir()
    (root / "_static" / "badge.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10"/></svg>'
    )
    (root / "good.html").write_text(
        PAGE.format(
            title="Good",
            body=(
                '<p id="top">A good page.</p><figure><img src="_images/fig.png" alt="fig"></figure>'
                '<img src="_static/badge.svg" alt="badge" width="40">'
                '<a href="sub/other.html#part">other</a> <a href="#top">top</a> '
                '<a href="https://example.org/">external, not checked</a>'
            ),
        )
    )
    (root / "sub" / "other.html").write_text(
        PAGE.format(title="Other", body='<h2 id="part">Part</h2><p>x</p>')
    )
    (root / "broken_img.html").write_text(
        PAGE.format(
            title="Broken image",
            body=(
                '<p>An image that is not there.</p><img src="_images/missing.png" alt="missing">'
            ),
        )
    )
    (root / "broken_link.html").write_text(
        PAGE.format(
            title="Broken link",
            body=(
                '<p>Links.</p><a href="nowhere.html">dead</a> <a href="good.html#no-such-anchor">dead anchor</a>'
            ),
        )
    )
    (root / "math_page.html").write_text(
        PAGE.format(
            title="Math",
            body=(
                '<p>Inline <span class="math notranslate nohighlight">\\(x^2\\)</span>.</p>'
            ),
        )
    )
    return root


# -- without a browser ----------------------------------------------------------------------


def test_list_pages_leaves_out_asset_folders(site: Path):
    (site / "_static" / "x.html").write_text("<p>asset</p>")
    pages = [p.as_posix() for p in bc.list_pages(site)]
    assert pages == [
        "broken_img.html",
        "broken_link.html",
        "good.html",
        "math_page.html",
        "sub/other.html",
    ]


def test_list_pages_of_a_missing_build_says_how_to_build(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="build it first"):
        bc.list_pages(tmp_path / "nope")


def test_page_ids_finds_ids_and_named_anchors(tmp_path: Path):
    page = tmp_path / "p.html"
    page.write_text(
        '<div id="a"><a name="b"></a><span id="c-1">x</span><p name="not-anchor"></p></div>'
    )
    assert bc.page_ids(page) == frozenset({"a", "b", "c-1"})


def test_server_serves_files_records_statuses_and_swaps_mathjax(tmp_path: Path):
    (tmp_path / "site").mkdir()
    cdn = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"
    (tmp_path / "site" / "p.html").write_text(
        f'<script defer src="{cdn}"></script><p>x</p>'
    )
    mj = tmp_path / "es5"
    mj.mkdir()
    (mj / "tex-mml-chtml.js").write_text("window.MJ_LOCAL = 1;")
    with bc.StaticServer(tmp_path / "site", mathjax=mj) as server:
        page = urllib.request.urlopen(server.base_url + "p.html").read().decode()
        script = (
            urllib.request.urlopen(server.base_url + "__mathjax__/tex-mml-chtml.js")
            .read()
            .decode()
        )
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(server.base_url + "missing.png")
        requests = server.take_requests()
    assert cdn not in page and 'src="/__mathjax__/tex-mml-chtml.js"' in page
    assert script == "window.MJ_LOCAL = 1;"
    assert requests == [
        ("/p.html", 200),
        ("/__mathjax__/tex-mml-chtml.js", 200),
        ("/missing.png", 404),
    ]


def test_colab_links_must_name_a_notebook_of_the_repository(tmp_path: Path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_a.ipynb").write_text("{}")
    repo = "https://github.com/o/r"
    good = "https://colab.research.google.com/github/o/r/blob/main/notebooks/01_a.ipynb"
    bad = "https://colab.research.google.com/github/o/r/blob/main/notebooks/99_z.ipynb"
    other = "https://colab.research.google.com/github/someone/else/blob/main/x.ipynb"
    assert bc._repo_notebook_for_colab(good, repo, tmp_path) is None
    assert "not in the repository" in bc._repo_notebook_for_colab(bad, repo, tmp_path)
    assert bc._repo_notebook_for_colab(other, repo, tmp_path) is None
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# x")
    md = "https://colab.research.google.com/github/o/r/blob/main/book/intro.md"
    assert "Colab cannot open" in bc._repo_notebook_for_colab(md, repo, tmp_path)
    # A link hidden on purpose by a style rule (the theme's launch button on a .md page) is fine.
    links = [
        {"attr": md, "href": md, "hidden": True},
        {"attr": bad, "href": bad, "hidden": False},
    ]
    problems, local = bc._check_links(
        Path("p.html"), links, tmp_path, "http://127.0.0.1:1/", repo, tmp_path
    )
    assert local == 0 and len(problems) == 1 and "99_z.ipynb" in problems[0]


def test_repo_url_is_read_from_config(tmp_path: Path):
    (tmp_path / "_config.yml").write_text(
        "title: t\nrepository:\n  path_to_book: ''\n  url: https://github.com/a/b/\n"
    )
    assert bc._read_repo_url(tmp_path) == "https://github.com/a/b"


def test_missing_browser_gives_a_clear_error_naming_the_install_command(monkeypatch):
    monkeypatch.setattr(bc, "find_browser", lambda: None)
    with pytest.raises(
        bc.BrowserNotFound, match="apt-get install -y chromium chromium-driver"
    ) as info:
        bc.require_browser()
    assert "make browser" in str(info.value)


def test_a_missing_driver_is_never_downloaded(monkeypatch, tmp_path):
    """Selenium gets the driver's path, so selenium-manager (which downloads) is never asked."""
    pytest.importorskip("selenium")
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common import selenium_manager

    monkeypatch.setattr(
        selenium_manager.SeleniumManager,
        "binary_paths",
        lambda *a, **k: pytest.fail("selenium-manager was asked for a driver"),
    )
    with pytest.raises(
        bc.BrowserNotFound, match="No chromedriver at .*apt-get install"
    ):
        with bc.open_browser(tmp_path / "chromium", tmp_path / "no-chromedriver"):
            pass
    fake = (
        tmp_path / "chromedriver"
    )  # a driver that exits at once: selenium runs it, and fails
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(WebDriverException, match="exited"):
        with bc.open_browser(tmp_path / "chromium", fake):
            pass


def test_chromium_flags_keep_the_browser_offline():
    flags = set(bc.CHROMIUM_FLAGS)
    for needed in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        assert needed in flags


# -- with the browser -------------------------------------------------------------------------

needs_browser = pytest.mark.skipif(
    bc.find_browser() is None or importlib.util.find_spec("selenium") is None,
    reason="headless Chromium/chromedriver or selenium not installed "
    "(make browser, or apt-get install chromium chromium-driver; pip install selenium)",
)


@pytest.fixture(scope="module")
def browser():
    return bc.find_browser()


@needs_browser
def test_site_check_passes_good_pages_and_fails_bad_ones(
    site: Path, tmp_path: Path, browser
):
    shots = tmp_path / "shots"
    report = bc.check_site(
        site,
        screenshots_dir=shots,
        screenshot_pages=["good.html"],
        require_math=True,
        browser=browser,
        verbose=False,
    )
    by_page = {p.page: p for p in report.pages}
    assert by_page["good.html"].ok, by_page["good.html"].problems
    assert by_page["sub/other.html"].ok, by_page["sub/other.html"].problems
    assert by_page["good.html"].images == 2 and by_page["good.html"].figures == 1

    img = by_page["broken_img.html"].problems
    assert any("broken image '_images/missing.png'" in m for m in img), img
    assert any("HTTP 404" in m and "missing.png" in m for m in img), img

    link = by_page["broken_link.html"].problems
    assert any("broken link 'nowhere.html'" in m for m in link), link
    assert any("broken anchor 'good.html#no-such-anchor'" in m for m in link), link

    math = by_page["math_page.html"].problems
    assert any("MathJax did not load" in m for m in math), math

    assert not report.ok
    assert "FAILED: 2 of 5 pages passed" in report.summary()
    assert "1280 px and 400 px wide" in report.summary()
    png, phone = (
        shots / "good.png",
        shots / "good-400px.png",
    )  # one screenshot per width
    assert report.screenshots == [png, phone]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in (png, phone))
    assert _png_width(png) == 1280 and _png_width(phone) == 400


@needs_browser
def test_external_images_are_flagged(tmp_path: Path, browser):
    root = tmp_path / "html"
    root.mkdir()
    (root / "index.html").write_text(
        PAGE.format(
            title="Ext",
            body=(
                '<p>x</p><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="ext">'
            ),
        )
    )
    report = bc.check_site(root, browser=browser, verbose=False)
    assert not report.ok
    assert any("image from another host" in m for m in report.pages[0].problems)


@needs_browser
def test_markdown_tables_printed_as_text_are_flagged(tmp_path: Path, browser):
    root = tmp_path / "html"
    root.mkdir()
    # as the build printed one: smart quotes turn --- into an em dash
    (root / "raw.html").write_text(
        PAGE.replace("<head>", '<head><meta charset="utf-8">').format(
            title="Raw",
            body="<p>| case | speed-up |\n|\u2014|\u2014|\n| scorecam | 1.9x |</p>",
        ),
        encoding="utf-8",
    )
    (root / "code.html").write_text(
        PAGE.format(
            title="Code",
            body=(
                "<p>text</p><pre>lines = ['|---|---|']</pre><table><tr><td>a</td></tr></table>"
            ),
        )
    )
    by_page = {
        p.page: p for p in bc.check_site(root, browser=browser, verbose=False).pages
    }
    assert any(
        "1 Markdown table(s) shown as plain text" in m
        for m in by_page["raw.html"].problems
    )
    assert by_page["code.html"].ok, by_page["code.html"].problems


@needs_browser
def test_tables_cut_at_the_right_of_the_column_are_flagged(tmp_path: Path, browser):
    """At 1280 px, a 2000 px table in a 600 px article is cut; in a scrolling box it is hidden
    in part (a table must fit at the widest width); a 500 px one scrolls on a phone only, which
    is fine."""
    root = tmp_path / "html"
    root.mkdir()
    row = "<tr>" + "".join(f"<td>cell {i}</td>" for i in range(4)) + "</tr>"
    wide = f'<table style="width:2000px"><caption>wide one</caption>{row}</table>'
    phone = f'<table style="width:500px"><caption>phone one</caption>{row}</table>'
    for name, body in [
        ("cut.html", wide),
        ("scroll.html", f'<div style="overflow-x:auto">{wide}</div>'),
        ("phone.html", f'<div style="overflow-x:auto">{phone}</div>'),
        ("fits.html", f"<table>{row}</table>"),
    ]:
        (root / name).write_text(
            PAGE.format(
                title=name,
                body=(
                    f'<article style="max-width:600px; overflow:hidden"><p>text</p>{body}</article>'
                ),
            )
        )
    by_page = {
        p.page: p for p in bc.check_site(root, browser=browser, verbose=False).pages
    }
    cut = [m for m in by_page["cut.html"].problems if "a table runs" in m]
    assert (
        len(cut) == 2 and "at 1280 px a table runs 1400 px past the edge" in cut[0]
    ), cut
    assert "wide one" in cut[0] and cut[1].startswith("at 400 px"), cut
    (hidden,) = by_page["scroll.html"].problems
    assert (
        hidden.startswith("at 1280 px a table is 1400 px wider than its box")
        and "wide one" in hidden
    )
    assert by_page["phone.html"].ok and by_page["fits.html"].ok, (
        by_page["phone.html"].problems,
        by_page["fits.html"].problems,
    )


@needs_browser
def test_math_rendered_by_local_mathjax_passes(tmp_path: Path, browser):
    mathjax = bc.ensure_mathjax(fetch=False)
    if mathjax is None:
        pytest.skip(
            "no local MathJax copy (python tools/browsercheck.py fetches one with npm)"
        )
    root = tmp_path / "html"
    root.mkdir()
    cdn = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"
    (root / "m.html").write_text(
        PAGE.format(
            title="M",
            body=(
                f'<script defer src="{cdn}"></script>'
                '<p><span class="math notranslate nohighlight">\\(\\mu = \\frac{a}{b}\\)</span> and '
                '<span class="math notranslate nohighlight">\\(\\undefinedmacro{x}\\)</span></p>'
            ),
        )
    )
    (root / "bad.html").write_text(
        PAGE.format(
            title="Bad",
            body=(
                f'<script defer src="{cdn}"></script>'
                '<p><span class="math notranslate nohighlight">\\(\\frac{a}\\)</span></p>'
            ),
        )
    )
    (root / "good.html").write_text(
        PAGE.format(
            title="Good",
            body=(
                f'<script defer src="{cdn}"></script>'
                '<div class="math notranslate nohighlight">\\[\\sum_v \\alpha_v A_v\\]</div>'
            ),
        )
    )
    report = bc.check_site(
        root, mathjax=mathjax, browser=browser, verbose=False, offline=False
    )
    pages = {p.page: p for p in report.pages}
    assert pages["good.html"].ok and pages["good.html"].math_rendered == 1, pages[
        "good.html"
    ]
    page = pages["m.html"]
    assert page.math == 2 and page.math_rendered == 2, page
    # The undefined macro and the missing argument are MathJax errors, which the check reports.
    assert any("1 formulas with MathJax errors" in m for m in page.problems), (
        page.problems
    )
    assert any(
        "1 formulas with MathJax errors" in m for m in pages["bad.html"].problems
    ), pages["bad.html"].problems


# -- layout: overflow at 1280 px and 400 px, small text, offline MathJax -------------------------


def test_remote_scripts_are_found_in_the_html(tmp_path: Path):
    page = tmp_path / "p.html"
    page.write_text(
        '<script src="_static/a.js"></script><script defer="defer" '
        'src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>'
        "<script src='//cdn.example.org/x.js'></script><img src=\"https://x.org/i.png\">"
    )
    assert bc.remote_scripts(page) == [
        "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js",
        "//cdn.example.org/x.js",
    ]


def test_machine_paths_are_found_in_the_text_only(tmp_path: Path):
    page = tmp_path / "p.html"
    page.write_text(
        "<pre>checkpoint /tmp/ci4/.ci-cache/checkpoints/quick/x.pt\ncache: /home/u/c</pre>"
        "<p>$CAMWALLS_HOME/checkpoints/quick/x.pt, ~/data, https://x.org/tmp/a and "
        "<a href='/tmp/in-a-link'>a</a>; again /tmp/ci4/.ci-cache/checkpoints/quick/x.pt</p>"
        "<script>var p = '/tmp/in/a/script';</script>"
    )
    assert bc.machine_paths(page) == [
        "/tmp/ci4/.ci-cache/checkpoints/quick/x.pt",
        "/home/u/c",
    ]


def test_layout_problems_say_the_width_and_what_sticks_out():
    layout = {
        "viewport": 400,
        "page_width": 454,
        "column": 368,
        "wide": [
            {
                "what": "code.literal",
                "kind": "column",
                "overflow": 54,
                "text": "a/long/file",
            },
            {"what": "table.t", "kind": "column", "overflow": 9, "text": "Table 1"},
        ],
        "scrolled_tables": [{"what": "table.t", "hidden": 30, "text": "Table 2"}],
        "small_text": [{"what": "span", "size": 6.5, "text": "tiny"}],
    }
    msgs = bc.layout_problems(layout, 400, 9)
    assert (
        msgs[0]
        == "at 400 px the page scrolls sideways: it is 454 px wide in a 400 px window"
    )
    assert (
        "code.literal sticks out 54 px past the edge of the content column (368 px wide)"
        in msgs[1]
    )
    assert "a table runs 9 px past the edge" in msgs[2] and "Table 1" in msgs[2]
    assert (
        msgs[3] == "at 400 px text drawn at 6.5 px, under 9 px: span 'tiny'"
        and len(msgs) == 4
    )
    # A table that scrolls in its box fails only where tables must fit (the widest width).
    wide = bc.layout_problems(layout, 400, 9, tables_must_fit=True)
    assert len(wide) == 5 and "a table is 30 px wider than its box" in wide[3]
    assert bc.layout_problems({"viewport": 1280, "page_width": 1280}, 1280) == []


@needs_browser
def test_pages_that_overflow_at_either_width_fail(tmp_path: Path, browser):
    """The check fails a page that scrolls sideways at 1280 px or at 400 px, or clips what sticks
    out of the column, or draws text under 9 px; a page that wraps or scrolls in boxes passes."""
    root = tmp_path / "html"
    root.mkdir()
    token = (
        "x" * 70
    )  # about 600 px of unbreakable monospace: fits at 1280 px, not at 400 px
    pages = {
        "ok.html": (
            "<p>Prose that wraps, and a <code style='overflow-wrap:anywhere'>"
            + token
            + "</code>.</p>"
            "<div style='overflow-x:auto'><div style='width:2000px'>a wide box that scrolls</div></div>"
            "<p style='font-size:10px'>small print, still readable</p>"
        ),
        "phone.html": f"<p>An unbreakable <code>{token}</code> widens the page on a phone.</p>",
        "laptop.html": "<div style='width:1500px'>wider than any laptop</div>",
        "clipped.html": (
            "<div style='overflow:hidden'><span style='display:inline-block; width:1000px'>"
            "a formula cut off at the column's edge</span></div>"
        ),
        "tiny.html": "<p>Body text.</p><p style='font-size:7px'>an unreadable tick label</p>",
        "emoji.html": "<table><tr><td>01_theory</td><td>\u2705</td></tr></table>",
    }
    for name, body in pages.items():
        (root / name).write_text(
            PAGE.replace("<head>", '<head><meta charset="utf-8">').format(
                title=name,
                body=f'<article style="max-width:690px; font-family:monospace">{body}</article>',
            ),
            encoding="utf-8",
        )
    by_page = {
        p.page: p for p in bc.check_site(root, browser=browser, verbose=False).pages
    }
    assert by_page["ok.html"].ok, by_page["ok.html"].problems
    phone = by_page["phone.html"].problems
    assert any(m.startswith("at 400 px the page scrolls sideways") for m in phone), (
        phone
    )
    assert any(m.startswith("at 400 px code sticks out") for m in phone), phone
    assert not any(m.startswith("at 1280 px") for m in phone), phone
    laptop = by_page["laptop.html"].problems
    assert any(
        m.startswith("at 1280 px the page scrolls sideways: it is") for m in laptop
    ), laptop
    clipped = by_page["clipped.html"].problems
    assert any(
        m.startswith("at 1280 px span sticks out") and "cut off" in m for m in clipped
    ), clipped
    assert not any("scrolls sideways" in m for m in clipped), (
        clipped
    )  # clipped, not scrolling
    tiny = by_page["tiny.html"].problems
    assert tiny == [
        "at 1280 px text drawn at 7 px, under 9 px: p 'an unreadable tick label'"
    ], tiny
    emoji = by_page["emoji.html"].problems  # said once, not once per width
    assert len(emoji) == 1 and emoji[0].startswith("an emoji in td '\u2705'"), emoji
    # Only at the widths asked for.
    one = {
        p.page: p
        for p in bc.check_site(
            root, browser=browser, verbose=False, widths=(1280,)
        ).pages
    }
    assert one["phone.html"].ok and not one["laptop.html"].ok


@needs_browser
def test_mathjax_must_come_with_the_book(tmp_path: Path, browser):
    """A page that loads MathJax from the build's own _static passes; one that loads it from a CDN
    fails, even when the local copy is swapped in so that its formulas render."""
    mathjax = bc.ensure_mathjax(fetch=False)
    if mathjax is None:
        pytest.skip(
            "no local MathJax copy (python tools/browsercheck.py fetches one with npm)"
        )
    root = tmp_path / "html"
    (root / "_static").mkdir(parents=True)
    (root / "_static" / "mathjax").symlink_to(mathjax, target_is_directory=True)
    formula = (
        '<div class="math notranslate nohighlight">\\[\\sum_v \\alpha_v A_v\\]</div>'
    )
    (root / "local.html").write_text(
        PAGE.format(
            title="Local",
            body=(
                f'<script defer src="_static/mathjax/tex-chtml.js"></script>{formula}'
            ),
        )
    )
    cdn = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"
    (root / "cdn.html").write_text(
        PAGE.format(title="CDN", body=f'<script defer src="{cdn}"></script>{formula}')
    )
    by_page = {
        p.page: p
        for p in bc.check_site(
            root, mathjax=mathjax, browser=browser, verbose=False
        ).pages
    }
    local = by_page["local.html"]
    assert local.ok and local.math == local.math_rendered == 1, local
    (msg,) = by_page["cdn.html"].problems
    assert (
        msg.startswith(f"loads a script from another host, {cdn}")
        and by_page["cdn.html"].math_rendered == 1
    )
