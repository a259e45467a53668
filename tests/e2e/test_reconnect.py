"""The page when its stream's server goes away: a banner while it is away, a reconnect with backoff, and
play resumed from the model's saved step (the server is stopped or killed, and started again on the same
port and store)."""
from __future__ import annotations

import pytest

from tests.support import free_port, stop

from .conftest import ARTIFACTS, launch, server_env
from .helpers import api, open_app, play, set_input, state

pytestmark = pytest.mark.browser

BANNER = "#connection-banner"
# every step the page shows, in order (the render loop's state, sampled on each animation frame)
RECORD_STEPS = """() => { window.__steps = []; const tick = () => { window.__steps.push(window.__playground.state.step);
  requestAnimationFrame(tick); }; requestAnimationFrame(tick); }"""

# the new process's frames have come (the counter left the last step shown) and 20 more steps are trained
MOVED_ON = """([shown, saved]) => { const first = window.__steps.find((x) => x !== shown);
  return first !== undefined && window.__playground.state.step > Math.max(first, saved) + 20; }"""


def end_server(proc, end: str) -> None:
    """Stop the server as a restart does (SIGTERM, "stop") or as a crash does (SIGKILL, "kill")."""
    if end == "stop":
        stop(proc)
    else:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("end", ["stop", "kill"])
def test_the_page_reconnects_and_plays_on_after_a_server_restart(page, tmp_path, end):
    """stop: SIGTERM, the stream saves its steps as it closes. kill: SIGKILL, the steps since the last save are
    gone and the dead process's lease holds the model a while (the new process answers play with 409 until then)."""
    ARTIFACTS.mkdir(exist_ok=True)
    port, env = free_port(), server_env(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    with open(ARTIFACTS / "e2e-restart-server.log", "w") as log:
        proc, base = launch(port, env, log)
        try:
            model = open_app(page, base, "dataset=xor&h=4.tanh&bs=10")
            assert page.is_hidden(BANNER)
            play(page)
            page.wait_for_function("() => window.__playground.state.step >= 50", timeout=20_000)

            end_server(proc, end)
            page.locator(BANNER).wait_for(state="visible", timeout=10_000)
            assert page.get_attribute(BANNER, "role") == "status"
            away = state(page)
            assert away["away"] is True and away["playing"] is True  # the student's Play is kept
            shown = away["step"]

            proc, _ = launch(port, env, log)
            saved = api(base, f"/api/models/{model}")["step"]
            if end == "stop":
                assert saved >= shown  # every step the page showed was saved
            page.evaluate(RECORD_STEPS)
            page.locator(BANNER).wait_for(state="hidden", timeout=30_000)
            page.wait_for_function(MOVED_ON, arg=[shown, saved], timeout=40_000)
            back = state(page)
            assert (back["modelId"], back["playing"], back["away"], back["reconnects"]) == (model, True, False, 1)
            assert page.get_attribute("#play", "aria-pressed") == "true"
            steps = page.evaluate("window.__steps")
            # the counter held the last step it had shown, then moved on from the saved step (back to it after a
            # kill, never below it), and never back after that
            moved = steps.index(next(x for x in steps if x != shown))
            assert steps[0] == shown and steps[moved:] == sorted(steps[moved:]), steps[:20]
            assert min(steps[moved:]) >= saved, steps[:20]
            if end == "stop":
                assert steps == sorted(steps), steps[:20]
            assert page.is_hidden("#error-banner")
            # the browser itself logs each refused try; the page logs nothing
            assert [e for e in page.console_log.errors if "WebSocket connection to" not in e] == []
        finally:
            stop(proc)


def _query(page) -> dict:
    return page.evaluate("() => Object.fromEntries(new URLSearchParams(location.search))")


@pytest.mark.parametrize(("playing", "end"), [(True, "stop"), (True, "kill"), (False, "stop")])
def test_settings_changed_while_the_server_is_away_reach_the_model_once_it_is_back(page, tmp_path, playing, end):
    """A playing page notices from its stream; a paused one (no stream yet) from the failed PATCH. Either way
    it shows the connection banner, not "Failed to fetch", and the model gets the settings on the reconnect."""
    ARTIFACTS.mkdir(exist_ok=True)
    port, env = free_port(), server_env(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    with open(ARTIFACTS / "e2e-restart-settings-server.log", "w") as log:
        proc, base = launch(port, env, log)
        try:
            model = open_app(page, base, "dataset=xor&h=4.tanh&bs=10&lr=0.03&reg=none")
            if playing:
                play(page)
                page.wait_for_function("() => window.__playground.state.step >= 20", timeout=20_000)
            end_server(proc, end)
            if playing:
                page.locator(BANNER).wait_for(state="visible", timeout=10_000)
            set_input(page, "#learning-rate", "0.1")
            page.select_option("#reg-kind", "l2")
            page.locator(BANNER).wait_for(state="visible", timeout=10_000)
            assert page.is_hidden("#error-banner"), page.inner_text("#error-banner")
            assert state(page)["away"] is True
            assert page.input_value("#learning-rate") == "0.1" and page.input_value("#reg-kind") == "l2"

            proc, _ = launch(port, env, log)
            page.locator(BANNER).wait_for(state="hidden", timeout=30_000)
            page.wait_for_function("() => new URLSearchParams(location.search).get('reg') === 'l2'", timeout=30_000)
            spec = api(base, f"/api/models/{model}")["spec"]
            assert (spec["optimizer"]["learning_rate"], spec["regularization"]["kind"]) == (0.1, "l2")
            query = _query(page)
            assert (query["lr"], query["reg"]) == ("0.1", "l2")
            back = state(page)
            assert (back["modelId"], back["playing"], back["away"]) == (model, playing, False)
            assert (back["config"]["learning_rate"], back["config"]["reg_kind"]) == (0.1, "l2")
            assert page.is_hidden("#error-banner"), page.inner_text("#error-banner")

            page.reload()
            page.wait_for_selector("body[data-ready=true]", timeout=20_000)
            assert page.input_value("#learning-rate") == "0.1" and page.input_value("#reg-kind") == "l2"
        finally:
            stop(proc)


def test_a_paused_page_that_loses_the_server_shows_the_banner_until_it_is_back(page, tmp_path):
    """A page that never played has no stream: the first call that cannot reach the server (here +1 epoch)
    makes it away, and it probes until the server answers, with no error shown."""
    ARTIFACTS.mkdir(exist_ok=True)
    port, env = free_port(), server_env(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    with open(ARTIFACTS / "e2e-restart-paused-server.log", "w") as log:
        proc, base = launch(port, env, log)
        try:
            model = open_app(page, base, "dataset=xor&h=4.tanh&bs=10")
            stop(proc)
            page.click("#step-epoch")
            page.locator(BANNER).wait_for(state="visible", timeout=10_000)
            assert page.is_hidden("#error-banner"), page.inner_text("#error-banner")
            assert state(page)["playing"] is False

            proc, _ = launch(port, env, log)
            page.locator(BANNER).wait_for(state="hidden", timeout=30_000)
            back = state(page)
            assert (back["modelId"], back["away"], back["reconnects"]) == (model, False, 1)
            assert page.is_hidden("#error-banner")
            play(page)   # the reopened stream trains on
            page.wait_for_function("() => window.__playground.state.step >= 20", timeout=20_000)
        finally:
            stop(proc)
