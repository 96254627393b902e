"""Transaction methods for keys, their materials, import parameters, aliases and tags."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from openkms.domain.model import Alias, KeyMaterial, KeyRecord, KeyState
from openkms.storage import schema as t
from openkms.storage.rows import (
    Conflict,
    alias_from_row,
    key_from_row,
    key_values,
    material_from_row,
    material_values,
)
from openkms.storage.tx_base import storable
from openkms.storage.tx_multi_region import MultiRegionTx

# Statements built once, executed with their values: SQLAlchemy compiles each once, where a statement
# built on every call (``.values(**row)``, ``.where(col == value)``) costs its construction and its
# cache key each time.
_INSERT_KEY = t.keys.insert()


def _upsert_material(insert: Any) -> Any:
    """``INSERT … ON CONFLICT (region, key_id, material_id) DO UPDATE`` of every other column (the
    same statement text on SQLite and PostgreSQL, built with each dialect's insert)."""
    stmt = insert(t.key_materials)
    keys = [c.name for c in t.key_materials.primary_key.columns]
    return stmt.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: stmt.excluded[c.name] for c in t.key_materials.columns if c.name not in keys},
    )


# A material stored whether or not one of its id is there: one statement (a new key's first material
# never pays for a lookup).
_PUT_MATERIAL = {"sqlite": _upsert_material(sqlite_insert), "postgresql": _upsert_material(pg_insert)}

# The queries that load keys into the cache (a cache miss runs each once), with bound ``region`` and
# ``ids``.
_REGION: sa.BindParameter[str] = sa.bindparam("region")
_IDS: sa.BindParameter[list[str]] = sa.bindparam("ids", expanding=True)
_KEYS_BY_ID = sa.select(t.keys).where(t.keys.c.region == _REGION, t.keys.c.key_id.in_(_IDS))
_MATERIALS_OF_KEYS = (
    sa.select(t.key_materials)
    .where(t.key_materials.c.region == _REGION, t.key_materials.c.key_id.in_(_IDS))
    .order_by(t.key_materials.c.key_id, t.key_materials.c.created, t.key_materials.c.material_id)
)
_ALIASES_OF_KEYS = (
    sa.select(t.aliases)
    .where(t.aliases.c.region == _REGION, t.aliases.c.key_id.in_(_IDS))
    .order_by(t.aliases.c.alias_name)
)
_TAGS_OF_KEYS = (
    sa.select(t.tags.c.key_id, t.tags.c.tag_key, t.tags.c.tag_value)
    .where(t.tags.c.region == _REGION, t.tags.c.key_id.in_(_IDS))
    .order_by(t.tags.c.key_id, t.tags.c.tag_key)
)


class KeysTx(MultiRegionTx):
    # -- keys ------------------------------------------------------------------------------------------
    def insert_key(self, key: KeyRecord, sync_since: float | None = None) -> None:
        """A new key; a multi-Region one also joins its set (``key.primary_region``: the set's primary
        Region, None for a new primary; ``sync_since``: a replica being created since then)."""
        self.conn.execute(_INSERT_KEY, key_values(key))
        self.changed("key", f"{key.region}/{key.key_id}")
        if key.multi_region:
            self.insert_multi_region_key(key, key.primary_region or key.region, sync_since)

    def get_key(self, region: str, key_id: str, for_update: bool = False) -> KeyRecord | None:
        q = sa.select(t.keys).where(t.keys.c.region == region, t.keys.c.key_id == key_id)
        if for_update and self.backend == "postgresql":
            q = q.with_for_update()
        r = self.conn.execute(q).first()
        if r is None:
            return None
        key = key_from_row(r)
        self.fill_multi_region([key])
        return key

    def get_keys(self, region: str, key_ids: Sequence[str]) -> list[KeyRecord]:
        """The keys of ``key_ids`` that exist, in one query (loading a page of keys at once; one more
        for the multi-Region sets of those that are multi-Region keys)."""
        keys = [
            key_from_row(r) for r in self.conn.execute(_KEYS_BY_ID, {"region": region, "ids": list(key_ids)})
        ]
        self.fill_multi_region(keys)
        return keys

    def update_key(self, key: KeyRecord) -> None:
        key.version += 1
        self.conn.execute(
            t.keys.update()
            .where(t.keys.c.region == key.region, t.keys.c.key_id == key.key_id)
            .values(**key_values(key))
        )
        self.changed("key", f"{key.region}/{key.key_id}")

    def list_keys(self, region: str, account_id: str, after: str | None, limit: int) -> list[str]:
        q = sa.select(t.keys.c.key_id).where(t.keys.c.region == region, t.keys.c.account_id == account_id)
        if after is not None:
            q = q.where(t.keys.c.key_id > after)
        return [r[0] for r in self.conn.execute(q.order_by(t.keys.c.key_id).limit(limit))]

    def count_keys_by_state(self) -> dict[str, int]:
        """The number of keys in each state, over every account and Region (the states with none left
        out)."""
        c = t.keys.c
        rows = self.conn.execute(sa.select(c.key_state, sa.func.count()).group_by(c.key_state))
        return {str(state): int(count) for state, count in rows}

    def keys_due_for_deletion(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        q = (
            sa.select(t.keys.c.region, t.keys.c.key_id)
            .where(t.keys.c.key_state == str(KeyState.PENDING_DELETION), t.keys.c.deletion_date <= now)
            .limit(limit)
        )
        return [(r.region, r.key_id) for r in self.conn.execute(q)]

    def keys_due_for_rotation(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        """Keys whose automatic rotation is due; not multi-Region replicas (their primary rotates them)."""
        m = t.multi_region_keys
        replica = sa.exists().where(
            m.c.region == t.keys.c.region, m.c.key_id == t.keys.c.key_id, m.c.primary_region != m.c.region
        )
        q = (
            sa.select(t.keys.c.region, t.keys.c.key_id)
            .where(t.keys.c.rotation_enabled.is_(True), t.keys.c.next_rotation_date <= now, ~replica)
            .limit(limit)
        )
        return [(r.region, r.key_id) for r in self.conn.execute(q)]

    def delete_key(self, region: str, key_id: str) -> list[str]:
        """Delete a key with its materials, tags and aliases; returns the deleted alias names."""
        alias_rows = self.conn.execute(
            sa.select(t.aliases.c.account_id, t.aliases.c.alias_name).where(
                t.aliases.c.region == region, t.aliases.c.key_id == key_id
            )
        ).all()
        self.conn.execute(
            t.aliases.delete().where(t.aliases.c.region == region, t.aliases.c.key_id == key_id)
        )
        self.conn.execute(t.tags.delete().where(t.tags.c.region == region, t.tags.c.key_id == key_id))
        self.conn.execute(
            t.key_materials.delete().where(
                t.key_materials.c.region == region, t.key_materials.c.key_id == key_id
            )
        )
        self.conn.execute(t.keys.delete().where(t.keys.c.region == region, t.keys.c.key_id == key_id))
        self.conn.execute(
            t.import_parameters.delete().where(
                t.import_parameters.c.region == region, t.import_parameters.c.key_id == key_id
            )
        )
        self.conn.execute(t.grants.delete().where(t.grants.c.region == region, t.grants.c.key_id == key_id))
        self.changed("key", f"{region}/{key_id}")
        self.delete_multi_region_key(region, key_id)
        for r in alias_rows:
            self.changed("alias", f"{region}/{r.account_id}/{r.alias_name}")
        return [r.alias_name for r in alias_rows]

    # -- key materials ----------------------------------------------------------------------------------
    def put_material(self, region: str, key_id: str, material: KeyMaterial) -> None:
        """Store a key's material, replacing the stored one of the same id."""
        self.conn.execute(_PUT_MATERIAL[self.backend], material_values(region, key_id, material))
        self.changed("key", f"{region}/{key_id}")

    def get_materials(self, region: str, key_id: str) -> list[KeyMaterial]:
        return self.materials_of_keys(region, [key_id]).get(key_id, [])

    def materials_of_keys(self, region: str, key_ids: Sequence[str]) -> dict[str, list[KeyMaterial]]:
        """Key id -> its materials, oldest first, for the keys of ``key_ids``, in one query."""
        found: dict[str, list[KeyMaterial]] = {}
        for r in self.conn.execute(_MATERIALS_OF_KEYS, {"region": region, "ids": list(key_ids)}):
            found.setdefault(r.key_id, []).append(material_from_row(r))
        return found

    def materials_due_for_expiry(self, now: float, limit: int = 100) -> list[tuple[str, str, str]]:
        c = t.key_materials.c
        q = (
            sa.select(c.region, c.key_id, c.material_id)
            .where(c.expiration_model == "KEY_MATERIAL_EXPIRES", c.valid_to <= now, c.sealed.is_not(None))
            .limit(limit)
        )
        return [(r.region, r.key_id, r.material_id) for r in self.conn.execute(q)]

    # -- import parameters (wrapping key pairs behind import tokens) ------------------------------------
    def put_import_parameters(
        self,
        token_id: str,
        region: str,
        key_id: str,
        algorithm: str,
        spec: str,
        private_key_sealed: bytes,
        expires: float,
    ) -> None:
        self.conn.execute(
            t.import_parameters.insert().values(
                token_id=token_id,
                region=region,
                key_id=key_id,
                wrapping_algorithm=algorithm,
                wrapping_key_spec=spec,
                private_key_sealed=private_key_sealed,
                expires=expires,
            )
        )

    def get_import_parameters(self, token_id: str) -> tuple[str, str, bytes, float] | None:
        """(region, key id, sealed private key, expires) of a live import token."""
        c = t.import_parameters.c
        r = self.conn.execute(
            sa.select(c.region, c.key_id, c.private_key_sealed, c.expires).where(c.token_id == token_id)
        ).first()
        return (r.region, r.key_id, bytes(r.private_key_sealed), r.expires) if r is not None else None

    def delete_import_parameters(self, token_id: str) -> None:
        self.conn.execute(t.import_parameters.delete().where(t.import_parameters.c.token_id == token_id))

    def purge_import_parameters(self, now: float) -> int:
        c = t.import_parameters.c
        return int(self.conn.execute(t.import_parameters.delete().where(c.expires <= now)).rowcount)

    # -- aliases ----------------------------------------------------------------------------------------
    def create_alias(self, alias: Alias) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    t.aliases.insert().values(
                        region=alias.region,
                        account_id=alias.account_id,
                        alias_name=alias.alias_name,
                        key_id=alias.target_key_id,
                        creation_date=alias.creation_date,
                        last_updated_date=alias.last_updated_date,
                    )
                )
        except sa.exc.IntegrityError:
            raise Conflict(alias.alias_name) from None
        self.changed("alias", f"{alias.region}/{alias.account_id}/{alias.alias_name}")
        # A key keeps its alias names (condition key kms:ResourceAliases): its entry changes too.
        self.changed("key", f"{alias.region}/{alias.target_key_id}")

    def get_alias(
        self, region: str, account_id: str, alias_name: str, for_update: bool = False
    ) -> Alias | None:
        if not storable(account_id, alias_name):
            return None
        q = sa.select(t.aliases).where(
            t.aliases.c.region == region,
            t.aliases.c.account_id == account_id,
            t.aliases.c.alias_name == alias_name,
        )
        if for_update and self.backend == "postgresql":
            q = q.with_for_update()
        r = self.conn.execute(q).first()
        return alias_from_row(r) if r is not None else None

    def update_alias(
        self, region: str, account_id: str, alias_name: str, key_id: str, previous_key_id: str, now: float
    ) -> None:
        """Point the alias at ``key_id``; ``previous_key_id`` is the key it leaves (the caller has read
        the alias, locked): both keys' entries change, as they hold their alias names."""
        self.conn.execute(
            t.aliases.update()
            .where(
                t.aliases.c.region == region,
                t.aliases.c.account_id == account_id,
                t.aliases.c.alias_name == alias_name,
            )
            .values(key_id=key_id, last_updated_date=now)
        )
        self.changed("alias", f"{region}/{account_id}/{alias_name}")
        self.changed("key", f"{region}/{key_id}")
        self.changed("key", f"{region}/{previous_key_id}")

    def delete_alias(self, region: str, account_id: str, alias_name: str, key_id: str) -> None:
        """Delete the alias, which points at ``key_id`` (read by the caller, locked)."""
        self.conn.execute(
            t.aliases.delete().where(
                t.aliases.c.region == region,
                t.aliases.c.account_id == account_id,
                t.aliases.c.alias_name == alias_name,
            )
        )
        self.changed("alias", f"{region}/{account_id}/{alias_name}")
        self.changed("key", f"{region}/{key_id}")

    def list_aliases(
        self, region: str, account_id: str, key_id: str | None, after: str | None, limit: int
    ) -> list[Alias]:
        q = sa.select(t.aliases).where(t.aliases.c.region == region, t.aliases.c.account_id == account_id)
        if key_id is not None:
            q = q.where(t.aliases.c.key_id == key_id)
        if after is not None:
            q = q.where(t.aliases.c.alias_name > after)
        return [alias_from_row(r) for r in self.conn.execute(q.order_by(t.aliases.c.alias_name).limit(limit))]

    def aliases_of_keys(self, region: str, key_ids: Sequence[str]) -> dict[str, list[Alias]]:
        """Key id -> the aliases pointing at it, by name, for the keys of ``key_ids``, in one query."""
        found: dict[str, list[Alias]] = {}
        for r in self.conn.execute(_ALIASES_OF_KEYS, {"region": region, "ids": list(key_ids)}):
            found.setdefault(r.key_id, []).append(alias_from_row(r))
        return found

    def count_aliases(self, region: str, key_id: str) -> int:
        q = sa.select(sa.func.count()).where(t.aliases.c.region == region, t.aliases.c.key_id == key_id)
        return int(self.conn.execute(q).scalar_one())

    # -- tags -------------------------------------------------------------------------------------------
    def get_tags(self, region: str, key_id: str) -> dict[str, str]:
        return self.tags_of_keys(region, [key_id]).get(key_id, {})

    def tags_of_keys(self, region: str, key_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Key id -> its tags (by tag key) for the keys of ``key_ids``, in one query."""
        found: dict[str, dict[str, str]] = {}
        for r in self.conn.execute(_TAGS_OF_KEYS, {"region": region, "ids": list(key_ids)}):
            found.setdefault(r.key_id, {})[r.tag_key] = r.tag_value
        return found

    def set_tags(self, region: str, key_id: str, tags: dict[str, str]) -> None:
        self.conn.execute(t.tags.delete().where(t.tags.c.region == region, t.tags.c.key_id == key_id))
        if tags:
            self.conn.execute(
                t.tags.insert(),
                [{"region": region, "key_id": key_id, "tag_key": k, "tag_value": v} for k, v in tags.items()],
            )
        self.changed("key", f"{region}/{key_id}")
