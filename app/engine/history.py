"""Training history kept compactly: typed columns that append in O(1) and pack to bytes.

Per step: the step number, the minibatch objective and ||dW_i|| for every layer. At evaluation
steps: the full train and test losses.

Retention policy (bounded size, so a save stays cheap however long a model trains):

- the newest ``recent`` entries (default ``RECENT_STEPS`` = 20,000 steps) are kept at full
  resolution, one entry per step;
- when the per-step columns pass ``recent + older`` entries (``OLDER_STEPS`` = 10,000), the entries
  before that recent window are thinned to every second one (the oldest entry, step 1, stays). Each
  thinning halves what is already there, so the further back, the sparser: entries from k thinnings
  ago are 2^k steps apart. The column never holds more than ``recent + older`` entries (about
  1.6 MB for a 12-layer net);
- evaluations follow the same rule with ``RECENT_EVALS`` = 5,000 and ``OLDER_EVALS`` = 2,500.

Every kept entry keeps its own step number (``step`` and ``eval_step`` columns), and a step is
never recorded twice: recording step s first drops any entries at steps >= s (a model that was
reloaded from an older save re-records its steps once).
"""
from __future__ import annotations

from array import array

import numpy as np

from . import blob

RECENT_STEPS, OLDER_STEPS = 20_000, 10_000
RECENT_EVALS, OLDER_EVALS = 5_000, 2_500


class History:
    def __init__(self, n_layers: int, *, recent: int = RECENT_STEPS, older: int = OLDER_STEPS,
                 recent_evals: int = RECENT_EVALS, older_evals: int = OLDER_EVALS):
        self.n_layers = n_layers
        # older >= 2, so that every thinning removes at least one entry
        self.limits = (recent, max(2, older), recent_evals, max(2, older_evals))
        self.step = array("q")        # the step number of each per-step entry, increasing
        self.loss = array("f")        # one per kept step
        self.norms = array("f")       # n_layers per kept step, row-major
        self.eval_step = array("q")
        self.eval_train = array("f")
        self.eval_test = array("f")   # NaN where there is no test set

    def __len__(self) -> int:
        return len(self.loss)

    @property
    def last_step(self) -> int:
        """The newest recorded step (0 for an empty history)."""
        return self.step[-1] if self.step else 0

    def record_step(self, loss: float, norms: np.ndarray, step: int | None = None) -> None:
        """Append one step's objective and per-layer weight-gradient norms (step: the last one + 1 by default)."""
        self.record_steps(self.last_step + 1 if step is None else step, [loss], np.asarray(norms)[None, :])

    def record_steps(self, first_step: int, losses, norms: np.ndarray) -> None:
        """Append k consecutive steps first_step .. first_step + k - 1: losses (k,), norms (k, n_layers)."""
        k = len(losses)
        if not k:
            return
        if self.step and first_step <= self.step[-1]:
            self._drop_from(first_step)
        self.step.frombytes(np.arange(first_step, first_step + k, dtype=np.int64).tobytes())
        with np.errstate(over="ignore"):  # a loss or norm past float32's range is recorded as inf
            self.loss.frombytes(np.asarray(losses, np.float32).tobytes())
            self.norms.frombytes(np.asarray(norms, np.float32).reshape(k, self.n_layers).tobytes())
        self._compact()

    def record_eval(self, step: int, train_loss: float, test_loss: float | None) -> None:
        """Append the full-set losses measured after ``step`` steps (again at the same step: ignored)."""
        if self.eval_step and self.eval_step[-1] >= step:
            if self.eval_step[-1] == step:
                return
            self._drop_evals_from(step)
        self.eval_step.append(step)
        self.eval_train.append(train_loss)
        self.eval_test.append(np.nan if test_loss is None else test_loss)
        self._compact()

    # -- retention ------------------------------------------------------------------------------
    def _drop_from(self, step: int) -> None:
        n = int(np.searchsorted(np.frombuffer(self.step, np.int64), step))
        del self.step[n:], self.loss[n:], self.norms[n * self.n_layers:]

    def _drop_evals_from(self, step: int) -> None:
        n = int(np.searchsorted(np.frombuffer(self.eval_step, np.int64), step))
        del self.eval_step[n:], self.eval_train[n:], self.eval_test[n:]

    def _compact(self) -> None:
        """Apply the retention policy: thin the entries before the recent window until the columns fit."""
        recent, older, recent_evals, older_evals = self.limits
        while len(self.step) > recent + older:
            self._thin_steps(recent)
        while len(self.eval_step) > recent_evals + older_evals:
            self._thin_evals(recent_evals)

    def _thin_steps(self, recent: int) -> None:
        keep = _thinned(len(self.step), recent)
        c = self._numpy()
        self.step, self.loss = _array("q", c["step"][keep]), _array("f", c["loss"][keep])
        self.norms = _array("f", c["norms"][keep])

    def _thin_evals(self, recent: int) -> None:
        keep = _thinned(len(self.eval_step), recent)
        c = self._numpy()
        self.eval_step, self.eval_train = _array("q", c["eval_step"][keep]), _array("f", c["eval_train"][keep])
        self.eval_test = _array("f", c["eval_test"][keep])

    def _numpy(self) -> dict[str, np.ndarray]:
        """Copies of the columns as arrays (norms as (n, n_layers))."""
        return {"step": np.frombuffer(self.step, np.int64).copy(), "loss": np.frombuffer(self.loss, np.float32).copy(),
                "norms": np.frombuffer(self.norms, np.float32).reshape(-1, self.n_layers).copy(),
                "eval_step": np.frombuffer(self.eval_step, np.int64).copy(),
                "eval_train": np.frombuffer(self.eval_train, np.float32).copy(),
                "eval_test": np.frombuffer(self.eval_test, np.float32).copy()}

    # -- reading ----------------------------------------------------------------------------------
    def columns(self, since: int = 0) -> dict[str, np.ndarray]:
        """Copies of the entries after step ``since``: step, loss, norms (n_layers, n), eval_*."""
        c = self._numpy()
        keep, ekeep = c["step"] > since, c["eval_step"] > since
        return {"step": c["step"][keep], "loss": c["loss"][keep], "norms": c["norms"][keep].T,
                "eval_step": c["eval_step"][ekeep], "eval_train": c["eval_train"][ekeep],
                "eval_test": c["eval_test"][ekeep]}

    def truncated(self, step: int) -> "History":
        """A copy holding the entries at steps 1..step only: the history a checkpoint at ``step`` had."""
        h = History(self.n_layers, recent=self.limits[0], older=self.limits[1],
                    recent_evals=self.limits[2], older_evals=self.limits[3])
        c = self._numpy()
        keep, ekeep = c["step"] <= step, c["eval_step"] <= step
        for name in _COLUMNS:
            getattr(h, name).frombytes(c[name][ekeep if name.startswith("eval") else keep].tobytes())
        return h

    def nbytes(self) -> int:
        """Bytes held by the columns."""
        return sum(len(getattr(self, k)) * getattr(self, k).itemsize for k in _COLUMNS)

    def max_nbytes(self) -> int:
        """Bytes the columns hold at most, at the retention limits."""
        recent, older, recent_evals, older_evals = self.limits
        return (recent + older) * (8 + 4 + 4 * self.n_layers) + (recent_evals + older_evals) * (8 + 4 + 4)

    # -- persistence ----------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """The raw columns, for saving."""
        return {"n_layers": np.array(self.n_layers),
                **{k: np.frombuffer(getattr(self, k), t) for k, t in _COLUMNS.items()}}

    @classmethod
    def from_arrays(cls, arrays: dict) -> "History":
        """Inverse of arrays(). Saves from before the step column (one entry per step from 1) are read too."""
        h = cls(int(np.asarray(arrays["n_layers"])))
        if h.n_layers < 1:
            raise ValueError("history n_layers must be >= 1")
        for k, t in _COLUMNS.items():
            if k == "step" and k not in arrays:
                h.step.frombytes(np.arange(1, np.asarray(arrays["loss"]).size + 1, dtype=np.int64).tobytes())
                continue
            a = np.asarray(arrays[k])
            if a.ndim != 1 or (a.size and a.dtype.kind not in ("iu" if t is np.int64 else "fiu")):
                raise ValueError(f"history column {k} must be a 1-D numeric array")
            getattr(h, k).frombytes(a.astype(t).tobytes())
        if not len(h.step) == len(h.loss) or len(h.norms) != len(h.loss) * h.n_layers \
                or not len(h.eval_step) == len(h.eval_train) == len(h.eval_test):
            raise ValueError("history columns have inconsistent lengths")
        for k in ("step", "eval_step"):
            s = np.frombuffer(getattr(h, k), np.int64)
            if s.size and (s[0] < 0 or (np.diff(s) <= 0).any()):
                raise ValueError(f"history {k} must be increasing steps >= 0")
        h._compact()
        return h

    def to_bytes(self) -> bytes:
        """Pack into one binary blob (its size is bounded by the retention policy)."""
        return blob.pack({}, self.arrays())

    @classmethod
    def from_bytes(cls, data: bytes) -> "History":
        """Inverse of to_bytes."""
        return cls.from_arrays(blob.unpack(data)[1])

    def __repr__(self) -> str:
        return f"History(steps={len(self)}, evals={len(self.eval_step)}, last_step={self.last_step})"


_COLUMNS = {"step": np.int64, "loss": np.float32, "norms": np.float32, "eval_step": np.int64,
            "eval_train": np.float32, "eval_test": np.float32}


def _thinned(n: int, recent: int) -> np.ndarray:
    """Indices kept of n entries: every second one before the newest ``recent`` (the first always), then all."""
    old = max(0, n - recent)
    return np.concatenate([np.arange(0, old, 2), np.arange(old, n)])


def _array(code: str, values: np.ndarray) -> array:
    out = array(code)
    out.frombytes(np.ascontiguousarray(values).tobytes())
    return out
