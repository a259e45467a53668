"""The `playground` command, run as `python -m app.cli` in a subprocess: train here and on a live server,
export (the NumPy script runs and passes its own check), check an .npz of gradients, serve."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.cli import main
from app.client import PlaygroundClient
from app.engine import Model

from ..api.test_live_server import free_port
from .conftest import SPEC

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def spec_file(tmp_path) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    return path


def test_the_console_script_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"playground": "app.cli:main"}
    from app.cli import main
    assert callable(main)
    r = cli("--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: playground")
    for command in ("serve", "train", "export", "check", "derive"):
        assert command in r.stdout


def test_train_in_process(spec_file):
    r = cli("train", str(spec_file), "--steps", "130", "--chunk", "50")
    assert r.returncode == 0, r.stderr
    ref = Model(SPEC).train(130)
    assert r.stdout == f"step 130  train loss {ref.train_loss:.6g}  test loss {ref.test_loss:.6g}\n"
    assert "130/130" in r.stderr  # the progress bar


def test_train_in_process_refuses_a_bad_spec(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"layers": [{"units": 2, "activation": "softmax"}, {"units": 1}]}))
    r = cli("train", str(bad), "--steps", "5", "--quiet")
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == "error: invalid spec: layers.0.activation: softmax is allowed on the output layer only\n"
    r = cli("train", str(tmp_path / "missing.json"), "--steps", "5")
    assert r.returncode == 2 and r.stderr.startswith("error: cannot read the spec")


def test_train_against_a_live_server(spec_file, server):
    r = cli("train", str(spec_file), "--steps", "45", "--chunk", "20", "--server", server.url)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    ref = Model(SPEC).train(45)
    assert lines[0] == f"step 45  train loss {ref.train_loss:.6g}  test loss {ref.test_loss:.6g}"
    assert lines[1].startswith("model id ") and lines[2].startswith("token ")
    mid, token = lines[1].split()[2], lines[2].split()[1]
    assert "45/45" in r.stderr
    with PlaygroundClient(server.url, trust_env=False) as pg:
        assert pg.get_model(mid)["step"] == 45
        pg.set_token(mid, token)  # the printed token owns the model
        assert pg.train(mid, 5)["step"] == 50

    r = cli("train", str(spec_file), "--steps", "5", "--server", "http://127.0.0.1:9")
    assert r.returncode == 2 and r.stderr.startswith("error: cannot reach the server")


@pytest.fixture
def trained(server) -> str:
    with PlaygroundClient(server.url, trust_env=False) as pg:
        mid = pg.create_model(SPEC)["id"]
        pg.train(mid, 40)
    return mid


def test_export_numpy_json_npz(server, trained, tmp_path):
    script = tmp_path / "model.py"
    r = cli("export", trained, "--format", "numpy", "--server", server.url, "-o", str(script))
    assert r.returncode == 0, r.stderr
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "PASSED" in run.stdout

    r = cli("export", trained, "--format", "json", "--server", server.url)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["meta"]["step"] == 40

    r = cli("export", trained, "--format", "npz", "--server", server.url, "-o", str(tmp_path / "m.npz"))
    assert r.returncode == 0, r.stderr
    with PlaygroundClient(server.url, trust_env=False) as pg:
        assert pg.import_model((tmp_path / "m.npz").read_bytes())["step"] == 40
        assert pg.import_model(doc)["step"] == 40

    r = cli("export", "nosuchmodel", "--server", server.url)
    assert (r.returncode, r.stderr) == (2, "error: the server answered 404: model nosuchmodel not found\n")


def _gradients_npz(server, mid: str, path: Path, transpose_first: bool = False, **keys) -> None:
    with PlaygroundClient(server.url, trust_env=False) as pg:
        d = pg.data(mid)
        X, y = d["train"]["X"][:5], d["train"]["y"][:5]
        g = pg.gradients(mid, X, y)
    grads = {f"{k}{i}": layer[k] for i, layer in enumerate(g["layers"], start=1) for k in ("dW", "db")}
    if transpose_first:
        grads["dW1"] = grads["dW1"].T
    np.savez(path, **{keys.get("X", "X"): X, keys.get("y", "y"): y}, **grads)


def test_check_passes_with_correct_gradients(server, trained, tmp_path):
    path = tmp_path / "mine.npz"
    _gradients_npz(server, trained, path)
    r = cli("check", trained, str(path), "--server", server.url)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert [line.split()[:4] for line in lines[:4]] == [["layer", "1", "dW1", "ok"], ["layer", "1", "db1", "ok"],
                                                        ["layer", "2", "dW2", "ok"], ["layer", "2", "db2", "ok"]]
    assert lines[-1] == "PASSED: every gradient matches backprop"

    renamed = tmp_path / "renamed.npz"
    _gradients_npz(server, trained, renamed, X="inputs", y="targets")
    r = cli("check", trained, str(renamed), "--server", server.url, "--X-key", "inputs", "--y-key", "targets")
    assert r.returncode == 0, r.stdout + r.stderr
    only_x = tmp_path / "only_x.npz"
    np.savez(only_x, X=np.zeros((1, 2)), dW1=np.zeros((5, 2)))
    r = cli("check", trained, str(only_x), "--server", server.url)
    assert (r.returncode, r.stderr) == (2, f"error: {only_x} has no y (it has X, dW1); give both X and y, or neither "
                                           "for the server's default batch\n")


def test_check_fails_with_transposed_gradients_and_prints_the_hint(server, trained, tmp_path):
    path = tmp_path / "mine.npz"
    _gradients_npz(server, trained, path, transpose_first=True)
    r = cli("check", trained, str(path), "--server", server.url)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["layer", "1", "dW1", "WRONG"] and "shape [2, 5] (expected [5, 2])" in lines[0]
    assert lines[1].startswith("    hint: transposed: you gave dW_1^T, shape (2, 5)")
    assert lines[-1] == "FAILED"

    zero_based = tmp_path / "zero.npz"
    np.savez(zero_based, X=np.zeros((1, 2)), y=np.zeros((1, 1)), dW0=np.zeros((5, 2)))
    r = cli("check", trained, str(zero_based), "--server", server.url)
    assert (r.returncode, r.stderr) == (2, "error: dW0: layers are numbered from 1 (dW1 is the first layer's gradient)\n")


def test_check_takes_any_shape_without_a_batch(server, trained, tmp_path):
    """dW2 flat, db1 per sample, no X and y (the server's default batch): verdicts with shape hints, exit 1."""
    with PlaygroundClient(server.url, trust_env=False) as pg:
        g = pg.gradients(trained)
    path = tmp_path / "shapes.npz"
    np.savez(path, dW1=g["layers"][0]["dW"], db1=g["layers"][0]["delta"], dW2=g["layers"][1]["dW"].ravel())
    r = cli("check", trained, str(path), "--server", server.url)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["layer", "1", "dW1", "ok"]
    assert lines[1].split()[:4] == ["layer", "1", "db1", "WRONG"] and "shape [20, 5] (expected [5])" in lines[1]
    assert lines[2].startswith("    hint: ") and "per sample" in lines[2]
    assert lines[3].split()[:4] == ["layer", "2", "dW2", "WRONG"] and "shape [5] (expected [1, 5])" in lines[3]
    assert lines[4].startswith("    hint: ") and "(1, 5)" in lines[4]
    assert lines[-2].startswith("first error: layer 2 dW[2]: wrong shape (5,)") and lines[-1] == "FAILED"

    as_json = tmp_path / "mine.json"
    as_json.write_text(json.dumps({"layers": [{"dW": g["layers"][0]["dW"].tolist()}, {"dW": g["layers"][1]["dW"].tolist()}]}))
    r = cli("check", trained, str(as_json), "--server", server.url)
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "PASSED: every gradient matches backprop", r.stdout


def test_derive_from_a_text_file(server, trained, tmp_path):
    with PlaygroundClient(server.url, trust_env=False) as pg:
        examples = pg.derive_examples(trained)  # for its loss: bce + sigmoid, delta_L = y_hat - y
        deep = pg.create_model({**SPEC, "layers": [{"units": 5, "activation": "tanh"}] * 2 + SPEC["layers"][-1:]})["id"]
    right = tmp_path / "right.txt"
    right.write_text("# the backward pass, one sample as a column\n" +
                     "".join(f"{e['target']} = {e['expr']}\n" for e in examples["correct"]["columns"]))
    r = cli("derive", trained, str(right), "--server", server.url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == "PASSED: your equations give backprop's gradients"

    question = tmp_path / "question.json"
    question.write_text(json.dumps(examples["question"]["columns"]))
    r = cli("derive", deep, str(question), "--server", server.url)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == "FAILED" and "first error: layer 1" in r.stdout
    # one hidden layer: delta[L] and delta[L-1] give every delta, the faulty delta[i] is named as not used
    r = cli("derive", trained, str(question), "--server", server.url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not used: delta[i] = " in r.stdout and "on nets with 2 or more hidden layers" in r.stdout

    bad = tmp_path / "bad.txt"
    bad.write_text("dW[i] = delta[i] @ z[i-1].T\ndelta[i] (W[i+1].T @ delta[i+1])\n")
    r = cli("derive", trained, str(bad), "--server", server.url)
    assert (r.returncode, r.stderr) == (2, f"error: {bad}, line 2: expected 'target = expression', "
                                           "e.g. 'dW[i] = delta[i] @ z[i-1].T'\n")
    unsafe = tmp_path / "unsafe.txt"
    unsafe.write_text("dW[i] = __import__('os')\n")
    r = cli("derive", trained, str(unsafe), "--server", server.url, "--convention", "rows")
    assert r.returncode == 2 and r.stderr.startswith("error: the server answered 422: equations.0.expr: position ")


def test_serve_starts_answers_and_stops(tmp_path):
    port, db = free_port(), tmp_path / "served.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--store",
                             f"sqlite:///{db}", "--log-level", "warning"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, health = time.monotonic() + 30, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1, trust_env=False)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert health is not None and health.json() == {"status": "ok"}, proc.poll()
        with PlaygroundClient(f"http://127.0.0.1:{port}", trust_env=False) as pg:
            assert pg.create_model(SPEC)["step"] == 0
        assert db.exists()  # --store was used
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert proc.returncode in (0, -signal.SIGTERM), out  # recent uvicorn re-raises SIGTERM after a clean shutdown
    assert "Traceback" not in out


def test_serve_refuses_several_workers_on_the_memory_store(capsys):
    assert main(["serve", "--store", "memory://", "--workers", "2"]) == 2
    assert capsys.readouterr().err == ("error: --workers 2: the memory store lives in one process, which other "
                                       "workers cannot see; use --workers 1, or a sqlite:/// or redis:// store\n")


def test_the_worker_count_is_one_per_usable_cpu_and_one_on_the_memory_store():
    from app.server import worker_count

    assert worker_count("sqlite:///x.sqlite3", None) == len(os.sched_getaffinity(0))
    assert worker_count("redis://127.0.0.1:6379/0", 3) == 3
    assert worker_count("memory://", None) == 1
    assert worker_count("memory://", 1) == 1
