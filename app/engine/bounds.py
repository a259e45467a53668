"""The bounds of one evaluation of a student's work (their equations, or any interpreter of their code).

Three things bound it, checked before each value is made, from the shapes alone:
- bytes: the values alive at once, plus what the evaluation keeps (``held``), stay within ``max_bytes``;
- cost: the work done, in multiply-adds (a matrix product) or entries (anything elementwise), plus
  ``STEP_COST`` per interpreted step (one node of an expression, one loop iteration), stays within
  ``max_cost``: the CPU budget, counted the same on a busy server as on an idle one;
- ``cancelled()``: true once nobody waits for the answer (the client left); checked at every step.

Over a bound, ``OverBudget`` is raised before the value is made; ``Cancelled`` when cancelled. The
defaults are set here, once; the server's settings (app/config.py, PLAYGROUND_DERIVE_*) start from them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

ITEM = 8  # bytes per value (float64)
# One interpreted step (an expression node: its dispatch, its checks, its bookkeeping) takes a few
# microseconds of Python, as long as BLAS takes for about this many multiply-adds, so a long expression
# on tiny arrays, evaluated again and again by a repair search, is bounded too.
STEP_COST = 50_000


class OverBudget(Exception):
    """``resource`` ("bytes" or "cost") would reach ``needed``, past ``limit``, making ``what``."""

    def __init__(self, resource: str, needed: int, limit: int, what: str | Callable[[], str]):
        what = what() if callable(what) else what
        unit = "bytes" if resource == "bytes" else "operations"
        super().__init__(f"{what} would take the evaluation to {needed} {unit}; the limit is {limit}")
        self.resource, self.needed, self.limit, self.what = resource, needed, limit, what


class Cancelled(Exception):
    """Nobody waits for the answer any more; the evaluation stopped."""


@dataclass(frozen=True)
class Bounds:
    """The bounds of one /derive call: its equations' count and length, its bytes and its CPU."""

    max_equations: int
    max_expr_chars: int
    max_bytes: int
    max_cost: int

    @classmethod
    def of(cls, settings) -> Bounds:
        """From the server's settings (a Settings, or anything with its derive_* attributes)."""
        return cls(settings.derive_max_equations, settings.derive_max_expr_length, settings.derive_max_bytes,
                   settings.derive_max_cost)

    @classmethod
    def default(cls) -> Bounds:
        """The defaults (not the environment's): for callers without a server."""
        return DEFAULT


def _never() -> bool:
    return False


class Budget:
    """What one evaluation may still spend: bytes alive and kept, and operations done.

    ``make(shape, what, ops)`` before a value of ``shape`` is made (its bytes are then alive until
    ``release``); ``keep(n)`` turns n alive bytes into kept ones (a result the evaluation holds on to);
    ``step()`` for each interpreted step. ``search()`` is a budget for a search beside the evaluation
    (a repair): the bytes left now, and a cost limit of its own, spent across every search of the call.
    """

    def __init__(self, max_bytes: int, max_cost: int, cancelled: Callable[[], bool] | None = None):
        self.max_bytes, self.max_cost = int(max_bytes), int(max_cost)
        self.cancelled = cancelled or _never
        self.held = self.live = self.spent = 0
        self._search: Budget | None = None

    def step(self, ops: int = 0, what: str | Callable[[], str] = "this step") -> None:
        """Charge one step and ``ops`` operations; OverBudget past max_cost, Cancelled when cancelled."""
        if self.cancelled():
            raise Cancelled
        spent = self.spent + STEP_COST + int(ops)
        if spent > self.max_cost:
            raise OverBudget("cost", spent, self.max_cost, what)
        self.spent = spent

    def make(self, shape: tuple, what: str | Callable[[], str], ops: int | None = None) -> int:
        """Before a value of ``shape`` is made: charge its ``ops`` (default: its entries) and claim its bytes.

        Returns the bytes claimed (give them back with ``release``). Raises OverBudget, Cancelled."""
        entries = int(np.prod(shape, dtype=np.float64))
        self.step(entries if ops is None else ops, what)
        nbytes = entries * ITEM
        total = self.held + self.live + nbytes
        if total > self.max_bytes:
            raise OverBudget("bytes", total, self.max_bytes, what)
        self.live += nbytes
        return nbytes

    def release(self, nbytes: int) -> None:
        self.live -= nbytes

    def keep(self, nbytes: int) -> None:
        """``nbytes`` alive bytes stay with the evaluation (a delta it reads later, a gradient it returns)."""
        self.live -= nbytes
        self.held += nbytes

    def search(self) -> Budget:
        """The budget of a search run beside this evaluation: the bytes left now, the searches' own cost."""
        if self._search is None:
            self._search = Budget(0, self.max_cost, self.cancelled)
        s = self._search
        s.max_bytes, s.held, s.live = self.max_bytes, self.held + self.live, 0
        return s


# A correct backward pass on the largest net (2M weights, 256 rows) holds about 30 MB and costs about
# 1e9 multiply-adds; 2e9 is under a second of one core here, as gradcheck_max_cost is.
DEFAULT = Bounds(max_equations=32, max_expr_chars=400, max_bytes=64 * 1024 * 1024, max_cost=2_000_000_000)
