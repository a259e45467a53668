"""Browser tests of "Check your gradients" and the trace's notation switch (real server, Debian chromium)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from .helpers import api, open_app
from .test_a11y import assert_clean, axe_js  # noqa: F401  (axe_js is a fixture)

pytestmark = pytest.mark.browser


def test_trace_chips_show_every_operand_as_used(page, server):
    """Default 2-8-8-1: the chip of W_1 in a_1 = z_0 W_1^T reads W₁ᵀ (2×8), the caption's shape."""
    open_app(page, server)
    page.wait_for_selector("#trace .trace-step")
    chip = page.locator('#trace .trace-step[data-target="a_1"] .operand.transposed')
    assert chip.count() == 1
    assert chip.inner_text().replace("\n", "") == "W1T (2×8)"
    assert "stored (8×2)" in chip.get_attribute("title")
    # the question's notation: a_1 = W_1 z_0 with W_1 (8×2) untransposed, and W_2^T (8×8) sent down
    page.check('input[name=trace-convention][value=columns]')
    page.wait_for_selector('#trace p.hint:has-text("Columns: one sample")')  # the columns trace has replaced the rows one
    a1 = page.locator('#trace .trace-step[data-target="a_1"] .operand').first.inner_text().replace("\n", "")
    assert a1 == "W1 (8×2)"
    down = page.locator('#trace .trace-step[data-target="dz_1"] .operand.transposed').inner_text().replace("\n", "")
    assert down == "W2T (8×8)"
    assert page.console_log.errors == []


def test_panel_checks_a_transposed_dw1_pasted_as_json(page, server):
    mid = open_app(page, server)
    assert page.text_content("#checker-title") == "Check your gradients"
    g = api(server, f"/api/models/{mid}/gradients")  # the batch the panel uses by default
    assert page.inner_text("#checker-batch-summary") == f"{g['batch_size']} rows, the batch GET /gradients uses"
    dW1 = np.asarray(g["layers"][0]["dW"])
    page.fill("#checker-json", json.dumps({"layers": [{"dW": dW1.T.tolist()}]}))
    page.click("#checker-run")
    page.wait_for_selector("#checker-result .verdict")
    assert page.get_attribute("#checker-result", "data-passed") == "false"
    cell = page.locator('#checker-result tr[data-layer="1"] td.fail').first
    assert cell.inner_text().startswith("✘ wrong shape (values right once transposed)")
    assert "rel. err" not in cell.inner_text()  # never ✘ next to "rel. err 0"
    assert "transposed" in page.inner_text("#checker-result .diagnosis")
    page.wait_for_selector('#trace .trace-step.wrong[data-layer="1"]')

    # the right numbers pass, and the keyboard alone can do it (Ctrl+Enter in the box)
    right = [{"dW": layer["dW"], "db": layer["db"]} for layer in g["layers"]]
    page.fill("#checker-json", json.dumps({"layers": right}))
    page.focus("#checker-json")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#checker-result[data-passed=true]")
    assert page.locator("#trace .trace-step.wrong").count() == 0
    assert page.console_log.errors == []


def test_equations_mode_shows_the_questions_recurrence_failing(page, server):
    open_app(page, server)
    page.check("input[name=checker-mode][value=equations]")
    assert page.is_visible("#checker-eqs") and not page.is_visible("#checker-json")
    page.click("#checker-example-question")
    page.wait_for_function("() => document.getElementById('checker-eqs').value.includes('delta[')")
    assert page.input_value("#checker-convention") == "columns"
    page.click("#checker-run")
    page.wait_for_selector("#checker-result .diagnosis")
    assert page.get_attribute("#checker-result", "data-passed") == "false"
    diagnosis = page.inner_text("#checker-result .diagnosis")
    assert diagnosis.startswith("Diagnosis (layer ") and "(1, 8)" in diagnosis  # the shapes of the operands
    # each part said once, and a full stop before the trace note
    assert diagnosis.count("Diagnosis") == 1 and diagnosis.count("layer 1,") == 0, diagnosis
    assert diagnosis.endswith(". The step is marked in the trace."), diagnosis
    # the trace switched to the question's notation and marks the diagnosed step
    assert page.is_checked('input[name=trace-convention][value=columns]')
    page.wait_for_selector("#trace .trace-step.wrong")

    page.click("#checker-example-correct")
    page.wait_for_function("() => document.getElementById('checker-eqs').value.startsWith('# the backward pass that passes')")
    page.click("#checker-run")
    page.wait_for_selector("#checker-result[data-passed=true]")
    assert page.locator("#checker-result .diagnosis").count() == 0

    page.fill("#checker-eqs", "dW[i] = __import__('os')")
    page.click("#checker-run")
    page.wait_for_selector("#checker-result .field-error")
    assert page.inner_text("#checker-result .field-error").startswith(
        "Refused: line 1 (dW[i] = __import__('os')), expr: position ")
    assert page.console_log.errors == [] or all("422" in e for e in page.console_log.errors)


def test_a_pass_names_the_equations_no_layer_used(page, server):
    """One hidden layer: delta[L] and delta[L-1] give every delta, so the question's faulty delta[i] is never
    evaluated; the pass says so next to the verdict."""
    open_app(page, server, "h=8.tanh")
    page.check("input[name=checker-mode][value=equations]")
    page.click("#checker-example-question")
    page.wait_for_function("() => document.getElementById('checker-eqs').value.includes('delta[')")
    page.click("#checker-run")
    page.wait_for_selector("#checker-result[data-passed=true]")
    assert page.inner_text("#checker-result .verdict") == (
        "✔ passed: every gradient matches backprop, but 1 equation was not used")
    note = page.inner_text("#checker-result .unused-note")
    assert note.startswith("Not used on this net (so not checked):") and "delta[i] = " in note
    assert "on nets with 2 or more hidden layers" in note and "line 4: " in note  # after the comment line
    assert page.console_log.errors == []


def test_panel_copies_the_batch_and_the_parameters(context, page, server):
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    mid = open_app(page, server)
    page.click("#checker-batch-box summary")
    page.click("#checker-copy-batch")
    page.wait_for_selector("#checker-result >> text=Batch copied")
    batch = json.loads(page.evaluate("() => navigator.clipboard.readText()"))
    data = api(server, f"/api/models/{mid}/data")
    g = api(server, f"/api/models/{mid}/gradients")
    assert batch == {"X": data["train"]["X"][:g["batch_size"]], "y": data["train"]["y"][:g["batch_size"]]}
    page.click("#checker-copy-params")
    page.wait_for_selector("#checker-result >> text=Parameters W, b copied")
    assert json.loads(page.evaluate("() => navigator.clipboard.readText()")) == api(server, f"/api/models/{mid}/parameters")
    # an edited batch is sent as X, y: the verdicts are for those rows
    one = {"X": batch["X"][:1], "y": batch["y"][:1]}
    page.fill("#checker-batch", json.dumps(one))
    assert page.text_content("#checker-batch-summary") == "your batch, 1 row"
    g1 = api(server, f"/api/models/{mid}/gradients", "POST", one)
    page.fill("#checker-json", json.dumps({"layers": [{"dW": g1["layers"][0]["dW"]}]}))
    page.click("#checker-run")
    page.wait_for_selector("#checker-result[data-passed=true]")


def test_panel_reads_npz_uploads(page, server, tmp_path):
    mid = open_app(page, server)
    g = api(server, f"/api/models/{mid}/gradients")
    path = tmp_path / "mine.npz"
    np.savez_compressed(path, dW1=np.asarray(g["layers"][0]["dW"]), db2=np.asarray(g["layers"][1]["db"]))
    page.set_input_files("#checker-files", str(path))
    page.wait_for_function("() => document.getElementById('checker-result').textContent.startsWith('Read ')")
    page.click("#checker-run")
    page.wait_for_selector("#checker-result[data-passed=true]")
    assert page.locator('#checker-result tr[data-layer="2"] td.pass').count() == 1


def test_panel_with_verdicts_and_diagnosis_has_no_wcag_violation(page, server, axe_js):  # noqa: F811
    mid = open_app(page, server)
    g = api(server, f"/api/models/{mid}/gradients")
    page.fill("#checker-json", json.dumps({"layers": [{"dW": np.asarray(g["layers"][0]["dW"]).T.tolist()}]}))
    page.click("#checker-run")
    page.wait_for_selector("#checker-result .diagnosis")
    assert_clean(page, axe_js)
    page.check("input[name=checker-mode][value=equations]")
    page.click("#checker-example-question")
    page.wait_for_function("() => document.getElementById('checker-eqs').value.includes('delta[')")
    page.click("#checker-run")
    page.wait_for_selector("#trace .trace-step.wrong")
    page.click("#checker-batch-box summary")
    assert_clean(page, axe_js)


def test_gradient_check_explains_a_step_size_that_is_too_small(page, server):
    open_app(page, server)
    page.select_option("#gradcheck-eps", "1e-12")
    page.click("#gradcheck")
    page.wait_for_selector("#gradcheck-result .eps-note")
    assert "eps = 1e-12 is too small" in page.inner_text("#gradcheck-result .eps-note")
    page.select_option("#gradcheck-eps", "1e-6")
    page.click("#gradcheck")
    page.wait_for_selector("#gradcheck-result[data-passed=true]")
    assert page.locator("#gradcheck-result .eps-note").count() == 0


def test_gradient_check_on_a_converged_model_shows_the_round_off_note(page, server):
    """Moons trained until its loss is about 1e-8: the relative error is round-off, the page says so, not ✘ failed."""
    mid = open_app(page, server, "dataset=moons&lr=0.03")
    token = page.evaluate("id => JSON.parse(localStorage.getItem('bp.tokens.v1'))[id]", mid)
    api(server, f"/api/models/{mid}/train", "POST", {"steps": 12500}, token=token)
    page.click("#gradcheck")
    page.wait_for_selector("#gradcheck-result .roundoff-note")
    verdict = page.inner_text("#gradcheck-result .verdict")
    assert verdict.startswith("✔ passed within round-off") and "failed" not in verdict
    note = page.inner_text("#gradcheck-result .roundoff-note")
    assert "passed within round-off" in note and "try eps = " in note
    assert page.get_attribute("#gradcheck-result", "data-passed") == "true"
    assert page.console_log.errors == []
