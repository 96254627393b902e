"""The audit chain (storage/tx_audit.append_audit, service/trail/digests.py, service/trail/verify.py) on
a SQLite store: records chain per account and Region across batches, digests chain and are signed, and
verify names each kind of tampering (modified, deleted, inserted, reordered, exchanged contents, a
rewritten tail, a deleted or forged digest) with its ids, and tells retention from deletion."""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from openkms.crypto.envelope import Keyring, RootKey
from openkms.domain.trail_chain import GENESIS, record_hash
from openkms.service.trail import signing
from openkms.service.trail.digests import make_digests, prune_before
from openkms.service.trail.verify import Report, verify
from openkms.storage.store import Store

ACCOUNT = "111122223333"


def row(n: int, t: float, account: str = ACCOUNT, region: str = "us-east-1") -> dict[str, Any]:
    event_id = str(uuid.uuid4())
    record = {"eventID": event_id, "eventName": "Encrypt", "n": n, "recipientAccountId": account}
    return {
        "event_id": event_id,
        "event_time": t,
        "account_id": account,
        "region": region,
        "event_name": "Encrypt",
        "key_id": "k",
        "principal_arn": "arn:aws:iam::111122223333:user/alice",
        "error_code": None,
        "record": json.dumps(record),
        "attributes": [("Username", "alice")],
    }


@pytest.fixture
def trail(tmp_path: Path) -> tuple[Store, RootKey]:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    root = RootKey.from_keyring(Keyring.new())
    with store.write() as tx:
        tx.append_audit([row(n, 1000.0 + n) for n in range(1, 6)])
    with store.write() as tx:
        tx.append_audit([row(n, 1000.0 + n) for n in range(6, 9)] + [row(0, 1000.0, region="eu-west-1")])
    make_digests(store, root, 2000.0)
    with store.write() as tx:
        tx.append_audit([row(n, 2000.0 + n) for n in range(9, 13)])
    make_digests(store, root, 3000.0)
    with store.write() as tx:
        tx.append_audit([row(13, 3001.0)])
    return store, root


def check(store: Store) -> Report:
    return verify(store, signing.public_keys(store))


def records(store: Store) -> list[dict[str, Any]]:
    with store.read() as tx:
        return tx.chain_records(ACCOUNT, "us-east-1", 0, 100)


def sql(store: Store, statement: str, **params: Any) -> None:
    with store.write() as tx:
        tx.conn.execute(sa.text(statement), params)


def kinds(report: Report) -> list[str]:
    return [p.kind for p in report.problems]


def test_records_chain_per_account_and_region_and_a_clean_trail_verifies(
    trail: tuple[Store, RootKey],
) -> None:
    store, _ = trail
    rows = records(store)
    assert [r["seq"] for r in rows] == list(range(1, 14))
    assert rows[0]["prev_hash"] == GENESIS
    for before, after in itertools.pairwise(rows):
        assert after["prev_hash"] == before["hash"]
        assert record_hash(after["prev_hash"], after["seq"], after) == after["hash"]
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    report = check(store)
    assert report.valid, report.to_json()
    chains = {(c.account_id, c.region): c for c in report.chains}
    ours = chains[(ACCOUNT, "us-east-1")]
    assert (ours.records, ours.digests, ours.undigested) == (13, 2, 1)
    assert chains[(ACCOUNT, "eu-west-1")].records == 1
    with store.read() as tx:
        (first, second) = tx.digests(ACCOUNT, "us-east-1")
    body = json.loads(second["body"])
    assert body["previousDigestSignature"] == first["signature"]
    assert (body["firstSequenceNumber"], body["lastSequenceNumber"]) == (9, 12)
    assert body["digestSignatureAlgorithm"] == "SHA256withRSA"
    assert make_digests(store, trail[1], 3500.0)[0].first_seq == 13
    assert make_digests(store, trail[1], 3600.0) == []  # nothing new


def test_a_modified_record_is_named(trail: tuple[Store, RootKey]) -> None:
    store, _ = trail
    target = records(store)[3]
    sql(store, "UPDATE audit_events SET event_name = 'Decrypt' WHERE id = :id", id=target["id"])
    report = check(store)
    assert kinds(report) == ["modified"]
    (p,) = report.problems
    assert (p.seqs, p.record_ids, p.event_ids) == ([4], [target["id"]], [target["event_id"]])


def test_a_deleted_record_and_a_deleted_newest_record_are_named(trail: tuple[Store, RootKey]) -> None:
    store, _ = trail
    rows = records(store)
    sql(store, "DELETE FROM audit_events WHERE id IN (:a, :b)", a=rows[6]["id"], b=rows[-1]["id"])
    report = check(store)
    assert kinds(report) == ["deleted", "deleted"]
    assert report.problems[0].seqs == [7] and report.problems[0].record_ids == [rows[5]["id"], rows[7]["id"]]
    assert report.problems[1].seqs == [13]


def test_inserted_records_are_named(trail: tuple[Store, RootKey]) -> None:
    store, _ = trail
    rows = records(store)
    # A copy in seq 5's place, hashed correctly onto seq 4; and a plain row without a seq.
    fake = row(99, 1004.5)
    del fake["attributes"]
    fake_hash = record_hash(rows[3]["hash"], 5, fake)
    columns = ", ".join(fake)
    with store.write() as tx:
        tx.conn.execute(
            sa.text(
                f"INSERT INTO audit_events ({columns}, seq, prev_hash, hash) "
                f"VALUES ({', '.join(':' + c for c in fake)}, 5, :p, :h)"
            ),
            {**fake, "p": rows[3]["hash"], "h": fake_hash},
        )
        plain = row(100, 1004.6)
        del plain["attributes"]
        tx.conn.execute(
            sa.text(f"INSERT INTO audit_events ({columns}) VALUES ({', '.join(':' + c for c in plain)})"),
            plain,
        )
    report = check(store)
    assert sorted(kinds(report)) == ["inserted", "inserted"]
    assert {p.event_ids[0] for p in report.problems} == {fake["event_id"], plain["event_id"]}


def test_swapped_records_are_reordered(trail: tuple[Store, RootKey]) -> None:
    store, _ = trail
    rows = records(store)
    a, b = rows[2]["id"], rows[5]["id"]
    sql(store, "UPDATE audit_events SET id = -1 WHERE id = :a", a=a)
    sql(store, "UPDATE audit_events SET id = :a WHERE id = :b", a=a, b=b)
    sql(store, "UPDATE audit_events SET id = :b WHERE id = -1", b=b)
    report = check(store)
    assert kinds(report) == ["reordered"]
    (p,) = report.problems
    assert (p.first_seq, p.last_seq) == (3, 6)
    assert {a, b} <= set(p.record_ids)


def test_exchanged_contents_are_reordered(trail: tuple[Store, RootKey]) -> None:
    store, _ = trail
    rows = records(store)
    x, y = rows[1], rows[2]
    with store.write() as tx:
        # every column but the chain's (id, seq, prev_hash, hash)
        update = sa.text("UPDATE audit_events SET record = :r, event_id = :e, event_time = :t WHERE id = :id")
        tx.conn.execute(update, {"r": x["record"], "e": "tmp", "t": 0.0, "id": x["id"]})
        tx.conn.execute(update, {"r": x["record"], "e": x["event_id"], "t": x["event_time"], "id": y["id"]})
        tx.conn.execute(update, {"r": y["record"], "e": y["event_id"], "t": y["event_time"], "id": x["id"]})
    report = check(store)
    assert kinds(report) == ["reordered"]
    assert report.problems[0].record_ids == [x["id"], y["id"]]


def test_a_rewritten_tail_contradicts_the_signed_digest(trail: tuple[Store, RootKey]) -> None:
    store, _ = trail
    rows = records(store)
    prev = rows[9]["prev_hash"]
    with store.write() as tx:  # modify seq 10 and re-hash everything after it
        for r in rows[9:]:
            r = {**r, "event_name": "Decrypt" if r["seq"] == 10 else r["event_name"]}
            new = record_hash(prev, r["seq"], r)
            tx.conn.execute(
                sa.text("UPDATE audit_events SET event_name = :n, prev_hash = :p, hash = :h WHERE id = :id"),
                {"n": r["event_name"], "p": prev, "h": new, "id": r["id"]},
            )
            prev = new
    report = check(store)
    assert kinds(report) == ["rewritten"]
    assert report.problems[0].seqs == [12] and report.problems[0].digest_numbers == [2]


def test_deleted_and_forged_digests_are_named(trail: tuple[Store, RootKey]) -> None:
    store, root = trail
    make_digests(store, root, 4000.0)  # digest 3
    sql(store, "DELETE FROM audit_digests WHERE number = 2")
    report = check(store)
    assert kinds(report) == ["digest-deleted"]
    assert report.problems[0].digest_numbers == [2]
    sql(store, "DELETE FROM audit_digests WHERE number = 3")
    assert [p.digest_numbers for p in check(store).problems] == [[2, 3]]
    sql(
        store,
        "UPDATE audit_digests SET body = replace(body, :a, :b)",
        a='"recordCount":8',
        b='"recordCount":7',
    )
    assert "digest-modified" in kinds(check(store))


def test_retention_is_not_deletion(trail: tuple[Store, RootKey]) -> None:
    store, root = trail
    (marker,) = [m for m in prune_before(store, root, 1006.5, 5000.0) if m.region == "us-east-1"]
    assert (marker.first_seq, marker.last_seq) == (1, 6)
    assert [r["seq"] for r in records(store)][:1] == [7]
    with store.read() as tx:  # the pruned records' lookup attributes go with them
        ids = {r[0] for r in tx.conn.execute(sa.text("SELECT audit_id FROM audit_attributes"))}
    assert ids and min(ids) == records(store)[0]["id"]
    report = check(store)
    assert report.valid, report.to_json()
    assert {c.region: c.pruned_through for c in report.chains}["us-east-1"] == 6
    # pruning only goes as far as a digest covers: seq 13 is not digested yet
    prune_before(store, root, 10_000.0, 5001.0)
    assert [r["seq"] for r in records(store)] == [13]
    assert check(store).valid
    # a record deleted after the retention point still is a deletion
    sql(store, "DELETE FROM audit_events WHERE seq = 13 AND region = 'us-east-1'")
    assert kinds(check(store)) == ["deleted"]


def test_exported_until_holds_back_retention(trail: tuple[Store, RootKey]) -> None:
    store, root = trail
    prune_before(store, root, 10_000.0, 5000.0, exported_until=lambda account, region: 1003.5)
    assert next(r["seq"] for r in records(store)) == 4
    prune_before(store, root, 10_000.0, 5001.0, exported_until=lambda account, region: None)
    assert next(r["seq"] for r in records(store)) == 4
    assert check(store).valid


def test_a_time_window_checks_only_its_records(trail: tuple[Store, RootKey]) -> None:
    store, _ = trail
    target = records(store)[1]
    sql(store, "UPDATE audit_events SET event_name = 'Decrypt' WHERE id = :id", id=target["id"])
    assert verify(store, signing.public_keys(store), start=2000.0).valid
    windowed = verify(store, signing.public_keys(store), start=1001.5, end=1003.0)
    assert kinds(windowed) == ["modified"]
    assert [c.records for c in windowed.chains if c.region == "us-east-1"] == [2]


def test_a_periodic_digest_waits_for_its_interval(trail: tuple[Store, RootKey]) -> None:
    store, root = trail
    # us-east-1 was digested at 3000 (seq 13 since); eu-west-1 at 2000 with nothing new
    assert make_digests(store, root, 3500.0, every=3600.0) == []
    (made,) = make_digests(store, root, 6600.0, every=3600.0)
    assert (made.region, made.first_seq, made.last_seq) == ("us-east-1", 13, 13)
    with store.write() as tx:
        tx.append_audit([row(1, 7000.0, region="ap-south-1")])  # a new chain: timed from its first record
    assert make_digests(store, root, 7100.0, every=3600.0) == []
    assert [m.region for m in make_digests(store, root, 10_600.0, every=3600.0)] == ["ap-south-1"]
