"""End-to-end fixtures: a real uvicorn server (in-memory store) and headless Debian chromium.

In CI (CI=true) a missing chromium or Playwright is a failure, never a skip; elsewhere the
tests skip. A failing test leaves a screenshot in test-artifacts/.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.support import free_port, stop, unavailable

from .helpers import ADMIN_TOKEN, ROOT, api

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("PLAYGROUND_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]






@pytest.fixture(scope="session")
def server():
    yield from _serve("e2e-server.log")


@pytest.fixture
def fresh_server():
    """A server of its own with an empty class (for pictures of a known class)."""
    yield from _serve("e2e-fresh-server.log")


def _serve(log_name: str):
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / log_name, "w")
    proc, base = launch(free_port(), server_env(), log)
    try:
        yield base
    finally:
        stop(proc)
        log.close()


def server_env(store: str = "memory://") -> dict:
    # the instructor view is on (tests/e2e/test_class.py); the limiter would only slow the suite down
    return {**os.environ, "PLAYGROUND_STORE": store, "PLAYGROUND_ADMIN_TOKEN": ADMIN_TOKEN,
            "PLAYGROUND_RATE_LIMIT_PER_CLIENT": "0", "PLAYGROUND_RATE_LIMIT_PER_TOKEN": "0"}


def launch(port: int, env: dict, log) -> tuple[subprocess.Popen, str]:
    """The app under uvicorn on 127.0.0.1:port, once GET /api/health answers ok: (process, base URL).
    Fails the test if it exits or does not answer within 30 s."""
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"uvicorn exited with {proc.returncode}; see {log.name}", pytrace=False)
        try:
            if api(base, "/api/health").get("status") == "ok":
                return proc, base
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop(proc)
            pytest.fail("server did not answer GET /api/health within 30 s", pytrace=False)
        time.sleep(0.2)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        unavailable(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Console:
    """Console errors and uncaught page errors of one page."""

    def __init__(self):
        self.errors: list[str] = []

    def attach(self, page):
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))


@pytest.fixture
def context(browser, request):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    ctx.add_init_script("window.__testHooks = true;")  # the pages expose their test hooks only then
    request.node._e2e_pages = []
    yield ctx
    ctx.close()


@pytest.fixture
def new_page(context, request):
    """Factory: a new page with console capture (page.console.errors)."""
    def make():
        page = context.new_page()
        console = Console()
        console.attach(page)
        page.console_log = console
        request.node._e2e_pages.append(page)
        return page
    return make


@pytest.fixture
def page(new_page):
    return new_page()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        for i, page in enumerate(getattr(item, "_e2e_pages", [])):
            try:
                page.screenshot(path=str(ARTIFACTS / f"{item.name}-{i}.png"), full_page=True)
            except Exception as e:  # the page may be gone already
                print(f"no screenshot for {item.name}: {e}")
