"""Which accounts receive a call's record (audit.events.trail_rows), table-driven, and the audit writer
keeping the copies of one call together and refusing to let a change pass without its record (a real
SQLite store)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import orjson
import pytest

from openkms.audit.events import ApiCall, cloudtrail_record, storage_row, trail_rows
from openkms.audit.writer import AuditWriter, RecordNotStored
from openkms.domain.model import Principal
from openkms.storage.store import Store

A, B, C = "111111111111", "222222222222", "333333333333"


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to its end on a thread of its own: the browser tests' session-wide Playwright
    keeps an event loop running on the main thread, where ``asyncio.run`` refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


def key(account: str, name: str) -> str:
    return f"arn:aws:kms:us-east-1:{account}:key/{name}"


def api_call(**changes: Any) -> ApiCall:
    """A KMS call by bob's access key from 127.0.0.1 at 1700000000, with ``changes``."""
    fields: dict[str, Any] = {
        "event_source": "kms.amazonaws.com",
        "event_name": "DescribeKey",
        "read_only": True,
        "principal": None,
        "access_key_id": "AKIABOB",
        "region": "us-east-1",
        "source_ip": "127.0.0.1",
        "user_agent": "test",
        "request_id": str(uuid.uuid4()),
        "started": 1700000000.0,
    }
    return ApiCall(**{**fields, **changes})


def record(resources: list[str], error: str | None = None, caller: str | None = B) -> dict[str, Any]:
    principal = None
    if caller is not None:
        principal = Principal(
            account_id=caller,
            arn=f"arn:aws:iam::{caller}:user/bob",
            principal_id="AIDABOB",
            identity_type="IAMUser",
            user_name="bob",
            access_key_id="AKIABOB",
        )
    return cloudtrail_record(
        api_call(
            event_name="ReEncrypt",
            principal=principal,
            # A parameter that looks like the fields the copies differ in changes nothing.
            request_parameters={"sourceEncryptionContext": {"eventID": '","recipientAccountId":"x'}},
            resources=resources,
            error_code=error,
            error_message="no" if error else None,
        )
    )


# (resources, error, caller) -> [(recipient account, key id of its row)], the caller's copy first.
CASES = [
    ([key(B, "b1")], None, B, [(B, "b1")]),
    ([], None, B, [(B, None)]),
    ([key(A, "a1")], None, B, [(B, "a1"), (A, "a1")]),
    ([key(B, "b1"), key(A, "a1")], None, B, [(B, "b1"), (A, "a1")]),
    ([key(A, "a1"), key(A, "a2")], None, B, [(B, "a1"), (A, "a1")]),
    ([key(C, "c1"), key(A, "a1")], None, B, [(B, "c1"), (C, "c1"), (A, "a1")]),
    ([key(A, "a1")], "AccessDeniedException", B, [(B, "a1")]),
    ([key(A, "a1")], "IncorrectKeyException", B, [(B, "a1"), (A, "a1")]),
    ([key(A, "a1")], "DisabledException", B, [(B, "a1"), (A, "a1")]),
    ([key(A, "a1")], "UnrecognizedClientException", None, [(None, "a1")]),
]


@pytest.mark.parametrize(("resources", "error", "caller", "expected"), CASES)
def test_trail_rows(
    resources: list[str], error: str | None, caller: str | None, expected: list[tuple[str | None, str | None]]
) -> None:
    built = record(resources, error, caller)
    first_key = resources[0].rsplit("/", 1)[-1] if resources else None
    rows = trail_rows(built, 1700000000.0, first_key)
    assert [(row["account_id"], row["key_id"]) for row in rows] == expected
    records = [orjson.loads(row["record"]) for row in rows]
    for row, parsed in zip(rows, records, strict=True):
        assert row["event_id"] == parsed["eventID"]
        assert row["account_id"] == parsed["recipientAccountId"]
        # The row is the one storage_row makes of that record.
        assert {
            k: v for k, v in storage_row(parsed, 1700000000.0, row["key_id"]).items() if k != "record"
        } == {k: v for k, v in row.items() if k != "record"}
    assert len({row["event_id"] for row in rows}) == len(rows)
    if len(rows) == 1:
        assert "sharedEventID" not in records[0]
        return
    shared = records[0]["sharedEventID"]
    assert str(uuid.UUID(shared)) == shared
    for parsed in records:
        assert parsed["sharedEventID"] == shared
        assert list(parsed)[-3:] == ["recipientAccountId", "sharedEventID", "eventCategory"]
        assert {k: v for k, v in parsed.items() if k not in ("eventID", "recipientAccountId")} == {
            k: v for k, v in records[0].items() if k not in ("eventID", "recipientAccountId")
        }


def test_copies_of_one_call_are_stored_together(tmp_path: Path) -> None:
    """A batch the database refuses is retried call by call: both copies of a call, or neither."""
    store = Store(f"sqlite:///{tmp_path / 'audit.db'}")
    writer = AuditWriter(store, interval=0.01)
    writer.start()
    try:
        earlier = trail_rows(record([key(B, "b1")]), 1700000000.0, "b1")
        writer.submit(earlier, durable=True).result(timeout=10)  # type: ignore[union-attr]
        good = trail_rows(record([key(A, "a1")]), 1700000000.0, "a1")
        clash = trail_rows(record([key(A, "a2")]), 1700000000.0, "a2")
        clash[1]["event_id"] = earlier[0]["event_id"]  # the owner's copy cannot be stored
        refused = writer.submit(clash, durable=True)
        stored = writer.submit(good, durable=True)
        assert refused is not None and stored is not None
        stored.result(timeout=10)
        with pytest.raises(RuntimeError):
            refused.result(timeout=10)
    finally:
        writer.close()
    with store.read() as tx:
        kept = {row[1] for row in tx.query_audit()}
    store.close()
    assert {row["record"] for row in earlier + good} == kept


def test_a_change_whose_record_is_not_stored_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The one rule of every entry point: a change waits for its record and learns it was not stored
    (logged under its request id); a read-only call is never held up by its record."""
    store = Store(f"sqlite:///{tmp_path / 'audit.db'}")
    db = sqlite3.connect(tmp_path / "audit.db")
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON audit_events WHEN NEW.event_name = 'DisableKey' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    db.commit()
    db.close()
    writer = AuditWriter(store, interval=0.01)
    writer.start()

    try:
        refused = api_call(event_name="DisableKey", read_only=False)
        assert refused.durable
        with pytest.raises(RecordNotStored) as exc:
            _run(writer.submit_call(refused))
        assert exc.value.message == (
            "The request was carried out, but its audit record could not be stored. Request id: "
            + refused.request_id
        )
        assert f"audit record of request {refused.request_id} (DisableKey) not stored" in caplog.text
        # A failed call and a read-only one do not wait for their records (this one is refused too).
        failed = api_call(event_name="DisableKey", read_only=False, error_code="NotFoundException")
        assert not failed.durable
        _run(writer.submit_call(failed))
        _run(writer.submit_call(api_call(event_name="DescribeKey")))
        _run(writer.submit_call(api_call(event_name="EnableKey", read_only=False)))
    finally:
        writer.close()
    with store.read() as tx:
        names = {orjson.loads(row[1])["eventName"] for row in tx.query_audit()}
    store.close()
    assert names == {"DescribeKey", "EnableKey"}


def test_a_full_queue_makes_read_only_calls_wait(tmp_path: Path) -> None:
    """The queue is bounded: once ``max_pending`` entries wait, a read-only call waits for its batch
    (and the writer is woken at once, not after its interval); below the bound it does not wait. A
    read-only call that waited never fails for its record, even when the database refuses it."""
    store = Store(f"sqlite:///{tmp_path / 'audit.db'}")
    db = sqlite3.connect(tmp_path / "audit.db")
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON audit_events WHEN NEW.event_name = 'ListAliases' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    db.commit()
    db.close()
    writer = AuditWriter(store, interval=60.0, max_pending=3)
    writer.start()
    try:
        rows = [trail_rows(record([key(B, f"b{n}")]), 1700000000.0, f"b{n}") for n in range(5)]
        assert [writer.submit(rows[n], durable=False) for n in range(3)] == [None, None, None]
        assert writer.queued() == 3
        waited = writer.submit(rows[3], durable=False)
        assert waited is not None
        waited.result(timeout=10)  # long before the 60 s interval
        assert writer.queued() == 0
        assert writer.submit(rows[4], durable=False) is None  # the queue has room again
        for _ in range(2):  # fill it again, then a read-only call the database refuses waits
            _run(writer.submit_call(api_call(event_name="DescribeKey")))
        assert writer.queued() == 3
        _run(writer.submit_call(api_call(event_name="ListAliases")))
        assert writer.queued() == 0
    finally:
        writer.close()
    with store.read() as tx:
        names = [orjson.loads(row[1])["eventName"] for row in tx.query_audit()]
    store.close()
    assert sorted(names) == ["DescribeKey"] * 2 + ["ReEncrypt"] * 5  # ListAliases refused, dropped


def test_record_fields_in_cloudtrail_order() -> None:
    """One function makes the record of every entry point's calls; its fields come in one order."""
    refused = record([key(A, "a1")], "DisabledException")
    assert list(refused)[:10] == [
        "eventVersion",
        "userIdentity",
        "eventTime",
        "eventSource",
        "eventName",
        "awsRegion",
        "sourceIPAddress",
        "userAgent",
        "errorCode",
        "errorMessage",
    ]
    assert list(refused)[10:] == [
        "requestParameters",
        "responseElements",
        "requestID",
        "eventID",
        "readOnly",
        "resources",
        "eventType",
        "managementEvent",
        "recipientAccountId",
        "eventCategory",
    ]
    assert refused["eventTime"] == "2023-11-14T22:13:20Z" and refused["recipientAccountId"] == B
    assert refused["resources"] == [{"accountId": A, "type": "AWS::KMS::Key", "ARN": key(A, "a1")}]
    login = cloudtrail_record(
        api_call(
            event_source="signin.amazonaws.com",
            event_name="ConsoleLogin",
            read_only=False,
            user_agent="openkms-console/0",
            response_elements={"ConsoleLogin": "Failure"},
            additional_event_data={"MFAUsed": "No"},
            error_message="Failed authentication",
        )
    )
    # A failed sign-in has a message and no error code; the message comes last.
    assert "errorCode" not in login and list(login)[-1] == "errorMessage"
    assert list(login)[8:11] == ["requestParameters", "responseElements", "additionalEventData"]
    assert login["userIdentity"] == {"type": "Unknown", "accessKeyId": "AKIABOB"}
