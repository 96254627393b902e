"""The injected clocks: console sessions expire by the service clock they are given, and the store stamps
its change log and its migrations with its own clock (the wall clock in a runtime), never ``time.time()``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from openkms.console.sessions import SessionStore
from openkms.storage import schema
from openkms.storage.store import Store


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float) -> None:
        self.time = now

    def now(self) -> float:
        return self.time


START = 2_000_000_000.0  # far from the real time, so a direct read of the wall clock would show


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", FakeClock(START))
    yield store
    store.close()


def test_a_console_session_ends_after_its_idle_time_by_the_given_clock(store: Store) -> None:
    clock = FakeClock(START)
    sessions = SessionStore(store, clock, idle_timeout=600, lifetime=3600)
    session = sessions.create("AKIAEXAMPLE", "111122223333", "us-east-1")
    cookie = session.id.reveal()
    assert session.row.created_at == START and session.row.expires == START + 3600
    clock.time += 599
    assert sessions.load(cookie) is not None  # used: idle time starts again
    clock.time += 599
    assert sessions.load(cookie) is not None
    clock.time += 600
    assert sessions.load(cookie) is None
    assert sessions.load(cookie) is None  # and it is gone from the database


def test_a_console_session_ends_at_its_lifetime_however_busy(store: Store) -> None:
    clock = FakeClock(START)
    sessions = SessionStore(store, clock, idle_timeout=600, lifetime=3600)
    session = sessions.create("AKIAEXAMPLE", "111122223333", "us-east-1")
    cookie = session.id.reveal()
    while clock.time + 500 < START + 3600:
        clock.time += 500
        assert sessions.load(cookie) is not None
    clock.time = START + 3600
    assert sessions.load(cookie) is None


def test_the_store_stamps_changes_and_migrations_with_its_clock(store: Store) -> None:
    with store.write() as tx:
        tx.changed("key", "us-east-1/1234abcd-12ab-34cd-56ef-1234567890ab")
    with store.read() as tx:
        stamps = [row.at for row in tx.conn.execute(schema.changes.select())]
        applied = [row[0] for row in tx.conn.exec_driver_sql("SELECT applied_at FROM schema_migrations")]
    assert stamps == [START]
    assert applied and set(applied) == {START}
