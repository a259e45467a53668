import re

import numpy as np
import pytest

from app.engine.network import Network
from app.engine.trace import backprop_trace, closed_form_gradients


def net_2841(**kw):
    kw.setdefault("loss", "bce")
    return Network([2, 8, 4, 1], ["tanh", "tanh", "sigmoid"], **kw)


def by_target(steps):
    return {s["target"]: s for s in steps}


def test_shapes_for_2_8_4_1_with_batch_10():
    t = backprop_trace(net_2841(), 10)
    assert t["batch_size"] == 10
    f, b = by_target(t["forward"]), by_target(t["backward"])
    expect = {"a_1": [10, 8], "z_1": [10, 8], "a_2": [10, 4], "z_2": [10, 4], "a_3": [10, 1], "z_3": [10, 1],
              "L": []}
    assert {k: s["result_shape"] for k, s in f.items()} == expect
    assert [s["target"] for s in t["forward"]] == ["a_1", "z_1", "a_2", "z_2", "a_3", "z_3", "L"]
    assert [s["target"] for s in t["backward"]] == ["delta_3", "dW_3", "db_3", "dz_2", "delta_2", "dW_2", "db_2",
                                                    "dz_1", "delta_1", "dW_1", "db_1"]
    shapes = {"delta_3": [10, 1], "dW_3": [1, 4], "db_3": [1], "dz_2": [10, 4], "delta_2": [10, 4],
              "dW_2": [4, 8], "db_2": [4], "dz_1": [10, 8], "delta_1": [10, 8], "dW_1": [8, 2], "db_1": [8]}
    assert {k: s["result_shape"] for k, s in b.items()} == shapes
    assert f["a_2"]["operands"] == [{"name": "z_1", "shape": [10, 8], "stored_shape": [10, 8], "transposed": False},
                                    {"name": "W_2", "shape": [8, 4], "stored_shape": [4, 8], "transposed": True},
                                    {"name": "b_2", "shape": [4], "stored_shape": [4], "transposed": False}]
    assert b["dz_1"]["operands"] == [{"name": "delta_2", "shape": [10, 4], "stored_shape": [10, 4], "transposed": False},
                                     {"name": "W_2", "shape": [4, 8], "stored_shape": [4, 8], "transposed": False}]
    assert [s["layer"] for s in t["backward"]] == [3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1]


@pytest.mark.parametrize("convention", ["rows", "columns"])
def test_every_matrix_product_is_shape_consistent(convention):
    """Each operand's shape is its shape as used: multiplying them gives the step's result shape,
    and a transposed operand's shape is its stored shape reversed."""
    for B in (1, 10):
        t = backprop_trace(net_2841(loss="mse"), B, convention)
        for s in t["forward"] + t["backward"]:
            for o in s["operands"]:
                assert o["shape"] == (o["stored_shape"][::-1] if o["transposed"] else o["stored_shape"])
            if s["target"].startswith(("a_", "dW_", "dz_")) and len(s["operands"]) >= 2 and "=" in s["equation"] \
                    and s["target"] != "dz_3":
                x, w = s["operands"][:2]
                assert list((np.zeros(x["shape"]) @ np.zeros(w["shape"])).shape) == s["result_shape"], s


def test_dW_step_flags_transposed_delta():
    b = by_target(backprop_trace(net_2841(), 10)["backward"])
    for i, (n_out, n_in) in {3: (1, 4), 2: (4, 8), 1: (8, 2)}.items():
        s = b[f"dW_{i}"]
        assert s["equation"] == f"dW_{i} = delta_{i}^T z_{i - 1}"
        assert s["operands"][0] == {"name": f"delta_{i}", "shape": [n_out, 10], "stored_shape": [10, n_out],
                                    "transposed": True}
        assert s["operands"][1] == {"name": f"z_{i - 1}", "shape": [10, n_in], "stored_shape": [10, n_in],
                                    "transposed": False}


def test_equations_follow_the_notation():
    t = backprop_trace(net_2841(), "B")
    f, b = by_target(t["forward"]), by_target(t["backward"])
    assert f["a_1"]["equation"] == "a_1 = z_0 W_1^T + b_1"
    assert f["z_2"]["equation"] == "z_2 = f_2(a_2)"
    assert b["delta_3"]["equation"] == "delta_3 = (y_hat - y)/B" and "fused" in b["delta_3"]["note"]
    assert b["dz_2"]["equation"] == "dz_2 = delta_3 W_3"
    assert b["delta_2"]["equation"] == "delta_2 = dz_2 * f'(a_2) = (delta_3 W_3) * f'(a_2)"
    assert b["delta_2"]["note"] == "elementwise with f'(a_2) = 1 - z_2^2, shape (B,4)"
    assert b["db_1"]["equation"] == "db_1 = sum_b delta_1"
    assert b["delta_1"]["result_shape"] == ["B", 8] and b["dW_1"]["result_shape"] == [8, 2]
    names = {o["name"] for s in t["forward"] + t["backward"] for o in s["operands"]}
    assert all(re.fullmatch(r"(z|a|W|b|delta|dz)_\d|y_hat|y|f'\(a_\d\)", n) for n in names), names


def test_output_deltas_per_loss():
    mse = by_target(backprop_trace(net_2841(loss="mse"))["backward"])
    assert mse["dz_3"]["equation"] == "dz_3 = 2(y_hat - y)/B"
    assert mse["delta_3"]["equation"] == "delta_3 = dz_3 * f'(a_3) = 2(y_hat - y)/B * f'(a_3)"
    assert "z_3(1 - z_3)" in mse["delta_3"]["note"]
    ce = by_target(backprop_trace(Network([2, 3], ["softmax"], loss="cross_entropy"), 5)["backward"])
    assert ce["delta_1"]["equation"] == "delta_1 = (y_hat - y)/B" and "softmax + cross_entropy" in ce["delta_1"]["note"]
    sm = by_target(backprop_trace(Network([2, 3], ["softmax"], loss="mse"), 5)["backward"])
    assert "Jacobian" in sm["delta_1"]["note"] and sm["delta_1"]["result_shape"] == [5, 3]
    nobias = backprop_trace(Network([2, 3, 1], ["relu", "identity"], regularization="l2", reg_rate=0.1))
    b = by_target(nobias["backward"])
    assert "db_1" in b and b["dW_2"]["equation"] == "dW_2 = delta_2^T z_1 + lambda W_2"
    assert "[a_1 > 0]" in b["delta_1"]["note"]
    assert not any(s["target"].startswith("db") for s in backprop_trace(Network([2, 3, 1], ["relu", "identity"],
                                                                                bias=False))["backward"])


def test_closed_form_only_for_the_questions_case():
    q = Network([3, 5, 4, 1], ["sigmoid"] * 3, loss="mse", bias=False)
    text = backprop_trace(q)["closed_form"]
    assert text and "dMSE/dW_3 = 2(y_hat - y) f'(W_3 z_2) z_2^T" in text
    assert "k = dMSE/dz_2" in text and "delta_i^T z_(i-1)" in text
    assert backprop_trace(Network([2, 1], ["tanh"], loss="mse", bias=False))["closed_form"]
    for other in (Network([3, 5, 1], ["sigmoid"] * 2, loss="mse"),                      # bias
                  Network([3, 5, 1], ["tanh", "sigmoid"], loss="mse", bias=False),       # two activations
                  Network([3, 5, 2], ["sigmoid"] * 2, loss="mse", bias=False),           # two outputs
                  Network([3, 5, 1], ["sigmoid"] * 2, loss="bce", bias=False),           # not mse
                  Network([3, 5, 1], ["sigmoid"] * 2, loss="mse", bias=False, regularization="l2", reg_rate=0.1)):
        assert backprop_trace(other)["closed_form"] is None


def test_closed_form_gradients_shapes_and_bad_batch_size():
    Ws = [np.ones((4, 3)), np.ones((2, 4)), np.ones((1, 2))]
    g = closed_form_gradients(Ws, np.tanh, lambda a: 1 - np.tanh(a) ** 2, np.ones(3), 0.0)
    assert [x.shape for x in g] == [(4, 3), (2, 4), (1, 2)]
    for bad in (0, -2, 1.5, True, None):
        with pytest.raises(ValueError):
            backprop_trace(net_2841(), bad)


def test_transposed_weight_chip_shows_the_shape_as_used_on_2_8_8_1():
    """The issue's contradiction: W_1^T is (2, 8) on 2-8-8-1, never its stored (8, 2)."""
    net = Network([2, 8, 8, 1], ["tanh", "tanh", "sigmoid"], loss="bce")
    a1 = by_target(backprop_trace(net, "B")["forward"])["a_1"]
    w1 = next(o for o in a1["operands"] if o["name"] == "W_1")
    assert w1 == {"name": "W_1", "shape": [2, 8], "stored_shape": [8, 2], "transposed": True}


def test_columns_reads_like_the_question():
    net = Network([2, 8, 8, 1], ["sigmoid"] * 3, loss="mse", bias=False)
    t = backprop_trace(net, 1, "columns")
    assert t["convention"] == "columns"
    f, b = by_target(t["forward"]), by_target(t["backward"])
    assert f["a_1"]["equation"] == "a_1 = W_1 z_0" and f["a_1"]["result_shape"] == [8, 1]
    assert [o["shape"] for o in f["a_1"]["operands"]] == [[8, 2], [2, 1]]
    assert b["dz_3"]["equation"] == "dz_3 = 2(y_hat - y)" and b["dz_3"]["result_shape"] == [1, 1]
    assert b["dz_1"]["equation"] == "dz_1 = W_2^T delta_2" and "layer ABOVE" in b["dz_1"]["note"]
    assert b["dz_1"]["operands"][0] == {"name": "W_2", "shape": [8, 8], "stored_shape": [8, 8], "transposed": True}
    assert b["delta_1"]["equation"] == "delta_1 = dz_1 * f'(a_1) = (W_2^T delta_2) * f'(a_1)"
    assert "k_1" in b["delta_1"]["note"] and b["delta_1"]["result_shape"] == [8, 1]
    assert b["dW_1"]["equation"] == "dW_1 = delta_1 z_0^T" and b["dW_1"]["result_shape"] == [8, 2]
    assert [o["shape"] for o in b["dW_1"]["operands"]] == [[8, 1], [1, 2]]
    # several samples: per-sample errors, dW averaged as the loss is
    b10 = by_target(backprop_trace(net, 10, "columns")["backward"])
    assert b10["dW_2"]["equation"] == "dW_2 = mean over the samples of delta_2 z_1^T"
    nb = by_target(backprop_trace(Network([2, 3, 1], ["tanh", "sigmoid"], loss="bce"), 4, "columns")["backward"])
    assert nb["delta_2"]["equation"] == "delta_2 = (y_hat - y)" and nb["db_1"]["result_shape"] == [3, 1]
    with pytest.raises(ValueError, match="convention"):
        backprop_trace(net, 1, "diagonal")
