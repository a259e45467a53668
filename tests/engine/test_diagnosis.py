"""The composed diagnosis on the quoted /check cases: each asserts the explanation and its kind."""
import numpy as np

from app.engine.checker import check_student
from app.engine.mistakes import KINDS
from app.engine.network import Network


def net_of(sizes, acts, loss, B=5, seed=0):
    net = Network(list(sizes), list(acts), loss=loss, bias=True)
    net.initialize(seed, "normal", 0.7)
    rng = np.random.default_rng(seed + 1)
    X = rng.normal(size=(B, sizes[0]))
    K = sizes[-1]
    y = np.eye(K)[rng.integers(0, K, size=B)] if loss == "cross_entropy" else rng.normal(size=(B, K))
    net.full_backward(X, y)
    q = [dict(dW=l.dW.copy(), db=l.db.copy(), delta=l.delta.copy(), dz=l.dz.copy(), a=l.a.copy(), z=l.z.copy())
         for l in net.quantities()]
    return net, X, y, q


def test_db_as_batch_mean_is_each_layers_own_mistake_never_inherited():
    net, X, y, q = net_of((2, 4, 3), ("tanh", "softmax"), "cross_entropy")
    layers = [{"dW": l["dW"], "db": l["delta"].mean(axis=0)} for l in q]
    r = check_student(net, X, y, layers)
    for entry in r["layers"]:
        assert entry["dW"]["passed"] and entry["dW"]["kind"] is None
        v = entry["db"]
        assert not v["passed"] and v["kind"] == "batch_mean_twice" and v["kinds"] == ["batch_mean_twice"]
        assert "the mean's 1/B is counted twice" in v["hint"] and "comes from above" not in v["hint"]
    assert r["first_error"]["layer"] == 2 and r["first_error"]["kind"] == "batch_mean_twice"


def test_y_minus_y_hat_without_the_2_and_without_fprime_is_three_mistakes():
    net, X, y, q = net_of((3, 4, 3), ("tanh", "sigmoid"), "mse")  # K = 3: 1/K is not 1/2
    delta = (y - q[1]["z"]) / X.shape[0]  # sign, the 2 and f'(a_2) all left out
    v = check_student(net, X, y, [{}, {"dW": delta.T @ q[0]["z"]}])["layers"][1]["dW"]
    assert sorted(v["kinds"]) == ["half", "no_fprime", "sign"] and v["kind"] == "no_fprime+sign+half"
    assert "combines 3 mistakes" in v["hint"] and "times the true gradient: a constant factor" not in v["hint"]


def test_mse_averaged_over_the_outputs_is_one_over_K():
    net, X, y, q = net_of((3, 4, 2), ("tanh", "identity"), "mse")
    v = check_student(net, X, y, [{}, {"dW": q[1]["dW"] / 2}])["layers"][1]["dW"]
    assert v["kind"] == "output_mean" and "averaged over the K = 2 outputs too" in v["hint"]


def test_a_one_entry_tensor_is_not_read_as_any_constant_multiple():
    net, X, y, q = net_of((3, 4, 1), ("tanh", "sigmoid"), "mse")
    r = check_student(net, X, y, [{}, {"db": q[1]["db"] * 9.6}])
    v = r["layers"][1]["db"]
    assert not v["passed"] and v["kind"] is None and v["hint"] is None
    assert r["first_error"]["kind"] == "unexplained"
    v = check_student(net, X, y, [{}, {"db": -q[1]["db"]}])["layers"][1]["db"]  # a named factor still reads
    assert v["kind"] == "sign"
    # a structural explanation is preferred to a factor that happens to fit one entry
    delta = 2 * (q[1]["z"] - y) / X.shape[0]  # f'(a_2) left out
    v = check_student(net, X, y, [{}, {"db": delta.sum(axis=0)}])["layers"][1]["db"]
    assert v["kind"] == "no_fprime"


def test_a_delta_mistake_below_is_inherited_and_named_once():
    net, X, y, q = net_of((3, 4, 4, 2), ("tanh", "tanh", "identity"), "mse")
    d2 = (q[2]["delta"] @ net.dense[2].params["W"])  # f'(a_2) left out at layer 2
    d1 = net.acts[0].f.backward(q[0]["a"], q[0]["z"], d2 @ net.dense[1].params["W"])
    r = check_student(net, X, y, [{"dW": d1.T @ X}, {"dW": d2.T @ q[0]["z"]}, {"dW": q[2]["dW"]}])
    assert r["first_error"]["layer"] == 2 and r["first_error"]["kind"] == "no_fprime"
    assert r["layers"][0]["dW"]["kind"] == "inherited" and "fix layer 2 first" in r["layers"][0]["dW"]["hint"]


def test_every_kind_in_a_verdict_is_in_the_catalogue():
    net, X, y, q = net_of((3, 4, 2), ("tanh", "sigmoid"), "mse")
    delta = (y - q[1]["z"]) / X.shape[0]
    r = check_student(net, X, y, [{"db": q[0]["db"] / 5}, {"dW": delta.T @ q[0]["z"]}])
    kinds = [k for e in r["layers"] for v in (e["dW"], e["db"]) if v for k in v["kinds"]]
    assert kinds and set(kinds) <= set(KINDS)


def test_softmax_prime_taken_elementwise_is_named():
    net, X, y, q = net_of((2, 4, 3), ("tanh", "softmax"), "cross_entropy")
    y_hat = q[1]["z"]
    delta = (y_hat - y) / X.shape[0] * y_hat * (1 - y_hat)
    v = check_student(net, X, y, [{}, {"dW": delta.T @ q[0]["z"], "db": delta.sum(axis=0)}])["layers"][1]
    for key in ("dW", "db"):
        assert v[key]["kind"] == "softmax_elementwise" and "softmax has a Jacobian" in v[key]["hint"]


def test_bias_as_an_extra_column_is_named():
    net, X, y, q = net_of((2, 4, 3), ("tanh", "softmax"), "cross_entropy")
    stacked = np.hstack([q[0]["dW"], q[0]["db"][:, None]])
    v = check_student(net, X, y, [{"dW": stacked}])["layers"][0]["dW"]
    assert not v["passed"] and v["kind"] == "bias_column" and "extra weight column" in v["hint"]
    assert v["shape"] == [4, 3] and v["expected_shape"] == [4, 2]


def test_wrong_derivative_formulas_are_named_with_the_right_one():
    net, X, y, q = net_of((3, 4, 4, 2), ("tanh", "sigmoid", "identity"), "mse")
    W3, z1, a2, z2 = net.dense[2].params["W"], q[0]["z"], q[1]["a"], q[1]["z"]
    dz2 = q[2]["delta"] @ W3
    for wrong, said in ((a2 * (1 - a2), "written as a(1 - a): the wrong variable"),
                        (z2 * (1 + z2), "written as z(1 + z): the wrong sign"),
                        (1 - z2 ** 2, "written as 1 - z^2: tanh's derivative")):
        v = check_student(net, X, y, [{}, {"dW": (dz2 * wrong).T @ z1}, {"dW": q[2]["dW"]}])["layers"][1]["dW"]
        assert v["kind"] == "wrong_derivative", v
        assert said in v["hint"] and "the right formula is sigmoid'(a_2) = z(1 - z)" in v["hint"]
    net, X, y, q = net_of((3, 4, 2), ("tanh", "tanh"), "mse")
    dz = 2 * (q[1]["z"] - y) / X.shape[0]
    v = check_student(net, X, y, [{}, {"dW": (dz * (1 + q[1]["z"] ** 2)).T @ q[0]["z"]}])["layers"][1]["dW"]
    assert v["kind"] == "wrong_derivative" and "tanh'(a_2) = 1 - z^2" in v["hint"]


def test_hidden_delta_with_the_already_updated_W_is_named():
    net, X, y, q = net_of((3, 4, 4, 2), ("tanh", "tanh", "identity"), "mse")
    W3 = net.dense[2].params["W"] - 0.1 * q[2]["dW"]
    d2 = net.acts[1].f.backward(q[1]["a"], q[1]["z"], q[2]["delta"] @ W3)
    layers = [{}, {"dW": d2.T @ q[0]["z"]}, {"dW": q[2]["dW"]}]
    v = check_student(net, X, y, layers, lr=0.1)["layers"][1]["dW"]
    assert v["kind"] == "updated_W" and "already-updated W_3 - lr dW_3 (lr = 0.1)" in v["hint"]
    assert check_student(net, X, y, layers)["layers"][1]["dW"]["kind"] != "updated_W"  # lr unknown


def test_db_over_the_wrong_axis_or_every_entry_is_named():
    net, X, y, q = net_of((3, 4, 3), ("tanh", "identity"), "mse")
    d = q[1]["delta"]
    for given, kind, said in ((d.sum(axis=1), "db_wrong_axis", "delta_2.sum(axis=1), shape (5,)"),
                              (d.mean(axis=1), "db_wrong_axis_mean", "delta_2.mean(axis=1), shape (5,)"),
                              (d.sum(), "db_every_entry", "delta_2.sum(), a scalar"),
                              (d.mean(), "db_every_entry_mean", "delta_2.mean(), a scalar")):
        r = check_student(net, X, y, [{}, {"db": given}])
        v = r["layers"][1]["db"]
        assert not v["passed"] and v["kind"] == kind and v["kinds"] == [kind], v
        assert said in v["hint"] and "db_2 = delta_2.sum(axis=0)" in v["hint"]
        assert r["first_error"]["kind"] == kind and kind in KINDS


def penalised(reg, seed=0):
    net = Network([3, 4, 3], ["tanh", "identity"], loss="mse", bias=True, regularization=reg, reg_rate=0.1)
    net.initialize(seed, "normal", 0.7)
    rng = np.random.default_rng(seed + 1)
    X, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    net.full_backward(X, y)
    return net, X, y, [(l.dW.copy(), l.db.copy(), l.delta.copy(), l.z.copy()) for l in net.quantities()]


def test_a_penalty_with_the_wrong_factor_is_named_and_not_carried_down():
    for reg in ("l2", "l1"):
        net, X, y, q = penalised(reg)
        W = [d.params["W"] for d in net.dense]
        P = [w if reg == "l2" else np.sign(w) for w in W]
        data = q[1][2].T @ q[0][3]
        for f, kind in ((2.0, "penalty_double"), (0.5, "penalty_half"), (1 / 5, "penalty_batch")):
            r = check_student(net, X, y, [{"dW": q[0][0]}, {"dW": data + f * 0.1 * P[1]}])
            v = r["layers"][1]["dW"]
            assert v["kind"] == kind and v["kinds"] == [kind], (reg, v)
            assert f"{reg} penalty gradient" in v["hint"] and r["layers"][0]["dW"]["passed"]


def test_a_penalty_where_it_does_not_belong_is_named():
    net, X, y, q = penalised("l2")
    b2 = net.dense[1].params["b"] = np.array([0.3, -0.2, 0.5])
    net.full_backward(X, y)
    db = net.quantities()[1].db.copy()
    v = check_student(net, X, y, [{}, {"db": db + 0.1 * b2}])["layers"][1]["db"]
    assert v["kind"] == "penalty_extra" and "0.1 b_2 added where it does not belong" in v["hint"]
    assert "the bias is not penalised" in v["hint"]
    net, X, y, q = net_of((3, 4, 3), ("tanh", "identity"), "mse")
    W2 = net.dense[1].params["W"]
    v = check_student(net, X, y, [{}, {"dW": q[1]["dW"] + 0.01 * W2}])["layers"][1]["dW"]
    assert v["kind"] == "penalty_extra" and "0.01 W_2 added where it does not belong" in v["hint"]
    assert "this network has no penalty" in v["hint"]


def test_fprime_at_the_wrong_layer_is_named_where_widths_are_equal():
    net, X, y, q = net_of((3, 4, 4, 4, 2), ("tanh", "sigmoid", "tanh", "identity"), "mse")
    W = [d.params["W"] for d in net.dense]
    dz2 = q[2]["delta"] @ W[2]
    for other in (1, 3):
        fp = net.acts[other - 1].f.derivative(q[other - 1]["a"], q[other - 1]["z"])
        d2 = dz2 * fp
        layers = [{}, {"dW": d2.T @ q[0]["z"]}, {"dW": q[2]["dW"]}, {"dW": q[3]["dW"]}]
        v = check_student(net, X, y, layers)["layers"][1]["dW"]
        assert v["kind"] == "fprime_wrong_layer", v
        assert f"delta_2 = dz_2 * f'(a_{other})" in v["hint"] and "equal widths" in v["hint"]


def test_every_activation_names_its_usual_wrong_derivatives():
    from app.engine.activations import ACTIVATIONS
    for name, cls in ACTIVATIONS.items():
        if cls.output_only:
            continue
        f = cls()
        assert f.wrong_derivatives, name
        net, X, y, q = net_of((3, 4, 4, 2), ("tanh", name, "identity"), "mse")
        dz2 = q[2]["delta"] @ net.dense[2].params["W"]
        for form in f.wrong_derivatives:
            wrong = form[2](q[1]["a"], q[1]["z"])
            v = check_student(net, X, y, [{}, {"dW": (dz2 * wrong).T @ q[0]["z"]},
                                          {"dW": q[2]["dW"]}])["layers"][1]["dW"]
            assert v["kind"] == "wrong_derivative", (name, form[0], v)
            assert f"written as {form[0]}: {form[1]}" in v["hint"] and f"{name}'(a_2) = " in v["hint"]


def test_db_over_the_wrong_axis_is_named_through_derive():
    from app.engine.derive import CORRECT_EQUATIONS, derive
    net, X, y, q = net_of((3, 4, 4, 2), ("tanh", "tanh", "identity"), "mse")
    for expr, kind in (("sum(delta[i], axis=1)", "db_wrong_axis"), ("sum(delta[i])", "db_every_entry")):
        eqs = [dict(e) for e in CORRECT_EQUATIONS["rows"]]
        eqs[3]["expr"] = expr
        first = derive(net, X, y, eqs, "rows")["first_error"]
        assert first["kind"] == kind and first["layer"] == 3, first
