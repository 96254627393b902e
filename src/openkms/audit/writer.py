"""Group commit of audit records: many requests share one database write.

Records of calls that change something are *durable* before the call is answered (the caller awaits
the flush); records of read-only calls (Encrypt, Decrypt, DescribeKey…) are acknowledged without
waiting and written within ``interval`` seconds. A clean shutdown flushes everything; a crash
(``kill -9``) can lose at most the read-only records of the last ``interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from openkms.storage.store import Store

log = logging.getLogger("openkms.audit")


class AuditWriter:
    def __init__(self, store: Store, interval: float = 0.05, max_batch: int = 2000) -> None:
        self._store = store
        self._interval = interval
        self._max_batch = max_batch
        self._pending: list[tuple[dict[str, Any], Future[None] | None]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="openkms-audit", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, row: dict[str, Any], durable: bool) -> Future[None] | None:
        fut: Future[None] | None = Future() if durable else None
        with self._lock:
            self._pending.append((row, fut))
            if durable or len(self._pending) >= self._max_batch:
                self._wake.set()
        return fut

    async def submit_async(self, row: dict[str, Any], durable: bool) -> None:
        fut = self.submit(row, durable)
        if fut is not None:
            await asyncio.wrap_future(fut)

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=30)
        self._flush()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            with self._store.write() as tx:
                tx.append_audit([row for row, _ in batch])
        except Exception as exc:
            # Waiting callers learn of the failure; the records go back in the queue for the next try.
            log.exception("audit write failed for %d records; retrying", len(batch))
            failure = exc
            _resolve(batch, lambda f: f.set_exception(failure))
            with self._lock:
                self._pending[:0] = [(row, None) for row, _ in batch][: self._max_batch * 50]
            return
        _resolve(batch, lambda f: f.set_result(None))


def _resolve(
    batch: list[tuple[dict[str, Any], Future[None] | None]], action: Callable[[Future[None]], None]
) -> None:
    for _, fut in batch:
        if fut is not None and not fut.done():
            action(fut)
