"""Small page helpers shared by the e2e tests."""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READY = "body[data-ready=true]"
ADMIN_TOKEN = "e2e-instructor-token"


def api(base: str, path: str, method: str = "GET", body: dict | None = None, token: str | None = None):
    """A JSON call to the running server (for checks made outside the page)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def open_app(page, base: str, query: str = "") -> str:
    """Load the playground (optionally with a config query string); return the model id."""
    page.goto(f"{base}/" + (f"?{query}" if query else ""))
    page.wait_for_selector(READY, timeout=20_000)
    return model_id(page)


def model_id(page) -> str:
    return page.evaluate("window.__playground.state.modelId")


def state(page) -> dict:
    return page.evaluate("window.__playground.state")


def wait_new_model(page, old_id: str, timeout: float = 20_000) -> str:
    """Wait until a config change has produced a new model and the page is ready again."""
    page.wait_for_function(
        "old => document.body.dataset.ready === 'true' && window.__playground.state.modelId"
        " && window.__playground.state.modelId !== old", arg=old_id, timeout=timeout)
    return model_id(page)


def change_and_wait(page, action) -> str:
    """Run an action that re-creates the model (click, select...) and wait for the new one."""
    old = model_id(page)
    action()
    return wait_new_model(page, old)


def number(page, selector: str) -> float:
    text = page.inner_text(selector).strip()
    try:
        return float(text)
    except ValueError:
        return float("nan")


def step_value(page) -> int:
    return int(page.inner_text("#step-value").strip() or 0)


def play(page) -> None:
    assert page.get_attribute("#play", "aria-pressed") == "false"
    page.click("#play")
    page.wait_for_selector("#play[aria-pressed=true]", timeout=5_000)


def pause(page) -> None:
    page.click("#play")
    page.wait_for_selector("#play[aria-pressed=false]", timeout=5_000)
    time.sleep(0.3)  # let the last frame arrive and be drawn


def heatmap_pixels(page, kind: str = "W") -> dict[str, str]:
    return dict(page.eval_on_selector_all(
        f"canvas.heatmap-{kind}", "els => els.map(e => [e.dataset.layer, e.toDataURL()])"))


def set_input(page, selector: str, value: str) -> None:
    """Type into a number input and commit it (change event) with Enter."""
    page.fill(selector, value)
    page.press(selector, "Enter")


def redraw_rate(page, seconds: float) -> float:
    """Redraws per second counted from window.__playground.frames over a window of `seconds`."""
    t0 = page.evaluate("performance.now()")
    time.sleep(seconds)
    t1 = page.evaluate("performance.now()")
    n = page.evaluate("([a, b]) => window.__playground.frames.filter(t => t >= a && t <= b).length", [t0, t1])
    return n / ((t1 - t0) / 1000.0)
