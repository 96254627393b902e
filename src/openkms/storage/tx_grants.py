"""Transaction methods for grants."""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa

from openkms.storage import schema as t
from openkms.storage.rows import GrantRow, grant_from_row
from openkms.storage.tx_base import TxBase, storable

# Built once (a cache miss runs it): see the statements of ``tx_keys``.
_GRANTS_OF_KEYS = (
    sa.select(t.grants)
    .where(
        t.grants.c.region == sa.bindparam("region"),
        t.grants.c.key_id.in_(sa.bindparam("ids", expanding=True)),
    )
    .order_by(t.grants.c.key_id, t.grants.c.grant_id)
)


class GrantsTx(TxBase):
    # -- grants ----------------------------------------------------------------------------------------
    def insert_grant(self, g: GrantRow) -> None:
        self.conn.execute(
            t.grants.insert().values(
                grant_id=g.grant_id,
                region=g.region,
                key_id=g.key_id,
                account_id=g.account_id,
                name=g.name,
                creation_date=g.creation_date,
                grantee_principal=g.grantee_principal,
                retiring_principal=g.retiring_principal,
                operations=json.dumps(list(g.operations)),
                constraints=json.dumps(g.constraints) if g.constraints else None,
            )
        )
        self.changed("key", f"{g.region}/{g.key_id}")

    def get_grant(self, grant_id: str) -> GrantRow | None:
        if not storable(grant_id):
            return None
        r = self.conn.execute(sa.select(t.grants).where(t.grants.c.grant_id == grant_id)).first()
        return grant_from_row(r) if r is not None else None

    def list_grants(
        self, region: str, key_id: str, after: str | None = None, limit: int | None = None
    ) -> list[GrantRow]:
        q = sa.select(t.grants).where(t.grants.c.region == region, t.grants.c.key_id == key_id)
        if after is not None:
            q = q.where(t.grants.c.grant_id > after)
        q = q.order_by(t.grants.c.grant_id)
        if limit is not None:
            q = q.limit(limit)
        return [grant_from_row(r) for r in self.conn.execute(q)]

    def grants_of_keys(self, region: str, key_ids: Sequence[str]) -> dict[str, list[GrantRow]]:
        """Key id -> its grants (by grant id) for the keys of ``key_ids``, in one query."""
        found: dict[str, list[GrantRow]] = {}
        for r in self.conn.execute(_GRANTS_OF_KEYS, {"region": region, "ids": list(key_ids)}):
            found.setdefault(r.key_id, []).append(grant_from_row(r))
        return found

    def count_grants(self, region: str, key_id: str) -> int:
        q = sa.select(sa.func.count()).where(t.grants.c.region == region, t.grants.c.key_id == key_id)
        return int(self.conn.execute(q).scalar_one())

    def list_retirable_grants(self, retiring_principal: str, after: str | None, limit: int) -> list[GrantRow]:
        q = sa.select(t.grants).where(t.grants.c.retiring_principal == retiring_principal)
        if after is not None:
            q = q.where(t.grants.c.grant_id > after)
        return [grant_from_row(r) for r in self.conn.execute(q.order_by(t.grants.c.grant_id).limit(limit))]

    def delete_grant(self, g: GrantRow) -> None:
        self.conn.execute(t.grants.delete().where(t.grants.c.grant_id == g.grant_id))
        self.changed("key", f"{g.region}/{g.key_id}")
