"""The ``playground`` command: serve the API, train a spec, export a model, check your own gradients.

    playground serve [--host 127.0.0.1] [--port 8000] [--store sqlite:///data/playground.sqlite3] [--workers N]
                     [--no-proxy-headers]
    playground train SPEC.json --steps N [--server URL] [--chunk 100]   # in-process without --server
    playground export ID --format numpy|json|npz [--server URL] [-o FILE]
    playground check ID MY_GRADS.npz|MY_GRADS.json [--server URL] [--X-key X] [--y-key y]
    playground derive ID EQUATIONS.txt|EQUATIONS.json|BACKWARD.py|- [--convention columns|rows] [--server URL]

MY_GRADS.npz holds your gradients dW1, db1, dW2, ... (layers numbered from 1, W_i of shape (out, in)), in
any shape (a matrix, flat, a column, one per sample), and optionally the batch (X, y); without it the
server uses the batch GET /gradients uses. E.g. ``np.savez("my_grads.npz", X=X, y=y, dW1=dW1, db1=db1)``.
MY_GRADS.json is what the page takes: {"X"?, "y"?, "layers": [{"dW", "db"}, ...]}.
EQUATIONS.txt has one ``target = expression`` per line (# starts a comment), e.g.
``delta[i] = (W[i+1].T @ delta[i+1]) * fprime(a[i])``; EQUATIONS.json is [{"target", "expr"}, ...].
``check`` and ``derive`` print a verdict per gradient and the diagnosis; they exit 0 when every one
passes, 1 otherwise.
Errors go to stderr with exit code 2. ``--server`` defaults to $PLAYGROUND_SERVER or http://localhost:8000.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

DEFAULT_SERVER = "http://localhost:8000"


class CliError(Exception):
    """A problem to report in one line (exit code 2)."""


# -- serve -----------------------------------------------------------------------------------
def serve(args) -> int:
    from app.config import Settings
    from app.server import run, worker_count

    if args.store:
        os.environ["PLAYGROUND_STORE"] = args.store  # read when app.main builds the app, below
    if args.workers is not None:
        os.environ["PLAYGROUND_WORKERS"] = str(args.workers)  # the workers read their settings from env
    try:
        settings = Settings()
        workers = worker_count(settings.store, settings.workers)
    except ValueError as e:
        raise CliError(str(e)) from None
    # X-Forwarded-For is the client's own word unless a proxy the operator names sets it
    proxy_headers = args.proxy_headers if args.proxy_headers is not None else "FORWARDED_ALLOW_IPS" in os.environ
    run(args.host, args.port, log_level=args.log_level, proxy_headers=proxy_headers, workers=workers)
    return 0


# -- train -----------------------------------------------------------------------------------
def train(args) -> int:
    try:
        spec = json.loads(Path(args.spec).read_text())
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read the spec {args.spec}: {e}") from None
    if not isinstance(spec, dict):
        raise CliError(f"{args.spec}: the spec must be a JSON object, as POST /api/models takes")
    if args.steps < 1 or args.chunk < 1:
        raise CliError("--steps and --chunk must be at least 1")
    run = _RemoteRun(args, spec) if args.server else _LocalRun(spec)
    done, last = 0, None
    with _progress(args.steps, args.quiet) as bar:
        while done < args.steps:
            last = run.train(min(args.chunk, args.steps - done))
            if last["steps_done"] == 0 and not last["diverged"]:
                raise CliError("the server trained no steps")  # cannot happen; never loop forever
            done += last["steps_done"]
            bar.update(last["steps_done"])
            bar.set_postfix(train_loss=_fmt(last["train_loss"]), test_loss=_fmt(last["test_loss"]), refresh=False)
            if last["diverged"]:
                break
    if last["diverged"]:
        print(f"diverged at step {last['diverged_at']} (a non-finite loss or parameter); lower the learning rate")
    print(f"step {last['step']}  train loss {_fmt(last['train_loss'])}  test loss {_fmt(last['test_loss'])}")
    run.report()
    return 1 if last["diverged"] else 0


class _LocalRun:
    """In this process, through the same checks and data handling as the server (uploaded CSV in the spec too)."""

    def __init__(self, spec: dict):
        from pydantic import ValidationError

        from app.api.schemas import ModelCreate
        from app.config import Settings
        from app.service import Services
        from app.service.errors import Unprocessable
        from app.store import open_store

        settings = Settings(store="memory://")
        service = Services(open_store(settings.store), settings)
        try:
            self.model = service.build(ModelCreate.model_validate(spec).engine_spec())
        except ValidationError as e:
            raise CliError(_spec_message([{"loc": ["body", *err["loc"]], "msg": err["msg"]} for err in e.errors()]))
        except Unprocessable as e:
            raise CliError(_spec_message(e.detail)) from None

    def train(self, steps: int) -> dict:
        return self.model.train(steps).to_dict()

    def report(self) -> None:
        pass


class _RemoteRun:
    """Against a server: create the model, train in chunks, print its id and token."""

    def __init__(self, args, spec: dict):
        from app.client import PlaygroundClient

        self.client = PlaygroundClient(args.server, timeout=args.timeout)
        self.model = self.client.create_model(spec)

    def train(self, steps: int) -> dict:
        return self.client.train(self.model["id"], steps)

    def report(self) -> None:
        print(f"model id {self.model['id']}")
        print(f"token {self.model['token']}  (send as 'Authorization: Bearer <token>' to change the model)")
        self.client.close()


def _progress(total: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="step", file=sys.stderr, disable=quiet, dynamic_ncols=True)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.6g}"


def _spec_message(detail) -> str:
    from app.client import PlaygroundError

    return "invalid spec: " + PlaygroundError(422, detail).message


# -- export ----------------------------------------------------------------------------------
def export(args) -> int:
    from app.client import PlaygroundClient

    with PlaygroundClient(args.server, timeout=args.timeout) as pg:
        result = pg.export(args.id, args.format)
    if args.format == "json":
        result = json.dumps(result)
    data = result if isinstance(result, bytes) else result.encode()
    if args.output in (None, "-"):
        if args.format == "npz" and sys.stdout.isatty():
            raise CliError("an .npz is binary: give -o FILE (or redirect stdout)")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(args.output).write_bytes(data)
        print(f"wrote {args.output} ({len(data)} bytes)", file=sys.stderr)
    return 0


# -- check -----------------------------------------------------------------------------------
GRAD_KEY = re.compile(r"^d([Wb])(\d+)$")


def load_gradients(path: str, x_key: str = "X", y_key: str = "y") -> tuple:
    """(X or None, y or None, layers) from an .npz with dW1, db1, dW2, ... (X, y optional) or a JSON file
    {"X"?, "y"?, "layers": [...]}; layers[i] holds layer i+1's entries."""
    if path.endswith(".json"):
        return _load_json_gradients(path)
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read {path}: {e}") from None
    if (x_key in arrays) != (y_key in arrays):
        missing = y_key if x_key in arrays else x_key
        raise CliError(f"{path} has no {missing} (it has {', '.join(sorted(arrays)) or 'nothing'}); "
                       f"give both {x_key} and {y_key}, or neither for the server's default batch")
    grads: dict[int, dict] = {}
    for key, value in arrays.items():
        m = GRAD_KEY.match(key)
        if m:
            layer = int(m.group(2))
            if layer < 1:
                raise CliError(f"{key}: layers are numbered from 1 (dW1 is the first layer's gradient)")
            grads.setdefault(layer, {})["d" + m.group(1)] = value
        elif key not in (x_key, y_key):
            print(f"note: ignoring {key} (expected X, y, dW1, db1, dW2, ...)", file=sys.stderr)
    if not grads:
        raise CliError(f"{path} has no gradients: name them dW1, db1, dW2, db2, ... (layers from 1)")
    layers = [grads.get(i, {}) for i in range(1, max(grads) + 1)]
    return arrays.get(x_key), arrays.get(y_key), layers


def _load_json_gradients(path: str) -> tuple:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read {path}: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list):
        raise CliError(f'{path}: expected {{"layers": [{{"dW": ..., "db": ...}}, ...]}} (X and y optional)')
    if ("X" in doc) != ("y" in doc):
        raise CliError(f"{path}: give both X and y, or neither for the server's default batch")
    return doc.get("X"), doc.get("y"), doc["layers"]


def _print_verdicts(result: dict) -> None:
    for layer in result["layers"]:
        for step in layer.get("steps") or []:
            if step.get("error"):
                print(f"layer {layer['layer']}  {step['target']} = {step.get('expr')}\n    error: {step['error']}")
        for name in ("dW", "db"):
            v = layer.get(name)
            if v is None:
                continue
            verdict = "ok" if v["passed"] else "WRONG"
            err = "n/a" if v["relative_error"] is None else f"{v['relative_error']:.2e}"
            print(f"layer {layer['layer']}  {name}{layer['layer']:<3} {verdict:<5}  shape {v['shape']} "
                  f"(expected {v['expected_shape']})  relative error {err}")
            if v.get("hint"):
                print(f"    hint: {v['hint']}")
    first = result.get("first_error")
    if first:
        where = " ".join(x for x in (f"layer {first['layer']}" if first.get("layer") else "", first.get("target") or "")
                         if x)
        where += f" (line {first['line']})" if first.get("line") else ""
        print(f"first error: {where}: {first['message']}" if where else f"first error: {first['message']}")


def check(args) -> int:
    from app.client import PlaygroundClient

    X, y, layers = load_gradients(args.grads, args.X_key, args.y_key)
    with PlaygroundClient(args.server, timeout=args.timeout) as pg:
        result = pg.check(args.id, X, y, layers)
    _print_verdicts(result)
    print("PASSED: every gradient matches backprop" if result["passed"] else "FAILED")
    return 0 if result["passed"] else 1


# -- derive ----------------------------------------------------------------------------------
def load_equations(path: str) -> list[dict]:
    """[{"target", "expr"}] from a JSON file (a list, or {"equations": [...]}) or text lines ``target = expr``."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"cannot read {path}: {e}") from None
    if text.lstrip().startswith(("[", "{")):
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise CliError(f"{path}: not valid JSON: {e}") from None
        eqs = doc.get("equations") if isinstance(doc, dict) else doc
        if not isinstance(eqs, list) or not all(isinstance(e, dict) for e in eqs):
            raise CliError(f'{path}: expected [{{"target": "delta[L]", "expr": "..."}}, ...]')
        return eqs
    eqs = []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        target, sep, expr = line.partition("=")
        if not sep or not target.strip() or not expr.strip():
            raise CliError(f"{path}, line {n}: expected 'target = expression', e.g. 'dW[i] = delta[i] @ z[i-1].T'")
        eqs.append({"target": target.strip(), "expr": expr.strip()})
    if not eqs:
        raise CliError(f"{path} has no equations")
    return eqs


def derive(args) -> int:
    from app.client import PlaygroundClient

    if args.equations.endswith(".py"):  # a backward(...) function, run by the server's code interpreter
        try:
            code = Path(args.equations).read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise CliError(f"cannot read {args.equations}: {e}") from None
        with PlaygroundClient(args.server, timeout=args.timeout) as pg:
            result = pg.derive(args.id, convention=args.convention, code=code)
    else:
        with PlaygroundClient(args.server, timeout=args.timeout) as pg:
            result = pg.derive(args.id, load_equations(args.equations), convention=args.convention)
    _print_verdicts(result)
    for u in result.get("unused") or []:  # never a silent pass over an equation that was not checked
        print(f"not used: {u['target']} = {u['expr']}\n    {u['reason']}")
    print("PASSED: your equations give backprop's gradients" if result["passed"] else "FAILED")
    return 0 if result["passed"] else 1


# -- main ------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="playground", description="Backprop Playground: serve, train, export, check, derive.")
    sub = p.add_subparsers(dest="command", required=True)
    server_default = os.environ.get("PLAYGROUND_SERVER", DEFAULT_SERVER)

    s = sub.add_parser("serve", help="run the API and the playground page (uvicorn with app/server.py's bounds)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--store", help="memory:// or sqlite:///path (default: $PLAYGROUND_STORE or "
                                   "sqlite:///data/playground.sqlite3)")
    s.add_argument("--workers", type=int, help="server processes (default: $PLAYGROUND_WORKERS, or one per CPU "
                                                "this process may use; the memory store takes 1)")
    s.add_argument("--log-level", default="info")
    s.add_argument("--proxy-headers", action=argparse.BooleanOptionalAction, default=None,
                   help="take the client's address from X-Forwarded-For sent by $FORWARDED_ALLOW_IPS "
                        "(uvicorn's default 127.0.0.1); default: on only when FORWARDED_ALLOW_IPS is set")
    s.set_defaults(run=serve)

    t = sub.add_parser("train", help="train a spec (the JSON POST /api/models takes), here or on a server")
    t.add_argument("spec", help="SPEC.json")
    t.add_argument("--steps", type=int, required=True)
    t.add_argument("--server", help="a server's URL; without it the model trains in this process")
    t.add_argument("--chunk", type=int, default=100, help="steps per train call (default 100)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--timeout", type=float, default=120)
    t.set_defaults(run=train)

    e = sub.add_parser("export", help="download a model as a NumPy script, JSON or .npz")
    e.add_argument("id")
    e.add_argument("--format", choices=["numpy", "json", "npz"], default="json")
    e.add_argument("--server", default=server_default)
    e.add_argument("-o", "--output", help="file to write (default stdout)")
    e.add_argument("--timeout", type=float, default=60)
    e.set_defaults(run=export)

    c = sub.add_parser("check", help="check your own gradients (an .npz with dW1, db1, ... and X, y optional)")
    c.add_argument("id")
    c.add_argument("grads", help="MY_GRADS.npz, or MY_GRADS.json as the page takes")
    c.add_argument("--server", default=server_default)
    c.add_argument("--X-key", dest="X_key", default="X", help="the batch's key in the .npz (default X)")
    c.add_argument("--y-key", dest="y_key", default="y", help="the targets' key in the .npz (default y)")
    c.add_argument("--timeout", type=float, default=60)
    c.set_defaults(run=check)

    d = sub.add_parser("derive", help="run your backward pass written as equations and find the wrong step")
    d.add_argument("id")
    d.add_argument("equations", help="EQUATIONS.txt ('target = expr' per line), EQUATIONS.json, or - for stdin")
    d.add_argument("--convention", choices=["columns", "rows"], default="columns",
                   help="columns: the question's (one sample as a column, default); rows: the engine's batch rows")
    d.add_argument("--server", default=server_default)
    d.add_argument("--timeout", type=float, default=60)
    d.set_defaults(run=derive)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    import httpx

    from app.client import PlaygroundError

    try:
        return args.run(args)
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
    except PlaygroundError as e:
        print(f"error: the server answered {e.status_code}: {e.message}", file=sys.stderr)
    except httpx.HTTPError as e:
        print(f"error: cannot reach the server: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
