"""The audit trail as CloudTrail's S3 delivery in a directory: ``openkms serve --audit-export-dir`` (log
files per account and Region every interval, signed digest files, exactly once across a clean restart,
a kill -9, a crash between writing a file and moving the cursor, and two processes on one database),
``openkms audit export`` (a time range), and ``--audit-stdout`` (one JSON line per record).

Everything is checked from the files alone, as a verifier written from AWS's documentation would: the
object names, the gzipped ``{"Records": [...]}``, each log file's SHA-256 (of its uncompressed content)
in a digest, each digest's SHA256withRSA signature over CloudTrail's data-signing string verified with
the Region's public key only (pyca cryptography and ``openssl dgst -sha256 -verify``), and the chain
of ``previousDigest*`` fields. The records are counted against ``openkms audit list`` and against
CloudTrail's LookupEvents of each account and Region."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from openkms.storage.store import normalize_url
from tests.conftest import OPENKMS, Server, create_pg_database, drop_pg_database, launch
from tests.e2e.util import audit_list

LOG_NAME = re.compile(
    r"^AWSLogs/(?P<account>\d{12})/CloudTrail/(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)/"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"(?P=account)_CloudTrail_(?P=region)_(?P<ts>\d{8}T\d{4}Z)_[A-Za-z0-9]{16}\.json\.gz$"
)
DIGEST_NAME = re.compile(
    r"^AWSLogs/(?P<account>\d{12})/CloudTrail-Digest/(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)/"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"(?P=account)_CloudTrail-Digest_(?P=region)_openkms_(?P=region)_(?P<ts>\d{8}T\d{6}Z)\.json\.gz$"
)
ENV = {
    "OPENKMS_SCHEDULER_INTERVAL": "0.2",
    "OPENKMS_AUDIT_EXPORT_INTERVAL": "0.5",
    "OPENKMS_AUDIT_DIGEST_INTERVAL": "2",
    "OPENKMS_AUDIT_EXPORT_LEASE": "2",
}


# --- reading the directory as a CloudTrail consumer does ---------------------------------------------


def log_files(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Every log file by object name: its records (the name checked against the layout)."""
    files = {}
    for path in sorted((out / "AWSLogs").glob("*/CloudTrail/*/*/*/*/*.json.gz")):
        name = path.relative_to(out).as_posix()
        match = LOG_NAME.match(name)
        assert match, name
        assert match["ts"].startswith(match["y"] + match["m"] + match["d"] + "T")
        document = json.loads(gzip.decompress(path.read_bytes()))
        assert list(document) == ["Records"]
        for record in document["Records"]:
            assert record["recipientAccountId"] == match["account"]
            assert record["awsRegion"] == match["region"]
        assert document["Records"], name
        files[name] = document["Records"]
    return files


def digest_files(out: Path) -> dict[tuple[str, str], list[tuple[str, dict[str, Any], bytes, str]]]:
    """Every digest by (account, Region), oldest first: (object name, document, uncompressed bytes,
    hex signature of the sidecar)."""
    chains: dict[tuple[str, str], list[tuple[str, dict[str, Any], bytes, str]]] = {}
    for path in sorted((out / "AWSLogs").glob("*/CloudTrail-Digest/*/*/*/*/*.json.gz")):
        name = path.relative_to(out).as_posix()
        match = DIGEST_NAME.match(name)
        assert match, name
        body = gzip.decompress(path.read_bytes())
        document = json.loads(body)
        signature = path.with_name(path.name + ".sig").read_text().strip()
        chains.setdefault((match["account"], match["region"]), []).append((name, document, body, signature))
    for chain in chains.values():
        chain.sort(key=lambda item: item[1]["digestEndTime"])
    return chains


def public_keys(server: Server) -> dict[str, bytes]:
    """The verification keys by fingerprint, as PEM, from ``openkms audit public-keys --json`` (public
    material only)."""
    done = subprocess.run(
        [OPENKMS, "audit", "public-keys", *server.data_args(), "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    return {k["Fingerprint"]: k["PublicKey"].encode() for k in json.loads(done.stdout)["PublicKeys"]}


def string_to_sign(document: dict[str, Any], body: bytes) -> bytes:
    """CloudTrail's data-signing string, from AWS's documentation of custom validation."""
    previous = document["previousDigestSignature"]
    return "\n".join(
        [
            document["digestEndTime"],
            f"{document['digestS3Bucket']}/{document['digestS3Object']}",
            hashlib.sha256(body).hexdigest(),
            previous if previous is not None else "null",
        ]
    ).encode()


def verify_digests(out: Path, keys: dict[str, bytes], openssl_checks: int = 2) -> dict[str, str]:
    """Check every digest and the log files it lists; returns log file object -> digest object (each
    log file listed once)."""
    listed: dict[str, str] = {}
    checked = 0
    for (account, _region), chain in digest_files(out).items():
        previous: tuple[str, bytes, str] | None = None
        previous_end = ""
        for name, document, body, signature in chain:
            assert document["awsAccountId"] == account
            assert document["digestS3Bucket"] == "openkms"
            assert document["digestS3Object"] == name
            assert document["digestSignatureAlgorithm"] == "SHA256withRSA"
            assert document["digestEndTime"] >= document["digestStartTime"]
            pem = keys[document["digestPublicKeyFingerprint"]]
            key = serialization.load_pem_public_key(pem)
            assert isinstance(key, rsa.RSAPublicKey)
            message = string_to_sign(document, body)
            key.verify(bytes.fromhex(signature), message, padding.PKCS1v15(), hashes.SHA256())
            if checked < openssl_checks:
                openssl_verify(pem, message, bytes.fromhex(signature))
                checked += 1
            if previous is None:
                assert document["previousDigestSignature"] is None
                assert document["previousDigestS3Object"] is None
            else:
                assert document["previousDigestS3Bucket"] == "openkms"
                assert document["previousDigestS3Object"] == previous[0]
                assert document["previousDigestHashAlgorithm"] == "SHA-256"
                assert document["previousDigestHashValue"] == hashlib.sha256(previous[1]).hexdigest()
                assert document["previousDigestSignature"] == previous[2]
                assert document["digestStartTime"] == previous_end
            previous_end = document["digestEndTime"]
            previous = (name, body, signature)
            for entry in document["logFiles"]:
                assert entry["s3Bucket"] == "openkms" and entry["hashAlgorithm"] == "SHA-256"
                assert entry["s3Object"] not in listed, entry["s3Object"]
                listed[entry["s3Object"]] = name
                content = gzip.decompress((out / entry["s3Object"]).read_bytes())
                assert hashlib.sha256(content).hexdigest() == entry["hashValue"]
                times = [r["eventTime"] for r in json.loads(content)["Records"]]
                assert entry["oldestEventTime"] == min(times) and entry["newestEventTime"] == max(times)
    return listed


def openssl_verify(pem: bytes, message: bytes, signature: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "key.pem").write_bytes(pem)
        (folder / "data").write_bytes(message)
        (folder / "sig").write_bytes(signature)
        done = subprocess.run(
            ["openssl", "dgst", "-sha256", "-verify", "key.pem", "-signature", "sig", "data"],
            cwd=folder,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0 and "Verified OK" in done.stdout, done.stdout + done.stderr


# --- the trail -------------------------------------------------------------------------------------------


def trail_ids(server: Server) -> list[str]:
    """The event ids of every record of an account and Region (those a CloudTrail trail delivers)."""
    return [
        r["eventID"]
        for r in audit_list(server, "--limit", "1000000")
        if r.get("recipientAccountId") and r.get("awsRegion")
    ]


def exported_ids(out: Path) -> list[str]:
    return [r["eventID"] for records in log_files(out).values() for r in records]


def wait_exported(server: Server, out: Path, timeout: float = 20.0) -> list[str]:
    """Wait until the files hold every record of the trail; returns their event ids (duplicates kept)."""
    deadline = time.time() + timeout
    while True:
        trail, ids = set(trail_ids(server)), exported_ids(out)
        if trail == set(ids) or time.time() > deadline:
            assert set(ids) == trail, (len(trail - set(ids)), len(set(ids) - trail))
            return ids
        time.sleep(0.3)


def calls(server: Server, n: int, region: str = "us-east-1", **creds: str) -> list[str]:
    """A key made and used ``n`` times; the calls' request ids."""
    kms = server.client(region=region, **creds)
    made = kms.create_key(Description="export")
    ids = [made["ResponseMetadata"]["RequestId"]]
    for i in range(n):
        done = kms.encrypt(KeyId=made["KeyMetadata"]["KeyId"], Plaintext=f"record {i}".encode())
        ids.append(done["ResponseMetadata"]["RequestId"])
    return ids


def lookup_ids(server: Server, region: str, **creds: str) -> set[str]:
    """The event ids LookupEvents gives in one account and Region, but those of the lookup itself
    (LookupEvents calls are recorded too, after the files being compared were written)."""
    pages = server.client("cloudtrail", region=region, **creds).get_paginator("lookup_events").paginate()
    return {
        event["EventId"]
        for page in pages
        for event in page["Events"]
        if event["EventSource"] != "cloudtrail.amazonaws.com"
    }


def exported_ids_of(out: Path, account: str, region: str) -> list[str]:
    return [
        r["eventID"]
        for name, records in log_files(out).items()
        if name.split("/")[1] == account and name.split("/")[3] == region
        for r in records
    ]


def stdout_records(server: Server) -> list[dict[str, Any]]:
    assert server.log_path is not None
    records = []
    for line in server.log_path.read_text().splitlines():
        if line.startswith('{"eventVersion"'):
            records.append(json.loads(line))
    return records


def _engine(server: Server) -> sa.engine.Engine:
    url = server.database_url or f"sqlite:///{server.data_dir / 'openkms.db'}"
    return sa.create_engine(normalize_url(url))


def simulate_crash_after_write(server: Server) -> str:
    """Put the database back as a crash between writing the newest undigested log file and moving the
    cursor leaves it: the plan of that file's range pending, the file on disk, no row of it."""
    engine = _engine(server)
    try:
        with engine.begin() as conn:
            row = conn.exec_driver_sql(
                "SELECT s3_object, account_id, region, first_id, last_id FROM audit_export_files "
                "WHERE digest_end IS NULL ORDER BY last_id DESC LIMIT 1"
            ).first()
            assert row is not None, "no log file awaits its digest"
            name, account, region, first, last = row
            stamp = re.search(r"_(\d{8}T\d{4})Z_", name)
            assert stamp is not None
            at = dt.datetime.strptime(stamp[1], "%Y%m%dT%H%M").replace(tzinfo=dt.UTC).timestamp() + 30
            conn.execute(sa.text("DELETE FROM audit_export_files WHERE s3_object = :name"), {"name": name})
            conn.execute(
                sa.text(
                    "UPDATE audit_export_state SET exported_id = :first, pending_id = :last, "
                    "pending_at = :at WHERE account_id = :account AND region = :region"
                ),
                {"first": first - 1, "last": last, "at": at, "account": account, "region": region},
            )
    finally:
        engine.dispose()
    return str(name)


def test_continuous_export_exactly_once_across_restarts_crashes_and_two_processes(
    workdir: Path, backend: str
) -> None:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix=f"{backend}-export-"))
    out = data_dir.parent / f"{data_dir.name}-files"
    url = create_pg_database() if backend == "postgres" else None
    args = ["--audit-export-dir", str(out), "--audit-stdout"]
    server = launch(data_dir, url, extra_args=args, env=dict(ENV))
    twin = Server(data_dir=data_dir, database_url=url, extra_args=args, env=dict(ENV))
    try:
        # Three trails: two Regions of one account, and a second account.
        other = server.new_account()
        sent = calls(server, 12) + calls(server, 3, region="us-west-2")
        sent += calls(server, 3, access_key=other["AccessKeyId"], secret_key=other["SecretAccessKey"])
        ids = wait_exported(server, out)
        assert len(ids) == len(set(ids))
        names = set(log_files(out))
        assert {n.split("/")[1] for n in names} == {server.account_id, other["AccountId"]}
        assert {n.split("/")[3] for n in names} >= {"us-east-1", "us-west-2"}

        # --audit-stdout: each record stored, as stored, one JSON line.
        lines = stdout_records(server)
        assert {r["requestID"] for r in lines} >= set(sent)
        assert {r["eventID"] for r in lines} <= set(trail_ids(server)) | {
            r["eventID"] for r in audit_list(server, "--limit", "1000000")
        }

        # A clean restart, then a kill -9 while calls go on, then a second process on the database.
        server.restart()
        calls(server, 5)
        server.kill9()
        server.start()
        twin.start()
        twin.account_id, twin.access_key, twin.secret_key = (
            server.account_id,
            server.access_key,
            server.secret_key,
        )
        calls(server, 5)
        calls(twin, 5, region="us-west-2")
        ids = wait_exported(server, out)
        assert len(ids) == len(set(ids)), "a record exported twice"

        # A crash between writing a file and moving the cursor: the same file is written again.
        twin.stop()
        server.stop()
        server.env["OPENKMS_AUDIT_DIGEST_INTERVAL"] = "3600"
        server.start()
        calls(server, 4)
        wait_exported(server, out)
        server.kill9()
        before = set(log_files(out))
        rewritten = simulate_crash_after_write(server)
        server.env["OPENKMS_AUDIT_DIGEST_INTERVAL"] = ENV["OPENKMS_AUDIT_DIGEST_INTERVAL"]
        server.start()
        calls(server, 2)
        ids = wait_exported(server, out)
        assert len(ids) == len(set(ids)), "a record exported twice after the crash"
        assert rewritten in log_files(out) and before <= set(log_files(out))
        # Every trail's files hold exactly what LookupEvents finds there, once each.
        other_creds = {"access_key": other["AccessKeyId"], "secret_key": other["SecretAccessKey"]}
        for account, region, creds in (
            (server.account_id, "us-east-1", {}),
            (server.account_id, "us-west-2", {}),
            (other["AccountId"], "us-east-1", other_creds),
        ):
            files = exported_ids_of(out, account, region)
            assert len(files) == len(set(files)) and set(files) == lookup_ids(server, region, **creds)

        # A clean stop writes the last digest: every file is listed once, every digest verifies.
        server.stop()
        listed = verify_digests(out, public_keys(server))
        assert set(listed) == set(log_files(out))
        assert all(len(chain) >= 2 for chain in digest_files(out).values())
    finally:
        twin.stop()
        server.stop()
        if url:
            drop_pg_database(url)


README_CHECK = r"""
gunzip -c "$D" > digest.json
field() { jq -r "$1" digest.json; }
printf '%s\n%s/%s\n%s\n%s' "$(field .digestEndTime)" openkms "$(field .digestS3Object)" \
  "$(sha256sum < digest.json | cut -d' ' -f1)" "$(field '.previousDigestSignature // "null"')" > signed.txt
xxd -r -p "$D.sig" > sig.bin
openssl dgst -sha256 -verify key.pem -signature sig.bin signed.txt
"""


def readme_check(digest: Path, pem: bytes) -> str:
    """The README's shell check of a digest with openssl and the public key alone."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "key.pem").write_bytes(pem)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", README_CHECK],
            cwd=tmp,
            env={"D": str(digest), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
        )
        return done.stdout + done.stderr


def export_range(server: Server, out: Path, start: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``openkms audit export`` of the records from ``start`` into ``out``."""
    command = [OPENKMS, "audit", "export", "--out-dir", str(out), "--start-time", start, *server.data_args()]
    return subprocess.run([*command, *args], check=True, capture_output=True, text=True)


def test_audit_export_command_writes_a_time_range(own_server: Server) -> None:
    server = own_server
    calls(server, 4)
    middle = time.time()
    time.sleep(1.1)
    calls(server, 6, region="eu-west-1")
    time.sleep(0.5)  # the read-only records reach the database
    out = server.data_dir.parent / f"{server.data_dir.name}-range"
    end = dt.datetime.fromtimestamp(time.time() + 3600, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = export_range(server, out, str(int(middle) + 1), "--end-time", end, "--json")
    counts = json.loads(done.stdout)
    in_range = [
        r["eventID"]
        for r in audit_list(server, "--start-time", str(int(middle) + 1), "--limit", "100000")
        if r.get("recipientAccountId")
    ]
    ids = exported_ids(out)
    assert sorted(ids) == sorted(in_range) and counts["records"] == len(ids) == 7
    assert counts["digests"] == 1 and counts["logFiles"] == len(log_files(out))
    assert {n.split("/")[3] for n in log_files(out)} == {"eu-west-1"}
    listed = verify_digests(out, public_keys(server))
    assert set(listed) == set(log_files(out))
    # Exporting again writes the same log files (same names, same bytes).
    first = {name: (out / name).read_bytes() for name in log_files(out)}
    export_range(server, out, str(int(middle) + 1))
    assert {name: (out / name).read_bytes() for name in log_files(out)} == first
    # The README's check, as written, with the PEM of `openkms audit public-keys --json`.
    name, document, _, _ = digest_files(out)[(server.account_id, "eu-west-1")][-1]
    pem = public_keys(server)[document["digestPublicKeyFingerprint"]]
    assert readme_check(out / name, pem).strip() == "Verified OK"
    tampered = out / "tampered.json.gz"
    body = gzip.decompress((out / name).read_bytes()).replace(b'"logFiles":[{', b'"logFiles":[{"x":1,')
    tampered.write_bytes(gzip.compress(body))
    tampered.with_name(tampered.name + ".sig").write_text((out / (name + ".sig")).read_text())
    assert "Verification failure" in readme_check(tampered, pem)


def test_retention_prunes_only_exported_records(workdir: Path, backend: str) -> None:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix=f"{backend}-retention-"))
    out = data_dir.parent / f"{data_dir.name}-files"
    url = create_pg_database() if backend == "postgres" else None
    # Records older than ~1 s are due for pruning; the export runs once at start, then not for an hour.
    args = ["--audit-export-dir", str(out), "--audit-retention-days", "0.00001"]
    env = {
        **ENV,
        "OPENKMS_AUDIT_EXPORT_INTERVAL": "3600",
        "OPENKMS_AUDIT_DIGEST_INTERVAL": "0.5",
        "OPENKMS_AUDIT_EXPORT_MARGIN": "0.5",
    }
    server = launch(data_dir, url, extra_args=args, env=env)
    try:
        time.sleep(1.0)  # the first export run has passed
        calls(server, 5)
        time.sleep(4.0)  # digested and old enough, but not exported: kept
        kept = set(trail_ids(server))
        assert len(kept) >= 6 and not kept & set(exported_ids(out))
        server.stop()
        server.env["OPENKMS_AUDIT_EXPORT_INTERVAL"] = "0.5"
        server.start()
        deadline = time.time() + 20
        while kept & set(trail_ids(server)) and time.time() < deadline:
            time.sleep(0.3)
        assert not kept & set(trail_ids(server)), "exported records not pruned"
        ids = exported_ids(out)
        assert kept <= set(ids) and len(ids) == len(set(ids))
    finally:
        server.stop()
        if url:
            drop_pg_database(url)
