"""Group commit (``Store.write_grouped``) against a real SQLite store: concurrent bodies share
commits, each is durable and its changes told to the listeners before its caller returns, a body
that raises is undone alone, a failed commit fails every body of its group, a transaction
announces a change once, and the audit rows given to the transactions are chained once per group,
with the bodies that ran."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from openkms.audit.events import storage_row
from openkms.domain.trail_chain import record_hash
from openkms.storage import schema as t
from openkms.storage.store import Store, Tx


class Boom(Exception):
    pass


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield s
    s.close()


def tags(store: Store, key_id: str) -> dict[str, str]:
    with store.read() as tx:
        return tx.get_tags("us-east-1", key_id)


def tag_body(key_id: str, fail: bool = False) -> Callable[[Tx], str]:
    def body(tx: Tx) -> str:
        tx.set_tags("us-east-1", key_id, {"k": key_id})
        if fail:
            raise Boom(key_id)
        return key_id

    return body


def write_transactions(store: Store) -> list[int]:
    """A counter of the store's write transactions (appended to as each begins)."""
    seen: list[int] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement == "BEGIN IMMEDIATE":
            seen.append(1)

    event.listen(store.engine, "before_cursor_execute", count)
    return seen


def wait_queued(store: Store, n: int) -> None:
    """Until ``n`` bodies wait behind the one running."""
    deadline = time.monotonic() + 20
    while store.group_commit.waiting < n:
        assert time.monotonic() < deadline, f"{store.group_commit.waiting} bodies queued, not {n}"
        time.sleep(0.005)


def run_as_one_group(
    store: Store, pool: ThreadPoolExecutor, bodies: list[Callable[[Tx], Any]]
) -> list[Future[Any]]:
    """Submit ``bodies`` while a holder body keeps the write lock, so that they queue and then run as
    one group; their futures, once the holder has committed."""
    gate = threading.Event()
    started = threading.Event()

    def hold(tx: Tx) -> None:
        started.set()
        gate.wait(10)

    holder = pool.submit(store.write_grouped, hold)
    try:
        assert started.wait(10)
        futures = [pool.submit(store.write_grouped, body) for body in bodies]
        wait_queued(store, len(bodies))
    finally:
        gate.set()
    holder.result(timeout=10)
    return futures


def test_concurrent_bodies_share_commits_and_each_is_durable_and_told(store: Store) -> None:
    told: list[str] = []
    store.add_listener(lambda changes: told.extend(ident for _, ident in changes))
    n = 64
    counted = write_transactions(store)
    # The first body holds the write lock until every caller has queued its body behind it.
    gate = threading.Event()

    started = threading.Event()

    def first(tx: Tx) -> str:
        tx.set_tags("us-east-1", "k0", {"k": "k0"})
        started.set()
        gate.wait(10)
        return "k0"

    def call(i: int) -> tuple[str, bool, bool]:
        result = store.write_grouped(first if i == 0 else tag_body(f"k{i}"))
        # When a caller returns, its write is committed and its change was told to the listeners.
        return result, tags(store, result) == {"k": result}, f"us-east-1/{result}" in told

    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(call, 0)]
        assert started.wait(10)
        futures += [pool.submit(call, i) for i in range(1, n)]
        wait_queued(store, n - 1)
        gate.set()
        results = [f.result(timeout=30) for f in futures]
    assert results == [(f"k{i}", True, True) for i in range(n)]
    # 64 bodies: the first alone, then groups of at most GROUP_MAX (32): 3 transactions.
    assert len(counted) == 3
    assert sorted(told) == sorted(f"us-east-1/k{i}" for i in range(n))


@pytest.mark.parametrize(
    "failing",
    [
        pytest.param({1}, id="one-body-of-a-group"),
        pytest.param({0, 2}, id="first-and-last"),
        pytest.param({0, 1, 2}, id="every-body"),
    ],
)
def test_a_body_that_raises_is_undone_alone(store: Store, failing: set[int]) -> None:
    with ThreadPoolExecutor(4) as pool:
        bodies = [tag_body(f"f{i}", fail=i in failing) for i in range(3)]
        futures = dict(enumerate(run_as_one_group(store, pool, bodies)))
        for i, future in futures.items():
            if i in failing:
                with pytest.raises(Boom, match=f"f{i}"):
                    future.result(timeout=10)
                assert tags(store, f"f{i}") == {}
            else:
                assert future.result(timeout=10) == f"f{i}"
                assert tags(store, f"f{i}") == {"k": f"f{i}"}


def test_a_body_alone_that_raises_writes_nothing(store: Store) -> None:
    with pytest.raises(Boom):
        store.write_grouped(tag_body("alone", fail=True))
    assert tags(store, "alone") == {}
    assert store.write_grouped(tag_body("after")) == "after"
    assert tags(store, "after") == {"k": "after"}


def test_a_failed_commit_fails_every_body_of_its_group(store: Store) -> None:
    seen = write_transactions(store)
    refused: list[int] = []

    @event.listens_for(store.engine, "commit")
    def refuse(conn: object) -> None:
        if len(seen) == 3 and not refused:  # the third write: the group queued behind the holder
            refused.append(1)
            raise sqlite3.OperationalError("disk I/O error")

    with ThreadPoolExecutor(4) as pool:
        holder = pool.submit(store.write_grouped, tag_body("holder"))
        holder.result(timeout=10)
        futures = run_as_one_group(store, pool, [tag_body(f"c{i}") for i in range(3)])
        for future in futures:
            with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
                future.result(timeout=10)
    assert [tags(store, f"c{i}") for i in range(3)] == [{}, {}, {}]
    # The store goes on after it.
    assert store.write_grouped(tag_body("later")) == "later"
    assert tags(store, "later") == {"k": "later"}


def test_a_change_is_announced_once_per_transaction(store: Store) -> None:
    told: list[list[tuple[str, str]]] = []
    store.add_listener(lambda changes: told.append(list(changes)))
    with store.write() as tx:
        before = tx.last_change_id()
        for _ in range(3):
            tx.set_tags("us-east-1", "once", {"a": "b"})
        tx.changed("alias", "us-east-1/x")
        tx.changed("alias", "us-east-1/x")
    assert told == [[("key", "us-east-1/once"), ("alias", "us-east-1/x")]]
    with store.read() as tx:
        logged = [(kind, ident) for _, kind, ident, _ in tx.changes_after(before)]
    assert logged == [("key", "us-east-1/once"), ("alias", "us-east-1/x")]


def test_a_change_announced_inside_a_savepoint_that_rolls_back_is_still_announced(store: Store) -> None:
    """The notices are written at the end of the transaction: a change first announced inside a
    SAVEPOINT that is rolled back, then made again, still reaches the other processes' feed."""
    with store.write() as tx:
        before = tx.last_change_id()
        try:
            with tx.conn.begin_nested():
                tx.set_tags("us-east-1", "sp", {"a": "1"})
                raise Boom("undo")
        except Boom:
            pass
        tx.set_tags("us-east-1", "sp", {"a": "2"})
    with store.read() as tx:
        logged = [(kind, ident) for _, kind, ident, _ in tx.changes_after(before)]
    assert logged == [("key", "us-east-1/sp")]
    assert tags(store, "sp") == {"a": "2"}


def audit_row(event_id: str) -> dict[str, object]:
    record = {
        "eventID": event_id,
        "eventName": "CreateKey",
        "awsRegion": "us-east-1",
        "recipientAccountId": "111122223333",
        "userIdentity": {"accountId": "111122223333", "arn": "arn:aws:iam::111122223333:root"},
        "readOnly": False,
        "eventSource": "kms.amazonaws.com",
        "resources": [],
    }
    return storage_row(record, 1_700_000_000.0, event_id)


def recording_body(key_id: str, event_id: str, fail: bool = False) -> Callable[[Tx], str]:
    """Tags a key and gives the transaction its audit row (``tx.record``), as CreateKey does."""

    def body(tx: Tx) -> str:
        tx.set_tags("us-east-1", key_id, {"k": key_id})
        tx.record([audit_row(event_id)])
        if fail:
            raise Boom(key_id)
        return key_id

    return body


def trail(store: Store) -> list[tuple[int, str, str, str, str]]:
    """(seq, event id, prev hash, hash, recomputed hash) of the stored records, in chain order."""
    with store.read() as tx:
        rows = tx.conn.execute(
            sa.select(t.audit_events).where(t.audit_events.c.account_id == "111122223333").order_by("seq")
        ).mappings()
        return [
            (
                r["seq"],
                r["event_id"],
                r["prev_hash"],
                r["hash"],
                record_hash(r["prev_hash"], r["seq"], dict(r)),
            )
            for r in rows
        ]


def test_records_given_to_a_group_are_chained_once_for_the_bodies_that_ran(store: Store) -> None:
    """The audit rows of a group's bodies are appended after the last body, in one chained write: a
    body undone takes its row with it, and the chain has no gap."""
    with ThreadPoolExecutor(4) as pool:
        bodies = [recording_body(f"r{i}", f"e{i}", fail=i == 1) for i in range(3)]
        futures = run_as_one_group(store, pool, bodies)
        assert futures[0].result(timeout=10) == "r0"
        with pytest.raises(Boom):
            futures[1].result(timeout=10)
        assert futures[2].result(timeout=10) == "r2"
    chain = trail(store)
    assert [(seq, event_id) for seq, event_id, *_ in chain] == [(1, "e0"), (2, "e2")]
    assert [stored == recomputed for *_, stored, recomputed in chain] == [True, True]
    assert chain[1][2] == chain[0][3]  # e2 follows e0
    assert tags(store, "r1") == {}
    # A plain write transaction records the same way (PostgreSQL's CreateKey; no group there).
    with store.write() as tx:
        tx.set_tags("us-east-1", "plain", {"k": "plain"})
        tx.record([audit_row("e3")])
    chain = trail(store)
    assert [(seq, event_id) for seq, event_id, *_ in chain] == [(1, "e0"), (2, "e2"), (3, "e3")]
    assert chain[2][2] == chain[1][3] and chain[2][3] == chain[2][4]


@pytest.mark.parametrize("grouped", [True, False], ids=["group-of-three", "alone"])
def test_a_record_the_database_refuses_undoes_the_change(store: Store, grouped: bool) -> None:
    """Never a change without its record: a record the database refuses (here an event id already
    stored) fails its transaction, and with the group commit every body of the group."""
    store.write_grouped(recording_body("first", "dup"))
    if not grouped:
        with pytest.raises(sa.exc.IntegrityError):
            store.write_grouped(recording_body("second", "dup"))
        assert tags(store, "second") == {}
    else:
        with ThreadPoolExecutor(4) as pool:
            bodies = [recording_body(f"g{i}", f"g{i}") for i in range(2)] + [recording_body("g2", "dup")]
            futures = run_as_one_group(store, pool, bodies)
            for future in futures:
                with pytest.raises(sa.exc.IntegrityError):
                    future.result(timeout=10)
        assert [tags(store, f"g{i}") for i in range(3)] == [{}, {}, {}]
    assert [event_id for _, event_id, *_ in trail(store)] == ["dup"]
    assert tags(store, "first") == {"k": "first"}
