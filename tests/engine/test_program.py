"""The code interpreter (app.engine.program): a student's NumPy backward() run on a batch, diagnosed at the line
whose value is first wrong, and refused (with the line and what to write instead) outside its subset or bounds."""
from __future__ import annotations

import resource
import time

import numpy as np
import pytest

from app.engine import program
from app.engine.bounds import Bounds, Cancelled
from app.engine.network import Network
from app.engine.program import FIXED_CODE, QUESTION_CODE, QUESTION_LINE, CodeBounds, CodeOverBudget, CodeRefused, \
    run_code


def question_net(sizes=(2, 3, 3, 1), bias=False, act="sigmoid", seed=1) -> Network:
    net = Network(list(sizes), [act] * (len(sizes) - 1), loss="mse", bias=bias)
    net.initialize(seed)
    return net


def batch(net: Network, rows=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, net.sizes[0])), rng.normal(size=(rows, net.sizes[-1]))


ROWS_CODE = '''import numpy as np

def backward(W, b, a, z, y, B, L, fprime):
    delta = [None] * (L + 1)
    delta[L] = 2 * (z[L] - y) / B * fprime(a[L])
    for i in reversed(range(1, L)):
        delta[i] = np.dot(delta[i + 1], W[i + 1]) * fprime(a[i])
    dW = [None] + [delta[i].T @ z[i - 1] for i in range(1, L + 1)]
    db = [None] + [np.sum(delta[i], axis=0) for i in range(1, L + 1)]
    return {"dW": dW, "db": db}
'''
COLUMNS_CODE = '''import numpy as np

def backward(W, b, a, z, y_hat, y, L, f, fprime):
    k = {L: 2 * (y_hat - y) * fprime[L](a[L])}
    dW, db = {}, {}
    for i in range(L, 0, -1):
        if i < L:
            k[i] = np.multiply(W[i + 1].transpose().dot(k[i + 1]), fprime(a[i]))
        dW[i] = np.outer(k[i], z[i - 1])
        db[i] = k[i].reshape(-1, 1)
    return dW, db
'''


def test_the_questions_code_is_reported_at_its_recurrence_with_the_W_above_transposed():
    net = question_net()
    r = run_code(net, *batch(net), QUESTION_CODE, "columns")
    e = r["first_error"]
    assert (r["passed"], e["line"], e["layer"], e["target"]) == (False, QUESTION_LINE, 1, "k[1]")
    assert QUESTION_CODE.splitlines()[QUESTION_LINE - 1].strip().startswith("k[i] = (k[i + 1].T @ W[i]).T")
    assert e["message"] == (
        "line 8, k[i] = (k[i + 1].T @ W[i]).T * fprime(a[i]): shapes (2, 1) and (3, 1) do not fit for * (elementwise):"
        " they broadcast only where an axis is equal or 1. Diagnosis: with W[i + 1] where you wrote W[i] (W[2] for "
        "W[1]), delta[1] is right (the error reaches layer 1 through the weights of the layer above, W_2, not "
        "through W_1: k_1 = (W_2^T k_2) o f'(a_1))")


def test_on_a_square_net_the_same_line_at_layer_2_with_the_checkers_diagnosis():
    net = question_net((3, 3, 3, 3, 1))
    r = run_code(net, *batch(net), QUESTION_CODE, "columns")
    e = r["first_error"]
    assert (r["passed"], e["line"], e["layer"], e["target"]) == (False, QUESTION_LINE, 2, "k[2]")
    assert e["message"].startswith("line 8, k[i] = (k[i + 1].T @ W[i]).T * fprime(a[i]): k[2] differs from dL/da_2; "
                                   "with W[i + 1] where you wrote W[i] (W[3] for W[2]), delta[2] is right")
    assert "it uses the layer's own W_2 where W_3^T belongs" in e["message"]
    steps = {s["line"]: s for s in r["layers"][1]["steps"]}
    assert steps[QUESTION_LINE]["error"].startswith("k[2] differs from dL/da_2")


@pytest.mark.parametrize("sizes", [(2, 3, 3, 1), (3, 3, 3, 3, 1), (3, 4, 5, 6, 1)])  # one output, as the question
def test_the_fixed_code_passes(sizes):
    net = question_net(sizes)
    r = run_code(net, *batch(net), FIXED_CODE, "columns")
    assert (r["passed"], r["first_error"]) == (True, None)
    assert [v["dW"]["passed"] for v in r["layers"]] == [True] * (len(sizes) - 1)


@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid"])
def test_numpy_spellings_pass_in_both_conventions_with_biases(act):
    net = question_net((3, 4, 5, 2), bias=True, act=act)
    X, y = batch(net, rows=5)
    for code, convention in ((ROWS_CODE, "rows"), (COLUMNS_CODE, "columns")):
        r = run_code(net, X, y, code, convention)
        assert (r["passed"], r["first_error"]) == (True, None), (convention, r["first_error"])
        assert all(v["db"]["passed"] for v in r["layers"])


def test_a_wrong_gradient_line_is_named_when_every_delta_is_right():
    net = question_net((3, 4, 2), bias=True)
    code = ROWS_CODE.replace("np.sum(delta[i], axis=0)", "np.mean(delta[i], axis=0)")
    r = run_code(net, *batch(net), code, "rows")
    assert (r["passed"], r["first_error"]["layer"], r["first_error"]["line"]) == (False, 2, None)
    assert r["first_error"]["target"] == "db[2]"


def test_every_assignment_is_recorded_with_its_line():
    net = question_net((3, 3, 3, 3, 1))
    r = run_code(net, *batch(net), FIXED_CODE, "columns")
    lines = [(s["line"], s["target"], s["shape"]) for s in r["layers"][0]["steps"]]
    assert lines == [(8, "k[1]", [3, 1])]
    assert [(s["line"], s["target"]) for s in r["layers"][3]["steps"]] == [(5, "k[4]")]


@pytest.mark.parametrize("source, message", [
    ("import os\ndef backward(W):\n    return W", "line 1: only import numpy as np is allowed"),
    ("import numpy as np\ndef backward(W):\n    import subprocess\n    return W",
     "line 3: only import numpy as np is allowed"),
    ("def backward(W):\n    return W.__class__", "line 2: '__class__': names starting with _ are not supported; "
                                                 "use plain names"),
    ("def backward(W):\n    return __builtins__", "line 2: '__builtins__': names starting with _ are not supported; "
                                                  "use plain names"),
    ("def backward(W):\n    while True:\n        pass", "line 2: While is not supported; loop with for ... in "
                                                         "range(...)"),
    ("def backward(W):\n    g = lambda v: v\n    return g", "line 2: Lambda is not supported; write the expression "
                                                             "where it is used"),
    ("def backward(W):\n    def inner():\n        return inner()\n    return inner()",
     "line 2: FunctionDef is not supported; one def backward(...) only, at the top"),
    ("def backward(X):\n    return X", "line 1: argument 'X' is not given; backward may take W, b, a, z, y_hat, y, "
                                       "B, L, f, fprime"),
    ("print('hi')", "line 1: Expr at the top level is not supported: the code is import numpy as np and one "
                    "def backward(...)"),
    ("x = 1", "line 1: Assign at the top level is not supported: the code is import numpy as np and one "
              "def backward(...)"),
    ("def backward(W):\n    return W.shape.count", "line 2: attribute .count is not supported; the code may use "
     "np.dot, np.matmul, np.multiply, np.add, np.subtract, np.divide, np.sum, np.mean, np.outer, np.transpose, np.exp, "
     "np.log, np.tanh, np.sqrt, np.abs, np.maximum, np.minimum, np.where, np.ones_like, np.zeros_like, np.zeros, "
     "np.ones, np.square, np.power, np.reshape, and .T, .sum, .mean, .dot, .transpose, .reshape, .shape, .copy of "
     "an array"),
    ("def f(W):\n    return W", "line 1: def f: the code defines one function, def backward(...)"),
    ("import numpy as np\n", "no def backward(...): define it, e.g. def backward(W, a, z, y, fprime, L): ..."),
    ("def backward(W:\n", "line 1: syntax error: '(' was never closed"),
])
def test_refusals_name_the_line_and_what_to_write(source, message):
    net = question_net()
    with pytest.raises(CodeRefused) as e:
        run_code(net, *batch(net), source, "columns")
    assert str(e.value) == message


def _cost(source: str, bounds=None, code_bounds=None):
    """(the exception, CPU seconds of this thread, RSS growth in bytes) of one run; upper-bound sanity only."""
    net = question_net()
    before_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.thread_time()
    with pytest.raises((CodeRefused, CodeOverBudget)) as e:
        run_code(net, *batch(net), source, "columns", bounds, code_bounds)
    cpu = time.thread_time() - start
    return e.value, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before_rss


HOSTILE = {
    "endless loop": ("def backward(L):\n    n = 0\n    for i in range(10 ** 15):\n        n = n + 1\n    return n",
                     "line 4: this run would pass its 2000000000 operations"),
    "nested loops": ("def backward(L):\n    for i in range(10 ** 6):\n        for j in range(10 ** 6):\n"
                     "            pass\n    return 1", "line 4: the loops would pass 10000 iterations in all"),
    "huge array": ("import numpy as np\ndef backward(L):\n    x = np.zeros((100000, 100000))\n    return x",
                   "line 3: a value of shape (100000, 100000) would take this run to 10000400000 operations "
                   "(multiply-adds and entries); the limit is 2000000000"),
    "many arrays": ("import numpy as np\ndef backward(L):\n    x = []\n    for i in range(20):\n"
                    "        x.append(np.ones((1000, 1000)))\n    return x", None),
    "huge list": ("def backward(L):\n    x = [0] * 10 ** 9\n    return x",
                  "line 2: a list has at most 10000 entries"),
    "huge integer": ("def backward(L):\n    x = 10 ** 10 ** 10\n    return x",
                     "line 2: an integer would reach 2**53; the code needs no such number"),
    "growing arrays": ("import numpy as np\ndef backward(z):\n    x = z[0]\n    for i in range(60):\n"
                       "        x = np.outer(x, x)\n    return x", None),
    "deep nesting": ("def backward(L):\n    return " + "(" * 5000 + "1" + ")" * 5000,
                     "the code nests more than 40 levels (brackets or indentation)"),
    "deep recursion": ("def backward(L):\n    return backward(L)",
                       "line 2: backward cannot call itself; loop with for ... in range(...)"),
    "long source": ("def backward(L):\n    return 1" + " " * 30_000, "the code has 30029 characters; the limit is "
                                                                       "20000"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_code_is_refused_within_its_budget(name):
    source, message = HOSTILE[name]
    error, cpu, grown = _cost(source)
    if message is not None:
        assert str(error) == message
    assert cpu < 2.0 and grown < 100 * 1024 * 1024  # the bound, far above what a refusal takes


def test_growing_arrays_stop_before_the_value_is_made():
    error, _cpu, _grown = _cost(HOSTILE["growing arrays"][0])
    assert isinstance(error, CodeOverBudget) and error.resource == "cost" and error.line == 5
    assert str(error) == ("line 5: a value of shape (4, 65536, 65536) would take this run to 17182532432 operations "
                          "(multiply-adds and entries); the limit is 2000000000")


def test_the_bytes_of_every_value_made_are_counted():
    error, _cpu, _grown = _cost(HOSTILE["many arrays"][0])
    assert isinstance(error, CodeOverBudget) and error.resource == "bytes" and error.line == 5
    assert str(error) == ("line 5: a value of shape (1000, 1000) would take this run to 72000000 bytes of values; the "
                          "limit is 67108864")


def test_the_cpu_budget_counts_operations():
    bounds = Bounds(32, 400, 64 * 1024 * 1024, 3_000_000)  # 60 steps of 50,000
    with pytest.raises(CodeOverBudget) as e:
        run_code(question_net(), *batch(question_net()), FIXED_CODE, "columns", bounds)
    assert e.value.resource == "cost" and str(e.value).endswith("this run would pass its 3000000 operations")


def test_a_cancelled_run_stops():
    net = question_net()
    with pytest.raises(Cancelled):
        run_code(net, *batch(net), FIXED_CODE, "columns", cancelled=lambda: True)
