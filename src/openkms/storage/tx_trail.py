"""Transaction methods for the tamper-evident audit trail: the chain heads, the signed digests and
retention markers, and the digest signing keys. (The chained insert itself is
:meth:`openkms.storage.tx_audit.AuditTx.append_audit`.)"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from openkms.storage import schema as t
from openkms.storage.tx_base import TxBase

Row = dict[str, Any]


def _bytes(value: Any) -> bytes:
    return bytes(value) if value is not None else b""


class TrailTx(TxBase):
    # -- signing keys -----------------------------------------------------------------------------------
    def signing_keys(self, region: str | None = None) -> list[Row]:
        """Every signing key (of ``region``), oldest first: fingerprint, region, valid_from, valid_to,
        public_key (DER), private_key_sealed."""
        c = t.audit_signing_keys.c
        q = sa.select(t.audit_signing_keys)
        if region is not None:
            q = q.where(c.region == region)
        rows = []
        for r in self.conn.execute(q.order_by(c.valid_from, c.fingerprint)).mappings():
            row = dict(r)
            row["public_key"] = _bytes(row["public_key"])
            row["private_key_sealed"] = _bytes(row["private_key_sealed"])
            rows.append(row)
        return rows

    def insert_signing_key(self, row: Row) -> None:
        self.conn.execute(t.audit_signing_keys.insert().values(**row))

    def retire_signing_keys(self, region: str, keep: str, at: float) -> None:
        """End the validity (at ``at``) of every still-valid key of ``region`` but ``keep``."""
        c = t.audit_signing_keys.c
        self.conn.execute(
            t.audit_signing_keys.update()
            .where(c.region == region, c.fingerprint != keep, c.valid_to.is_(None))
            .values(valid_to=at)
        )

    # -- chain heads ------------------------------------------------------------------------------------
    def chain_heads(self) -> list[Row]:
        """Every chain's head row, in key order."""
        c = t.audit_chain_heads.c
        q = sa.select(t.audit_chain_heads).order_by(c.account_id, c.region)
        return [dict(r) for r in self.conn.execute(q).mappings()]

    def chain_head(self, account_id: str, region: str, lock: bool = False) -> Row | None:
        c = t.audit_chain_heads.c
        q = sa.select(t.audit_chain_heads).where(c.account_id == account_id, c.region == region)
        if lock and self.backend == "postgresql":
            q = q.with_for_update()
        row = self.conn.execute(q).mappings().first()
        return dict(row) if row is not None else None

    def set_chain_digest(
        self, account_id: str, region: str, *, number: int, signature: str, digested_seq: int, at: float
    ) -> None:
        c = t.audit_chain_heads.c
        self.conn.execute(
            t.audit_chain_heads.update()
            .where(c.account_id == account_id, c.region == region)
            .values(digests=number, digest_signature=signature, digested_seq=digested_seq, digested_at=at)
        )

    # -- digests and retention markers ------------------------------------------------------------------
    def insert_digest(self, row: Row) -> int:
        result = self.conn.execute(t.audit_digests.insert().values(**row))
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def digests(self, account_id: str, region: str) -> list[Row]:
        """The chain's digests and retention markers, by number (then id)."""
        c = t.audit_digests.c
        q = (
            sa.select(t.audit_digests)
            .where(c.account_id == account_id, c.region == region)
            .order_by(c.number, c.id)
        )
        return [dict(r) for r in self.conn.execute(q).mappings()]

    def digest_chains(self) -> list[tuple[str, str]]:
        c = t.audit_digests.c
        return [(r[0], r[1]) for r in self.conn.execute(sa.select(c.account_id, c.region).distinct())]

    # -- chained records --------------------------------------------------------------------------------
    @staticmethod
    def _in_chain(account_id: str, region: str) -> list[sa.ColumnElement[bool]]:
        c = t.audit_events.c
        return [
            c.account_id.is_(None) if account_id == "" else c.account_id == account_id,
            c.region.is_(None) if region == "" else c.region == region,
        ]

    def chain_records(self, account_id: str, region: str, after_seq: int, limit: int) -> list[Row]:
        """The chain's records with seq > ``after_seq``, by seq then id (all stored columns and id)."""
        c = t.audit_events.c
        q = (
            sa.select(t.audit_events)
            .where(*self._in_chain(account_id, region), c.seq > after_seq)
            .order_by(c.seq, c.id)
            .limit(limit)
        )
        return [dict(r) for r in self.conn.execute(q).mappings()]

    def chain_record(self, account_id: str, region: str, seq: int) -> Row | None:
        c = t.audit_events.c
        q = sa.select(t.audit_events).where(*self._in_chain(account_id, region), c.seq == seq).order_by(c.id)
        row = self.conn.execute(q.limit(1)).mappings().first()
        return dict(row) if row is not None else None

    def chain_seq_bounds(
        self, account_id: str, region: str, start: float | None, end: float | None
    ) -> tuple[int | None, int | None]:
        """The smallest seq at or after ``start`` and the largest at or before ``end`` (None: none)."""
        c = t.audit_events.c
        where = [*self._in_chain(account_id, region), c.seq.is_not(None)]
        low = high = None
        if start is not None:
            low = self.conn.execute(
                sa.select(sa.func.min(c.seq)).where(*where, c.event_time >= start)
            ).scalar()
        if end is not None:
            high = self.conn.execute(
                sa.select(sa.func.max(c.seq)).where(*where, c.event_time <= end)
            ).scalar()
        return (int(low) if low is not None else None, int(high) if high is not None else None)

    def unchained_records(self, account_id: str, region: str) -> list[Row]:
        """Records of the chain's account and Region without a seq stored after its first chained one
        (which nothing the service writes is: they were put there directly)."""
        c = t.audit_events.c
        first = self.conn.execute(
            sa.select(sa.func.min(c.id)).where(*self._in_chain(account_id, region), c.seq.is_not(None))
        ).scalar()
        if first is None:
            return []
        q = sa.select(c.id, c.event_id, c.event_time).where(
            *self._in_chain(account_id, region), c.seq.is_(None), c.id > first
        )
        return [dict(r) for r in self.conn.execute(q.order_by(c.id).limit(1000)).mappings()]

    def last_seq_before(self, account_id: str, region: str, before: float, upto_seq: int) -> int:
        """The largest P ≤ ``upto_seq`` such that every record of the chain with seq ≤ P is older than
        ``before`` (0 when none is)."""
        c = t.audit_events.c
        where = [*self._in_chain(account_id, region), c.seq.is_not(None), c.seq <= upto_seq]
        newer = self.conn.execute(
            sa.select(sa.func.min(c.seq)).where(*where, c.event_time >= before)
        ).scalar()
        if newer is not None:
            return int(newer) - 1
        last = self.conn.execute(sa.select(sa.func.max(c.seq)).where(*where)).scalar()
        return int(last) if last is not None else 0

    def prune_chain(self, account_id: str, region: str, through_seq: int) -> int:
        """Delete the chain's records with seq ≤ ``through_seq`` (and their lookup attributes); the number
        deleted."""
        c = t.audit_events.c
        pruned = sa.select(c.id).where(*self._in_chain(account_id, region), c.seq <= through_seq)
        x = t.audit_attributes.c
        self.conn.execute(
            t.audit_attributes.delete().where(
                x.account_id == account_id, x.region == region, x.audit_id.in_(pruned)
            )
        )
        result = self.conn.execute(
            t.audit_events.delete().where(*self._in_chain(account_id, region), c.seq <= through_seq)
        )
        return int(result.rowcount or 0)
