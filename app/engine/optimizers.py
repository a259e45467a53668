"""Optimizers on the flat parameter vector, following torch.optim's update rules.

``step(p, g)`` commits an update only when the new parameters and state are all finite and
returns False otherwise, leaving everything at its last finite value. Hyper-parameters are
plain attributes, so they can change between steps without losing state.
"""
from __future__ import annotations

import math

import numpy as np


LEARNING_RATE = 0.03
"""Every optimizer's default learning rate (the spec's and the catalog's default too)."""


class Optimizer:
    """``defaults`` holds the hyper-parameters and their default values; ``hyper`` their names."""

    name = "optimizer"
    defaults: dict = {"learning_rate": LEARNING_RATE}
    hyper: tuple[str, ...] = tuple(defaults)

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.hyper = tuple(cls.defaults)

    def __init__(self, n: int, dtype, **hyper):
        """n parameters of the given dtype; hyper-parameters not given take ``defaults``, others are ignored."""
        for k, v in {**self.defaults, **hyper}.items():
            if k in self.defaults:
                setattr(self, k, v)
        self.t = 0

    def step(self, p: np.ndarray, g: np.ndarray) -> bool:
        """Update p in place from gradient g; False (and no change) if the result is not finite."""
        new_p, new_state = self._propose(p, g)
        if not np.isfinite(new_p).all() or not all(np.isfinite(s).all() for s in new_state.values()):
            return False
        p[...] = new_p
        self.__dict__.update(new_state)
        self.t += 1
        return True

    def _propose(self, p, g) -> tuple[np.ndarray, dict]:
        raise NotImplementedError

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Arrays that must be saved to resume exactly."""
        return {}

    def set_hyper(self, **values) -> None:
        """Change hyper-parameters in place; state is kept."""
        for k, v in values.items():
            if k in self.hyper and v is not None:
                setattr(self, k, v)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)}" for k in self.hyper)
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """w <- w - lr g."""

    name = "sgd"

    def _propose(self, p, g):
        new = g * -self.learning_rate
        new += p
        return new, {}


class Momentum(Optimizer):
    """v <- mu v + g; w <- w - lr v (nesterov: w <- w - lr (g + mu v))."""

    name = "momentum"
    defaults = {"learning_rate": LEARNING_RATE, "momentum": 0.9, "nesterov": False}

    def __init__(self, n, dtype, **hyper):
        super().__init__(n, dtype, **hyper)
        self.v = np.zeros(n, dtype)

    def _propose(self, p, g):
        v = self.momentum * self.v + g
        direction = g + self.momentum * v if self.nesterov else v
        return p - self.learning_rate * direction, {"v": v}

    def state_arrays(self):
        return {"v": self.v}


class Adam(Optimizer):
    """m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2; w <- w - lr m_hat / (sqrt(v_hat) + eps)."""

    name = "adam"
    defaults = {"learning_rate": LEARNING_RATE, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}

    def __init__(self, n, dtype, **hyper):
        super().__init__(n, dtype, **hyper)
        self.m, self.v = np.zeros(n, dtype), np.zeros(n, dtype)

    def _propose(self, p, g):
        t = self.t + 1
        m = self.beta1 * self.m + (1 - self.beta1) * g
        v = self.beta2 * self.v + (1 - self.beta2) * (g * g)
        # torch's arrangement: lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
        bc1, bc2 = 1 - self.beta1 ** t, 1 - self.beta2 ** t
        denom = np.sqrt(v) / math.sqrt(bc2) + self.eps  # a Python float keeps float32 state in float32
        return p - (self.learning_rate / bc1) * (m / denom), {"m": m, "v": v}

    def state_arrays(self):
        return {"m": self.m, "v": self.v}


OPTIMIZERS: dict[str, type[Optimizer]] = {cls.name: cls for cls in (SGD, Momentum, Adam)}

OPTIMIZER_DEFAULTS = {name: dict(cls.defaults) for name, cls in OPTIMIZERS.items()}


def make_optimizer(n: int, dtype, name: str, **hyper) -> Optimizer:
    """Instantiate an optimizer for a flat vector of n parameters."""
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}") from None
    return cls(n, dtype, **{k: v for k, v in hyper.items() if k in cls.hyper})
