"""The store: transactions over SQLite or PostgreSQL, and the rows the service reads and writes.

``store.write()`` opens a write transaction (SQLite ``BEGIN IMMEDIATE``; PostgreSQL row locks taken
with ``for_update=True``); ``store.read()`` a read-only one. Every write that other nodes must see in
their caches calls ``tx.changed(kind, ident)``: on commit the store tells its local listeners at once,
and other processes learn it through the ``changes`` table (SQLite, polled) or ``NOTIFY``
(PostgreSQL).
"""

from __future__ import annotations

import contextlib
import json
import logging
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

log = logging.getLogger("openkms.storage")
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
class GrantRow:
    grant_id: str
    region: str
    key_id: str
    account_id: str
    name: str | None
    creation_date: float
    grantee_principal: str
    retiring_principal: str | None
    operations: tuple[str, ...]
    constraints: dict[str, dict[str, str]] | None


def _grant(r: Any) -> GrantRow:
    return GrantRow(
        r.grant_id,
        r.region,
        r.key_id,
        r.account_id,
        r.name,
        r.creation_date,
        r.grantee_principal,
        r.retiring_principal,
        tuple(json.loads(r.operations)),
        json.loads(r.constraints) if r.constraints else None,
    )


@dataclass(frozen=True, slots=True)
class UserRow:
    account_id: str
    user_name: str
    user_id: str
    path: str
    created_at: float
    inline_policies: dict[str, Any]
    tags: dict[str, str]


# -- IAM roles, managed policies and STS sessions (migration 3) ---------------------------------------


@dataclass(frozen=True, slots=True)
class RoleRow:
    account_id: str
    role_name: str
    role_id: str
    path: str
    trust_policy: str
    description: str
    max_session_duration: int
    created_at: float
    inline_policies: dict[str, Any]
    tags: dict[str, str]


@dataclass(frozen=True, slots=True)
class ManagedPolicyRow:
    account_id: str
    policy_name: str
    policy_id: str
    arn: str
    path: str
    description: str
    document: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class SessionRow:
    """Temporary credentials from AssumeRole. Only a SHA-256 of the session token is stored."""

    access_key_id: str
    secret_sealed: bytes
    token_sha256: bytes
    account_id: str
    role_name: str
    role_id: str
    role_path: str
    session_name: str
    created_at: float
    expires: float
    tags: dict[str, str]
    source_identity: str | None


def _role_from_row(r: Any) -> RoleRow:
    return RoleRow(
        r.account_id,
        r.role_name,
        r.role_id,
        r.path,
        r.trust_policy,
        r.description,
        r.max_session_duration,
        r.created_at,
        json.loads(r.inline_policies),
        json.loads(r.tags),
    )


def _managed_from_row(r: Any) -> ManagedPolicyRow:
    return ManagedPolicyRow(
        r.account_id,
        r.policy_name,
        r.policy_id,
        r.arn,
        r.path,
        r.description,
        r.document,
        r.created_at,
        r.updated_at,
    )


def normalize_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Store:
    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.backend = "postgresql" if self.url.startswith("postgresql") else "sqlite"
        self._listeners: list[ChangeListener] = []
        self._write_lock = threading.RLock()
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
        # SQLite has one writer at a time; queueing this process's writers on a lock (no sleeping)
        # keeps them out of SQLite's busy handler, whose back-off sleeps cost tens of milliseconds.
        lock = self._write_lock if self.backend == "sqlite" else contextlib.nullcontext()
        with lock, self._connect(write=True) as conn:
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
        return int(
            self.conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.changes.c.id), 0))).scalar_one()
        )

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
            r.account_id,
            r.user_name,
            r.user_id,
            r.path,
            r.created_at,
            json.loads(r.inline_policies),
            json.loads(r.tags),
        )

    def list_users(self, account_id: str) -> list[UserRow]:
        rows = self.conn.execute(
            sa.select(t.users).where(t.users.c.account_id == account_id).order_by(t.users.c.user_name)
        )
        return [
            UserRow(
                r.account_id,
                r.user_name,
                r.user_id,
                r.path,
                r.created_at,
                json.loads(r.inline_policies),
                json.loads(r.tags),
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
        r = self.conn.execute(
            sa.select(t.access_keys).where(t.access_keys.c.access_key_id == access_key_id)
        ).first()
        if r is None:
            return None
        return AccessKeyRow(
            r.access_key_id, r.account_id, r.user_name, bytes(r.secret_sealed), r.status, r.created_at
        )

    def list_access_keys(self, account_id: str, user_name: str | None) -> list[AccessKeyRow]:
        q = sa.select(t.access_keys).where(t.access_keys.c.account_id == account_id)
        if user_name is not None:
            q = q.where(t.access_keys.c.user_name == user_name)
        return [
            AccessKeyRow(
                r.access_key_id, r.account_id, r.user_name, bytes(r.secret_sealed), r.status, r.created_at
            )
            for r in self.conn.execute(q.order_by(t.access_keys.c.created_at))
        ]

    def delete_access_key(self, access_key_id: str) -> bool:
        n = self.conn.execute(
            t.access_keys.delete().where(t.access_keys.c.access_key_id == access_key_id)
        ).rowcount
        self.changed("access_key", access_key_id)
        return bool(n)

    # -- IAM users, roles, managed policies and STS sessions (migration 3) --------------------------
    # Every write reports ("user", "<acct>/<name>"), ("role", "<acct>/<name>"), ("policy", <arn>) or
    # ("access_key", <akid>) so that running servers drop credentials and identity policies they cache.
    def insert_user(self, row: UserRow) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    t.users.insert().values(
                        account_id=row.account_id,
                        user_name=row.user_name,
                        user_id=row.user_id,
                        path=row.path,
                        created_at=row.created_at,
                        inline_policies=json.dumps(row.inline_policies),
                        tags=json.dumps(row.tags),
                    )
                )
        except sa.exc.IntegrityError:
            raise Conflict(row.user_name) from None
        self.changed("user", f"{row.account_id}/{row.user_name}")

    def update_user(self, row: UserRow) -> None:
        """Write a user's inline policies and tags."""
        c = t.users.c
        self.conn.execute(
            t.users.update()
            .where(c.account_id == row.account_id, c.user_name == row.user_name)
            .values(inline_policies=json.dumps(row.inline_policies), tags=json.dumps(row.tags))
        )
        self.changed("user", f"{row.account_id}/{row.user_name}")

    def delete_user(self, account_id: str, user_name: str) -> bool:
        c = t.users.c
        q = t.users.delete().where(c.account_id == account_id, c.user_name == user_name)
        n = self.conn.execute(q).rowcount
        self.changed("user", f"{account_id}/{user_name}")
        return bool(n)

    def set_access_key_status(self, access_key_id: str, status: str) -> bool:
        c = t.access_keys.c
        n = self.conn.execute(
            t.access_keys.update().where(c.access_key_id == access_key_id).values(status=status)
        ).rowcount
        self.changed("access_key", access_key_id)
        return bool(n)

    def insert_role(self, row: RoleRow) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    t.roles.insert().values(
                        account_id=row.account_id,
                        role_name=row.role_name,
                        role_id=row.role_id,
                        path=row.path,
                        trust_policy=row.trust_policy,
                        description=row.description,
                        max_session_duration=row.max_session_duration,
                        created_at=row.created_at,
                        inline_policies=json.dumps(row.inline_policies),
                        tags=json.dumps(row.tags),
                    )
                )
        except sa.exc.IntegrityError:
            raise Conflict(row.role_name) from None
        self.changed("role", f"{row.account_id}/{row.role_name}")

    def get_role(self, account_id: str, role_name: str) -> RoleRow | None:
        c = t.roles.c
        q = sa.select(t.roles).where(c.account_id == account_id, c.role_name == role_name)
        r = self.conn.execute(q).first()
        return _role_from_row(r) if r is not None else None

    def list_roles(self, account_id: str) -> list[RoleRow]:
        c = t.roles.c
        rows = self.conn.execute(sa.select(t.roles).where(c.account_id == account_id).order_by(c.role_name))
        return [_role_from_row(r) for r in rows]

    def update_role(self, row: RoleRow) -> None:
        """Write a role's trust policy, description, session limit, inline policies and tags."""
        c = t.roles.c
        self.conn.execute(
            t.roles.update()
            .where(c.account_id == row.account_id, c.role_name == row.role_name)
            .values(
                trust_policy=row.trust_policy,
                description=row.description,
                max_session_duration=row.max_session_duration,
                inline_policies=json.dumps(row.inline_policies),
                tags=json.dumps(row.tags),
            )
        )
        self.changed("role", f"{row.account_id}/{row.role_name}")

    def delete_role(self, account_id: str, role_name: str) -> bool:
        c = t.roles.c
        q = t.roles.delete().where(c.account_id == account_id, c.role_name == role_name)
        n = self.conn.execute(q).rowcount
        self.changed("role", f"{account_id}/{role_name}")
        return bool(n)

    def insert_managed_policy(self, row: ManagedPolicyRow) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    t.managed_policies.insert().values(
                        account_id=row.account_id,
                        policy_name=row.policy_name,
                        policy_id=row.policy_id,
                        arn=row.arn,
                        path=row.path,
                        description=row.description,
                        document=row.document,
                        created_at=row.created_at,
                        updated_at=row.updated_at,
                    )
                )
        except sa.exc.IntegrityError:
            raise Conflict(row.policy_name) from None
        self.changed("policy", row.arn)

    def get_managed_policy(self, arn: str) -> ManagedPolicyRow | None:
        r = self.conn.execute(sa.select(t.managed_policies).where(t.managed_policies.c.arn == arn)).first()
        return _managed_from_row(r) if r is not None else None

    def list_managed_policies(self, account_id: str) -> list[ManagedPolicyRow]:
        c = t.managed_policies.c
        rows = self.conn.execute(
            sa.select(t.managed_policies).where(c.account_id == account_id).order_by(c.policy_name)
        )
        return [_managed_from_row(r) for r in rows]

    def delete_managed_policy(self, arn: str) -> bool:
        n = self.conn.execute(t.managed_policies.delete().where(t.managed_policies.c.arn == arn)).rowcount
        self.changed("policy", arn)
        return bool(n)

    def attach_policy(self, account_id: str, kind: str, name: str, policy_arn: str) -> None:
        """Attach a managed policy to a user or role (``kind`` "user"/"role"); attaching twice is a no-op."""
        c = t.policy_attachments.c
        which = (c.account_id == account_id, c.principal_kind == kind, c.principal_name == name)
        exists = self.conn.execute(sa.select(c.policy_arn).where(*which, c.policy_arn == policy_arn)).first()
        if exists is None:
            self.conn.execute(
                t.policy_attachments.insert().values(
                    account_id=account_id, principal_kind=kind, principal_name=name, policy_arn=policy_arn
                )
            )
        self.changed(kind, f"{account_id}/{name}")

    def detach_policy(self, account_id: str, kind: str, name: str, policy_arn: str) -> bool:
        c = t.policy_attachments.c
        which = (c.account_id == account_id, c.principal_kind == kind, c.principal_name == name)
        q = t.policy_attachments.delete().where(*which, c.policy_arn == policy_arn)
        n = self.conn.execute(q).rowcount
        self.changed(kind, f"{account_id}/{name}")
        return bool(n)

    def attached_policies(self, account_id: str, kind: str, name: str) -> list[str]:
        """ARNs of the managed policies attached to a user or role."""
        c = t.policy_attachments.c
        rows = self.conn.execute(
            sa.select(c.policy_arn)
            .where(c.account_id == account_id, c.principal_kind == kind, c.principal_name == name)
            .order_by(c.policy_arn)
        )
        return [r[0] for r in rows]

    def attached_documents(self, account_id: str, kind: str, name: str) -> list[str]:
        """Documents of the managed policies attached to a user or role (one query)."""
        a, m = t.policy_attachments.c, t.managed_policies.c
        rows = self.conn.execute(
            sa.select(m.document)
            .select_from(t.policy_attachments.join(t.managed_policies, a.policy_arn == m.arn))
            .where(a.account_id == account_id, a.principal_kind == kind, a.principal_name == name)
            .order_by(a.policy_arn)
        )
        return [r[0] for r in rows]

    def count_attachments(self, policy_arn: str) -> int:
        c = t.policy_attachments.c
        q = sa.select(sa.func.count()).where(c.policy_arn == policy_arn)
        return int(self.conn.execute(q).scalar_one())

    def put_session(self, row: SessionRow) -> None:
        self.conn.execute(
            t.sessions.insert().values(
                access_key_id=row.access_key_id,
                secret_sealed=row.secret_sealed,
                token_sha256=row.token_sha256,
                account_id=row.account_id,
                role_name=row.role_name,
                role_id=row.role_id,
                role_path=row.role_path,
                session_name=row.session_name,
                created_at=row.created_at,
                expires=row.expires,
                tags=json.dumps(row.tags),
                source_identity=row.source_identity,
            )
        )
        self.changed("access_key", row.access_key_id)

    def get_session(self, access_key_id: str) -> SessionRow | None:
        q = sa.select(t.sessions).where(t.sessions.c.access_key_id == access_key_id)
        r = self.conn.execute(q).first()
        if r is None:
            return None
        return SessionRow(
            r.access_key_id,
            bytes(r.secret_sealed),
            bytes(r.token_sha256),
            r.account_id,
            r.role_name,
            r.role_id,
            r.role_path,
            r.session_name,
            r.created_at,
            r.expires,
            json.loads(r.tags),
            r.source_identity,
        )

    def purge_sessions(self, expired_before: float) -> int:
        c = t.sessions.c
        return int(self.conn.execute(t.sessions.delete().where(c.expires < expired_before)).rowcount)

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
                t.aliases.c.region == region,
                t.aliases.c.account_id == account_id,
                t.aliases.c.alias_name == alias_name,
            )
        ).first()
        return _alias(r) if r is not None else None

    def update_alias(self, region: str, account_id: str, alias_name: str, key_id: str, now: float) -> None:
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

    def delete_alias(self, region: str, account_id: str, alias_name: str) -> None:
        self.conn.execute(
            t.aliases.delete().where(
                t.aliases.c.region == region,
                t.aliases.c.account_id == account_id,
                t.aliases.c.alias_name == alias_name,
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
        r = self.conn.execute(sa.select(t.grants).where(t.grants.c.grant_id == grant_id)).first()
        return _grant(r) if r is not None else None

    def list_grants(
        self, region: str, key_id: str, after: str | None = None, limit: int | None = None
    ) -> list[GrantRow]:
        q = sa.select(t.grants).where(t.grants.c.region == region, t.grants.c.key_id == key_id)
        if after is not None:
            q = q.where(t.grants.c.grant_id > after)
        q = q.order_by(t.grants.c.grant_id)
        if limit is not None:
            q = q.limit(limit)
        return [_grant(r) for r in self.conn.execute(q)]

    def count_grants(self, region: str, key_id: str) -> int:
        q = sa.select(sa.func.count()).where(t.grants.c.region == region, t.grants.c.key_id == key_id)
        return int(self.conn.execute(q).scalar_one())

    def list_retirable_grants(self, retiring_principal: str, after: str | None, limit: int) -> list[GrantRow]:
        q = sa.select(t.grants).where(t.grants.c.retiring_principal == retiring_principal)
        if after is not None:
            q = q.where(t.grants.c.grant_id > after)
        return [_grant(r) for r in self.conn.execute(q.order_by(t.grants.c.grant_id).limit(limit))]

    def delete_grant(self, g: GrantRow) -> None:
        self.conn.execute(t.grants.delete().where(t.grants.c.grant_id == g.grant_id))
        self.changed("key", f"{g.region}/{g.key_id}")

    # -- audit ------------------------------------------------------------------------------------------
    _AUDIT_COLUMNS = (
        "event_id",
        "event_time",
        "account_id",
        "region",
        "event_name",
        "key_id",
        "principal_arn",
        "error_code",
        "record",
    )

    def append_audit(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert audit rows with one driver-level executemany (this runs for every batch of calls)."""
        if not rows:
            return
        mark = "?" if self.backend == "sqlite" else "%s"
        sql = (
            f"INSERT INTO audit_events ({', '.join(self._AUDIT_COLUMNS)}) "
            f"VALUES ({', '.join([mark] * len(self._AUDIT_COLUMNS))})"
        )
        self.conn.exec_driver_sql(sql, [tuple(row[c] for c in self._AUDIT_COLUMNS) for row in rows])

    def last_successful_event(self, key_id: str, event_names: Sequence[str]) -> str | None:
        """The record of the newest successful call among ``event_names`` on a key (or None)."""
        c = t.audit_events.c
        q = (
            sa.select(c.record)
            .where(c.key_id == key_id, c.error_code.is_(None), c.event_name.in_(list(event_names)))
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

    # -- web console (migration 5): sessions and the event history view -------------------------------
    # Used only by openkms.console. Sessions are keyed by the SHA-256 of their random id.
    def insert_console_session(self, row: ConsoleSessionRow) -> None:
        self.conn.execute(
            t.console_sessions.insert().values(
                session_hash=row.session_hash,
                access_key_id=row.access_key_id,
                account_id=row.account_id,
                region=row.region,
                created_at=row.created_at,
                last_seen=row.last_seen,
                expires=row.expires,
                prefs=json.dumps(row.prefs),
            )
        )

    def get_console_session(self, session_hash: str) -> ConsoleSessionRow | None:
        c = t.console_sessions.c
        r = self.conn.execute(sa.select(t.console_sessions).where(c.session_hash == session_hash)).first()
        if r is None:
            return None
        return ConsoleSessionRow(
            r.session_hash,
            r.access_key_id,
            r.account_id,
            r.region,
            r.created_at,
            r.last_seen,
            r.expires,
            json.loads(r.prefs),
        )

    def touch_console_session(self, session_hash: str, now: float) -> None:
        c = t.console_sessions.c
        self.conn.execute(
            t.console_sessions.update().where(c.session_hash == session_hash).values(last_seen=now)
        )

    def set_console_session_prefs(self, session_hash: str, prefs: dict[str, Any]) -> None:
        c = t.console_sessions.c
        self.conn.execute(
            t.console_sessions.update().where(c.session_hash == session_hash).values(prefs=json.dumps(prefs))
        )

    def delete_console_session(self, session_hash: str) -> None:
        c = t.console_sessions.c
        self.conn.execute(t.console_sessions.delete().where(c.session_hash == session_hash))

    def purge_console_sessions(self, idle_before: float, now: float) -> int:
        c = t.console_sessions.c
        q = t.console_sessions.delete().where(sa.or_(c.last_seen < idle_before, c.expires <= now))
        return int(self.conn.execute(q).rowcount)

    def console_audit_events(
        self,
        *,
        account_id: str,
        key_id: str | None = None,
        event_name: str | None = None,
        principal: str | None = None,
        start: float | None = None,
        end: float | None = None,
        read_only: bool | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[tuple[int, str]]:
        """One page of an account's audit records, newest first. ``principal`` is an ARN or the last
        segment of one (a user or role name); ``read_only`` filters on the record's readOnly field."""
        c = t.audit_events.c
        q = sa.select(c.id, c.record).where(c.account_id == account_id)
        if key_id is not None:
            q = q.where(c.key_id == key_id)
        if event_name is not None:
            q = q.where(c.event_name == event_name)
        if principal is not None:
            if principal.startswith("arn:"):
                q = q.where(c.principal_arn == principal)
            else:
                q = q.where(c.principal_arn.like("%/" + _like_escape(principal), escape="\\"))
        if start is not None:
            q = q.where(c.event_time >= start)
        if end is not None:
            q = q.where(c.event_time <= end)
        if read_only is not None:
            q = q.where(c.record.like('%"readOnly":' + ("true" if read_only else "false") + "%"))
        if before_id is not None:
            q = q.where(c.id < before_id)
        return [(r.id, r.record) for r in self.conn.execute(q.order_by(c.id.desc()).limit(limit))]


@dataclass(frozen=True, slots=True)
class ConsoleSessionRow:
    """A web console session (migration 5): who signed in, where, and until when."""

    session_hash: str
    access_key_id: str
    account_id: str
    region: str
    created_at: float
    last_seen: float
    expires: float
    prefs: dict[str, Any]


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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
            except Exception:  # a transient database error: try again on the next tick
                log.warning("change feed poll failed", exc_info=True)
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
            except Exception:
                self._on_reset()
                self._stop.wait(1.0)
