"""Fixtures of the browser test: the built site served on 127.0.0.1, and headless Chromium.

The site is ``_build/html`` (``make test-build`` writes it), or ``$SITE_DIR``. Chromium is Debian's
``chromium`` with ``chromium-driver`` (``apt-get install chromium chromium-driver``; ``.ci/run``
installs them), driven by selenium; selenium is never allowed to download a browser of its own.
When either is missing the tests *fail* and say so: a missing browser is not a passed test.
"""
from __future__ import annotations

import functools
import http.server
import os
import pathlib
import shutil
import tempfile
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture(scope="session")
def site() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("SITE_DIR", ROOT / "_build" / "html"))
    if not (path / "book" / "intro.html").exists():
        pytest.fail(f"no built site at {path}: run `make test-build` (or set SITE_DIR) before the browser test")
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output readable
        pass


@pytest.fixture(scope="session")
def base_url(site):
    """Serve the site with Python's http.server on 127.0.0.1 and a free port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def driver():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if missing:
        pytest.fail(
            "CHROMIUM IS NOT INSTALLED, the browser test cannot run: missing "
            + ", ".join(missing)
            + ". Install Debian's packages: `sudo apt-get install -y chromium chromium-driver` "
            "(.ci/run does this in CI), or set CHROMIUM and CHROMEDRIVER to their paths."
        )
    os.environ["SE_OFFLINE"] = "true"  # selenium must not look for (or download) a browser itself
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="normbook-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
        # Offline, as a reader on a laptop without network: every host but 127.0.0.1 fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(60)
    browser.set_script_timeout(60)
    yield browser
    browser.quit()
    shutil.rmtree(profile, ignore_errors=True)
