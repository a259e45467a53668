"""Size limits checked before any work starts: architecture, parameters, data, steps."""
from __future__ import annotations

import math

from app.config import Settings
from app.engine import DEFAULT_SPEC, Model
from app.engine.datasets import DEFAULTS as DATA_DEFAULTS

from .errors import Unprocessable


def _train_rows(data: dict) -> int:
    """Training rows the engine will make from ``data`` (app/engine/datasets.py's split); 0 when malformed."""
    X = data.get("X")
    if "source" in data:  # a built model's spec (import): check_step_cost counts its rows
        return 0
    if X is not None:
        return len(X) if hasattr(X, "__len__") else 0
    samples, fraction = data.get("samples"), data.get("test_fraction")
    samples = DATA_DEFAULTS["samples"] if samples is None else samples
    fraction = DATA_DEFAULTS["test_fraction"] if fraction is None else fraction
    if not isinstance(samples, int) or not isinstance(fraction, (int, float)) or samples < 1:
        return 0
    return samples - min(int(math.floor(samples * min(max(fraction, 0.0), 1.0))), samples - 1)


class Limits:
    def __init__(self, settings: Settings):
        self.settings = settings

    def check_spec(self, spec: dict) -> None:
        """Refuse oversized architectures and data before a model is built (Unprocessable naming the field)."""
        s, layers = self.settings, spec.get("layers") or []
        if len(layers) > s.max_layers:
            raise Unprocessable(("body", "layers"), f"has {len(layers)} layers; the limit is {s.max_layers}")
        for i, layer in enumerate(layers):
            if layer.get("units", 0) > s.max_units:
                raise Unprocessable(("body", "layers", i, "units"), f"is {layer['units']}; the limit is {s.max_units}")
        data = spec.get("data") or {}
        X = data.get("X")
        width = spec.get("input_size") or len(data.get("features") or []) or (len(X[0]) if X is not None and len(X) else 2)
        sizes = [width] + [layer.get("units", 1) for layer in layers]
        n_params = sum(o * (i + 1) for i, o in zip(sizes[:-1], sizes[1:]))
        if n_params > s.max_params:
            raise Unprocessable(("body", "layers"), f"need {n_params} parameters; the limit is {s.max_params}")
        if X is not None and len(X) and hasattr(X[0], "__len__"):
            # custom data: the same count and message as check_data_size, before a model is built from it
            X_test = data.get("X_test")
            cells = (len(X) + (len(X_test) if X_test is not None else 0)) * len(X[0])
            if cells > s.max_samples_x_features:
                raise Unprocessable(("body", "data", "X"),
                                    f"{cells} samples x features exceeds the limit {s.max_samples_x_features}")
        samples = data.get("samples") or 0
        if samples * width > s.max_samples_x_features:
            raise Unprocessable(("body", "data", "samples"),
                                f"{samples} samples x {width} features exceeds the limit {s.max_samples_x_features}")
        # the step cost before a model is built: building one evaluates the loss on every row, which costs
        # as much as a full-batch step (check_step_cost repeats it on the built model, for import and PATCH)
        batch_size = spec.get("batch_size", DEFAULT_SPEC["batch_size"])
        if batch_size is None or isinstance(batch_size, int):
            self._step_cost(batch_size, _train_rows(data), sum(i * o for i, o in zip(sizes[:-1], sizes[1:])))

    def check_data_size(self, model: Model) -> None:
        """The built model's train + test rows x input columns within max_samples_x_features."""
        cells = (len(model.X_train) + len(model.X_test)) * model.X_train.shape[1]
        if cells > self.settings.max_samples_x_features:
            raise Unprocessable(("body", "data", "X"),
                                f"{cells} samples x features exceeds the limit {self.settings.max_samples_x_features}")

    def check_step_cost(self, model: Model, batch_size: int | None | str = "keep",
                        loc: tuple = ("body", "batch_size")) -> None:
        """Rows per step x weights within max_step_cost, for the model's batch size or ``batch_size`` (a PATCH).

        One step cannot be split between stream frames, so its cost is bounded here (Unprocessable at ``loc``).
        """
        bs = model.spec["batch_size"] if batch_size == "keep" else batch_size
        self._step_cost(bs, len(model.X_train), sum(layer.W.size for layer in model.net.dense), loc)

    def _step_cost(self, batch_size, n_train: int, weights: int, loc: tuple = ("body", "batch_size")) -> None:
        rows = n_train if batch_size is None or batch_size >= n_train else batch_size
        limit = self.settings.max_step_cost
        if rows * weights > limit:
            what = "a full batch of" if rows == n_train else "a batch of"
            raise Unprocessable(loc, f"{what} {rows} rows x {weights} weights is {rows * weights} multiply-adds per "
                                     f"step; the limit is {limit} (PLAYGROUND_MAX_STEP_COST): use a batch of at most "
                                     f"{max(1, limit // weights)} rows or a smaller network")

    def check_steps(self, steps: int) -> None:
        if steps > self.settings.max_steps:
            raise Unprocessable(("body", "steps"), f"is {steps}; the limit is {self.settings.max_steps} per call")

    def gradcheck_plan(self, rows: int, tensor_sizes: list[int], rows_sent: bool) -> tuple[int, int]:
        """(rows, entries per tensor) for a gradcheck within ``gradcheck_max_cost``.

        Cost = rows x checked entries x parameters: each checked entry is two forward passes over the rows,
        each about one multiply-add per parameter and row. Rows the client sent are never cut: too many is
        Unprocessable naming X; the training rows are capped. Then the entries per tensor are lowered; a
        network too large for even one row and one entry per tensor is Unprocessable.
        """
        limit, k = self.settings.gradcheck_max_cost, self.settings.gradcheck_max_entries
        n_params = sum(tensor_sizes)

        def cost(r: int, k: int) -> int:
            return r * sum(min(k, n) for n in tensor_sizes) * n_params

        if cost(rows, k) > limit:
            fit = limit // max(1, cost(1, k))
            if rows_sent and fit >= 1:
                raise Unprocessable(("body", "X"), f"{rows} rows x {sum(min(k, n) for n in tensor_sizes)} checked "
                                                   f"entries x {n_params} parameters exceeds the gradcheck cost limit "
                                                   f"{limit}; send at most {fit} rows")
            rows = max(1, min(rows, fit)) if not rows_sent else rows
        while k > 1 and cost(rows, k) > limit:
            k = max(1, min(k - 1, int(k * limit / cost(rows, k))))
        if cost(rows, k) > limit:
            loc = ("body", "X") if rows_sent and rows > 1 else ("path", "model_id")
            raise Unprocessable(loc, f"{rows} rows x {len(tensor_sizes)} checked entries x {n_params} parameters "
                                     f"exceeds the gradcheck cost limit {limit}" +
                                     ("; send fewer rows" if loc[0] == "body" else ": the network is too large to "
                                      "check under PLAYGROUND_GRADCHECK_MAX_COST"))
        return rows, k
