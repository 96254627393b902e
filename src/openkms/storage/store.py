"""The store: transactions over SQLite or PostgreSQL, and the rows the service reads and writes.

``store.write()`` opens a write transaction (SQLite ``BEGIN IMMEDIATE``; PostgreSQL row locks taken
with ``for_update=True``); ``store.read()`` a read-only one. Every write that other nodes must see in
their caches calls ``tx.changed(kind, ident)``: on commit the store tells its local listeners at once,
and other processes learn it through the ``changes`` table (SQLite, polled) or ``NOTIFY``
(PostgreSQL).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from openkms.domain.keyspec import KeySpec, KeyUsage, Origin
from openkms.domain.model import Alias, ImportState, KeyMaterial, KeyRecord, KeyState, MaterialState
from openkms.storage import schema as t

NOTIFY_CHANNEL = "openkms_changes"
ChangeListener = Callable[[Sequence[tuple[str, str]]], None]


class Conflict(Exception):
    """A row with that identity exists already."""


@dataclass(frozen=True, slots=True)
class AccessKeyRow:
    access_key_id: str
    account_id: str
    user_name: str
    secret_sealed: bytes
    status: str
    created_at: float


@dataclass(frozen=True, slots=True)
class UserRow:
    account_id: str
    user_name: str
    user_id: str
    path: str
    created_at: float
    inline_policies: dict[str, Any]
    tags: dict[str, str]


def normalize_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Store:
    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.backend = "postgresql" if self.url.startswith("postgresql") else "sqlite"
        self._listeners: list[ChangeListener] = []
        self.engine: Engine
        if self.backend == "sqlite":
            self.engine = sa.create_engine(
                self.url, connect_args={"isolation_level": None, "timeout": 30, "check_same_thread": False}
            )
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
        else:
            self.engine = sa.create_engine(self.url, pool_size=8, max_overflow=8, pool_pre_ping=True)
        with self._connect(write=True) as conn, conn.begin():
            if self.backend == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7244517)"))
            t.migrate(conn)

    def close(self) -> None:
        self.engine.dispose()

    def scrub(self) -> None:
        """Push deleted rows out of the SQLite write-ahead log (after deleting key material)."""
        if self.backend == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def _connect(self, write: bool) -> Connection:
        conn = self.engine.connect()
        if self.backend == "sqlite":
            conn = conn.execution_options(sqlite_begin="IMMEDIATE" if write else "DEFERRED")
        return conn

    @contextmanager
    def write(self) -> Iterator[Tx]:
        with self._connect(write=True) as conn:
            tx = Tx(conn, self.backend, write=True)
            with conn.begin():
                yield tx
            if tx.changes:
                for listener in self._listeners:
                    listener(tx.changes)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self._connect(write=False) as conn, conn.begin():
            yield Tx(conn, self.backend, write=False)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    # Deleted rows (key material, wrapping keys) are overwritten, not left in free pages.
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def _key_from_row(r: Any) -> KeyRecord:
    return KeyRecord(
        region=r.region,
        key_id=r.key_id,
        account_id=r.account_id,
        key_spec=KeySpec(r.key_spec),
        key_usage=KeyUsage(r.key_usage),
        origin=Origin(r.origin),
        key_state=KeyState(r.key_state),
        creation_date=r.creation_date,
        policy=r.policy,
        description=r.description,
        multi_region=bool(r.multi_region),
        deletion_date=r.deletion_date,
        pending_window_days=r.pending_window_days,
        rotation_enabled=bool(r.rotation_enabled),
        rotation_period_days=r.rotation_period_days,
        next_rotation_date=r.next_rotation_date,
        current_material_id=r.current_material_id,
        expiration_model=r.expiration_model,
        valid_to=r.valid_to,
        version=r.version,
    )


def _key_values(k: KeyRecord) -> dict[str, Any]:
    return {
        "region": k.region,
        "key_id": k.key_id,
        "account_id": k.account_id,
        "key_spec": str(k.key_spec),
        "key_usage": str(k.key_usage),
        "origin": str(k.origin),
        "key_state": str(k.key_state),
        "creation_date": k.creation_date,
        "policy": k.policy,
        "description": k.description,
        "multi_region": k.multi_region,
        "deletion_date": k.deletion_date,
        "pending_window_days": k.pending_window_days,
        "rotation_enabled": k.rotation_enabled,
        "rotation_period_days": k.rotation_period_days,
        "next_rotation_date": k.next_rotation_date,
        "current_material_id": k.current_material_id,
        "expiration_model": k.expiration_model,
        "valid_to": k.valid_to,
        "version": k.version,
    }


def _material_from_row(r: Any) -> KeyMaterial:
    return KeyMaterial(
        material_id=r.material_id,
        state=MaterialState(r.state),
        created=r.created,
        sealed=bytes(r.sealed) if r.sealed is not None else None,
        import_state=ImportState(r.import_state) if r.import_state else None,
        rotation_date=r.rotation_date,
        rotation_type=r.rotation_type,
        valid_to=r.valid_to,
        expiration_model=r.expiration_model,
        description=r.description,
    )


def _material_values(region: str, key_id: str, m: KeyMaterial) -> dict[str, Any]:
    return {
        "region": region,
        "key_id": key_id,
        "material_id": m.material_id,
        "state": str(m.state),
        "created": m.created,
        "sealed": m.sealed,
        "import_state": str(m.import_state) if m.import_state else None,
        "rotation_date": m.rotation_date,
        "rotation_type": m.rotation_type,
        "valid_to": m.valid_to,
        "expiration_model": m.expiration_model,
        "description": m.description,
    }


class Tx:
    """One transaction. Methods are named after the rows they touch."""

    def __init__(self, conn: Connection, backend: str, write: bool) -> None:
        self.conn = conn
        self.backend = backend
        self.write = write
        self.changes: list[tuple[str, str]] = []

    # -- change notification ------------------------------------------------------------------------
    def changed(self, kind: str, ident: str) -> None:
        self.changes.append((kind, ident))
        if self.backend == "postgresql":
            self.conn.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, f"{kind}|{ident}")))
        else:
            import time

            self.conn.execute(t.changes.insert().values(kind=kind, ident=ident, at=time.time()))

    def changes_after(self, after_id: int, limit: int = 1000) -> list[tuple[int, str, str]]:
        rows = self.conn.execute(
            sa.select(t.changes.c.id, t.changes.c.kind, t.changes.c.ident)
            .where(t.changes.c.id > after_id)
            .order_by(t.changes.c.id)
            .limit(limit)
        )
        return [(r.id, r.kind, r.ident) for r in rows]

    def last_change_id(self) -> int:
        return int(self.conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.changes.c.id), 0))).scalar_one())

    def prune_changes(self, before: float) -> None:
        self.conn.execute(t.changes.delete().where(t.changes.c.at < before))

    # -- accounts and principals ----------------------------------------------------------------------
    def create_account(self, account_id: str, now: float) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(t.accounts.insert().values(account_id=account_id, created_at=now))
        except sa.exc.IntegrityError:
            raise Conflict(account_id) from None

    def account_exists(self, account_id: str) -> bool:
        q = sa.select(t.accounts.c.account_id).where(t.accounts.c.account_id == account_id)
        return self.conn.execute(q).first() is not None

    def list_accounts(self) -> list[str]:
        return [r[0] for r in self.conn.execute(sa.select(t.accounts.c.account_id).order_by("account_id"))]

    def create_user(
        self, account_id: str, user_name: str, user_id: str, now: float, inline_policies: dict[str, Any]
    ) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    t.users.insert().values(
                        account_id=account_id,
                        user_name=user_name,
                        user_id=user_id,
                        path="/",
                        created_at=now,
                        inline_policies=json.dumps(inline_policies),
                        tags="{}",
                    )
                )
        except sa.exc.IntegrityError:
            raise Conflict(user_name) from None
        self.changed("user", f"{account_id}/{user_name}")

    def get_user(self, account_id: str, user_name: str) -> UserRow | None:
        r = self.conn.execute(
            sa.select(t.users).where(t.users.c.account_id == account_id, t.users.c.user_name == user_name)
        ).first()
        if r is None:
            return None
        return UserRow(
            r.account_id, r.user_name, r.user_id, r.path, r.created_at, json.loads(r.inline_policies), json.loads(r.tags)
        )

    def list_users(self, account_id: str) -> list[UserRow]:
        rows = self.conn.execute(
            sa.select(t.users).where(t.users.c.account_id == account_id).order_by(t.users.c.user_name)
        )
        return [
            UserRow(
                r.account_id, r.user_name, r.user_id, r.path, r.created_at, json.loads(r.inline_policies), json.loads(r.tags)
            )
            for r in rows
        ]

    def put_access_key(self, row: AccessKeyRow) -> None:
        self.conn.execute(
            t.access_keys.insert().values(
                access_key_id=row.access_key_id,
                account_id=row.account_id,
                user_name=row.user_name,
                secret_sealed=row.secret_sealed,
                status=row.status,
                created_at=row.created_at,
            )
        )
        self.changed("access_key", row.access_key_id)

    def get_access_key(self, access_key_id: str) -> AccessKeyRow | None:
        r = self.conn.execute(sa.select(t.access_keys).where(t.access_keys.c.access_key_id == access_key_id)).first()
        if r is None:
            return None
        return AccessKeyRow(r.access_key_id, r.account_id, r.user_name, bytes(r.secret_sealed), r.status, r.created_at)

    def list_access_keys(self, account_id: str, user_name: str | None) -> list[AccessKeyRow]:
        q = sa.select(t.access_keys).where(t.access_keys.c.account_id == account_id)
        if user_name is not None:
            q = q.where(t.access_keys.c.user_name == user_name)
        return [
            AccessKeyRow(r.access_key_id, r.account_id, r.user_name, bytes(r.secret_sealed), r.status, r.created_at)
            for r in self.conn.execute(q.order_by(t.access_keys.c.created_at))
        ]

    def delete_access_key(self, access_key_id: str) -> bool:
        n = self.conn.execute(t.access_keys.delete().where(t.access_keys.c.access_key_id == access_key_id)).rowcount
        self.changed("access_key", access_key_id)
        return bool(n)

    # -- keys ------------------------------------------------------------------------------------------
    def insert_key(self, key: KeyRecord) -> None:
        self.conn.execute(t.keys.insert().values(**_key_values(key)))
        self.changed("key", f"{key.region}/{key.key_id}")

    def get_key(self, region: str, key_id: str, for_update: bool = False) -> KeyRecord | None:
        q = sa.select(t.keys).where(t.keys.c.region == region, t.keys.c.key_id == key_id)
        if for_update and self.backend == "postgresql":
            q = q.with_for_update()
        r = self.conn.execute(q).first()
        return _key_from_row(r) if r is not None else None

    def update_key(self, key: KeyRecord) -> None:
        key.version += 1
        self.conn.execute(
            t.keys.update()
            .where(t.keys.c.region == key.region, t.keys.c.key_id == key.key_id)
            .values(**_key_values(key))
        )
        self.changed("key", f"{key.region}/{key.key_id}")

    def list_keys(self, region: str, account_id: str, after: str | None, limit: int) -> list[str]:
        q = sa.select(t.keys.c.key_id).where(t.keys.c.region == region, t.keys.c.account_id == account_id)
        if after is not None:
            q = q.where(t.keys.c.key_id > after)
        return [r[0] for r in self.conn.execute(q.order_by(t.keys.c.key_id).limit(limit))]

    def keys_due_for_deletion(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        q = (
            sa.select(t.keys.c.region, t.keys.c.key_id)
            .where(t.keys.c.key_state == str(KeyState.PENDING_DELETION), t.keys.c.deletion_date <= now)
            .limit(limit)
        )
        return [(r.region, r.key_id) for r in self.conn.execute(q)]

    def keys_due_for_rotation(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        q = (
            sa.select(t.keys.c.region, t.keys.c.key_id)
            .where(t.keys.c.rotation_enabled.is_(True), t.keys.c.next_rotation_date <= now)
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
        self.conn.execute(t.aliases.delete().where(t.aliases.c.region == region, t.aliases.c.key_id == key_id))
        self.conn.execute(t.tags.delete().where(t.tags.c.region == region, t.tags.c.key_id == key_id))
        self.conn.execute(
            t.key_materials.delete().where(t.key_materials.c.region == region, t.key_materials.c.key_id == key_id)
        )
        self.conn.execute(t.keys.delete().where(t.keys.c.region == region, t.keys.c.key_id == key_id))
        self.conn.execute(
            t.import_parameters.delete().where(
                t.import_parameters.c.region == region, t.import_parameters.c.key_id == key_id
            )
        )
        self.changed("key", f"{region}/{key_id}")
        for r in alias_rows:
            self.changed("alias", f"{region}/{r.account_id}/{r.alias_name}")
        return [r.alias_name for r in alias_rows]

    # -- key materials ----------------------------------------------------------------------------------
    def put_material(self, region: str, key_id: str, material: KeyMaterial) -> None:
        values = _material_values(region, key_id, material)
        updated = self.conn.execute(
            t.key_materials.update()
            .where(
                t.key_materials.c.region == region,
                t.key_materials.c.key_id == key_id,
                t.key_materials.c.material_id == material.material_id,
            )
            .values(**values)
        ).rowcount
        if not updated:
            self.conn.execute(t.key_materials.insert().values(**values))
        self.changed("key", f"{region}/{key_id}")

    def get_materials(self, region: str, key_id: str) -> list[KeyMaterial]:
        q = (
            sa.select(t.key_materials)
            .where(t.key_materials.c.region == region, t.key_materials.c.key_id == key_id)
            .order_by(t.key_materials.c.created, t.key_materials.c.material_id)
        )
        return [_material_from_row(r) for r in self.conn.execute(q)]

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

    def get_alias(self, region: str, account_id: str, alias_name: str) -> Alias | None:
        r = self.conn.execute(
            sa.select(t.aliases).where(
                t.aliases.c.region == region, t.aliases.c.account_id == account_id, t.aliases.c.alias_name == alias_name
            )
        ).first()
        return _alias(r) if r is not None else None

    def update_alias(self, region: str, account_id: str, alias_name: str, key_id: str, now: float) -> None:
        self.conn.execute(
            t.aliases.update()
            .where(t.aliases.c.region == region, t.aliases.c.account_id == account_id, t.aliases.c.alias_name == alias_name)
            .values(key_id=key_id, last_updated_date=now)
        )
        self.changed("alias", f"{region}/{account_id}/{alias_name}")

    def delete_alias(self, region: str, account_id: str, alias_name: str) -> None:
        self.conn.execute(
            t.aliases.delete().where(
                t.aliases.c.region == region, t.aliases.c.account_id == account_id, t.aliases.c.alias_name == alias_name
            )
        )
        self.changed("alias", f"{region}/{account_id}/{alias_name}")

    def list_aliases(
        self, region: str, account_id: str, key_id: str | None, after: str | None, limit: int
    ) -> list[Alias]:
        q = sa.select(t.aliases).where(t.aliases.c.region == region, t.aliases.c.account_id == account_id)
        if key_id is not None:
            q = q.where(t.aliases.c.key_id == key_id)
        if after is not None:
            q = q.where(t.aliases.c.alias_name > after)
        return [_alias(r) for r in self.conn.execute(q.order_by(t.aliases.c.alias_name).limit(limit))]

    def count_aliases(self, region: str, key_id: str) -> int:
        q = sa.select(sa.func.count()).where(t.aliases.c.region == region, t.aliases.c.key_id == key_id)
        return int(self.conn.execute(q).scalar_one())

    # -- tags -------------------------------------------------------------------------------------------
    def get_tags(self, region: str, key_id: str) -> dict[str, str]:
        q = (
            sa.select(t.tags.c.tag_key, t.tags.c.tag_value)
            .where(t.tags.c.region == region, t.tags.c.key_id == key_id)
            .order_by(t.tags.c.tag_key)
        )
        return {r.tag_key: r.tag_value for r in self.conn.execute(q)}

    def set_tags(self, region: str, key_id: str, tags: dict[str, str]) -> None:
        self.conn.execute(t.tags.delete().where(t.tags.c.region == region, t.tags.c.key_id == key_id))
        if tags:
            self.conn.execute(
                t.tags.insert(),
                [{"region": region, "key_id": key_id, "tag_key": k, "tag_value": v} for k, v in tags.items()],
            )
        self.changed("key", f"{region}/{key_id}")

    # -- audit ------------------------------------------------------------------------------------------
    def append_audit(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(t.audit_events.insert(), list(rows))

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


def _alias(r: Any) -> Alias:
    return Alias(r.region, r.account_id, r.alias_name, r.key_id, r.creation_date, r.last_updated_date)


class ChangeFeed:
    """Delivers other processes' changes to the local listeners (a background thread)."""

    def __init__(self, store: Store, on_changes: ChangeListener, on_reset: Callable[[], None]) -> None:
        self._store = store
        self._on_changes = on_changes
        self._on_reset = on_reset
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openkms-change-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        if self._store.backend == "postgresql":
            self._listen_postgres()
        else:
            self._poll_sqlite()

    def _poll_sqlite(self) -> None:
        with self._store.read() as tx:
            cursor = tx.last_change_id()
        while not self._stop.wait(0.2):
            try:
                with self._store.read() as tx:
                    rows = tx.changes_after(cursor)
            except Exception:  # noqa: BLE001 - a transient database error: try again on the next tick
                continue
            if rows:
                cursor = rows[-1][0]
                self._on_changes([(kind, ident) for _, kind, ident in rows])

    def _listen_postgres(self) -> None:
        import psycopg

        url = self._store.url.replace("postgresql+psycopg://", "postgresql://", 1)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._on_reset()  # anything may have changed while we were not listening
                    while not self._stop.is_set():
                        batch: list[tuple[str, str]] = []
                        for note in conn.notifies(timeout=0.5, stop_after=500):
                            kind, _, ident = note.payload.partition("|")
                            batch.append((kind, ident))
                        if batch:
                            self._on_changes(batch)
            except Exception:  # noqa: BLE001 - reconnect after a database error
                self._on_reset()
                self._stop.wait(1.0)
