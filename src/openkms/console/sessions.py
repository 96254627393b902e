"""Console sessions, kept in the database so that every server process sharing it knows them.

The browser holds a random session id (cookie ``openkms_session``); the database holds only its
SHA-256, the access key id that signed in, the Region it works in (chosen at sign-in, changed by the
Region selector or an address naming another Region), and the idle and absolute expiry. No secret is
ever stored: the signed-in principal is looked up again from the access key id on every request, so a
deleted or deactivated access key ends its sessions at once. The CSRF token of a session is an HMAC of
its id (nothing more to store, and it reveals nothing about the id). The idle timeout and the
lifetime are settings (``Settings.console_idle_timeout`` and ``console_session_lifetime``, from
``OPENKMS_CONSOLE_IDLE_TIMEOUT`` and ``OPENKMS_CONSOLE_SESSION_LIFETIME``), given to the store with
the service clock that judges expiry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from openkms.clock import Clock
from openkms.crypto.secret import Secret
from openkms.storage.store import ConsoleSessionRow, Store

SESSION_COOKIE = "openkms_session"
SIGNIN_COOKIE = "openkms_signin"
TOUCH_EVERY = 30.0  # last_seen is written at most this often (a write per page view is too many)


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


def csrf_token(session_id: str) -> str:
    return hmac.new(
        session_id.encode("ascii", "replace"), b"openkms-console/csrf", hashlib.sha256
    ).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


@dataclass
class Session:
    id: Secret[str]  # the cookie's value
    row: ConsoleSessionRow

    @property
    def csrf(self) -> str:
        return csrf_token(self.id.reveal())


class SessionStore:
    def __init__(self, store: Store, clock: Clock, idle_timeout: float, lifetime: float) -> None:
        self.store = store
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.lifetime = lifetime

    def create(self, access_key_id: str, account_id: str, region: str) -> Session:
        now = self.clock.now()
        session_id = secrets.token_urlsafe(32)
        row = ConsoleSessionRow(
            session_hash(session_id), access_key_id, account_id, region, now, now, now + self.lifetime, {}
        )
        with self.store.write() as tx:
            tx.purge_console_sessions(now - self.idle_timeout, now)
            tx.insert_console_session(row)
        return Session(Secret(session_id), row)

    def load(self, session_id: str) -> Session | None:
        """The live session with this id (its idle time restarted), or None."""
        if not session_id or len(session_id) > 128:
            return None
        digest = session_hash(session_id)
        with self.store.read() as tx:
            row = tx.get_console_session(digest)
        if row is None:
            return None
        now = self.clock.now()
        if now >= row.expires or now - row.last_seen >= self.idle_timeout:
            self.delete(session_id)
            return None
        if now - row.last_seen >= min(TOUCH_EVERY, self.idle_timeout / 4):
            with self.store.write() as tx:
                tx.touch_console_session(digest, now)
        return Session(Secret(session_id), row)

    def delete(self, session_id: str) -> None:
        with self.store.write() as tx:
            tx.delete_console_session(session_hash(session_id))

    def set_prefs(self, session: Session, prefs: dict[str, object]) -> None:
        with self.store.write() as tx:
            tx.set_console_session_prefs(session.row.session_hash, prefs)

    def set_region(self, session: Session, region: str) -> Session:
        """The session in another Region, kept so for its next requests on any server process."""
        with self.store.write() as tx:
            tx.set_console_session_region(session.row.session_hash, region)
        return Session(session.id, dataclasses.replace(session.row, region=region))
