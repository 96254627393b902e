"""Transaction methods for the external key stores this service uses as a KMS (migration 8): the key
stores (``custom_key_stores``) and the KMS keys in them (``external_store_keys``: the external key's
id at the proxy).

Neither is cached: an operation on a key in an external key store reads its key store here (its
connection state and proxy settings) in the same worker-thread call that talks to the proxy.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from openkms.storage import schema as t
from openkms.storage.rows import Conflict, CustomKeyStoreRow, ExternalStoreKeyRow
from openkms.storage.tx_base import TxBase, storable

_UPDATABLE = (
    "name",
    "connection_state",
    "connection_error_code",
    "uri_endpoint",
    "uri_path",
    "connectivity",
    "access_key_id",
    "secret_sealed",
)


def _store(r: Any) -> CustomKeyStoreRow:
    return CustomKeyStoreRow(
        r.custom_key_store_id,
        r.region,
        r.account_id,
        r.name,
        r.store_type,
        r.connection_state,
        r.connection_error_code,
        r.created_at,
        r.uri_endpoint,
        r.uri_path,
        r.connectivity,
        r.access_key_id,
        bytes(r.secret_sealed),
    )


class CustomKeyStoresTx(TxBase):
    # -- key stores ---------------------------------------------------------------------------------------
    def insert_custom_key_store(self, row: CustomKeyStoreRow) -> None:
        """Raises :class:`Conflict` when the account already has a key store of that name here."""
        values = {name: getattr(row, name) for name in CustomKeyStoreRow.__slots__}
        try:
            with self.conn.begin_nested():
                self.conn.execute(t.custom_key_stores.insert().values(**values))
        except sa.exc.IntegrityError:
            raise Conflict(row.name) from None

    def get_custom_key_store(
        self, region: str, account_id: str, store_id: str, for_update: bool = False
    ) -> CustomKeyStoreRow | None:
        """The account's key store of that id in the Region; ``for_update`` locks its row."""
        if not storable(store_id):
            return None
        c = t.custom_key_stores.c
        q = sa.select(t.custom_key_stores).where(
            c.custom_key_store_id == store_id, c.region == region, c.account_id == account_id
        )
        if for_update and self.backend == "postgresql":
            q = q.with_for_update()
        r = self.conn.execute(q).first()
        return _store(r) if r is not None else None

    def list_custom_key_stores(
        self, region: str, account_id: str, *, name: str | None = None
    ) -> list[CustomKeyStoreRow]:
        """The account's key stores in the Region (or the one of that name), by id."""
        if not storable(name):
            return []
        c = t.custom_key_stores.c
        q = sa.select(t.custom_key_stores).where(c.region == region, c.account_id == account_id)
        if name is not None:
            q = q.where(c.name == name)
        return [_store(r) for r in self.conn.execute(q.order_by(c.custom_key_store_id))]

    def update_custom_key_store(self, row: CustomKeyStoreRow) -> None:
        """Raises :class:`Conflict` when its new name is another key store's."""
        c = t.custom_key_stores.c
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    t.custom_key_stores.update()
                    .where(c.custom_key_store_id == row.custom_key_store_id)
                    .values(**{name: getattr(row, name) for name in _UPDATABLE})
                )
        except sa.exc.IntegrityError:
            raise Conflict(row.name) from None

    def delete_custom_key_store(self, store_id: str) -> None:
        self.conn.execute(
            t.external_store_keys.delete().where(t.external_store_keys.c.custom_key_store_id == store_id)
        )
        self.conn.execute(
            t.custom_key_stores.delete().where(t.custom_key_stores.c.custom_key_store_id == store_id)
        )

    # -- keys in key stores -------------------------------------------------------------------------------
    def _live_keys(self, store_id: str) -> sa.Select[Any]:
        """The rows of the key store's KMS keys that still exist (a deleted key leaves its row)."""
        e, k = t.external_store_keys.c, t.keys.c
        return (
            sa.select(t.external_store_keys)
            .join(t.keys, sa.and_(k.region == e.region, k.key_id == e.key_id))
            .where(e.custom_key_store_id == store_id)
        )

    def custom_key_store_has_keys(self, store_id: str) -> bool:
        return self.conn.execute(self._live_keys(store_id).limit(1)).first() is not None

    def external_key_in_use(self, store_id: str, xks_key_id: str) -> bool:
        """Whether a KMS key of the key store already uses that external key."""
        q = self._live_keys(store_id).where(t.external_store_keys.c.xks_key_id == xks_key_id).limit(1)
        return self.conn.execute(q).first() is not None

    def insert_external_store_key(self, row: ExternalStoreKeyRow) -> None:
        e = t.external_store_keys
        self.conn.execute(e.delete().where(e.c.region == row.region, e.c.key_id == row.key_id))
        self.conn.execute(
            e.insert().values(
                region=row.region,
                key_id=row.key_id,
                custom_key_store_id=row.custom_key_store_id,
                xks_key_id=row.xks_key_id,
            )
        )

    def get_external_store_key(self, region: str, key_id: str) -> ExternalStoreKeyRow | None:
        if not storable(key_id):
            return None
        e = t.external_store_keys.c
        r = self.conn.execute(
            sa.select(t.external_store_keys).where(e.region == region, e.key_id == key_id)
        ).first()
        return ExternalStoreKeyRow(r.region, r.key_id, r.custom_key_store_id, r.xks_key_id) if r else None
