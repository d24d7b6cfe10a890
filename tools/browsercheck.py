"""Check the built book in a real browser: ``python tools/browsercheck.py``.

One idea: open every page of ``_build/html`` in headless Chromium, driven by selenium through
the system's ``chromedriver``, and fail on what a reader would see broken. ``make test`` runs it
after the book build (``make browser`` installs Debian's ``chromium chromium-driver`` first).

It serves the site on a localhost port (``http.server`` in a thread) and checks, page by page:

* the page loads and no file it asks the local server for is missing (any HTTP 404);
* no broken image (``naturalWidth > 0``; an SVG file that exists and parses counts as loaded),
  and no image from another host (the book must be readable offline, badges included);
* no broken internal link: every local ``href`` points to a file of the build, and its
  ``#anchor`` to an ``id`` of that page; a Colab link to this repository names a notebook
  that exists in the checkout;
* no Markdown table printed as text (a ``|---|`` row in a paragraph: the table was not parsed);
* math is rendered: MathJax turned every formula into an ``mjx-container``, without errors;
  and the page reads offline: no script from another host (the book bundles MathJax through
  the ``sphinx-mathjax-offline`` extension, so a CDN's MathJax fails the page);
* figures are visible: every image of a figure or a cell output has a non-zero size on screen;
* the layout fits, at every width of :data:`WIDTHS` (1280 px, a laptop, and 400 px, a phone;
  ``--width``): the page does not scroll sideways (``scrollWidth`` wider than the window), and
  nothing sticks out of the content column (the ``<article>``) unless it sits in a box of its
  own that scrolls sideways (``overflow-x: auto``: a wide table's ``div.camwalls-scroll``,
  display math), and at the widest width a table fits without scrolling in its box (readers
  take hidden columns for cut off); text is not drawn under :data:`MIN_FONT_PX` (the computed
  font size of every visible text node; text drawn inside images, as the figures' PNGs, and
  MathJax's glyphs, which are CSS pseudo-elements, cannot be measured this way); no emoji
  pictograph in the text (an empty box where no emoji font is installed). Every check runs at
  the first width; the layout (``browsercheck_layout.js``) again at the others, on the page
  already loaded.

It screenshots a few pages into ``_build/screenshots/`` (at each width), prints a summary and
exits 1 when a page fails. Offline, as on the book's build machines, Chromium is told that no
host but ``127.0.0.1`` exists. A build that still loads MathJax from a CDN gets it served from a
local copy, so that its formulas are checked too (the page fails anyway, unless
``--allow-cdn``): ``--mathjax`` / ``$CAMWALLS_MATHJAX`` (a MathJax 3 ``es5`` folder), or MathJax
3.2.2 fetched once with ``npm pack`` into the cache, its SHA-256 checked (npm's tarball of that
version is immutable, so a different digest means a tampered or corrupt download). The HTML
files themselves are not changed.

Chromium and chromedriver: ``$CAMWALLS_CHROMIUM`` / ``$CAMWALLS_CHROMEDRIVER``, else Debian's
paths. The driver path is always passed to selenium, so selenium-manager never downloads
anything; when either is missing, :class:`BrowserNotFound` says the command that installs them.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import html.parser
import http.server
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if (
    str(ROOT) not in sys.path
):  # run as a script from a checkout: helpers/ is beside tools/
    sys.path.insert(0, str(ROOT))

from helpers import cli  # noqa: E402  (standard library only)

__all__ = [
    "CHROMIUM_FLAGS",
    "BrowserNotFound",
    "find_browser",
    "require_browser",
    "open_browser",
    "ensure_mathjax",
    "StaticServer",
    "PageReport",
    "SiteReport",
    "list_pages",
    "page_ids",
    "set_viewport",
    "remote_scripts",
    "machine_paths",
    "layout_problems",
    "WIDTHS",
    "MIN_FONT_PX",
    "check_site",
    "main",
]

#: Flags without which headless Chromium hangs or phones home on a machine with no network.
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-extensions",
    "--hide-scrollbars",
    # Every host but the local server is unknown: external requests fail at once.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)
CHROMIUM_CANDIDATES = (
    "/usr/lib/chromium/chromium",
    "/usr/bin/chromium",
    "chromium",
    "chromium-browser",
)
CHROMEDRIVER_CANDIDATES = (
    "/usr/bin/chromedriver",
    "/usr/lib/chromium/chromedriver",
    "chromedriver",
)
INSTALL_HINT = (
    "Install Debian's Chromium and its driver: `make browser` (as root), or `sudo apt-get "
    "install -y chromium chromium-driver`; or point $CAMWALLS_CHROMIUM and "
    "$CAMWALLS_CHROMEDRIVER at a Chromium binary and the matching chromedriver."
)

#: MathJax served to the browser in place of the CDN copy (same major version as Jupyter Book 1).
MATHJAX_VERSION = "3.2.2"
MATHJAX_SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
#: A script src of a remote MathJax 3 ``es5`` build; group 1 is the file inside ``es5/``.
_MATHJAX_SRC = re.compile(
    r"""https?://[^"'\s]*mathjax[^"'\s]*/es5/([^"'?\s]+)(?:\?[^"'\s]*)?"""
)
_MATHJAX_MOUNT = "/__mathjax__/"

#: The window widths (CSS px) every page is laid out at: a laptop and a phone.
WIDTHS: tuple[int, ...] = (1280, 400)
#: Text drawn smaller than this (computed font-size, CSS px) fails the page.
MIN_FONT_PX = 9.0

#: Pages screenshotted by default (those that exist).
DEFAULT_SCREENSHOTS = (
    "book/intro.html",
    "notebooks/01_theory.html",
    "notebooks/08_explorer.html",
    "book/results.html",
    "book/status.html",
)
_SKIP_DIRS = {
    "_static",
    "_sources",
    "_images",
    "_downloads",
    ".doctrees",
    ".jupyter_cache",
    "jupyter_execute",
    "_panels_static",
}


class BrowserNotFound(RuntimeError):
    """Chromium, chromedriver or selenium is missing."""


# -- the browser ------------------------------------------------------------------------------


def _which(candidates: Iterable[str]) -> Path | None:
    for cand in filter(None, candidates):
        found = cand if os.path.isabs(cand) else shutil.which(cand)
        if found and os.path.isfile(found) and os.access(found, os.X_OK):
            return Path(found)
    return None


def find_browser() -> tuple[Path, Path] | None:
    """``(chromium, chromedriver)``, or ``None`` when either is missing."""
    chromium = _which([os.environ.get("CAMWALLS_CHROMIUM", ""), *CHROMIUM_CANDIDATES])
    driver = _which(
        [os.environ.get("CAMWALLS_CHROMEDRIVER", ""), *CHROMEDRIVER_CANDIDATES]
    )
    return (chromium, driver) if chromium and driver else None


def require_browser() -> tuple[Path, Path]:
    """:func:`find_browser`, or :class:`BrowserNotFound` naming the command that installs them."""
    found = find_browser()
    if found is None:
        raise BrowserNotFound(f"Chromium or chromedriver not found. {INSTALL_HINT}")
    return found


@contextmanager
def open_browser(
    chromium: Path,
    chromedriver: Path,
    width: int = 1280,
    height: int = 900,
    page_timeout_s: float = 30.0,
):
    """A selenium ``webdriver.Chrome`` on headless ``chromium`` through ``chromedriver`` (given
    explicitly: selenium-manager is never asked), with a fresh profile; quits on exit."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as err:
        raise BrowserNotFound(
            "The browser check needs selenium: pip install -e '.[test]' "
            "(or pip install selenium)."
        ) from err
    if not Path(chromedriver).is_file():
        raise BrowserNotFound(f"No chromedriver at {chromedriver}. {INSTALL_HINT}")
    profile = tempfile.mkdtemp(prefix="camwalls-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in (
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(
            service=Service(executable_path=str(chromedriver)), options=options
        )
        try:
            driver.set_page_load_timeout(page_timeout_s)
            driver.set_script_timeout(20)
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def set_viewport(driver, width: int, height: int = 900) -> None:
    """Lay the page out in a ``width`` x ``height`` CSS-pixel window (Chromium's device metrics
    override, exact to the pixel, unlike a window size; kept across page loads)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": int(width),
            "height": int(height),
            "deviceScaleFactor": 1,
            "mobile": False,
        },
    )


def _screenshot(
    driver, path: Path, width: int = 1280, height: int = 900, max_height: int = 8000
) -> Path:
    """Save a PNG of the whole page at ``width`` (up to ``max_height`` CSS pixels): grow the
    viewport, shoot, then lay the page out at ``width`` x ``height`` again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    set_viewport(driver, width, height)
    full = int(
        driver.execute_script(
            "return Math.ceil(document.documentElement.scrollHeight);"
        )
        or height
    )
    set_viewport(driver, width, min(max(full, height), max_height))
    try:
        path.write_bytes(driver.get_screenshot_as_png())
    finally:
        set_viewport(driver, width, height)
    return path


# -- MathJax ----------------------------------------------------------------------------------


def _mathjax_ok(es5: Path) -> bool:
    return (es5 / "tex-mml-chtml.js").is_file()


def ensure_mathjax(fetch: bool = True) -> Path | None:
    """A local MathJax 3 ``es5`` folder, or ``None`` when none can be had.

    ``$CAMWALLS_MATHJAX``, then ``<cache>/mathjax/<version>/es5``; when missing and ``fetch``,
    ``npm pack mathjax@3.2.2`` (npm's ordinary client), whose tarball must have
    :data:`MATHJAX_SHA256` before its ``es5/`` folder is unpacked into the cache.
    """
    env = os.environ.get("CAMWALLS_MATHJAX", "").strip()
    if env:
        for cand in (Path(env).expanduser(), Path(env).expanduser() / "es5"):
            if _mathjax_ok(cand):
                return cand
        raise FileNotFoundError(
            f"$CAMWALLS_MATHJAX={env} holds no MathJax 3 es5 build "
            "(expected tex-mml-chtml.js in it or in its es5/ folder)."
        )
    from helpers.config import cache_dir

    target = cache_dir("mathjax", MATHJAX_VERSION, create=False) / "es5"
    npm = shutil.which("npm")
    if _mathjax_ok(target) or not fetch or npm is None:
        return target if _mathjax_ok(target) else None
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--silent"],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=300,
        )
        tgz = Path(tmp) / f"mathjax-{MATHJAX_VERSION}.tgz"
        if proc.returncode != 0 or not tgz.is_file():
            print(
                f"npm pack mathjax@{MATHJAX_VERSION} failed: {proc.stderr.strip()[-500:]}",
                file=sys.stderr,
            )
            return None
        digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
        if digest != MATHJAX_SHA256:
            raise RuntimeError(
                f"mathjax-{MATHJAX_VERSION}.tgz has SHA-256 {digest}, expected "
                f"{MATHJAX_SHA256}: refusing to use it."
            )
        with tarfile.open(
            tgz
        ) as tar:  # only package/es5/ files, no path leaving the folder
            members = [
                m
                for m in tar.getmembers()
                if m.name.startswith("package/es5/")
                and m.isfile()
                and ".." not in Path(m.name).parts
            ]
            tar.extractall(Path(tmp) / "unpacked", members=members)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(Path(tmp) / "unpacked" / "package" / "es5"), str(target))
    return target if _mathjax_ok(target) else None


# -- the local web server ---------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    site: "StaticServer"

    def log_message(self, format, *args):  # noqa: A002 - silence the per-request log
        pass

    def _send(self, data: bytes, content_type: str):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        return io.BytesIO(data)

    def send_head(self):  # noqa: D102
        path = urllib.parse.urlsplit(self.path).path
        mathjax = self.site.mathjax
        if mathjax is not None and path.startswith(_MATHJAX_MOUNT):
            rel = Path(urllib.parse.unquote(path[len(_MATHJAX_MOUNT) :]))
            if ".." in rel.parts or not (mathjax / rel).is_file():
                self.send_error(404)
                return None
            return self._send((mathjax / rel).read_bytes(), self.guess_type(str(rel)))
        local = Path(self.translate_path(self.path))
        if mathjax is not None and local.suffix == ".html" and local.is_file():
            text = _MATHJAX_SRC.sub(
                lambda m: _MATHJAX_MOUNT + m.group(1),
                local.read_text(encoding="utf-8", errors="replace"),
            )
            return self._send(text.encode("utf-8"), "text/html; charset=utf-8")
        return super().send_head()

    def send_response(self, code, message=None):  # noqa: D102
        self.site._record(urllib.parse.urlsplit(self.path).path, code)
        super().send_response(code, message)


class StaticServer:
    """Serve ``root`` on ``http://127.0.0.1:<free port>/`` from a thread (a context manager).

    Records every request's ``(path, status)`` (:meth:`take_requests`); when ``mathjax`` (an
    ``es5`` folder) is given, serves it under ``/__mathjax__/`` and points the pages there.
    """

    def __init__(self, root: str | Path, mathjax: Path | None = None):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"Nothing to serve: {self.root} is not a folder.")
        self.mathjax = mathjax
        self._lock = threading.Lock()
        self._requests: list[tuple[str, int]] = []
        handler = type("Handler", (_Handler,), {"site": self})
        self._httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(self.root))
        )
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _record(self, path: str, code: int) -> None:
        with self._lock:
            self._requests.append((urllib.parse.unquote(path), int(code)))

    def take_requests(self) -> list[tuple[str, int]]:
        """The ``(path, status)`` of every request since the last call (and forget them)."""
        with self._lock:
            out, self._requests = self._requests, []
        return out

    def __enter__(self) -> "StaticServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# -- the checks -------------------------------------------------------------------------------

#: What sticks out sideways and text drawn too small: ``camwallsLayout(minFontPx)``.
_LAYOUT_JS = (Path(__file__).with_name("browsercheck_layout.js")).read_text(
    encoding="utf-8"
)
#: Runs in the page once it has loaded: waits for images and MathJax, then reports.
_PAGE_PROBE = (
    _LAYOUT_JS
    + "\n"
    + Path(__file__).with_name("browsercheck_probe.js").read_text(encoding="utf-8")
)
#: Runs again at every other width, on the page already loaded.
_LAYOUT_PROBE = _LAYOUT_JS + "\nreturn camwallsLayout(arguments[0]);"
#: A ``<script src>`` on another host (``http(s)://`` or ``//``): the page needs the network.
_REMOTE_SCRIPT = re.compile(
    r"""<script\b[^>]*\bsrc\s*=\s*["']?((?:https?:)?//[^"'\s>]+)""", re.I
)


#: An absolute path of the machine that built the book, as a cell printed it (``/tmp/...``).
_MACHINE_PATH = re.compile(
    r"""(?<![\w.:/~$-])/(?:tmp|home|root|Users|work|var|mnt)/[^\s<>"'`]+"""
)


def machine_paths(path: str | Path) -> list[str]:
    """The build machine's absolute paths in an HTML file's text (scripts and styles left out),
    which a page should print relative to ``$CAMWALLS_HOME``
    (:func:`helpers.config.display_path`); each once, in order."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text)
    text = re.sub(
        r"<[^>]*>", " ", text
    )  # attribute values (links) are not printed text
    return list(dict.fromkeys(_MACHINE_PATH.findall(text)))


def remote_scripts(path: str | Path) -> list[str]:
    """The scripts an HTML file loads from another host (a CDN's MathJax, say), in order."""
    return _REMOTE_SCRIPT.findall(
        Path(path).read_text(encoding="utf-8", errors="replace")
    )


def layout_problems(
    layout: dict, width: int, min_font_px: float = 9.0, *, tables_must_fit: bool = False
) -> list[str]:
    """The problems in one :file:`browsercheck_layout.js` report taken at ``width`` px: the page
    scrolls sideways, an element sticks out of the content column (or the window) outside a
    sideways-scrolling box of its own, text is drawn below ``min_font_px``, or an emoji (an
    empty box without an emoji font; the caller says it at one width only); with
    ``tables_must_fit`` (the widest width, a laptop), also a table that fits only by scrolling
    in its box (readers take its hidden columns for cut off)."""
    problems = []
    page, viewport = (
        int(layout.get("page_width", 0)),
        int(layout.get("viewport", width)),
    )
    if page > viewport + 1:
        problems.append(
            f"at {width} px the page scrolls sideways: it is {page} px wide in a "
            f"{viewport} px window"
        )
    for w in layout.get("wide", []):
        edge = "the window"
        if w.get("kind") == "column":
            edge = f"the content column ({layout.get('column', '?')} px wide)"
        what, text, over = w.get("what", ""), w.get("text", ""), w["overflow"]
        if what.startswith("table"):
            problems.append(
                f"at {width} px a table runs {over} px past the edge of {edge} "
                f"({text!r}...): let its cells wrap (class camwalls-wrap) or put it "
                "in a sideways-scrolling box (div.camwalls-scroll)"
            )
        else:
            problems.append(
                f"at {width} px {what} sticks out {over} px past the edge of {edge} "
                f"({text!r}): let it wrap, or scroll in a box of its own "
                "(overflow-x: auto)"
            )
    for t in layout.get("scrolled_tables", []) if tables_must_fit else []:
        problems.append(
            f"at {width} px a table is {t['hidden']} px wider than its box, which "
            f"scrolls sideways ({t.get('text', '')!r}...): at this width it should "
            "fit; let its cells wrap (html_table(..., wrap=True), class camwalls-wrap)"
        )
    for t in layout.get("emoji", []):
        problems.append(
            f"an emoji in {t.get('what')} {t.get('text', '')!r}: it draws as an empty "
            "box where no emoji font is installed; write a word, or use a Font "
            "Awesome icon (the theme ships it)"
        )
    for t in layout.get("small_text", []):
        problems.append(
            f"at {width} px text drawn at {t['size']} px, under {min_font_px:g} px: "
            f"{t.get('what')} {t.get('text', '')!r}"
        )
    return problems


class _IdCollector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.ids.update(
            v for k, v in attrs if v and (k == "id" or (k == "name" and tag == "a"))
        )


@functools.lru_cache(maxsize=512)
def _ids_of(path: str, mtime: float) -> frozenset[str]:
    parser = _IdCollector()
    parser.feed(Path(path).read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


def page_ids(path: str | Path) -> frozenset[str]:
    """Every ``id`` (and ``<a name>``) of an HTML file: the anchors a link may point to."""
    path = Path(path)
    return _ids_of(str(path.resolve()), path.stat().st_mtime)


def list_pages(html_dir: str | Path) -> list[Path]:
    """Every HTML page of a build (relative paths, sorted), leaving out Sphinx's asset folders."""
    root = Path(html_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"No built book at {root}: build it first (`make book`, or "
            "`python -m tools.build`), or pass --html DIR."
        )
    rels = (p.relative_to(root) for p in sorted(root.rglob("*.html")))
    return [rel for rel in rels if not (rel.parts and rel.parts[0] in _SKIP_DIRS)]


@dataclass
class PageReport:
    """What the browser found on one page; ``problems`` empty means the page passed."""

    page: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    title: str = ""
    images: int = 0
    figures: int = 0
    links: int = 0
    math: int = 0
    math_rendered: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class SiteReport:
    """All pages' reports, the screenshots taken and the time it took."""

    pages: list[PageReport]
    screenshots: list[Path]
    seconds: float
    mathjax: Path | None = None
    widths: tuple[int, ...] = WIDTHS
    min_font_px: float = MIN_FONT_PX

    @property
    def ok(self) -> bool:
        return bool(self.pages) and all(p.ok for p in self.pages)

    def summary(self) -> str:
        """A human-readable summary, one line per page, then the failures in full."""
        where = f"local copy {self.mathjax}" if self.mathjax else "as the pages load it"
        lines = [
            f"Browser check of {len(self.pages)} pages in {self.seconds:.1f} s "
            f"(headless Chromium at {' and '.join(f'{w} px' for w in self.widths)} wide; "
            f"MathJax {where}; text under {self.min_font_px:g} px fails, except text drawn "
            "inside images, which cannot be measured)"
        ]
        for p in self.pages:
            lines.append(
                f"  {'ok  ' if p.ok else 'FAIL'} {p.page:<45} {p.images:3d} img ({p.figures} fig) "
                f"{p.links:4d} links {p.math_rendered:3d}/{p.math:<3d} math  {p.seconds:5.2f} s"
            )
        for p in self.pages:
            if not p.ok:
                lines += [f"\n{p.page}:", *(f"  - {msg}" for msg in p.problems)]
        notes = [(p.page, n) for p in self.pages for n in p.notes]
        if notes:
            lines += [
                "\nNotes (not failures):",
                *(f"  - {page}: {n}" for page, n in notes[:40]),
            ]
        if self.screenshots:
            lines.append(
                "\nScreenshots: " + ", ".join(str(s) for s in self.screenshots)
            )
        lines.append(
            ("PASSED" if self.ok else "FAILED")
            + f": {sum(p.ok for p in self.pages)} of "
            f"{len(self.pages)} pages passed every check."
        )
        return "\n".join(lines)


def _repo_notebook_for_colab(
    url: str, repo_url: str | None, repo_root: Path | None
) -> str | None:
    """For a Colab link into this repository, the problem with it (``None`` when fine or not ours):
    it must name a ``.ipynb`` file that exists in the checkout (Colab opens nothing else)."""
    parts = urllib.parse.urlsplit(url)
    if not repo_url or repo_root is None or parts.netloc != "colab.research.google.com":
        return None
    prefix = f"/github/{urllib.parse.urlsplit(repo_url).path.strip('/')}/blob/"
    if not parts.path.startswith(prefix):
        return None
    rel = parts.path[len(prefix) :].partition("/")[2]
    if not rel:
        return f"Colab link {url} names no file"
    if not (repo_root / rel).is_file():
        return f"Colab link {url} points to {rel}, which is not in the repository"
    if not rel.endswith(".ipynb"):
        return (
            f"Colab link {url} points to {rel}, which Colab cannot open (not a .ipynb); hide it "
            "(book/_static/camwalls.css does, for the theme's launch buttons) or link a notebook"
        )
    return None


def _check_links(
    page: Path,
    links: list[dict],
    html_dir: Path,
    base_url: str,
    repo_url: str | None,
    repo_root: Path | None,
) -> tuple[list[str], int]:
    problems: list[str] = []
    local = 0
    seen: set[str] = set()
    for link in links:
        attr, href = link.get("attr") or "", link.get("href") or ""
        if href in seen or urllib.parse.urlsplit(href).scheme in (
            "mailto",
            "javascript",
            "tel",
            "data",
        ):
            continue
        seen.add(href)
        if not href.startswith(base_url):
            msg = (
                None
                if link.get("hidden")
                else _repo_notebook_for_colab(href, repo_url, repo_root)
            )
            problems += [msg] if msg else []
            continue
        local += 1
        parts = urllib.parse.urlsplit(href)
        rel = urllib.parse.unquote(parts.path)[1:]
        target = (
            html_dir / rel / "index.html"
            if rel == "" or rel.endswith("/")
            else html_dir / rel
        )
        if not target.exists():
            problems.append(
                f"broken link {attr!r}: {target.relative_to(html_dir)} does not exist"
            )
            continue
        frag = urllib.parse.unquote(parts.fragment)
        if (
            frag
            and target.is_file()
            and target.suffix == ".html"
            and frag not in page_ids(target)
        ):
            problems.append(
                f"broken anchor {attr!r}: no id {frag!r} in {target.relative_to(html_dir)}"
            )
    return problems, local


def _image_problems(
    images: list[dict], html_dir: Path, base_url: str
) -> tuple[list[str], int]:
    problems, figures = [], 0
    for img in images:
        src = img.get("src") or img.get("attr") or ""
        shown = img.get("attr") or src
        figures += bool(img.get("figure"))
        if src.startswith("data:"):
            if img.get("width", 0) == 0:
                problems.append(f"broken inline image (alt {img.get('alt')!r})")
            continue
        if not src.startswith(base_url):
            problems.append(
                f"image from another host {shown!r}: the book must show it offline "
                "(put the file in book/_static and link it locally)"
            )
            continue
        if img.get("width", 0) == 0:
            file = html_dir / urllib.parse.unquote(urllib.parse.urlsplit(src).path)[1:]
            # an SVG without intrinsic size reports naturalWidth 0 but is fine
            if not (
                file.suffix.lower() == ".svg"
                and file.is_file()
                and b"<svg" in file.read_bytes()[:4096]
            ):
                problems.append(
                    f"broken image {shown!r} (naturalWidth 0"
                    f"{'' if file.is_file() else ', file missing'})"
                )
                continue
        if img.get("figure") and not img.get("folded") and not img.get("visible"):
            problems.append(
                f"figure image {shown!r} is not visible (zero size or hidden)"
            )
    return problems, figures


_REFRESH = re.compile(
    r'<meta[^>]+http-equiv=["\']?refresh["\']?[^>]*content=["\'][^"\']*url=([^"\'>\s]+)',
    re.I,
)


def _redirect_target(path: Path) -> str | None:
    """The URL a page redirects to with ``<meta http-equiv="refresh">``, or ``None``."""
    match = _REFRESH.search(path.read_text(encoding="utf-8", errors="replace")[:4096])
    return match.group(1) if match else None


def _read_repo_url(repo_root: Path | None) -> str | None:
    """``repository.url`` of the book's ``_config.yml`` (no trailing slash), or ``None``."""
    if repo_root is None or not (repo_root / "_config.yml").is_file():
        return None
    import yaml  # a dependency of jupyter-book

    data = yaml.safe_load((repo_root / "_config.yml").read_text()) or {}
    return (
        str((data.get("repository") or {}).get("url") or "").strip().rstrip("/") or None
    )


def _check_page(
    rep: PageReport,
    info: dict,
    requests: list,
    html_dir: Path,
    base_url: str,
    require_math: bool,
    repo_url: str | None,
    repo_root: Path | None,
) -> None:
    """Fill ``rep`` from what the probe found (``info``) and the server's ``requests``."""
    rep.title = info.get("title", "")
    for path, code in requests:
        if code >= 400 and path != "/favicon.ico":  # Chromium asks for it unprompted
            what = (
                "the page itself" if path.lstrip("/") == rep.page else "a file it loads"
            )
            rep.problems.append(f"HTTP {code} for {what}: {path}")
    if info.get("text_length", 0) == 0:
        rep.problems.append("the page shows no text")
    if info.get("raw_tables"):
        rep.problems.append(
            f"{info['raw_tables']} Markdown table(s) shown as plain text (|---| in a "
            "paragraph): the table was not parsed"
        )
    img_problems, rep.figures = _image_problems(
        info.get("images", []), html_dir, base_url
    )
    rep.problems += img_problems
    rep.images = len(info.get("images", []))
    link_problems, rep.links = _check_links(
        Path(rep.page), info.get("links", []), html_dir, base_url, repo_url, repo_root
    )
    rep.problems += link_problems
    rep.math, rep.math_rendered = (
        int(info.get("math", 0)),
        int(info.get("math_rendered", 0)),
    )
    if not rep.math:
        return
    if not info.get("mathjax"):
        msg = f"{rep.math} formulas but MathJax did not load (offline with no local MathJax: see --mathjax)"
        (rep.problems if require_math else rep.notes).append(msg)
    elif rep.math_rendered < rep.math:
        rep.problems.append(
            f"math not rendered: {rep.math - rep.math_rendered} of {rep.math} formulas "
            "have no MathJax output"
        )
    if info.get("math_errors"):
        rep.problems.append(
            f"{info['math_errors']} formulas with MathJax errors (an undefined macro or "
            "bad LaTeX): look for red formulas on the page"
        )


def check_site(
    html_dir: str | Path,
    *,
    screenshots_dir: str | Path | None = None,
    screenshot_pages: Sequence[str] = DEFAULT_SCREENSHOTS,
    mathjax: Path | None = None,
    require_math: bool = True,
    repo_root: str | Path | None = None,
    browser: tuple[Path, Path] | None = None,
    verbose: bool = True,
    widths: Sequence[int] = WIDTHS,
    min_font_px: float = MIN_FONT_PX,
    offline: bool = True,
) -> SiteReport:
    """Open every page of ``html_dir`` in headless Chromium and check it (see the module doc).

    ``mathjax``: a local MathJax 3 ``es5`` folder served in place of the CDN copy;
    ``require_math=False`` turns "MathJax did not load" into a note; ``repo_root``: the
    repository (``_config.yml``'s URL, Colab links); ``browser``: ``(chromium, chromedriver)``,
    default :func:`require_browser`; ``widths``: the window widths (CSS px) at which the layout
    is checked, every check at the first, the layout again at the others (screenshots at
    each); ``min_font_px``: the smallest text size allowed; ``offline``: a page that loads a
    script from another host (MathJax from a CDN) fails. Returns a :class:`SiteReport`.
    """
    from selenium.common.exceptions import WebDriverException

    if not widths:
        raise ValueError(
            "widths is empty: give at least one window width, e.g. (1280, 400)."
        )
    start = time.perf_counter()
    html_dir = Path(html_dir).resolve()
    pages = list_pages(html_dir)
    if not pages:
        raise FileNotFoundError(f"No HTML page in {html_dir}: was the book built?")
    repo_root = Path(repo_root).resolve() if repo_root is not None else None
    repo_url = _read_repo_url(repo_root)
    chromium, chromedriver = browser if browser is not None else require_browser()
    reports: list[PageReport] = []
    shots: list[Path] = []
    wanted = {str(Path(p)) for p in screenshot_pages}
    first, *others = [int(w) for w in widths]
    with (
        StaticServer(html_dir, mathjax=mathjax) as server,
        open_browser(chromium, chromedriver) as driver,
    ):
        set_viewport(driver, first)
        for rel in pages:
            rep = PageReport(page=rel.as_posix())
            reports.append(rep)
            t0 = time.perf_counter()
            redirect = _redirect_target(html_dir / rel)
            if (
                redirect is not None
            ):  # e.g. the root index.html of Jupyter Book: check its target
                target = (html_dir / rel).parent / urllib.parse.unquote(
                    urllib.parse.urlsplit(redirect).path
                )
                if not target.is_file():
                    rep.problems.append(
                        f"redirects to {redirect!r}, which does not exist"
                    )
                rep.notes.append(f"a redirect to {redirect}")
                rep.seconds = time.perf_counter() - t0
                continue
            if offline:
                rep.problems += [
                    f"loads a script from another host, {src}: the page needs the "
                    "network (bundle it with the book; MathJax: the "
                    "sphinx-mathjax-offline extension)"
                    for src in remote_scripts(html_dir / rel)
                ]
            rep.notes += [
                f"prints the build machine's path {where} (show it relative to "
                "$CAMWALLS_HOME: helpers.config.display_path)"
                for where in machine_paths(html_dir / rel)[:3]
            ]
            server.take_requests()
            try:
                driver.get(server.base_url + urllib.parse.quote(rel.as_posix()))
                info = driver.execute_async_script(_PAGE_PROBE, min_font_px) or {}
                layouts = [(first, info.get("layout") or {})]
                for width in others:
                    set_viewport(driver, width)
                    layouts.append(
                        (width, driver.execute_script(_LAYOUT_PROBE, min_font_px) or {})
                    )
            except WebDriverException as err:
                rep.problems.append(
                    f"the page did not load: {(err.msg or str(err)).strip()[:500]}"
                )
                set_viewport(driver, first)
                continue
            _check_page(
                rep,
                info,
                server.take_requests(),
                html_dir,
                server.base_url,
                require_math,
                repo_url,
                repo_root,
            )
            small_seen: set[tuple] = set()
            for (
                width,
                layout,
            ) in layouts:  # the same small text at every width is said once
                small = [
                    t
                    for t in layout.get("small_text", [])
                    if (t.get("what"), t.get("text")) not in small_seen
                ]
                small_seen.update((t.get("what"), t.get("text")) for t in small)
                once = (
                    {"emoji": []} if width != first else {}
                )  # emoji: said at one width
                rep.problems += layout_problems(
                    {**layout, "small_text": small, **once},
                    width,
                    min_font_px,
                    tables_must_fit=width == max(widths),
                )
            if rel.as_posix() in wanted and screenshots_dir is not None:
                stem = rel.as_posix().replace("/", "__").removesuffix(".html")
                for width in (first, *others):
                    name = f"{stem}.png" if width == first else f"{stem}-{width}px.png"
                    try:
                        shots.append(
                            _screenshot(
                                driver, Path(screenshots_dir) / name, width=width
                            )
                        )
                    except WebDriverException as err:
                        why = (err.msg or str(err)).strip()[:200]
                        rep.notes.append(f"screenshot at {width} px failed: {why}")
            if others:
                set_viewport(driver, first)
            rep.seconds = time.perf_counter() - t0
            if verbose:
                print(
                    f"  {'ok  ' if rep.ok else 'FAIL'} {rep.page} ({rep.seconds:.1f} s)",
                    flush=True,
                )
    return SiteReport(
        pages=reports,
        screenshots=shots,
        seconds=time.perf_counter() - start,
        mathjax=mathjax,
        widths=(first, *others),
        min_font_px=min_font_px,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The command: exit status 0 when every page passed, 1 when a page failed,
    :data:`helpers.cli.EXIT_ERROR` when the check could not run (no browser, no built site: one
    ``error: ...`` line on stderr; ``--debug``: the traceback)."""
    parser = argparse.ArgumentParser(
        prog="python tools/browsercheck.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--html",
        type=Path,
        default=ROOT / "_build" / "html",
        help="the built site (default: _build/html)",
    )
    parser.add_argument(
        "--screenshots",
        type=Path,
        default=ROOT / "_build" / "screenshots",
        help="where the PNG screenshots go (default: _build/screenshots)",
    )
    parser.add_argument(
        "--screenshot",
        action="append",
        default=None,
        metavar="PAGE",
        help="a page to screenshot, e.g. book/intro.html (repeatable)",
    )
    parser.add_argument(
        "--mathjax",
        type=Path,
        default=None,
        help="a local MathJax 3 es5 folder (default: $CAMWALLS_MATHJAX, the cache, "
        "or npm pack mathjax@3.2.2)",
    )
    parser.add_argument(
        "--width",
        type=int,
        action="append",
        default=None,
        metavar="PX",
        help="a window width to lay the pages out at (repeatable; default: "
        + " and ".join(map(str, WIDTHS))
        + ")",
    )
    parser.add_argument(
        "--min-font",
        type=float,
        default=MIN_FONT_PX,
        metavar="PX",
        help=f"the smallest text size allowed, CSS px (default: {MIN_FONT_PX:g})",
    )
    parser.add_argument(
        "--allow-cdn",
        action="store_true",
        help="do not fail pages that load a script (MathJax) from another host",
    )
    parser.add_argument(
        "--no-math",
        action="store_true",
        help="do not fail pages whose MathJax cannot load (offline, no local copy)",
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="kept for old scripts: this command never installs anything "
        "(`make browser` installs chromium chromium-driver)",
    )
    return cli.parse_and_run(parser, argv, _command)


def _command(args: argparse.Namespace) -> int:
    """The body of :func:`main`; raises :class:`BrowserNotFound` or ``FileNotFoundError``."""
    browser = require_browser()
    # A book that bundles MathJax needs no local copy; an older build, loading it from a CDN
    # (which fails the page unless --allow-cdn), gets one so that its formulas are still checked.
    cdn = args.html.is_dir() and any(
        _MATHJAX_SRC.search(src)
        for page in list_pages(args.html)
        for src in remote_scripts(args.html / page)
    )
    mathjax = args.mathjax or (ensure_mathjax() if cdn else None)
    if cdn and mathjax is None:
        print(
            "browsercheck: no local MathJax (npm missing or offline); pages will load it from "
            "the CDN, which fails without a network. Set CAMWALLS_MATHJAX to a MathJax 3 es5 folder.",
            file=sys.stderr,
        )
    print(f"Checking {args.html} in {browser[0]} ...", flush=True)
    report = check_site(
        args.html,
        screenshots_dir=args.screenshots,
        screenshot_pages=args.screenshot or DEFAULT_SCREENSHOTS,
        mathjax=mathjax,
        require_math=not args.no_math,
        repo_root=ROOT,
        browser=browser,
        widths=args.width or WIDTHS,
        min_font_px=args.min_font,
        offline=not args.allow_cdn,
    )
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
