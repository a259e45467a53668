"""The ``playground`` command: serve the API, train a spec, export a model, check your own gradients.

    playground serve [--host 127.0.0.1] [--port 8000] [--store sqlite:///data/playground.sqlite3]
    playground train SPEC.json --steps N [--server URL] [--chunk 100]   # in-process without --server
    playground export ID --format numpy|json|npz [--server URL] [-o FILE]
    playground check ID MY_GRADS.npz [--server URL] [--X-key X] [--y-key y]

MY_GRADS.npz holds the batch (X, y) and your gradients dW1, db1, dW2, ... (layers numbered from 1,
W_i of shape (out, in)), e.g. ``np.savez("my_grads.npz", X=X, y=y, dW1=dW1, db1=db1, dW2=dW2, db2=db2)``.
``check`` prints the verdict for each and exits 0 when every one passes, 1 otherwise.
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
    import uvicorn

    if args.store:
        os.environ["PLAYGROUND_STORE"] = args.store  # read when app.main builds the app, below
    uvicorn.run("app.main:app", host=args.host, port=args.port, log_level=args.log_level)
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
    """(X, y, layers) from an .npz with X, y and dW1, db1, dW2, ...; layers[i] holds layer i+1's entries."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read {path}: {e}") from None
    missing = [k for k in (x_key, y_key) if k not in arrays]
    if missing:
        raise CliError(f"{path} has no {' or '.join(missing)} (it has {', '.join(sorted(arrays)) or 'nothing'})")
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
    return arrays[x_key], arrays[y_key], layers


def check(args) -> int:
    from app.client import PlaygroundClient

    X, y, layers = load_gradients(args.grads, args.X_key, args.y_key)
    with PlaygroundClient(args.server, timeout=args.timeout) as pg:
        result = pg.check(args.id, X, y, layers)
    for layer in result["layers"]:
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
    print("PASSED: every gradient matches backprop" if result["passed"] else "FAILED")
    return 0 if result["passed"] else 1


# -- main ------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="playground", description="Backprop Playground: serve, train, export, check.")
    sub = p.add_subparsers(dest="command", required=True)
    server_default = os.environ.get("PLAYGROUND_SERVER", DEFAULT_SERVER)

    s = sub.add_parser("serve", help="run the API and the playground page with uvicorn")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--store", help="memory:// or sqlite:///path (default: $PLAYGROUND_STORE or "
                                   "sqlite:///data/playground.sqlite3)")
    s.add_argument("--log-level", default="info")
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

    c = sub.add_parser("check", help="check your own gradients (an .npz with X, y, dW1, db1, ...)")
    c.add_argument("id")
    c.add_argument("grads", help="MY_GRADS.npz")
    c.add_argument("--server", default=server_default)
    c.add_argument("--X-key", dest="X_key", default="X", help="the batch's key in the .npz (default X)")
    c.add_argument("--y-key", dest="y_key", default="y", help="the targets' key in the .npz (default y)")
    c.add_argument("--timeout", type=float, default=60)
    c.set_defaults(run=check)
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
