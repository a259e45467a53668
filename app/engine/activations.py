"""Elementwise activations z = f(a): each class is the one home of its function, derivative,
parameters, derivative text (the trace and the catalog) and NumPy snippets (the export script).

Definitions and default parameters follow PyTorch (torch.nn.functional), so results can be
compared with it one to one. Every backward takes the cached pre-activation a, the output z and
dz = dL/dz, all of shape (B, n), and returns delta = dL/da of the same shape.

Export snippets (codegen.py) are plain strings of Python for a script that imports NumPy alone:
``helper`` defines f (empty when NumPy has a name for it), ``call(arg)`` applies it, and
``delta_code(i)`` writes delta_i = dz_i * f'(a_i) with the script's names a{i}, z{i}, dz{i}.
"""
from __future__ import annotations

import numpy as np


def _num(v: float) -> str:
    """A float literal that reads back as the same float64."""
    return repr(float(v))


class Activation:
    """Base class: an elementwise map with optional parameters (``defaults``, PyTorch's values)."""

    name = "activation"
    output_only = False    # softmax mixes a row, so it may only close the network
    defaults: dict = {}    # parameter name -> PyTorch's default
    kinks: tuple = ()      # values of a where f' jumps: any subgradient between the one-sided slopes is right
    needs: tuple = ()      # helpers the export's helper calls (silu and softplus call sigmoid)
    helper: tuple = ()     # export: lines defining f in the script; () when NumPy has a name for it
    # the usual wrong forms of f'(a): (as written, why it is wrong, f'(a, z) as the student computes it)
    wrong_derivatives: tuple = ()

    def __init__(self, **params):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ValueError(f"{self.name} has no parameter(s) {sorted(unknown)}; "
                             f"its parameters are {sorted(self.defaults) or 'none'}")
        for k, default in self.defaults.items():
            setattr(self, k, float(params.get(k, default)))

    @property
    def params(self) -> dict:
        """The parameters as floats, e.g. {"negative_slope": 0.01}; {} for a parameter-free f."""
        return {k: getattr(self, k) for k in self.defaults}

    def forward(self, a: np.ndarray) -> np.ndarray:
        """z = f(a), shape (B, n)."""
        raise NotImplementedError

    def backward(self, a: np.ndarray, z: np.ndarray, dz: np.ndarray) -> np.ndarray:
        """delta = dz * f'(a), shape (B, n)."""
        raise NotImplementedError

    def derivative(self, a: np.ndarray, z: np.ndarray) -> np.ndarray:
        """f'(a) elementwise (the ones-vector backward)."""
        return self.backward(a, z, np.ones_like(a))

    def slopes(self, kink: float) -> tuple[float, float]:
        """(left, right) one-sided derivatives at a kink; the subgradients lie between them."""
        raise NotImplementedError

    # -- text for the trace and the catalog -------------------------------------------------
    # f'(a) in the derive language with bare a and z (the layer's a[k], z[k]); None without a short form
    derivative_expr: str | None = None

    @property
    def derivative_text(self) -> str:
        """f'(a) written with a and z, e.g. "z(1 - z)"."""
        raise NotImplementedError

    # -- NumPy export snippets --------------------------------------------------------------
    def call(self, arg: str) -> str:
        """f(arg) as code; non-default parameters are written out (all of them by name when several)."""
        changed = {k: v for k, v in self.params.items() if v != self.defaults[k]}
        extra = ([f"{k}={v!r}" for k, v in self.params.items()] if changed and len(self.defaults) > 1
                 else [repr(v) for v in changed.values()])
        return f"{self.name}({', '.join([arg] + extra)})"

    def delta_code(self, i: int) -> list[tuple[str, str]]:
        """[(code, comment)]: delta{i} from dz{i}, a{i}, z{i}, the engine's formula."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


class Identity(Activation):
    name = "identity"
    derivative_expr = "1"
    derivative_text = "1"
    wrong_derivatives = (("a", "the pre-activation itself, not the derivative 1", lambda a, z: a),)
    note = "# identity: z = a; its derivative is 1."

    def forward(self, a):
        return a

    def backward(self, a, z, dz):
        return dz

    def call(self, arg):
        return arg

    def delta_code(self, i):
        return [(f"delta{i} = dz{i}", "f'(a) = 1")]


class Sigmoid(Activation):
    name = "sigmoid"
    derivative_expr = "z*(1 - z)"
    derivative_text = "z(1 - z)"
    wrong_derivatives = (("a(1 - a)", "the wrong variable: the formula takes z = sigmoid(a), not a",
                          lambda a, z: a * (1.0 - a)),
                         ("z(1 + z)", "the wrong sign", lambda a, z: z * (1.0 + z)),
                         ("1 - z^2", "tanh's derivative", lambda a, z: 1.0 - z * z))
    helper = ('def sigmoid(a):',
              '    """1 / (1 + e^-a), written with tanh so that it never overflows.',
              '',
              '    Derivative: sigmoid\'(a) = z * (1 - z) with z = sigmoid(a)."""',
              '    return 0.5 * (1.0 + np.tanh(0.5 * a))')

    def forward(self, a):
        # tanh form never overflows: sigmoid(1000) is exactly 1.0, sigmoid(-1000) exactly 0.0
        return 0.5 * (1.0 + np.tanh(0.5 * a))

    def backward(self, a, z, dz):
        return dz * z * (1.0 - z)

    def delta_code(self, i):
        return [(f"delta{i} = dz{i} * z{i} * (1 - z{i})", "f'(a) = z (1 - z)")]


class Tanh(Activation):
    name = "tanh"
    derivative_expr = "1 - z*z"
    derivative_text = "1 - z^2"
    wrong_derivatives = (("1 + z^2", "the wrong sign", lambda a, z: 1.0 + z * z),
                         ("1 - a^2", "the wrong variable: the formula takes z = tanh(a), not a",
                          lambda a, z: 1.0 - a * a),
                         ("z(1 - z)", "sigmoid's derivative", lambda a, z: z * (1.0 - z)))
    note = "# tanh is np.tanh; tanh'(a) = 1 - z**2 with z = tanh(a)."

    def forward(self, a):
        return np.tanh(a)

    def backward(self, a, z, dz):
        d = z * z
        np.subtract(1.0, d, out=d)
        d *= dz
        return d

    def call(self, arg):
        return f"np.tanh({arg})"

    def delta_code(self, i):
        return [(f"delta{i} = dz{i} * (1 - z{i}**2)", "f'(a) = 1 - z^2")]


class ReLU(Activation):
    name = "relu"
    derivative_expr = "(a > 0)"
    derivative_text = "[a > 0]"
    wrong_derivatives = (("z", "relu itself, not its derivative", lambda a, z: z),
                         ("a", "the pre-activation, not a derivative", lambda a, z: a))
    kinks = (0.0,)
    helper = ('def relu(a):',
              '    """max(a, 0). Derivative: 1 where a > 0, else 0 (PyTorch takes relu\'(0) = 0)."""',
              '    return np.maximum(a, 0.0)')

    def forward(self, a):
        return np.maximum(a, 0.0)

    def backward(self, a, z, dz):
        return dz * (a > 0)  # PyTorch's convention: f'(0) = 0

    def slopes(self, kink):
        return 0.0, 1.0

    def delta_code(self, i):
        return [(f"delta{i} = dz{i} * (a{i} > 0)", "f'(a) = 1 if a > 0 else 0")]


class LeakyReLU(Activation):
    name = "leaky_relu"
    defaults = {"negative_slope": 0.01}
    kinks = (0.0,)

    def forward(self, a):
        return np.where(a > 0, a, self.negative_slope * a)

    def backward(self, a, z, dz):
        return dz * np.where(a > 0, 1.0, self.negative_slope).astype(a.dtype, copy=False)

    def slopes(self, kink):
        return self.negative_slope, 1.0

    @property
    def wrong_derivatives(self):
        s = self.negative_slope
        return (("[a > 0]", "relu's derivative: the slope negative_slope below 0 is missing",
                 lambda a, z: (a > 0).astype(a.dtype)),
                (f"{s:g} [a > 0] + [a <= 0]", "the two slopes swapped", lambda a, z: np.where(a > 0, s, 1.0)),
                ("z", "leaky_relu itself, not its derivative", lambda a, z: z))

    @property
    def derivative_text(self):
        return f"[a > 0] + {self.negative_slope:g} [a <= 0]"

    @property
    def helper(self):
        return (f'def leaky_relu(a, negative_slope={self.defaults["negative_slope"]!r}):',
                '    """a where a > 0, else negative_slope * a (PyTorch\'s default slope 0.01).',
                '',
                '    Derivative: 1 where a > 0, else negative_slope."""',
                '    return np.where(a > 0, a, negative_slope * a)')

    def delta_code(self, i):
        s = _num(self.negative_slope)
        return [(f"delta{i} = dz{i} * np.where(a{i} > 0, 1.0, {s})", f"f'(a) = 1 if a > 0 else {s}")]


class ELU(Activation):
    name = "elu"
    defaults = {"alpha": 1.0}

    @property
    def kinks(self):
        return () if self.alpha == 1.0 else (0.0,)  # slopes 1 and alpha meet only when alpha = 1

    def forward(self, a):
        return np.where(a > 0, a, self.alpha * np.expm1(np.minimum(a, 0.0)))

    def backward(self, a, z, dz):
        return dz * np.where(a > 0, 1.0, z + self.alpha)  # alpha*e^a = z + alpha for a <= 0

    def slopes(self, kink):
        return min(self.alpha, 1.0), max(self.alpha, 1.0)

    @property
    def wrong_derivatives(self):
        al = self.alpha
        return (("[a > 0] + z [a <= 0]", "the wrong variable: alpha e^a is z + alpha, not z",
                 lambda a, z: np.where(a > 0, 1.0, z)),
                (f"{al:g} e^a", "the negative branch's formula used for a > 0 too",
                 lambda a, z: al * np.exp(np.minimum(a, 50.0))),
                ("z", "elu itself, not its derivative", lambda a, z: z))

    @property
    def derivative_text(self):
        return f"[a > 0] + (z + {self.alpha:g}) [a <= 0]"

    @property
    def helper(self):
        return (f'def elu(a, alpha={self.defaults["alpha"]!r}):',
                '    """a where a > 0, else alpha * (e^a - 1) (PyTorch\'s default alpha 1).',
                '',
                '    Derivative: 1 where a > 0, else alpha * e^a = z + alpha."""',
                '    return np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0.0)))')

    def delta_code(self, i):
        al = _num(self.alpha)
        return [(f"delta{i} = dz{i} * np.where(a{i} > 0, 1.0, z{i} + {al})",
                 f"f'(a) = 1 if a > 0 else alpha e^a = z + {al}")]


class Softplus(Activation):
    name = "softplus"
    defaults = {"beta": 1.0, "threshold": 20.0}
    needs = ("sigmoid",)

    def forward(self, a):
        ba = self.beta * a
        # above the threshold PyTorch returns a itself, which also avoids exp overflow
        return np.where(ba > self.threshold, a, np.logaddexp(0.0, ba) / self.beta)

    def backward(self, a, z, dz):
        ba = self.beta * a
        return dz * np.where(ba > self.threshold, 1.0, 0.5 * (1.0 + np.tanh(0.5 * ba)))

    @property
    def derivative_text(self):
        return "sigmoid(a)" if self.beta == 1.0 else f"sigmoid({self.beta:g} a)"

    @property
    def wrong_derivatives(self):
        be = self.beta
        sig = lambda x: 0.5 * (1.0 + np.tanh(0.5 * x))
        return (("sigmoid(-a)", "the wrong sign: 1 / (1 + e^a)", lambda a, z: sig(-be * a)),
                ("sigmoid(a)(1 - sigmoid(a))", "sigmoid's derivative: softplus' is sigmoid itself",
                 lambda a, z: sig(be * a) * (1.0 - sig(be * a))),
                ("z", "softplus itself, not its derivative", lambda a, z: z))

    @property
    def helper(self):
        d = self.defaults
        return (f'def softplus(a, beta={d["beta"]!r}, threshold={d["threshold"]!r}):',
                '    """log(1 + e^(beta a)) / beta; PyTorch returns a itself once beta * a > threshold.',
                '',
                '    Derivative: sigmoid(beta * a), and 1 above the threshold."""',
                '    return np.where(beta * a > threshold, a, np.logaddexp(0.0, beta * a) / beta)')

    def delta_code(self, i):
        ba = f"a{i}" if self.beta == 1.0 else f"{_num(self.beta)} * a{i}"
        return [(f"delta{i} = dz{i} * np.where({ba} > {_num(self.threshold)}, 1.0, sigmoid({ba}))",
                 f"f'(a) = sigmoid({'' if self.beta == 1.0 else 'beta '}a)")]


class SiLU(Activation):
    name = "silu"
    derivative_text = "s(1 + a(1 - s)), s = sigmoid(a)"
    needs = ("sigmoid",)
    helper = ('def silu(a):',
              '    """a * sigmoid(a), also called swish.',
              '',
              '    Derivative: s * (1 + a * (1 - s)) with s = sigmoid(a)."""',
              '    return a * sigmoid(a)')

    def forward(self, a):
        return a * (0.5 * (1.0 + np.tanh(0.5 * a)))

    def backward(self, a, z, dz):
        s = 0.5 * (1.0 + np.tanh(0.5 * a))
        return dz * s * (1.0 + a * (1.0 - s))

    wrong_derivatives = (("s", "the product rule's second term a s(1 - s) is missing",
                          lambda a, z: 0.5 * (1.0 + np.tanh(0.5 * a))),
                         ("s(1 - s)", "sigmoid's derivative, not silu's",
                          lambda a, z: (lambda s: s * (1.0 - s))(0.5 * (1.0 + np.tanh(0.5 * a)))),
                         ("1 + a(1 - s)", "the factor s is missing",
                          lambda a, z: 1.0 + a * (1.0 - 0.5 * (1.0 + np.tanh(0.5 * a)))))

    def delta_code(self, i):
        return [(f"s{i} = sigmoid(a{i})", ""),
                (f"delta{i} = dz{i} * s{i} * (1 + a{i} * (1 - s{i}))", "f'(a) = s (1 + a (1 - s))")]


class Softmax(Activation):
    """Row-wise softmax; allowed on the output layer only, paired with cross_entropy."""

    name = "softmax"
    output_only = True
    derivative_text = "diag(z) - z z^T (per row)"
    helper = ('def softmax(a):',
              '    """Row-wise e^a / sum(e^a); subtracting the row maximum first avoids overflow.',
              '',
              '    Its derivative is a Jacobian per row, J = diag(z) - z z^T; backprop only needs',
              '    J^T dz = z * (dz - sum(dz * z)), one row at a time."""',
              '    e = np.exp(a - a.max(axis=1, keepdims=True))',
              '    return e / e.sum(axis=1, keepdims=True)')

    def forward(self, a):
        e = np.exp(a - a.max(axis=1, keepdims=True))
        e /= e.sum(axis=1, keepdims=True)
        return e

    def backward(self, a, z, dz):
        # Jacobian-vector product of softmax: z * (dz - <dz, z>) per row
        return z * (dz - (dz * z).sum(axis=1, keepdims=True))

    def derivative(self, a, z):
        raise TypeError("softmax has a Jacobian, not an elementwise derivative")

    def delta_code(self, i):
        return [(f"delta{i} = z{i} * (dz{i} - (dz{i} * z{i}).sum(axis=1, keepdims=True))",
                 "J^T dz per row, J = diag(z) - z z^T")]


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls
    for cls in (Identity, Sigmoid, Tanh, ReLU, LeakyReLU, ELU, Softplus, SiLU, Softmax)
}
# derived from the classes (default parameters), for the catalog
DERIVATIVE_TEXT = {name: cls().derivative_text for name, cls in ACTIVATIONS.items()}


def get_activation(name: str, **params) -> Activation:
    """Instantiate an activation by name, with PyTorch's default parameters unless given."""
    try:
        cls = ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}") from None
    return cls(**params)


def catalog() -> list[dict]:
    """Every activation with its default parameters, placement rule and derivative text."""
    return [{"name": n, "params": dict(cls.defaults), "output_only": cls.output_only,
             "derivative": DERIVATIVE_TEXT[n]} for n, cls in ACTIVATIONS.items()]
