"""Accounts, IAM users and access keys, and STS sessions' principals (the credential lookup SigV4
verification needs is :mod:`openkms.service.identity.credentials`).

Secret access keys are stored sealed under the root key (they must be recoverable to verify HMAC
signatures) and are returned in plaintext only once, when created.
"""

from __future__ import annotations

import base64
import os
import secrets
import string
from dataclasses import dataclass
from typing import Any

from openkms.arns import is_account_id, role_arn
from openkms.crypto.envelope import RootKey
from openkms.crypto.secret import Secret
from openkms.domain.model import Principal
from openkms.storage.store import AccessKeyRow, Conflict, SessionRow, Store, Tx, UserRow

SECRET_PURPOSE = "access-key-secret"  # noqa: S105 - a sealing label, not a secret
SESSION_PURPOSE = "session-secret"  # sealing label of STS session secrets
ADMIN_USER = "admin"
ADMIN_POLICY = {
    "AdministratorAccess": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
}
_ALNUM = string.ascii_uppercase + string.digits


class PrincipalError(Exception):
    """A management request on principals that cannot be done (unknown account, duplicate user…)."""


def iam_user_arn(row: AccessKeyRow, path: str) -> str:
    return f"arn:aws:iam::{row.account_id}:user{path}{row.user_name}"


def session_arn(account: str, role_name: str, session_name: str) -> str:
    return f"arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}"


def session_principal(row: SessionRow) -> Principal:
    """The principal of requests signed with a session's credentials."""
    return Principal(
        account_id=row.account_id,
        arn=session_arn(row.account_id, row.role_name, row.session_name),
        principal_id=f"{row.role_id}:{row.session_name}",
        identity_type="AssumedRole",
        user_name=None,
        access_key_id=row.access_key_id,
        tags=tuple(sorted(row.tags.items())),
        role_arn=role_arn(row.account_id, row.role_path, row.role_name),
        session_name=row.session_name,
    )


@dataclass(frozen=True, slots=True)
class NewAccessKey:
    account_id: str
    user_name: str
    access_key_id: str
    secret_access_key: Secret[str]


def _new_account_id() -> str:
    return str(secrets.randbelow(9 * 10**11) + 10**11)


def new_id(prefix: str, length: int = 17) -> str:
    """An IAM-style unique id: ``AIDA…`` (user), ``AROA…`` (role), ``ANPA…`` (policy), ``AKIA…`` (key)."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def new_secret() -> str:
    return base64.b64encode(os.urandom(30)).decode()


def new_user(
    account_id: str,
    user_name: str,
    now: float,
    *,
    path: str = "/",
    inline_policies: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> UserRow:
    """The row of a new IAM user, with a fresh ``AIDA…`` id (for CreateUser and new accounts)."""
    policies = dict(inline_policies or {})
    return UserRow(account_id, user_name, new_id("AIDA"), path, now, policies, dict(tags or {}))


def create_account(store: Store, root: RootKey, now: float, account_id: str | None = None) -> NewAccessKey:
    """A new account with an ``admin`` user (allowed everything) and an access key for it: the bootstrap
    of ``openkms serve`` and ``openkms admin create-account``, before any IAM caller exists. The user and
    its key are made as CreateUser and CreateAccessKey make them (:func:`new_user`,
    :func:`add_access_key`)."""
    account = account_id or _new_account_id()
    if not is_account_id(account):
        raise PrincipalError(f"Account id must be 12 digits: {account!r}")
    with store.write() as tx:
        try:
            tx.create_account(account, now)
        except Conflict:
            raise PrincipalError(f"Account {account} already exists") from None
        tx.insert_user(new_user(account, ADMIN_USER, now, inline_policies=ADMIN_POLICY))
        return add_access_key(tx, root, account, ADMIN_USER, now)


def add_access_key(tx: Tx, root: RootKey, account_id: str, user_name: str, now: float) -> NewAccessKey:
    """A new active access key for a user; its secret is stored only sealed and returned only here.
    The caller holds the user's row locked (CreateAccessKey checks the quota under that lock)."""
    akid = new_id("AKIA", 16)
    secret = new_secret()
    sealed = root.seal(SECRET_PURPOSE, akid, secret.encode())
    tx.put_access_key(AccessKeyRow(akid, account_id, user_name, sealed, "Active", now))
    return NewAccessKey(account_id, user_name, akid, Secret(secret))
