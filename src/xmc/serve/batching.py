"""Micro-batching: concurrent requests are scored as one batch, off the event loop, so throughput
rises with concurrency instead of queueing one text at a time behind a single thread.

Batches form by themselves under load: while one batch is scored, new requests queue up, and the
next batch takes all of them at once. A request that finds the scorer idle is scored at once
(``max_wait=0``, the default), so a lone request never waits for company; ``max_wait`` > 0 also
waits that long for more requests after the first, which only pays when scoring a batch costs
much less per text than scoring texts one by one and requests arrive in bursts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

Rows = list[list[tuple[str, float, str | None]]]
_NOTHING = object()


@dataclass
class _Pending:
    texts: list[str]
    top_k: int
    min_score: float
    future: asyncio.Future


class MicroBatcher:
    """``await submit(texts, top_k, min_score)`` returns one row per text; the requests waiting when
    the scorer turns to them (and those arriving within ``max_wait`` seconds after the first), up to
    ``max_batch`` texts, are predicted by one call of ``predict(texts, top_k)`` in a worker thread.
    ``on_batch(n_texts)`` observes batch sizes."""

    def __init__(self, predict: Callable[[list[str], int], Rows], max_wait: float = 0.0, max_batch: int = 64,
                 on_batch: Callable[[int], None] | None = None):
        self.predict, self.max_wait, self.max_batch, self.on_batch = predict, max_wait, max_batch, on_batch
        self.queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xmc-predict")
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop (graceful shutdown)."""
        await self.queue.put(None)
        if self.task is not None:
            await self.task
        self.executor.shutdown(wait=True)

    async def submit(self, texts: list[str], top_k: int, min_score: float) -> Rows:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Pending(texts, top_k, min_score, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self.queue.get()
            if first is None:
                break
            batch, size = [first], len(first.texts)
            deadline = time.monotonic() + self.max_wait
            while size < self.max_batch:
                item = await self._next(deadline)
                if item is _NOTHING:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                size += len(item.texts)
            await self._score(loop, batch)

    async def _next(self, deadline: float):
        """A request already queued, else one arriving before ``deadline``, else ``_NOTHING``."""
        try:
            return self.queue.get_nowait()
        except asyncio.QueueEmpty:
            pass
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            return _NOTHING
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return _NOTHING

    async def _score(self, loop, batch: list[_Pending]) -> None:
        texts = [t for item in batch for t in item.texts]
        k = max(item.top_k for item in batch)
        if self.on_batch is not None:
            self.on_batch(len(texts))
        try:
            rows = await loop.run_in_executor(self.executor, self.predict, texts, k)
        except Exception as exc:  # noqa: BLE001  each waiting request gets the error, the batcher lives on
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        start = 0
        for item in batch:
            mine = rows[start:start + len(item.texts)]
            start += len(item.texts)
            if not item.future.done():
                item.future.set_result([[r for r in row[: item.top_k] if r[1] >= item.min_score] for row in mine])
