"""POST /api/models/{id}/derive: your backward pass written as equations or as code, run on the model, diagnosed.

With ``code`` instead of ``equations`` the Python source of ``def backward(...)`` is run by app.engine.program's
restricted interpreter (never exec): a construct outside it, or past PLAYGROUND_DERIVE_MAX_CODE_* or the bytes and
operations bounds, is a 422 at ["body", "code"] naming the line.

The equations are parsed by the engine (app.engine.derive: Python's ``ast`` with a whitelist, never
``eval``). A syntax error or a name outside the language is the request's fault: 422 naming the equation
and the position. A shape error is the student's mathematics, not a bad request: 200 with ``first_error``.
Equations whose values would pass PLAYGROUND_DERIVE_MAX_BYTES, or whose work would pass
PLAYGROUND_DERIVE_MAX_COST, are a 422 naming the equation and the bound. The derivation runs on a copy of
the network taken under the model's lock, outside it, and stops when its client leaves (499).
"""
from __future__ import annotations

import logging
import threading

import numpy as np
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api.body import BodyRoute
from app.api.deps import ModelId, Repo, SettingsDep
from app.api.disconnect import CLIENT_LEFT, run_while_connected
from app.api.routes.inspect import student_batch
from app.api.schemas import DeriveExamples, DeriveRequest, DeriveResponse, to_json
from app.service.errors import Unprocessable as unprocessable
from app.engine import derive as engine
from app.engine.bounds import Bounds, Cancelled
from app.engine.derive import DeriveOverBudget, DeriveSyntaxError, derive as run_derive
from app.engine.gradcheck import network_copy
from app.engine.program import FIXED_CODE, QUESTION_CODE, CodeBounds, CodeOverBudget, CodeRefused, run_code

router = APIRouter(tags=["inspect"], route_class=BodyRoute)  # large bodies: app/api/body.py
log = logging.getLogger("playground")
SETTING = {"bytes": "PLAYGROUND_DERIVE_MAX_BYTES", "cost": "PLAYGROUND_DERIVE_MAX_COST"}
CODE_SETTING = {**SETTING, "iterations": "PLAYGROUND_DERIVE_MAX_CODE_ITERATIONS"}


def check_bounds(body: DeriveRequest, settings) -> None:
    """Every bound before any work: code xor equations, code length, equation count, expression length, rows."""
    if (body.code is None) == (body.equations is None):
        field = "code" if body.code is not None else "equations"
        raise unprocessable(("body", field), "give either equations or code, not both" if body.code is not None
                            else "give equations [{\"target\", \"expr\"}] or code (Python source defining "
                                 "def backward(...))")
    if body.X is not None and len(body.X) > settings.derive_max_rows:
        raise unprocessable(("body", "X"), f"has {len(body.X)} rows; the limit is {settings.derive_max_rows}")
    if body.code is not None:
        if len(body.code) > settings.derive_max_code_chars:
            raise unprocessable(("body", "code"), f"has {len(body.code)} characters; the limit is "
                                                  f"{settings.derive_max_code_chars} (PLAYGROUND_DERIVE_MAX_CODE_CHARS)")
        return
    if len(body.equations) > settings.derive_max_equations:
        raise unprocessable(("body", "equations"), f"has {len(body.equations)} equations; the limit is "
                                                   f"{settings.derive_max_equations}")
    for i, eq in enumerate(body.equations):
        if len(eq.expr) > settings.derive_max_expr_length:
            raise unprocessable(("body", "equations", i, "expr"), f"has {len(eq.expr)} characters; the limit is "
                                                                  f"{settings.derive_max_expr_length}")
    if body.X is not None and len(body.X) > settings.derive_max_rows:
        raise unprocessable(("body", "X"), f"has {len(body.X)} rows; the limit is {settings.derive_max_rows}")


@router.post("/models/{model_id}/derive", response_model=DeriveResponse)
async def derive(model_id: ModelId, body: DeriveRequest, models: Repo, settings: SettingsDep,
                 request: Request) -> dict | Response:
    """Evaluate your equations for delta, dW and db layer by layer in the columns (the question's) or rows
    (the engine's) convention, on X, y (default: the batch GET /gradients uses), and compare every dW and db
    with backprop. ``first_error`` names the layer, the equation and what is wrong, shape errors included.

    Bounded by PLAYGROUND_DERIVE_MAX_BYTES (values held at once) and PLAYGROUND_DERIVE_MAX_COST (operations,
    the repair search with as many again): 422 naming the equation past either. It runs on a copy of the
    network, outside the model's lock, and stops when the client leaves."""
    check_bounds(body, settings)
    equations = [eq.model_dump() for eq in body.equations] if body.equations is not None else None
    net, Xb, yb = await run_in_threadpool(_derive_input, model_id, models, settings, body)
    bounds = Bounds.of(settings)

    def compute(leaving: threading.Event) -> dict | None:
        if body.code is not None:
            return _run_code(net, Xb, yb, body, bounds, CodeBounds.of(settings), leaving)
        try:
            return to_json(run_derive(net, Xb, yb, equations, body.convention, bounds, leaving.is_set))
        except Cancelled:
            return None
        except DeriveOverBudget as e:
            raise unprocessable(("body", "equations", e.index, "expr"), f"{e} ({SETTING[e.resource]})") from None
        except DeriveSyntaxError as e:
            field = "target" if e.message.startswith("target ") else "expr"
            raise unprocessable(("body", "equations", e.index, field), f"position {e.position}: {e.message}") from None
        except ValueError as e:  # structurally invalid equations (a target the engine cannot place)
            raise unprocessable(("body", "equations"), str(e)) from None
        except (TypeError, ArithmeticError, IndexError) as e:
            # an expression the engine does not handle (e.g. fprime of a number): the client's input, never a 500;
            # logged so the gap is seen and closed in the engine
            log.warning("derive could not evaluate %r: %s: %s", equations, type(e).__name__, e)
            raise unprocessable(("body", "equations"), "these equations cannot be evaluated: an operation received "
                                                       "a value it does not take (e.g. fprime of a number; write "
                                                       "fprime(a[k]))") from None

    out, left = await run_while_connected(request, compute)
    if left or out is None:  # the client left and the work stopped: nobody reads this answer
        return Response(status_code=CLIENT_LEFT)
    return out


def _run_code(net, Xb, yb, body, bounds, code_bounds, leaving: threading.Event) -> dict | None:
    """The code's run (app.engine.program): a refusal or a bound is a 422 naming the line, at ["body", "code"]."""
    try:
        return to_json(run_code(net, Xb, yb, body.code, body.convention, bounds, code_bounds, leaving.is_set))
    except Cancelled:
        return None
    except CodeRefused as e:
        raise unprocessable(("body", "code"), str(e)) from None
    except CodeOverBudget as e:
        raise unprocessable(("body", "code"), f"{e} ({CODE_SETTING[e.resource]})") from None


def _derive_input(model_id, models, settings, body):
    """Under the model's lock: a copy of the network (its own dtype) and the batch; the lock is released on return."""
    with models.use(model_id) as model:
        Xb, yb = student_batch(model, settings, body.X, body.y)
        return network_copy(model.net), np.array(Xb), np.array(yb)


@router.get("/derive/examples", response_model=DeriveExamples)
def examples() -> dict:
    """Equation sets to start from, for the question's setting (MSE): the question's recurrence (its mistake
    included) and the correct backward pass, in the columns (the question's) and rows (the engine's) conventions."""
    return {"question": engine.QUESTION_EQUATIONS, "correct": engine.CORRECT_EQUATIONS,
            "code": {"question": QUESTION_CODE, "fixed": FIXED_CODE}}


def examples_for(net) -> dict:
    """The example sets for this network: the engine's correct equations for its loss, output and bias, and the
    question's recurrence with the same output error (its mistake is in the hidden layers, not the loss)."""
    correct = {c: engine.correct_equations(net, c) for c in engine.CONVENTIONS}
    question = {c: [{**eq, "expr": correct[c][0]["expr"]} if eq["target"] == "delta[L]" else eq
                    for eq in eqs if net.bias or not eq["target"].startswith("db")]
                for c, eqs in engine.QUESTION_EQUATIONS.items()}
    return {"question": question, "correct": correct, "code": {"question": QUESTION_CODE, "fixed": FIXED_CODE}}


@router.get("/models/{model_id}/derive/examples", response_model=DeriveExamples)
def model_examples(model_id: ModelId, models: Repo) -> dict:
    """The example sets adapted to this model: delta_L for its loss (y_hat - y when the loss and the output
    activation fuse, as bce with sigmoid), and no db equations without biases."""
    with models.use(model_id) as model:
        return examples_for(model.net)
