"""Browser tests of the checker's "Code" mode: a pasted def backward() through POST /derive with "code"."""
from __future__ import annotations

import pytest

from .helpers import open_app
from .test_a11y import assert_clean, axe_js  # noqa: F401  (axe_js is a fixture)

pytestmark = pytest.mark.browser


def code_mode(page):
    page.check("input[name=checker-mode][value=code]")
    page.wait_for_selector("#checker-code:not([hidden])")


def test_code_mode_shows_the_code_box_and_the_convention(page, server, axe_js):
    open_app(page, server)
    code_mode(page)
    assert page.is_visible("#checker-convention") and page.is_visible("#checker-code-text")
    assert page.is_hidden("#checker-equations") and page.is_hidden("#checker-arrays")
    assert page.inner_text("#checker-run") == "Check my code"
    page.check("input[name=checker-mode][value=arrays]")
    assert page.is_hidden("#checker-convention") and page.is_hidden("#checker-code-text")
    assert page.console_log.errors == []
    code_mode(page)
    assert_clean(page, axe_js)


def test_the_questions_code_is_reported_at_its_line_with_the_transpose_diagnosis(page, server, axe_js):
    open_app(page, server, "h=3.sigmoid,3.sigmoid&out=1.sigmoid&loss=mse")
    code_mode(page)
    page.click("#checker-code-question")
    page.wait_for_function("() => document.getElementById('checker-code-text').value.includes('def backward')")
    page.click("#checker-run")
    page.wait_for_selector("#checker-result[data-passed=false] .diagnosis")
    line = page.locator("#checker-code-lines li.wrong-line")
    assert line.count() == 1
    assert "k[i + 1].T @ W[i]" in line.inner_text()
    diagnosis = page.inner_text("#checker-result .diagnosis")
    assert "line 8, k[i] = (k[i + 1].T @ W[i]).T * fprime(a[i])" in diagnosis
    assert "With W[i + 1] where you wrote W[i] (W[2] for W[1]), delta[1] is right" in diagnosis  # the repair
    assert "k_1 = (W_2^T k_2) o f'(a_1)" in diagnosis
    assert "Line 8 of your code is the first wrong one." in diagnosis
    assert_clean(page, axe_js)
    page.click("#checker-code-fixed")
    page.click("#checker-run")
    page.wait_for_selector("#checker-result[data-passed=true]")
    assert page.locator("#checker-code-lines li.wrong-line").count() == 0
    assert page.console_log.errors == []
