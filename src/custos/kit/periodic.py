"""A background loop that calls a coroutine every so often, for per-process batch writers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


class Periodic:
    def __init__(self, name: str, seconds: float, call: Callable[[], Awaitable[object]]) -> None:
        self._name = name
        self._seconds = seconds
        self._call = call
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        """Stop the loop (the caller does any last call itself). A call under way finishes
        first: cancelled inside a transaction, a SQLite connection can be left holding the
        write lock, which stops every writer of the database until it is collected."""
        if self._task is not None:
            self._stopping.set()
            await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._seconds):
                    await self._stopping.wait()
            if self._stopping.is_set():
                return
            await self._call()
