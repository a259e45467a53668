"""Export as code: the generated NumPy script reproduces the engine's gradients, passes its own
gradient check, catches a wrong derivative, and imports nothing but numpy, sys and json."""
import ast
import json
import runpy
import subprocess
import sys

import numpy as np
import pytest

from app.engine.activations import ACTIVATIONS, ELU, LeakyReLU, Softplus
from app.engine.codegen import _num, numpy_script
from app.engine.network import Network

# (sizes, activations, loss, bias, regularization, rate)
CASES = {
    "linear_0_hidden": ([2, 1], ["identity"], "mse", True, "none", 0.0),
    "tanh_bce_l2": ([3, 4, 1], ["tanh", "sigmoid"], "bce", True, "l2", 0.05),
    "relu_leaky_softmax_ce": ([2, 5, 4, 3], ["relu", "leaky_relu", "softmax"], "cross_entropy", True, "none", 0.0),
    "elu_softplus_silu_3_hidden_no_bias": ([2, 3, 4, 3, 2], ["elu", "softplus", "silu", "identity"], "mse",
                                           False, "none", 0.0),
    "sigmoid_mse_unfused_l1": ([3, 4, 2], ["sigmoid", "sigmoid"], "mse", True, "l1", 0.02),
    "identity_softmax_ce_no_bias_l2": ([2, 4, 3], ["identity", "softmax"], "cross_entropy", False, "l2", 0.1),
    "softmax_mse_unfused": ([2, 3, 2], ["tanh", "softmax"], "mse", True, "none", 0.0),
    "bce_on_tanh_unfused": ([2, 3, 1], ["silu", "tanh"], "bce", True, "none", 0.0),
}
KINKED = {"relu", "leaky_relu"}


def _targets(rng, net, B):
    K = net.sizes[-1]
    if net.loss.name == "cross_entropy":
        return np.eye(K)[rng.integers(0, K, B)]
    if net.loss.name == "bce":
        return (rng.random((B, K)) < 0.5).astype(float)
    return rng.normal(size=(B, K))


def _make(name, seed=0, B=8):
    """A random network with non-zero biases and a batch whose pre-activations avoid kinks."""
    sizes, acts, loss, bias, reg, rate = CASES[name]
    rng = np.random.default_rng(seed)
    for _ in range(100):
        net = Network(sizes, acts, loss=loss, bias=bias, regularization=reg, reg_rate=rate)
        net.initialize(int(rng.integers(0, 2**31)), "normal", std=0.8)
        if bias:
            net.params[net.weight_mask == 0] = rng.normal(0.0, 0.5, int((net.weight_mask == 0).sum()))
        X = rng.normal(size=(B, sizes[0]))
        y = _targets(rng, net, B)
        if loss == "bce" and acts[-1] == "tanh":
            X *= 0.1  # keep the tanh output inside (0, 1) for the unfused bce
            net.params[net.weight_mask == 0] = np.abs(net.params[net.weight_mask == 0]) + 0.3
        net.forward(X)
        if loss == "bce" and not ((net.acts[-1].z > 0) & (net.acts[-1].z < 1)).all():
            continue
        if any(np.abs(layer.a).min() < 1e-3 for layer, a in zip(net.acts, acts) if a in KINKED):
            continue
        return net, X, y
    raise AssertionError("no kink-free draw")


def _write(tmp_path, net, X, y, name="backprop.py"):
    path = tmp_path / name
    path.write_text(numpy_script(net, X, y))
    return path


def _run(path, *args):
    return subprocess.run([sys.executable, str(path), *args], check=False, capture_output=True, text=True,
                          timeout=60)


def test_cases_cover_every_activation_loss_bias_setting_and_depth():
    acts = {a for case in CASES.values() for a in case[1]}
    assert acts == set(ACTIVATIONS)
    assert {c[2] for c in CASES.values()} == {"mse", "bce", "cross_entropy"}
    assert {c[3] for c in CASES.values()} == {True, False}
    assert {c[4] for c in CASES.values()} == {"none", "l1", "l2"}
    assert {len(c[0]) - 2 for c in CASES.values()} == {0, 1, 2, 3}


@pytest.mark.parametrize("name", sorted(CASES))
def test_script_gradients_match_the_engine(tmp_path, name):
    net, X, y = _make(name, B=11)  # the script keeps the first 8 rows
    path = _write(tmp_path, net, X, y)
    result = _run(path, "--json")
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)

    loss = net.full_backward(X[:8], y[:8])
    assert got["loss"] == pytest.approx(loss, rel=1e-10, abs=1e-12)
    assert len(got["layers"]) == net.n_layers
    for layer, q in zip(got["layers"], net.quantities()):
        np.testing.assert_allclose(np.array(layer["dW"]), q.dW, rtol=1e-10, atol=1e-10)
        if net.bias:
            np.testing.assert_allclose(np.array(layer["db"]), q.db, rtol=1e-10, atol=1e-10)
        else:
            assert layer["db"] is None

    # run without --json: the gradient check passes and says so per tensor
    check = _run(path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "PASSED" in check.stdout
    for i in range(1, net.n_layers + 1):
        assert f"dW{i} " in check.stdout
        assert (f"db{i} " in check.stdout) == net.bias
    assert "relative error" in check.stdout


@pytest.mark.parametrize("name", sorted(CASES))
def test_script_holds_the_exact_weights_and_batch(tmp_path, name):
    net, X, y = _make(name, B=11)
    ns = runpy.run_path(str(_write(tmp_path, net, X, y)))  # not __main__: defines, does not run
    for i, dense in enumerate(net.dense, start=1):
        assert np.array_equal(ns[f"W{i}"], dense.params["W"])
        assert ns[f"W{i}"].dtype == np.float64
        if net.bias:
            assert np.array_equal(ns[f"b{i}"], dense.params["b"])
        else:
            assert f"b{i}" not in ns
    assert np.array_equal(ns["X"], X[:8]) and np.array_equal(ns["y"], y[:8])
    # the script's own functions give the same forward pass as the engine
    params = [ns[k] for k in ns["PARAM_NAMES"]]
    out = ns["forward"](params, X[:8])
    np.testing.assert_allclose(out[-1], net.forward(X[:8]), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(CASES))
def test_script_imports_only_numpy_sys_json(tmp_path, name):
    net, X, y = _make(name)
    tree = ast.parse(numpy_script(net, X, y))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"numpy", "sys", "json"}
    assert "numpy" in imported
    assert not any(isinstance(n, ast.Call) and getattr(n.func, "id", "") in ("__import__", "exec", "eval")
                   for n in ast.walk(tree))


def test_script_reads_like_the_engine_matrix_form():
    net, X, y = _make("tanh_bce_l2")
    text = numpy_script(net, X, y)
    for line in ("a1 = X @ W1.T + b1", "z1 = np.tanh(a1)", "a2 = z1 @ W2.T + b2", "z2 = sigmoid(a2)",
                 "delta2 = (y_hat - y) / B", "dW2 = delta2.T @ z1", "db2 = delta2.sum(axis=0)",
                 "dz1 = delta2 @ W2", "delta1 = dz1 * (1 - z1**2)", "dW1 = delta1.T @ X",
                 "dW1 = dW1 + LAMBDA * W1", 'if __name__ == "__main__":'):
        assert line in text, line
    assert "# (B, 4) = (B, 3) @ (3, 4) + (4,)" in text  # shapes in comments
    assert "# (1, 4) = (1, B) @ (B, 4), the shape of W2" in text
    compile(text, "backprop.py", "exec")


def test_gradient_check_catches_a_wrong_derivative(tmp_path):
    net, X, y = _make("tanh_bce_l2")
    text = numpy_script(net, X, y)
    assert "delta1 = dz1 * (1 - z1**2)" in text
    path = tmp_path / "wrong.py"
    path.write_text(text.replace("delta1 = dz1 * (1 - z1**2)", "delta1 = dz1 * (1 - z1)"))
    result = _run(path)
    assert result.returncode == 1
    assert "FAILED" in result.stdout and "WRONG" in result.stdout


def test_non_default_activation_parameters_are_exported(tmp_path):
    net, X, y = _make("elu_softplus_silu_3_hidden_no_bias")
    net.acts[0].f = ELU(alpha=0.5)
    net.acts[1].f = Softplus(beta=2.0, threshold=5.0)
    text = numpy_script(net, X, y)
    assert "elu(a1, 0.5)" in text and "softplus(a2, beta=2.0, threshold=5.0)" in text
    path = tmp_path / "params.py"
    path.write_text(text)
    got = json.loads(_run(path, "--json").stdout)
    net.full_backward(X, y)
    for layer, q in zip(got["layers"], net.quantities()):
        np.testing.assert_allclose(np.array(layer["dW"]), q.dW, rtol=1e-10, atol=1e-10)

    net2, X2, y2 = _make("relu_leaky_softmax_ce")
    net2.acts[1].f = LeakyReLU(negative_slope=0.2)
    text2 = numpy_script(net2, X2, y2)
    assert "leaky_relu(a2, 0.2)" in text2 and "np.where(a2 > 0, 1.0, 0.2)" in text2


def test_literals_round_trip_and_special_values():
    for v in (0.1, 1 / 3, -2.5e-300, 5e-324, 1.7976931348623157e308, -0.0, 123456789.0):
        assert float(eval(_num(v))) == v
    assert _num(float("nan")) == "np.nan"
    assert _num(float("inf")) == "np.inf" and _num(float("-inf")) == "-np.inf"


def test_wide_layers_wrap_and_still_round_trip(tmp_path):
    net = Network([30, 12, 1], ["tanh", "identity"], loss="mse")
    net.initialize(3)
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(3, 30)), rng.normal(size=(3, 1))
    text = numpy_script(net, X, y)
    assert max(len(line) for line in text.splitlines() if line.startswith("    [")) <= 100
    ns = runpy.run_path(str(_write(tmp_path, net, X, y)))
    assert np.array_equal(ns["W1"], net.dense[0].params["W"])
    assert np.array_equal(ns["X"], X)


def test_float32_network_exports_float64_values():
    net = Network([2, 3, 1], ["tanh", "sigmoid"], loss="bce", dtype=np.float32)
    net.initialize(0)
    text = numpy_script(net, np.ones((2, 2), np.float32), np.ones((2, 1)))
    ns = {}
    exec(compile(text, "s.py", "exec"), ns)  # noqa: S102  module level only; main() is guarded
    assert np.array_equal(ns["W1"], net.dense[0].params["W"].astype(np.float64))


def test_bad_shapes_raise():
    net = Network([2, 3, 1], ["tanh", "sigmoid"], loss="bce")
    with pytest.raises(ValueError, match=r"X must have shape \(B, 2\)"):
        numpy_script(net, np.ones((4, 3)), np.ones((4, 1)))
    with pytest.raises(ValueError, match=r"y must have shape \(4, 1\)"):
        numpy_script(net, np.ones((4, 2)), np.ones((3, 1)))
    with pytest.raises(ValueError):
        numpy_script(net, np.ones((0, 2)), np.ones((0, 1)))
    # 1-D targets are accepted for a single output
    assert "y = np.array(" in numpy_script(net, np.ones((4, 2)), np.ones(4))
