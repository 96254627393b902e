"""The tamper-evident audit trail end to end, on SQLite and PostgreSQL: `openkms serve` chains every
record and signs digests; `openkms audit verify --json` passes a clean trail and names each change made
directly in the database (a modified, deleted, inserted record, two swapped records, a deleted digest)
with its ids; two processes writing one database concurrently still make one valid chain; a trail
pruned by `--audit-retention-days` verifies; `openkms audit public-keys` gives keys that verify a digest
signature with `openssl dgst -sha256 -verify` and with pyca cryptography from the PEM alone."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.conftest import OPENKMS, Server, create_pg_database, drop_pg_database, launch

REGION = "us-east-1"
DAY = 86400


def openkms(server: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPENKMS, "audit", *args, *server.data_args()],
        capture_output=True,
        text=True,
        env={**os.environ, **server.env},
        check=check,
    )


def verify(server: Server, *args: str) -> tuple[int, dict[str, Any]]:
    result = openkms(server, "verify", "--json", *args, check=False)
    assert result.returncode in (0, 1), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["valid"] == (result.returncode == 0)
    return result.returncode, report


class Db:
    """Direct access to a server's database, as someone tampering with it would have."""

    def __init__(self, server: Server) -> None:
        self.pg = server.database_url is not None
        if self.pg:
            import psycopg

            self.conn: Any = psycopg.connect(server.database_url, autocommit=True)
        else:
            import sqlite3

            self.conn = sqlite3.connect(Path(server.data_dir) / "openkms.db", isolation_level=None)

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(sql.replace("?", "%s") if self.pg else sql, params)
        return list(cur.fetchall()) if cur.description else []

    def records(self, account: str) -> list[dict[str, Any]]:
        cols = ["id", "event_id", "seq", "prev_hash", "hash", "event_name", "event_time", "record"]
        rows = self.run(
            f"SELECT {', '.join(cols)} FROM audit_events WHERE account_id = ? AND region = ? ORDER BY seq",
            (account, REGION),
        )
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def close(self) -> None:
        self.conn.close()


def problems(report: dict[str, Any]) -> list[tuple[str, list[int]]]:
    return [(p["kind"], p.get("recordIds", [])) for p in report["problems"]]


def make_trail(server: Server, calls: int) -> str:
    kms = server.client()
    key = kms.create_key(Description="audit chain")["KeyMetadata"]["KeyId"]
    for _ in range(calls):
        kms.encrypt(KeyId=key, Plaintext=b"x")
    return str(key)


def wait_for_records(db: Db, account: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while len(db.records(account)) < count:  # read-only calls are written within 50 ms
        assert time.time() < deadline, "audit records not written"
        time.sleep(0.05)


def test_tampering_is_reported_as_what_it_is(own_server: Server) -> None:
    server = own_server
    make_trail(server, 6)
    assert "digest 1 of" in openkms(server, "digest").stdout
    make_trail(server, 6)
    db = Db(server)
    try:
        wait_for_records(db, server.account_id, 14)
        assert "digest 2 of" in openkms(server, "digest").stdout
        code, report = verify(server)
        assert code == 0 and report["problems"] == [], report
        (chain,) = [c for c in report["chains"] if c["accountId"] == server.account_id]
        assert chain["recordsChecked"] >= 14 and chain["digestsChecked"] == 2
        rows = db.records(server.account_id)

        # A modified record: its hash no longer matches.
        target = rows[3]
        db.run("UPDATE audit_events SET event_name = 'Decrypt' WHERE id = ?", (target["id"],))
        code, report = verify(server, "--account-id", server.account_id)
        assert code == 1 and problems(report) == [("modified", [target["id"]])]
        assert report["problems"][0]["eventIds"] == [target["event_id"]]
        assert report["problems"][0]["seqs"] == [target["seq"]]
        # a window after it does not see it
        between = (rows[5]["event_time"] + rows[6]["event_time"]) / 2
        since = datetime.fromtimestamp(between, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        window = ("--account-id", server.account_id, "--region", REGION)
        code, report = verify(server, *window, "--start-time", since)
        assert code == 0 and [c["firstSeq"] for c in report["chains"]] == [rows[6]["seq"]], report
        db.run("UPDATE audit_events SET event_name = ? WHERE id = ?", (target["event_name"], target["id"]))

        # A deleted record: a gap in the seq numbers, named with its neighbours.
        gone = rows[5]
        full = db.run("SELECT * FROM audit_events WHERE id = ?", (gone["id"],))[0]
        db.run("DELETE FROM audit_events WHERE id = ?", (gone["id"],))
        code, report = verify(server)
        assert code == 1 and problems(report) == [("deleted", [rows[4]["id"], rows[6]["id"]])]
        assert report["problems"][0]["seqs"] == [gone["seq"]]
        db.run(f"INSERT INTO audit_events VALUES ({', '.join(['?'] * len(full))})", full)

        # An inserted record: a copy of a record put in seq 8's place with a correct hash.
        copy = rows[7]
        forged_id = "00000000-0000-4000-8000-000000000001"
        db.run(
            "INSERT INTO audit_events (event_id, event_time, account_id, region, event_name, key_id, "
            "principal_arn, error_code, record, seq, prev_hash, hash) "
            "SELECT ?, event_time, account_id, region, event_name, key_id, principal_arn, error_code, "
            "record, seq, prev_hash, hash FROM audit_events WHERE id = ?",
            (forged_id, copy["id"]),
        )
        code, report = verify(server)
        assert code == 1 and [p["kind"] for p in report["problems"]] == ["inserted"]
        assert report["problems"][0]["eventIds"] == [forged_id]
        assert report["problems"][0]["seqs"] == [copy["seq"]]
        db.run("DELETE FROM audit_events WHERE event_id = ?", (forged_id,))

        # Two records swapped (their commit order exchanged): a reordered range.
        a, b = rows[2]["id"], rows[4]["id"]
        swap = ("UPDATE audit_events SET id = ? WHERE id = ?",)
        for old, new in ((a, -1), (b, a), (-1, b)):
            db.run(swap[0], (new, old))
        code, report = verify(server)
        assert code == 1 and [p["kind"] for p in report["problems"]] == ["reordered"]
        (p,) = report["problems"]
        assert (p["firstSeq"], p["lastSeq"]) == (rows[2]["seq"], rows[4]["seq"])
        assert {a, b} <= set(p["recordIds"])
        for old, new in ((a, -1), (b, a), (-1, b)):
            db.run(swap[0], (new, old))

        # A deleted digest: the digest chain is broken, the missing number named.
        digest = db.run(
            "SELECT * FROM audit_digests WHERE account_id = ? AND region = ? AND number = 1",
            (server.account_id, REGION),
        )[0]
        db.run("DELETE FROM audit_digests WHERE id = ?", (digest[0],))
        code, report = verify(server)
        assert code == 1 and [p["kind"] for p in report["problems"]] == ["digest-deleted"]
        assert report["problems"][0]["digestNumbers"] == [1]
        db.run(f"INSERT INTO audit_digests VALUES ({', '.join(['?'] * len(digest))})", digest)
        # ... and the newest one: the chain head still names it.
        newest = db.run(
            "SELECT * FROM audit_digests WHERE account_id = ? AND region = ? AND number = 2",
            (server.account_id, REGION),
        )[0]
        db.run("DELETE FROM audit_digests WHERE id = ?", (newest[0],))
        code, report = verify(server)
        assert code == 1 and [(p["kind"], p["digestNumbers"]) for p in report["problems"]] == [
            ("digest-deleted", [2])
        ]
        db.run(f"INSERT INTO audit_digests VALUES ({', '.join(['?'] * len(newest))})", newest)
        code, report = verify(server)
        assert code == 0, report
        text = openkms(server, "verify").stdout
        assert text.strip().endswith("valid")
    finally:
        db.close()


def test_public_keys_verify_a_digest_with_openssl_and_the_pem_alone(
    own_server: Server, tmp_path: Path
) -> None:
    server = own_server
    make_trail(server, 2)
    db = Db(server)
    try:
        wait_for_records(db, server.account_id, 3)
        openkms(server, "digest")
        body, signature, fingerprint = db.run(
            "SELECT body, signature, fingerprint FROM audit_digests WHERE account_id = ? ORDER BY id DESC",
            (server.account_id,),
        )[0]
    finally:
        db.close()
    keys = json.loads(openkms(server, "public-keys", "--json").stdout)["PublicKeys"]
    (key,) = [k for k in keys if k["Fingerprint"] == fingerprint]
    assert key["Region"] == REGION and key["ValidityEndTime"] is None and key["Algorithm"] == "SHA256withRSA"
    assert "PRIVATE" not in json.dumps(keys)
    public = serialization.load_pem_public_key(key["PublicKey"].encode())
    assert isinstance(public, rsa.RSAPublicKey)
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert hashlib.sha256(der).hexdigest() == fingerprint
    public.verify(bytes.fromhex(signature), body.encode(), padding.PKCS1v15(), hashes.SHA256())
    (tmp_path / "key.pem").write_text(key["PublicKey"])
    (tmp_path / "digest.json").write_text(body)
    (tmp_path / "digest.sig").write_bytes(bytes.fromhex(signature))
    openssl = shutil.which("openssl")
    assert openssl is not None
    ok = subprocess.run(
        [
            openssl,
            "dgst",
            "-sha256",
            "-verify",
            str(tmp_path / "key.pem"),
            "-signature",
            str(tmp_path / "digest.sig"),
            str(tmp_path / "digest.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "Verified OK" in ok.stdout
    (tmp_path / "digest.json").write_text(body.replace('"digest"', '"digesT"'))
    bad = subprocess.run(
        [
            openssl,
            "dgst",
            "-sha256",
            "-verify",
            str(tmp_path / "key.pem"),
            "-signature",
            str(tmp_path / "digest.sig"),
            str(tmp_path / "digest.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    # verify with the exported keys only (no stored key read)
    (tmp_path / "keys.json").write_text(json.dumps({"PublicKeys": keys}))
    code, report = verify(server, "--public-keys", str(tmp_path / "keys.json"))
    assert code == 0, report
    (tmp_path / "other.json").write_text(json.dumps({"PublicKeys": []}))
    code, report = verify(server, "--public-keys", str(tmp_path / "other.json"))
    assert code == 1 and {p["kind"] for p in report["problems"]} == {"digest-unknown-key"}
    text = openkms(server, "public-keys").stdout
    assert fingerprint in text and "BEGIN PUBLIC KEY" in text

    # A root key rotation re-seals the signing key, which still signs afterwards.
    subprocess.run(
        [OPENKMS, "operator", "rotate-root-key", *server.data_args()], check=True, capture_output=True
    )
    db = Db(server)
    try:
        ((sealed,),) = db.run(
            "SELECT private_key_sealed FROM audit_signing_keys WHERE fingerprint = ?", (fingerprint,)
        )
        assert bytes(sealed)[:5] == b"\x02\x00\x00\x00\x02"  # keyring version 2
        server.client().list_keys()
        wait_for_records(db, server.account_id, 4)
    finally:
        db.close()
    assert "digest" in openkms(server, "digest").stdout
    code, report = verify(server)
    assert code == 0, report


def test_a_pruned_trail_still_verifies(own_server: Server, tmp_path: Path) -> None:
    server = own_server
    clock = tmp_path / "clock-offset"
    clock.write_text("0")
    server.env.update({"OPENKMS_CLOCK_OFFSET_FILE": str(clock), "OPENKMS_AUDIT_DIGEST_INTERVAL": "0.5"})
    server.extra_args += ["--audit-retention-days", "1"]
    server.restart()
    make_trail(server, 5)
    db = Db(server)
    try:
        wait_for_records(db, server.account_id, 6)
        time.sleep(1.5)  # a digest covers them
        clock.write_text(str(2 * DAY))
        kms = server.client()
        kms.list_keys()  # a record of today, not pruned
        deadline = time.time() + 15
        while not db.run(
            "SELECT id FROM audit_digests WHERE account_id = ? AND kind = 'retention'", (server.account_id,)
        ):
            assert time.time() < deadline, "no retention marker"
            time.sleep(0.2)
        left = db.records(server.account_id)
        while not any(r["event_name"] == "ListKeys" for r in left):  # a read-only call's record is
            assert time.time() < deadline, "ListKeys not recorded"  # written within the flush interval
            time.sleep(0.2)
            left = db.records(server.account_id)
        assert all(r["event_name"] != "Encrypt" for r in left)
        code, report = verify(server)
        assert code == 0, report
        (chain,) = [c for c in report["chains"] if c["accountId"] == server.account_id]
        assert chain["retentionMarkers"] == 1 and chain["prunedThroughSeq"] >= 6
        # a record deleted beyond the retention point still is a deletion
        db.run("DELETE FROM audit_events WHERE id = ?", (left[0]["id"],))
        code, report = verify(server)
        assert code == 1 and [p["kind"] for p in report["problems"]] == ["deleted"]
    finally:
        db.close()


@pytest.fixture
def two_nodes(workdir: Path, backend: str) -> Iterator[tuple[Server, Server]]:
    url = create_pg_database() if backend == "postgres" else None
    first = launch(Path(tempfile.mkdtemp(dir=workdir, prefix="chain-a-")), url)
    second = Server(data_dir=first.data_dir, database_url=url)  # SQLite: two processes on one file
    second.start()
    second.account_id, second.access_key, second.secret_key = (
        first.account_id,
        first.access_key,
        first.secret_key,
    )
    yield first, second
    second.stop()
    first.stop()
    if url:
        drop_pg_database(url)


def test_two_processes_writing_at_once_make_one_valid_chain(two_nodes: tuple[Server, Server]) -> None:
    first, second = two_nodes
    key = first.client().create_key()["KeyMetadata"]["KeyId"]
    errors: list[BaseException] = []
    digested = threading.Event()
    calls = [0] * 4

    def hammer(index: int, node: Server) -> None:
        # At least 40 rounds, and on until a round that begins after the digest taken meanwhile is
        # done (however slow the machine is to start the command): records before and after it.
        try:
            kms = node.client()
            while True:
                after_digest = digested.is_set()
                kms.encrypt(KeyId=key, Plaintext=b"x")
                kms.tag_resource(KeyId=key, Tags=[{"TagKey": "k", "TagValue": "v"}])  # durable writes
                calls[index] += 2
                if calls[index] >= 80 and after_digest:
                    break
        except BaseException as exc:
            errors.append(exc)

    nodes = (first, second, first, second)
    threads = [threading.Thread(target=hammer, args=(i, node)) for i, node in enumerate(nodes)]
    for thread in threads:
        thread.start()
    openkms(first, "digest")  # a digest while both write
    digested.set()
    for thread in threads:
        thread.join()
    assert not errors
    db = Db(first)
    try:
        wait_for_records(db, first.account_id, 1 + sum(calls))
        rows = db.records(first.account_id)
        assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    finally:
        db.close()
    second.stop()  # a clean shutdown digests what is left
    code, report = verify(first)
    assert code == 0, report
    (chain,) = [c for c in report["chains"] if c["accountId"] == first.account_id]
    assert chain["recordsNotYetDigested"] == 0 and chain["digestsChecked"] >= 2
