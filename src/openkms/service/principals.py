"""Accounts, IAM users and access keys, STS sessions' principals, and the credential lookup SigV4
verification needs.

Secret access keys are stored sealed under the root key (they must be recoverable to verify HMAC
signatures) and are returned in plaintext only once, when created.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import string
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from openkms.arns import is_account_id, user_arn
from openkms.crypto.envelope import RootKey, SealError
from openkms.domain.model import Principal
from openkms.errors import ExpiredTokenException, UnrecognizedClientException
from openkms.service.iam_common import role_arn
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
    secret_access_key: str


def _new_account_id() -> str:
    return str(secrets.randbelow(9 * 10**11) + 10**11)


def new_id(prefix: str, length: int = 17) -> str:
    """An IAM-style unique id: ``AIDA…`` (user), ``AROA…`` (role), ``ANPA…`` (policy), ``AKIA…`` (key)."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def new_secret() -> str:
    return base64.b64encode(os.urandom(30)).decode()


def create_account(store: Store, root: RootKey, now: float, account_id: str | None = None) -> NewAccessKey:
    """A new account with an ``admin`` user (allowed everything) and an access key for it."""
    account = account_id or _new_account_id()
    if not is_account_id(account):
        raise PrincipalError(f"Account id must be 12 digits: {account!r}")
    with store.write() as tx:
        try:
            tx.create_account(account, now)
        except Conflict:
            raise PrincipalError(f"Account {account} already exists") from None
        tx.insert_user(UserRow(account, ADMIN_USER, new_id("AIDA"), "/", now, ADMIN_POLICY, {}))
        return add_access_key(tx, root, account, ADMIN_USER, now)


def create_user(store: Store, account_id: str, user_name: str, now: float) -> UserRow:
    with store.write() as tx:
        if not tx.account_exists(account_id):
            raise PrincipalError(f"Account {account_id} does not exist")
        try:
            tx.insert_user(UserRow(account_id, user_name, new_id("AIDA"), "/", now, {}, {}))
        except Conflict:
            raise PrincipalError(f"User {user_name} already exists in account {account_id}") from None
        user = tx.get_user(account_id, user_name)
    assert user is not None
    return user


def create_access_key(
    store: Store, root: RootKey, account_id: str, user_name: str, now: float
) -> NewAccessKey:
    with store.write() as tx:
        # The user's row locked, as the IAM API does: a DeleteUser at the same time cannot leave the
        # new key behind (where a later user of the same name would inherit it).
        if tx.get_user(account_id, user_name, for_update=True) is None:
            raise PrincipalError(f"User {user_name} does not exist in account {account_id}")
        return add_access_key(tx, root, account_id, user_name, now)


def add_access_key(tx: Tx, root: RootKey, account_id: str, user_name: str, now: float) -> NewAccessKey:
    """A new active access key for a user; its secret is stored only sealed and returned only here."""
    akid = new_id("AKIA", 16)
    secret = new_secret()
    sealed = root.seal(SECRET_PURPOSE, akid, secret.encode())
    tx.put_access_key(AccessKeyRow(akid, account_id, user_name, sealed, "Active", now))
    return NewAccessKey(account_id, user_name, akid, secret)


def list_access_keys(store: Store, account_id: str, user_name: str | None) -> list[AccessKeyRow]:
    with store.read() as tx:
        return tx.list_access_keys(account_id, user_name)


def delete_access_key(store: Store, access_key_id: str) -> bool:
    with store.write() as tx:
        return tx.delete_access_key(access_key_id)


@dataclass(frozen=True, slots=True)
class Credentials:
    principal: Principal
    secret: str
    # Temporary (STS session) credentials only: SHA-256 of the session token, and the expiry.
    token_sha256: bytes | None = None
    expires: float | None = None

    def check_session(self, token: str | None, now: float) -> None:
        """For a request signed with these credentials and carrying ``token`` (X-Amz-Security-Token):
        UnrecognizedClientException unless session credentials come with their own token (and long-term
        ones with none), ExpiredTokenException once the session has expired (``now``: the service clock)."""
        if self.token_sha256 is None or token is None:
            raise UnrecognizedClientException()
        if not hmac.compare_digest(hashlib.sha256(token.encode("utf-8")).digest(), self.token_sha256):
            raise UnrecognizedClientException()
        if self.expires is not None and now >= self.expires:
            raise ExpiredTokenException()


class CredentialCache:
    """Access key id -> credentials (principal and secret), and a short-lived, bounded memory of the ids
    that have none.

    Positive entries live until the change feed drops them: ``access_key`` (the key or session itself),
    ``user`` and ``role`` (its owner). A miss asks the database, so a key created a moment ago by
    ``openkms admin`` on the same database is usable at once.

    Negative entries (an id with no usable credentials: unknown, inactive, its user gone, its role gone
    or re-created) spare the database a read per request for an id that keeps coming back, such as a
    client with a deleted key or an attacker trying random ids. Each lives at most
    ``negative_ttl`` seconds and there are at most ``negative_max`` of them (the oldest go first), so
    random ids cannot grow memory. The change feed drops them like positive ones: creating an access
    key or an STS session marks ``access_key`` of its id, which removes a negative entry for it on this
    process at commit and on the others when they hear of the change (within the feed's propagation
    time); any ``user`` or ``role`` change clears all of them (rare, and only a re-read is lost).

    A session's credentials are bound to its role's unique id (``AROA…``): they are usable only while a
    role of that name *and that id* exists, so DeleteRole ends every session of the role, and a new role
    of the same name does not bring them back.
    """

    def __init__(
        self,
        store: Store,
        root: RootKey,
        *,
        negative_ttl: float = 1.0,
        negative_max: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._root = root
        self._cache: dict[str, Credentials] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()  # access key id -> expiry (monotonic)
        self._negative_ttl = negative_ttl
        self._negative_max = negative_max
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self.epoch = 0

    def cached(self, access_key_id: str) -> Credentials | None:
        return self._cache.get(access_key_id)

    def known_unknown(self, access_key_id: str) -> bool:
        """True if ``access_key_id`` was found to have no credentials less than ``negative_ttl`` ago and
        nothing has changed about it since (cheap: no I/O)."""
        expiry = self._unknown.get(access_key_id)
        return expiry is not None and self._monotonic() < expiry

    def negative_entries(self) -> int:
        return len(self._unknown)

    def load(self, access_key_id: str) -> Credentials | None:
        """The credentials of ``access_key_id`` from the database (None if it has none), cached unless a
        change arrived while they were read."""
        if self.known_unknown(access_key_id):
            return None
        epoch = self.epoch
        if access_key_id.startswith("ASIA"):
            creds = self._load_session(access_key_id)
        else:
            creds = self._load_access_key(access_key_id)
        with self._lock:
            if epoch == self.epoch:
                if creds is not None:
                    self._cache[access_key_id] = creds
                else:
                    self._remember_unknown(access_key_id)
        return creds

    def _remember_unknown(self, access_key_id: str) -> None:
        unknown = self._unknown
        unknown.pop(access_key_id, None)
        unknown[access_key_id] = self._monotonic() + self._negative_ttl
        while len(unknown) > self._negative_max:
            unknown.popitem(last=False)

    def _load_access_key(self, access_key_id: str) -> Credentials | None:
        with self._store.read() as tx:
            row = tx.get_access_key(access_key_id)
            user = tx.get_user(row.account_id, row.user_name) if row is not None else None
        if row is None or user is None or row.status != "Active":
            return None
        try:
            secret = self._root.unseal(SECRET_PURPOSE, access_key_id, row.secret_sealed).decode()
        except SealError:
            return None
        principal = Principal(
            account_id=row.account_id,
            arn=user_arn(row.account_id, row.user_name) if user.path == "/" else iam_user_arn(row, user.path),
            principal_id=user.user_id,
            identity_type="IAMUser",
            user_name=row.user_name,
            access_key_id=access_key_id,
            tags=tuple(sorted(user.tags.items())),
        )
        return Credentials(principal, secret)

    def _load_session(self, access_key_id: str) -> Credentials | None:
        with self._store.read() as tx:
            row = tx.get_session(access_key_id)
            role = tx.get_role(row.account_id, row.role_name) if row is not None else None
        # Bound to the role's unique id: a deleted role, or another role of the same name, ends it.
        if row is None or role is None or role.role_id != row.role_id:
            return None
        try:
            secret = self._root.unseal(SESSION_PURPOSE, access_key_id, row.secret_sealed).decode()
        except SealError:
            return None
        return Credentials(session_principal(row), secret, row.token_sha256, row.expires)

    def invalidate(self, changes: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            self.epoch += 1
            for kind, ident in changes:
                if kind == "access_key":
                    self._cache.pop(ident, None)
                    self._unknown.pop(ident, None)
                elif kind in ("role", "user"):
                    self._unknown.clear()
                    account, _, name = ident.partition("/")
                    for akid, creds in list(self._cache.items()):
                        p = creds.principal
                        owner = p.role_name if kind == "role" else p.user_name
                        if p.account_id == account and owner == name:
                            self._cache.pop(akid, None)

    def clear(self) -> None:
        with self._lock:
            self.epoch += 1
            self._cache.clear()
            self._unknown.clear()
