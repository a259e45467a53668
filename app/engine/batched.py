"""One training step for many models of the same shape: stacked weights, ``np.matmul`` over a model axis.

On nets as small as the playground's, a NumPy step is mostly the fixed cost of each call; stacking K
models of one architecture shares that cost among them. Every model keeps its own data,
minibatch sampler, learning rate, optimizer state, history and divergence, and its results are bit
for bit those of ``Model.train`` on that model alone:

- the matrix products run as one BLAS call per model slice (numpy's matmul loops over the stacked
  axis with the same kernel and transposition flags as the 2-D call);
- elementwise operations (bias, hidden activations, their derivatives, the optimizer) give the
  same number per element however the array is shaped;
- what reduces over a batch in a way whose order depends on the shape (the output activation, the
  loss and its delta, the penalty) runs per model on that model's slice, through the same functions
  ``Network`` uses; db's sum and the gradient norms reduce in the same order stacked as alone (row
  by row over the batch axis; reduceat along each model's row).

``train_together`` accepts models that can share a step (same sizes, activations, loss, bias,
dtype, regularization kind, optimizer sgd or adam, batch size, no divergence); ``can_share`` says
which. Checkpoints and time budgets are the caller's: call it for a few steps at a time.
"""
from __future__ import annotations

import math

import numpy as np

from .model import Model, TrainResult
from .optimizers import SGD, Adam


def group_key(model: Model):
    """Models with equal keys can train in one stacked step (None: this model trains alone)."""
    net, opt = model.net, model.optimizer
    # float64 only: a float32 model mixes Python-float hyper-parameters in a way an array cannot copy
    if type(opt) not in (SGD, Adam) or model.diverged_at is not None or net.dtype != np.float64:
        return None
    acts = tuple((a.f.name, tuple(sorted(getattr(a.f, "params", {}).items()))) for a in net.acts)
    return (tuple(net.sizes), acts, net.loss.name, net.bias, net.dtype.str, net.regularization,
            type(opt).__name__, model.batch_size, len(model.X_train) > model.batch_size)


def can_share(models: list[Model]) -> bool:
    keys = {group_key(m) for m in models}
    return len(keys) == 1 and None not in keys


def train_together(models: list[Model], steps: int) -> list[TrainResult]:
    """``steps`` steps of every model, stacked; the same TrainResults as ``[m.train(steps) for m in models]``."""
    if len(models) < 2 or not can_share(models):
        return [m.train(steps) for m in models]
    return _Stack(models).run(steps)


def _output_and_loss(net, a_out: np.ndarray, Y: np.ndarray) -> tuple[list[float], np.ndarray]:
    """The output activation, each model's data loss and the output delta on (K, B, n) logits.

    Every sum is the one the model's own loss takes on its (B, n) slice: a whole-slice sum is a row
    of (K, B*n) reduced along axis 1 (the same pairwise order), MSE's ``vdot`` is a (1, B*n) @
    (B*n, 1) matmul per slice (the same BLAS dot), softmax's row sums run along the last axis.
    """
    K, B, n = a_out.shape
    out_f, loss = net.acts[-1].f, net.loss
    z = out_f.forward(a_out) if out_f.name != "softmax" else _softmax(a_out)
    if loss.name == "mse":
        r = (z - Y).reshape(K, 1, B * n)
        sums = np.matmul(r, r.transpose(0, 2, 1)).reshape(K)
        d = (2.0 / B) * (z - Y)
    elif net._fused and loss.name == "bce":
        sums = (np.logaddexp(0.0, a_out) - a_out * Y).reshape(K, B * n).sum(axis=1)
        return [float(v) / B for v in sums], (z - Y) / B
    elif net._fused and loss.name == "cross_entropy":
        m = a_out.max(axis=2, keepdims=True)
        lse = m + np.log(np.exp(a_out - m).sum(axis=2, keepdims=True))
        sums = (Y * (lse - a_out)).reshape(K, B * n).sum(axis=1)
        return [float(v) / B for v in sums], (z - Y) / B
    else:  # any other pairing: the loss's own functions on each model's slice
        losses, delta = [], np.empty_like(a_out)
        for j in range(K):
            losses.append(loss.value(z[j], Y[j]))
            delta[j] = out_f.backward(a_out[j], z[j], loss.grad(z[j], Y[j]))
        return losses, delta
    if out_f.name == "softmax":
        delta = z * (d - (d * z).sum(axis=2, keepdims=True))
    else:
        delta = out_f.backward(a_out, z, d)
    return [float(v) / B for v in sums], delta


def _softmax(a: np.ndarray) -> np.ndarray:
    """Softmax.forward with its row reductions on the last axis of (K, B, n)."""
    e = np.exp(a - a.max(axis=2, keepdims=True))
    e /= e.sum(axis=2, keepdims=True)
    return e


class _Stack:
    def __init__(self, models: list[Model]):
        self.models = models
        net = models[0].net
        self.net, self.K = net, len(models)
        self.params = np.stack([m.net.params for m in models])      # (K, P)
        self.grads = np.zeros_like(self.params)
        per = 2 if net.bias else 1
        o = net.offsets
        shapes = [(d.n_out, d.n_in) for d in net.dense]
        self.W = [self.params[:, o[per * i]:o[per * i + 1]].reshape(self.K, *s) for i, s in enumerate(shapes)]
        self.dW = [self.grads[:, o[per * i]:o[per * i + 1]].reshape(self.K, *s) for i, s in enumerate(shapes)]
        self.b = [self.params[:, o[per * i + 1]:o[per * i + 2]] for i in range(len(shapes))] if net.bias else None
        self.db = [self.grads[:, o[per * i + 1]:o[per * i + 2]] for i in range(len(shapes))] if net.bias else None
        self.adam = isinstance(models[0].optimizer, Adam)
        if self.adam:
            self.m = np.stack([m.optimizer.m for m in models])
            self.v = np.stack([m.optimizer.v for m in models])

    # -- one stacked step -------------------------------------------------------------------------
    def _step(self, active: list[int], X: np.ndarray, Y: np.ndarray) -> list[float]:
        """Forward, backward and the proposed update for the active rows; returns each model's loss."""
        net, rows = self.net, np.asarray(active)
        W = [w[rows] for w in self.W]
        b = [bb[rows] for bb in self.b] if net.bias else None
        xs, zs, z = [], [], X
        L = net.n_layers
        for i in range(L):
            xs.append(z)
            a = np.matmul(z, W[i].transpose(0, 2, 1))
            if net.bias:
                a += b[i][:, None, :]
            if i < L - 1:
                z = net.acts[i].f.forward(a)
                zs.append((a, z))
            else:
                a_out = a
        losses, delta = _output_and_loss(net, a_out, Y)
        g = np.zeros((len(active), self.params.shape[1]), self.params.dtype)
        per = 2 if net.bias else 1
        o = net.offsets
        for i in range(L - 1, -1, -1):
            dW = g[:, o[per * i]:o[per * i + 1]].reshape(len(active), *self.W[i].shape[1:])
            np.matmul(delta.transpose(0, 2, 1), xs[i], out=dW)
            if net.bias:  # row by row over the batch axis, as Dense.backward's np.add.reduce(axis=0)
                np.add.reduce(delta, axis=1, out=g[:, o[per * i + 1]:o[per * i + 2]])
            if i > 0:
                dz = np.matmul(delta, W[i])
                a_prev, z_prev = zs[i - 1]
                delta = net.acts[i - 1].f.backward(a_prev, z_prev, dz)
        self._g = g
        if net.regularization != "none":
            for j, k in enumerate(active):
                losses[j] += self._penalty(k, g[j])
        return losses

    def _penalty(self, k: int, g: np.ndarray) -> float:
        """Network._add_penalty for model k, on its stacked parameters and gradient row."""
        net, rate = self.models[k].net, self.models[k].net.reg_rate
        if rate == 0.0:
            return 0.0
        w = self.params[k] * net.weight_mask
        if net.regularization == "l2":
            g += rate * w
            return 0.5 * rate * float(w @ w)
        g += rate * np.sign(w)
        return rate * float(np.abs(w).sum())

    def _update(self, active: list[int], ok: np.ndarray) -> None:
        """Commit the optimizer step for the active models whose proposal is finite (ok is updated)."""
        rows, g = np.asarray(active), self._g
        opts = [self.models[k].optimizer for k in active]
        p = self.params[rows]
        lr = self._lr[rows]
        if not self.adam:
            new = g * -lr
            new += p
            state = ()
        else:
            t = [o.t + 1 for o in opts]
            b1, b2, eps = self._b1[rows], self._b2[rows], self._eps[rows]
            bc1 = np.array([[1 - o.beta1 ** tt] for o, tt in zip(opts, t)])
            sq_bc2 = np.array([[math.sqrt(1 - o.beta2 ** tt)] for o, tt in zip(opts, t)])
            m = b1 * self.m[rows] + (1 - b1) * g
            v = b2 * self.v[rows] + (1 - b2) * (g * g)
            denom = np.sqrt(v) / sq_bc2 + eps
            new = p - (lr / bc1) * (m / denom)
            state = (m, v)
        finite = np.isfinite(new).all(axis=1)
        for s in state:
            finite &= np.isfinite(s).all(axis=1)
        ok &= finite
        self.grads[rows] = g
        keep = rows[ok]
        self.params[keep] = new[ok]
        if self.adam:
            self.m[keep], self.v[keep] = state[0][ok], state[1][ok]
        for j in np.nonzero(ok)[0]:
            opts[j].t += 1

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, steps: int) -> list[TrainResult]:
        models, K = self.models, self.K
        opts = [m.optimizer for m in models]
        # hyper-parameters change between runs only (a PATCH lands between the scheduler's rounds)
        self._lr = np.array([[o.learning_rate] for o in opts], self.params.dtype)
        if self.adam:
            self._b1, self._b2 = np.array([[o.beta1] for o in opts]), np.array([[o.beta2] for o in opts])
            self._eps = np.array([[o.eps] for o in opts])
        every = [m.eval_every for m in models]
        sizes = [len(m.X_train) for m in models]
        for m in models:
            m.diverged_at = None
        losses = [[] for _ in models]
        norms = [[] for _ in models]
        first = [m.step + 1 for m in models]
        alive = list(range(K))
        bs = models[0].batch_size
        for _ in range(steps):
            if not alive:
                break
            # models whose next batch is short (the end of an epoch) train alone this step: same result
            batches, together = {}, []
            for k in alive:
                m = models[k]
                if bs >= sizes[k]:  # full batch: the data in its own order, as Model.train takes it
                    Xb, yb = m.X_train, m.y_train_t
                else:
                    Xp, yp = m._epoch_batches()
                    Xb, yb = Xp[m.cursor:m.cursor + bs], yp[m.cursor:m.cursor + bs]
                batches[k] = (Xb, yb)
                if len(Xb) == bs:
                    together.append(k)
            alone = [k for k in alive if k not in together]
            ok = {}
            if together:
                X = np.stack([batches[k][0] for k in together])
                Y = np.stack([batches[k][1] for k in together])
                step_losses = self._step(together, X, Y)
                flags = np.array([math.isfinite(v) for v in step_losses])
                self._update(together, flags)
                ok.update({k: (bool(f), v) for k, f, v in zip(together, flags, step_losses)})
            for k in alone:
                ok[k] = self._alone(k, *batches[k])
            all_norms = self._all_norms()
            for k in list(alive):
                good, loss = ok[k]
                m = models[k]
                if not good:
                    m.diverged_at = m.step + 1
                    alive.remove(k)
                    continue
                m.step += 1
                losses[k].append(loss)
                norms[k].append(all_norms[k])
                if bs >= sizes[k]:  # a full-batch step is an epoch; no permutation is drawn
                    m.epoch += 1
                else:
                    m.cursor += bs
                    if m.cursor >= sizes[k]:
                        m.epoch, m.cursor = m.epoch + 1, 0
                        m.perm = m.rng.permutation(sizes[k])
                if m.step % every[k] == 0:
                    self._write_back(k, losses, norms, first)
                    m.evaluate()
        results = []
        for k, m in enumerate(models):
            self._write_back(k, losses, norms, first)
            m.evaluate()
            results.append(TrainResult(step=m.step, epoch=m.epoch, steps_done=len(losses[k]), losses=losses[k],
                                       train_loss=m.train_loss, test_loss=m.test_loss,
                                       diverged=m.diverged_at is not None, diverged_at=m.diverged_at,
                                       stopped="diverged" if m.diverged_at is not None else "done"))
        return results

    def _alone(self, k: int, Xb: np.ndarray, yb: np.ndarray) -> tuple[bool, float]:
        """One step of model k by its own network (a short batch), synced with the stack."""
        m = self.models[k]
        net = m.net
        net.params[...] = self.params[k]
        if self.adam:
            m.optimizer.m[...], m.optimizer.v[...] = self.m[k], self.v[k]
        net.forward(Xb)
        loss = net.backward(yb)
        good = math.isfinite(loss) and m.optimizer.step(net.params, net.grads)
        self.params[k], self.grads[k] = net.params, net.grads
        if self.adam:
            self.m[k], self.v[k] = m.optimizer.m, m.optimizer.v
        return good, loss

    def _all_norms(self) -> np.ndarray:
        """||dW_i|| of every model (K, L), with the reductions of Network.weight_grad_norms per row."""
        g = self.grads
        sq = np.add.reduceat(g * g, self.net.offsets[:-1], axis=1)
        return np.sqrt(sq)[:, :: 2 if self.net.bias else 1]

    def _write_back(self, k: int, losses, norms, first) -> None:
        """Model k's parameters, gradient, optimizer state and pending history from the stack."""
        m = self.models[k]
        m.net.params[...] = self.params[k]
        m.net.grads[...] = self.grads[k]
        if self.adam:
            m.optimizer.m[...], m.optimizer.v[...] = self.m[k], self.v[k]
        done = m.history.last_step - first[k] + 1 if m.history.last_step >= first[k] else 0
        pending = losses[k][done:]
        if pending:
            m.history.record_steps(first[k] + done, pending, np.array(norms[k][done:]))
