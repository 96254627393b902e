"""The credential cache's negative entries, against a real SQLite store: an id with no credentials is
answered from memory for a short time (no database read), never longer than the change that gives it
credentials, and there are never more entries than the bound."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import event

from openkms.crypto.envelope import RootKey, load_or_create_root_key
from openkms.service.identity.credentials import CredentialCache
from openkms.service.identity.principals import SECRET_PURPOSE, create_account
from openkms.storage.store import AccessKeyRow, Store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Database:
    store: Store
    root: RootKey
    account: str


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    # One store for the module's tests (they count statements against a known, warm database).
    tmp = tmp_path_factory.mktemp("credential-cache")
    store = Store(f"sqlite:///{tmp / 'db.sqlite'}")
    root = load_or_create_root_key(tmp / "root.key")
    yield Database(store, root, create_account(store, root, time.time()).account_id)
    store.close()


class Setup:
    def __init__(self, db: Database, **options: int) -> None:
        self.store, self.root, self.account = db.store, db.root, db.account
        self.clock = Clock()
        self.cache = CredentialCache(self.store, self.root, monotonic=self.clock, **options)
        self.store.add_listener(self.cache.invalidate)  # as the runtime wires it
        self.statements = 0

        def count(*_: object) -> None:
            self.statements += 1

        event.listen(self.store.engine, "before_cursor_execute", count)

    def reads(self, access_key_id: str) -> tuple[bool, int]:
        """(credentials found, SQL statements it took)."""
        before = self.statements
        found = self.cache.load(access_key_id) is not None
        return found, self.statements - before

    def add_key(self, access_key_id: str, status: str = "Active") -> None:
        sealed = self.root.seal(SECRET_PURPOSE, access_key_id, b"secret")
        with self.store.write() as tx:
            tx.put_access_key(AccessKeyRow(access_key_id, self.account, "admin", sealed, status, time.time()))


@pytest.fixture
def setup(database: Database) -> Setup:
    return Setup(database)


def _new_id() -> str:
    return "AKIA" + secrets.token_hex(8).upper()


def test_unknown_id_is_answered_from_memory_until_it_expires(setup: Setup) -> None:
    akid = _new_id()
    found, statements = setup.reads(akid)
    assert not found and statements > 0
    assert setup.cache.known_unknown(akid)
    assert setup.reads(akid) == (False, 0)
    setup.clock.now += 0.99
    assert setup.reads(akid) == (False, 0)
    setup.clock.now += 0.02  # past the 1 s bound: asked again
    found, statements = setup.reads(akid)
    assert not found and statements > 0


def test_a_key_created_under_a_refused_id_is_usable_at_once(setup: Setup) -> None:
    akid = _new_id()
    assert setup.reads(akid)[0] is False
    setup.add_key(akid)  # the commit tells the cache (other processes: the change feed)
    assert not setup.cache.known_unknown(akid)
    assert setup.reads(akid)[0] is True


def test_an_inactive_key_reactivated_is_usable_at_once(setup: Setup) -> None:
    akid = _new_id()
    setup.add_key(akid, status="Inactive")
    assert setup.reads(akid)[0] is False
    assert setup.reads(akid) == (False, 0)
    with setup.store.write() as tx:
        tx.set_access_key_status(akid, "Active")
    assert setup.reads(akid)[0] is True


def test_user_and_role_changes_forget_every_negative_entry(setup: Setup) -> None:
    ids = [_new_id() for _ in range(3)]
    for akid in ids:
        setup.reads(akid)
    setup.cache.invalidate([("user", f"{setup.account}/someone")])
    assert not any(setup.cache.known_unknown(akid) for akid in ids)
    for akid in ids:
        setup.reads(akid)
    setup.cache.invalidate([("role", f"{setup.account}/some-role")])
    assert setup.cache.negative_entries() == 0


def test_negative_entries_are_bounded(database: Database) -> None:
    s = Setup(database, negative_max=50)
    ids = [_new_id() for _ in range(500)]
    for akid in ids:
        s.reads(akid)
    assert s.cache.negative_entries() == 50
    assert all(s.cache.known_unknown(akid) for akid in ids[-50:])  # the newest are kept
    assert not any(s.cache.known_unknown(akid) for akid in ids[:-50])


def test_a_read_racing_a_change_is_not_remembered(setup: Setup) -> None:
    akid = _new_id()
    real_load = setup.cache._load_access_key

    def load_then_change(access_key_id: str) -> object:
        result = real_load(access_key_id)
        setup.add_key(access_key_id)  # committed after the read saw nothing
        return result

    setup.cache._load_access_key = load_then_change  # type: ignore[method-assign]
    assert setup.cache.load(akid) is None
    assert not setup.cache.known_unknown(akid)
    setup.cache._load_access_key = real_load  # type: ignore[method-assign]
    assert setup.reads(akid)[0] is True
