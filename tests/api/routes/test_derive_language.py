"""POST /api/models/{id}/derive in the student's own spelling: NumPy's functions and methods, activations by
name and the question's notation are read; a spelling outside the language is a 422 naming what to write."""
from __future__ import annotations

import pytest

from ..utils import create, unprocessable
from .test_derive import QUESTION

NUMPY = {"columns": [{"target": "delta[L]", "expr": "2 * np.multiply(y_hat - y, sigmoid(a[L]) * (1 - sigmoid(a[L])))"},
                     {"target": "delta[i]", "expr": "np.dot(W[i+1].T, delta[i+1]) * z[i] * (1 - z[i])"},
                     {"target": "dW[i]", "expr": "np.outer(delta[i], z[i-1])"}],
         "rows": [{"target": "delta[L]", "expr": "2 * (y_hat - y) / B * fprime(a[L])"},
                  {"target": "delta[i]", "expr": "delta[i+1].dot(W[i+1]) * (z[i] - z[i] ** 2)"},
                  {"target": "dW[i]", "expr": "delta[i].transpose().dot(z[i-1])"}]}
NOTATION = {"columns": [{"target": "delta[L]", "expr": "2 * (y_hat - y) ⊙ f'(a[L])"},
                        {"target": "delta[i]", "expr": "(W[i+1]^T @ delta[i+1]) ∘ f'(a[i])"},
                        {"target": "dW[i]", "expr": "delta[i] ⊗ z[i-1]"}],
            "rows": [{"target": "delta[L]", "expr": "2 * (y_hat - y) / B ⊙ f'(a[L])"},
                     {"target": "delta[i]", "expr": "(delta[i+1] @ W[i+1]) ∘ f'(a[i])"},
                     {"target": "dW[i]", "expr": "delta[i]' @ z[i-1]"}]}


@pytest.mark.parametrize("convention", ["columns", "rows"])
@pytest.mark.parametrize("equations", [NUMPY, NOTATION], ids=["numpy", "notation"])
def test_the_students_spellings_pass_on_the_questions_net(client, equations, convention):
    mid = create(client, QUESTION)["id"]
    r = client.post(f"/api/models/{mid}/derive", json={"convention": convention, "equations": equations[convention]})
    assert r.status_code == 200, r.text
    assert r.json()["passed"] is True and r.json()["first_error"] is None


@pytest.mark.parametrize("expr,msg", [
    ("np.einsum('ij,j->i', W[i].T, delta[i+1])", "position 0: np.einsum is not in the language: write the product "
                                                 "with @ (a matrix product) or outer(u, v) (an outer product)"),
    ("math.exp(a[i])", "position 0: the math module is not in the language: write np.exp"),
    ("delta[i+1] if L > 2 else y", "position 0: x if c else y is not in the language: write np.where(c, x, y)"),
    ("f'(a[i]) ⊙ W[i+1].T() @ delta[i+1]", "position 11: .T is an attribute, not a method: write x.T without () "
                                           "(or x.transpose())"),
])
def test_a_refused_spelling_is_a_422_naming_what_to_write(client, expr, msg):
    mid = create(client, QUESTION)["id"]
    eqs = [dict(e) for e in NUMPY["columns"]]
    eqs[1]["expr"] = expr
    r = client.post(f"/api/models/{mid}/derive", json={"convention": "columns", "equations": eqs})
    unprocessable(r, ["body", "equations", 1, "expr"], msg)
