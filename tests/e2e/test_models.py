"""Browser tests of model ownership and transfer: tokens kept across a reload, own CSV data,
download / upload of a model, forks overlaid on the loss chart (see conftest.py)."""
from __future__ import annotations

import json
import math
import urllib.error

import pytest

from .helpers import api, model_id, number, open_app, pause, play, state, step_value, wait_new_model

pytestmark = pytest.mark.browser

XOR = "dataset=xor&h=8.tanh,8.tanh&out=1.sigmoid&loss=bce"


def page_token(page, mid: str) -> str | None:
    return page.evaluate("id => (JSON.parse(localStorage.getItem('bp.tokens.v1') || '{}'))[id] || null", mid)


def test_tokens_are_kept_and_a_reload_reopens_the_model(page, server):
    mid = open_app(page, server, XOR)
    token = page_token(page, mid)
    assert token, "the page did not keep the model's token"
    # the server refuses changes without the token: the page's calls carry it
    with pytest.raises(urllib.error.HTTPError) as e:
        api(server, f"/api/models/{mid}/train", "POST", {"steps": 1})
    assert e.value.code == 401
    page.click("#step")
    page.wait_for_function("() => document.querySelector('#step-value').textContent === '1'")
    page.click("#step-epoch")
    page.wait_for_function("() => document.querySelector('#step-value').textContent === '11'")
    play(page)
    page.wait_for_function("() => parseInt(document.querySelector('#step-value').textContent) > 60")
    pause(page)
    before = step_value(page)
    page.wait_for_function("s => window.__playground.state.step === s", arg=before)
    assert f"model={mid}" in page.url

    page.reload()
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    assert model_id(page) == mid
    page.wait_for_function("s => document.querySelector('#step-value').textContent === String(s)", arg=before)
    assert api(server, f"/api/models/{mid}")["step"] == before
    assert state(page)["config"]["dataset"] == "xor"
    # the loss chart shows the model's past, and training continues from it
    assert page.evaluate("window.__playground.views.output.chart.length") > 0
    page.click("#step")
    page.wait_for_function("s => document.querySelector('#step-value').textContent === String(s + 1)", arg=before)

    # a plain URL reopens the last model of this browser too
    page.goto(server + "/")
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    assert model_id(page) == mid
    assert page.console_log.errors == []


CSV_OK = "petal,sepal,kind\n" + "\n".join(
    f"{x:.2f},{y:.2f},{'red' if x * x + y * y < 2 else 'blue'}"
    for x in [i / 2 - 2.5 for i in range(11)] for y in [j / 2 - 2.5 for j in range(11)]) + "\n"
CSV_BAD = "a,b,c\n1,2,3\n4,5\n6,7,8\n"


def test_csv_upload_trains_on_uploaded_data(page, server):
    open_app(page, server)
    page.set_input_files("#csv-file", files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": CSV_BAD.encode()}])
    page.wait_for_selector("#csv-columns:not([hidden])")
    page.click("#csv-use")
    err = page.locator("#csv-file-error")
    err.wait_for(state="visible")
    assert "line 3" in err.inner_text()

    page.set_input_files("#csv-file", files=[{"name": "flowers.csv", "mimeType": "text/csv", "buffer": CSV_OK.encode()}])
    page.wait_for_function("() => document.querySelector('#csv-target').value === 'kind'")
    assert page.is_checked("#csv-input-0") and page.is_checked("#csv-input-1") and page.is_disabled("#csv-input-2")
    page.check("#csv-standardize")
    old = model_id(page)
    page.click("#csv-use")
    mid = wait_new_model(page, old)
    assert err.is_hidden()
    spec = api(server, f"/api/models/{mid}")["spec"]
    assert spec["data"]["source"] == "custom"
    assert spec["data"]["info"]["input_columns"] == ["petal", "sepal"]
    assert spec["data"]["standardize"]          # statistics of the training rows
    assert spec["layers"][-1] == {"units": 2, "activation": "softmax"} and spec["loss"] == "cross_entropy"
    data = api(server, f"/api/models/{mid}/data")
    assert len(data["train"]["X"]) + len(data["test"]["X"]) == 121
    assert page.input_value("#dataset") == "__custom"
    assert "flowers.csv" in page.inner_text("#csv-current")
    start = number(page, "#loss-value")
    play(page)
    page.wait_for_function("() => parseInt(document.querySelector('#step-value').textContent) > 200", timeout=20_000)
    pause(page)
    assert number(page, "#loss-value") < start
    assert "did=" in page.get_attribute("#share-link", "href")
    # back to a generated dataset
    page.click(".thumb[data-dataset=xor]")
    back = wait_new_model(page, mid)
    assert api(server, f"/api/models/{back}")["spec"]["data"]["dataset"] == "xor"
    assert page.is_hidden("#csv-current")
    assert all("422" in e for e in page.console_log.errors), page.console_log.errors   # only the bad file's


def test_download_and_upload_round_trip(page, server, tmp_path):
    mid = open_app(page, server, XOR)
    page.click("#step-epoch")
    page.wait_for_function("() => document.querySelector('#step-value').textContent === '10'")
    page.click("#step")
    page.wait_for_function("() => document.querySelector('#step-value').textContent === '11'")
    with page.expect_download() as dl:
        page.click("#download-model")
    path = tmp_path / "model.json"
    dl.value.save_as(path)
    doc = json.loads(path.read_text())
    assert isinstance(doc, dict)
    href = page.get_attribute("#export-numpy", "href")
    assert href.endswith(f"/api/models/{mid}/export?format=numpy")

    page.set_input_files("#upload-model", str(path))
    new = wait_new_model(page, mid)
    assert new != mid
    assert api(server, f"/api/models/{new}")["step"] == 11
    page.wait_for_function("() => document.querySelector('#step-value').textContent === '11'")
    assert "step 11" in page.inner_text("#transfer-status")
    assert page_token(page, new)
    # the upload continues where the download stopped, like the original would
    page.click("#step")
    page.wait_for_function("() => document.querySelector('#step-value').textContent === '12'")
    # like any model the page replaces, the one open before the upload is deleted
    with pytest.raises(urllib.error.HTTPError) as e:
        api(server, f"/api/models/{mid}")
    assert e.value.code == 404
    assert math.isfinite(number(page, "#loss-value"))
    assert page.console_log.errors == []


def test_fork_overlays_the_original_curve(page, server):
    mid = open_app(page, server, XOR)
    assert page.evaluate("window.__playground.views.output.chart.seriesCount") == 3
    play(page)
    page.wait_for_function("() => parseInt(document.querySelector('#step-value').textContent) > 100")
    page.click("#fork")                     # while playing: the page pauses, then forks
    fork = wait_new_model(page, mid)
    assert page.get_attribute("#play", "aria-pressed") == "false"
    parent = api(server, f"/api/models/{fork}")["parent"]
    assert parent["id"] == mid and parent["step"] == api(server, f"/api/models/{mid}")["step"]
    page.wait_for_function("() => window.__playground.views.output.chart.seriesCount === 4")
    assert "original train" in page.inner_text("#loss-chart .u-legend")
    chips = page.locator("#fork-list .chip")
    assert chips.count() == 2
    assert page.get_attribute("#fork-list .chip[aria-current=true]", "data-model") == fork
    step = step_value(page)
    assert step > 100
    play(page)
    page.wait_for_function("s => parseInt(document.querySelector('#step-value').textContent) > s + 50", arg=step)
    pause(page)
    # switch back to the original: the fork becomes the overlay
    page.click(f"#fork-list .chip[data-model='{mid}']")
    wait_new_model(page, fork)
    assert model_id(page) == mid
    page.wait_for_function("() => window.__playground.views.output.chart.seriesCount === 4")
    assert "fork 1 train" in page.inner_text("#loss-chart .u-legend")
    assert page.console_log.errors == []


def test_a_new_model_does_not_inherit_the_previous_boundary(page, server):
    """Switching from a 2-D dataset to 1-D data: the sine plot uses its own ranges, not xor's boundary."""
    mid = open_app(page, server, XOR)
    assert page.evaluate("window.__playground.lastFrame.boundary") is not None
    page.select_option("#dataset", "sine")
    wait_new_model(page, mid)
    page.wait_for_function("() => window.__playground.lastFrame && window.__playground.lastFrame.step === 0")
    assert page.evaluate("window.__playground.lastFrame.boundary") is None
    x_range = page.evaluate("window.__playground.views.output.boundary.xRange")
    xs = [p[0] for p in api(server, f"/api/models/{model_id(page)}/data")["train"]["X"]]
    assert x_range[0] <= min(xs) and x_range[1] >= max(xs) and x_range[1] - x_range[0] < 2 * (max(xs) - min(xs))
