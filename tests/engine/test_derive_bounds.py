"""derive is bounded: each value is sized from the shapes for the whole batch before it is made (larger
than any step needs: the student's mistake, in the result; past the call's bytes: DeriveOverBudget), its
work is charged to a CPU budget (the repair search has as much again, then stops with a note), a
cancelled derive stops at once, and in columns every equation runs once over the whole batch."""
import re
import tracemalloc

import numpy as np
import pytest

from app.config import Settings
from app.engine.bounds import STEP_COST, Bounds, Cancelled
from app.engine.derive import (CORRECT_EQUATIONS, SEARCH_STOPPED, DeriveOverBudget, DeriveSyntaxError, derive,
                               parse)
from app.engine.network import Network

CHAIN = "(" + " @ ".join(["W[2]"] * 16) + ")"  # 111 characters: 15 products of W_2 with itself
DEFAULT_COST = Settings.model_fields["derive_max_cost"].default


def net(sizes: list[int], seed: int = 0) -> Network:
    n = Network(sizes, ["tanh"] * (len(sizes) - 2) + ["sigmoid"], loss="mse")
    n.initialize(seed)
    return n


def batch(n: Network, B: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, n.sizes[0])), (rng.random((B, n.sizes[-1])) < 0.5).astype(float)


def traced(fn):
    """(fn's result or the exception it raised, the peak bytes traced meanwhile)."""
    tracemalloc.start()
    try:
        out = fn()
    except Exception as e:  # returned, so the test can look at it
        out = e
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, peak


def test_the_chain_is_exactly_111_characters():
    assert len(CHAIN) == 111


def test_outer_of_a_wide_layer_with_itself_over_256_samples_is_refused_before_it_is_made():
    n = net([2, 1024, 1])
    r, peak = traced(lambda: derive(n, *batch(n, 256), [{"target": "delta[L]", "expr": "outer(z[1], z[1])"}],
                                    "columns"))
    assert r["first_error"]["message"] == (
        "layer 2, delta[2] = outer(z[1], z[1]): outer(z[1], z[1]) would have 268435456 entries (256 samples of "
        "(1024, 1024)), more than any step of this backward pass needs (2097152)")
    assert peak < 256 * 1024 * 1024 * 8 / 50  # the would-be value is 2 GiB


def test_a_value_without_a_batch_axis_is_never_broadcast_over_the_batch():
    """delta[i] = W[2] on 2-512-512-1 keeps one (512, 512) per layer, not 256 copies of it (0.5 GiB)."""
    n = net([2, 512, 512, 1])
    X, y = batch(n, 256)
    _, checker = traced(lambda: derive(n, X, y, CORRECT_EQUATIONS["columns"], "columns"))  # the truth's own
    eqs = [{"target": "delta[i]", "expr": "W[2]"}, {"target": "dW[i]", "expr": "delta[i] * 2"}]
    r, peak = traced(lambda: derive(n, X, y, eqs, "columns"))
    steps = {s["target"]: s for layer in r["layers"] for s in layer["steps"]}
    for i, width in ((3, 1), (2, 512), (1, 512)):
        assert steps[f"delta[{i}]"]["shape"] == [512, 512]
        assert steps[f"delta[{i}]"]["error"] == f"delta[{i}] has shape (512, 512); dL/da_{i} is ({width}, 1)"
        assert steps[f"dW[{i}]"]["shape"] == [512, 512]
    # the diagnosis holds a few (512, 512) values per explanation it tries; 256 copies would be 0.5 GiB
    assert peak < checker + 256 * 512 * 512 * 8 / 10
    # combined with a value of every sample, it would be made for each: refused from its shape
    eqs = [{"target": "delta[L]", "expr": "W[2] * y"}]
    r, peak = traced(lambda: derive(n, X, y, eqs, "columns"))
    assert r["first_error"]["message"] == (
        "layer 3, delta[3] = W[2] * y: W[2] * y would have 67108864 entries (256 samples of (512, 512)), "
        "more than any step of this backward pass needs (2097152)")
    assert peak < checker + 256 * 512 * 512 * 8 / 20


@pytest.mark.parametrize("convention", ["rows", "columns"])
def test_the_111_character_chain_is_stopped_by_the_cpu_budget(convention):
    """2-1024-1024-1: each product is 1024^3 multiply-adds; the second takes the call past 2e9."""
    n = net([2, 1024, 1024, 1])
    eqs = [{"target": "delta[L]", "expr": "y_hat - y"}, {"target": "delta[i]", "expr": CHAIN}]
    e, peak = traced(lambda: derive(n, *batch(n, 32), eqs, convention))
    assert isinstance(e, DeriveOverBudget) and (e.index, e.layer, e.resource) == (1, 2, "cost")
    # delta[3]: y_hat, y and their difference (32 entries), 3 steps; then W[2], W[2], a product, W[2], a product
    needed = 8 * STEP_COST + 32 + 2 * 1024 ** 3
    assert str(e) == (f"layer 2, delta[2] = {CHAIN}: W[2] @ W[2] @ W[2] would take this derivation to {needed} "
                      f"operations (multiply-adds and entries); the limit is {DEFAULT_COST}")
    assert peak < 64 * 2 ** 20


def test_values_held_at_once_past_the_bytes_bound_are_refused_before_they_are_made():
    """Each z[1] * 2 is (256, 1024), 2 MiB; the nested sum holds one per level until the innermost is made."""
    n = net([2, 1024, 1])
    nested = "(z[1] * 2) + ((z[1] * 2) + ((z[1] * 2) + (z[1] * 2)))"
    eqs = [{"target": "delta[L]", "expr": "(y_hat - y) / B"}, {"target": "delta[i]", "expr": nested}]
    bounds = Bounds(32, 400, 5_000_000, DEFAULT_COST)
    with pytest.raises(DeriveOverBudget) as e:
        derive(n, *batch(n, 256), eqs, "rows", bounds)
    held = 256 * 8  # delta[2], kept for the layers below
    assert str(e.value) == (f"layer 1, delta[1] = {nested}: z[1] * 2 would take this derivation to "
                            f"{held + 3 * 256 * 1024 * 8} bytes of values at once; the limit is 5000000")
    assert (e.value.index, e.value.resource) == (1, "bytes")
    r = derive(n, *batch(n, 256), eqs, "rows")  # within the default bytes: evaluated, and a verdict
    assert [s["shape"] for s in r["layers"][0]["steps"]] == [[256, 1024]]


def test_many_equations_share_one_budget():
    """One named chain per layer of a 12-layer net: each fits, together they do not; the refusal names the
    equation where the budget runs out, after the layers above were evaluated."""
    n = net([2] + [128] * 11 + [1])
    chain = "delta[{above}] @ W[{above}]" + " @ W[2]" * 12
    eqs = [{"target": "delta[L]", "expr": "(y_hat - y) / B * fprime(a[L])"}]
    eqs += [{"target": f"delta[{j}]", "expr": chain.format(above=j + 1)} for j in range(11, 1, -1)]
    per_layer = 12 * 32 * 128 * 128  # multiply-adds of one chain on 32 rows
    bounds = Bounds(32, 400, 1 << 30, 5 * per_layer)
    with pytest.raises(DeriveOverBudget) as e:
        derive(n, *batch(n, 32), eqs, "rows", bounds)
    assert e.value.resource == "cost" and 2 <= e.value.index <= 6 and e.value.layer == 12 - e.value.index
    r = derive(n, *batch(n, 32), eqs, "rows", Bounds(32, 400, 1 << 30, 20 * per_layer))  # each alone would fit
    assert [s["shape"] for layer in r["layers"][1:11] for s in layer["steps"]] == [[32, 128]] * 10


def test_a_repair_search_stops_at_its_own_budget_with_a_note():
    """A chain that fits but gives a wrong delta: each try of the search costs as much as the chain itself,
    so the search (as many operations as the derivation) stops after a few tries, and says so."""
    n = net([2, 128, 128, 1])
    chain = "delta[i+1] @ W[i+1]" + " @ W[2]" * 14
    eqs = [{"target": "delta[L]", "expr": "(y_hat - y) / B * fprime(a[L])"}, {"target": "delta[i]", "expr": chain}]
    r = derive(n, *batch(n, 32), eqs, "rows", Bounds(32, 400, 1 << 30, 50_000_000))
    steps = {s["target"]: s["error"] for layer in r["layers"] for s in layer["steps"]}
    assert re.fullmatch(r"delta\[2\] differs from dL/da_2 \(relative error [\d.e+-]+\); " + re.escape(SEARCH_STOPPED),
                        steps["delta[2]"])
    assert steps["delta[1]"].endswith(SEARCH_STOPPED)
    assert r["passed"] is False


def test_a_cancelled_derive_stops_at_once():
    n = net([2, 64, 64, 1])
    calls = []

    def cancelled() -> bool:  # asked at every step: the client leaves after 40
        calls.append(1)
        return len(calls) > 40

    with pytest.raises(Cancelled):
        derive(n, *batch(n, 32), CORRECT_EQUATIONS["rows"] * 3, "rows", cancelled=cancelled)
    assert len(calls) == 41  # nothing more was asked, or done, once it said so


def test_columns_evaluate_each_equation_once_over_the_whole_batch():
    """The steps a derivation takes do not grow with the batch: one evaluation per equation and layer."""
    n = net([2, 1024, 1])

    def steps(B: int) -> int:
        calls = []
        r = derive(n, *batch(n, B), CORRECT_EQUATIONS["columns"], "columns",
                   cancelled=lambda: calls.append(1) or False)
        assert r["passed"], r["first_error"]
        return len(calls)

    assert steps(256) == steps(2)


def test_columns_gradients_are_averaged_without_a_stack_of_per_sample_matrices():
    """dW = delta @ z.T averaged over 256 samples on 1024-1024 is one (1024, 1024), not 256 of them (2 GiB)."""
    n = net([2, 1024, 1024, 1])
    r, peak = traced(lambda: derive(n, *batch(n, 256), CORRECT_EQUATIONS["columns"], "columns"))
    assert r["passed"], r["first_error"]
    assert peak < 256 * 1024 * 1024 * 8 / 10
    outer = [e if e["target"] != "dW[i]" else {"target": "dW[i]", "expr": "2 * outer(delta[i], z[i-1]) / 2"}
             for e in CORRECT_EQUATIONS["columns"]]
    r, peak = traced(lambda: derive(n, *batch(n, 256), outer, "columns"))
    assert r["passed"], r["first_error"]
    assert peak < 256 * 1024 * 1024 * 8 / 10


def test_the_equation_limits_are_the_bounds_given():
    small = Bounds(2, 10, 1 << 20, 1 << 20)
    eqs = [{"target": "delta[L]", "expr": "y_hat - y"}, {"target": "dW[i]", "expr": "delta[i].T @ z[i-1]"}]
    with pytest.raises(DeriveSyntaxError, match="at most 2 equations"):
        parse(eqs + eqs[:1], small)
    with pytest.raises(DeriveSyntaxError) as e:
        parse(eqs, small)
    assert (e.value.index, e.value.position, e.value.message) == (1, 10, "an expression has at most 10 characters")
    assert len(parse(eqs * 16)) == 32  # the default: the setting's
    with pytest.raises(DeriveSyntaxError, match="at most 32 equations"):
        parse(eqs * 16 + eqs[:1])
    assert Bounds.default() == Bounds.of(Settings(_env_file=None))
