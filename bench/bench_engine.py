"""Time one training step (forward + backward + optimizer update) of the NumPy engine and, when
torch is importable, of the same network in PyTorch on the CPU.

Run by hand (pytest does not collect this file):

    python bench/bench_engine.py                 # both cases, sgd and adam
    python bench/bench_engine.py --case a --reps 30
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_engine.py   # see bench/README.md

Cases
  a  playground net 2-8-8-1 tanh, sigmoid output + bce, batch 10, float64   target torch/engine >= 5
  b  784-256-256-10 relu, softmax output + cross_entropy, batch 128, float32  target torch/engine >= 0.8

The engine step is Network.forward + Network.backward + Optimizer.step on preloaded batches
(exactly what Model.train does per step, minus sampling and history); Model.train's own per-step
cost is reported alongside. The torch step is zero_grad + forward + loss (BCEWithLogitsLoss /
CrossEntropyLoss, i.e. the same fused losses) + backward + optimizer.step + loss.item(), with the
engine's initial weights copied in and torch.set_num_threads set to numpy's BLAS thread count.
Repetitions of the two are interleaved (alternating order, with a short pause before each timed
block so that the other library's spinning worker threads are idle) and the medians compared.

Model.train against the bare step (target <= 1.3x): the playground model itself (the
default spec: 2-8-8-1 tanh, sigmoid + bce, batch 10, circle with 100 training and 100 test points,
so a full train + test evaluation every 10 steps), sgd and adam; the bare step is forward +
backward + optimizer step of the same network on one preloaded batch of 10 rows. Blocks of 400
steps alternate between the two; the ratio is taken per repetition and its median reported. These
two comparisons use the process's CPU time by default (--clock wall for wall time), so other
processes on a shared machine do not count.

Batched steps: 40 playground models (seeds 0-39) trained 100 steps each by
``batched.train_together`` (one stacked step for all) against 40 ``Model.train`` calls, per
model-step, with a check that both end with identical parameters.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from app.engine import Model  # noqa: E402
from app.engine.network import Network  # noqa: E402
from app.engine.optimizers import make_optimizer  # noqa: E402

try:
    import torch
except ImportError:  # the comparison is optional
    torch = None

CASES = {
    "a": {"title": "playground 2-8-8-1 tanh, sigmoid+bce, batch 10, float64",
          "sizes": [2, 8, 8, 1], "acts": ["tanh", "tanh", "sigmoid"], "loss": "bce",
          "batch": 10, "dtype": "float64", "target": 5.0, "steps": 400},
    "b": {"title": "784-256-256-10 relu, softmax+cross_entropy, batch 128, float32",
          "sizes": [784, 256, 256, 10], "acts": ["relu", "relu", "softmax"], "loss": "cross_entropy",
          "batch": 128, "dtype": "float32", "target": 0.8, "steps": 10},
}
LR = {"sgd": 0.05, "adam": 1e-3}
# Model.train / bare step and stacked / single are timed in this process's CPU time (--clock wall for
# wall time): on a shared machine the wall clock also counts the time other processes held the core
CLOCK = time.process_time
N_BATCHES = 8


class ForeignLoad:
    """Average number of cores busy with *other* processes between start() and stop() (Linux only):
    machine busy time from /proc/stat minus this process's own CPU time, over wall time."""

    def _read(self):
        try:
            with open("/proc/stat") as f:
                vals = [int(v) for v in f.readline().split()[1:]]
        except OSError:
            return None
        hz = os.sysconf("SC_CLK_TCK")
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        t = os.times()
        return (sum(vals) - idle) / hz, t.user + t.system, time.perf_counter()

    def start(self):
        self.s = self._read()
        return self

    def stop(self) -> float:
        e = self._read()
        if self.s is None or e is None:
            return float("nan")
        busy, own, wall = (e[i] - self.s[i] for i in range(3))
        return max(0.0, (busy - own) / wall)


def blas_info() -> tuple[int, list[str]]:
    """numpy's BLAS thread count and a description of every thread pool (threadpoolctl if present)."""
    lines = [f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '<unset>')} "
             f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '<unset>')} "
             f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '<unset>')}"]
    threads = os.cpu_count() or 1
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        lines.append("threadpoolctl not installed (pip install threadpoolctl for BLAS details)")
        return threads, lines
    for pool in threadpool_info():
        lines.append("  " + ", ".join(f"{k}={pool.get(k)}" for k in
                                      ("user_api", "internal_api", "prefix", "version", "architecture",
                                       "threading_layer", "num_threads") if pool.get(k) is not None))
        if pool.get("user_api") == "blas" and "numpy" in pool.get("filepath", ""):
            threads = pool["num_threads"]
    return threads, lines


def make_data(case: dict, seed: int = 0):
    """N_BATCHES preloaded (X, y one-hot or 0/1) batches in the case's dtype."""
    rng = np.random.default_rng(seed)
    p, K, B, dt = case["sizes"][0], case["sizes"][-1], case["batch"], np.dtype(case["dtype"])
    batches = []
    for _ in range(N_BATCHES):
        X = rng.normal(size=(B, p)).astype(dt)
        if case["loss"] == "bce":
            y = (X[:, :1] * X[:, 1:2] > 0).astype(dt)  # xor-like labels
        else:
            y = np.eye(K, dtype=dt)[rng.integers(0, K, B)]
        batches.append((X, y))
    return batches


def engine_setup(case: dict, opt_name: str, batches):
    net = Network(case["sizes"], case["acts"], loss=case["loss"], dtype=case["dtype"])
    net.initialize(0, "he" if case["acts"][0] == "relu" else "xavier")
    opt = make_optimizer(net.params.size, net.dtype, opt_name, learning_rate=LR[opt_name])
    state = {"i": 0}

    def step():
        X, y = batches[state["i"]]
        state["i"] = (state["i"] + 1) % N_BATCHES
        net.forward(X)
        net.backward(y)
        opt.step(net.params, net.grads)

    return net, opt, step


def torch_setup(case: dict, opt_name: str, batches, net: Network):
    dt = torch.float64 if case["dtype"] == "float64" else torch.float32
    layers = []
    for i, d in enumerate(net.dense):
        lin = torch.nn.Linear(d.n_in, d.n_out, dtype=dt)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(d.params["W"].copy()))
            lin.bias.copy_(torch.from_numpy(d.params["b"].copy()))
        layers.append(lin)
        act = case["acts"][i]
        if i < len(net.dense) - 1:
            layers.append({"tanh": torch.nn.Tanh(), "relu": torch.nn.ReLU()}[act])
    model = torch.nn.Sequential(*layers)  # output activation fused into the loss below
    if case["loss"] == "bce":
        loss_fn = torch.nn.BCEWithLogitsLoss()
        tb = [(torch.from_numpy(X), torch.from_numpy(y)) for X, y in batches]
    else:
        loss_fn = torch.nn.CrossEntropyLoss()
        tb = [(torch.from_numpy(X), torch.from_numpy(y.argmax(1))) for X, y in batches]
    opt_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[opt_name]
    opt = opt_cls(model.parameters(), lr=LR[opt_name])
    state = {"i": 0}

    def step():
        X, y = tb[state["i"]]
        state["i"] = (state["i"] + 1) % N_BATCHES
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()
        return loss.item()

    return model, step


def agreement(case: dict, opt_name: str, batches) -> float:
    """Max |engine - torch| over all parameters after 3 identical steps (the same network check)."""
    net, _, estep = engine_setup(case, opt_name, batches)
    model, tstep = torch_setup(case, opt_name, batches, net)
    for _ in range(3):
        estep()
        tstep()
    flat = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
    return float(np.abs(flat - net.params).max())


def timed(step, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def bench_pair(case: dict, opt_name: str, reps: int, gap: float) -> dict:
    batches = make_data(case)
    net, _, estep = engine_setup(case, opt_name, batches)
    out = {"engine": [], "torch": []}
    fns = {"engine": estep}
    if torch is not None:
        _, tstep = torch_setup(case, opt_name, batches, net)
        fns["torch"] = tstep
    n = case["steps"]
    for f in fns.values():  # warm-up
        timed(f, n)
    for r in range(reps):
        order = list(fns) if r % 2 == 0 else list(fns)[::-1]
        for name in order:
            # let the other library's spinning worker threads (OpenMP, OpenBLAS) go idle first:
            # without the pause the block right after the other library runs up to 2x slower
            time.sleep(gap)
            out[name].append(timed(fns[name], n))
    res = {k: statistics.median(v) for k, v in out.items() if v}
    # Model.train per step on the same preloaded batches (adds sampling, history, periodic eval)
    m = model_for(case, opt_name, batches)
    m.train(n)
    res["model_train"] = statistics.median(_model_train_times(m, n, max(3, reps // 3)))
    return res


def _model_train_times(m: Model, n: int, reps: int):
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        m.train(n)
        out.append((time.perf_counter() - t0) / n)
    return out


def model_for(case: dict, opt_name: str, batches) -> Model:
    X = np.concatenate([b[0] for b in batches]).astype(np.float64)
    y = np.concatenate([b[1] for b in batches]).astype(np.float64)
    layers = [{"units": u, "activation": a} for u, a in zip(case["sizes"][1:], case["acts"])]
    return Model({"layers": layers, "loss": case["loss"], "dtype": case["dtype"],
                  "init": "he" if case["acts"][0] == "relu" else "xavier",
                  "optimizer": {"name": opt_name, "learning_rate": LR[opt_name]},
                  "batch_size": case["batch"], "data": {"X": X.tolist(), "y": y.tolist()}})


def train_vs_bare(opt_name: str, reps: int, steps: int = 400) -> dict:
    """Model.train per step on the playground model against its bare step; ratios per repetition."""
    m = Model({"optimizer": {"name": opt_name}})
    bare_model = Model({"optimizer": {"name": opt_name}})
    net, opt = bare_model.net, bare_model.optimizer
    X, y = bare_model.X_train[:10].copy(), bare_model.y_train_t[:10].copy()

    def bare():
        for _ in range(steps):
            net.forward(X)
            net.backward(y)
            opt.step(net.params, net.grads)

    m.train(steps)
    bare()
    ratios, b_times, t_times = [], [], []
    for r in range(reps):
        pair = {}
        for name in (("bare", "train") if r % 2 == 0 else ("train", "bare")):
            t0 = CLOCK()
            bare() if name == "bare" else m.train(steps)
            pair[name] = (CLOCK() - t0) / steps
        ratios.append(pair["train"] / pair["bare"])
        b_times.append(pair["bare"])
        t_times.append(pair["train"])
    return {"bare": statistics.median(b_times), "train": statistics.median(t_times),
            "ratio": statistics.median(ratios), "best": min(ratios)}


def batched_vs_single(opt_name: str, reps: int, k: int = 40, steps: int = 100) -> dict:
    """k playground models (seeds 0..k-1) trained together in stacked steps against one by one."""
    from app.engine.batched import train_together

    single = [Model({"seed": i, "optimizer": {"name": opt_name}}) for i in range(k)]
    stacked = [Model({"seed": i, "optimizer": {"name": opt_name}}) for i in range(k)]
    times = {"single": [], "stacked": []}
    for r in range(reps):
        for name in (("single", "stacked") if r % 2 == 0 else ("stacked", "single")):
            t0 = CLOCK()
            if name == "single":
                for m in single:
                    m.train(steps)
            else:
                train_together(stacked, steps)
            times[name].append((CLOCK() - t0) / (k * steps))
    same = all(np.array_equal(a.net.params, b.net.params) for a, b in zip(single, stacked))
    return {"single": statistics.median(times["single"]), "stacked": statistics.median(times["stacked"]),
            "identical": same}


def profile_engine(case: dict, opt_name: str, reps: int) -> dict:
    """Median time of each phase of one engine step."""
    batches = make_data(case)
    net, opt, _ = engine_setup(case, opt_name, batches)
    X, y = batches[0]
    phases = {"forward": lambda: net.forward(X), "backward": lambda: net.backward(y),
              "optimizer": lambda: opt.step(net.params, net.grads),
              "grad_norms": net.weight_grad_norms}
    net.forward(X)
    net.backward(y)
    times = {k: [] for k in phases}
    n = case["steps"]
    for _ in range(reps):
        for k, f in phases.items():
            if k == "backward":
                net.forward(X)
            times[k].append(timed(f, n))
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=["a", "b", "all"], default="all")
    ap.add_argument("--opt", choices=["sgd", "adam", "all"], default="all")
    ap.add_argument("--reps", type=int, default=21, help="interleaved repetitions per implementation")
    ap.add_argument("--profile", action="store_true", help="also time the engine's phases separately")
    ap.add_argument("--gap", type=float, default=0.05,
                    help="seconds of pause before each timed block (spinning thread pools go idle)")
    ap.add_argument("--threads", type=int, default=None,
                    help="limit numpy's BLAS (needs threadpoolctl) and torch to this many threads")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="clock for the Model.train and stacked comparisons (default: this process's CPU time)")
    args = ap.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter

    if args.threads is not None:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            ap.error("--threads needs threadpoolctl (or set OPENBLAS_NUM_THREADS in the environment)")
        threadpool_limits(limits=args.threads, user_api="blas")
    threads, lines = blas_info()
    print(f"date {datetime.date.today()}  {platform.platform()}  python {platform.python_version()}  "
          f"cpus {os.cpu_count()}  numpy {np.__version__}  torch {torch.__version__ if torch else 'not installed'}")
    print("\n".join(lines))
    print(f"load average at start {os.getloadavg()[0]:.2f} (other processes on the machine skew timings)")
    if torch is not None:
        torch.set_num_threads(threads)
        print(f"torch.set_num_threads({threads}) to match numpy's BLAS threads; "
              f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}")
    cases = ["a", "b"] if args.case == "all" else [args.case]
    opts = ["sgd", "adam"] if args.opt == "all" else [args.opt]
    print()
    hdr = f"{'case':4} {'opt':5} {'engine us/step':>15} {'torch us/step':>14} {'torch/engine':>13} {'target':>7} " \
          f"{'Model.train us/step':>20} {'max|dparam| 3 steps':>20} {'other load':>10}"
    print(hdr)
    print("-" * len(hdr))
    print("(other load: cores used by other processes during the row; above ~0.3 the row is skewed)")
    for c in cases:
        case = CASES[c]
        for o in opts:
            load = ForeignLoad().start()
            r = bench_pair(case, o, args.reps, args.gap)
            other = load.stop()
            e, t = r["engine"], r.get("torch")
            ratio = t / e if t else None
            agree = agreement(case, o, make_data(case)) if torch is not None else None
            ok = "" if ratio is None else ("ok" if ratio >= case["target"] else "MISSED")
            print(f"{c:4} {o:5} {e * 1e6:15.1f} {t * 1e6 if t else float('nan'):14.1f} "
                  f"{ratio if ratio else float('nan'):13.2f} {'>=' + str(case['target']):>7} "
                  f"{r['model_train'] * 1e6:20.1f} {agree if agree is not None else float('nan'):20.2e} "
                  f"{other:10.2f} {ok}",
                  flush=True)
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    print("\nModel.train / bare step, playground model (default spec), 400-step blocks interleaved:")
    for o in opts:
        load = ForeignLoad().start()
        r = train_vs_bare(o, max(21, args.reps))
        other = load.stop()
        print(f"  {o:5} bare {r['bare'] * 1e6:6.1f} us  Model.train {r['train'] * 1e6:6.1f} us  "
              f"ratio {r['ratio']:.2f} (best {r['best']:.2f})  target <= 1.3  other load {other:.2f}  "
              f"{'ok' if r['ratio'] <= 1.3 else 'MISSED'}", flush=True)
    print("\n40 playground models in stacked steps (app/engine/batched.py) against 40 single Model.train calls:")
    for o in opts:
        r = batched_vs_single(o, max(5, args.reps // 4))
        print(f"  {o:5} single {r['single'] * 1e6:6.1f} us/model-step  stacked {r['stacked'] * 1e6:6.1f} us/model-step  "
              f"speed-up {r['single'] / r['stacked']:.2f}x  target >= 10  bit-identical {r['identical']}", flush=True)
    if args.profile:
        print("\nengine phases, us per call (median):")
        for c in cases:
            for o in opts:
                p = profile_engine(CASES[c], o, max(5, args.reps // 2))
                print(f"  {c} {o:5} " + "  ".join(f"{k} {v * 1e6:.1f}" for k, v in p.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
