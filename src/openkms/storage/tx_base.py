"""The core of a transaction: the connection and the change notifications other nodes' caches follow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from openkms.clock import Clock
from openkms.storage import schema as t

NOTIFY_CHANNEL = "openkms_changes"


def storable(*texts: str | None) -> bool:
    """Whether text can be stored or looked up: PostgreSQL refuses U+0000 in any query, so a lookup by
    such a value finds nothing on either backend (no stored row holds one)."""
    return not any(text is not None and "\x00" in text for text in texts)


class TxBase:
    """What every transaction has: its connection, its backend, its store's clock (the time of the
    changes it logs), and the changes it announces."""

    def __init__(self, conn: Connection, backend: str, write: bool, clock: Clock) -> None:
        self.conn = conn
        self.backend = backend
        self.write = write
        self.clock = clock
        self.changes: list[tuple[str, str]] = []
        self._announced: set[tuple[str, str]] = set()
        # Audit rows committed with this transaction (appended to the trail just before the commit).
        self.records: list[dict[str, Any]] = []

    # -- change notification ------------------------------------------------------------------------
    def changed(self, kind: str, ident: str) -> None:
        """Announce, when this transaction commits, that ``ident`` of ``kind`` changed (once: a
        second notice of the same change says nothing more). The notices are written by
        :meth:`announce`, just before the commit."""
        change = (kind, ident)
        if change not in self._announced:
            self._announced.add(change)
            self.changes.append(change)

    def record(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store the audit rows of the call making this transaction's change with it: they are chained
        into the trail once, just before the commit (with the rows of the other bodies of a group
        commit), so that the change and its record commit together or not at all."""
        self.records.extend(rows)

    def announce(self) -> None:
        """Write this transaction's notices for other processes (SQLite: rows of ``changes``, which
        they poll; PostgreSQL: ``NOTIFY``, delivered on commit). Called once, last, before the commit:
        a notice given inside a SAVEPOINT later rolled back is still sent (one notice too many, never
        one too few)."""
        if not self.changes:
            return
        if self.backend == "postgresql":
            for kind, ident in self.changes:
                self.conn.exec_driver_sql("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, f"{kind}|{ident}"))
        else:
            now = self.clock.now()
            self.conn.exec_driver_sql(
                "INSERT INTO changes (kind, ident, at) VALUES (?, ?, ?)",
                [(kind, ident, now) for kind, ident in self.changes],
            )

    def changes_after(self, after_id: int, limit: int = 1000) -> list[tuple[int, str, str, float]]:
        """(id, kind, ident, time of the change) of the changes after ``after_id``, oldest first."""
        rows = self.conn.execute(
            sa.select(t.changes.c.id, t.changes.c.kind, t.changes.c.ident, t.changes.c.at)
            .where(t.changes.c.id > after_id)
            .order_by(t.changes.c.id)
            .limit(limit)
        )
        return [(r.id, r.kind, r.ident, r.at) for r in rows]

    def last_change_id(self) -> int:
        return int(
            self.conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.changes.c.id), 0))).scalar_one()
        )

    def prune_changes(self, before: float) -> None:
        """Forget changes older than ``before``, always keeping the newest row: SQLite numbers a new row
        one above the highest id left in the table (from 1 when it is empty), and the change feeds of
        other processes only read ids above the last one they have seen."""
        c = t.changes.c
        newest = sa.select(sa.func.max(c.id)).scalar_subquery()
        self.conn.execute(t.changes.delete().where(c.at < before, c.id < newest))
