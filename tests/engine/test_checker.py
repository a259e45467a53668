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
    # with bce the factor-2 mistake does not exist, so a halved gradient gets no such hint
    net, X, y, q = setup(loss="bce")
    v = check_student(net, X, y, [{"dW": q[0]["dW"] / 2}])["layers"][0]["dW"]
    assert not v["passed"] and v["hint"] is None


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
    v = check_student(net, X, y, [{}, {"dW": data}])["layers"][1]["dW"]  # penalty forgotten: no false hint
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
