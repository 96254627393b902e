"""Group commit of audit records: many requests share one database write.

Records of calls that change something are *durable* before the call is answered (the caller awaits
the flush); records of read-only calls (Encrypt, Decrypt, DescribeKey…) are acknowledged without
waiting and written within ``interval`` seconds. The queue is bounded: once ``max_pending`` entries
wait, a read-only call waits for its record's batch too (back-pressure: a server asked for more than
it can record answers at the rate it records, its queue and memory stay bounded). A clean shutdown
flushes everything; a crash (``kill -9``) can lose at most the read-only records of the last
``interval`` seconds, and never more than ``max_pending`` of them. A batch the database refuses is
written entry by entry: one bad record cannot block the trail.

An entry is the rows of one call (a cross-account call has a copy for the caller's and one for each
key owner's account): they are always written in the same transaction, never one without the other.

:meth:`AuditWriter.submit_call` is how every entry point records an API call, with one rule for a
record that cannot be stored: it is logged under the request id and raises :class:`RecordNotStored`,
which the entry point answers as its protocol's internal error (HTTP 500) with
:attr:`RecordNotStored.message`, never as a success (a change waits for its record, so a change whose
record the database refuses is done but not acknowledged).

For the metrics: :meth:`AuditWriter.queued` is the queue's depth, ``written``/``failed`` count the
entries stored and those whose write failed, and ``on_write`` (when set) is called with the seconds each
database write took; ``on_stored`` (when set, ``--audit-stdout``: :class:`LineSink`) with the rows of every
write once they are stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, BinaryIO

from openkms.audit.events import ApiCall, cloudtrail_record, trail_rows
from openkms.storage.store import Store

log = logging.getLogger("openkms.audit")

Row = dict[str, Any]
Entry = tuple[list[Row], Future[None] | None]


class RecordNotStored(Exception):
    """The audit record of a call could not be stored (or made): the call must not be answered as a
    success."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"audit record of request {request_id} not stored")
        self.request_id = request_id
        self.message = (
            "The request was carried out, but its audit record could not be stored. Request id: " + request_id
        )


class AuditWriter:
    def __init__(
        self, store: Store, interval: float = 0.05, max_batch: int = 2000, max_pending: int = 1000
    ) -> None:
        self._store = store
        self._interval = interval
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._pending: list[Entry] = []
        self._stored: list[Row] = []  # rows stored with their change, for ``on_stored``
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="openkms-audit", daemon=True)
        self.written = 0
        self.failed = 0
        self.on_write: Callable[[float], None] | None = None
        self.on_stored: Callable[[list[Row]], None] | None = None

    def queued(self) -> int:
        """Entries waiting to be written."""
        return len(self._pending)

    def start(self) -> None:
        self._thread.start()

    def submit(self, rows: Row | Sequence[Row], durable: bool) -> Future[None] | None:
        """Queue the row(s) of one call. Returns a future resolved once they are stored when
        ``durable``, or when the queue is full (``max_pending`` entries: the caller should wait for it,
        see :meth:`submit_async`); None otherwise."""
        entry = [rows] if isinstance(rows, dict) else list(rows)
        with self._lock:
            fut: Future[None] | None = (
                Future() if durable or len(self._pending) >= self._max_pending else None
            )
            self._pending.append((entry, fut))
            if fut is not None or len(self._pending) >= self._max_batch:
                self._wake.set()
        return fut

    async def submit_async(self, rows: Row | Sequence[Row], durable: bool) -> None:
        """Queue the rows of one call; a durable call waits until they are stored (and learns if they
        are not); a read-only call waits only when the queue is full, and never fails for its record."""
        fut = self.submit(rows, durable)
        if fut is None:
            return
        if durable:
            await asyncio.wrap_future(fut)
            return
        with contextlib.suppress(Exception):
            await asyncio.wrap_future(fut)

    async def submit_call(self, call: ApiCall) -> None:
        """Record one call: its record is made and queued, and a change (:attr:`ApiCall.durable`) waits
        until it is stored. Raises :class:`RecordNotStored` (logged here) when it cannot be."""
        try:
            rows = trail_rows(cloudtrail_record(call), call.started, call.key_id)
            await self.submit_async(rows, call.durable)
        except Exception as exc:
            log.exception(
                "audit record of request %s (%s) not stored",
                call.request_id,
                call.event_name,
                extra={"request_id": call.request_id},
            )
            raise RecordNotStored(call.request_id) from exc

    def stored_elsewhere(self, rows: Sequence[Row]) -> None:
        """The rows of one call were stored by the transaction of its change (committed): counted, and
        given to ``on_stored`` by the writer's thread with its next batch (a slow reader of the stream
        holds back that thread, never the caller)."""
        self.written += 1
        if self.on_stored is not None:
            with self._lock:
                self._stored.extend(rows)

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
            stored, self._stored = self._stored, []
        if stored:
            self._tell_stored(stored)
        if not batch:
            return
        try:
            self._write(batch)
        except Exception:
            log.warning("audit write of %d records failed; writing them one by one", len(batch))
            self._flush_singly(batch)
            return
        _resolve(batch, lambda f: f.set_result(None))

    def _write(self, batch: list[Entry]) -> None:
        started = time.perf_counter()
        try:
            with self._store.write() as tx:
                tx.append_audit([row for rows, _ in batch for row in rows])
        except Exception:
            self.failed += len(batch)
            raise
        self.written += len(batch)
        if self.on_write is not None:
            self.on_write(time.perf_counter() - started)
        self._tell_stored([row for rows, _ in batch for row in rows])

    def _tell_stored(self, rows: list[Row]) -> None:
        if self.on_stored is not None:
            try:
                self.on_stored(rows)
            except Exception:  # a closed or full pipe never holds the trail back
                log.warning("audit records stored but not written to the log shipper's stream")

    def _flush_singly(self, batch: list[Entry]) -> None:
        """Write a refused batch entry by entry, so that one record the database refuses cannot hold
        back the others. An entry refused alone while others are written is dropped, with its event ids
        logged (never their content). When nothing can be written the database is unavailable: the
        records go back in the queue for the next try, and waiting callers learn of the failure."""
        written = 0
        refused: list[Entry] = []
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
        for rows, fut in refused:
            ids = ", ".join(str(row.get("event_id")) for row in rows)
            log.error("audit record %s refused by the database; dropped", ids)
            if fut is not None and not fut.done():
                fut.set_exception(RuntimeError("audit record refused by the database"))

    def _retry_later(self, entries: list[Entry], exc: Exception) -> None:
        log.error("audit write failed for %d records (%s); retrying", len(entries), type(exc).__name__)
        _resolve(entries, lambda f: f.set_exception(exc))
        with self._lock:
            self._pending[:0] = [(rows, None) for rows, _ in entries][: self._max_batch * 50]


class LineSink:
    """``--audit-stdout``: each stored record as one line of JSON (the record as stored) on a binary
    stream, flushed after every batch, for log shippers."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, rows: list[Row]) -> None:
        data = b"".join(str(row["record"]).encode() + b"\n" for row in rows)
        with self._lock:
            self._stream.write(data)
            self._stream.flush()


def _resolve(batch: list[Entry], action: Callable[[Future[None]], None]) -> None:
    for _, fut in batch:
        if fut is not None and not fut.done():
            action(fut)
