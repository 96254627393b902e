"""Transaction methods of the audit export (openkms.audit.export): the horizon of committed audit rows,
the rows of a range, the per-(account, Region) cursors and digest chain heads, the files written, and
the exporters' lease. Every change of a cursor or a chain head is a compare-and-set on the value planned
before the file was written, so a step repeated after a crash (or by a second process) changes nothing
twice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from openkms.storage import schema as t
from openkms.storage.tx_base import TxBase

LEASE = "export"


@dataclass(frozen=True)
class ExportState:
    account_id: str
    region: str
    created_at: float
    exported_id: int
    pending_id: int | None
    pending_at: float | None
    digest_object: str | None
    digest_signature: str | None
    digest_hash: str | None
    digest_end: float | None
    digest_pending_end: float | None


@dataclass(frozen=True)
class ExportedFile:
    s3_object: str
    hash_value: str
    oldest_event: float
    newest_event: float
    first_id: int
    last_id: int
    records: int


def _state(row: Any) -> ExportState:
    return ExportState(**{name: getattr(row, name) for name in ExportState.__dataclass_fields__})


class AuditExportTx(TxBase):
    def audit_horizon(self) -> int:
        """The highest audit row id below which every row is committed (0: none). On PostgreSQL an id
        is taken when a row is inserted, not when its transaction commits, so a lower id can appear
        later: a SHARE lock on the table waits for the transactions inserting into it, and the ids
        taken after it are higher than every id seen under it (a write transaction, held a moment).
        SQLite has one writer at a time: the newest id read is committed with everything below it."""
        if self.backend == "postgresql":
            self.conn.exec_driver_sql("LOCK TABLE audit_events IN SHARE MODE")
        c = t.audit_events.c
        value = self.conn.execute(sa.select(sa.func.max(c.id))).scalar()
        return int(value or 0)

    def audit_pairs(self, after_id: int, upto_id: int) -> list[tuple[str, str]]:
        """The (account, Region) pairs of the audit rows in (after_id, upto_id] (rows without either
        belong to no account's trail and are not exported)."""
        c = t.audit_events.c
        q = (
            sa.select(c.account_id, c.region)
            .where(c.id > after_id, c.id <= upto_id, c.account_id.is_not(None), c.region.is_not(None))
            .group_by(c.account_id, c.region)
        )
        return [(r.account_id, r.region) for r in self.conn.execute(q)]

    def audit_range(
        self, account_id: str, region: str, after_id: int, upto_id: int, limit: int | None = None
    ) -> list[tuple[int, float, str]]:
        """(id, event time, record) of the pair's rows in (after_id, upto_id], oldest id first."""
        c = t.audit_events.c
        q = (
            sa.select(c.id, c.event_time, c.record)
            .where(c.account_id == account_id, c.region == region, c.id > after_id, c.id <= upto_id)
            .order_by(c.id)
        )
        if limit is not None:
            q = q.limit(limit)
        return [(r.id, r.event_time, r.record) for r in self.conn.execute(q)]

    def audit_range_last_id(
        self, account_id: str, region: str, after_id: int, upto_id: int, limit: int
    ) -> int | None:
        """The id of the ``limit``-th row (or the last) of the pair in (after_id, upto_id]; None: no row."""
        c = t.audit_events.c
        ids = (
            sa.select(c.id)
            .where(c.account_id == account_id, c.region == region, c.id > after_id, c.id <= upto_id)
            .order_by(c.id)
            .limit(limit)
            .subquery()
        )
        value = self.conn.execute(sa.select(sa.func.max(ids.c.id))).scalar()
        return int(value) if value is not None else None

    def audit_time_range(
        self, start: float | None, end: float | None
    ) -> list[tuple[str, str, int, float, str]]:
        """(account, Region, id, event time, record) of the rows whose event time is in [start, end],
        by account, Region and id (the one-off export)."""
        c = t.audit_events.c
        q = sa.select(c.account_id, c.region, c.id, c.event_time, c.record).where(
            c.account_id.is_not(None), c.region.is_not(None)
        )
        if start is not None:
            q = q.where(c.event_time >= start)
        if end is not None:
            q = q.where(c.event_time <= end)
        q = q.order_by(c.account_id, c.region, c.id)
        return [(r.account_id, r.region, r.id, r.event_time, r.record) for r in self.conn.execute(q)]

    def oldest_unexported(self, account_id: str, region: str) -> tuple[bool, float | None]:
        """Whether the pair has a cursor, and the event time of its oldest row not yet exported (None:
        every stored row was)."""
        state = self.export_state(account_id, region)
        if state is None:
            return False, None
        c = t.audit_events.c
        oldest = self.conn.execute(
            sa.select(sa.func.min(c.event_time)).where(
                c.account_id == account_id, c.region == region, c.id > state.exported_id
            )
        ).scalar()
        return True, float(oldest) if oldest is not None else None

    # -- the lease -----------------------------------------------------------------------------------
    def take_export_lease(self, holder: str, now: float, duration: float) -> int | None:
        """Take or renew the exporters' lease for ``holder`` until ``now + duration``; the scanned id
        when held, None when another holder's lease runs."""
        c = t.audit_export_lease.c
        row = self.conn.execute(sa.select(t.audit_export_lease).where(c.name == LEASE)).first()
        if row is None:
            self.conn.execute(
                t.audit_export_lease.insert().values(
                    name=LEASE, holder=holder, expires=now + duration, scanned_id=0
                )
            )
            return 0
        if row.holder != holder and row.expires > now:
            return None
        done = self.conn.execute(
            t.audit_export_lease.update()
            .where(c.name == LEASE, c.holder == row.holder, c.expires == row.expires)
            .values(holder=holder, expires=now + duration)
        )
        return int(row.scanned_id) if done.rowcount == 1 else None

    def release_export_lease(self, holder: str) -> None:
        c = t.audit_export_lease.c
        self.conn.execute(
            t.audit_export_lease.update().where(c.name == LEASE, c.holder == holder).values(expires=0.0)
        )

    def set_export_scanned(self, scanned_id: int) -> None:
        c = t.audit_export_lease.c
        self.conn.execute(
            t.audit_export_lease.update()
            .where(c.name == LEASE, c.scanned_id < scanned_id)
            .values(scanned_id=scanned_id)
        )

    # -- cursors ---------------------------------------------------------------------------------------
    def export_states(self) -> list[ExportState]:
        c = t.audit_export_state.c
        q = sa.select(t.audit_export_state).order_by(c.account_id, c.region)
        return [_state(r) for r in self.conn.execute(q)]

    def export_state(self, account_id: str, region: str) -> ExportState | None:
        c = t.audit_export_state.c
        q = sa.select(t.audit_export_state).where(c.account_id == account_id, c.region == region)
        row = self.conn.execute(q).first()
        return _state(row) if row is not None else None

    def add_export_state(self, account_id: str, region: str, exported_id: int, now: float) -> None:
        """A cursor for a pair first seen after ``exported_id`` (nothing of it at or below)."""
        if self.export_state(account_id, region) is not None:
            return
        self.conn.execute(
            t.audit_export_state.insert().values(
                account_id=account_id, region=region, created_at=now, exported_id=exported_id
            )
        )

    def _update_state(self, account_id: str, region: str, where: Any, **values: Any) -> bool:
        c = t.audit_export_state.c
        done = self.conn.execute(
            t.audit_export_state.update()
            .where(c.account_id == account_id, c.region == region, where)
            .values(**values)
        )
        return bool(done.rowcount == 1)

    def plan_export(self, account_id: str, region: str, pending_id: int, at: float) -> bool:
        """Plan the next file: the rows of (exported_id, pending_id], named from ``at``."""
        c = t.audit_export_state.c
        return self._update_state(
            account_id, region, c.pending_id.is_(None), pending_id=pending_id, pending_at=at
        )

    def skip_export(self, account_id: str, region: str, exported_id: int) -> None:
        """No row of the pair up to ``exported_id``: the cursor moves on (nothing planned)."""
        c = t.audit_export_state.c
        self._update_state(
            account_id,
            region,
            sa.and_(c.pending_id.is_(None), c.exported_id < exported_id),
            exported_id=exported_id,
        )

    def finish_export(self, account_id: str, region: str, pending_id: int, file: ExportedFile) -> bool:
        """The planned file is on disk: the cursor moves to its last row and the file awaits its digest
        (compare-and-set on the plan; False: someone else finished it)."""
        c = t.audit_export_state.c
        if not self._update_state(
            account_id,
            region,
            c.pending_id == pending_id,
            exported_id=pending_id,
            pending_id=None,
            pending_at=None,
        ):
            return False
        f = t.audit_export_files.c
        exists = self.conn.execute(sa.select(f.s3_object).where(f.s3_object == file.s3_object)).first()
        if exists is None:
            self.conn.execute(
                t.audit_export_files.insert().values(
                    account_id=account_id,
                    region=region,
                    **{name: getattr(file, name) for name in ExportedFile.__dataclass_fields__},
                )
            )
        return True

    # -- digests ---------------------------------------------------------------------------------------
    def plan_digest(self, account_id: str, region: str, end: float) -> bool:
        """Plan the pair's next digest, ending at ``end``: it lists every file not yet in a digest."""
        c = t.audit_export_state.c
        if not self._update_state(account_id, region, c.digest_pending_end.is_(None), digest_pending_end=end):
            return False
        f = t.audit_export_files.c
        self.conn.execute(
            t.audit_export_files.update()
            .where(f.account_id == account_id, f.region == region, f.digest_end.is_(None))
            .values(digest_end=end)
        )
        return True

    def digest_files(self, account_id: str, region: str, end: float | None) -> list[ExportedFile]:
        """The files the digest ending at ``end`` lists (None: the files awaiting a digest)."""
        f = t.audit_export_files.c
        listed = f.digest_end.is_(None) if end is None else f.digest_end == end
        q = (
            sa.select(t.audit_export_files)
            .where(f.account_id == account_id, f.region == region, listed)
            .order_by(f.first_id)
        )
        return [
            ExportedFile(**{name: getattr(r, name) for name in ExportedFile.__dataclass_fields__})
            for r in self.conn.execute(q)
        ]

    def finish_digest(
        self, account_id: str, region: str, end: float, s3_object: str, signature: str, digest_hash: str
    ) -> bool:
        c = t.audit_export_state.c
        return self._update_state(
            account_id,
            region,
            c.digest_pending_end == end,
            digest_object=s3_object,
            digest_signature=signature,
            digest_hash=digest_hash,
            digest_end=end,
            digest_pending_end=None,
        )
