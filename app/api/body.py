"""Large JSON request bodies: a bounded number at a time, decoded off the event loop, matrices as arrays.

A 14 MB body of a million short rows becomes about 200 MB of Python lists and floats when decoded,
and pydantic's validation copies them again. Decoding on the event loop stalls every other client
(``/api/health`` included) for seconds, and four such bodies at once took 4.5 GB. So every route of
the API uses :class:`BodyRoute`, which, for a body of ``PLAYGROUND_LARGE_BODY_BYTES`` or more:

1. takes one of ``PLAYGROUND_MAX_LARGE_BODIES`` slots of the process, or answers 503 with Retry-After
   (nothing read, nothing changed); the slot is held until the answer is ready, so the memory of the
   whole call (decode, validation, work) is bounded per process;
2. decodes the JSON in a worker thread with orjson (the standard library for what orjson refuses,
   such as the NaN literal, so the route's own validation still names the field, and for an integer of 20 digits
   or more, which orjson would make a float: a large body gets the answer a small one gets);
3. in that thread, turns every matrix field (``MATRIX_KEYS``: a non-empty list of equally long rows of
   finite numbers) into a float64 array and drops the lists, so validation passes the array through
   (``Matrix`` in app/api/schemas.py accepts arrays) instead of copying a million small lists;
4. after the answer, returns the freed heap to the operating system (``release_memory``).

Anything that is not a clean matrix stays a list, so pydantic reports it with today's exact message.

Every JSON body, large or small, is parsed here rather than by FastAPI (which then reuses the result), so a
body no parser should take gets a 422 naming the reason instead of FastAPI's bare 400 "There was an error
parsing the body" (or a crash): nested more than ``MAX_NESTING`` levels deep (checked on the raw bytes before
any parser recurses: orjson 3.8 overflows the C stack at a million levels, the standard library raises
RecursionError, and echoing a deep input in a validation error recurses too), an integer beyond Python's digit
limit, bytes that are not UTF-8/16/32 text (``parse_body``).
"""
from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from fastapi import Request, Response
from fastapi.datastructures import DefaultPlaceholder
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from app.engine.network import release_memory
from app.service.errors import Busy

MATRIX_KEYS = frozenset({"X", "y", "X_test", "y_test", "W"})
"""Fields typed ``Matrix`` in the request schemas: (N, p) inputs, (N, K) targets, (n_i, n_{i-1}) weights."""
CHUNK_ROWS = 4096
"""Rows converted per NumPy call (see as_matrix)."""
MAX_DEPTH = 4
"""Matrices sit at most this deep: body.data.X, body.layers[i].W."""
MAX_NESTING = 100
"""Arrays and objects nested deeper than this are refused; the deepest a request needs is about 8 (a 4-axis dW)."""
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included (unrolled: no per-byte branch)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", bytes([1, 1, 255, 255]))  # 255 is -1 as int8
_BIG_INT = re.compile(rb"(?<![0-9.eE+-])-?[0-9]{20,}(?![0-9.eE])")
"""An integer of 20 digits or more outside strings: orjson makes those beyond 64 bits floats."""


class BodyGate:
    """At most ``limit`` large bodies in work per process; the event loop is the only user, so a counter suffices."""

    def __init__(self, limit: int, retry_after: float = 1.0):
        self.limit, self.retry_after, self.busy = limit, retry_after, 0

    def __enter__(self):
        if self.busy >= self.limit:
            raise Busy(f"too many large request bodies are being processed ({self.limit} at a time); "
                       f"retry in {max(1, round(self.retry_after))} s", retry_after=self.retry_after)
        self.busy += 1
        return self

    def __exit__(self, *exc):
        self.busy -= 1
        return False


def decode(body: bytes) -> Any:
    """The JSON document with its matrices as float64 arrays (``MATRIX_KEYS``), run in a worker thread.

    Raises json.JSONDecodeError (the standard library's, with its position) for a body that is not JSON, and
    ValueError or RecursionError as parse_body describes.
    """
    code = _STRING.sub(b"", body)
    _check_depth(code)
    if _BIG_INT.search(code):  # the standard library keeps it an integer, as on the small-body path
        doc = json.loads(body)
    else:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = json.loads(body)  # NaN / Infinity literals: let validation name the field
    # a boolean among numbers converts silently (np.array([[True, 0.5]]) is float): looked for only when the body
    # holds a true or false literal outside strings, so a body of plain numbers pays nothing
    _arrays(doc, 0, b"true" in code or b"false" in code)
    return doc


def nesting(body: bytes) -> int:
    """How deep the body's arrays and objects nest, counted on the bytes (brackets inside strings skipped).

    Exact for UTF-8 (no multi-byte character holds an ASCII byte). For UTF-16/32 bodies (JSON allows them;
    browsers and HTTP clients send UTF-8) it is approximate: only the standard library parses those, and its
    RecursionError is answered with the same 422.
    """
    return _depth(_STRING.sub(b"", body))


def _depth(code: bytes, chunk: int = 1 << 20) -> int:
    """nesting() of a body whose strings are already removed; a chunk at a time, so 4 bytes per bracket of a
    chunk at most (a 16 MB body of brackets would otherwise take 64 MB more)."""
    steps = np.frombuffer(code.translate(_STEPS, _NOT_BRACKETS), np.int8)  # +1 per opening, -1 per closing
    depth = deepest = 0
    for i in range(0, len(steps), chunk):
        run = np.cumsum(steps[i:i + chunk], dtype=np.int32) + depth
        deepest, depth = max(deepest, int(run.max())), int(run[-1])
    return deepest


def _check_depth(code: bytes) -> None:
    if _depth(code) > MAX_NESTING:
        raise RecursionError(f"nested more than {MAX_NESTING} levels deep")


def check_nesting(body: bytes) -> None:
    """RecursionError when the body nests deeper than MAX_NESTING, before any parser recurses into it."""
    _check_depth(_STRING.sub(b"", body))


def parse_body(body: bytes) -> Any:
    """The JSON document as FastAPI's request.json() would parse it (the standard library), or an exception:

    json.JSONDecodeError (not JSON, with a position); RecursionError (nested more than MAX_NESTING levels);
    ValueError (an integer with more digits than ``sys.get_int_max_str_digits()``); UnicodeDecodeError
    (not UTF-8, -16 or -32 text).
    """
    check_nesting(body)
    return json.loads(body)


def body_error(exc: Exception) -> RequestValidationError:
    """The 422 for a body that could not be parsed: FastAPI's json_invalid item, at ("body", pos) when the
    position is known, else at ("body",) with the reason in msg."""
    if isinstance(exc, json.JSONDecodeError):  # FastAPI's own answer, word for word
        return RequestValidationError([{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
                                        "input": {}, "ctx": {"error": exc.msg}}])
    if isinstance(exc, RecursionError):
        reason = f"JSON decode error: the body is nested more than {MAX_NESTING} levels deep"
    elif isinstance(exc, UnicodeDecodeError):
        reason = f"JSON decode error: the body is not {exc.encoding.upper()} text ({exc.reason} at byte {exc.start})"
    else:  # int(): "Exceeds the limit (4300 digits) for integer string conversion: value has 4301 digits; ..."
        reason = (f"JSON decode error: the body holds an integer with more than {sys.get_int_max_str_digits()} "
                  f"digits")
    return RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": reason, "input": {}}])


def _arrays(node: Any, depth: int, bools: bool = True) -> None:
    """Replace, in place, every clean matrix under a MATRIX_KEYS key by an array (``bools``: see as_matrix)."""
    if depth > MAX_DEPTH:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            if key in MATRIX_KEYS and isinstance(value, list):
                arr = as_matrix(value, bools=bools)
                if arr is not None:
                    node[key] = arr
                    del value  # the lists go now, not when the request ends
            elif isinstance(value, (dict, list)):
                _arrays(value, depth + 1, bools)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict):
                _arrays(item, depth + 1, bools)


def as_matrix(rows: list, chunk: int = CHUNK_ROWS, bools: bool = True) -> np.ndarray | None:
    """A (N, p) float64 array of finite numbers, or None when ``rows`` is anything else (validation decides).

    None for: empty, ragged, not 2-D, booleans (alone or among numbers), strings, null, objects, integers beyond
    float64, NaN/inf. ``bools=False`` skips the look for booleans among numbers (the caller knows there are none).
    Converted ``chunk`` rows at a time: each NumPy call holds the GIL, and short calls let the event loop
    (and every other request) run in between.
    """
    if not rows or not isinstance(rows[0], list) or not rows[0]:
        return None
    out = np.empty((len(rows), len(rows[0])))
    for i in range(0, len(rows), chunk):
        try:
            part = np.array(rows[i:i + chunk])  # inferred dtype: int or float only when every entry is a number
        except (ValueError, OverflowError, TypeError):  # ragged
            return None
        if part.ndim != 2 or part.shape[1] != out.shape[1] or part.dtype.kind not in "iuf":
            return None
        if bools and any(type(v) is bool for row in rows[i:i + chunk] for v in row):  # NumPy made them 1 and 0
            return None
        out[i:i + len(part)] = part
    if not np.isfinite(out).all():
        return None
    return out


async def _body_size(request: Request) -> int:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        return int(declared)
    return len(await request.body())  # chunked: BodySizeLimit bounds what is read


def _is_json(request: Request, strict_content_type: bool) -> bool:
    """Whether FastAPI would parse this body as JSON (fastapi/routing.py, get_request_handler)."""
    ctype = request.headers.get("content-type")
    if not ctype:
        return not strict_content_type
    media = ctype.split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class BodyRoute(APIRoute):
    """An APIRoute that parses JSON bodies itself (a 422 naming the reason when one cannot be parsed) and whose
    large bodies are gated and decoded off the event loop (module docstring)."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()
        decodes = self.body_field is not None  # routes that read the raw body (import) are only gated
        strict = getattr(self, "strict_content_type", False)  # older FastAPI: a body without a type is JSON
        strict = strict.value if isinstance(strict, DefaultPlaceholder) else strict

        async def route_handler(request: Request) -> Response:
            if request.method not in ("POST", "PUT", "PATCH"):
                return await handler(request)
            try:
                return await parsed_then_handled(request)
            except ClientDisconnect:  # the client left while sending its body: nobody reads an answer
                return Response(status_code=499)

        async def parsed_then_handled(request: Request) -> Response:
            settings = request.app.state.settings
            parses = decodes and _is_json(request, strict)
            if await _body_size(request) < settings.large_body_bytes:
                if parses and (body := await request.body()):
                    try:  # what FastAPI would do, on the event loop; it reuses request._json
                        request._json = parse_body(body)
                    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError included
                        raise body_error(e) from None
                return await handler(request)
            gate = getattr(request.app.state, "body_gate", None)
            if gate is None:
                gate = request.app.state.body_gate = BodyGate(settings.max_large_bodies)
            with gate:
                try:
                    if parses:
                        try:
                            request._json = await run_in_threadpool(decode, await request.body())
                        except (ValueError, RecursionError) as e:
                            raise body_error(e) from None
                    return await handler(request)
                finally:
                    request.__dict__.pop("_json", None)
                    request.__dict__.pop("_body", None)
                    await run_in_threadpool(release_memory)

        return route_handler
