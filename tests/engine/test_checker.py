import numpy as np
import pytest

from app.engine.checker import check_student
from app.engine.network import Network


def setup(loss="mse", out="sigmoid", bias=True, reg="none", rate=0.0, B=5, dtype=np.float64, sizes=(3, 5, 4, 1)):
    net = Network(list(sizes), ["tanh"] * (len(sizes) - 2) + [out], loss=loss, bias=bias, dtype=dtype,
                  regularization=reg, reg_rate=rate)
    net.initialize(0, "normal", 0.7)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(B, sizes[0]))
    K = sizes[-1]
    y = rng.integers(0, 2, size=(B, K)).astype(float) if loss == "bce" else rng.normal(size=(B, K))
    if loss == "cross_entropy":
        y = np.eye(K)[rng.integers(0, K, size=B)]
    net.full_backward(X.astype(net.dtype), y.astype(net.dtype))
    q = [dict(dW=l.dW.copy(), db=None if l.db is None else l.db.copy(), delta=l.delta.copy(), dz=l.dz.copy(),
              z=l.z.copy()) for l in net.quantities()]
    return net, X, y, q


def z_prev(X, q, i):
    return X if i == 0 else q[i - 1]["z"]


def test_correct_gradients_pass_for_every_layer():
    net, X, y, q = setup()
    r = check_student(net, X, y, [{"dW": l["dW"].tolist(), "db": l["db"].tolist()} for l in q])
    assert r["passed"]
    for i, entry in enumerate(r["layers"], start=1):
        assert entry["layer"] == i
        for key in ("dW", "db"):
            v = entry[key]
            assert v["passed"] and v["hint"] is None and v["relative_error"] < 1e-12
            assert v["shape"] == v["expected_shape"] == list(q[i - 1][key].shape)


def test_subset_of_layers_and_missing_tensors_are_none():
    net, X, y, q = setup()
    r = check_student(net, X, y, [{}, {"db": q[1]["db"]}])
    assert r["passed"] and len(r["layers"]) == 2
    assert r["layers"][0] == {"layer": 1, "dW": None, "db": None}
    assert r["layers"][1]["dW"] is None and r["layers"][1]["db"]["passed"]
    assert not check_student(net, X, y, [{}])["passed"]  # nothing given, nothing passed


def test_transposed_dW_is_flagged():
    net, X, y, q = setup()
    r = check_student(net, X, y, [{}, {"dW": q[1]["dW"].T}])
    v = r["layers"][1]["dW"]
    assert not r["passed"] and not v["passed"]
    assert v["shape"] == [5, 4] and v["expected_shape"] == [4, 5]
    assert v["hint"].startswith("transposed") and "(out, in)" in v["hint"] and "values are right" in v["hint"]
    assert v["max_abs_error"] < 1e-12  # compared after transposing back


def test_transposed_square_dW_is_flagged():
    net, X, y, q = setup(sizes=(4, 4, 1))
    v = check_student(net, X, y, [{"dW": q[0]["dW"].T}])["layers"][0]["dW"]
    assert not v["passed"] and v["hint"].startswith("transposed") and v["max_abs_error"] > 0


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_missing_fprime_detected_at_each_layer(layer):
    net, X, y, q = setup()
    wrong_W = q[layer]["dz"].T @ z_prev(X, q, layer)  # dz_i in place of delta_i
    wrong_b = q[layer]["dz"].sum(axis=0)
    layers = [{} for _ in range(layer)] + [{"dW": wrong_W, "db": wrong_b}]
    entry = check_student(net, X, y, layers)["layers"][layer]
    for key in ("dW", "db"):
        assert not entry[key]["passed"]
        assert f"f'(a_{layer + 1}) is missing" in entry[key]["hint"]


def test_missing_factor_two_with_mse():
    net, X, y, q = setup()
    entry = check_student(net, X, y, [{"dW": q[0]["dW"] / 2, "db": q[0]["db"] / 2}])["layers"][0]
    assert "factor 2" in entry["dW"]["hint"] and "factor 2" in entry["db"]["hint"]
    # with bce the factor-2 mistake does not exist: a halved gradient is said to be half, not blamed on a square
    net, X, y, q = setup(loss="bce")
    v = check_student(net, X, y, [{"dW": q[0]["dW"] / 2}])["layers"][0]["dW"]
    assert not v["passed"] and "half the true gradient" in v["hint"] and "square" not in v["hint"]


def test_batch_sum_instead_of_mean():
    net, X, y, q = setup(B=6)
    entry = check_student(net, X, y, [{}, {}, {"dW": q[2]["dW"] * 6, "db": q[2]["db"] * 6}])["layers"][2]
    assert "B = 6 times" in entry["dW"]["hint"] and "B = 6 times" in entry["db"]["hint"]


def test_flipped_sign():
    net, X, y, q = setup(loss="cross_entropy", out="softmax", sizes=(3, 5, 3))
    entry = check_student(net, X, y, [{"dW": -q[0]["dW"], "db": -q[0]["db"]}])["layers"][0]
    assert "opposite sign" in entry["dW"]["hint"] and "opposite sign" in entry["db"]["hint"]
    assert entry["dW"]["relative_error"] == pytest.approx(1.0)


def test_mistakes_act_on_data_term_with_penalty_added_back():
    net, X, y, q = setup(reg="l2", rate=0.3)
    W = net.dense[1].params["W"]
    data = q[1]["dW"] - 0.3 * W
    v = check_student(net, X, y, [{}, {"dW": data / 2 + 0.3 * W}])["layers"][1]["dW"]
    assert "factor 2" in v["hint"]
    v = check_student(net, X, y, [{}, {"dW": data}])["layers"][1]["dW"]  # penalty forgotten
    assert not v["passed"] and "l2 penalty gradient (lambda W_2) is missing" in v["hint"]
    v = check_student(net, X, y, [{}, {"dW": data + 0.1 * W}])["layers"][1]["dW"]  # another penalty: no false hint
    assert not v["passed"] and v["hint"] is None


def test_transposed_and_another_mistake():
    net, X, y, q = setup()
    v = check_student(net, X, y, [{"dW": (q[0]["dW"] / 2).T}])["layers"][0]["dW"]
    assert v["hint"].startswith("transposed") and "factor 2" in v["hint"]


def test_wrong_shape_reports_both_shapes():
    net, X, y, q = setup()
    v = check_student(net, X, y, [{"dW": np.ones((2, 7))}])["layers"][0]["dW"]
    assert not v["passed"] and v["shape"] == [2, 7] and v["expected_shape"] == [5, 3]
    assert v["max_abs_error"] is None and v["relative_error"] is None
    assert "(2, 7)" in v["hint"] and "(5, 3)" in v["hint"] and "(out, in)" in v["hint"]
    # same number of entries but wrong values: still just the shape message
    v = check_student(net, X, y, [{"dW": np.ones((3, 5))}])["layers"][0]["dW"]
    assert v["max_abs_error"] is None and "(out, in)" in v["hint"]


def test_db_shapes():
    net, X, y, q = setup(B=4)
    delta = q[1]["delta"]
    v = check_student(net, X, y, [{}, {"db": delta}])["layers"][1]["db"]
    assert not v["passed"] and v["shape"] == [4, 4] and "sums delta over the batch" in v["hint"]
    v = check_student(net, X, y, [{}, {"db": q[1]["db"][None, :]}])["layers"][1]["db"]
    assert not v["passed"] and v["shape"] == [1, 4] and v["expected_shape"] == [4]
    assert "values are right" in v["hint"]
    v = check_student(net, X, y, [{}, {"db": [1.0, 2.0]}])["layers"][1]["db"]
    assert v["max_abs_error"] is None and "(4,)" in v["hint"]


def test_float32_network():
    net, X, y, q = setup(dtype=np.float32)
    r = check_student(net, X, y, [{"dW": l["dW"], "db": l["db"]} for l in q])
    assert r["passed"]
    assert "f'(a_2) is missing" in check_student(
        net, X, y, [{}, {"dW": q[1]["dz"].T @ q[0]["z"]}])["layers"][1]["dW"]["hint"]


def test_errors():
    net, X, y, q = setup()
    with pytest.raises(ValueError, match="4 layers but the network has only 3"):
        check_student(net, X, y, [{}] * 4)
    with pytest.raises(ValueError, match="unknown key"):
        check_student(net, X, y, [{"dw": q[0]["dW"]}])
    with pytest.raises(ValueError, match="number array"):
        check_student(net, X, y, [{"dW": "abc"}])
    nb, Xb, yb, _ = setup(bias=False)
    with pytest.raises(ValueError, match="no bias"):
        check_student(nb, Xb, yb, [{"db": [0.0] * 5}])


# -- where the mistake enters: the student's own backward pass, written here independently ----------
F = {"sigmoid": (lambda a: 1 / (1 + np.exp(-a)), lambda a: np.exp(-a) / (1 + np.exp(-a)) ** 2),
     "tanh": (np.tanh, lambda a: 1 - np.tanh(a) ** 2)}


def question_student(Ws, f_name, x, y, transpose_missing=False):
    """The question's formulas with 1-D vectors, as its student coded them: dW_i = k_i (x) z_{i-1}."""
    f, fp = F[f_name]
    z = [x]
    for W in Ws:
        z.append(f(W @ z[-1]))
    L = len(Ws)
    k = {L: 2 * (z[L] - y) * fp(Ws[L - 1] @ z[L - 1])}                      # k_n = 2(y_hat - y) f'(W_{n+1} z_n)
    k[L - 1] = k[L] * (Ws[L - 1][0] * fp(Ws[L - 2] @ z[L - 2]))            # the special layer: right
    for i in range(L - 2, 0, -1):
        W = Ws[i] if transpose_missing else Ws[i - 1]
        k[i] = (W @ k[i + 1] if transpose_missing else k[i + 1] @ W) * fp(Ws[i - 1] @ z[i - 1])
    return [np.outer(k[i], z[i - 1]) for i in range(1, L + 1)]


@pytest.mark.parametrize("f_name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("hidden", [1, 2, 3, 4])
@pytest.mark.parametrize("transpose_missing", [False, True])
def test_the_questions_recurrence_is_diagnosed_where_it_enters(f_name, hidden, transpose_missing):
    n = 3
    net = Network([n] * (hidden + 1) + [1], [f_name] * (hidden + 1), loss="mse", bias=False)
    net.initialize(hidden, "normal", 1.0)
    x, y = np.random.default_rng(hidden).normal(size=n), 0.4
    dWs = question_student([d.params["W"] for d in net.dense], f_name, x, y, transpose_missing)
    r = check_student(net, x[None, :], [[y]], [{"dW": g} for g in dWs])
    L = hidden + 1
    top = L - 2  # the recurrence starts below the special layer L - 1
    for i, entry in enumerate(r["layers"], start=1):
        assert entry["dW"]["passed"] == (i > top), (i, entry)
    if top < 1:
        assert r["passed"] and r["first_error"] is None
        return
    hint = r["layers"][top - 1]["dW"]["hint"]
    kind = "no_T" if transpose_missing else "own_W"
    assert r["first_error"] == {"layer": top, "target": f"dW[{top}]", "message": hint, "kind": kind, "kinds": [kind]}
    assert f"W_{top + 1}^T" in hint  # names the next layer's weights, transposed
    assert ("transpose is missing" if transpose_missing else f"own W_{top} where W_{top + 1}^T belongs") in hint
    for i in range(1, top):
        below = r["layers"][i - 1]["dW"]["hint"]
        assert "comes from above" in below and f"fix layer {top} first" in below
        assert "repeated at every layer" in below  # the student repeated the recurrence: computed, not assumed


def row_student(net, X, y, kind, j):
    """A row-convention backward pass with one mistake made at layer j (and carried down correctly)."""
    Ws = [d.params["W"] for d in net.dense]
    bs = [d.params["b"] if net.bias else 0.0 for d in net.dense]
    acts = [layer.f for layer in net.acts]
    a, z = [], [X]
    for W, b, f in zip(Ws, bs, acts):
        a.append(z[-1] @ W.T + b)
        z.append(f.forward(a[-1]))
    B, L = len(X), len(Ws)
    fp = lambda i, at=None: acts[i - 1].derivative(a[i - 1] if at is None else at,
                                                   acts[i - 1].forward(a[i - 1] if at is None else at))
    c = {"half": 0.5, "sum": B, "sign": -1.0, "B2": 1 / B}.get(kind, 1.0) if j == L else 1.0
    delta = {L: c * 2 * (z[L] - y) / B * fp(L)}
    if j == L and kind == "no_fprime":
        delta[L] = 2 * (z[L] - y) / B
    for i in range(L - 1, 0, -1):
        dz = delta[i + 1] @ Ws[i]
        if i == j and kind == "own_W":
            dz = delta[i + 1] @ Ws[i - 1]
        if i == j and kind == "no_T":
            dz = delta[i + 1] @ Ws[i].T
        d = dz * fp(i)
        if i == j and kind == "no_fprime":
            d = dz
        if i == j and kind == "fprime_z":
            d = dz * fp(i, z[i])
        delta[i] = d
    out = [{"dW": delta[i].T @ z[i - 1]} for i in range(1, L + 1)]
    if net.bias:
        for i in range(1, L + 1):
            out[i - 1]["db"] = delta[i].sum(axis=0)
    if kind == "transposed":
        out[j - 1]["dW"] = out[j - 1]["dW"].T
    if kind == "db_per_sample":
        out[j - 1]["db"] = delta[j]
    if kind == "db_column":
        out[j - 1]["db"] = delta[j].sum(axis=0)[:, None]
    return out


MISTAKES = {  # kind: (layer j, words the hint must contain)
    "own_W": (2, "own W_2 where W_3^T belongs"), "no_T": (2, "transpose is missing"),
    "no_fprime": (3, "f'(a_3) is missing"), "fprime_z": (2, "f'(z_2) is there where f'(a_2) belongs"),
    "half": (4, "factor 2"), "sum": (4, "B = 5 times"), "B2": (4, "1/B = 1/5"), "sign": (4, "opposite sign"),
    "transposed": (1, "transposed"), "db_per_sample": (3, "delta per sample"),
    "db_column": (2, "values are right"),
}


@pytest.mark.parametrize("kind,bias", [(k, b) for k in sorted(MISTAKES) for b in (True, False)
                                       if b or not k.startswith("db")])  # no db without a bias
def test_each_mistake_gets_its_hint_at_its_layer_and_layers_below_point_up(kind, bias):
    j, words = MISTAKES[kind]
    net = Network([3, 4, 4, 4, 2], ["tanh", "sigmoid", "tanh", "identity"], loss="mse", bias=bias)
    net.initialize(11, "normal", 0.9)
    if bias:
        net.params[net.weight_mask == 0] = np.random.default_rng(2).normal(0, 0.3, int((net.weight_mask == 0).sum()))
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    r = check_student(net, X, y, row_student(net, X, y, kind, j))
    assert not r["passed"]
    assert r["first_error"]["layer"] == j and words in r["first_error"]["message"], r["first_error"]
    for i, entry in enumerate(r["layers"], start=1):
        tensors = [entry[k] for k in ("dW", "db") if entry[k] is not None]
        if i > j:
            assert all(v["passed"] for v in tensors)
        elif i < j and kind not in ("transposed", "db_per_sample", "db_column"):
            for v in tensors:
                assert not v["passed"] and f"fix layer {j} first" in v["hint"] and "from above" in v["hint"]


def test_relu_kink_accepts_any_subgradient():
    net = Network([2, 3, 3, 1], ["relu", "relu", "identity"], loss="mse", bias=True)
    net.initialize(0, "normal", 1.0)
    X = np.array([[0.5, 0.25], [1.0, -0.5], [0.3, 0.8]])
    y = np.array([[1.0], [0.0], [0.5]])
    net.dense[0].params["W"][0] = [1.0, 1.0]
    net.dense[0].params["b"][0] = -0.75  # a_1 of unit 1 on row 0 is exactly 0.5 + 0.25 - 0.75 = 0: the kink
    Ws, bs = [d.params["W"] for d in net.dense], [d.params["b"] for d in net.dense]
    a, z = [], [X]
    for W, b in zip(Ws[:-1], bs[:-1]):
        a.append(z[-1] @ W.T + b)
        z.append(np.maximum(a[-1], 0))
    assert a[0][0, 0] == 0.0
    z.append(z[-1] @ Ws[-1].T + bs[-1])
    delta = {3: 2 * (z[3] - y) / 3}
    for i in (2, 1):
        delta[i] = (delta[i + 1] @ Ws[i]) * (a[i - 1] >= 0)  # the student's relu' is [a >= 0]: f'(0) = 1
    given = [{"dW": delta[i].T @ z[i - 1], "db": delta[i].sum(axis=0)} for i in (1, 2, 3)]
    r = check_student(net, X, y, given)
    assert r["passed"], r
    v = r["layers"][0]["dW"]
    assert v["relative_error"] > 1e-3  # not the engine's choice f'(0) = 0 ...
    assert "kink" in v["hint"] and "any subgradient" in v["hint"] and "right slope" in v["hint"]  # ... but right


def test_any_shape_in_and_only_structure_refused():
    net, X, y, q = setup()
    flat = check_student(net, X, y, [{"dW": q[0]["dW"].ravel().tolist()}])["layers"][0]["dW"]
    assert not flat["passed"] and "values are right" in flat["hint"] and flat["shape"] == [15]
    col = check_student(net, X, y, [{}, {}, {"db": q[2]["db"][:, None].tolist()}])["layers"][2]["db"]
    assert "values are right" in col["hint"]
    for bad, words in (([[1.0, 2.0], [3.0]], "is ragged: its rows have different lengths"), ([float("nan")], "non-finite"), ({"a": 1}, "number array"),
                       ([[None]], "non-finite|number array"), ([["x"]], "number array"), (np.zeros(10_000), "at most")):
        with pytest.raises(ValueError, match=words):
            check_student(net, X, y, [{"dW": bad}])


def test_gradients_given_are_not_changed_by_later_calls():
    net, X, y, q = setup()
    r1 = check_student(net, X, y, [{"dW": q[0]["dW"]}])
    net.params += 0.1
    r2 = check_student(net, X, y, [{"dW": q[0]["dW"]}])
    assert r1["passed"] and not r2["passed"]


@pytest.mark.parametrize("value,why", [
    (np.inf, "its parameters are not finite, so there is no true gradient to compare with"),
    (1e200, "its true gradients on this batch are not finite (its weights are so large that the backward pass "
            "overflows), so nothing can be compared"),
])
def test_a_diverged_model_is_reported_as_diverged_not_as_relative_error_nan(value, why):
    """Correct-looking finite gradients against a diverged net: the verdict names the divergence."""
    net, X, y, q = setup(out="identity", sizes=(3, 4, 4, 1))
    with np.errstate(all="ignore"):
        net.params[:] = value  # every weight and bias (the last layer overflows its outputs' square)
        r = check_student(net, X, y, [{"dW": np.zeros((4, 3))}])
    assert r["passed"] is False
    assert r["first_error"] == {"layer": 1, "target": "dW[1]", "kind": "diverged", "kinds": ["diverged"],
                                "message": f"the model has diverged: {why}; reset "
                                                                            "the model or lower the learning rate, "
                                                                            "then check again"}
