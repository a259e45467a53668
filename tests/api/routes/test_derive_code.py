"""POST /api/models/{id}/derive with "code": the question's code diagnosed at its line, refusals as 422s."""
from __future__ import annotations

from app.engine.program import FIXED_CODE, QUESTION_CODE, QUESTION_LINE

from ..utils import create, unprocessable
from .test_derive import ONE, QUESTION


def post(client, mid, code, convention="columns", **batch):
    return client.post(f"/api/models/{mid}/derive", json={"convention": convention, **batch, "code": code})


def test_the_questions_code_is_reported_at_its_line_and_the_fixed_code_passes(client):
    mid = create(client, QUESTION)["id"]
    r = post(client, mid, QUESTION_CODE, **ONE)
    assert r.status_code == 200, r.text
    e = r.json()["first_error"]
    assert (e["line"], e["layer"], e["target"]) == (QUESTION_LINE, 1, "k[1]")
    assert "with W[i + 1] where you wrote W[i] (W[2] for W[1]), delta[1] is right" in e["message"]
    r = post(client, mid, FIXED_CODE, **ONE)
    assert (r.status_code, r.json()["passed"], r.json()["first_error"]) == (200, True, None)


def test_code_or_equations_not_both_nor_neither(client):
    mid = create(client, QUESTION)["id"]
    r = client.post(f"/api/models/{mid}/derive", json={"convention": "columns", "code": FIXED_CODE,
                                                       "equations": [{"target": "dW[i]", "expr": "delta[i]"}]})
    unprocessable(r, ["body", "code"], "give either equations or code, not both")
    r = client.post(f"/api/models/{mid}/derive", json={"convention": "columns"})
    unprocessable(r, ["body", "equations"], 'give equations [{"target", "expr"}] or code (Python source defining '
                                            'def backward(...))')


def test_refusals_and_bounds_are_422_naming_the_line(client):
    mid = create(client, QUESTION)["id"]
    unprocessable(post(client, mid, "import os\ndef backward(W):\n    return W"), ["body", "code"],
                  "line 1: only import numpy as np is allowed")
    unprocessable(post(client, mid, "def backward(L):\n    for i in range(10 ** 9):\n        for j in range(9):\n"
                                    "            pass\n    return 1"), ["body", "code"],
                  "line 4: the loops would pass 10000 iterations in all (PLAYGROUND_DERIVE_MAX_CODE_ITERATIONS)")
    unprocessable(post(client, mid, "x" * 20_001), ["body", "code"],
                  "has 20001 characters; the limit is 20000 (PLAYGROUND_DERIVE_MAX_CODE_CHARS)")


def test_the_examples_carry_the_questions_code(client):
    r = client.get("/api/derive/examples")
    assert r.json()["code"] == {"question": QUESTION_CODE, "fixed": FIXED_CODE}
