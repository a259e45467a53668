"""The derive language: each spelling family (NumPy's functions, its methods, activations by name, the
question's notation) gives the right backward pass in both conventions, and every refusal names the spelling
to write instead."""
import numpy as np
import pytest

from app.engine.derive import derive
from app.engine.language import DeriveSyntaxError, read, rewrite
from app.engine.network import Network

NETS = [([2, 3, 1], ["sigmoid", "sigmoid"]), ([3, 4, 4, 2], ["tanh", "tanh", "sigmoid"]),
        ([3, 5, 2, 2], ["sigmoid", "sigmoid", "identity"])]


def net_and_batch(sizes, acts, seed=0, B=4):
    net = Network(sizes, acts, loss="mse", bias=True)
    net.initialize(seed, "normal", 1.0)
    rng = np.random.default_rng(seed + 1)
    return net, rng.normal(size=(B, sizes[0])), rng.normal(size=(B, sizes[-1]))


def eqs(delta_L, delta_i, dW, db):
    return [{"target": "delta[L]", "expr": delta_L}, {"target": "delta[i]", "expr": delta_i},
            {"target": "dW[i]", "expr": dW}, {"target": "db[i]", "expr": db}]


SPELLINGS = {  # (family, convention) -> equations with fprime; activations by name replace it below
    ("numpy functions", "rows"): eqs("2 * np.multiply(y_hat - y, fprime(a[L])) / B",
                                     "np.multiply(np.dot(delta[i+1], W[i+1]), fprime(a[i]))",
                                     "np.dot(np.transpose(delta[i]), z[i-1])", "np.sum(delta[i], axis=0)"),
    ("numpy functions", "columns"): eqs("2 * np.multiply(y_hat - y, fprime(a[L]))",
                                        "np.multiply(np.matmul(np.transpose(W[i+1]), delta[i+1]), fprime(a[i]))",
                                        "np.outer(delta[i], z[i-1])", "np.sum(delta[i], axis=1, keepdims=True)"),
    ("numpy methods", "rows"): eqs("2 * (y_hat - y) * fprime(a[L]) / B",
                                   "delta[i+1].dot(W[i+1]) * fprime(a[i])", "delta[i].transpose().dot(z[i-1])",
                                   "delta[i].sum(axis=0)"),
    ("numpy methods", "columns"): eqs("2 * (y_hat - y) * fprime(a[L])", "W[i+1].T.dot(delta[i+1]) * fprime(a[i])",
                                      "delta[i].dot(z[i-1].transpose())", "delta[i].reshape(-1, 1)"),
    ("notation", "rows"): eqs("2 * (y_hat - y) ⊙ f'(a[L]) / B", "(delta[i+1] @ W[i+1]) ∘ f'(a[i])",
                              "delta[i]' @ z[i-1]", "sum(delta[i], axis=0)"),
    ("notation", "columns"): eqs("2 * (y_hat - y) ⊙ f'(a[L])", "(W[i+1]^T @ delta[i+1]) ∘ f'(a[i])",
                                 "delta[i] ⊗ z[i-1]", "delta[i]"),
}
BY_NAME = {"sigmoid": "sigmoid(a[{k}]) * (1 - sigmoid(a[{k}]))", "tanh": "1 - tanh(a[{k}]) ** 2",
           "identity": "np.ones_like(a[{k}])", "relu": "(a[{k}] > 0)"}


@pytest.mark.parametrize("convention", ["rows", "columns"])
@pytest.mark.parametrize("family", ["numpy functions", "numpy methods", "notation"])
@pytest.mark.parametrize("sizes,acts", NETS)
def test_each_spelling_family_gives_the_right_backward_pass(family, convention, sizes, acts):
    net, X, y = net_and_batch(sizes, acts)
    r = derive(net, X, y, SPELLINGS[(family, convention)], convention)
    assert r["passed"], r["first_error"]


@pytest.mark.parametrize("convention", ["rows", "columns"])
@pytest.mark.parametrize("sizes,acts", NETS + [([2, 4, 3, 1], ["relu", "relu", "identity"])])
def test_activations_by_name_give_the_right_backward_pass(convention, sizes, acts):
    """f' written out with the activation's own name, layer by layer (each layer names its activation)."""
    net, X, y = net_and_batch(sizes, acts)
    L = len(acts)
    base = SPELLINGS[("numpy functions", convention)]
    out = [dict(e) for e in base if e["target"] != "delta[i]"]
    out[0]["expr"] = out[0]["expr"].replace("fprime(a[L])", "(" + BY_NAME[acts[-1]].format(k="L") + ")")
    delta = "delta[{k}] @ W[{j}]" if convention == "rows" else "W[{j}].T @ delta[{k}]"
    for k in range(1, L):
        out.append({"target": f"delta[{k}]", "expr": f"({delta.format(k=k + 1, j=k + 1)}) * "
                                                    f"({BY_NAME[acts[k - 1]].format(k=k)})"})
    r = derive(net, X, y, out, convention)
    assert r["passed"], r["first_error"]


def test_where_and_maximum_and_comparisons_are_numpys():
    net, X, y = net_and_batch([2, 4, 3, 1], ["relu", "relu", "identity"])
    for relu_prime in ("np.where(a[i] > 0, 1, 0)", "(a[i] > 0)", "1 - (a[i] <= 0)", "np.maximum(a[i], 0) / a[i]"):
        r = derive(net, X, y, [{"target": "delta[L]", "expr": "2 * (y_hat - y) / B"},
                               {"target": "delta[i]", "expr": f"(delta[i+1] @ W[i+1]) * ({relu_prime})"},
                               {"target": "dW[i]", "expr": "delta[i].T @ z[i-1]"},
                               {"target": "db[i]", "expr": "delta[i].sum(axis=0)"}], "rows")
        assert r["passed"], (relu_prime, r["first_error"])


def test_the_notation_keeps_the_students_positions():
    assert rewrite("W^T")[0] == "W.T" and rewrite("W'")[0] == "W.T" and rewrite("f'(a)")[0] == "fprime(a)"
    assert rewrite("u ⊗ v")[0] == "u % v" and rewrite("x ⊙ y ∘ z")[0] == "x * y * z"
    with pytest.raises(DeriveSyntaxError) as e:  # the unknown name is at character 11 of what was written
        read("f'(a[i]) ⊙ foo")
    assert (e.value.position, e.value.message) == (11, "unknown name 'foo': the language knows W, b, a, z, delta "
                                                       "(indexed) and y, y_hat, B, L")
    with pytest.raises(DeriveSyntaxError) as e:
        read("W[2]^T @ delta[3] % 2")
    assert e.value.position == 0 and e.value.message.startswith("% is not in the language")
    with pytest.raises(DeriveSyntaxError) as e:
        read("W['x']")
    assert e.value.message == "an index is i, L, a number, or i/L plus or minus a number"


KNOWN = ("f, fprime, sum, mean, outer, np.dot, np.matmul, np.multiply, np.sum, np.mean, np.outer, np.transpose, "
         "np.exp, np.log, np.tanh, np.maximum, np.where, np.ones_like, np.zeros_like, np.square, np.sqrt")
UNSUPPORTED = [  # (what a student writes, position, the refusal: what to write instead)
    ("math.exp(a[i])", 0, "the math module is not in the language: write np.exp"),
    ("np.einsum('ij,jk->ik', W[i], z[i])", 0, "np.einsum is not in the language: write the product with @ (a matrix "
                                              "product) or outer(u, v) (an outer product)"),
    ("delta[i] if L > 1 else y", 0, "x if c else y is not in the language: write np.where(c, x, y)"),
    ("delta[i] % 2", 0, "% is not in the language: write / for a division (⊗ is the outer product)"),
    ("delta[i] // 2", 0, "// is not in the language: write / (the language has no integer division)"),
    ("lambda x: x", 0, "lambda is not in the language: write the expression itself (a backward pass needs no "
                       "functions of your own)"),
    ("delta[i][:, 0]", 0, "slicing is not in the language: index a whole layer (W[k], delta[k]); sum(x, axis=0) "
                          "reduces, x.T transposes, x.reshape(n, m) reshapes"),
    ("np.linalg.norm(W[i])", 0, "np.linalg is not in the language: a backward pass needs only @, .T and elementwise "
                                "operations"),
    ("np.random.randn(3)", 0, "np.random is not in the language: a backward pass uses the model's W, b, a, z and no "
                              "random numbers"),
    ("len(y)", 0, "len is not in the language: B is the batch size and L the number of layers"),
    ("W[i].T()", 0, ".T is an attribute, not a method: write x.T without () (or x.transpose())"),
    ("swish(a[i])", 0, f"unknown function 'swish'; the language has {KNOWN}; the activations by name are identity, "
                       f"sigmoid, tanh, relu, leaky_relu, elu, softplus, silu, softmax"),
    ("np.ones(3)", 0, "np.ones is not in the language: write np.ones_like(x) for ones of x's shape"),
    ("np.zeros(3)", 0, "np.zeros is not in the language: write np.zeros_like(x) for zeros of x's shape"),
    ("np.array(W[i])", 0, "np.array is not in the language: every value is already an array (W[k], a[k], delta[k], "
                          "...)"),
    ("np.diag(a[i])", 0, "np.diag is not in the language: write the elementwise product * for diag(v) @ x"),
    ("np.abs(a[i])", 0, "np.abs is not in the language: write np.where(x > 0, x, -x)"),
    ("np.power(a[i], 2)", 0, "np.power is not in the language: write x ** n"),
    ("delta[i] ^ 2", 0, "^ is not a power in Python: write x ** 2 for a power, or W^T (W.T) for a transpose"),
    ("(a[i] > 0) & (a[i] < 1)", 0, "& is not in the language: write the product of two comparisons, "
                                   "(x > 0) * (y > 0)"),
    ("0 < a[i] < 1", 0, "one comparison at a time: write (x > 0) * (x < 1) for 0 < x < 1"),
    ("a[i] > 0 and a[i] < 1", 0, "and / or are not in the language: write the product of two comparisons, "
                                 "(x > 0) * (y > 0), or np.where"),
    ("max(a[i], 0)", 0, "max is not in the language: write np.maximum(x, y) (elementwise)"),
    ("exp(a[i])", 0, "exp is written np.exp(x)"),
    ("sigmoid_prime(a[i])", 0, "unknown function 'sigmoid_prime': the derivative of the layer's activation is "
                               "written fprime(x) (or f'(x)), e.g. fprime(a[i])"),
    ("dsigmoid(a[i])", 0, "unknown function 'dsigmoid': the derivative of the layer's activation is written "
                          "fprime(x) (or f'(x)), e.g. fprime(a[i])"),
    ("delta[i].shape", 0, "attribute .shape is not in the language: B is the batch size and L the number of layers"),
    ("True * delta[i]", 0, "True and False are not numbers here: write 1 or 0"),
    ("[1, 2]", 0, "a list or tuple is not a value here: every value is an array (W[k], a[k], delta[k], ...)"),
    ("a[i] ** a[i]", 8, "x ** n takes a number n (a power such as x ** 2); for e ** x write np.exp(x)"),
    ("a[i] ** 100", 8, "x ** n takes a number n between -8 and 8"),
    ("np.sum(delta[i], 0)", 0, "np.sum takes the axis by name: np.sum(x, axis=0)"),
    ("not a[i]", 0, "not is not in the language: write 1 - (comparison) for its negation"),
    ("np.pi * a[i]", 0, "np.pi is not in the language: write the number, 3.141592653589793"),
    ("np.add(a[i], 1)", 0, "np.add is not in the language: write x + y"),
    ("dot(W[i], a[i])", 0, "dot is written x @ y or np.dot(x, y)"),
    ("W[i].flatten()", 0, "method .flatten() is not in the language; the methods are .sum(), .mean(), .dot(), "
                          ".transpose(), .reshape() and the attribute .T"),
    ("torch.sigmoid(a[i])", 0, "torch.sigmoid is not in the language: write the activation by name, identity, "
                               "sigmoid, tanh, relu, leaky_relu, elu, softplus, silu, softmax"),
]


def test_every_unsupported_spelling_says_what_to_write():
    assert len(UNSUPPORTED) >= 30
    for expr, position, message in UNSUPPORTED:
        with pytest.raises(DeriveSyntaxError) as e:
            read(expr, 3)
        assert (e.value.index, e.value.position, e.value.message) == (3, position, message), expr


# -- the "/derive refuses the way students write" --------------------------------------------------
@pytest.mark.parametrize("expr", ["np.dot(delta[i+1], W[i+1]) * fprime(a[i])", "delta[i+1].dot(W[i+1]) * fprime(a[i])",
                                  "np.multiply(delta[i+1] @ W[i+1], fprime(a[i]))",
                                  "(delta[i+1] @ W[i+1]) * sigmoid(a[i]) * (1 - sigmoid(a[i]))",
                                  "(delta[i+1] @ W[i+1]) * (z[i] - z[i] ** 2)",
                                  "(delta[i+1] @ W[i+1].T.transpose()) * f'(a[i])",
                                  "(delta[i+1] @ W[i+1]^T^T) ⊙ fprime(a[i])",
                                  "(delta[i+1] @ W[i+1]'') ∘ fprime(a[i])"])
def test_the_ways_students_write_a_hidden_delta_are_read(expr):
    net, X, y = net_and_batch([2, 3, 3, 1], ["sigmoid"] * 3)
    r = derive(net, X, y, [{"target": "delta[L]", "expr": "2 * (y_hat - y) / B * fprime(a[L])"},
                           {"target": "delta[i]", "expr": expr},
                           {"target": "dW[i]", "expr": "delta[i].T @ z[i-1]"},
                           {"target": "db[i]", "expr": "np.sum(delta[i], axis=0)"}], "rows")
    assert r["passed"], r["first_error"]


def test_db_as_a_method_sum_and_np_outer_in_columns():
    net, X, y = net_and_batch([2, 3, 3, 1], ["sigmoid"] * 3)
    r = derive(net, X, y, eqs("2 * (y_hat - y) * fprime(a[L])", "(W[i+1].T @ delta[i+1]) * fprime(a[i])",
                              "np.outer(delta[i], z[i-1])", "delta[i].sum(axis=1, keepdims=True)"), "columns")
    assert r["passed"], r["first_error"]


def test_a_column_times_a_row_points_to_outer_or_a_matrix_product():
    net, X, y = net_and_batch([2, 3, 2], ["sigmoid", "sigmoid"])
    r = derive(net, X, y, eqs("2 * (y_hat - y) * fprime(a[L])", "(W[i+1].T @ delta[i+1]) * fprime(a[i])",
                              "delta[i] * z[i-1].T", "delta[i]"), "columns")
    assert r["first_error"] == {"layer": 2, "target": "dW[2]", "kind": None, "message":
                                "layer 2, dW[2] = delta[i] * z[i-1].T: delta[2] of shape (2, 1) against z[1].T of "
                                "shape (1, 3): * (elementwise) needs equal shapes (a column against a row: NumPy "
                                "would broadcast them to (2, 3), an outer product; if you meant it, write "
                                "outer(delta[2], z[1].T) or delta[2] @ z[1].T, a matrix product; if not, one of "
                                "them needs .T)"}
    r = derive(net, X, y, eqs("2 * (y_hat - y) / B * fprime(a[L])", "(delta[i+1] @ W[i+1]) * fprime(a[i])",
                              "delta[i] * z[i-1].T", "sum(delta[i], axis=0)"), "rows")
    assert r["first_error"] == {"layer": 2, "target": "dW[2]", "kind": None, "message":
                                "layer 2, dW[2] = delta[i] * z[i-1].T: delta[2] of shape (4, 2) against z[1].T of "
                                "shape (3, 4): * (elementwise) needs equal shapes (for a product of matrices write @, "
                                "the matrix product, e.g. delta.T @ z; outer(u, v) multiplies two vectors into a "
                                "matrix)"}


def test_a_grouping_error_says_how_star_and_at_grouped():
    net, X, y = net_and_batch([2, 3, 2], ["sigmoid", "sigmoid"])
    r = derive(net, X, y, eqs("2 * (y_hat - y) * fprime(a[L])", "fprime(a[i]) * W[i+1].T @ delta[i+1]",
                              "delta[i] @ z[i-1].T", "delta[i]"), "columns")
    e = r["first_error"]
    assert (e["layer"], e["target"]) == (1, "delta[1]")
    assert e["message"].startswith(
        "layer 1, delta[1] = fprime(a[i]) * W[i+1].T @ delta[i+1]: fprime(a[1]) of shape (3, 1) against W[2].T of "
        "shape (3, 2): * (elementwise) needs equal shapes. * and @ have equal precedence and group left to right, "
        "so this reads (fprime(a[1]) * W[2].T) @ delta[2]; if you meant fprime(a[1]) * (W[2].T @ delta[2]), put "
        "those parentheses"), e["message"]
    fixed = derive(net, X, y, eqs("2 * (y_hat - y) * fprime(a[L])", "fprime(a[i]) * (W[i+1].T @ delta[i+1])",
                                  "delta[i] @ z[i-1].T", "delta[i]"), "columns")
    assert fixed["passed"], fixed["first_error"]


@pytest.mark.parametrize("expr", ["fprime(2) * delta[i+1] @ W[i+1]", "softmax(2) * delta[i+1]",
                                  "np.where(fprime(B) > 0, delta[i+1], B)", "softmax(np.mean(y)) * delta[i+1]",
                                  "np.log(z[i] - z[i]) * delta[i+1]", "delta[i+1].reshape(1, -1) ⊗ z[i]"])
@pytest.mark.parametrize("convention", ["rows", "columns"])
def test_numbers_where_arrays_belong_get_a_verdict(expr, convention):
    """A number given to an activation (ELU's derivative, softmax over a column) is a verdict, never a crash."""
    net = Network([3, 4, 4, 2], ["elu", "elu", "softmax"], loss="cross_entropy")
    net.initialize(0)
    X, y = np.ones((3, 3)), np.eye(2)[[0, 1, 0]]
    r = derive(net, X, y, [{"target": "delta[L]", "expr": "y_hat - y"}, {"target": "delta[i]", "expr": expr},
                           {"target": "dW[i]", "expr": "delta[i].T @ z[i-1]" if convention == "rows"
                            else "delta[i] @ z[i-1].T"}], convention)
    assert r["passed"] is False and r["first_error"]["message"]


def test_an_activations_own_prime_points_to_fprime():
    with pytest.raises(DeriveSyntaxError) as e:
        read("delta[i] * sigmoid'(a[i])")
    assert (e.value.position, e.value.message) == (11, "unknown function 'sigmoid_prime': the derivative of the "
                                                       "layer's activation is written fprime(x) (or f'(x)), e.g. "
                                                       "fprime(a[i])")
