"""The store: transactions over SQLite or PostgreSQL, and the rows the service reads and writes.

``store.write()`` opens a write transaction (SQLite ``BEGIN IMMEDIATE``; PostgreSQL row locks taken
with ``for_update=True``); ``store.read()`` a read-only one. Every write that other nodes must see in
their caches calls ``tx.changed(kind, ident)``: on commit the store tells its local listeners at once,
and other processes learn it through the ``changes`` table (SQLite, polled) or ``NOTIFY``
(PostgreSQL).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from openkms.clock import Clock, SystemClock
from openkms.config import WORKER_THREADS
from openkms.storage.group_commit import GroupCommit
from openkms.storage.migrations import migrate
from openkms.storage.rows import (
    AccessKeyRow,
    Conflict,
    ConsoleSessionRow,
    GrantRow,
    ManagedPolicyRow,
    RoleRow,
    SessionRow,
    UserRow,
)
from openkms.storage.tx_audit import AuditTx
from openkms.storage.tx_audit_export import AuditExportTx
from openkms.storage.tx_base import NOTIFY_CHANNEL
from openkms.storage.tx_console import ConsoleTx
from openkms.storage.tx_custom_key_stores import CustomKeyStoresTx
from openkms.storage.tx_grants import GrantsTx
from openkms.storage.tx_keyring import KeyringRow, KeyringTx
from openkms.storage.tx_keys import KeysTx
from openkms.storage.tx_principals import PrincipalsTx
from openkms.storage.tx_trail import TrailTx
from openkms.storage.tx_xks import XksTx

log = logging.getLogger("openkms.storage")
__all__ = [
    "NOTIFY_CHANNEL",
    "AccessKeyRow",
    "ChangeFeed",
    "ChangeListener",
    "Conflict",
    "ConsoleSessionRow",
    "GrantRow",
    "KeyringRow",
    "ManagedPolicyRow",
    "RoleRow",
    "SessionRow",
    "Store",
    "Tx",
    "UserRow",
    "normalize_url",
]
ChangeListener = Callable[[Sequence[tuple[str, str]]], None]
T = TypeVar("T")

# PostgreSQL connections of one process. A write transaction may open a read nested in it (the
# authorizer loading identity policies, or checking that the principals a new key policy names exist)
# while other write transactions wait for the row lock it holds: each worker thread can hold two
# connections at once, and the audit writer and the scheduler one each. A smaller pool lets the
# waiting writers take every connection while the lock holder waits for one for its nested read: every
# writer of the process stalls until the pool's 30 s timeout, then fails. Connections beyond the first
# PG_POOL_SIZE are closed once returned.
PG_POOL_SIZE = 8
PG_MAX_CONNECTIONS = 2 * WORKER_THREADS + 4


def normalize_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Store:
    """The database. ``clock`` stamps the change log and the migrations applied: the wall clock (the
    change log is pruned by age in real time while other processes poll it). The schema is migrated
    to the newest version on opening, unless ``migrate_schema`` is false."""

    def __init__(self, url: str, clock: Clock | None = None, *, migrate_schema: bool = True) -> None:
        self.url = normalize_url(url)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.backend = "postgresql" if self.url.startswith("postgresql") else "sqlite"
        self._listeners: list[ChangeListener] = []
        self._write_lock = threading.RLock()
        self.group_commit = GroupCommit(
            lambda: self._connect(write=True),
            lambda conn: Tx(conn, self.backend, write=True, clock=self.clock),
            self._write_lock,
            self._tell_listeners,
        )
        self._probe: Engine | None = None  # schema_version's engine (no pool)
        self.engine: Engine
        if self.backend == "sqlite":
            self.engine = sa.create_engine(
                self.url,
                connect_args={"isolation_level": None, "timeout": 30, "check_same_thread": False},
                hide_parameters=True,  # error messages never echo row values
            )
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
        else:
            self.engine = sa.create_engine(
                self.url,
                pool_size=PG_POOL_SIZE,
                max_overflow=PG_MAX_CONNECTIONS - PG_POOL_SIZE,
                pool_pre_ping=True,
                hide_parameters=True,
            )
        if not migrate_schema:
            return  # a restore migrates the empty target itself (openkms.storage.backup)
        with self._connect(write=True) as conn, conn.begin():
            if self.backend == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7244517)"))
            migrate(conn, now=self.clock.now())

    def close(self) -> None:
        self.engine.dispose()
        if self._probe is not None:
            self._probe.dispose()

    def schema_version(self, timeout: float = 2.0) -> int:
        """The newest migration applied, read on a new connection (not one of the pool's, which may
        outlive the database: this is the readiness check's "the database can be reached"); an
        SQLite database file that is gone is not made again. Raises the driver's error."""
        if self._probe is None:
            if self.backend == "sqlite":
                uri = "file:" + urllib.parse.quote(self.url.split("///", 1)[1]) + "?mode=ro"

                def read_only() -> sqlite3.Connection:
                    return sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)

                self._probe = sa.create_engine(
                    "sqlite://", creator=read_only, poolclass=NullPool, hide_parameters=True
                )
            else:
                self._probe = sa.create_engine(
                    self.url,
                    poolclass=NullPool,
                    connect_args={"connect_timeout": max(1, int(timeout))},
                    hide_parameters=True,
                )
        with self._probe.connect() as conn:
            value = conn.exec_driver_sql("SELECT max(version) FROM schema_migrations").scalar()
        return int(value or 0)

    def scrub(self) -> None:
        """Push deleted rows out of the SQLite write-ahead log (after deleting key material)."""
        if self.backend == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def _connect(self, write: bool) -> Connection:
        conn = self.engine.connect()
        if self.backend == "sqlite":
            conn = conn.execution_options(sqlite_begin="IMMEDIATE" if write else "DEFERRED")
        return conn

    @contextmanager
    def write(self) -> Iterator[Tx]:
        # SQLite has one writer at a time; queueing this process's writers on a lock (no sleeping)
        # keeps them out of SQLite's busy handler, whose back-off sleeps cost tens of milliseconds.
        lock = self._write_lock if self.backend == "sqlite" else contextlib.nullcontext()
        with lock, self._connect(write=True) as conn:
            tx = Tx(conn, self.backend, write=True, clock=self.clock)
            with conn.begin():
                yield tx
                tx.announce()
                if tx.records:
                    tx.append_audit(tx.records)
        if tx.changes:
            self._tell_listeners(tx.changes)

    @property
    def records_with_changes(self) -> bool:
        """Whether a change's audit record is best committed in the change's own transaction
        (``tx.record``). On SQLite, yes: the group commit chains the records of a whole group in one
        write, and the change and its record need one commit instead of two. On PostgreSQL, no: the
        chain head is a row lock held until the commit, so each such transaction would commit alone
        (measured: CreateKey 350/s instead of 420/s, PostgreSQL's CPU 40 % instead of 2 %); its
        records go through the audit writer, one chain-head lock per batch."""
        return self.backend == "sqlite"

    def write_grouped(self, body: Callable[[Tx], T]) -> T:
        """``body(tx)`` in a write transaction, committed before this returns. On SQLite the
        transaction may hold other threads' concurrent bodies too, one commit for all
        (:mod:`openkms.storage.group_commit`): a body must touch nothing but ``tx`` and raise to undo
        its writes. On PostgreSQL, whose writers run concurrently, it has its own transaction."""
        if self.backend != "sqlite":
            with self.write() as tx:
                return body(tx)
        return self.group_commit.run(body)

    def _tell_listeners(self, changes: Sequence[tuple[str, str]]) -> None:
        for listener in self._listeners:
            listener(changes)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self._connect(write=False) as conn, conn.begin():
            yield Tx(conn, self.backend, write=False, clock=self.clock)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    # Deleted rows (key material, wrapping keys) are overwritten, not left in free pages.
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


class Tx(
    PrincipalsTx,
    KeysTx,
    GrantsTx,
    AuditTx,
    TrailTx,
    AuditExportTx,
    ConsoleTx,
    XksTx,
    CustomKeyStoresTx,
    KeyringTx,
):
    """One transaction. Methods are named after the rows they touch (one mixin per group of tables)."""


class ChangeFeed:
    """Delivers other processes' changes to the local listeners (a background thread).

    For the metrics (plain attributes read at scrape time): ``delivered`` (changes delivered),
    ``last_delivery`` (the store clock's time of the last delivery), ``connected`` (the last poll
    succeeded on SQLite; listening on PostgreSQL), ``failures`` (failed polls, lost or refused
    connections) and, on SQLite only, ``lag`` (seconds from the oldest change of the last batch to its
    delivery; PostgreSQL's notifications carry no time).
    """

    def __init__(self, store: Store, on_changes: ChangeListener, on_reset: Callable[[], None]) -> None:
        self._store = store
        self._on_changes = on_changes
        self._on_reset = on_reset
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openkms-change-feed", daemon=True)
        self._cursor = 0  # SQLite: the id of the last change read
        self.delivered = 0
        self.last_delivery: float | None = None
        self.lag: float | None = None
        self.connected = False
        self.failures = 0

    def start(self) -> None:
        if self._store.backend == "sqlite":
            # Read from the last change at start, before any request is answered: a cursor taken later
            # by the thread would skip a change committed after a request had cached what it changed.
            with self._store.read() as tx:
                self._cursor = tx.last_change_id()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        if self._store.backend == "postgresql":
            self._listen_postgres()
        else:
            self._poll_sqlite()

    def _poll_sqlite(self) -> None:
        cursor = self._cursor
        while not self._stop.wait(0.2):
            try:
                with self._store.read() as tx:
                    rows = tx.changes_after(cursor)
            except Exception:  # a transient database error: try again on the next tick
                self.connected = False
                self.failures += 1
                log.warning("change feed poll failed", exc_info=True)
                continue
            self.connected = True
            if rows:
                cursor = rows[-1][0]
                self._on_changes([(kind, ident) for _, kind, ident, _ in rows])
                now = self._store.clock.now()
                self.lag = max(0.0, now - rows[0][3])
                self._delivered(len(rows), now)

    def _listen_postgres(self) -> None:
        # Late: the PostgreSQL driver is loaded by PostgreSQL deployments only, never by SQLite ones.
        import psycopg

        url = self._store.url.replace("postgresql+psycopg://", "postgresql://", 1)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._on_reset()  # anything may have changed while we were not listening
                    self.connected = True
                    while not self._stop.is_set():
                        # Wait for a change, then apply it with those arriving in the next 20 ms: a
                        # batch of the whole 0.5 s wait would leave the caches stale that long.
                        batch = [_change(n.payload) for n in conn.notifies(timeout=0.5, stop_after=1)]
                        if batch:
                            batch += [_change(n.payload) for n in conn.notifies(timeout=0.02, stop_after=500)]
                            self._on_changes(batch)
                            self._delivered(len(batch), self._store.clock.now())
            except Exception:
                self.connected = False
                self.failures += 1
                self._on_reset()
                self._stop.wait(1.0)
        self.connected = False

    def _delivered(self, count: int, now: float) -> None:
        self.delivered += count
        self.last_delivery = now


def _change(payload: str) -> tuple[str, str]:
    """(kind, ident) of a NOTIFY payload ``kind|ident``."""
    kind, _, ident = payload.partition("|")
    return kind, ident
