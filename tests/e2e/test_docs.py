"""/docs and /redoc render in chromium with every request outside the server blocked, and list the operations.

Any request to another origin is aborted and recorded; the test fails if there is one, or if a console
error appears (a Content-Security-Policy violation shows up there). The operations each page must list
are taken from the server's own /openapi.json.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from .helpers import READY, api


@pytest.fixture
def offline_page(page, server):
    """A page whose requests may only reach the test server; page.outside lists the ones aborted."""
    origin = urlsplit(server).netloc
    page.outside = []

    def route(r):
        if urlsplit(r.request.url).netloc == origin:
            r.continue_()
        else:
            page.outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return page


def operations(server) -> list[tuple[str, str, str]]:
    spec = api(server, "/openapi.json")
    return [(method, path, op["summary"]) for path, item in spec["paths"].items()
            for method, op in item.items() if method in ("get", "post", "put", "patch", "delete")]


def test_swagger_ui_lists_every_operation_offline(offline_page, server):
    page = offline_page
    page.goto(f"{server}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    ops = operations(server)
    assert len(ops) > 10
    shown = set(zip(page.locator(".opblock .opblock-summary-method").all_inner_texts(),
                    page.locator(".opblock .opblock-summary-path").all_inner_texts()))
    # an operation with two tags is listed under both: compare the distinct (method, path) pairs
    assert {(m.upper(), p) for m, p, _ in ops} == {(m, p.replace("\u200b", "")) for m, p in shown}
    assert page.title() == "Backprop Playground - Swagger UI"
    assert page.outside == [] and page.console_log.errors == []


def test_redoc_lists_every_operation_offline(offline_page, server):
    page = offline_page
    page.goto(f"{server}/redoc")
    page.wait_for_selector("[data-section-id^='operation/']", timeout=30_000)
    ops = operations(server)
    assert page.locator("[data-section-id^='operation/']").count() >= len(ops)  # once per tag
    text = page.inner_text("body")
    for _, _, summary in ops:
        assert summary in text
    assert page.outside == [] and page.console_log.errors == []


def test_the_page_links_the_question_and_the_docs(offline_page, server):
    page = offline_page
    page.goto(f"{server}/")
    page.wait_for_selector(READY)  # the page writes its address once ready: a click before that may be undone
    page.click("footer a[href='question']")
    page.wait_for_url(f"{server}/question")
    assert page.inner_text("body").startswith("# The question this project started from")
    page.goto(f"{server}/")
    page.wait_for_selector(READY)
    page.click("footer a[href='docs']")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.outside == []
