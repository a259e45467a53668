"""The page when its stream's server goes away: a banner while it is away, a reconnect with backoff, and
play resumed from the model's saved step (the server is stopped and started again on the same port and store)."""
from __future__ import annotations

import pytest

from tests.support import free_port, stop

from .conftest import ARTIFACTS, launch, server_env
from .helpers import api, open_app, play, state

pytestmark = pytest.mark.browser

BANNER = "#connection-banner"
# every step the page shows, in order (the render loop's state, sampled on each animation frame)
RECORD_STEPS = """() => { window.__steps = []; const tick = () => { window.__steps.push(window.__playground.state.step);
  requestAnimationFrame(tick); }; requestAnimationFrame(tick); }"""


def test_the_page_reconnects_and_plays_on_after_a_server_restart(page, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    port, env = free_port(), server_env(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    with open(ARTIFACTS / "e2e-restart-server.log", "w") as log:
        proc, base = launch(port, env, log)
        try:
            model = open_app(page, base, "dataset=xor&h=4.tanh&bs=10")
            assert page.is_hidden(BANNER)
            play(page)
            page.wait_for_function("() => window.__playground.state.step >= 50", timeout=20_000)

            stop(proc)  # SIGTERM: the stream saves its steps as it closes
            page.locator(BANNER).wait_for(state="visible", timeout=10_000)
            assert page.get_attribute(BANNER, "role") == "status"
            away = state(page)
            assert away["away"] is True and away["playing"] is True  # the student's Play is kept
            shown = away["step"]

            proc, _ = launch(port, env, log)
            saved = api(base, f"/api/models/{model}")["step"]
            assert saved >= shown  # every step the page showed was saved
            page.evaluate(RECORD_STEPS)
            page.locator(BANNER).wait_for(state="hidden", timeout=30_000)
            page.wait_for_function("s => window.__playground.state.step > s + 20", arg=saved, timeout=20_000)
            back = state(page)
            assert (back["modelId"], back["playing"], back["away"], back["reconnects"]) == (model, True, False, 1)
            assert page.get_attribute("#play", "aria-pressed") == "true"
            steps = page.evaluate("window.__steps")
            # the counter held the last step it had shown, then moved on from the saved step, never back
            assert steps == sorted(steps) and steps[0] == shown, steps[:20]
            assert min(x for x in steps if x != shown) >= saved, steps[:20]
            assert page.is_hidden("#error-banner")
            # the browser itself logs each refused try; the page logs nothing
            assert [e for e in page.console_log.errors if "WebSocket connection to" not in e] == []
        finally:
            stop(proc)
