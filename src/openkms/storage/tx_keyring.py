"""Transaction methods for the keyring row (migration 9) and for the sealed columns a root key rotation
re-seals: reading them in key order a batch at a time, and replacing one value only if it is still the
one read (compare and set, so a rotation never overwrites a concurrent write).

The keyring row is written with a compare and set on its ``generation``; every such write announces the
change ``("keyring", "1")`` so other processes reload the keyring (a rotation's new version) at once. A
rotation's progress (:meth:`KeyringTx.add_rotation_resealed`) changes neither the generation nor the
keyring and announces nothing: no process reloads (unwraps) the keyring for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from openkms.storage import schema as t
from openkms.storage.tx_base import TxBase

KEYRING_ROW = 1


@dataclass(frozen=True, slots=True)
class KeyringRow:
    source: str
    config: str
    wrapped: bytes
    generation: int
    updated_at: float
    rotation_state: str = "idle"
    rotation_started: float | None = None
    rotation_resealed: int = 0
    rotation_total: int = 0

    def but(self, **changes: Any) -> KeyringRow:
        return replace(self, **changes)


_COLUMNS = KeyringRow.__slots__


def _table(name: str) -> sa.Table:
    table = t.metadata.tables.get(name)
    if table is None:
        raise KeyError(name)
    return table


class KeyringTx(TxBase):
    # -- the keyring ------------------------------------------------------------------------------------
    def get_keyring(self, for_update: bool = False) -> KeyringRow | None:
        query = sa.select(t.keyring).where(t.keyring.c.id == KEYRING_ROW)
        if for_update and self.backend == "postgresql":
            query = query.with_for_update()
        r = self.conn.execute(query).first()
        if r is None:
            return None
        return KeyringRow(**{name: getattr(r, name) for name in _COLUMNS}).but(wrapped=bytes(r.wrapped))

    def insert_keyring(self, row: KeyringRow) -> bool:
        """False when another process made the keyring first."""
        values = {name: getattr(row, name) for name in _COLUMNS}
        try:
            with self.conn.begin_nested():
                self.conn.execute(t.keyring.insert().values(id=KEYRING_ROW, **values))
        except sa.exc.IntegrityError:
            return False
        self.changed("keyring", str(KEYRING_ROW))
        return True

    def update_keyring(self, expected_generation: int, row: KeyringRow) -> bool:
        """Write ``row`` (whose generation the caller set above ``expected_generation``) if the stored
        row is still at ``expected_generation``; False when another write came first."""
        values = {name: getattr(row, name) for name in _COLUMNS}
        result = self.conn.execute(
            t.keyring.update()
            .where(t.keyring.c.id == KEYRING_ROW, t.keyring.c.generation == expected_generation)
            .values(**values)
        )
        if result.rowcount != 1:
            return False
        self.changed("keyring", str(KEYRING_ROW))
        return True

    def add_rotation_resealed(self, count: int) -> None:
        """Count ``count`` more values re-sealed by the running rotation, without announcing a change:
        progress is read by ``operator status`` and the resealers, not by the other processes. (It may
        pass the total: values sealed under the old version after the start are re-sealed too.)"""
        c = t.keyring.c
        self.conn.execute(
            t.keyring.update()
            .where(c.id == KEYRING_ROW, c.rotation_state == "running")
            .values(rotation_resealed=c.rotation_resealed + count)
        )

    def delete_keyring(self) -> None:
        self.conn.execute(t.keyring.delete())

    # -- sealed columns -----------------------------------------------------------------------------------
    def sealed_values(
        self, table: str, keys: Sequence[str], column: str, after: tuple[str, ...] | None, limit: int
    ) -> list[tuple[tuple[str, ...], bytes]]:
        """Up to ``limit`` (key, sealed value) of ``table`` in key order after ``after`` (None: from the
        start), skipping NULL values."""
        tab = _table(table)
        key_cols = [tab.c[k] for k in keys]
        query = sa.select(*key_cols, tab.c[column]).where(tab.c[column].is_not(None))
        if after is not None:
            query = query.where(sa.tuple_(*key_cols) > sa.tuple_(*[sa.literal(v) for v in after]))
        rows = self.conn.execute(query.order_by(*key_cols).limit(limit))
        return [(tuple(str(v) for v in r[: len(keys)]), bytes(r[len(keys)])) for r in rows]

    def replace_sealed(
        self, table: str, keys: Sequence[str], column: str, key: tuple[str, ...], old: bytes, new: bytes
    ) -> bool:
        """Set the value of row ``key`` to ``new`` if it still is ``old``; False when it changed (or the
        row is gone) since it was read."""
        tab = _table(table)
        conditions = [tab.c[k] == v for k, v in zip(keys, key, strict=True)]
        result = self.conn.execute(
            tab.update().where(*conditions, tab.c[column] == old).values({column: new})
        )
        return result.rowcount == 1

    def count_sealed(self, table: str, column: str, prefix: bytes | None = None) -> int:
        """How many rows hold a sealed value (beginning with ``prefix``, when given)."""
        tab = _table(table)
        col = tab.c[column]
        query = sa.select(sa.func.count()).select_from(tab).where(col.is_not(None))
        if prefix is not None:
            query = query.where(
                sa.func.substr(col, 1, len(prefix))
                == sa.cast(sa.literal(prefix, sa.LargeBinary), sa.LargeBinary)
            )
        return int(self.conn.execute(query).scalar_one())
