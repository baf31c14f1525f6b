"""Check the built book in headless Chromium, offline: math, images, widgets, links, sliders.

Run from the repository root after ``make book`` (``.ci/run`` does)::

    .venv/bin/python tools/browser_check.py

Steps:

1. Setup. Installs Debian's ``chromium`` with apt-get when ``/usr/bin/chromium`` is
   missing (Node.js 20+ must be there), then ``npm ci`` in ``tools/browser`` for the
   versions pinned in its ``package-lock.json``: playwright-core (drives the installed
   Chromium; it never downloads a browser), MathJax 3, require.js and the ipywidgets
   HTML manager.
2. Offline copy. Copies ``_build/html`` to ``_build/offline`` and rewrites, in every
   page, the CDN addresses of MathJax, require.js and the widget manager's embed script
   to copies of the npm files in ``_build/offline/_offline_vendor/`` (not ``_static/``,
   whose ``.js`` files Sphinx would add to every page). ``_build/html`` keeps the CDNs.
   A page that still loads a script or stylesheet from the network fails the check.
3. Browser. ``tools/browser/check.js`` serves the offline copy on 127.0.0.1, blocks
   every other address, and opens every page of the book (not search / genindex). Per
   page it asserts: math typeset by MathJax (no raw TeX left, no MathJax errors), every
   local image loaded, every embedded widget view rendered, every local link and
   ``#anchor`` resolving, no failed local request and no uncaught script error; for
   every panel with sliders (``vqlib.book.widgets.sweep_panel``) it walks every slider with
   the arrow keys through all settings, asserting that each move shows a different
   image (compared by content hash) and that moving back shows the same image again.
   Readability, at 1280 × 800: no display equation, inline equation or table wider
   than the room it has unless it scrolls in its own box inside the column (each one
   is listed), no image twice in one cell's output, no content image shown at less
   than 0.75 of the width it was drawn at, and a panel with a "compute" button says
   that it needs a running kernel. Then the same page at a phone's 390 × 844: it must
   load (math typeset, images loaded, no script error); what sticks out there is
   listed as notes; a full-page screenshot.
4. Page weight. Every local file a first visit loads (the vendored npm files stand for
   the CDNs' copies) is counted raw and compressed (gzip, except formats that are
   compressed already); the summary lists the bytes per page, and a full run writes
   the table into the built status page (``status.html``, element
   ``#page-weight-table``).

Writes ``_build/screenshots/*.png`` (one per page, plus each panel after a move),
``_build/screenshots/phone/*.png``, ``_build/browser_check.json`` and
``_build/browser_check.md``; prints a table; exits 1 on any failure, 2 when the setup
cannot be done.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
BROWSER_DIR = ROOT / "tools" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
VENDOR = "_offline_vendor"  # folder of the offline copy holding the npm files
SKIP_PAGES = {"search.html", "genindex.html"}
# The viewports and the image-scale threshold of tools/browser/check.js (reported here).
DESKTOP_WIDTH, PHONE_WIDTH, MIN_SCALE = 1280, 390, 0.75

# CDN address (regex) -> path of the npm copy inside VENDOR. Group "ver" is the version
# the page asks for, compared with the vendored one (a mismatch is reported, not failed).
REWRITES = [
    ("mathjax", r"https://cdn\.jsdelivr\.net/npm/mathjax@(?P<ver>[^/\"']*)/es5/", "mathjax/es5/"),
    (
        "requirejs",
        r"https://cdnjs\.cloudflare\.com/ajax/libs/require\.js/(?P<ver>[^/\"']+)/require(?:\.min)?\.js",
        "requirejs/require.js",
    ),
    (
        "requirejs",
        r"https://cdn\.jsdelivr\.net/npm/requirejs@(?P<ver>[^/\"']+)/require(?:\.min)?\.js",
        "requirejs/require.js",
    ),
    (
        "@jupyter-widgets/html-manager",
        r"https://cdn\.jsdelivr\.net/npm/@jupyter-widgets/html-manager@(?P<ver>[^/\"']+)/dist/",
        "html-manager/dist/",
    ),
]
# Where the widget manager would fetch third-party widget modules: pointed at a folder
# that does not exist, so a page needing one fails (404) instead of reaching the net.
WIDGETS_CDN = re.compile(r"data-jupyter-widgets-cdn=\"https?://[^\"]*\"")
# What to copy from tools/browser/node_modules into VENDOR: (source, target, names to skip).
VENDOR_FILES = [
    ("mathjax/es5", "mathjax/es5", ()),
    ("requirejs/require.js", "requirejs/require.js", ()),
    ("@jupyter-widgets/html-manager/dist", "html-manager/dist", ("*.map",)),
]
NPM_PACKAGES = ["mathjax", "requirejs", "@jupyter-widgets/html-manager", "playwright-core"]


class SetupError(RuntimeError):
    """The check could not be set up (no Chromium, no Node.js, npm failed ...)."""


def log(message: str) -> None:
    print(f"[browser-check] {message}", flush=True)


def run(cmd: list[str], **kwargs) -> None:
    log("$ " + " ".join(cmd))
    result = subprocess.run(cmd, **kwargs)
    if result.returncode:
        raise SetupError(f"command failed with exit code {result.returncode}: {' '.join(cmd)}")


# ------------------------------------------------------------------------- setup


def apt_install(packages: list[str]) -> None:
    """Install Debian packages quietly and non-interactively (root only)."""
    if shutil.which("apt-get") is None:
        raise SetupError(f"need {packages} but there is no apt-get; install them by hand")
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if sudo is None:
        raise SetupError(f"need {packages}: run as root or install them by hand")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    quiet = {"env": env, "stdout": subprocess.DEVNULL}
    try:
        run(install, **quiet)
    except SetupError:  # a fresh machine may have no package lists yet
        run([*sudo, "apt-get", "update", "-qq"], **quiet)
        run(install, **quiet)


def setup_chromium() -> float:
    """Install Debian's chromium (and fonts) when missing; return the seconds spent."""
    start = time.monotonic()
    if not CHROMIUM.exists():
        apt_install(["chromium", "fonts-dejavu-core", "fonts-liberation"])
    if not CHROMIUM.exists():
        raise SetupError(f"{CHROMIUM} is still missing after apt-get install chromium")
    return time.monotonic() - start


def check_node() -> None:
    """playwright-core needs Node.js 20 or newer (Debian 12's own nodejs is 18)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SetupError("Node.js 20+ with npm is needed (node/npm not found on PATH)")
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    major = re.match(r"v(\d+)", version)
    if not major or int(major.group(1)) < 20:
        raise SetupError(f"playwright-core needs Node.js 20 or newer, found {version or '?'}")


def setup_npm() -> float:
    """``npm ci`` in tools/browser unless node_modules already matches the lock file."""
    start = time.monotonic()
    lock = BROWSER_DIR / "package-lock.json"
    stamp = BROWSER_DIR / "node_modules" / ".browser-check-lock.sha256"
    digest = hashlib.sha256(lock.read_bytes() + (BROWSER_DIR / "package.json").read_bytes())
    if stamp.exists() and stamp.read_text() == digest.hexdigest():
        log("npm packages are up to date (node_modules matches package-lock.json)")
    else:
        run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=BROWSER_DIR,
            stdout=subprocess.DEVNULL,
        )
        stamp.write_text(digest.hexdigest())
    return time.monotonic() - start


def chromium_version() -> str:
    try:
        out = subprocess.run(
            [str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return "?"
    return out.stdout.strip() or "?"


def npm_version(package: str) -> str:
    meta = BROWSER_DIR / "node_modules" / package / "package.json"
    return json.loads(meta.read_text())["version"]


# -------------------------------------------------------------------- offline copy


def html_pages(site: Path) -> list[str]:
    """Every page of the book: .html files outside ``_*`` folders, minus search/genindex."""
    pages = []
    for path in sorted(site.rglob("*.html")):
        rel = path.relative_to(site)
        if any(part.startswith("_") for part in rel.parts[:-1]) or str(rel) in SKIP_PAGES:
            continue
        pages.append(rel.as_posix())
    return pages


def rewrite_page(text: str, depth: int, seen: dict[str, set[str]]) -> str:
    """Point a page's CDN scripts at VENDOR; drop integrity/crossorigin on those tags."""
    up = "../" * depth + VENDOR + "/"

    def fix_tag(match: re.Match) -> str:
        tag = match.group(0)
        new = tag
        for package, pattern, target in REWRITES:
            found = re.search(pattern, new)
            if found:
                seen.setdefault(package, set()).add(found.group("ver"))
                new = re.sub(pattern, up + target, new)
        if new != tag:  # a local copy: its hash differs, and file:// has no CORS
            new = re.sub(r"\s(?:integrity|crossorigin)=\"[^\"]*\"", "", new)
            new = WIDGETS_CDN.sub(f'data-jupyter-widgets-cdn="{up}npm/"', new)
        return new

    return re.sub(r"<(?:script|link)\b[^>]*>", fix_tag, text)


def external_resources(text: str) -> list[str]:
    """Scripts and stylesheets a page would still load from the network."""
    found = []
    for tag in re.findall(r"<(?:script|link)\b[^>]*>", text):
        if tag.startswith("<link") and not re.search(r"rel=\"(?:stylesheet|preload)\"", tag):
            continue
        url = re.search(r"\s(?:src|href)=\"((?:https?:)?//[^\"]+)\"", tag)
        if url:
            found.append(url.group(1))
    return found


def make_offline(site: Path, offline: Path) -> tuple[dict, dict[str, list[str]]]:
    """Copy the site, add the vendored files, rewrite the pages.

    Returns the CDN versions the pages ask for beside the vendored ones, and per page the
    resources it would still load from the network (each a failure).
    """
    if offline.exists():
        shutil.rmtree(offline)
    shutil.copytree(site, offline)
    modules = BROWSER_DIR / "node_modules"
    for source, target, skip in VENDOR_FILES:
        src, dst = modules / source, offline / VENDOR / target
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*skip))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    seen: dict[str, set[str]] = {}
    problems: dict[str, list[str]] = {}
    for path in sorted(offline.rglob("*.html")):
        rel = path.relative_to(offline)
        if rel.parts[0] == VENDOR:
            continue
        text = path.read_text(encoding="utf-8")
        new = rewrite_page(text, len(rel.parts) - 1, seen)
        if new != text:
            path.write_text(new, encoding="utf-8")
        left = external_resources(new)
        if left:
            problems[rel.as_posix()] = [
                f"still loads {url} from the network: add a rewrite rule in "
                "tools/browser_check.py (REWRITES) and vendor the file"
                for url in left
            ]
    vendored = {p: npm_version(p) for p in NPM_PACKAGES}
    versions = {
        package: {"page_cdn": sorted(vers), "vendored": vendored[package]}
        for package, vers in seen.items()
    }
    return versions, problems


# -------------------------------------------------------------- static page facts


class _Tags(HTMLParser):
    """Collect <img src>, <meta http-equiv=refresh>, math and widget script tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[str] = []
        self.refresh: str | None = None
        self.math = 0
        self.views = 0
        self._state_tag = False
        self.state_json: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        if tag == "meta" and a.get("http-equiv", "").lower() == "refresh":
            target = re.search(r"url=(.+)", a.get("content", ""), re.I)
            self.refresh = target.group(1).strip(" '\"") if target else ""
        if tag in ("span", "div") and "math" in a.get("class", "").split():
            self.math += 1
        if tag == "script":
            kind = a.get("type", "")
            self.views += kind == "application/vnd.jupyter.widget-view+json"
            self._state_tag = kind == "application/vnd.jupyter.widget-state+json"

    def handle_data(self, data: str) -> None:
        if self._state_tag:
            self.state_json.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._state_tag = False


def _b64len(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return 0


def page_facts(site: Path, page: str) -> dict:
    """Sizes and counts read from the published HTML (``_build/html``)."""
    path = site / page
    parser = _Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    files, inline, external = {}, 0, []
    for src in parser.images:
        if src.startswith("data:"):
            inline += _b64len(src.split(",", 1)[-1]) if ";base64" in src[:60] else len(src)
        elif urlsplit(src).scheme or src.startswith("//"):
            external.append(src)
        else:
            target = (path.parent / unquote(urlsplit(src).path)).resolve()
            if target.is_file():
                files[target.relative_to(site.resolve()).as_posix()] = target.stat().st_size
    widget_images, widget_image_bytes = 0, 0
    for blob in parser.state_json:
        try:
            state = json.loads(blob).get("state", {})
        except json.JSONDecodeError:
            continue
        for model in state.values():
            if model.get("model_name") != "ImageModel":
                continue
            widget_images += 1
            for buffer in model.get("buffers", []):
                if buffer.get("encoding") == "base64":
                    widget_image_bytes += _b64len(buffer.get("data", ""))
    return {
        "html_bytes": path.stat().st_size,
        "image_files": len(files),
        "image_file_bytes": sum(files.values()),
        "inline_image_bytes": inline,
        "widget_images": widget_images,
        "widget_image_bytes": widget_image_bytes,
        "external_images": external,
        "math_elements": parser.math,
        "widget_views": parser.views,
        "redirect": parser.refresh,
    }


# ------------------------------------------------------------------------ page weight

# Formats a web server sends as they are (already compressed); everything else is counted
# gzip-compressed (level 6, what servers and CDNs commonly send).
PRECOMPRESSED = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".woff", ".woff2", ".gz", ".br", ".zip"}


def transfer_bytes(root: Path, paths: list[str], cache: dict[str, tuple[int, int]]) -> dict:
    """Bytes a first visit transfers: every local file the page loaded, raw and compressed.

    ``paths`` are the files the browser fetched from the offline copy (the vendored npm
    files stand for what the CDNs send). Returns totals and the five largest files.
    """
    files = {}
    for rel in paths:
        if rel not in cache:
            path = root / rel
            if not path.is_file():
                continue
            data = path.read_bytes()
            packed = len(data) if path.suffix.lower() in PRECOMPRESSED else len(gzip.compress(data, 6))
            cache[rel] = (len(data), packed)
        files[rel] = cache[rel]
    largest = sorted(files.items(), key=lambda kv: -kv[1][1])[:5]
    return {
        "files": len(files),
        "raw": sum(raw for raw, _ in files.values()),
        "compressed": sum(packed for _, packed in files.values()),
        "largest": [{"file": f, "raw": r, "compressed": c} for f, (r, c) in largest],
    }


STATUS_PAGE = "status.html"
WEIGHT_TABLE = re.compile(r'(<div id="page-weight-table">).*?(</div>)', re.S)


def weight_table(results: list[dict]) -> str:
    """The status page's table of bytes per page (HTML)."""
    rows = [r for r in results if r.get("transfer") and r["redirect"] is None]
    body = "".join(
        f"<tr><td>{r['page']}</td><td>{r['transfer']['files']}</td>"
        f"<td>{kb(r['transfer']['compressed'])}</td><td>{kb(r['transfer']['raw'])}</td>"
        f"<td>{', '.join(Path(f['file']).name for f in r['transfer']['largest'][:3])}</td></tr>"
        for r in rows
    )
    chapters = [r["transfer"]["compressed"] for r in rows if r["page"].startswith("chapters/")]
    note = (f"<p>Largest chapter page: {kb(max(chapters))} compressed (target: at most 3 MB).</p>"
            if chapters else "")
    return ("<table class='table'><thead><tr><th>page</th><th>files</th><th>compressed</th>"
            "<th>raw</th><th>largest files</th></tr></thead><tbody>" + body + "</tbody></table>" + note)


def fill_status_page(folders: list[Path], results: list[dict]) -> list[str]:
    """Write the measured bytes per page into the status page of each built copy."""
    filled = []
    table = weight_table(results)
    for folder in folders:
        page = folder / STATUS_PAGE
        if not page.is_file():
            continue
        text = page.read_text(encoding="utf-8")
        new, count = WEIGHT_TABLE.subn(lambda m: m.group(1) + table + m.group(2), text, count=1)
        if count:
            page.write_text(new, encoding="utf-8")
            filled.append(os.path.relpath(page, ROOT))
    return filled


# ------------------------------------------------------------------------ report


def kb(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.2f} MB"
    return f"{n / 1024:.0f} kB" if n >= 1024 else f"{n} B"


def scale(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def table(pages: list[dict]) -> list[str]:
    head = ["page", "result", "math", "images", "widgets", "panels/sliders", "moves", "links"]
    head += ["cut/scrolled", "dup", "min scale", "phone", "HTML", "images size", "transfer (gz)"]
    rows = []
    for p in pages:
        b = p.get("browser", {})
        if p["redirect"] is not None:
            checked = ["redirect → " + p["redirect"]] + [""] * 9
        else:
            panels = b.get("panels", [])
            checked = [
                f"{b.get('math_typeset', 0)}/{p['math_elements']}",
                f"{b.get('images_loaded', 0)}/{b.get('images_local', 0)}",
                f"{b.get('widget_views_rendered', 0)}/{p['widget_views']}",
                f"{len(panels)}/{sum(len(x['sliders']) for x in panels)}",
                str(sum(x["moves"] for x in panels)),
                str(b.get("links_local", 0)),
                f"{len(b.get('overflow', []))}/{len(b.get('scrolled', []))}",
                str(len(b.get("duplicates", []))),
                scale(b.get("min_scale")),
                ("cut {cut}, scrolled {scrolled}".format(**b["phone"]) if "phone" in b else "not loaded"),
            ]
        size = p["image_file_bytes"] + p["inline_image_bytes"] + p["widget_image_bytes"]
        weight = p.get("transfer")
        rows.append(
            [
                p["page"],
                "ok" if not p["failures"] else "FAIL",
                *checked,
                kb(p["html_bytes"]),
                kb(size),
                kb(weight["compressed"]) if weight else "",
            ]
        )
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]

    def line(row: list) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    return [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]


def write_markdown(path: Path, summary: dict) -> None:
    lines = [
        "# Browser check of the built book",
        "",
        f"Result: **{'passed' if summary['ok'] else 'FAILED'}**, {len(summary['pages'])} pages, "
        f"Chromium {summary['chromium']}, offline copy `{summary['offline']}`.",
        "",
        "Columns: math = typeset/math elements, images = loaded/local <img>, widgets = "
        "rendered/embedded views, moves = slider key presses checked, links = local links "
        f"resolved; cut/scrolled = equations and tables wider than the column at "
        f"{summary['desktop']} px (cut: no scroll box, a failure; scrolled: in their own "
        "scroll box); dup = images shown twice in one cell's output; min scale = smallest "
        "shown/drawn width of a content image (below "
        f"{summary['min_scale']} fails); phone = the same at {summary['phone']} px (notes "
        "only; the page must load); images size = image files + inline images + widget "
        "images; transfer = bytes a first visit loads (HTML, scripts, styles, fonts, "
        "images; gzip-compressed where a server would compress), CDN files counted as the "
        "vendored npm copies.",
        "",
        *table(summary["pages"]),
        "",
    ]
    for p in summary["pages"]:
        for f in p["failures"]:
            lines.append(f"- FAIL {p['page']}: {f}")
        for n in p.get("browser", {}).get("notes", []):
            lines.append(f"- note {p['page']}: {n}")
    for n in summary["notes"]:
        lines.append(f"- note: {n}")
    lines += ["", "## Bytes transferred per page (first visit)", ""]
    lines += ["| page | files | raw | compressed | largest (compressed) |", "|---|---|---|---|---|"]
    for p in summary["pages"]:
        w = p.get("transfer")
        if not w or p["redirect"] is not None:
            continue
        big = ", ".join(f"{Path(f['file']).name} {kb(f['compressed'])}" for f in w["largest"][:3])
        lines.append(f"| {p['page']} | {w['files']} | {kb(w['raw'])} | {kb(w['compressed'])} | {big} |")
    lines += [
        "",
        "Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["seconds"].items()),
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


# -------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=ROOT / "_build" / "html", help="built book")
    parser.add_argument(
        "--offline",
        type=Path,
        default=ROOT / "_build" / "offline",
        help="where to write the offline copy (replaced)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "_build",
        help="folder for browser_check.json/.md and screenshots/",
    )
    parser.add_argument(
        "--no-setup",
        action="store_true",
        help="skip apt-get / npm ci (they are skipped anyway when done)",
    )
    parser.add_argument(
        "--page",
        action="append",
        default=[],
        help="check only these pages (paths relative to the site)",
    )
    args = parser.parse_args(argv)
    site, offline, out = args.site.resolve(), args.offline.resolve(), args.out.resolve()
    seconds: dict[str, float] = {}
    if not (site / "index.html").is_file() and not html_pages(site):
        log(f"FAIL: no built book at {site}; run `make book` first")
        return 2
    try:
        check_node()
        if not args.no_setup:
            seconds["apt"] = setup_chromium()
            seconds["npm"] = setup_npm()
        elif not CHROMIUM.exists() or not (BROWSER_DIR / "node_modules").is_dir():
            raise SetupError("--no-setup, but chromium or tools/browser/node_modules is missing")
    except SetupError as error:
        log(f"FAIL (setup): {error}")
        return 2

    start = time.monotonic()
    versions, offline_problems = make_offline(site, offline)
    seconds["offline_copy"] = time.monotonic() - start
    notes = [
        f"{pkg}: the pages load version {', '.join(v['page_cdn'])} from the CDN, "
        f"the check uses the npm copy {v['vendored']}"
        for pkg, v in versions.items()
        if not all(v["vendored"] == c or v["vendored"].startswith(c + ".") for c in v["page_cdn"])
    ]

    pages = html_pages(site)
    if args.page:
        unknown = set(args.page) - set(pages)
        if unknown:
            log(f"FAIL: no such page(s): {sorted(unknown)}; pages are {pages}")
            return 2
        pages = [p for p in pages if p in args.page]
    facts = {p: page_facts(site, p) for p in pages}

    shots = out / "screenshots"
    if shots.exists():
        shutil.rmtree(shots)
    shots.mkdir(parents=True)
    raw_path = out / "browser_check.raw.json"
    config = {
        "root": str(offline),
        "pages": [{"path": p, "redirect": facts[p]["redirect"]} for p in pages],
        "chromium": str(CHROMIUM),
        "screenshots": str(shots),
        "out": str(raw_path),
    }
    config_path = out / "browser_check.config.json"
    config_path.write_text(json.dumps(config, indent=1))
    start = time.monotonic()
    node = subprocess.run(["node", str(BROWSER_DIR / "check.js"), str(config_path)])
    seconds["browser"] = time.monotonic() - start
    if not raw_path.is_file():
        log(f"FAIL: the browser script exited with {node.returncode} and wrote no results")
        return 1
    raw = json.loads(raw_path.read_text())
    raw_path.unlink()
    config_path.unlink()

    results = []
    sizes: dict[str, tuple[int, int]] = {}
    for p in pages:
        browser = raw["pages"].get(p, {})
        failures = offline_problems.get(p, []) + browser.get("failures", ["not checked"])
        transfer = transfer_bytes(offline, browser.pop("requests", []), sizes)
        results.append({"page": p, **facts[p], "transfer": transfer, "browser": browser, "failures": failures})
    ok = node.returncode == 0 and not any(r["failures"] for r in results)
    summary = {
        "ok": ok,
        "site": os.path.relpath(site, ROOT),
        "offline": os.path.relpath(offline, ROOT),
        "screenshots": os.path.relpath(shots, ROOT),
        "chromium": chromium_version(),
        "skipped_pages": sorted(SKIP_PAGES),
        "cdn_versions": versions,
        "notes": notes + raw.get("notes", []),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "desktop": DESKTOP_WIDTH,
        "phone": PHONE_WIDTH,
        "min_scale": MIN_SCALE,
        "pages": results,
    }
    if len(pages) == len(html_pages(site)):  # a full run: the status page gets the bytes
        summary["status_page"] = fill_status_page([site, offline], results)
    (out / "browser_check.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    write_markdown(out / "browser_check.md", summary)

    print("\n".join(table(results)))
    for r in results:
        for failure in r["failures"]:
            print(f"FAIL {r['page']}: {failure}")
    for note in summary["notes"]:
        print(f"note: {note}")
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    rel = os.path.relpath(out, ROOT)
    print(f"summary: {rel}/browser_check.json and .md; screenshots: {rel}/screenshots/")
    print("browser check " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
