"""Credentials: the secret and principal behind an access key id (long-term keys and STS sessions),
and the cache SigV4 verification reads them from on every request.

Secrets are unsealed from the store (sealed under the root key) on a miss and held only in memory.
``CredentialCache.hits``/``misses`` count the lookups for the metrics (plain integers read at scrape time).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from openkms.arns import user_arn
from openkms.crypto.envelope import RootKey, SealError
from openkms.crypto.secret import Secret
from openkms.domain.model import Principal
from openkms.errors import ExpiredTokenException, UnrecognizedClientException
from openkms.service.identity.principals import (
    SECRET_PURPOSE,
    SESSION_PURPOSE,
    iam_user_arn,
    session_principal,
)
from openkms.storage.store import Store


@dataclass(frozen=True, slots=True)
class Credentials:
    principal: Principal
    secret: Secret[str]
    # Temporary (STS session) credentials only: SHA-256 of the session token, and the expiry.
    token_sha256: bytes | None = None
    expires: float | None = None

    def check_session(self, token: Secret[str] | None, now: float) -> None:
        """For a request signed with these credentials and carrying ``token`` (X-Amz-Security-Token):
        UnrecognizedClientException unless session credentials come with their own token (and long-term
        ones with none), ExpiredTokenException once the session has expired (``now``: the service clock)."""
        if self.token_sha256 is None or token is None:
            raise UnrecognizedClientException()
        digest = hashlib.sha256(token.reveal().encode("utf-8")).digest()
        if not hmac.compare_digest(digest, self.token_sha256):
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
        self.hits = 0
        self.misses = 0

    def cached(self, access_key_id: str) -> Credentials | None:
        creds = self._cache.get(access_key_id)
        if creds is None:
            self.misses += 1
        else:
            self.hits += 1
        return creds

    def entries(self) -> int:
        return len(self._cache)

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
        return Credentials(principal, Secret(secret))

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
        return Credentials(session_principal(row), Secret(secret), row.token_sha256, row.expires)

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
