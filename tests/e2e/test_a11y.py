"""Accessibility audit: axe-core (from the npm registry) injected by Playwright, WCAG 2 A and AA rules, on the
playground, the instructor page and its gallery. axe-core is a test dependency installed with npm into a cache
folder (.ci/run does it; this test does it on first use), not vendored: the version is pinned here and the
560 kB bundle stays out of the repository."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import unavailable

from .helpers import ADMIN_TOKEN, api, open_app

pytestmark = pytest.mark.browser

AXE_VERSION = "4.11.0"
AXE_DIR = Path(os.environ.get("PLAYGROUND_AXE_DIR", Path.home() / ".cache" / "playground-axe"))
RULES = ["wcag2a", "wcag2aa"]   # WCAG 2.0 A and AA (2.1 and best practices are not in the scope)


@pytest.fixture(scope="module")
def axe_js() -> str:
    script = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            unavailable("npm is not installed: axe-core comes from the npm registry")
        AXE_DIR.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([npm, "install", "--prefix", str(AXE_DIR), "--no-audit", "--no-fund", "--silent",
                            f"axe-core@{AXE_VERSION}"], capture_output=True, text=True, timeout=300)
        if r.returncode or not script.exists():
            unavailable(f"npm install axe-core@{AXE_VERSION} failed: {r.stderr[-500:]}")
    return script.read_text()


def audit(page, axe_js: str) -> list[str]:
    """axe-core's WCAG 2 A / AA violations on the page as it is now, one line per failing element."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_js)   # through the DevTools protocol: the page's CSP (no inline scripts) stays on
    result = page.evaluate("rules => axe.run(document, {runOnly: {type: 'tag', values: rules}})", RULES)
    return [f"{v['id']} ({v['impact']}): {v['help']} -> {n['target']}: {n['failureSummary']}"
            for v in result["violations"] for n in v["nodes"]]


def assert_clean(page, axe_js: str) -> None:
    violations = audit(page, axe_js)
    assert not violations, "\n".join(violations)


def test_playground_has_no_wcag_violation(page, server, axe_js):
    open_app(page, server, "dataset=xor&h=6.tanh,4.tanh")
    page.wait_for_selector("#trace .trace-step")
    assert_clean(page, axe_js)
    page.click("#step-epoch")   # the page after training: heatmaps, curves, trace filled in
    page.wait_for_function("() => document.querySelector('#step-value').textContent !== '0'")
    assert_clean(page, axe_js)
    page.evaluate("window.__playground.events.emit('connection', true)")   # the banner while the server is away
    page.wait_for_selector("#connection-banner:not([hidden])")
    assert_clean(page, axe_js)
    page.evaluate("window.__playground.events.emit('connection', false)")


def test_instructor_page_and_gallery_have_no_wcag_violation(page, server, axe_js):
    for name, ds in (("Axe student", "circle"), ("Axe other", "spiral")):
        api(server, "/api/models", "POST", {"nickname": name, "data": {"dataset": ds}})
    admin = lambda path, method="GET", body=None: api(server, f"/api/class{path}", method, body, token=ADMIN_TOKEN)  # noqa: E731
    admin("/preset", "PUT", {"link": "/?dataset=circle&f=x1,x2"})
    admin("/hidden-test", "PUT", {"X": [[0.1, 0.2], [3.5, 3.1]], "y": [[1], [0]]})
    try:
        page.goto(f"{server}/class")
        page.wait_for_selector("#auth-error:not([hidden])")
        assert_clean(page, axe_js)          # signed out
        page.fill("#admin-token", ADMIN_TOKEN)
        page.click("#sign-in")
        page.wait_for_selector("#leaderboard tbody tr")
        page.click("#apart summary")
        assert_clean(page, axe_js)          # tables, leaderboard, the models apart
        page.click("#view-gallery")
        page.wait_for_selector("#gallery .tile")
        assert_clean(page, axe_js)
    finally:
        admin("/preset", "DELETE")
        admin("/hidden-test", "DELETE")
