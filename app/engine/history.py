"""Training history kept compactly: float32 columns that append in O(1) and pack to bytes.

Per step: the minibatch objective and ||dW_i|| for every layer. At evaluation steps: the full
train and test losses. 100,000 steps of a 3-layer net take 1.6 MB.
"""
from __future__ import annotations

from array import array

import numpy as np

from . import blob


class History:
    def __init__(self, n_layers: int):
        self.n_layers = n_layers
        self.loss = array("f")        # one per step
        self.norms = array("f")       # n_layers per step, row-major
        self.eval_step = array("q")
        self.eval_train = array("f")
        self.eval_test = array("f")   # NaN where there is no test set

    def __len__(self) -> int:
        return len(self.loss)

    def record_step(self, loss: float, norms: np.ndarray) -> None:
        """Append one step's objective and per-layer weight-gradient norms."""
        self.loss.append(loss)
        with np.errstate(over="ignore"):  # a norm past float32's range is recorded as inf
            self.norms.extend(norms.astype(np.float32, copy=False))

    def record_eval(self, step: int, train_loss: float, test_loss: float | None) -> None:
        """Append the full-set losses measured after ``step`` steps."""
        if self.eval_step and self.eval_step[-1] == step:
            return
        self.eval_step.append(step)
        self.eval_train.append(train_loss)
        self.eval_test.append(np.nan if test_loss is None else test_loss)

    def columns(self, since: int = 0) -> dict[str, np.ndarray]:
        """Arrays from step ``since`` + 1 on: step, loss, norms (n_layers, n), eval_*."""
        loss = np.frombuffer(self.loss, np.float32)[since:]
        norms = np.frombuffer(self.norms, np.float32).reshape(-1, self.n_layers)[since:].T
        steps = np.arange(since + 1, since + 1 + loss.size)
        es = np.frombuffer(self.eval_step, np.int64)
        keep = es > since
        return {"step": steps, "loss": loss, "norms": norms, "eval_step": es[keep],
                "eval_train": np.frombuffer(self.eval_train, np.float32)[keep],
                "eval_test": np.frombuffer(self.eval_test, np.float32)[keep]}

    def truncated(self, step: int) -> "History":
        """A copy holding steps 1..step only: the history a checkpoint at ``step`` had."""
        h = History(self.n_layers)
        c = self.columns()
        keep = c["eval_step"] <= step
        h.loss.extend(c["loss"][:step])
        h.norms.extend(c["norms"][:, :step].T.ravel())
        h.eval_step.extend(c["eval_step"][keep])
        h.eval_train.extend(c["eval_train"][keep])
        h.eval_test.extend(c["eval_test"][keep])
        return h

    def arrays(self) -> dict[str, np.ndarray]:
        """The raw columns, for saving."""
        return {"n_layers": np.array(self.n_layers),
                **{k: np.frombuffer(getattr(self, k), t) for k, t in _COLUMNS.items()}}

    @classmethod
    def from_arrays(cls, arrays: dict) -> "History":
        """Inverse of arrays()."""
        h = cls(int(np.asarray(arrays["n_layers"])))
        for k, t in _COLUMNS.items():
            getattr(h, k).frombytes(np.asarray(arrays[k], t).tobytes())
        if len(h.norms) != len(h.loss) * h.n_layers or not len(h.eval_step) == len(h.eval_train) == len(h.eval_test):
            raise ValueError("history columns have inconsistent lengths")
        return h

    def to_bytes(self) -> bytes:
        """Pack into one binary blob."""
        return blob.pack({}, self.arrays())

    @classmethod
    def from_bytes(cls, data: bytes) -> "History":
        """Inverse of to_bytes."""
        return cls.from_arrays(blob.unpack(data)[1])

    def __repr__(self) -> str:
        return f"History(steps={len(self)}, evals={len(self.eval_step)})"


_COLUMNS = {"loss": np.float32, "norms": np.float32, "eval_step": np.int64,
            "eval_train": np.float32, "eval_test": np.float32}
