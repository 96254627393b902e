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
