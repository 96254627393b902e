"""Group commit of audit records: many requests share one database write.

Records of calls that change something are *durable* before the call is answered (the caller awaits
the flush); records of read-only calls (Encrypt, Decrypt, DescribeKey…) are acknowledged without
waiting and written within ``interval`` seconds. A clean shutdown flushes everything; a crash
(``kill -9``) can lose at most the read-only records of the last ``interval`` seconds. A batch the
database refuses is written record by record: one bad record cannot block the trail.
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
            self._write(batch)
        except Exception:
            log.warning("audit write of %d records failed; writing them one by one", len(batch))
            self._flush_singly(batch)
            return
        _resolve(batch, lambda f: f.set_result(None))

    def _write(self, batch: list[tuple[dict[str, Any], Future[None] | None]]) -> None:
        with self._store.write() as tx:
            tx.append_audit([row for row, _ in batch])

    def _flush_singly(self, batch: list[tuple[dict[str, Any], Future[None] | None]]) -> None:
        """Write a refused batch record by record, so that one record the database refuses cannot hold
        back the others. A record refused alone while others are written is dropped, with its event id
        logged (never its content). When nothing can be written the database is unavailable: the
        records go back in the queue for the next try, and waiting callers learn of the failure."""
        written = 0
        refused: list[tuple[dict[str, Any], Future[None] | None]] = []
        for index, entry in enumerate(batch):
            try:
                self._write([entry])
            except Exception as exc:
                refused.append(entry)
                if written == 0 and len(refused) == 3:  # the database, not a record
                    self._retry_later(refused + batch[index + 1 :], exc)
                    return
                continue
            written += 1
            _resolve([entry], lambda f: f.set_result(None))
        if not refused:
            return
        if written == 0:
            self._retry_later(refused, RuntimeError("audit records not stored"))
            return
        for row, fut in refused:
            log.error("audit record %s refused by the database; dropped", row.get("event_id"))
            if fut is not None and not fut.done():
                fut.set_exception(RuntimeError("audit record refused by the database"))

    def _retry_later(self, entries: list[tuple[dict[str, Any], Future[None] | None]], exc: Exception) -> None:
        log.error("audit write failed for %d records (%s); retrying", len(entries), type(exc).__name__)
        _resolve(entries, lambda f: f.set_exception(exc))
        with self._lock:
            self._pending[:0] = [(row, None) for row, _ in entries][: self._max_batch * 50]


def _resolve(
    batch: list[tuple[dict[str, Any], Future[None] | None]], action: Callable[[Future[None]], None]
) -> None:
    for _, fut in batch:
        if fut is not None and not fut.done():
            action(fut)
