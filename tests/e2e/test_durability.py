"""Durability and secrecy at rest: a restart keeps keys, aliases, tags, policies, rotation settings
and scheduled deletions; ``kill -9`` loses no acknowledged key; a key whose waiting period is over is
really deleted (with its aliases, and a ``DeleteKey`` service event in the audit trail), also across a
restart; and neither the data directory (database, WAL, logs) nor any PostgreSQL row holds a data
key, an Encrypt plaintext or a secret access key."""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, _new_server, drop_pg_database
from tests.e2e.util import aws_error, wait_for_audit

NO_CIPHERTEXT_KEY = (
    "The ciphertext refers to a customer master key that does not exist, does not exist in this region, "
    "or you are not allowed to access."
)
SEVEN_DAYS_AND_A_BIT = 700_000  # seconds: past a 7-day window, well within a 30-day one

ServerFactory = Callable[..., Server]


@pytest.fixture
def make_server(workdir: Path, backend: str) -> Iterator[ServerFactory]:
    """Start servers of the test's own (with extra environment); all stopped and dropped afterwards."""
    started: list[tuple[Server, str | None]] = []

    def make(**kw: Any) -> Server:
        srv, url = _new_server(workdir, backend, **kw)
        started.append((srv, url))
        return srv

    yield make
    for srv, url in started:
        srv.stop()
        if url:
            drop_pg_database(url)


def _wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_restart_keeps_everything(own_server: Server) -> None:
    kms = own_server.client()
    enabled = kms.create_key(Description="kept", Tags=[{"TagKey": "team", "TagValue": "a"}])["KeyMetadata"]
    disabled = kms.create_key()["KeyMetadata"]
    kms.disable_key(KeyId=disabled["KeyId"])
    doomed = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/kept-too", TargetKeyId=doomed["KeyId"])
    scheduled = kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=9)
    rotated = kms.create_key()["KeyMetadata"]
    old_blob = kms.encrypt(KeyId=rotated["KeyId"], Plaintext=b"old material")["CiphertextBlob"]
    kms.rotate_key_on_demand(KeyId=rotated["KeyId"])
    kms.enable_key_rotation(KeyId=rotated["KeyId"], RotationPeriodInDays=180)
    policy = (
        '{"Version":"2012-10-17","Id":"kept","Statement":[{"Sid":"s","Effect":"Allow",'
        f'"Principal":{{"AWS":"arn:aws:iam::{own_server.account_id}:root"}},"Action":"kms:*","Resource":"*"}}]}}'
    )
    kms.put_key_policy(KeyId=enabled["KeyId"], Policy=policy)
    kms.create_alias(AliasName="alias/kept", TargetKeyId=enabled["KeyId"])
    blob = kms.encrypt(KeyId="alias/kept", Plaintext=b"survives", EncryptionContext={"a": "b"})[
        "CiphertextBlob"
    ]
    before = {
        k: kms.describe_key(KeyId=k)["KeyMetadata"]
        for k in (enabled["KeyId"], disabled["KeyId"], doomed["KeyId"], rotated["KeyId"])
    }
    rotation_before = kms.get_key_rotation_status(KeyId=rotated["KeyId"])
    rotation_before.pop("ResponseMetadata")
    rotations_before = kms.list_key_rotations(KeyId=rotated["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL")

    own_server.restart()
    kms = own_server.client()

    for key_id, md in before.items():
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"] == md
    assert before[doomed["KeyId"]]["KeyState"] == "PendingDeletion"
    assert before[doomed["KeyId"]]["DeletionDate"] == scheduled["DeletionDate"]
    assert before[disabled["KeyId"]]["KeyState"] == "Disabled"
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"})["Plaintext"] == b"survives"
    assert kms.decrypt(CiphertextBlob=old_blob)["Plaintext"] == b"old material"
    assert kms.describe_key(KeyId="alias/kept")["KeyMetadata"]["KeyId"] == enabled["KeyId"]
    assert kms.describe_key(KeyId="alias/kept-too")["KeyMetadata"]["KeyId"] == doomed["KeyId"]
    assert kms.list_resource_tags(KeyId=enabled["KeyId"])["Tags"] == [{"TagKey": "team", "TagValue": "a"}]
    assert kms.get_key_policy(KeyId=enabled["KeyId"])["Policy"] == policy
    status = kms.get_key_rotation_status(KeyId=rotated["KeyId"])
    status.pop("ResponseMetadata")
    assert status == rotation_before and status["RotationPeriodInDays"] == 180
    rotations = kms.list_key_rotations(KeyId=rotated["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL")
    assert rotations["Rotations"] == rotations_before["Rotations"]
    # The scheduled deletion can still be cancelled after the restart.
    kms.cancel_key_deletion(KeyId=doomed["KeyId"])
    assert kms.describe_key(KeyId=doomed["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"


def test_kill9_loses_no_acknowledged_key(own_server: Server) -> None:
    kms = own_server.client()
    made: list[tuple[str, bytes, bytes]] = []
    for i in range(20):
        key_id = kms.create_key(Description=f"crash-{i}")["KeyMetadata"]["KeyId"]
        plaintext = f"acknowledged {i}".encode()
        blob = kms.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"]
        made.append((key_id, plaintext, blob))
    last = kms.create_key(Description="last")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/last", TargetKeyId=last)
    own_server.kill9()
    own_server.start()
    kms = own_server.client()
    for i, (key_id, plaintext, blob) in enumerate(made):
        md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        assert (md["KeyState"], md["Description"]) == ("Enabled", f"crash-{i}")
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
    assert kms.describe_key(KeyId="alias/last")["KeyMetadata"]["KeyId"] == last
    # The audit records of acknowledged changes were durable before the answer.
    created = wait_for_audit(own_server, ("--event-name", "CreateKey"), lambda r: len(r) >= 21, timeout=1)
    logged = {r["responseElements"]["keyMetadata"]["keyId"] for r in created}
    assert {key_id for key_id, _, _ in made} | {last} <= logged


def test_kill9_during_concurrent_create_keys_loses_no_acknowledged_key(own_server: Server) -> None:
    """CreateKeys from 16 clients at once (on SQLite they share commits: group commit), the server
    killed with SIGKILL among them: every key a client was answered for is there after the restart,
    with its material, tags and CloudTrail record; keys nobody was answered for may or may not be, and
    on SQLite every key stored has its record."""
    acknowledged: list[tuple[str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def create(worker: int) -> None:
        kms = own_server.client()
        n = 0
        while not stop.is_set():
            tag = f"w{worker}-{n}"
            try:
                key_id = kms.create_key(Tags=[{"TagKey": "who", "TagValue": tag}])["KeyMetadata"]["KeyId"]
            except Exception:  # the server is gone: this call was not acknowledged
                return
            with lock:
                acknowledged.append((key_id, tag))
            n += 1

    threads = [threading.Thread(target=create, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    deadline = time.time() + 30
    while len(acknowledged) < 150 and time.time() < deadline:
        time.sleep(0.05)
    own_server.kill9()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    made = list(acknowledged)
    assert len(made) >= 150
    own_server.start()
    kms = own_server.client()
    for key_id, tag in made:
        md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        assert md["KeyState"] == "Enabled"
        assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "who", "TagValue": tag}]
    for key_id, _ in made[:: max(1, len(made) // 20)]:
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"after the crash")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"after the crash"
    created = wait_for_audit(own_server, ("--event-name", "CreateKey"), lambda r: True, timeout=0)
    logged = {r["responseElements"]["keyMetadata"]["keyId"] for r in created}
    assert {key_id for key_id, _ in made} <= logged
    stored = {k["KeyId"] for page in kms.get_paginator("list_keys").paginate() for k in page["Keys"]}
    assert stored >= {key_id for key_id, _ in made}
    if own_server.database_url is None:
        # SQLite: never a key without its record, answered or not (they commit together; on
        # PostgreSQL the record commits just after the key, see Store.records_with_changes).
        assert stored <= logged, f"{len(stored - logged)} keys stored without their CreateKey record"


def _deletion_setup(server: Server) -> tuple[Any, dict[str, Any], dict[str, Any], bytes]:
    kms = server.client()
    doomed = kms.create_key(Description="doomed")["KeyMetadata"]
    survivor = kms.create_key(Description="thirty days")["KeyMetadata"]
    blob = kms.encrypt(KeyId=doomed["KeyId"], Plaintext=b"gone soon")["CiphertextBlob"]
    kms.create_alias(AliasName="alias/doomed", TargetKeyId=doomed["KeyId"])
    kms.create_alias(AliasName="alias/doomed-2", TargetKeyId=doomed["KeyId"])
    kms.tag_resource(KeyId=doomed["KeyId"], Tags=[{"TagKey": "t", "TagValue": "v"}])
    kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=7)
    kms.schedule_key_deletion(KeyId=survivor["KeyId"], PendingWindowInDays=30)
    return kms, doomed, survivor, blob


def _assert_deleted(
    server: Server, kms: Any, doomed: dict[str, Any], survivor: dict[str, Any], blob: bytes
) -> None:
    def gone() -> bool:
        try:
            kms.describe_key(KeyId=doomed["KeyId"])
        except kms.exceptions.NotFoundException:
            return True
        return False

    assert _wait_until(gone), "the key was not deleted after its waiting period"
    err = aws_error(kms.describe_key, KeyId=doomed["KeyId"])
    assert (err.code, err.message) == ("NotFoundException", f"Key '{doomed['Arn']}' does not exist")
    for alias in ("alias/doomed", "alias/doomed-2"):
        err = aws_error(kms.describe_key, KeyId=alias)
        assert (err.code, err.message) == (
            "NotFoundException",
            f"Alias arn:aws:kms:us-east-1:{server.account_id}:{alias} is not found.",
        )
    assert kms.list_aliases()["Aliases"] == []
    assert doomed["KeyId"] not in {k["KeyId"] for k in kms.list_keys()["Keys"]}
    err = aws_error(kms.decrypt, CiphertextBlob=blob)
    assert (err.code, err.message) == ("AccessDeniedException", NO_CIPHERTEXT_KEY)
    # A key whose window is not over yet stays.
    md = kms.describe_key(KeyId=survivor["KeyId"])["KeyMetadata"]
    assert md["KeyState"] == "PendingDeletion"

    records = wait_for_audit(
        server, ("--event-name", "DeleteKey", "--key-id", doomed["KeyId"]), lambda r: len(r) >= 1, timeout=2
    )
    [event] = records
    assert event["eventType"] == "AwsServiceEvent"
    assert event["eventName"] == "DeleteKey"
    assert event["eventSource"] == "kms.amazonaws.com"
    assert event["userIdentity"]["invokedBy"] == "AWS Internal"
    assert event["serviceEventDetails"]["keyId"] == doomed["KeyId"]
    assert event["resources"] == [
        {"accountId": server.account_id, "type": "AWS::KMS::Key", "ARN": doomed["Arn"]}
    ]
    assert event["readOnly"] is False and event["managementEvent"] is True
    assert event["recipientAccountId"] == server.account_id
    assert audit_for(server, survivor["KeyId"], "DeleteKey") == []


def audit_for(server: Server, key_id: str, event_name: str) -> list[dict[str, Any]]:
    return wait_for_audit(server, ("--event-name", event_name, "--key-id", key_id), lambda r: True, timeout=0)


def test_deletion_happens_when_the_window_passes(make_server: ServerFactory, tmp_path: Path) -> None:
    clock = tmp_path / "clock-offset"
    clock.write_text("0")
    server = make_server(env={"OPENKMS_CLOCK_OFFSET_FILE": str(clock)})
    kms, doomed, survivor, blob = _deletion_setup(server)
    time.sleep(1.5)  # a few scheduler ticks: nothing is due yet
    assert kms.describe_key(KeyId=doomed["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    clock.write_text(str(SEVEN_DAYS_AND_A_BIT))
    _assert_deleted(server, kms, doomed, survivor, blob)


def test_deletion_happens_across_a_restart(make_server: ServerFactory, tmp_path: Path) -> None:
    clock = tmp_path / "clock-offset"
    clock.write_text("0")
    server = make_server(env={"OPENKMS_CLOCK_OFFSET_FILE": str(clock)})
    _, doomed, survivor, blob = _deletion_setup(server)
    server.stop()
    clock.write_text(str(SEVEN_DAYS_AND_A_BIT))
    server.start()
    _assert_deleted(server, server.client(), doomed, survivor, blob)


# --- secrets at rest -----------------------------------------------------------------------------------


def _needles(data_key: bytes, canary: bytes, secret: str) -> dict[str, bytes]:
    return {
        "data key": data_key,
        "data key (base64)": base64.b64encode(data_key),
        "data key (hex)": data_key.hex().encode(),
        "Encrypt plaintext": canary,
        "Encrypt plaintext (base64)": base64.b64encode(canary),
        "secret access key": secret.encode(),
    }


def _scan_files(paths: list[Path], needles: dict[str, bytes]) -> list[str]:
    found = []
    for path in paths:
        content = path.read_bytes()
        found += [f"{name} in {path.name}" for name, needle in needles.items() if needle in content]
    return found


def _scan_postgres(url: str, needles: dict[str, bytes]) -> tuple[list[str], int]:
    import psycopg

    found: list[str] = []
    scanned = 0
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type IN ('bytea', 'text', 'character varying')"
        ).fetchall()
        for table, column in columns:
            for (value,) in conn.execute(f'SELECT "{column}" FROM "{table}"'):
                if value is None:
                    continue
                raw = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
                scanned += 1
                found += [f"{name} in {table}.{column}" for name, needle in needles.items() if needle in raw]
    return found, scanned


def test_no_secrets_at_rest(own_server: Server) -> None:
    kms = own_server.client()
    key = kms.create_key(Description="secrets")["KeyMetadata"]
    data_key = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext={"k": "v"})
    canary = b"OPENKMS-CANARY-" + os.urandom(12).hex().encode()
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=canary)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == canary
    reencrypted = kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=key["Arn"])["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=reencrypted)["Plaintext"] == canary
    assert (
        kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext={"k": "v"})["Plaintext"]
        == (data_key["Plaintext"])
    )
    kms.rotate_key_on_demand(KeyId=key["KeyId"])
    # A failed call with a plaintext in it is audited too.
    kms.disable_key(KeyId=key["KeyId"])
    aws_error(kms.encrypt, KeyId=key["KeyId"], Plaintext=canary)
    # Wait for the asynchronous audit records of the read-only calls.
    wait_for_audit(own_server, ("--key-id", key["KeyId"]), lambda r: len(r) >= 10)
    needles = _needles(data_key["Plaintext"], canary, own_server.secret_key)

    def files() -> list[Path]:
        paths = [p for p in own_server.data_dir.rglob("*") if p.is_file()]
        assert own_server.log_path is not None
        return [*paths, own_server.log_path]

    running = files()
    if own_server.database_url is None:
        names = {p.name for p in running}
        assert {"openkms.db", "openkms.db-wal"} <= names, names
    assert _scan_files(running, needles) == []
    if own_server.database_url:
        found, scanned = _scan_postgres(own_server.database_url, needles)
        assert scanned > 0
        assert found == []
    own_server.stop()  # checkpoints the WAL into the database file
    assert _scan_files(files(), needles) == []
