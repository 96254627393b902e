"""Transaction methods for the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from openkms.domain.trail_chain import COLUMNS as AUDIT_COLUMNS
from openkms.domain.trail_chain import GENESIS, chain_key, record_hash
from openkms.storage import schema as t
from openkms.storage.tx_base import TxBase

# A chain's head row (built once: this runs for every batch of records).
_CHAIN_HEAD = sa.select(t.audit_chain_heads.c.seq, t.audit_chain_heads.c.hash).where(
    t.audit_chain_heads.c.account_id == sa.bindparam("account_id"),
    t.audit_chain_heads.c.region == sa.bindparam("region"),
)
_CHAIN_HEAD_FOR_UPDATE = _CHAIN_HEAD.with_for_update()


class AuditTx(TxBase):
    # -- audit ------------------------------------------------------------------------------------------
    # The stored columns of a record are the ones its chain hash covers.
    _AUDIT_COLUMNS = AUDIT_COLUMNS

    def append_audit(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert audit rows, chained (see :mod:`openkms.domain.trail_chain`), with one driver-level
        executemany (this runs for every batch of calls). The head of each (account, Region) chain the
        batch extends is locked first, in key order (PostgreSQL: ``FOR UPDATE``; SQLite writes are
        serialized), and updated once: several processes on one database make one chain, and within a
        chain ids grow with seq (the insert follows the lock)."""
        if not rows:
            return
        heads = {key: self.lock_chain_head(*key) for key in sorted({chain_key(row) for row in rows})}
        values = []
        for row in rows:
            key = chain_key(row)
            seq, prev = heads[key]
            seq += 1
            digest = record_hash(prev, seq, row)
            heads[key] = (seq, digest)
            values.append((*(row[c] for c in self._AUDIT_COLUMNS), seq, prev, digest))
        mark = "?" if self.backend == "sqlite" else "%s"
        columns = (*self._AUDIT_COLUMNS, "seq", "prev_hash", "hash")
        sql = f"INSERT INTO audit_events ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
        self.conn.exec_driver_sql(sql, values)
        now = self.clock.now()
        self.conn.exec_driver_sql(
            f"UPDATE audit_chain_heads SET seq = {mark}, hash = {mark}, updated_at = {mark} "
            f"WHERE account_id = {mark} AND region = {mark}",
            [(seq, digest, now, account, region) for (account, region), (seq, digest) in heads.items()],
        )
        # Each record's lookup attributes, keyed by the id the insert gave it (found by its event id).
        attributes = [
            (name, value, row["event_id"])
            for row in rows
            if row["account_id"] and row["region"]
            for name, value in row.get("attributes", ())
        ]
        if attributes:
            self.conn.exec_driver_sql(
                "INSERT INTO audit_attributes (audit_id, account_id, region, name, value, event_time) "
                f"SELECT id, account_id, region, {mark}, {mark}, event_time FROM audit_events "
                f"WHERE event_id = {mark}",
                attributes,
            )

    def lock_chain_head(self, account_id: str, region: str) -> tuple[int, str]:
        """The (seq, hash) of the chain's newest record ((0, GENESIS) for a new chain, whose head row
        this inserts), its head row locked for this transaction."""
        q = _CHAIN_HEAD_FOR_UPDATE if self.backend == "postgresql" else _CHAIN_HEAD
        params = {"account_id": account_id, "region": region}
        row = self.conn.execute(q, params).first()
        if row is None:
            self.conn.execute(
                sa.text(
                    "INSERT INTO audit_chain_heads (account_id, region, seq, hash, updated_at, digests, "
                    "digested_seq) VALUES (:a, :r, 0, :h, :now, 0, 0) ON CONFLICT DO NOTHING"
                ),
                {"a": account_id, "r": region, "h": GENESIS, "now": self.clock.now()},
            )
            row = self.conn.execute(q, params).first()
            if row is None:
                raise RuntimeError(f"audit chain head {account_id}/{region} missing after insert")
        return int(row[0]), str(row[1])

    def last_successful_event(
        self, account_id: str, region: str, key_id: str, event_names: Sequence[str]
    ) -> str | None:
        """The record, in the trail of the key's account ``account_id``, of the newest successful call
        among ``event_names`` on a key (or None). Another account's use of the key is there too, as
        the owner's copy of its record (its eventID the one the owner's trail knows). The key's
        region counts: the keys of a multi-Region set share their key id."""
        c = t.audit_events.c
        q = (
            sa.select(c.record)
            .where(
                c.key_id == key_id,
                c.account_id == account_id,
                c.region == region,
                c.error_code.is_(None),
                c.event_name.in_(list(event_names)),
            )
            .order_by(c.id.desc())
            .limit(1)
        )
        row = self.conn.execute(q).first()
        return row[0] if row is not None else None

    def query_audit(
        self,
        *,
        account_id: str | None = None,
        key_id: str | None = None,
        event_name: str | None = None,
        principal_arn: str | None = None,
        start: float | None = None,
        end: float | None = None,
        limit: int = 1000,
        before_id: int | None = None,
    ) -> list[tuple[int, str]]:
        c = t.audit_events.c
        q = sa.select(c.id, c.record)
        if account_id is not None:
            q = q.where(c.account_id == account_id)
        if key_id is not None:
            q = q.where(c.key_id == key_id)
        if event_name is not None:
            q = q.where(c.event_name == event_name)
        if principal_arn is not None:
            q = q.where(c.principal_arn == principal_arn)
        if start is not None:
            q = q.where(c.event_time >= start)
        if end is not None:
            q = q.where(c.event_time <= end)
        if before_id is not None:
            q = q.where(c.id < before_id)
        return [(r.id, r.record) for r in self.conn.execute(q.order_by(c.id.desc()).limit(limit))]

    def lookup_events(
        self,
        *,
        account_id: str,
        region: str,
        attribute: tuple[str, str] | None,
        start: float,
        end: float,
        before: tuple[float, int] | None,
        limit: int,
    ) -> list[tuple[int, float, str]]:
        """CloudTrail LookupEvents over one account's trail in one Region: ``(id, event_time, record)``
        newest first (by event time, then id), between ``start`` and ``end`` inclusive, strictly before
        the keyset position ``before``; ``attribute`` is one (LookupAttributeKey, value) or None.
        EventName and EventId are columns of ``audit_events``, the others rows of ``audit_attributes``
        (each query one range of an index: ``ix_audit_trail``, ``ix_audit_trail_name``, the event id's
        unique index, the attributes' primary key)."""
        e = t.audit_events.c
        if attribute is not None and attribute[0] not in ("EventName", "EventId"):
            x = t.audit_attributes.c
            q = (
                sa.select(e.id, e.event_time, e.record)
                .select_from(t.audit_attributes.join(t.audit_events, e.id == x.audit_id))
                .where(
                    x.account_id == account_id,
                    x.region == region,
                    x.name == attribute[0],
                    x.value == attribute[1],
                    x.event_time >= start,
                    x.event_time <= end,
                )
            )
            time_col, id_col = x.event_time, x.audit_id
        else:
            q = sa.select(e.id, e.event_time, e.record).where(
                e.account_id == account_id, e.region == region, e.event_time >= start, e.event_time <= end
            )
            if attribute is not None:
                q = q.where(
                    e.event_name == attribute[1]
                    if attribute[0] == "EventName"
                    else e.event_id == attribute[1]
                )
            time_col, id_col = e.event_time, e.id
        if before is not None:
            q = q.where(sa.tuple_(time_col, id_col) < sa.tuple_(sa.literal(before[0]), sa.literal(before[1])))
        q = q.order_by(time_col.desc(), id_col.desc()).limit(limit)
        return [(r[0], r[1], r[2]) for r in self.conn.execute(q)]
