"""Transaction methods for accounts, IAM users and roles, managed policies, access keys and STS
sessions."""

from __future__ import annotations

import json

import sqlalchemy as sa

from openkms.storage import schema as t
from openkms.storage.rows import (
    AccessKeyRow,
    Conflict,
    ManagedPolicyRow,
    RoleRow,
    SessionRow,
    UserRow,
    managed_from_row,
    role_from_row,
    user_from_row,
)
from openkms.storage.tx_base import TxBase, storable


class PrincipalsTx(TxBase):
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

    def list_accounts_by_age(self) -> list[str]:
        """The accounts, the first made first (the installation's own account leads)."""
        c = t.accounts.c
        return [r[0] for r in self.conn.execute(sa.select(c.account_id).order_by(c.created_at, c.account_id))]

    def account_alias(self, account_id: str) -> str | None:
        c = t.account_aliases.c
        row = self.conn.execute(sa.select(c.account_alias).where(c.account_id == account_id)).first()
        return None if row is None else str(row[0])

    def insert_account_alias(self, account_id: str, alias: str, now: float) -> None:
        """The account's alias; Conflict when the name is taken (by any account) or the account has one."""
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    t.account_aliases.insert().values(
                        account_alias=alias, account_id=account_id, created_at=now
                    )
                )
        except sa.exc.IntegrityError:
            raise Conflict(alias) from None

    def delete_account_alias(self, account_id: str, alias: str) -> bool:
        c = t.account_aliases.c
        done = self.conn.execute(
            t.account_aliases.delete().where(c.account_id == account_id, c.account_alias == alias)
        )
        return bool(done.rowcount)

    def get_user(self, account_id: str, user_name: str, for_update: bool = False) -> UserRow | None:
        """The user; ``for_update`` locks its row (PostgreSQL; SQLite serialises writers) so that what
        hangs off it (access keys, inline policies, tags, attachments) changes one writer at a time."""
        q = sa.select(t.users).where(t.users.c.account_id == account_id, t.users.c.user_name == user_name)
        if for_update and self.backend == "postgresql":
            q = q.with_for_update()
        r = self.conn.execute(q).first()
        if r is None:
            return None
        return user_from_row(r)

    def list_users(self, account_id: str) -> list[UserRow]:
        rows = self.conn.execute(
            sa.select(t.users).where(t.users.c.account_id == account_id).order_by(t.users.c.user_name)
        )
        return [user_from_row(r) for r in rows]

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

    def get_role(self, account_id: str, role_name: str, for_update: bool = False) -> RoleRow | None:
        """The role; ``for_update`` locks its row, as :meth:`get_user` does."""
        c = t.roles.c
        q = sa.select(t.roles).where(c.account_id == account_id, c.role_name == role_name)
        if for_update and self.backend == "postgresql":
            q = q.with_for_update()
        r = self.conn.execute(q).first()
        return role_from_row(r) if r is not None else None

    def list_roles(self, account_id: str) -> list[RoleRow]:
        c = t.roles.c
        rows = self.conn.execute(sa.select(t.roles).where(c.account_id == account_id).order_by(c.role_name))
        return [role_from_row(r) for r in rows]

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

    def get_managed_policy(self, arn: str, for_update: bool = False) -> ManagedPolicyRow | None:
        if not storable(arn):
            return None
        q = sa.select(t.managed_policies).where(t.managed_policies.c.arn == arn)
        if for_update and self.backend == "postgresql":
            q = q.with_for_update()
        r = self.conn.execute(q).first()
        return managed_from_row(r) if r is not None else None

    def list_managed_policies(self, account_id: str) -> list[ManagedPolicyRow]:
        c = t.managed_policies.c
        rows = self.conn.execute(
            sa.select(t.managed_policies).where(c.account_id == account_id).order_by(c.policy_name)
        )
        return [managed_from_row(r) for r in rows]

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
