"""The Shamir root of trust, end to end: ``openkms operator init`` makes an installation whose server
starts sealed (every API refused, readyz says so) until T distinct shares are given with ``openkms
operator unseal``; ``operator seal`` (an administrator's, signed) seals it again; ``operator status``
reports it; ``operator rekey`` moves the keyring between file and shamir (and new shares) without
re-sealing a row; offline tools take ``--unseal-share``; ``/healthz`` and ``/readyz`` in every state
(serving, sealed, database unreachable, migrations not current). SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.conftest import (
    OPENKMS,
    REGION,
    Server,
    create_pg_database,
    drop_pg_database,
    launch,
)
from tests.e2e.storage_scan import keyring_keys, stored_bytes
from tests.e2e.util import aws_error


# -- an independent Shamir combination (Lagrange at 0 over GF(2^8), AES polynomial) ------------------------
def _mul(a: int, b: int) -> int:
    out = 0
    while b:
        if b & 1:
            out ^= a
        a = (a << 1) ^ (0x11B if a & 0x80 else 0)
        b >>= 1
    return out


def _inv(a: int) -> int:
    return next(b for b in range(1, 256) if _mul(a, b) == 1)


def combine_independently(texts: list[str]) -> bytes:
    points = []
    for text in texts:
        raw = base64.b64decode(text)[:-4]  # x ‖ y ‖ 4-byte checksum
        points.append((raw[0], raw[1:]))
    secret = bytearray(len(points[0][1]))
    for i, (x_i, y_i) in enumerate(points):
        coefficient = 1
        for j, (x_j, _) in enumerate(points):
            if j != i:
                coefficient = _mul(coefficient, _mul(x_j, _inv(x_j ^ x_i)))
        for n, byte in enumerate(y_i):
            secret[n] ^= _mul(byte, coefficient)
    return bytes(secret)


# -- helpers ------------------------------------------------------------------------------------------------
def _new_place(workdir: Path, backend: str) -> tuple[Path, str | None]:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix=f"shamir-{backend}-"))
    return data_dir, (create_pg_database() if backend == "postgres" else None)


def _data_args(data_dir: Path, url: str | None) -> list[str]:
    return ["--data-dir", str(data_dir), *(["--database-url", url] if url else [])]


def openkms(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPENKMS, *args], input=stdin, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def init(data_dir: Path, url: str | None, shares: int = 5, threshold: int = 3) -> dict[str, Any]:
    done = openkms(
        "operator",
        "init",
        "--key-shares",
        str(shares),
        "--key-threshold",
        str(threshold),
        "--json",
        *_data_args(data_dir, url),
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    assert len(result["UnsealShares"]) == shares
    return result


def start(data_dir: Path, url: str | None, creds: dict[str, Any] | None = None, *extra: str) -> Server:
    server = Server(data_dir=data_dir, database_url=url, extra_args=list(extra))
    server.start()
    if creds is not None:
        server.account_id = creds["AccountId"]
        server.access_key = creds["AccessKeyId"]
        server.secret_key = creds["SecretAccessKey"]
    return server


def http(
    server: Server, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    url = server.endpoint + path  # the test server's http:// address
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def ready(server: Server) -> tuple[int, dict[str, Any]]:
    status, body, _ = http(server, "GET", "/readyz")
    return status, json.loads(body)


def ready_after_cache(server: Server) -> tuple[int, dict[str, Any]]:
    time.sleep(1.1)  # the database check is believed for a second
    return ready(server)


def unseal(server: Server, share: str, *, stdin: bool = False) -> subprocess.CompletedProcess[str]:
    args = ["operator", "unseal", "--endpoint-url", server.endpoint, "--json"]
    if stdin:
        return openkms(*args, stdin=share + "\n")
    return openkms(*args, "--share", share)


def status(server: Server) -> dict[str, Any]:
    done = openkms("operator", "status", "--endpoint-url", server.endpoint, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def admin_env(creds: dict[str, Any]) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }


def assert_sealed_everywhere(server: Server) -> None:
    kms = server.client()
    error = aws_error(kms.list_keys)
    assert (error.code, error.status) == ("KMSInternalException", 500)
    assert "service is sealed" in error.message
    # Refused before authentication: a request signed with credentials nobody has gets the same answer.
    stranger = server.client(access_key="AKIAIOSFODNN7EXAMPLE", secret_key="x" * 40)
    assert "service is sealed" in aws_error(stranger.list_keys).message
    iam = server.client("iam")
    error = aws_error(iam.list_users)
    assert error.code == "ServiceFailure" and "sealed" in error.message
    code, body, _ = http(server, "POST", "/xks/store/kms/xks/v1/keys/k/metadata", b"{}")
    assert code == 500 and json.loads(body)["errorName"] == "InternalException"
    assert b"sealed" in body
    code, body, headers = http(server, "GET", "/console/keys")
    assert (
        code == 503 and b"The service is sealed" in body and headers["content-type"].startswith("text/html")
    )
    code, body, _ = http(server, "GET", "/healthz")
    assert (code, json.loads(body)) == (200, {"status": "ok"})
    code, report = ready(server)
    assert code == 503 and report["sealed"] is True and report["ready"] is False
    assert any("sealed" in reason for reason in report["reasons"])


@pytest.fixture
def place(workdir: Path, backend: str) -> Iterator[tuple[Path, str | None]]:
    data_dir, url = _new_place(workdir, backend)
    yield data_dir, url
    if url:
        drop_pg_database(url)


# -- the tests ---------------------------------------------------------------------------------------------
def test_init_unseal_seal_restart(place: tuple[Path, str | None]) -> None:
    data_dir, url = place
    creds = init(data_dir, url, 5, 3)
    shares = creds["UnsealShares"]
    again = openkms(
        "operator", "init", "--key-shares", "3", "--key-threshold", "2", *_data_args(data_dir, url)
    )
    assert again.returncode != 0 and "initialized already" in again.stderr
    server = start(data_dir, url, creds)
    try:
        assert_sealed_everywhere(server)
        assert status(server) == {
            "sealed": True,
            "progress": 0,
            "threshold": 3,
            "source": "shamir",
            "rotation": {"state": "idle", "resealed": 0, "total": 0},
        }
        # Two shares (one by --share, one on standard input): still sealed.
        assert json.loads(unseal(server, shares[0]).stdout)["progress"] == 1
        done = unseal(server, shares[1], stdin=True)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"sealed": True, "progress": 2, "threshold": 3}
        assert_sealed_everywhere(server)
        # The same share again, and something that is not a share, are refused; the progress stays.
        done = unseal(server, shares[1])
        assert done.returncode != 0 and "given already" in done.stderr
        mistyped = shares[2][:8] + ("A" if shares[2][8] != "A" else "B") + shares[2][9:]
        done = unseal(server, mistyped)
        assert done.returncode != 0 and "typing mistakes" in done.stderr
        assert mistyped not in done.stderr
        code, body, _ = http(server, "POST", "/sys/unseal", json.dumps({"share": shares[2], "x": 1}).encode())
        assert code == 400 and b"share" in body
        code, _, _ = http(server, "POST", "/sys/unseal", b"{" + b" " * 10_000 + b"}")
        assert code == 413
        assert status(server)["progress"] == 2
        # The third: serving, with the credentials init printed.
        assert json.loads(unseal(server, shares[2]).stdout) == {
            "sealed": False,
            "progress": 0,
            "threshold": 3,
        }
        code, report = ready(server)
        assert code == 200 and report["ready"] is True and report["reasons"] == []
        kms = server.client()
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"sealed under shares")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"sealed under shares"
        assert server.client("iam").list_users()["Users"][0]["UserName"] == "admin"
        # Nothing on disk or in the database rebuilds the root key; the shares do (checked here with an
        # independent combination and unwrapping).
        stored = stored_bytes(server)
        root_key = combine_independently(shares[1:4])
        assert root_key == combine_independently([shares[4], shares[0], shares[2]])
        assert root_key not in stored and all(share.encode() not in stored for share in shares)
        assert 1 in keyring_keys(root_key, _wrapped_keyring(data_dir, url))

        # Sealing needs an administrator's signature.
        code, body, _ = http(server, "POST", "/sys/seal", b"{}")
        assert code in (400, 403) and json.loads(body)["__type"] == "MissingAuthenticationTokenException"
        iam = server.client("iam")
        iam.create_user(UserName="reader")
        reader = iam.create_access_key(UserName="reader")["AccessKey"]
        iam.put_user_policy(
            UserName="reader",
            PolicyName="crypto",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}],
                }
            ),
        )
        not_admin = {
            **creds,
            "AccessKeyId": reader["AccessKeyId"],
            "SecretAccessKey": reader["SecretAccessKey"],
        }
        done = openkms("operator", "seal", "--endpoint-url", server.endpoint, env=admin_env(not_admin))
        assert done.returncode != 0 and "not allowed to seal" in done.stderr
        # Another account's administrator may not seal the service its tenants share.
        other = openkms(
            "admin",
            "create-account",
            "--json",
            *_data_args(data_dir, url),
            "--unseal-share",
            shares[0],
            "--unseal-share",
            shares[1],
            "--unseal-share",
            shares[2],
        )
        assert other.returncode == 0, other.stderr
        done = openkms(
            "operator", "seal", "--endpoint-url", server.endpoint, env=admin_env(json.loads(other.stdout))
        )
        assert done.returncode != 0 and "not allowed to seal" in done.stderr
        done = openkms(
            "operator",
            "seal",
            "--endpoint-url",
            server.endpoint,
            env=admin_env({**creds, "SecretAccessKey": "y" * 40}),
        )
        assert done.returncode != 0 and "signature" in done.stderr.lower()
        assert status(server)["sealed"] is False
        done = openkms("operator", "seal", "--endpoint-url", server.endpoint, env=admin_env(creds))
        assert done.returncode == 0, done.stderr
        assert status(server)["sealed"] is True
        assert "service is sealed" in aws_error(kms.decrypt, CiphertextBlob=blob).message
        assert_sealed_everywhere(server)

        # A restart is sealed again; any other three shares unseal it and old ciphertexts decrypt.
        server.restart()
        assert_sealed_everywhere(server)
        for share in (shares[4], shares[3], shares[1]):
            assert unseal(server, share).returncode == 0
        assert status(server)["sealed"] is False
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"sealed under shares"
    finally:
        server.stop()


def _wrapped_keyring(data_dir: Path, url: str | None) -> bytes:
    if url:
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT wrapped FROM keyring").fetchone()
            assert row is not None
            return bytes(row[0])
    db = sqlite3.connect(data_dir / "openkms.db")
    try:
        return bytes(db.execute("SELECT wrapped FROM keyring").fetchone()[0])
    finally:
        db.close()


def test_shares_of_another_installation_reset_the_progress(
    place: tuple[Path, str | None], workdir: Path
) -> None:
    data_dir, url = place
    mine = init(data_dir, url, 5, 3)["UnsealShares"]
    other_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="shamir-other-"))
    theirs = init(other_dir, None, 5, 3)["UnsealShares"]
    server = start(data_dir, url)
    try:
        assert unseal(server, mine[0]).returncode == 0
        assert unseal(server, mine[1]).returncode == 0
        foreign = next(
            t for t in theirs if base64.b64decode(t)[0] not in {base64.b64decode(m)[0] for m in mine[:2]}
        )
        done = unseal(server, foreign)
        assert done.returncode != 0 and "do not open" in done.stderr and "progress reset" in done.stderr
        assert status(server) == {**status(server), "sealed": True, "progress": 0}
        assert_sealed_everywhere(server)
        for share in mine[2:]:
            assert unseal(server, share).returncode == 0
        assert status(server)["sealed"] is False
    finally:
        server.stop()


def test_offline_tools_take_the_shares(place: tuple[Path, str | None]) -> None:
    data_dir, url = place
    creds = init(data_dir, url, 3, 2)
    shares = creds["UnsealShares"]
    args = ["admin", "create-account", "--json", *_data_args(data_dir, url)]
    done = openkms(*args)
    assert done.returncode != 0 and "--unseal-share" in done.stderr
    done = openkms(*args, "--unseal-share", shares[0])
    assert done.returncode != 0 and "needs 2 distinct shares" in done.stderr
    done = openkms(*args, "--unseal-share", shares[0], "--unseal-share", shares[2])
    assert done.returncode == 0, done.stderr
    second = json.loads(done.stdout)
    done = openkms(*args, "--unseal-share", "-", stdin=f"{shares[1]}\n\n{shares[2]}\n")
    assert done.returncode == 0, done.stderr
    third = json.loads(done.stdout)
    # `serve` never takes shares on its command line.
    done = openkms("serve", *_data_args(data_dir, url), "--unseal-share", shares[0], "--port", "1")
    assert done.returncode != 0 and "takes no shares" in done.stderr
    server = start(data_dir, url)
    try:
        for share in shares[:2]:
            unseal(server, share)
        for account in (second, third):
            kms = boto3.client(
                "kms",
                endpoint_url=server.endpoint,
                region_name=REGION,
                aws_access_key_id=account["AccessKeyId"],
                aws_secret_access_key=account["SecretAccessKey"],
                config=Config(retries={"max_attempts": 1}),
            )
            assert kms.list_keys()["Keys"] == []
    finally:
        server.stop()


def test_rekey_file_shamir_file_keeps_every_ciphertext(workdir: Path, backend: str) -> None:
    data_dir, url = _new_place(workdir, backend)
    server = launch(data_dir, url)
    try:
        kms = server.client()
        blobs = {}
        for n in range(5):
            key_id = kms.create_key(Description=f"k{n}")["KeyMetadata"]["KeyId"]
            blobs[f"text {n}".encode()] = kms.encrypt(KeyId=key_id, Plaintext=f"text {n}".encode())[
                "CiphertextBlob"
            ]
        server.stop()

        def decrypts_all() -> None:
            client = server.client()
            for plaintext, blob in blobs.items():
                assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext

        # file -> shamir 3/2: new shares; the server starts sealed and the shares unseal it.
        done = openkms(
            "operator",
            "rekey",
            "--to",
            "shamir",
            "--key-shares",
            "3",
            "--key-threshold",
            "2",
            "--json",
            *_data_args(data_dir, url),
        )
        assert done.returncode == 0, done.stderr
        first = json.loads(done.stdout)
        assert (first["Source"], first["PreviousSource"], len(first["UnsealShares"])) == ("shamir", "file", 3)
        server.start()
        assert_sealed_everywhere(server)
        for share in first["UnsealShares"][1:]:
            assert unseal(server, share).returncode == 0
        decrypts_all()
        assert status(server)["threshold"] == 2
        server.stop()

        # shamir -> new shares (4/3), with the old ones; the old ones open nothing any more.
        base = ["operator", "rekey", *_data_args(data_dir, url)]
        done = openkms(*base, "--to", "shamir", "--key-shares", "4", "--key-threshold", "3")
        assert done.returncode != 0 and "--unseal-share" in done.stderr
        done = openkms(
            *base,
            "--to",
            "shamir",
            "--key-shares",
            "4",
            "--key-threshold",
            "3",
            "--unseal-share",
            "-",
            stdin="\n".join(first["UnsealShares"][:2]) + "\n",
        )
        assert done.returncode == 0, done.stderr
        second = [
            line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("Unseal share ")
        ]
        assert len(second) == 4
        server.start()
        assert unseal(server, first["UnsealShares"][0]).returncode == 0
        assert unseal(server, first["UnsealShares"][1]).returncode == 0
        done = unseal(server, first["UnsealShares"][2])  # three old shares: the old root key
        assert done.returncode != 0 and "do not open" in done.stderr
        for share in second[:3]:
            assert unseal(server, share).returncode == 0
        decrypts_all()
        server.stop()

        # shamir -> file: a new root key file (the old one is refused: it opens nothing now).
        three = ["--unseal-share", second[3], "--unseal-share", second[1], "--unseal-share", second[0]]
        done = openkms(*base, "--to", "file", *three)
        assert done.returncode != 0 and "exists" in done.stderr  # the first file is still there
        new_file = data_dir / "new-root.key"
        done = openkms(
            *base,
            "--to",
            "file",
            "--new-root-key-file",
            str(new_file),
            *three,
        )
        assert done.returncode == 0, done.stderr
        assert new_file.stat().st_mode & 0o077 == 0
        stale = openkms(
            "admin", "list-users", "--account-id", server.account_id, "--json", *_data_args(data_dir, url)
        )
        assert stale.returncode != 0 and "does not open" in stale.stderr
        server.extra_args = ["--root-key-file", str(new_file)]
        server.start()
        decrypts_all()
        code, report = ready(server)
        assert code == 200 and report["ready"] is True
        done = openkms("operator", "status", "--endpoint-url", server.endpoint, "--json")
        assert json.loads(done.stdout)["source"] == "file"
    finally:
        server.stop()
        if url:
            drop_pg_database(url)


def test_readyz_states(own_server: Server) -> None:
    server = own_server
    code, body, _ = http(server, "GET", "/healthz")
    assert (code, json.loads(body)) == (200, {"status": "ok"})
    for path in ("/healthz", "/readyz"):  # as the README has it
        done = subprocess.run(["curl", "-sf", server.endpoint + path], capture_output=True, text=True)
        assert done.returncode == 0 and json.loads(done.stdout)
    code, report = ready(server)
    assert code == 200, report
    assert report == {
        "ready": True,
        "sealed": False,
        "database": "reachable",
        "keyring": "loaded",
        "migrations": {"applied": report["migrations"]["latest"], "latest": report["migrations"]["latest"]},
        "reasons": [],
    }
    latest = report["migrations"]["latest"]
    # Migrations not current: the newest one's record is gone.
    _sql(server, f"DELETE FROM schema_migrations WHERE version = {latest}")
    code, report = ready_after_cache(server)
    assert code == 503 and report["migrations"]["applied"] == latest - 1
    assert any("migrations" in reason for reason in report["reasons"])
    _sql(server, f"INSERT INTO schema_migrations (version, applied_at) VALUES ({latest}, 0)")
    code, report = ready_after_cache(server)
    assert code == 200, report
    # The database unreachable: the SQLite file moved away, or the PostgreSQL database dropped.
    db_file = server.data_dir / "openkms.db"
    moved = server.data_dir / "moved.db"
    if server.database_url:
        drop_pg_database(server.database_url)
    else:
        db_file.rename(moved)
    try:
        code, report = ready_after_cache(server)
        assert code == 503 and report["database"] == "unreachable" and report["ready"] is False
        assert any("database cannot be reached" in reason for reason in report["reasons"])
        code, body, _ = http(server, "GET", "/healthz")
        assert code == 200  # alive all the same
        # Cheap: a burst of checks is answered from the last one.
        started = time.monotonic()
        for _ in range(50):
            assert ready(server)[0] == 503
        assert time.monotonic() - started < 5
    finally:
        if not server.database_url:
            moved.rename(db_file)
    if not server.database_url:
        code, report = ready_after_cache(server)
        assert code == 200, report


def _sql(server: Server, statement: str) -> None:
    if server.database_url:
        import psycopg

        with psycopg.connect(server.database_url, autocommit=True) as conn:
            conn.execute(statement)
        return
    db = sqlite3.connect(server.data_dir / "openkms.db", isolation_level=None)
    try:
        db.execute(statement)
    finally:
        db.close()


def test_operator_commands_over_tls(place: tuple[Path, str | None]) -> None:
    data_dir, url = place
    creds = init(data_dir, url, 2, 2)
    server = Server(data_dir=data_dir, database_url=url, extra_args=["--tls-self-signed"])
    server.ca_bundle = str(data_dir / "tls" / "ca.pem")
    server.start()
    try:
        endpoint = ["--endpoint-url", server.endpoint]
        done = openkms("operator", "status", *endpoint)
        assert done.returncode != 0 and "certificate" in done.stderr.lower()  # not trusted without the CA
        done = openkms("operator", "status", *endpoint, "--ca-bundle", server.ca_bundle)
        assert (
            done.returncode == 0 and "Sealed: true" in done.stdout and "Unseal progress: 0/2" in done.stdout
        )
        with_ca = {"AWS_CA_BUNDLE": server.ca_bundle}
        for share in creds["UnsealShares"]:
            done = openkms("operator", "unseal", *endpoint, stdin=share + "\n", env=with_ca)
            assert done.returncode == 0, done.stderr
        assert "Sealed: false" in done.stdout
        done = openkms("operator", "seal", *endpoint, env={**admin_env(creds), **with_ca})
        assert done.returncode == 0 and "Sealed: true" in done.stdout, done.stderr
    finally:
        server.stop()


def test_rekey_file_to_pkcs11_to_shamir(workdir: Path, backend: str, tmp_path: Path) -> None:
    from tests.softhsm import init_token, module_path

    token = init_token(tmp_path / "hsm", label="openkms-rekey", pin="1111-user", so_pin="2222-so")
    data_dir, url = _new_place(workdir, backend)
    server = launch(data_dir, url)
    try:
        kms = server.client()
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"moved twice")["CiphertextBlob"]
        server.stop()
        with_pin = {**token.env, "OPENKMS_PKCS11_PIN": token.pin}
        base = ["operator", "rekey", *_data_args(data_dir, url)]
        token_args = ["--pkcs11-module", module_path(), "--pkcs11-token-label", token.label]
        done = openkms(*base, "--to", "pkcs11", *token_args, env=with_pin)
        assert done.returncode == 0, done.stderr
        assert "wrapped under the pkcs11 root of trust" in done.stdout
        # The installation's root of trust is the token now: the old file opens nothing.
        (data_dir / "root.key").unlink()
        server.env = with_pin
        server.start()
        assert server.client().decrypt(CiphertextBlob=blob)["Plaintext"] == b"moved twice"
        assert status(server)["source"] == "pkcs11"
        server.stop()
        done = openkms(
            *base, "--to", "shamir", "--key-shares", "2", "--key-threshold", "2", "--json", env=with_pin
        )
        assert done.returncode == 0, done.stderr
        shares = json.loads(done.stdout)["UnsealShares"]
        server.env = {}
        server.start()
        assert_sealed_everywhere(server)
        for share in shares:
            assert unseal(server, share).returncode == 0
        assert server.client().decrypt(CiphertextBlob=blob)["Plaintext"] == b"moved twice"
    finally:
        server.stop()
        if url:
            drop_pg_database(url)


def test_backup_and_restore_of_a_shamir_installation(place: tuple[Path, str | None], workdir: Path) -> None:
    data_dir, url = place
    creds = init(data_dir, url, 3, 2)
    shares = creds["UnsealShares"]
    server = start(data_dir, url, creds)
    try:
        for share in shares[:2]:
            assert unseal(server, share).returncode == 0
        kms = server.client()
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"backed up")["CiphertextBlob"]
        out = workdir / f"shamir-{os.getpid()}-{key_id}.okb"
        args = ["backup", "create", "--out", str(out), *_data_args(data_dir, url)]
        done = openkms(*args)
        assert done.returncode != 0 and "--unseal-share" in done.stderr
        done = openkms(*args, "--unseal-share", "-", stdin=f"{shares[2]}\n{shares[0]}\n")
        assert done.returncode == 0, done.stderr
    finally:
        server.stop()
    target = Path(tempfile.mkdtemp(dir=workdir, prefix="shamir-restored-"))
    restore = ["restore", "--from", str(out), "--data-dir", str(target)]
    done = openkms(*restore, "--unseal-share", shares[0])
    assert done.returncode != 0 and "2 distinct shares" in done.stderr
    done = openkms(*restore, "--unseal-share", shares[0], "--unseal-share", shares[1])
    assert done.returncode == 0, done.stderr
    restored = start(target, None, creds)
    try:
        assert_sealed_everywhere(restored)
        for share in shares[1:]:
            assert unseal(restored, share).returncode == 0
        assert restored.client().decrypt(CiphertextBlob=blob)["Plaintext"] == b"backed up"
    finally:
        restored.stop()


def test_a_shamir_installation_rotates_with_its_shares(place: tuple[Path, str | None]) -> None:
    """``operator rotate-root-key --unseal-share -`` on a running, unsealed Shamir installation: the
    server reloads the new version (it holds the key its shares rebuilt), every ciphertext made before
    decrypts, ``status`` reports the rotation done, and the keyring keeps only the new version."""
    data_dir, url = place
    creds = init(data_dir, url, 3, 2)
    shares = creds["UnsealShares"]
    server = start(data_dir, url, creds)
    try:
        for share in shares[1:]:
            unseal(server, share)
        kms = server.client()
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        blobs = {
            f"p{n}".encode(): kms.encrypt(KeyId=key_id, Plaintext=f"p{n}".encode())["CiphertextBlob"]
            for n in range(20)
        }
        args = ["operator", "rotate-root-key", *_data_args(data_dir, url), "--unseal-share", "-"]
        refused = openkms(*args[:-2])
        assert refused.returncode != 0 and "--unseal-share" in refused.stderr
        done = openkms(*args, stdin=f"{shares[0]}\n{shares[2]}\n")
        assert done.returncode == 0, done.stderr
        assert "the keyring holds version 2 only" in done.stdout + done.stderr
        assert status(server)["rotation"]["state"] == "done"
        new_key = kms.create_key()["KeyMetadata"]["KeyId"]
        for plaintext, blob in blobs.items():
            assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
        fresh = kms.encrypt(KeyId=new_key, Plaintext=b"after")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=fresh)["Plaintext"] == b"after"
        keys = keyring_keys(combine_independently(shares[:2]), _wrapped_keyring(data_dir, url))
        assert sorted(keys) == [2]
    finally:
        server.stop()
