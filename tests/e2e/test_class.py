"""Browser tests of the class demo: the instructor page (static/class.html) and what a student's
playground shows of it (frozen banner, shared setup). The e2e server runs with
PLAYGROUND_ADMIN_TOKEN = helpers.ADMIN_TOKEN (conftest.py)."""
from __future__ import annotations

import json
import time
import urllib.error

import pytest

from .helpers import ADMIN_TOKEN, ROOT, api, model_id, open_app, play, step_value

pytestmark = pytest.mark.browser

FAST_POLL = "window.__playgroundPollMs = 500; window.__classPollMs = 1000;"


def admin(server, path, method="GET", body=None):
    return api(server, f"/api/class{path}", method, body, token=ADMIN_TOKEN)


@pytest.fixture
def clean_class(server):
    """Leave the class as it was: unfrozen, no preset, no hidden test set (the server is shared by every test)."""
    yield
    admin(server, "/freeze", "PUT", {"frozen": False})
    admin(server, "/preset", "DELETE")
    admin(server, "/hidden-test", "DELETE")


def sign_in(page, server, token=ADMIN_TOKEN):
    page.goto(f"{server}/class")
    page.fill("#admin-token", token)
    page.click("#sign-in")


def test_class_page_needs_the_instructor_token(page, server):
    page.goto(f"{server}/class")
    err = page.locator("#auth-error")
    err.wait_for(state="visible")
    assert "Not signed in" in err.inner_text()
    assert page.is_hidden("#class-main")
    sign_in(page, server, "not-the-token")
    page.wait_for_function("() => document.querySelector('#auth-error').textContent.includes('Wrong instructor token')")
    assert page.is_hidden("#class-main")
    # said once, not "Wrong instructor token (wrong instructor token)."
    assert page.inner_text("#auth-error") == "Wrong instructor token: check it and sign in again."
    with pytest.raises(urllib.error.HTTPError) as e:
        api(server, "/api/class/models")
    assert e.value.code == 401
    # the token is kept for the tab only (sessionStorage), never in localStorage
    assert page.evaluate("sessionStorage.getItem('bp.admin-token')") == "not-the-token"
    assert page.evaluate("Object.keys(localStorage).filter(k => localStorage.getItem(k).includes('not-the-token'))") == []


def test_instructor_sees_models_and_freezes_the_class(new_page, server, clean_class):
    student = new_page()
    student.add_init_script(FAST_POLL)
    open_app(student, server, "dataset=xor&h=8.tanh,8.tanh")
    student.wait_for_selector("#nickname-field:not([hidden])")
    old = model_id(student)
    student.fill("#nickname", "Ada L.")
    student.press("#nickname", "Enter")           # an untrained model is made again with the name
    student.wait_for_function("old => window.__playground.state.modelId !== old"
                              " && document.body.dataset.ready === 'true'", arg=old)
    mid = model_id(student)
    play(student)

    teacher = new_page()
    teacher.add_init_script(FAST_POLL)
    sign_in(teacher, server)
    teacher.wait_for_selector(f"#models tr[data-model='{mid}']")
    assert teacher.is_hidden("#auth-error")
    row = teacher.inner_text(f"#models tr[data-model='{mid}']")
    assert "Ada L." in row and "2-8-8-1" in row
    assert old not in teacher.inner_text("#models")     # the replaced model was deleted
    # every model's curve is on the chart
    teacher.wait_for_function("() => window.__class.curves && window.__class.curves.seriesCount >= 1")
    teacher.wait_for_function(
        "mid => parseInt(document.querySelector(`#models tr[data-model='${mid}'] td:nth-child(3)`).textContent) > 0",
        arg=mid)

    # freeze: the student's page stops, says so, and refuses to play
    teacher.click("#freeze")
    teacher.wait_for_selector("#freeze[aria-pressed=true]")
    banner = student.locator("#frozen-banner")
    banner.wait_for(state="visible", timeout=5_000)
    assert "frozen" in banner.inner_text().lower()
    student.wait_for_selector("#play[aria-pressed=false]", timeout=5_000)
    assert student.is_disabled("#play") and student.is_disabled("#step")
    frozen_at = api(server, f"/api/models/{mid}")["step"]
    time.sleep(0.8)
    assert api(server, f"/api/models/{mid}")["step"] == frozen_at
    token = student.evaluate("id => JSON.parse(localStorage.getItem('bp.tokens.v1'))[id]", mid)
    with pytest.raises(urllib.error.HTTPError) as e:
        api(server, f"/api/models/{mid}/train", "POST", {"steps": 1}, token=token)
    assert e.value.code == 423
    assert teacher.inner_text("#class-state") == "frozen"

    # unfreeze: play works again
    teacher.click("#freeze")
    teacher.wait_for_selector("#freeze[aria-pressed=false]")
    banner.wait_for(state="hidden", timeout=5_000)
    assert student.is_enabled("#play")
    s0 = step_value(student)
    play(student)
    student.wait_for_function("s => parseInt(document.querySelector('#step-value').textContent) > s + 20", arg=s0)
    assert student.console_log.errors == []


def test_frozen_while_playing_stops_play(page, server, clean_class):
    """The stream's 423 (the page has not polled yet) stops play and shows the banner at once."""
    open_app(page, server)
    play(page)
    page.wait_for_function("() => parseInt(document.querySelector('#step-value').textContent) > 5")
    admin(server, "/freeze", "PUT", {"frozen": True})
    page.locator("#frozen-banner").wait_for(state="visible", timeout=5_000)  # well before the 10 s poll
    page.wait_for_selector("#play[aria-pressed=false]")
    assert page.is_disabled("#play")


def test_preset_hidden_test_and_leaderboard(new_page, server, clean_class):
    student = new_page()
    student.add_init_script(FAST_POLL)
    open_app(student, server, "dataset=circle")
    student.wait_for_selector("#nickname-field:not([hidden])")
    old = model_id(student)
    student.fill("#nickname", "Dana")
    student.press("#nickname", "Enter")
    mid = student.wait_for_function("old => document.body.dataset.ready === 'true' && window.__playground.state.modelId"
                                    " !== old && window.__playground.state.modelId", arg=old).json_value()
    student.click("#step-epoch")
    student.wait_for_function("() => document.querySelector('#step-value').textContent !== '0'")

    teacher = new_page()
    teacher.add_init_script(FAST_POLL)
    sign_in(teacher, server)
    teacher.wait_for_selector(f"#models tr[data-model='{mid}']")
    # hidden test set: a CSV with a header; the last column is y
    rows = api(server, f"/api/models/{mid}/data")["test"]
    csv = "x1,x2,y\n" + "\n".join(f"{x[0]},{x[1]},{y[0]}" for x, y in zip(rows["X"][:40], rows["y"][:40]))
    teacher.fill("#hidden-text", "x1,x2,y\n1,2,0\n3,oops,1\n")
    teacher.click("#hidden-upload")
    teacher.wait_for_function("() => document.querySelector('#hidden-text-error').textContent.includes('line 3')")
    teacher.fill("#hidden-text", csv)
    teacher.click("#hidden-upload")
    teacher.wait_for_function("() => document.querySelector('#hidden-status').textContent.includes('40 rows')")
    teacher.wait_for_selector(f"#leaderboard tbody tr[data-model='{mid}'] >> text=Dana")
    # JSON works too
    teacher.fill("#hidden-text", json.dumps({"X": rows["X"][:10], "y": [r[0] for r in rows["y"][:10]]}))
    teacher.click("#hidden-upload")
    teacher.wait_for_function("() => document.querySelector('#hidden-status').textContent.includes('10 rows')")

    # a shared setup: pasted share link -> banner on the student's page -> opens that setup
    teacher.fill("#preset-url", f"{server}/?dataset=spiral&h=6.relu&lr=0.01&model=someone-elses")
    teacher.click("#preset-set")
    teacher.wait_for_function("() => document.querySelector('#preset-current').textContent.startsWith('/?dataset=spiral')")
    assert "model=" not in teacher.inner_text("#preset-current")
    link = student.locator("#preset-link")
    link.wait_for(state="visible", timeout=5_000)
    assert "Your teacher shared a setup (spiral · features x1, x2)" in student.inner_text("#preset-banner")
    link.click()
    student.wait_for_url("**/?dataset=spiral*")
    student.wait_for_function("() => document.body && document.body.dataset.ready === 'true'"
                              " && window.__playground.state.config.dataset === 'spiral'", timeout=20_000)
    new_id = model_id(student)
    assert new_id != mid
    assert student.is_hidden("#preset-banner")    # opened: not offered again in this tab
    # the preset's model carries the student's nickname, and the instructor sees Dana's models together
    assert api(server, f"/api/models/{new_id}")["nickname"] == "Dana"
    teacher.wait_for_selector(f"#models tr[data-model='{new_id}']")
    group = teacher.eval_on_selector_all("#models tbody tr", "rows => rows.map(r => [r.dataset.model, r.dataset.student])")
    dana = [i for i, (m, who) in enumerate(group) if who == "name:dana"]
    assert {group[i][0] for i in dana} == {mid, new_id} and dana == list(range(dana[0], dana[0] + 2))
    assert "Dana (2 models)" in teacher.inner_text(f"#models tr[data-model='{group[dana[0]][0]}']")
    # spiral is now the assignment: Dana's circle model is listed apart with the reason
    teacher.click("#leaderboard-refresh")
    teacher.wait_for_function(f"() => document.querySelector(\"#apart-table tr[data-model='{mid}']\")")
    teacher.click("#apart summary")
    assert "trained on circle" in teacher.inner_text(f"#apart-table tr[data-model='{mid}']")
    teacher.click("#preset-clear")
    teacher.wait_for_function("() => document.querySelector('#preset-current').textContent === 'none'")
    assert teacher.console_log.errors == []


def test_console_is_clean_on_class_before_a_hidden_set_exists(page, server, clean_class):
    admin(server, "/hidden-test", "DELETE")
    page.add_init_script(FAST_POLL)
    sign_in(page, server)
    page.wait_for_function("() => Number(document.body.dataset.loaded || 0) >= 3")   # several polls
    assert page.inner_text("#leaderboard-note") == "Upload a hidden test set to rank the models."
    assert page.console_log.errors == []


def test_a_foreign_link_is_refused_as_the_preset(page, server, clean_class):
    sign_in(page, server)
    page.wait_for_selector("#class-main:not([hidden])")
    page.fill("#preset-url", "https://elsewhere.example/?dataset=spiral")
    page.click("#preset-set")
    err = page.locator("#preset-url-error")
    err.wait_for(state="visible")
    assert err.inner_text() == f"only this site's links are shared ({server}); this link is on elsewhere.example"
    assert page.get_attribute("#preset-url", "aria-invalid") == "true"
    assert admin(server, "/status")["preset"] is None     # nothing was shared


def make_students(server, n: int, tag: str) -> dict[str, str]:
    """n students on circle (one model each, a few steps trained): nickname -> model id."""
    out = {}
    for i in range(n):
        m = api(server, "/api/models", "POST", {"nickname": f"{tag} student {i + 1}", "layers": [
            {"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
            "data": {"dataset": "circle", "samples": 60}})
        api(server, f"/api/models/{m['id']}/train", "POST", {"steps": 5 * (i + 1)}, token=m["token"])
        out[m["nickname"]] = m["id"]
    return out


def hidden_circle(server):
    X = [[x / 2, y / 2] for x in range(-8, 9, 2) for y in range(-8, 9, 2)]
    admin(server, "/hidden-test", "PUT", {"X": X, "y": [[1.0 if a * a + b * b < 4 else 0.0] for a, b in X]})


NO_SIDEWAYS_SCROLL = "() => document.scrollingElement.scrollWidth <= window.innerWidth"


def test_instructor_page_never_scrolls_sideways_at_1366(browser, server, clean_class):
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    ctx.add_init_script("window.__testHooks = true;" + FAST_POLL)
    try:
        page = ctx.new_page()
        students = make_students(server, 4, "wide")
        hidden_circle(server)
        long_link = "/?dataset=circle&f=x1,x2&" + "&".join(f"h{i}=8.tanh" for i in range(60))
        admin(server, "/preset", "PUT", {"link": long_link})
        sign_in(page, server)
        for mid in students.values():
            page.wait_for_selector(f"#leaderboard tr[data-model='{mid}']")
        page.wait_for_function("() => document.querySelector('#preset-current a')")
        for width in (1366, 1280):
            page.set_viewport_size({"width": width, "height": 768})
            page.wait_for_function(NO_SIDEWAYS_SCROLL)
            assert page.evaluate("document.scrollingElement.scrollWidth") <= width
            # every panel stays inside the page, the Accuracy column inside its panel's scroll box
            right = page.evaluate("() => Math.max(...[...document.querySelectorAll('.panel')].map(p => p.getBoundingClientRect().right))")
            assert right <= width
    finally:
        ctx.close()


def test_gallery_shows_one_boundary_tile_per_student(new_page, server, clean_class):
    students = make_students(server, 3, "gallery")
    again = api(server, "/api/models", "POST", {"nickname": "Gallery Student 1", "data": {"dataset": "circle"}})
    page = new_page()
    page.add_init_script(FAST_POLL)
    sign_in(page, server)
    page.wait_for_selector("#class-main:not([hidden])")
    page.click("#view-gallery")
    assert page.is_hidden("#class-main")
    page.wait_for_selector(f"#gallery .tile[data-model='{again['id']}']")   # student 1's newest model is their tile
    listed = admin(server, "/gallery")["models"]
    names = {" ".join((m["nickname"] or "").split()).lower() or m["id"] for m in listed}
    page.wait_for_function("n => document.querySelectorAll('#gallery .tile').length === n", arg=len(names))
    for name, mid in students.items():   # student 1's first model is not drawn: their newest is
        assert page.locator(f"#gallery .tile[data-model='{mid}']").count() == (name != "gallery student 1")
    # each tile is a drawn boundary: its canvas is not blank
    blank = page.evaluate("""() => [...document.querySelectorAll('#gallery .tile canvas')].filter(c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < d.length; i += 4) if (d[i] !== 250 || d[i + 1] !== 250) return false;
        return true; }).length""")
    assert blank == 0
    # leaderboard order once a hidden set exists: ranked students first, "#1" on the first tile
    hidden_circle(server)
    page.wait_for_function("() => document.querySelector('#gallery .tile .tile-name').textContent.startsWith('#1 ')")
    assert "leaderboard order" in page.inner_text("#gallery-order")
    page.click("#gallery-fullscreen")
    page.wait_for_selector("#gallery-panel.fullscreen")
    assert page.console_log.errors == []


GALLERY_CLASS = [("Ada", "circle", 300), ("Ben", "circle", 60), ("Chloé", "xor", 400), ("Dev", "spiral", 900),
                 ("Eva", "moons", 300), ("Finn", "gauss", 100), ("Gus", "circle", 600), ("Hana", "spiral", 300)]


def test_gallery_screenshot_for_the_readme(browser, fresh_server):
    """docs/gallery.png: eight students on a projector-sized screen, in leaderboard order (a circle hidden set)."""
    admin(fresh_server, "/preset", "PUT", {"link": "/?dataset=circle&f=x1,x2"})
    for name, dataset, steps in GALLERY_CLASS:
        m = api(fresh_server, "/api/models", "POST", {"nickname": name, "data": {"dataset": dataset, "noise": 0.1},
                "layers": [{"units": 8, "activation": "tanh"}, {"units": 8, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
                "optimizer": {"name": "adam", "learning_rate": 0.03}})
        api(fresh_server, f"/api/models/{m['id']}/train", "POST", {"steps": steps}, token=m["token"])
    from app.engine.datasets import make_dataset
    d = make_dataset("circle", samples=200, noise=0.1, seed=99)   # a fresh draw the students never saw
    admin(fresh_server, "/hidden-test", "PUT", {"X": d.X_test.tolist(), "y": d.y_test.tolist()})
    ctx = browser.new_context(viewport={"width": 1280, "height": 720})
    ctx.add_init_script("window.__testHooks = true;")
    try:
        page = ctx.new_page()
        sign_in(page, fresh_server)
        page.wait_for_selector("#class-main:not([hidden])")
        page.click("#view-gallery")
        page.wait_for_function("() => document.querySelectorAll('#gallery .tile').length === 8"
                               " && document.querySelector('#gallery .tile .tile-name').textContent.startsWith('#1 ')")
        page.screenshot(path=str(ROOT / "docs" / "gallery.png"), full_page=True)
        assert (ROOT / "docs" / "gallery.png").stat().st_size > 50_000
    finally:
        ctx.close()


def test_play_stops_at_the_assignments_step_budget(new_page, server, clean_class):
    """A preset with a step budget: Play at "auto" speed trains exactly the budget, pauses, says so,
    and the model stays on the assignment (ranked), where a stream's play passed it by thousands."""
    admin(server, "/preset", "PUT", {"link": "/?dataset=circle&h=4.tanh", "match_loss": True, "step_budget": 200})
    student = new_page()
    student.add_init_script(FAST_POLL)
    open_app(student, server, "dataset=circle&h=4.tanh")
    student.wait_for_selector("#nickname-field:not([hidden])")
    old = model_id(student)
    student.fill("#nickname", "Budget B")
    student.press("#nickname", "Enter")
    mid = student.wait_for_function("old => document.body.dataset.ready === 'true' && window.__playground.state.modelId"
                                    " !== old && window.__playground.state.modelId", arg=old).json_value()
    assert student.is_hidden("#budget-reached")
    play(student)
    student.wait_for_selector("#budget-reached:not([hidden])", timeout=30_000)
    student.wait_for_selector("#play[aria-pressed=false]", timeout=5_000)
    assert api(server, f"/api/models/{mid}")["step"] == 200
    assert student.inner_text("#budget-reached") == (
        "The assignment's budget of 200 steps is reached: this model is ranked at step 200. Reset to start again.")
    assert step_value(student) == 200
    # Step, +1 epoch and Play again train nothing past it
    student.click("#step")
    student.click("#step-epoch")
    student.click("#play")
    student.wait_for_timeout(500)
    assert api(server, f"/api/models/{mid}")["step"] == 200
    assert student.get_attribute("#play", "aria-pressed") == "false"

    hidden_circle(server)
    board = admin(server, "/leaderboard")
    row = next(r for r in board["ranked"] if r["id"] == mid)
    assert row["step"] == 200 and row["nickname"] == "Budget B"
    assert mid not in [r["id"] for r in board["apart"]]
    # Reset starts again: step 0, the message gone
    student.click("#reset")
    student.wait_for_function("() => document.querySelector('#step-value').textContent === '0'")
    student.wait_for_selector("#budget-reached", state="hidden")
    assert student.console_log.errors == []
