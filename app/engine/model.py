"""Model: a network with its data, optimizer, minibatch sampler and history.

This is the unit a notebook trains and the REST API stores. It is built from the same JSON spec
as POST /api/models, and it serializes to bytes so training resumes bit for bit.
"""
from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field, fields

import numpy as np

from . import arrays, blob, standardize
from .datasets import REGRESSION, DatasetError, apply_features, make_dataset
from .history import History
from .network import LayerQuantities, Network
from .optimizers import make_optimizer
from .spec import CUSTOM_DATA_KEYS, SpecError, normalize_optimizer, normalize_regularization, normalize_spec


YIELD_EVERY = 0.005  # seconds of training between voluntary GIL releases
EVAL_JOINT_ROWS = 4096  # train + test rows evaluated in one forward pass (copies of at most this many rows)


@dataclass
class TrainResult:
    step: int
    epoch: int
    steps_done: int
    losses: list[float] = field(repr=False)
    train_loss: float | None
    test_loss: float | None
    diverged: bool
    diverged_at: int | None
    stopped: str  # "done" | "diverged" | "time_budget" (and "cancelled" from the service's scheduler)

    def to_dict(self) -> dict:
        # shallow: asdict() deep-copies the losses one float at a time (a tenth of a 2,000-step call's overhead)
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Model:
    """Build with ``Model(spec)``; then ``train``, ``gradients``, ``predict``, ``gradcheck``, ``trace``, ``check``."""

    def __init__(self, spec: dict | None = None):
        spec = dict(spec or {})
        data = spec.get("data")
        if isinstance(data, dict) and any(k in data for k in CUSTOM_DATA_KEYS):
            # custom data becomes arrays first: normalize_spec deep-copies the spec, and a deep copy of
            # a million nested lists costs seconds and hundreds of MB; an array's copy is one memcpy
            spec["data"] = {**data, **{k: _matrix(data[k], k) for k in CUSTOM_DATA_KEYS if k in data}}
        self.spec = normalize_spec(spec)
        self._load_data()
        self._build()

    # -- data -----------------------------------------------------------------------------
    def _load_data(self) -> None:
        data, units = self.spec["data"], self.spec["layers"][-1]["units"]
        if "X" in data:
            self.features = None
            # __init__ made these arrays (copies), so they are the model's own
            self.raw_train, self.y_train = _matrix(data["X"], "X", False), _matrix(data["y"], "y", False)
            has_test = "X_test" in data
            self.raw_test = (_matrix(data["X_test"], "X_test", False) if has_test
                             else np.zeros((0, self.raw_train.shape[1])))
            self.y_test = _matrix(data["y_test"], "y_test", False) if has_test else np.zeros((0, self.y_train.shape[1]))
            self.spec["data"] = {"source": "custom", "n_train": len(self.raw_train), "n_test": len(self.raw_test),
                                 "standardize": _standardization(data.get("standardize"), self.raw_train,
                                                                 _columns(data.get("info"))),
                                 "info": data.get("info")}
        else:
            self.features = list(data["features"])
            try:
                ds = make_dataset(data["dataset"], samples=data["samples"], noise=data["noise"],
                                  test_fraction=data["test_fraction"], seed=data["seed"], n_outputs=units)
                apply_features(ds.X_train[:1], self.features)  # checks the feature names
            except DatasetError as e:
                loc = ("layers", len(self.spec["layers"]) - 1, "units") if e.field == "n_outputs" else ("data", e.field)
                raise SpecError(loc, e.message) from None
            self.raw_train, self.y_train, self.raw_test, self.y_test = ds.X_train, ds.y_train, ds.X_test, ds.y_test
        self.kind = _kind(self.spec)
        self._check_data(units)

    def _check_data(self, units: int) -> None:
        for name, X, y in (("X", self.raw_train, self.y_train), ("X_test", self.raw_test, self.y_test)):
            if len(X) != len(y):
                raise SpecError(("data", name), f"has {len(X)} rows but its y has {len(y)}")
            if y.shape[1] != units:
                raise SpecError(("data", "y" if name == "X" else "y_test"),
                                f"has {y.shape[1]} columns but the output layer has {units} units"
                                + _labels_hint(y, units))
        if self.raw_test.shape[1] != self.raw_train.shape[1]:
            raise SpecError(("data", "X_test"), f"has {self.raw_test.shape[1]} columns but X has {self.raw_train.shape[1]}")
        width = len(self.features) if self.features else self.raw_train.shape[1]
        given = self.spec["input_size"]
        if given is not None and given != width:
            raise SpecError(("input_size",), f"is {given} but the data gives {width} input columns")
        self.spec["input_size"] = width
        y_all = np.concatenate([self.y_train, self.y_test])
        loss = self.spec["loss"]
        if loss == "bce" and ((y_all < 0) | (y_all > 1)).any():
            raise SpecError(("loss",), "bce needs targets in [0, 1]; use mse for regression data")
        if loss == "cross_entropy" and ((y_all < 0).any() or not np.allclose(y_all.sum(axis=1), 1.0, atol=1e-6)):
            raise SpecError(("loss",), "cross_entropy needs one-hot or probability target rows that sum to 1")

    def inputs(self, X_raw: np.ndarray) -> np.ndarray:
        """Raw points (B, raw_dim) -> network inputs (B, input_size): features, or the stored standardization."""
        if self.features:
            X = apply_features(X_raw, self.features)
        else:
            X = standardize.apply(X_raw, self.spec["data"].get("standardize"))
        return np.ascontiguousarray(X, dtype=self.net.dtype)

    @property
    def raw_dim(self) -> int:
        return self.raw_train.shape[1]

    # -- construction -------------------------------------------------------------------
    def _build(self, init: bool = True) -> None:
        s = self.spec
        sizes = [s["input_size"]] + [layer["units"] for layer in s["layers"]]
        self.net = Network(sizes, [layer["activation"] for layer in s["layers"]], loss=s["loss"], bias=s["bias"],
                           dtype=s["dtype"], regularization=s["regularization"]["kind"],
                           reg_rate=s["regularization"]["rate"])
        self.X_train, self.X_test = self.inputs(self.raw_train), self.inputs(self.raw_test)
        self.y_train_t = self.y_train.astype(self.net.dtype, copy=False)  # no copy when the dtype matches
        self.y_test_t = self.y_test.astype(self.net.dtype, copy=False)
        self._new_optimizer()
        self.history = History(self.net.n_layers)
        self.step = self.epoch = self.cursor = 0
        self.diverged_at = None
        self.train_loss = self.test_loss = None
        # the sampler's stream is separate from the init stream, so changing one never shifts the other
        self.rng = np.random.default_rng([s["seed"], 1])
        self.perm = self.rng.permutation(len(self.X_train))
        if init:
            self.net.initialize(s["seed"], s["init"], s["init_std"])
            self.evaluate()

    def _new_optimizer(self) -> None:
        o = self.spec["optimizer"]
        self.optimizer = make_optimizer(self.net.params.size, self.net.dtype, **o)

    def reset(self, seed: int | None = None) -> None:
        """Re-initialise from the spec's seed (or a new one): step 0, fresh optimizer and history."""
        if seed is not None:
            self.spec["seed"] = int(seed)
        self._build()

    def update(self, *, optimizer: dict | None = None, regularization: dict | None = None,
               batch_size: int | None | str = "keep") -> None:
        """Change hyper-parameters between steps; optimizer state survives unless its name changes."""
        if optimizer is not None:
            new = normalize_optimizer(optimizer, self.spec["optimizer"])
            renamed = new["name"] != self.spec["optimizer"]["name"]
            self.spec["optimizer"] = new
            if renamed:
                self._new_optimizer()
            else:
                self.optimizer.set_hyper(**new)
        if regularization is not None:
            self.spec["regularization"] = reg = normalize_regularization(regularization, self.spec["regularization"])
            self.net.regularization, self.net.reg_rate = reg["kind"], reg["rate"]
        if batch_size != "keep":
            if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
                raise SpecError(("batch_size",), "must be an integer >= 1 or null for full batch")
            self.spec["batch_size"] = batch_size

    # -- training -----------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        bs, n = self.spec["batch_size"], len(self.X_train)
        return n if bs is None or bs >= n else bs

    @property
    def eval_every(self) -> int:
        """Full-set losses are measured once an epoch, and at least every 10 steps apart."""
        return max(10, math.ceil(len(self.X_train) / self.batch_size))

    def train(self, steps: int, time_budget: float | None = None, *, checkpoint_every: int = 0,
              on_checkpoint=None) -> TrainResult:
        """Run up to ``steps`` optimizer steps; stop early on divergence or when the time budget is spent.

        With ``checkpoint_every`` = N, ``on_checkpoint(model)`` is called each time the step count reaches a
        multiple of N, so checkpoints land on exact steps however the steps are split into calls.

        The per-step loop does only the step itself: minibatches are slices of a permuted copy of the
        training set (drawn once an epoch), and gradient norms are computed for a block of steps at once
        from a buffer of the flat gradients; the history receives whole blocks. Results are bit for bit
        those of sampling rows one batch at a time. A batch larger than one pass under the memory budget
        (``Network.chunk_rows``) runs in row chunks (``Network.accumulate``), equal within float rounding.
        """
        net, opt, bs, n = self.net, self.optimizer, self.batch_size, len(self.X_train)
        full = bs >= n
        deadline = None if time_budget is None else time.perf_counter() + time_budget
        yield_at = time.perf_counter() + YIELD_EVERY
        losses, stopped, every = [], "done", self.eval_every
        checkpoints = bool(checkpoint_every) and on_checkpoint is not None
        self.diverged_at = None
        rec = _NormBuffer(net, self.history, self.step + 1, losses)
        buf, grads, rows, j = rec.buf, net.grads, len(rec.buf), 0
        Xp, yp = (self.X_train, self.y_train_t) if full else self._epoch_batches()
        chunked = min(bs, n) > net.chunk_rows(backward=True)
        for _ in range(steps):
            if full:
                Xb, yb = Xp, yp
            else:
                c = self.cursor
                Xb, yb = Xp[c:c + bs], yp[c:c + bs]
            if chunked:  # a batch too large for one pass under the memory budget (full batch on big data)
                loss = net.accumulate(Xb, yb)
            else:
                net.forward(Xb)
                loss = net.backward(yb)
            # a non-finite step is refused: parameters, optimizer state and sampler stay as they were
            # (non-finite gradients make the proposed parameters non-finite, which the optimizer refuses)
            if not (math.isfinite(loss) and opt.step(net.params, net.grads)):
                self.diverged_at, stopped = self.step + 1, "diverged"
                break
            self.step += 1
            losses.append(loss)
            buf[j] = grads  # the train loop fills rec's buffer; a flush computes the block's norms
            j += 1
            if j == rows:
                rec.j, j = j, 0
                rec.flush()
            if full:
                self.epoch += 1
            else:
                self.cursor += bs
                if self.cursor >= n:  # a finished epoch draws a new permutation
                    self.epoch, self.cursor = self.epoch + 1, 0
                    self.perm = self.rng.permutation(n)
                    Xp, yp = self._epoch_batches()
            checkpoint_due = checkpoints and self.step % checkpoint_every == 0
            if checkpoint_due or self.step % every == 0:
                self.evaluate()  # a checkpoint carries the losses at its own step
                if checkpoint_due:
                    rec.j, j = j, 0
                    rec.flush()  # the checkpoint sees the history up to its step
                    on_checkpoint(self)
            now = time.perf_counter()
            if deadline is not None and now > deadline:
                stopped = "time_budget"
                break
            if now > yield_at:
                # small steps hold the GIL almost all the time; yielding it now and then keeps a server's
                # other threads (its event loop, requests for other models) responsive during long runs.
                # Alone in the process there is no one to yield to, and the system call only invites the
                # OS to run other processes.
                if threading.active_count() > 1:
                    time.sleep(0)
                yield_at = now + YIELD_EVERY
        rec.j = j
        rec.flush()
        net.release()  # the last batch's layer caches: a live model holds none between calls (see nbytes)
        self.evaluate()
        return TrainResult(step=self.step, epoch=self.epoch, steps_done=len(losses), losses=losses,
                           train_loss=self.train_loss, test_loss=self.test_loss,
                           diverged=self.diverged_at is not None, diverged_at=self.diverged_at, stopped=stopped)

    def _epoch_batches(self) -> tuple[np.ndarray, np.ndarray]:
        """(X_train[perm], y_train[perm]) for the current permutation, made once per epoch."""
        cache = getattr(self, "_epoch_cache", None)
        if cache is None or cache[0] is not self.perm:
            cache = self._epoch_cache = (self.perm, self.X_train[self.perm], self.y_train_t[self.perm])
        return cache[1], cache[2]

    def evaluate(self) -> None:
        """Record full train and test data losses at the current step.

        Small sets (up to ``EVAL_JOINT_ROWS`` rows in all) go through one forward pass over train and test
        together; larger ones through ``Network.loss_value``'s chunks.
        """
        net, n = self.net, len(self.X_train)
        if n + len(self.X_test) <= min(EVAL_JOINT_ROWS, net.chunk_rows()):
            cache = getattr(self, "_eval_cache", None)
            if cache is None or cache[0] is not self.X_train:
                cache = self._eval_cache = (self.X_train, np.concatenate([self.X_train, self.X_test]),
                                            np.concatenate([self.y_train_t, self.y_test_t]))
            a, y_hat = net._pass(cache[1])
            y = cache[2]
            train = net.loss_of(a[:n], y_hat[:n], y[:n])
            test = net.loss_of(a[n:], y_hat[n:], y[n:]) if len(self.X_test) else None
        else:
            train = net.loss_value(self.X_train, self.y_train_t)
            test = net.loss_value(self.X_test, self.y_test_t) if len(self.X_test) else None
        self.train_loss = _finite_or_none(train)
        self.test_loss = None if test is None else _finite_or_none(test)
        if self.train_loss is not None:
            self.history.record_eval(self.step, self.train_loss, self.test_loss)

    # -- inspection -----------------------------------------------------------------------
    def batch(self, X_raw=None, y=None, cap: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(network inputs, targets) for a raw batch, or the first ``cap`` training rows."""
        if X_raw is None:
            rows = slice(None, cap)
            return self.X_train[rows], self.y_train_t[rows]
        X = self.inputs(np.asarray(X_raw, np.float64))
        y = np.asarray(y, self.net.dtype)
        if y.ndim == 1:
            y = y[:, None]
        if y.shape != (len(X), self.net.sizes[-1]):
            raise SpecError(("y",), f"must have shape ({len(X)}, {self.net.sizes[-1]}) to match X and the "
                                    f"output layer, got {y.shape}")
        return X, y

    def gradients(self, X_raw=None, y=None, cap: int | None = None) -> dict:
        """Forward and backward on a batch; every layer's a, z, delta, dz (B, n_i), dW (n_i, n_{i-1}), db, norms.

        The arrays belong to the caller: copies that later training or inspection never changes. A batch
        larger than one chunk (``Network.chunk_rows``) runs in chunks, equal within float rounding.
        """
        X, yb = self.batch(X_raw, y, cap)
        net = self.net
        loss = net.accumulate(X, yb, keep=True)
        kept, net.kept = net.kept, None
        layers = []
        for dense, k in zip(net.dense, kept):
            dW = dense.grads["W"].copy()
            db = dense.grads["b"].copy() if net.bias else None
            layers.append(LayerQuantities(a=k["a"], z=k["z"], delta=k["delta"], dz=k["dz"], dW=dW, db=db,
                                          norm_W=float(np.linalg.norm(dW)),
                                          norm_b=None if db is None else float(np.linalg.norm(db))))
        return {"loss": loss, "data_loss": net.data_loss, "penalty": net.penalty,
                "batch_size": len(X), "inputs": X.copy(), "layers": layers}

    def set_parameters(self, layers: list[tuple[np.ndarray, np.ndarray | None]]) -> None:
        """Replace every layer's (W, b) (``Network.set_parameters``: ParameterError, nothing changed) and
        record the losses they give at the current step."""
        self.net.set_parameters(layers)
        self.evaluate()

    def predict(self, X_raw) -> np.ndarray:
        """y_hat (B, K) for raw points (B, raw_dim), in row chunks under ``network.MEMORY_BUDGET``."""
        return self.net.predict(self.inputs(np.asarray(X_raw, np.float64)))

    def nbytes(self) -> int:
        """Bytes a live model holds between calls, at most: parameters, gradients, optimizer state, data and its
        network inputs, sampler, the epoch and evaluation copies training makes (counted before the first train
        call makes them: the live-model cache sizes a model once, when it is loaded) and the history at its
        retention limit. Layer caches are not held: training, inspection and every pass over many rows
        (``Network.predict``, ``accumulate``) release them."""
        arrays = [self.net.params, self.net.grads, self.net.weight_mask, self.perm, self.raw_train, self.y_train,
                  self.raw_test, self.y_test, self.X_train, self.X_test, self.y_train_t, self.y_test_t,
                  *self.optimizer.state_arrays().values(), *getattr(self, "_epoch_cache", (None,))[1:],
                  *getattr(self, "_eval_cache", (None,))[1:]]
        seen, total = set(), 0
        for a in arrays:
            base = a if a.base is None else a.base  # a view shares its base's bytes: count them once
            if id(base) not in seen and isinstance(base, np.ndarray):
                seen.add(id(base))
                total += base.nbytes
        n, n_test = len(self.X_train), len(self.X_test)
        if getattr(self, "_epoch_cache", None) is None and self.batch_size < n:
            total += self.X_train.nbytes + self.y_train_t.nbytes  # _epoch_batches' permuted copy
        if getattr(self, "_eval_cache", None) is None and n + n_test <= min(EVAL_JOINT_ROWS, self.net.chunk_rows()):
            total += self.X_train.nbytes + self.X_test.nbytes + self.y_train_t.nbytes + self.y_test_t.nbytes
        return total + max(self.history.nbytes(), self.history.max_nbytes())

    def status(self) -> dict:
        """JSON summary for GET /api/models/{id}."""
        return {"step": self.step, "epoch": self.epoch, "train_loss": self.train_loss, "test_loss": self.test_loss,
                "diverged": self.diverged_at is not None, "diverged_at": self.diverged_at,
                "n_params": int(self.net.params.size)}

    # -- persistence ----------------------------------------------------------------------
    def state_arrays(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(meta, arrays): everything needed to resume exactly: parameters, optimizer and sampler state, data."""
        meta = {"step": self.step, "epoch": self.epoch, "cursor": self.cursor, "diverged_at": self.diverged_at,
                "train_loss": self.train_loss, "test_loss": self.test_loss, "opt_t": self.optimizer.t,
                "rng": self.rng.bit_generator.state}
        arrays = {"params": self.net.params, "perm": self.perm, "raw_train": self.raw_train, "y_train": self.y_train,
                  "raw_test": self.raw_test, "y_test": self.y_test,
                  **{f"opt_{k}": v for k, v in self.optimizer.state_arrays().items()}}
        return meta, arrays

    @classmethod
    def from_state_arrays(cls, spec: dict, meta: dict, arrays: dict[str, np.ndarray],
                          history: History | None = None) -> "Model":
        """Rebuild a model from ``state_arrays`` (spec as it was stored, already normalized)."""
        m = cls.__new__(cls)
        m.spec = json.loads(json.dumps(spec))
        d = m.spec["data"]
        m.features = None if d.get("source") == "custom" else list(d["features"])
        m.kind = _kind(m.spec)
        m.raw_train, m.y_train = arrays["raw_train"], arrays["y_train"]
        m.raw_test, m.y_test = arrays["raw_test"], arrays["y_test"]
        m._build(init=False)
        m.net.params[...] = arrays["params"]
        for k, v in m.optimizer.state_arrays().items():
            v[...] = arrays[f"opt_{k}"]
        m.optimizer.t = int(meta["opt_t"])
        m.perm = np.asarray(arrays["perm"], np.int64)
        m.rng.bit_generator.state = meta["rng"]
        for k in ("step", "epoch", "cursor", "diverged_at", "train_loss", "test_loss"):
            setattr(m, k, meta[k])
        if history is not None:
            m.history = history
        return m

    def to_bytes(self) -> bytes:
        """state_arrays packed as one blob (saved after every change, so kept cheap)."""
        return blob.pack(*self.state_arrays())

    @classmethod
    def from_bytes(cls, spec: dict, state: bytes, history: bytes | None = None) -> "Model":
        """Rebuild a model saved by ``to_bytes``."""
        meta, arrays = blob.unpack(state)
        return cls.from_state_arrays(spec, meta, arrays, History.from_bytes(history) if history else None)

    def __repr__(self) -> str:
        return f"Model({self.net!r}, step={self.step})"


class _NormBuffer:
    """Per-layer ||dW_i|| of a block of steps at once, and the block handed to the history.

    Each step copies the flat gradient into a row of a buffer (one call); a flush computes every row's
    norms with the same two reductions as ``Network.weight_grad_norms`` and records the block. The
    buffer holds at most about 2 MB of gradients, so a large net flushes every step.
    """

    def __init__(self, net: Network, history: History, first_step: int, losses: list):
        self.net, self.history, self.losses = net, history, losses
        rows = max(1, min(256, 2**18 // max(1, net.params.size)))
        self.buf = np.empty((rows, net.params.size), net.dtype)
        self.j, self.first, self.done = 0, first_step, 0

    def flush(self) -> None:
        """Norms of the ``j`` buffered steps, recorded in the history; the buffer starts again."""
        if not self.j:
            return
        g = self.buf[:self.j]
        sq = np.add.reduceat(g * g, self.net.offsets[:-1], axis=1)
        norms = np.sqrt(sq)[:, :: 2 if self.net.bias else 1]
        self.history.record_steps(self.first, self.losses[self.done:self.done + self.j], norms)
        self.first += self.j
        self.done += self.j
        self.j = 0


def _kind(spec: dict) -> str:
    """classification or regression, from the dataset or (custom data) from the loss."""
    d = spec["data"]
    if "dataset" in d:
        return "regression" if d["dataset"] in REGRESSION else "classification"
    return "classification" if spec["loss"] in ("bce", "cross_entropy") else "regression"


def _matrix(value, name: str, copy: bool = True) -> np.ndarray:
    """A finite, non-empty 2-D float64 array from nested lists (arrays.as_array), or SpecError naming the field."""
    try:
        arr = arrays.as_array(value, copy=copy)  # a copy by default: the model never shares the caller's array
    except arrays.ArrayError as e:
        if e.kind != "non_finite":
            raise SpecError(("data", name), "must be a rectangular list of rows of numbers") from None
        arr = np.asarray(value, np.float64)  # numbers: the shape, then the row, make the message below
    if arr.ndim == 1 and name.startswith("y"):
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise SpecError(("data", name), f"must be a non-empty 2-D list of rows, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise SpecError(("data", name), f"has a non-finite number in row {int(np.argwhere(~np.isfinite(arr))[0][0])}")
    return arr


def _labels_hint(y: np.ndarray, units: int) -> str:
    """For one column of integer class labels against a K-unit output: say they need one-hot encoding."""
    if y.shape[1] != 1 or units < 2 or not (y == np.round(y)).all() or y.min() < 0:
        return ""
    labels = np.unique(y)
    shown = ", ".join(f"{v:g}" for v in labels[:5]) + (", ..." if len(labels) > 5 else "")
    return (f"; its values look like integer class labels ({shown}): a {units}-unit output needs them one-hot "
            f"encoded, one column per class (row [0, 1, 0] for label 1); upload the CSV with \"one_hot\": true "
            "to have them encoded")


def _columns(info) -> list | None:
    """The input column names an uploaded dataset's info carries, if any."""
    cols = info.get("input_columns") if isinstance(info, dict) else None
    return cols if isinstance(cols, list) else None


def _standardization(given, raw_train: np.ndarray, names: list | None = None) -> dict | None:
    """None, the stored {"mean", "std"}, or (given True) statistics of the training inputs; std 0 counts as 1."""
    if not given:
        return None
    if given is True:
        try:
            return standardize.statistics(raw_train)
        except standardize.NotStandardizable as e:
            j = e.column
            name = f' ("{names[j]}")' if names is not None and j < len(names) else ""
            raise SpecError(("data", "X", j), f"column {j}{name} cannot be standardized: {e.reason}") from None
    try:
        mean, std = np.asarray(given["mean"], np.float64), np.asarray(given["std"], np.float64)
    except (KeyError, TypeError, ValueError):
        raise SpecError(("data", "standardize"), "must be true, false or {\"mean\": [...], \"std\": [...]}") from None
    if mean.shape != (raw_train.shape[1],) or std.shape != mean.shape or not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise SpecError(("data", "standardize"), f"mean and std need {raw_train.shape[1]} finite values, std > 0")
    return {"mean": mean.tolist(), "std": std.tolist()}


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
