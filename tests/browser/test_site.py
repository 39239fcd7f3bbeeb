"""The built book as a reader meets it: every page opened in headless Chromium, offline.

Each page is loaded once from a server on 127.0.0.1 (every other host is unreachable, as on a laptop
without network); a script run in the page waits for MathJax and collects what the tests below
assert: MathJax (the copy bundled with the site) typeset every formula without error, no raw TeX is
left in the text, every image loaded, every internal link resolves, nothing came from the network,
displayed equations are numbered and referenced, figures stay visible in dark mode, search works.

Run after ``make test-build`` (``make test-browser``); see conftest.py for Chromium.
"""
from __future__ import annotations

import html.parser
import os
import pathlib
import re
import time
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

COLLECT = r"""
const done = arguments[arguments.length - 1];
(async () => {
  const r = {};
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
    r.mathjax = MathJax.version;
  } else {
    r.mathjax = null;
  }
  await Promise.all([...document.images].map(img => img.complete ? null :
      new Promise(res => { img.addEventListener('load', res); img.addEventListener('error', res); })));
  r.images = [...document.images].map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth,
                                               complete: img.complete, output: !!img.closest('.cell_output, .output')}));
  r.math = document.querySelectorAll('.math').length;
  r.untypeset = [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container'))
      .map(e => e.textContent.trim().slice(0, 80));
  r.merrors = [...document.querySelectorAll('mjx-merror')].map(e => e.getAttribute('data-mjx-error') || e.textContent);
  // MathJax shows an undefined macro (a typo such as \epsilom) as red text, not as an error.
  r.undefined = [...document.querySelectorAll('mjx-container mtext')].map(e => e.textContent)
      .filter(t => t.startsWith('\\'))
      .concat([...document.querySelectorAll('mjx-container mjx-mtext[style*="color: red"]')].map(e => 'red text'));
  const clone = document.body.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, textarea, mjx-container, mjx-assistive-mml, .highlight')
      .forEach(e => e.remove());
  r.text = clone.textContent;
  r.links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  r.scripts = [...document.querySelectorAll('script[src]')].map(s => s.src);
  r.styles = [...document.querySelectorAll('link[rel~=stylesheet], link[rel=preload]')].map(l => l.href);
  r.resources = performance.getEntriesByType('resource').map(e => e.name);
  r.equations = [...document.querySelectorAll('div.math')].map(d => ({id: d.id, numbered: !!d.querySelector('.eqno'),
                                                                     text: d.textContent.trim().slice(0, 60)}));
  r.title = document.title;
  r.verdicts = [...document.querySelectorAll('div.admonition.verdict > .admonition-title')].map(e => e.textContent.trim());
  r.verdictLines = [...document.querySelectorAll('.cell_output pre')].map(e => e.textContent)
      .filter(t => /^verdict [A-Z]+-\d+:/m.test(t));
  r.stderr = [...document.querySelectorAll('.cell_output .stderr, .cell_output .traceback, .cell_output .error')]
      .map(e => e.textContent.trim().slice(0, 120));
  done(r);
})().catch(e => done({error: String(e && e.stack || e)}));
"""

DARK = r"""
const done = arguments[arguments.length - 1];
document.documentElement.dataset.theme = 'dark';
document.documentElement.dataset.mode = 'dark';
setTimeout(() => {
  const bg = getComputedStyle(document.body).backgroundColor;
  const out = [...document.querySelectorAll('.bd-article img')].filter(img => img.closest('.cell_output, .output'))
    .map(img => {
      const s = getComputedStyle(img), box = img.getBoundingClientRect();
      let alpha = [-1];  // -1: the image could not be read (test_every_image_loads says why)
      try {
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(img, 0, 0);
        const w = img.naturalWidth - 1, h = img.naturalHeight - 1;
        alpha = [[0, 0], [w, 0], [0, h], [w, h], [w >> 1, h >> 1]].map(([x, y]) => ctx.getImageData(x, y, 1, 1).data[3]);
      } catch (e) {}
      return {src: img.src, opacity: parseFloat(s.opacity), visibility: s.visibility, display: s.display,
              filter: s.filter, width: box.width, minAlpha: Math.min(...alpha)};
    });
  done({background: bg, theme: document.documentElement.dataset.theme, images: out});
}, 300);
"""

RAW_TEX = re.compile(
    r"\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{|\\end\{|\\(?:frac|sum|sqrt|mathrm|mathbf|hat|epsilon|sigma|mu|gamma|beta|label)\b"
    r"|(?<![\w$])\$[^\s$][^$\n]{0,80}?(?<![\s\\])\$(?![\w$])"
)


def _pages(site: pathlib.Path) -> list[str]:
    """Every HTML page of the site, as a path relative to its root."""
    skip = {"_static", "_sources", "_images", "_sphinx_design_static"}
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html") if not skip & set(p.relative_to(site).parts))


@pytest.fixture(scope="session")
def reports(site, base_url, driver):
    """Open every page once; returns {page: what COLLECT found, plus the browser's console messages}."""
    out = {}
    for page in _pages(site):
        driver.get_log("browser")  # drop messages of the previous page
        driver.get(f"{base_url}/{page}")
        report = driver.execute_async_script(COLLECT)
        if "error" in report:
            pytest.fail(f"{page}: the page script failed: {report['error']}")
        report["console"] = [m for m in driver.get_log("browser") if m.get("level") == "SEVERE"]
        report["url"] = driver.current_url
        if any(i["output"] for i in report.get("images", [])):
            report["dark"] = driver.execute_async_script(DARK)  # the same page, switched to dark mode
            if shots := os.environ.get("SCREENSHOT_DIR"):
                pathlib.Path(shots).mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(pathlib.Path(shots) / (page.replace("/", "_") + "-dark.png")))
        out[page] = report
    return out


def _book_pages(reports):
    return {page: r for page, r in reports.items() if page.startswith("book/")}


def test_every_page_of_the_table_of_contents_is_opened(site, reports):
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    files = re.findall(r"^\s*(?:-\s*)?(?:file|root):\s*(\S+)\s*$", toc, re.M)
    assert len(files) >= 3, f"no pages found in _toc.yml: {files}"
    missing = [f for f in files if f"{f}.html" not in reports]
    assert not missing, f"pages of _toc.yml not in the built site {site}: {missing}"


def test_pages_log_no_errors_in_the_console(reports):
    bad = {page: [m["message"] for m in r["console"]] for page, r in reports.items() if r["console"]}
    assert not bad, f"browser console errors: {bad}"


def test_mathjax_typesets_every_formula_without_errors(reports):
    with_math = {page: r for page, r in reports.items() if r["math"]}
    assert with_math, "no page has a formula: is dollarmath/amsmath still enabled?"
    for page, r in with_math.items():
        assert r["mathjax"], f"{page}: has {r['math']} formulas but MathJax did not start"
        assert r["mathjax"].startswith("3."), f"{page}: MathJax {r['mathjax']}, expected the bundled 3.x"
        assert not r["untypeset"], f"{page}: formulas MathJax did not typeset: {r['untypeset'][:5]}"
        assert not r["merrors"], f"{page}: MathJax errors: {r['merrors'][:5]}"
        assert not r["undefined"], f"{page}: undefined TeX macros: {r['undefined'][:5]}"


def test_no_raw_tex_is_left_in_the_text(reports):
    bad = {}
    for page, r in reports.items():
        hits = [r["text"][max(m.start() - 30, 0): m.end() + 30].replace("\n", " ") for m in RAW_TEX.finditer(r["text"])]
        if hits:
            bad[page] = hits[:5]
    assert not bad, f"raw TeX in the visible text (outside code): {bad}"


def test_no_cell_shows_a_warning_or_an_error(reports):
    bad = {page: r["stderr"] for page, r in reports.items() if r["stderr"]}
    assert not bad, f"cells whose stored output shows stderr or a traceback: {bad}"


def test_verdicts_show_as_boxes_not_as_log_lines(reports):
    """A claim cell's verdict reaches the reader as a titled box; its plain line is for the appendix only."""
    boxes = {url: r["verdicts"] for url, r in reports.items() if r["verdicts"]}
    assert boxes, "no page shows a verdict box"
    assert all(re.match(r"^[A-Z]+-\d+: ", title) for titles in boxes.values() for title in titles), boxes
    lines = {url: r["verdictLines"] for url, r in reports.items() if r["verdictLines"]}
    assert not lines, f"verdicts printed as plain text: {lines}"


def test_every_image_loads(reports):
    bad = {page: [i["src"] for i in r["images"] if not i["complete"] or i["width"] == 0] for page, r in reports.items()}
    bad = {page: srcs for page, srcs in bad.items() if srcs}
    assert not bad, f"images that did not load: {bad}"


def test_nothing_is_loaded_from_the_network(reports, base_url):
    """Offline: MathJax, fonts, scripts and styles all come with the site."""
    bad = {}
    for page, r in reports.items():
        remote = [u for u in r["scripts"] + r["styles"] + r["resources"] + [i["src"] for i in r["images"]]
                  if not u.startswith(base_url + "/") and not u.startswith("data:")]
        if remote:
            bad[page] = sorted(set(remote))
    assert not bad, f"pages that request non-local URLs: {bad}"
    for page, r in reports.items():
        if r["mathjax"]:
            local = [u for u in r["scripts"] if "mathjax" in u.lower()]
            assert local and all(u.startswith(base_url + "/_static/mathjax/") for u in local), f"{page}: {local}"


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


def test_internal_links_resolve(site, reports, base_url):
    ids: dict[pathlib.Path, set[str]] = {}
    bad = {}
    for page, r in reports.items():
        for href in r["links"]:
            if not href.startswith(base_url + "/"):
                continue  # launch buttons, paper links: not part of the offline site
            url = urllib.parse.urlsplit(href)
            path = site / urllib.parse.unquote(url.path).lstrip("/")
            if path.is_dir():
                path = path / "index.html"
            if not path.is_file():
                bad.setdefault(page, []).append(f"{href} (no file)")
                continue
            fragment = urllib.parse.unquote(url.fragment)
            if fragment and path.suffix == ".html":
                if path not in ids:
                    parser = _Ids()
                    parser.feed(path.read_text(encoding="utf-8"))
                    ids[path] = parser.ids
                if fragment not in ids[path]:
                    bad.setdefault(page, []).append(f"{href} (no id {fragment!r})")
    assert not bad, f"broken internal links: {bad}"


def test_every_page_is_in_the_navigation(reports, base_url):
    start = reports["book/intro.html"]["links"]
    linked = {urllib.parse.urlsplit(h).path.lstrip("/") for h in start if h.startswith(base_url + "/")}
    missing = sorted(page for page in _book_pages(reports) if page != "book/intro.html" and page not in linked)
    assert not missing, f"pages the navigation of the first page does not link to: {missing}"


def test_displayed_equations_are_numbered_and_referenced(reports):
    unnumbered, targets, cited = {}, {}, set()
    for page, r in reports.items():
        for eq in r["equations"]:
            if not eq["numbered"] or not eq["id"]:
                unnumbered.setdefault(page, []).append(eq["text"])
            else:
                targets[eq["id"]] = page
        cited.update(urllib.parse.urlsplit(h).fragment for h in r["links"])
    assert not unnumbered, f"displayed equations without a label (use ```{{math}} with :label: eq-...): {unnumbered}"
    unreferenced = {eq: page for eq, page in targets.items() if eq not in cited}
    assert not unreferenced, f"labelled equations that no page references with {{eq}}: {unreferenced}"


def test_figures_stay_visible_in_dark_mode(reports):
    checked = 0
    for page, r in _book_pages(reports).items():
        if "dark" not in r:
            continue
        assert r["dark"]["theme"] == "dark", page
        for img in r["dark"]["images"]:
            checked += 1
            where = f"{page}: {img['src']}"
            assert img["display"] != "none" and img["visibility"] == "visible" and img["width"] > 50, where
            assert img["opacity"] > 0.9, f"{where}: opacity {img['opacity']} in dark mode"
            # An opaque figure (white face colour, set by normlib.book.notebook.setup) keeps black axes and
            # labels readable on the dark page; a transparent one would show them on near-black.
            assert img["minAlpha"] == 255, f"{where}: transparent pixels, invisible on the dark background"
    if not checked:
        pytest.skip("no page has a figure yet")


@pytest.mark.parametrize("width", [600, 1280], ids=["phone", "desktop"])
def test_the_sidebar_button_opens_and_closes_the_navigation(base_url, driver, width):
    from selenium.webdriver.common.by import By

    size = driver.get_window_size()
    driver.set_window_size(width, 900)
    try:
        driver.get(f"{base_url}/book/intro.html")
        buttons = [b for b in driver.find_elements(By.CSS_SELECTOR, "button.primary-toggle") if b.is_displayed()]
        assert buttons, f"no visible button for the table of contents at {width} px"
        state = "return [document.getElementById('pst-primary-sidebar-modal')?.open ?? false," \
                " document.getElementById('pst-primary-sidebar').classList.contains('pst-sidebar-hidden')]"
        before = driver.execute_script(state)
        buttons[0].click()
        time.sleep(0.3)
        after = driver.execute_script(state)
        if width < 992:  # the theme opens the navigation in a modal dialog
            assert after[0] and not before[0], f"the navigation did not open: {before} -> {after}"
        else:  # and hides or shows the sidebar on a wide screen
            assert after[1] != before[1], f"the sidebar did not toggle: {before} -> {after}"
    finally:
        driver.set_window_size(size["width"], size["height"])


def test_search_finds_the_chapters(base_url, driver):
    driver.get(f"{base_url}/search.html?q=normalization")
    deadline = time.monotonic() + 20
    results = []
    while time.monotonic() < deadline:
        results = driver.execute_script(
            "return [...document.querySelectorAll('#search-results ul.search li a')].map(a => a.href)"
        )
        if results:
            break
        time.sleep(0.2)
    assert results, "search for 'normalization' returned nothing"
    assert any("/book/" in href for href in results), results


def test_notebook_pages_offer_download_and_launch_buttons(site, reports, base_url):
    for nb in sorted((site / "_sources" / "book").glob("*.ipynb")):
        page = f"book/{nb.stem}.html"
        if page not in reports:
            continue
        links = reports[page]["links"]
        assert f"{base_url}/_sources/book/{nb.name}" in links, f"{page}: no download link for {nb.name}"
        assert any(h.startswith("https://colab.research.google.com/github/") for h in links), f"{page}: no Colab button"
        assert any(h.startswith("https://mybinder.org/v2/gh/") for h in links), f"{page}: no Binder button"


def test_the_site_reads_from_disk_without_a_server(site, driver):
    """A reader may also open _build/html/index.html straight from disk (file://)."""
    bad = {}
    for page in sorted(p for p in _pages(site) if p.startswith("book/")):
        driver.get_log("browser")
        driver.get((site / page).resolve().as_uri())
        r = driver.execute_async_script(COLLECT)
        console = [m["message"] for m in driver.get_log("browser") if m.get("level") == "SEVERE"]
        problems = console + [f"not typeset: {t}" for t in r.get("untypeset", [])] + r.get("merrors", []) + r.get("undefined", [])
        problems += [f"image not loaded: {i['src']}" for i in r.get("images", []) if not i["width"]]
        if r.get("math") and not r.get("mathjax"):
            problems.append("MathJax did not start")
        if "error" in r:
            problems.append(r["error"])
        if problems:
            bad[page] = problems[:5]
    assert not bad, f"pages that do not render from file://: {bad}"
