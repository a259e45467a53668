"""Browser tests of a link that names an uploaded dataset by its id alone (`/?did=<id>`, no `out` nor
`loss`): the page fits the output layer and the loss to the dataset's targets (see conftest.py)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from .helpers import READY, api, model_id

pytestmark = pytest.mark.browser

# two classes, "no" and "yes", in a column of words: the upload makes them one-hot
CSV_CLASSES = "a,b,label\n" + "".join(
    f"{a},{b},{'yes' if a * b > 0 else 'no'}\n" for a in (-2, -1, 1, 2) for b in (-2, -1.5, 1.5, 2))
# a number to predict
CSV_NUMBERS = "a,b,price\n" + "".join(f"{a},{b},{2 * a - b + 0.5}\n" for a in range(-3, 4) for b in range(-2, 3))


def upload(base: str, csv: str) -> dict:
    return api(base, "/api/datasets", "POST", {"csv": csv})


def open_link(page, base: str, query: str) -> dict:
    """Open the page at ?query; once ready, the spec of the model it made and the address bar's query."""
    page.goto(f"{base}/?{query}")
    page.wait_for_function("() => ['true', 'error'].includes(document.body.dataset.ready)", timeout=20_000)
    shown = page.evaluate("document.getElementById('error-banner').textContent")
    assert page.evaluate("document.body.dataset.ready") == "true", (shown, page.evaluate("location.search"))
    return api(base, f"/api/models/{model_id(page)}")["spec"], parse_qs(urlparse(page.url).query)


@pytest.mark.parametrize("query", ["did={}", "did={}&h=4.tanh"])
def test_a_class_dataset_link_gets_a_softmax_output(page, server, query):
    ds = upload(server, CSV_CLASSES)
    assert ds["classes"] == ["no", "yes"] and ds["target_columns"] == ["label"]
    spec, url = open_link(page, server, query.format(ds["id"]))
    assert spec["layers"][-1] == {"units": 2, "activation": "softmax"}
    assert spec["loss"] == "cross_entropy"
    assert spec["data"]["info"]["dataset_id"] == ds["id"]
    assert url["did"] == [ds["id"]]
    assert url["out"] == ["2.softmax"] and url["loss"] == ["cross_entropy"]
    assert page.input_value("#dataset") == "__custom"
    assert page.is_hidden("#dataset-error")
    # the address bar reopens it
    page.reload()
    page.wait_for_selector(READY, timeout=20_000)
    assert parse_qs(urlparse(page.url).query)["did"] == [ds["id"]]
    assert not page.console_log.errors, page.console_log.errors


def test_a_number_dataset_link_gets_an_identity_output(page, server):
    ds = upload(server, CSV_NUMBERS)
    spec, url = open_link(page, server, f"did={ds['id']}")
    assert spec["layers"][-1] == {"units": 1, "activation": "identity"} and spec["loss"] == "mse"
    assert url["did"] == [ds["id"]]


def test_a_link_to_a_lost_dataset_keeps_its_id(page, server):
    lost = "0" * 24
    page.goto(f"{server}/?did={lost}")
    page.wait_for_function("() => document.body.dataset.ready === 'error'", timeout=20_000)
    assert parse_qs(urlparse(page.url).query)["did"] == [lost]
    assert page.inner_text("#error-banner") == "Could not open the uploaded dataset: no uploaded dataset has this id"
    # with its output named, the model is asked for: the refusal shows at the file control
    page.goto(f"{server}/?did={lost}&out=2.softmax&loss=cross_entropy")
    page.wait_for_function("() => document.body.dataset.ready === 'error'", timeout=20_000)
    assert parse_qs(urlparse(page.url).query)["did"] == [lost]
    assert page.inner_text("#csv-file-error") == "no uploaded dataset has this id"
    assert page.get_attribute("#csv-file", "aria-invalid") == "true"
