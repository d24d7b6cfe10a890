"""Check the built book in a real browser: ``python -m helpers.browsercheck``.

What ``make test`` runs after the book build. It serves ``_build/html`` on a localhost port
(``http.server`` in a thread), opens every HTML page in headless Chromium (Debian's
``chromium`` driven through ``chromedriver`` by the tiny W3C WebDriver client below: no
extra Python package) and checks, page by page:

* the page loads (HTTP 200) and no file it asks the local server for is missing (CSS,
  scripts, fonts, images: any 404 is reported);
* no broken image: every ``<img>`` has loaded (``naturalWidth > 0``; an SVG file that exists
  and parses counts as loaded), and no image comes from another host (the book must be
  readable offline, badges included);
* no broken internal link: every local ``href`` points to a file of the build, and its
  ``#anchor`` (if any) to an ``id`` of that page; a Colab link to this repository points to a
  notebook that exists in the checkout;
* math is rendered: on a page with math, MathJax turned every formula into an
  ``mjx-container`` and reported no error (``mjx-merror``);
* figures are visible: every image of a figure or a cell output has a non-zero size on screen.

It also takes screenshots of a few pages into ``_build/screenshots/``, prints a summary and
exits non-zero when a check fails.

Offline, as on the book's build machines, Chromium is told that no host but ``127.0.0.1``
exists (external requests fail at once instead of hanging), and the MathJax that the pages
load from a CDN is served from a local copy instead: ``$CAMWALLS_MATHJAX`` (a MathJax 3
``es5`` folder), or MathJax 3.2.2 fetched once with ``npm pack`` into the cache directory
(SHA-256 checked). The HTML files themselves are not changed.

Chromium: ``$CAMWALLS_CHROMIUM`` and ``$CAMWALLS_CHROMEDRIVER``, else Debian's paths. When they
are missing and we run as root with ``apt-get``, they are installed
(``apt-get install chromium chromium-driver``); otherwise a clear error says how.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import html.parser
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CHROMIUM_FLAGS",
    "BrowserNotFound",
    "find_browser",
    "ensure_browser",
    "ensure_mathjax",
    "StaticServer",
    "WebDriver",
    "PageReport",
    "SiteReport",
    "list_pages",
    "page_ids",
    "check_site",
    "main",
]

#: Flags without which headless Chromium hangs or phones home on a machine with no network.
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--hide-scrollbars",
    # Every host but the local server is unknown: external requests fail at once.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)

CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "chromium",
                       "chromium-browser", "google-chrome")
CHROMEDRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver", "chromedriver")
INSTALL_HINT = (
    "Install Debian's Chromium and its driver: `sudo apt-get update && sudo apt-get install -y "
    "chromium chromium-driver` (Ubuntu: `chromium-browser chromium-chromedriver`), or point "
    "$CAMWALLS_CHROMIUM and $CAMWALLS_CHROMEDRIVER at a Chromium/Chrome binary and the "
    "matching chromedriver."
)

#: MathJax served to the browser in place of the CDN copy (same major version as Jupyter Book 1).
MATHJAX_VERSION = "3.2.2"
MATHJAX_SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
#: A script src of a remote MathJax 3 ``es5`` build; group 1 is the file inside ``es5/``.
_MATHJAX_SRC = re.compile(r"""https?://[^"'\s]*mathjax[^"'\s]*/es5/([^"'?\s]+)(?:\?[^"'\s]*)?""")
_MATHJAX_MOUNT = "/__mathjax__/"

#: Pages screenshotted by default (those that exist): the landing page, a chapter with math,
#: the explorer, the results and status pages.
DEFAULT_SCREENSHOTS = ("book/intro.html", "notebooks/01_theory.html", "notebooks/08_explorer.html",
                       "book/results.html", "book/status.html")

_SKIP_DIRS = {"_static", "_sources", "_images", "_downloads", ".doctrees", ".jupyter_cache",
              "jupyter_execute", "_panels_static"}


class BrowserNotFound(RuntimeError):
    """Chromium or chromedriver is missing and could not be installed here."""


# --------------------------------------------------------------------------------------------
# Finding (or installing) the browser and MathJax
# --------------------------------------------------------------------------------------------

def _which(candidates: Iterable[str]) -> Path | None:
    for cand in candidates:
        if not cand:
            continue
        path = Path(cand) if os.path.isabs(cand) else (Path(shutil.which(cand)) if shutil.which(cand) else None)
        if path is not None and path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def find_browser() -> tuple[Path, Path] | None:
    """``(chromium, chromedriver)`` paths, or ``None`` when either is missing.

    ``$CAMWALLS_CHROMIUM`` / ``$CAMWALLS_CHROMEDRIVER`` win over the usual Debian/Ubuntu paths.
    """
    chromium = _which([os.environ.get("CAMWALLS_CHROMIUM", ""), *CHROMIUM_CANDIDATES])
    driver = _which([os.environ.get("CAMWALLS_CHROMEDRIVER", ""), *CHROMEDRIVER_CANDIDATES])
    if chromium is None or driver is None:
        return None
    return chromium, driver


def ensure_browser(install: bool = True) -> tuple[Path, Path]:
    """Chromium and chromedriver; installs them with apt-get when missing, if allowed and root.

    Raises:
        BrowserNotFound: when they are missing and cannot be installed here, saying how to.
    """
    found = find_browser()
    if found is not None:
        return found
    can_install = install and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")
    if not can_install:
        why = "installing was not allowed" if not install else "not running as root with apt-get"
        raise BrowserNotFound(f"Headless Chromium or chromedriver not found ({why}). {INSTALL_HINT}")
    print("Chromium is missing: installing it with apt-get (chromium chromium-driver) ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"]):
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise BrowserNotFound(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n"
                                  f"{proc.stdout[-2000:]}\n{INSTALL_HINT}")
    found = find_browser()
    if found is None:
        raise BrowserNotFound(f"apt-get installed chromium but no binary was found. {INSTALL_HINT}")
    return found


def _mathjax_ok(es5: Path) -> bool:
    return (es5 / "tex-mml-chtml.js").is_file()


def ensure_mathjax(fetch: bool = True) -> Path | None:
    """A local MathJax 3 ``es5`` folder for the check, or ``None`` when none can be had.

    Looks at ``$CAMWALLS_MATHJAX``, then ``<cache>/mathjax/<version>/es5``; when missing and
    ``fetch`` is true, runs ``npm pack mathjax@3.2.2`` (the npm registry's ordinary client),
    checks the tarball's SHA-256 and unpacks it into the cache.
    """
    env = os.environ.get("CAMWALLS_MATHJAX", "").strip()
    if env:
        path = Path(env).expanduser()
        for cand in (path, path / "es5"):
            if _mathjax_ok(cand):
                return cand
        raise FileNotFoundError(f"$CAMWALLS_MATHJAX={env} holds no MathJax 3 es5 build "
                                "(expected tex-mml-chtml.js in it or in its es5/ folder).")
    from .config import cache_dir

    target = cache_dir("mathjax", MATHJAX_VERSION, create=False) / "es5"
    if _mathjax_ok(target):
        return target
    npm = shutil.which("npm")
    if not fetch or npm is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--silent"], cwd=tmp,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
        tgz = Path(tmp) / f"mathjax-{MATHJAX_VERSION}.tgz"
        if proc.returncode != 0 or not tgz.is_file():
            print(f"npm pack mathjax@{MATHJAX_VERSION} failed: {proc.stderr.strip()[-500:]}", file=sys.stderr)
            return None
        digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
        if digest != MATHJAX_SHA256:
            raise RuntimeError(f"mathjax-{MATHJAX_VERSION}.tgz has SHA-256 {digest}, expected "
                               f"{MATHJAX_SHA256}: refusing to use it.")
        unpack = Path(tmp) / "unpacked"
        with tarfile.open(tgz) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/es5/")
                       and m.isfile() and ".." not in Path(m.name).parts]
            tar.extractall(unpack, members=members)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(unpack / "package" / "es5"), str(target))
    return target if _mathjax_ok(target) else None


# --------------------------------------------------------------------------------------------
# The local web server
# --------------------------------------------------------------------------------------------

class _Handler(http.server.SimpleHTTPRequestHandler):
    site: "StaticServer"

    def log_message(self, format, *args):  # noqa: A002 - silence the per-request log
        pass

    def _mathjax_file(self) -> Path | None:
        path = urllib.parse.urlsplit(self.path).path
        if not path.startswith(_MATHJAX_MOUNT) or self.site.mathjax is None:
            return None
        rel = Path(urllib.parse.unquote(path[len(_MATHJAX_MOUNT):]))
        if ".." in rel.parts:
            return None
        return self.site.mathjax / rel

    def send_head(self):  # noqa: D102
        mj = self._mathjax_file()
        if mj is not None:
            if not mj.is_file():
                self.send_error(404)
                return None
            self.send_response(200)
            self.send_header("Content-Type", self.guess_type(str(mj)))
            data = mj.read_bytes()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return _Bytes(data)
        local = Path(self.translate_path(self.path))
        if self.site.mathjax is not None and local.suffix == ".html" and local.is_file():
            text = local.read_text(encoding="utf-8", errors="replace")
            text = _MATHJAX_SRC.sub(lambda m: _MATHJAX_MOUNT + m.group(1), text)
            data = text.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return _Bytes(data)
        return super().send_head()

    def send_response(self, code, message=None):  # noqa: D102
        self.site._record(urllib.parse.urlsplit(self.path).path, code)
        super().send_response(code, message)


class _Bytes:
    """A file-like wrapper so that ``SimpleHTTPRequestHandler.copyfile`` can send bytes."""

    def __init__(self, data: bytes):
        self._data, self._pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n is None or n < 0 else self._pos + n
        out, self._pos = self._data[self._pos:end], min(end, len(self._data))
        return out

    def close(self) -> None:
        pass


class StaticServer:
    """Serve ``root`` on ``http://127.0.0.1:<free port>/`` from a thread (a context manager).

    Records every request's path and status (:meth:`take_requests`); serves ``mathjax`` (a
    MathJax ``es5`` folder) under ``/__mathjax__/`` and points the HTML pages' remote MathJax
    script there, when given.
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
            ("127.0.0.1", 0), functools.partial(handler, directory=str(self.root)))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/"
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


# --------------------------------------------------------------------------------------------
# A tiny W3C WebDriver client (chromedriver speaks JSON over HTTP: urllib is enough)
# --------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriverError(RuntimeError):
    """An error answered by chromedriver."""


class WebDriver:
    """Headless Chromium through chromedriver (a context manager).

    ``get(url)``, ``execute(script, *args)``, ``execute_async(script, *args)``,
    ``screenshot(path, full_page=True)``; quits the browser and the driver on exit.
    """

    def __init__(self, chromium: Path, chromedriver: Path, width: int = 1280, height: int = 900,
                 page_timeout_s: float = 30.0):
        self.chromium, self.chromedriver = Path(chromium), Path(chromedriver)
        self.width, self.height, self.page_timeout_s = width, height, page_timeout_s
        self._profile = tempfile.mkdtemp(prefix="camwalls-chromium-")
        self._proc: subprocess.Popen | None = None
        self._url = ""
        self.session = ""

    # -- plumbing
    def _call(self, method: str, path: str, payload: dict | None = None, timeout: float = 60.0):
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self._url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                body = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            try:
                body = json.loads(err.read() or b"{}")
            except ValueError:
                body = {"value": {"error": str(err), "message": ""}}
            value = body.get("value", {}) if isinstance(body, dict) else {}
            raise WebDriverError(f"{method} {path}: {value.get('error')}: "
                                 f"{str(value.get('message', ''))[:500]}") from None
        return body.get("value") if isinstance(body, dict) else body

    def _s(self, path: str) -> str:
        return f"/session/{self.session}{path}"

    def __enter__(self) -> "WebDriver":
        port = _free_port()
        self._url = f"http://127.0.0.1:{port}"
        self._proc = subprocess.Popen([str(self.chromedriver), f"--port={port}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if (self._call("GET", "/status", timeout=2) or {}).get("ready"):
                    break
            except (OSError, WebDriverError):
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._stop()
                raise BrowserNotFound(f"chromedriver ({self.chromedriver}) did not start. {INSTALL_HINT}")
            time.sleep(0.1)
        args = [*CHROMIUM_FLAGS, f"--user-data-dir={self._profile}",
                f"--window-size={self.width},{self.height}"]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {"binary": str(self.chromium), "args": args},
        }}}
        try:
            value = self._call("POST", "/session", caps, timeout=60)
        except Exception:
            self._stop()
            raise
        self.session = value["sessionId"]
        self._call("POST", self._s("/timeouts"),
                   {"pageLoad": int(self.page_timeout_s * 1000), "script": 20000, "implicit": 0})
        return self

    def _stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __exit__(self, *exc) -> None:
        if self.session:
            try:
                self._call("DELETE", self._s(""), timeout=20)
            except (OSError, WebDriverError):
                pass
        self._stop()

    # -- the commands we use
    def get(self, url: str) -> None:
        """Navigate and wait for the page's ``load`` event."""
        self._call("POST", self._s("/url"), {"url": url}, timeout=self.page_timeout_s + 30)

    def execute(self, script: str, *args):
        """Run ``script`` (a function body) in the page and return its value."""
        return self._call("POST", self._s("/execute/sync"), {"script": script, "args": list(args)})

    def execute_async(self, script: str, *args):
        """Run ``script``; it returns by calling ``arguments[arguments.length - 1](value)``."""
        return self._call("POST", self._s("/execute/async"), {"script": script, "args": list(args)})

    def screenshot(self, path: str | Path, full_page: bool = True, max_height: int = 8000) -> Path:
        """Save a PNG of the page (whole page, up to ``max_height`` CSS pixels, when ``full_page``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if full_page:  # grow the window to the page's height, shoot, and shrink it back
            height = int(self.execute("return Math.ceil(document.documentElement.scrollHeight);") or self.height)
            self._call("POST", self._s("/window/rect"), {"width": self.width, "height": min(max(height, self.height), max_height)})
            try:
                data = self._call("GET", self._s("/screenshot"))
            finally:
                self._call("POST", self._s("/window/rect"), {"width": self.width, "height": self.height})
        else:
            data = self._call("GET", self._s("/screenshot"))
        path.write_bytes(base64.b64decode(data))
        return path


# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------

#: Runs in the page once it has loaded: waits for images and MathJax, then reports.
_PAGE_PROBE = r"""
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
imgs.forEach(i => { if (i.loading === 'lazy') i.loading = 'eager'; });
const loaded = Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
  i.addEventListener('load', r); i.addEventListener('error', r); setTimeout(r, 5000); })));
const mathNodes = Array.from(document.querySelectorAll('.math'));
const mathReady = (mathNodes.length && window.MathJax && MathJax.startup && MathJax.startup.promise)
  ? Promise.race([MathJax.startup.promise.then(() => MathJax.typesetPromise ? MathJax.typesetPromise() : null),
                  new Promise(r => setTimeout(r, 10000))]).catch(() => null)
  : null;
function visible(el) {
  const r = el.getBoundingClientRect();
  if (r.width <= 0 || r.height <= 0) return false;
  for (let e = el; e; e = e.parentElement) {
    const s = getComputedStyle(e);
    if (s.display === 'none' || s.visibility === 'hidden' || s.opacity === '0') return false;
  }
  return true;
}
function folded(el) {  // inside a closed <details> or a collapsed toggle: hidden on purpose
  for (let e = el; e; e = e.parentElement) {
    if (e.tagName === 'DETAILS' && !e.open) return true;
    if (e.classList && (e.classList.contains('toggle-hidden') || e.classList.contains('hide-output'))) return true;
  }
  return false;
}
Promise.all([loaded, mathReady]).then(() => {
  done({
    title: document.title,
    images: imgs.map(i => ({src: i.currentSrc || i.src, attr: i.getAttribute('src') || '',
      complete: i.complete, width: i.naturalWidth, alt: i.alt || '',
      figure: !!i.closest('figure, .cell_output, .output, .figure'),
      visible: visible(i), folded: folded(i)})),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => ({
      attr: a.getAttribute('href'), href: a.href,
      // hidden on purpose by a style rule on the link or its list item (not by a closed menu)
      hidden: getComputedStyle(a).display === 'none' ||
              (a.parentElement.tagName === 'LI' && getComputedStyle(a.parentElement).display === 'none')})),
    math: mathNodes.length,
    mathjax: !!(window.MathJax && MathJax.startup),
    math_rendered: mathNodes.filter(n => n.querySelector('mjx-container') ||
                                        (n.tagName === 'MJX-CONTAINER')).length,
    // Formulas with an error: mjx-merror (bad LaTeX) or red text (an undefined macro).
    math_errors: mathNodes.filter(n => n.querySelector('mjx-merror, .MathJax_Error') ||
      Array.from(n.querySelectorAll('mjx-mtext')).some(
        e => (e.getAttribute('style') || '').replace(/\s/g, '').includes('color:red'))).length,
    text_length: (document.body ? document.body.innerText.length : 0),
    // Markdown tables printed as text (a table displayed as Markdown that was not parsed):
    // a paragraph, outside code, with a separator row such as |---|---|
    raw_tables: Array.from(document.querySelectorAll('p')).filter(
      p => !p.closest('pre, code, .highlight') && /\|\s*:?[-\u2013\u2014]+:?\s*\|/.test(p.innerText)).length,
  });
});
"""


class _IdCollector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" or (key == "name" and tag == "a"):
                if value:
                    self.ids.add(value)


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
        raise FileNotFoundError(f"No built book at {root}: build it first (`make book`, or "
                                "`python -m helpers.build`), or pass --html DIR.")
    pages = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root)
        if rel.parts and rel.parts[0] in _SKIP_DIRS:
            continue
        pages.append(rel)
    return pages


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
    mathjax: Path | None

    @property
    def ok(self) -> bool:
        return bool(self.pages) and all(p.ok for p in self.pages)

    def summary(self) -> str:
        """A human-readable summary, one line per page, then the failures in full."""
        lines = [f"Browser check of {len(self.pages)} pages in {self.seconds:.1f} s "
                 f"(headless Chromium; MathJax {'local copy ' + str(self.mathjax) if self.mathjax else 'as the pages load it'})"]
        for p in self.pages:
            mark = "ok  " if p.ok else "FAIL"
            lines.append(f"  {mark} {p.page:<45} {p.images:3d} img ({p.figures} fig) {p.links:4d} links "
                         f"{p.math_rendered:3d}/{p.math:<3d} math  {p.seconds:5.2f} s")
        bad = [p for p in self.pages if not p.ok]
        for p in bad:
            lines.append(f"\n{p.page}:")
            lines.extend(f"  - {msg}" for msg in p.problems)
        notes = [(p.page, n) for p in self.pages for n in p.notes]
        if notes:
            lines.append("\nNotes (not failures):")
            lines.extend(f"  - {page}: {n}" for page, n in notes[:40])
        if self.screenshots:
            lines.append("\nScreenshots: " + ", ".join(str(s) for s in self.screenshots))
        lines.append(("PASSED" if self.ok else "FAILED") + f": {sum(p.ok for p in self.pages)} of "
                     f"{len(self.pages)} pages passed every check.")
        return "\n".join(lines)


def _repo_notebook_for_colab(url: str, repo_url: str | None, repo_root: Path | None) -> str | None:
    """For a Colab link into this repository, the problem with it (``None`` when fine or not ours):
    it must name a ``.ipynb`` file that exists in the checkout (Colab opens nothing else)."""
    if not repo_url or repo_root is None:
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.netloc != "colab.research.google.com":
        return None
    repo = urllib.parse.urlsplit(repo_url).path.strip("/")
    prefix = f"/github/{repo}/blob/"
    if not parts.path.startswith(prefix):
        return None
    rest = parts.path[len(prefix):]
    _branch, _, rel = rest.partition("/")
    if not rel:
        return f"Colab link {url} names no file"
    if not (repo_root / rel).is_file():
        return f"Colab link {url} points to {rel}, which is not in the repository"
    if not rel.endswith(".ipynb"):
        return (f"Colab link {url} points to {rel}, which Colab cannot open (not a .ipynb); hide it "
                "(book/_static/camwalls.css does, for the theme's launch buttons) or link a notebook")
    return None


def _check_links(page: Path, links: list[dict], html_dir: Path, base_url: str,
                 repo_url: str | None, repo_root: Path | None) -> tuple[list[str], int]:
    problems: list[str] = []
    local = 0
    seen: set[str] = set()
    for link in links:
        attr, href = link.get("attr") or "", link.get("href") or ""
        if href in seen:
            continue
        seen.add(href)
        scheme = urllib.parse.urlsplit(href).scheme
        if scheme in ("mailto", "javascript", "tel", "data"):
            continue
        if not href.startswith(base_url):
            msg = None if link.get("hidden") else _repo_notebook_for_colab(href, repo_url, repo_root)
            if msg:
                problems.append(msg)
            continue
        local += 1
        parts = urllib.parse.urlsplit(href)
        rel = urllib.parse.unquote(parts.path)[1:]
        target = html_dir / rel
        if rel == "" or rel.endswith("/"):
            target = target / "index.html"
        if not target.exists():
            problems.append(f"broken link {attr!r}: {target.relative_to(html_dir)} does not exist")
            continue
        frag = urllib.parse.unquote(parts.fragment)
        if frag and target.is_file() and target.suffix == ".html" and frag not in page_ids(target):
            problems.append(f"broken anchor {attr!r}: no id {frag!r} in {target.relative_to(html_dir)}")
    return problems, local


def _image_problems(images: list[dict], html_dir: Path, base_url: str) -> tuple[list[str], int]:
    problems, figures = [], 0
    for img in images:
        src = img.get("src") or img.get("attr") or ""
        shown = img.get("attr") or src
        if img.get("figure"):
            figures += 1
        if src.startswith("data:"):
            if img.get("width", 0) == 0:
                problems.append(f"broken inline image (alt {img.get('alt')!r})")
            continue
        if not src.startswith(base_url):
            problems.append(f"image from another host {shown!r}: the book must show it offline "
                            "(put the file in book/_static and link it locally)")
            continue
        if img.get("width", 0) == 0:
            rel = urllib.parse.unquote(urllib.parse.urlsplit(src).path)[1:]
            file = html_dir / rel
            if file.suffix.lower() == ".svg" and file.is_file() and b"<svg" in file.read_bytes()[:4096]:
                pass  # an SVG without intrinsic size reports naturalWidth 0 but is fine
            else:
                problems.append(f"broken image {shown!r} (naturalWidth 0"
                                f"{'' if file.is_file() else ', file missing'})")
                continue
        if img.get("figure") and not img.get("folded") and not img.get("visible"):
            problems.append(f"figure image {shown!r} is not visible (zero size or hidden)")
    return problems, figures


_REFRESH = re.compile(r'<meta[^>]+http-equiv=["\']?refresh["\']?[^>]*content=["\'][^"\']*url=([^"\'>\s]+)',
                      re.I)


def _redirect_target(path: Path) -> str | None:
    """The URL a page redirects to with ``<meta http-equiv="refresh">``, or ``None``."""
    head = path.read_text(encoding="utf-8", errors="replace")[:4096]
    match = _REFRESH.search(head)
    return match.group(1) if match else None


def _read_repo_url(repo_root: Path | None) -> str | None:
    """``repository.url`` of the book's ``_config.yml`` (no trailing slash), or ``None``."""
    if repo_root is None or not (repo_root / "_config.yml").is_file():
        return None
    import yaml  # a dependency of jupyter-book

    data = yaml.safe_load((repo_root / "_config.yml").read_text()) or {}
    url = str((data.get("repository") or {}).get("url") or "").strip().rstrip("/")
    return url or None


def check_site(html_dir: str | Path, *, screenshots_dir: str | Path | None = None,
               screenshot_pages: Sequence[str] = DEFAULT_SCREENSHOTS, mathjax: Path | None = None,
               require_math: bool = True, repo_root: str | Path | None = None,
               browser: tuple[Path, Path] | None = None, verbose: bool = True) -> SiteReport:
    """Open every page of ``html_dir`` in headless Chromium and check it (see the module doc).

    Args:
        html_dir: a built HTML site (``_build/html``).
        screenshots_dir: where to save PNG screenshots of ``screenshot_pages`` (those present).
        mathjax: a local MathJax 3 ``es5`` folder served in place of the CDN copy.
        require_math: when true, a page with math whose MathJax did not load fails; when
            false such a page only gets a note (use where MathJax cannot be had offline).
        repo_root: the repository (for ``_config.yml``'s URL and Colab links); default: none.
        browser: ``(chromium, chromedriver)``; default :func:`ensure_browser`.

    Returns:
        A :class:`SiteReport` (``.ok``, ``.summary()``).
    """
    start = time.perf_counter()
    html_dir = Path(html_dir).resolve()
    pages = list_pages(html_dir)
    if not pages:
        raise FileNotFoundError(f"No HTML page in {html_dir}: was the book built?")
    repo_root = Path(repo_root).resolve() if repo_root is not None else None
    repo_url = _read_repo_url(repo_root)
    chromium, driver = browser if browser is not None else ensure_browser()
    reports: list[PageReport] = []
    shots: list[Path] = []
    wanted = {str(Path(p)) for p in screenshot_pages}
    with StaticServer(html_dir, mathjax=mathjax) as server, WebDriver(chromium, driver) as wd:
        for rel in pages:
            rep = PageReport(page=rel.as_posix())
            t0 = time.perf_counter()
            redirect = _redirect_target(html_dir / rel)
            if redirect is not None:  # e.g. the root index.html of Jupyter Book: check its target
                target = (html_dir / rel).parent / urllib.parse.unquote(urllib.parse.urlsplit(redirect).path)
                if not target.is_file():
                    rep.problems.append(f"redirects to {redirect!r}, which does not exist")
                rep.notes.append(f"a redirect to {redirect}")
                rep.seconds = time.perf_counter() - t0
                reports.append(rep)
                continue
            server.take_requests()
            url = server.base_url + urllib.parse.quote(rel.as_posix())
            try:
                wd.get(url)
                info = wd.execute_async(_PAGE_PROBE) or {}
            except WebDriverError as err:
                rep.problems.append(f"the page did not load: {err}")
                reports.append(rep)
                continue
            rep.title = info.get("title", "")
            for path, code in server.take_requests():
                if code >= 400 and path != "/favicon.ico":  # Chromium asks for it unprompted
                    what = "the page itself" if path.lstrip("/") == rel.as_posix() else "a file it loads"
                    rep.problems.append(f"HTTP {code} for {what}: {path}")
            if info.get("text_length", 0) == 0:
                rep.problems.append("the page shows no text")
            if info.get("raw_tables"):
                rep.problems.append(f"{info['raw_tables']} Markdown table(s) shown as plain text (|---| in a "
                                    "paragraph): the table was not parsed")
            img_problems, rep.figures = _image_problems(info.get("images", []), html_dir, server.base_url)
            rep.problems.extend(img_problems)
            rep.images = len(info.get("images", []))
            link_problems, rep.links = _check_links(rel, info.get("links", []), html_dir, server.base_url,
                                                    repo_url, repo_root)
            rep.problems.extend(link_problems)
            rep.math, rep.math_rendered = int(info.get("math", 0)), int(info.get("math_rendered", 0))
            if rep.math:
                if not info.get("mathjax"):
                    msg = (f"{rep.math} formulas but MathJax did not load (offline with no local "
                           "MathJax: see --mathjax)")
                    (rep.problems if require_math else rep.notes).append(msg)
                elif rep.math_rendered < rep.math:
                    rep.problems.append(f"math not rendered: {rep.math - rep.math_rendered} of "
                                        f"{rep.math} formulas have no MathJax output")
                if info.get("math_errors"):
                    rep.problems.append(f"{info['math_errors']} formulas with MathJax errors (an undefined "
                                        "macro or bad LaTeX): look for red formulas on the page")
            if rel.as_posix() in wanted and screenshots_dir is not None:
                name = rel.as_posix().replace("/", "__").replace(".html", ".png")
                try:
                    shots.append(wd.screenshot(Path(screenshots_dir) / name))
                except WebDriverError as err:
                    rep.notes.append(f"screenshot failed: {err}")
            rep.seconds = time.perf_counter() - t0
            if verbose:
                print(f"  {'ok  ' if rep.ok else 'FAIL'} {rep.page} ({rep.seconds:.1f} s)", flush=True)
            reports.append(rep)
    return SiteReport(pages=reports, screenshots=shots, seconds=time.perf_counter() - start,
                      mathjax=mathjax)


def main(argv: Sequence[str] | None = None) -> int:
    """The command: check the built book; exit status 0 when every page passed, 1 when a page
    failed, :data:`helpers.cli.EXIT_ERROR` when the check could not run (no browser, no built
    site: one ``error: ...`` line on stderr; ``--debug``: the exception propagates, with its
    traceback)."""
    from . import cli
    from .build import repo_root as _repo_root

    parser = argparse.ArgumentParser(prog="python -m helpers.browsercheck",
                                     description=__doc__.splitlines()[0])
    try:
        root = _repo_root()
    except FileNotFoundError:
        root = Path.cwd()
    parser.add_argument("--html", type=Path, default=root / "_build" / "html",
                        help="the built site (default: _build/html)")
    parser.add_argument("--screenshots", type=Path, default=root / "_build" / "screenshots",
                        help="where the PNG screenshots go (default: _build/screenshots)")
    parser.add_argument("--screenshot", action="append", default=None, metavar="PAGE",
                        help="a page to screenshot, e.g. book/intro.html (repeatable)")
    parser.add_argument("--mathjax", type=Path, default=None,
                        help="a local MathJax 3 es5 folder (default: $CAMWALLS_MATHJAX, the cache, "
                             "or npm pack mathjax@3.2.2)")
    parser.add_argument("--no-math", action="store_true",
                        help="do not fail pages whose MathJax cannot load (offline, no local copy)")
    parser.add_argument("--no-install", action="store_true",
                        help="never apt-get install chromium, fail instead")
    cli.add_debug_argument(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda: _command(args, root), debug=args.debug)


def _command(args: argparse.Namespace, root: Path) -> int:
    """The body of :func:`main`, run under :func:`helpers.cli.run`.

    Raises:
        BrowserNotFound: when Chromium or chromedriver is missing (and cannot be installed).
        FileNotFoundError: when there is no built site at ``--html``.
    """
    browser = ensure_browser(install=not args.no_install)
    mathjax = args.mathjax or ensure_mathjax()
    if mathjax is None:
        print("browsercheck: no local MathJax (npm missing or offline); pages will load it from "
              "the CDN, which fails without a network. Set CAMWALLS_MATHJAX to a MathJax 3 es5 folder.",
              file=sys.stderr)
    print(f"Checking {args.html} in {browser[0]} ...", flush=True)
    report = check_site(args.html, screenshots_dir=args.screenshots,
                        screenshot_pages=args.screenshot or DEFAULT_SCREENSHOTS,
                        mathjax=mathjax, require_math=not args.no_math, repo_root=root,
                        browser=browser)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
