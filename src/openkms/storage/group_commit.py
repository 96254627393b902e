"""Group commit: concurrent SQLite write transactions run one after another in one transaction.

SQLite has one writer at a time, and each commit of a durable write (``synchronous=FULL``) rewrites the
pages it touched in the write-ahead log and waits for ``fsync``. When several threads each want a short
write transaction at once (CreateKey under load), :class:`GroupCommit` lets the first of them run the
waiting ones' bodies in its own transaction, each in a SAVEPOINT, and commit once:

* a body that raises is rolled back to its SAVEPOINT alone and its exception re-raised to its caller;
  the others go on;
* a failed commit fails every body of the group (none was acknowledged);
* no caller returns before the commit and the change listeners (the caches) have run: what a caller
  is told is durable, and the next call sees it.

A group of one runs without a SAVEPOINT. Bodies run in the order their callers arrived. The audit rows
the bodies that ran gave their transactions (``tx.record``) are appended to the trail once, last: a
failure there fails the group.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Connection

T = TypeVar("T")
#: The most bodies one transaction runs (a bound on how long the write lock is held).
GROUP_MAX = 32


@dataclass(eq=False)
class _Pending(Generic[T]):
    body: Callable[[Any], T]
    taken: bool = False
    result: T | None = None
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)


class GroupCommit:
    """Runs write bodies in shared transactions. ``connect`` opens a write connection,
    ``new_tx(conn)`` makes the transaction object a body receives, ``write_lock`` serializes this
    process's SQLite writers, and ``notify`` gets the changes of the bodies that committed. A body's
    transaction object writes its change notices (``announce``) at the end of its SAVEPOINT."""

    def __init__(
        self,
        connect: Callable[[], Connection],
        new_tx: Callable[[Connection], Any],
        write_lock: threading.RLock,
        notify: Callable[[Sequence[tuple[str, str]]], None],
    ) -> None:
        self._connect = connect
        self._new_tx = new_tx
        self._write_lock = write_lock
        self._notify = notify
        self._queue: list[_Pending[Any]] = []
        self._queue_lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Bodies queued and not yet taken into a transaction."""
        return len(self._queue)

    def run(self, body: Callable[[Any], T]) -> T:
        """``body(tx)`` committed, perhaps with other callers' bodies; its result, or its exception."""
        item: _Pending[T] = _Pending(body)
        with self._queue_lock:
            self._queue.append(item)
        while not item.taken:
            changes: list[tuple[str, str]] = []
            with self._write_lock:
                if item.taken:
                    break
                with self._queue_lock:
                    group, self._queue = self._queue[:GROUP_MAX], self._queue[GROUP_MAX:]
                    for pending in group:
                        pending.taken = True
                try:
                    changes = self._commit(group)
                except BaseException as exc:  # the commit failed: no body of the group is acknowledged
                    self._fail(group, exc)
            # The listeners run once the lock is released (as in ``Store.write``); the group's callers
            # return once they have (``finished``).
            try:
                if changes:
                    self._notify(changes)
            except BaseException as exc:
                self._fail(group, exc)
            finally:
                for pending in group:
                    pending.finished.set()
        item.finished.wait()
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]

    @staticmethod
    def _fail(group: list[_Pending[Any]], exc: BaseException) -> None:
        for pending in group:
            if pending.error is None:
                pending.error, pending.result = exc, None

    def _commit(self, group: list[_Pending[Any]]) -> list[tuple[str, str]]:
        """Run the group's bodies in one transaction and commit it (the write lock held); the changes
        of the bodies that ran."""
        changes: list[tuple[str, str]] = []
        records: list[dict[str, Any]] = []
        with self._connect() as conn, conn.begin():
            if len(group) == 1:
                tx = self._new_tx(conn)
                try:
                    group[0].result = group[0].body(tx)
                    tx.announce()
                except Exception as exc:
                    group[0].error = exc
                    raise
                if tx.records:
                    tx.append_audit(tx.records)
                return list(tx.changes)
            for pending in group:
                tx = self._new_tx(conn)
                try:
                    with conn.begin_nested():
                        pending.result = pending.body(tx)
                        tx.announce()
                except Exception as exc:
                    pending.error = exc
                else:
                    changes.extend(tx.changes)
                    records.extend(tx.records)
            if records:  # the audit rows of the bodies that ran, chained once for the group
                self._new_tx(conn).append_audit(records)
        return changes
