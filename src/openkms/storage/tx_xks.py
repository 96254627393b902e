"""Transaction methods for the XKS proxy (migration 6): key stores, their credentials, external keys.

Nothing here is cached by the server: each proxy call reads its key store, credential and key in one
read transaction, so a rotation, a disabled key or a deleted one holds at once on every node.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from openkms.storage import schema as t
from openkms.storage.rows import Conflict, XksCredentialRow, XksKeyRow, XksKeyStoreRow
from openkms.storage.tx_base import TxBase, storable


def _keystore(r: Any) -> XksKeyStoreRow:
    return XksKeyStoreRow(r.name, r.created_at, r.max_tps, r.client_cn)


def _credential(r: Any) -> XksCredentialRow:
    return XksCredentialRow(r.access_key_id, r.keystore, bytes(r.secret_sealed), r.created_at, r.valid_until)


def _key(r: Any) -> XksKeyRow:
    return XksKeyRow(
        r.keystore,
        r.key_id,
        r.key_spec,
        tuple(usage for usage in r.key_usage.split(",") if usage),
        r.status,
        bytes(r.material_sealed),
        tuple(json.loads(r.allowed_principals)),
        r.created_at,
    )


class XksTx(TxBase):
    # -- key stores ---------------------------------------------------------------------------------------
    def insert_xks_keystore(self, row: XksKeyStoreRow) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    t.xks_keystores.insert().values(
                        name=row.name, created_at=row.created_at, max_tps=row.max_tps, client_cn=row.client_cn
                    )
                )
        except sa.exc.IntegrityError:
            raise Conflict(row.name) from None

    def get_xks_keystore(self, name: str, for_update: bool = False) -> XksKeyStoreRow | None:
        """The key store; ``for_update`` locks its row (PostgreSQL; SQLite serialises writers), the
        lock every change to the key store, its credentials or its keys takes first."""
        if not storable(name):
            return None
        q = sa.select(t.xks_keystores).where(t.xks_keystores.c.name == name)
        if for_update and self.backend == "postgresql":
            q = q.with_for_update()
        r = self.conn.execute(q).first()
        return _keystore(r) if r is not None else None

    def list_xks_keystores(self) -> list[XksKeyStoreRow]:
        q = sa.select(t.xks_keystores).order_by(t.xks_keystores.c.name)
        return [_keystore(r) for r in self.conn.execute(q)]

    def update_xks_keystore(self, row: XksKeyStoreRow) -> None:
        c = t.xks_keystores.c
        self.conn.execute(
            t.xks_keystores.update()
            .where(c.name == row.name)
            .values(max_tps=row.max_tps, client_cn=row.client_cn)
        )

    # -- credentials --------------------------------------------------------------------------------------
    def insert_xks_credential(self, row: XksCredentialRow) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    t.xks_credentials.insert().values(
                        access_key_id=row.access_key_id,
                        keystore=row.keystore,
                        secret_sealed=row.secret_sealed,
                        created_at=row.created_at,
                        valid_until=row.valid_until,
                    )
                )
        except sa.exc.IntegrityError:
            raise Conflict(row.access_key_id) from None

    def get_xks_credential(self, access_key_id: str) -> XksCredentialRow | None:
        if not storable(access_key_id):
            return None
        q = sa.select(t.xks_credentials).where(t.xks_credentials.c.access_key_id == access_key_id)
        r = self.conn.execute(q).first()
        return _credential(r) if r is not None else None

    def list_xks_credentials(self, keystore: str) -> list[XksCredentialRow]:
        c = t.xks_credentials.c
        q = sa.select(t.xks_credentials).where(c.keystore == keystore).order_by(c.created_at)
        return [_credential(r) for r in self.conn.execute(q)]

    def set_xks_credential_valid_until(self, access_key_id: str, valid_until: float) -> None:
        c = t.xks_credentials.c
        self.conn.execute(
            t.xks_credentials.update().where(c.access_key_id == access_key_id).values(valid_until=valid_until)
        )

    def delete_xks_credential(self, access_key_id: str) -> None:
        c = t.xks_credentials.c
        self.conn.execute(t.xks_credentials.delete().where(c.access_key_id == access_key_id))

    # -- external keys ------------------------------------------------------------------------------------
    def insert_xks_key(self, row: XksKeyRow) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(t.xks_keys.insert().values(**_key_values(row)))
        except sa.exc.IntegrityError:
            raise Conflict(row.key_id) from None

    def get_xks_key(self, keystore: str, key_id: str) -> XksKeyRow | None:
        if not storable(keystore, key_id):
            return None
        c = t.xks_keys.c
        r = self.conn.execute(sa.select(t.xks_keys).where(c.keystore == keystore, c.key_id == key_id)).first()
        return _key(r) if r is not None else None

    def list_xks_keys(self, keystore: str) -> list[XksKeyRow]:
        c = t.xks_keys.c
        q = sa.select(t.xks_keys).where(c.keystore == keystore).order_by(c.key_id)
        return [_key(r) for r in self.conn.execute(q)]

    def update_xks_key(self, row: XksKeyRow) -> None:
        c = t.xks_keys.c
        values = _key_values(row)
        self.conn.execute(
            t.xks_keys.update()
            .where(c.keystore == row.keystore, c.key_id == row.key_id)
            .values(
                key_usage=values["key_usage"],
                status=values["status"],
                allowed_principals=values["allowed_principals"],
            )
        )

    def delete_xks_key(self, keystore: str, key_id: str) -> bool:
        c = t.xks_keys.c
        result = self.conn.execute(t.xks_keys.delete().where(c.keystore == keystore, c.key_id == key_id))
        return bool(result.rowcount)


def _key_values(row: XksKeyRow) -> dict[str, Any]:
    return {
        "keystore": row.keystore,
        "key_id": row.key_id,
        "key_spec": row.key_spec,
        "key_usage": ",".join(row.key_usage),
        "status": row.status,
        "material_sealed": row.material_sealed,
        "allowed_principals": json.dumps(list(row.allowed_principals)),
        "created_at": row.created_at,
    }
