"""Browser tests of the playground page against a real server (see conftest.py)."""
from __future__ import annotations

import math
import re
import time

import pytest

from .helpers import (ROOT, api, change_and_wait, heatmap_pixels, number, open_app, pause, play, set_input, state,
                      step_value)

pytestmark = pytest.mark.browser

XOR_2_HIDDEN = "dataset=xor&h=8.tanh,8.tanh&out=1.sigmoid&loss=bce"


def test_page_loads_without_console_errors(page, server):
    open_app(page, server)
    assert page.title() == "Backprop Playground"
    assert math.isfinite(number(page, "#loss-value"))
    assert math.isfinite(number(page, "#test-loss-value"))
    # default net: 2 hidden layers + output -> W and dW heatmaps for layers 1..3
    for i in (1, 2, 3):
        assert page.locator(f'canvas.heatmap-W[data-layer="{i}"]').count() == 1
        assert page.locator(f'canvas.heatmap-dW[data-layer="{i}"]').count() == 1
    assert page.locator("#boundary canvas").count() == 1
    page.wait_for_selector("#trace .trace-step")
    assert page.locator("#trace .operand.transposed").count() >= 1
    time.sleep(0.5)
    assert page.console_log.errors == []


UNLABELLED_CONTROLS_JS = """() => [...document.querySelectorAll(
    'button, input, select, textarea, a[href], [tabindex]:not([tabindex="-1"])')]
  .filter(el => el.type !== 'hidden' && !(el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
    || (el.labels && el.labels.length) || (['BUTTON', 'A'].includes(el.tagName) && el.textContent.trim())))
  .map(el => el.outerHTML.slice(0, 120))"""


def test_controls_are_labelled_and_keyboard_operable(page, server):
    open_app(page, server)
    assert page.evaluate(UNLABELLED_CONTROLS_JS) == []
    page.focus("#play")
    page.keyboard.press("Enter")
    page.wait_for_selector("#play[aria-pressed=true]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#play[aria-pressed=false]")
    # focus is visible: keyboard focus draws an outline
    page.focus("#learning-rate")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "batch-size"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    old = page.evaluate("window.__playground.state.modelId")
    page.focus("#add-layer")
    page.keyboard.press("Enter")
    wait = "old => document.body.dataset.ready === 'true' && window.__playground.state.modelId !== old"
    page.wait_for_function(wait, arg=old)
    assert page.inner_text("#layer-count") == "3 hidden layers"


def test_build_two_hidden_layers_on_xor(page, server):
    open_app(page, server)
    change_and_wait(page, lambda: page.select_option("#dataset", "xor"))
    change_and_wait(page, lambda: page.click("#remove-layer"))
    change_and_wait(page, lambda: page.click("#remove-layer"))
    assert page.inner_text("#layer-count") == "0 hidden layers"
    change_and_wait(page, lambda: page.click("#add-layer"))
    change_and_wait(page, lambda: page.click("#units-plus-0"))   # layer 1: 4 -> 5 units
    mid = change_and_wait(page, lambda: page.click("#add-layer"))
    mid = change_and_wait(page, lambda: page.select_option("#act-1", "relu"))
    spec = api(server, f"/api/models/{mid}")["spec"]
    assert spec["data"]["dataset"] == "xor"
    assert [(l["units"], l["activation"]) for l in spec["layers"]] == [(5, "tanh"), (5, "relu"), (1, "sigmoid")]
    assert page.locator("canvas.heatmap-W").count() == 3
    assert page.locator("#network .node").count() == 2 + 5 + 5 + 1
    assert page.console_log.errors == []


def test_play_reduces_loss_on_xor(page, server):
    open_app(page, server, XOR_2_HIDDEN)
    start = number(page, "#loss-value")
    play(page)
    page.wait_for_function("() => parseFloat(document.querySelector('#loss-value').textContent) < 0.3",
                           timeout=30_000)
    pause(page)
    assert number(page, "#loss-value") < min(0.3, start)
    assert step_value(page) > 0
    assert math.isfinite(number(page, "#test-loss-value"))


def test_pause_shows_changed_weight_heatmaps(page, server):
    open_app(page, server, XOR_2_HIDDEN)
    before_w, before_dw = heatmap_pixels(page, "W"), heatmap_pixels(page, "dW")
    assert set(before_w) == {"1", "2", "3"}
    play(page)
    page.wait_for_function("() => parseInt(document.querySelector('#step-value').textContent) > 50")
    pause(page)
    after_w, after_dw = heatmap_pixels(page, "W"), heatmap_pixels(page, "dW")
    for layer in ("1", "2", "3"):
        assert after_w[layer] != before_w[layer], f"W_{layer} heatmap did not change"
    assert any(after_dw[k] != before_dw[k] for k in before_dw)
    # paused: nothing moves any more
    time.sleep(0.5)
    assert heatmap_pixels(page, "W") == after_w


def test_learning_rate_changes_mid_run_without_reset(page, server):
    mid = open_app(page, server, XOR_2_HIDDEN)
    page.select_option("#speed", "5")   # slow enough to watch the step counter
    play(page)
    page.wait_for_function("() => parseInt(document.querySelector('#step-value').textContent) > 20")
    s1 = step_value(page)
    set_input(page, "#learning-rate", "0.005")
    deadline = time.monotonic() + 10
    while api(server, f"/api/models/{mid}")["spec"]["optimizer"]["learning_rate"] != 0.005:
        assert time.monotonic() < deadline, "PATCH did not reach the model"
        time.sleep(0.1)
    m1 = api(server, f"/api/models/{mid}")["step"]
    time.sleep(1.0)
    m2 = api(server, f"/api/models/{mid}")["step"]
    assert m2 > m1 >= s1 - 50, (s1, m1, m2)  # kept training from where it was: no reset
    assert step_value(page) > s1
    assert page.get_attribute("#play", "aria-pressed") == "true"
    assert state(page)["modelId"] == mid
    assert state(page)["config"]["learning_rate"] == 0.005
    pause(page)
    assert page.console_log.errors == []


def test_divergence_message_and_reset(page, server):
    open_app(page, server)
    change_and_wait(page, lambda: page.select_option("#dataset", "plane"))  # regression: mse + identity
    assert page.input_value("#loss") == "mse"
    page.select_option("#optimizer", "sgd")
    page.wait_for_function("() => window.__playground.state.config.optimizer === 'sgd'")
    set_input(page, "#learning-rate", "1000000")
    page.wait_for_function("() => window.__playground.state.config.learning_rate === 1000000")
    page.click("#play")
    msg = page.locator("#divergence-message")
    msg.wait_for(state="visible", timeout=15_000)
    page.wait_for_selector("#play[aria-pressed=false]", timeout=5_000)
    # the banner names the step the counter shows (where training stopped) and the refused one after it
    shown = re.search(r"Training stopped at step (\d+): step (\d+) made", msg.inner_text())
    assert shown, msg.inner_text()
    mid = state(page)["modelId"]
    model = api(server, f"/api/models/{mid}")
    assert (int(shown[1]), int(shown[2])) == (step_value(page), step_value(page) + 1) == (
        model["step"], model["diverged_at"])
    assert page.is_disabled("#play")
    page.click("#reset")
    msg.wait_for(state="hidden", timeout=10_000)
    page.wait_for_function("() => document.querySelector('#step-value').textContent === '0'")
    assert page.is_enabled("#play")


def test_share_link_restores_configuration(page, server, new_page):
    open_app(page, server)
    change_and_wait(page, lambda: page.select_option("#dataset", "spiral"))
    change_and_wait(page, lambda: page.click("#add-layer"))
    change_and_wait(page, lambda: page.check("#feature-sinx1"))
    set_input(page, "#learning-rate", "0.1")
    page.wait_for_function("() => window.__playground.state.config.learning_rate === 0.1")
    href = page.get_attribute("#share-link", "href")
    assert "dataset=spiral" in href and "lr=0.1" in href
    original = state(page)["config"]

    other = new_page()
    new_id = open_app(other, href.split("/?")[0], href.split("?", 1)[1])
    assert new_id != state(page)["modelId"]
    assert state(other)["config"] == original
    spec = api(server, f"/api/models/{new_id}")["spec"]
    assert spec["data"]["dataset"] == "spiral"
    assert spec["data"]["features"] == ["x1", "x2", "sinx1"]
    assert [(l["units"], l["activation"]) for l in spec["layers"]] == [
        (h["units"], h["activation"]) for h in original["hidden"]] + [(1, "sigmoid")]
    assert len(spec["layers"]) == 4
    assert spec["optimizer"]["learning_rate"] == 0.1
    assert other.input_value("#learning-rate") == "0.1"
    assert other.input_value("#dataset") == "spiral"


def test_playing_redraws_from_the_latest_frame(page, server):
    """While playing, the page keeps redrawing, at most once per animation frame and always from the newest
    frame (frames are never queued for drawing). No rate is asserted here (the machine is shared); the
    redraw rate is measured by bench/bench_page.py."""
    open_app(page, server)
    play(page)
    start = page.evaluate("window.__playground.redraws")
    page.wait_for_function("n => window.__playground.redraws > n + 30", arg=start, timeout=30_000)
    drawn = page.evaluate("""() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => {
        const pg = window.__playground;
        done({latest: pg.lastFrame === pg.session.frame || pg.session.dirty, steps: pg.lastFrame.step});
    })))""")
    pause(page)
    assert drawn["latest"] and drawn["steps"] > 0
    stamps = page.evaluate("window.__playground.frames")
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)   # one redraw per animation frame at most


def test_field_errors_appear_next_to_their_control(page, server):
    open_app(page, server)
    set_input(page, "#learning-rate", "-1")                 # PATCH 422 at optimizer.learning_rate
    err = page.locator("#learning-rate-error")
    err.wait_for(state="visible")
    assert "greater than or equal" in err.inner_text()
    assert page.get_attribute("#learning-rate", "aria-invalid") == "true"
    page.select_option("#act-2", "tanh")                    # bce needs a sigmoid: 422 at loss
    page.locator("#loss-error").wait_for(state="visible")
    assert "sigmoid" in page.inner_text("#loss-error")
    page.wait_for_selector("body[data-ready=error]")


def test_step_epoch_reset_gradcheck_and_trace(page, server):
    open_app(page, server, XOR_2_HIDDEN)   # 100 train samples, batch 10
    page.click("#step")
    page.wait_for_function("() => document.querySelector('#step-value').textContent === '1'")
    page.click("#step-epoch")
    page.wait_for_function("() => document.querySelector('#step-value').textContent === '11'")
    page.click("#reset")
    page.wait_for_function("() => document.querySelector('#step-value').textContent === '0'")
    page.click("#gradcheck")
    page.wait_for_selector("#gradcheck-result .verdict")
    assert "passed" in page.inner_text("#gradcheck-result")
    assert page.locator("#gradcheck-result tbody tr").count() == 3
    page.hover("#trace .chip[data-layer='2']")
    shapes = page.inner_text("#trace .trace-shapes")
    assert "(10×8)" in shapes and "δ" in shapes
    assert page.console_log.errors == []


def test_screenshot_mid_training(page, server):
    """Writes docs/screenshot.png (shown in the README) while a spiral is being learned."""
    open_app(page, server, "dataset=spiral&noise=0.1&f=x1,x2,sinx1,sinx2&h=8.tanh,8.tanh,6.tanh&lr=0.01&bs=10")
    page.select_option("#speed", "20")
    play(page)
    page.wait_for_function("() => parseInt(document.querySelector('#step-value').textContent) > 1500",
                           timeout=30_000)
    page.hover("#trace .chip[data-layer='2']")
    out = ROOT / "docs" / "screenshot.png"
    page.screenshot(path=str(out), full_page=True)
    pause(page)
    assert out.stat().st_size > 50_000


def test_phone_layout_fits_and_play_is_on_screen(browser, server):
    """At 390 x 844 the page is no wider than the screen and Play is fully visible; writes docs/phone.png."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                              has_touch=True)
    ctx.add_init_script("window.__testHooks = true;")
    try:
        page = ctx.new_page()
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        open_app(page, server, "dataset=spiral&h=6.tanh,6.tanh&lr=0.03")
        for width in (390, 360):
            page.set_viewport_size({"width": width, "height": 844})
            page.wait_for_function("() => document.scrollingElement.scrollWidth <= window.innerWidth")
            box = page.locator("#play").bounding_box()
            assert box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= width and box["y"] + box["height"] <= 844
        page.set_viewport_size({"width": 390, "height": 844})
        # the panels stack: output (under Play), data and network one above the other
        tops = [page.locator(f"#{p}-panel").bounding_box() for p in ("output", "data", "network")]
        assert tops[0]["y"] + tops[0]["height"] <= tops[1]["y"] + 1 and tops[1]["y"] + tops[1]["height"] <= tops[2]["y"] + 1
        play(page)
        page.wait_for_function("() => parseInt(document.querySelector('#step-value').textContent) > 200", timeout=30_000)
        pause(page)
        page.screenshot(path=str(ROOT / "docs" / "phone.png"))
        assert errors == []
    finally:
        ctx.close()
