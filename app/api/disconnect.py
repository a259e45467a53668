"""Run a long call in a worker thread and tell it when its client leaves, so nobody computes for nobody.

A departed client gets 499 (nginx's "client closed request"): nothing reads it, but logs show it.
"""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

import anyio
from fastapi import Request

T = TypeVar("T")
CLIENT_LEFT = 499
POLL = 0.25  # seconds between checks of the connection


async def run_while_connected(request: Request, fn: Callable[[threading.Event], T]) -> tuple[T | None, bool]:
    """Run ``fn(leaving)`` in a worker thread; ``leaving`` is set once the client disconnects.

    Returns (fn's result, whether the client left). fn decides how soon it stops: it should check
    ``leaving`` between bounded pieces of work. Exceptions from fn are raised here as they are.
    """
    leaving = threading.Event()
    box: dict = {}

    async def compute() -> None:
        try:
            box["out"] = await anyio.to_thread.run_sync(fn, leaving)
        except Exception as e:  # raised below, outside the task group (which would wrap it in a group)
            box["error"] = e
        tg.cancel_scope.cancel()

    async def watch() -> None:
        while not await request.is_disconnected():
            await anyio.sleep(POLL)
        leaving.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(compute)
        tg.start_soon(watch)
    if "error" in box:
        raise box["error"]
    return box.get("out"), leaving.is_set()
