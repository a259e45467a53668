"""Seeded properties of the composed diagnosis over random nets (every activation and loss)."""
import numpy as np

from app.engine.activations import ACTIVATIONS
from app.engine.checker import Batch, check_student
from app.engine.losses import LOSSES
from app.engine.network import Network

HIDDEN = [n for n, cls in ACTIVATIONS.items() if not cls.output_only]
STEP = ["no_fprime", "fprime_z", "fprime_twice", "own_W", "no_T", "wrong_derivative", "fprime_wrong_layer"]
FACTORS = {"sign": -1.0, "half": 0.5, "double": 2.0, "batch_sum": None, "batch_mean_twice": None}
PENALTY = {"penalty_double": 2.0, "penalty_half": 0.5}  # the penalty gradient's wrong factors


def random_net(rng):
    depth = int(rng.integers(2, 6))
    sizes = [int(rng.integers(1, 5)) for _ in range(depth + 1)]
    loss = str(rng.choice(list(LOSSES)))
    out = LOSSES[loss].fused_with or str(rng.choice(HIDDEN))
    if out == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    reg = str(rng.choice(["none", "none", "l2", "l1"]))
    net = Network(sizes, [str(rng.choice(HIDDEN)) for _ in range(depth - 1)] + [out], loss=loss, bias=True,
                  regularization=reg, reg_rate=0.0 if reg == "none" else 0.05)
    net.initialize(int(rng.integers(1 << 30)), "normal", 0.8)
    B = int(rng.integers(2, 6))
    X = rng.normal(size=(B, sizes[0]))
    K = sizes[-1]
    if loss == "cross_entropy":
        y = np.eye(K)[rng.integers(0, K, size=B)]
    elif loss == "bce":
        y = rng.integers(0, 2, size=(B, K)).astype(float)
    else:
        y = rng.normal(size=(B, K))
    return net, X, y


def student(b, j, step, c, pf=1.0):
    """dW/db of every layer with ``step`` made once in delta_{j+1} -> delta_j, the factor c on delta_j and
    the factor pf on dW_j's penalty gradient."""
    if step == "wrong_derivative":
        forms = b.act(j).wrong_derivatives
        d = b.through_f(j, b.delta[j] @ b.W[j], forms[len(b.a[j - 1]) % len(forms)]) if forms else None
    elif step == "fprime_wrong_layer":  # the neighbour above (else below) of equal width
        n = b.net.sizes
        other = next((o for o in (j + 1, j - 1) if 1 <= o <= b.L and n[o] == n[j] and b.fprime(o) is not None), None)
        d = None if other is None else (b.delta[j] @ b.W[j]) * b.fprime(other)
    else:
        d = b.down(j, b.delta[j], step) if step else b.delta[j - 1]
    if d is None:
        return None
    deltas = b.carry(j, c * d, None)
    layers = []
    for i in range(1, b.L + 1):
        g = b.grads(i, deltas[i]) if i in deltas else (b.dW[i - 1], b.db[i - 1])
        layers.append({"dW": g[0] + (pf - 1.0) * b.pen[i - 1] * (i == j), "db": g[1]})
    return layers


def injected(rng, b):
    """(layer j, step mistake or None, factor c, kinds) of up to two catalogued mistakes; None when unfit."""
    n = int(rng.integers(1, 3))
    j = int(rng.integers(1, b.L))  # a hidden layer: every step mistake applies there
    step = str(rng.choice(STEP)) if rng.random() < 0.7 else None
    names = list(rng.choice(list(FACTORS), size=n - (step is not None), replace=False)) if n > (step is not None) else []
    c = 1.0
    for f in names:
        c *= {"batch_sum": b.B, "batch_mean_twice": 1.0 / b.B}.get(f, FACTORS[f])
    kinds = ([step] if step else []) + names
    pf = 1.0
    if len(kinds) < 2 and np.any(b.pen[j - 1]) and rng.random() < 0.5:
        name = str(rng.choice(list(PENALTY)))
        pf, kinds = PENALTY[name], kinds + [name]
    return (j, step, c, kinds, pf) if kinds and abs(c - 1.0) > 1e-9 or step or pf != 1.0 else None


def test_a_single_local_mistake_never_reads_as_inherited_from_above():
    rng = np.random.default_rng(19)
    trials = 0
    while trials < 200:
        net, X, y = random_net(rng)
        b = Batch.of(net, X, y)
        j = int(rng.integers(1, b.L))
        layers = student(b, j, str(rng.choice(STEP)), 1.0)
        if layers is None:
            continue
        trials += 1
        r = check_student(net, X, y, layers)
        for e in r["layers"]:
            for key in ("dW", "db"):
                v = e[key]
                if e["layer"] >= j and not v["passed"]:
                    assert "comes from above" not in (v["hint"] or ""), (e["layer"], j, v["hint"])
                    assert v["kind"] not in ("inherited", "inherited_repeated")


def test_up_to_two_injected_mistakes_are_explained():
    rng = np.random.default_rng(20)
    trials = explained = exact = 0
    while trials < 500:
        net, X, y = random_net(rng)
        b = Batch.of(net, X, y)
        inj = injected(rng, b)
        layers = None if inj is None else student(b, *inj[:3], inj[4])
        if layers is None:
            continue
        trials += 1
        r = check_student(net, X, y, layers)
        first = r["first_error"]
        if first is None:  # the mistake changes nothing here (e.g. a dead relu layer)
            explained += 1
            continue
        exact += set(inj[3]) <= set(first["kinds"])
        # the injected kinds, or another explanation (every named one reproduces the numbers)
        explained += set(inj[3]) <= set(first["kinds"]) or first["kind"] not in ("unexplained", "diverged")
    rate = explained / trials
    print(f"\ncomposed diagnosis: {explained}/{trials} = {rate:.1%} explained, {exact} with the injected kinds")
    assert rate >= 0.95
