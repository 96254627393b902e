"""Backup, restore and migration (``openkms backup create|inspect``, ``openkms restore``, ``openkms
migrate``) of a real installation: a server holding accounts, IAM users, keys of several kinds (imported
material among them), aliases, grants, policies and tags is backed up while a writer keeps creating keys
and encrypting; the backup restored onto a new data directory and onto PostgreSQL serves with the
original root key file: 1,000 ciphertexts made before decrypt, the audit trail and the principals (their
access keys sign SigV4 requests) are intact. A damaged, truncated or forged backup, a wrong root key and
a non-empty target are refused with a clear message and write nothing; a SQLite installation moves to
PostgreSQL (``openkms migrate``) and a PostgreSQL one back onto SQLite through a backup; an installation
whose root key is in a PKCS#11 token (SoftHSM2) restores with the token's PIN alone."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OPENKMS, Server, create_pg_database, drop_pg_database, free_port, launch
from tests.e2e.importing import import_material
from tests.e2e.util import audit_list, wait_for_audit
from tests.softhsm import init_token, module_path

CIPHERTEXTS = 1000
Completed = subprocess.CompletedProcess[str]
POLICY_TEMPLATE = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::{account}:root"},
         "Action": "kms:*", "Resource": "*"},
    ],
}  # fmt: skip
USER_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
)


IMPORTED: list[bytes] = []  # the material imported into the source's EXTERNAL key


@dataclass
class RestoredServer(Server):
    """A server of a restored installation: served (and administered) with the original root key."""

    root_key_file: Path | None = None

    def data_args(self) -> list[str]:
        args = super().data_args()
        return [*args, "--root-key-file", str(self.root_key_file)] if self.root_key_file else args


def run(*args: str, check: bool = True, env: dict[str, str] | None = None) -> Completed:
    result = subprocess.run([OPENKMS, *args], capture_output=True, text=True, env=env)
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


@dataclass
class Source:
    """The installation backed up and what it held before the backup."""

    server: Server
    backup: Path
    ciphertexts: list[tuple[str, bytes, bytes]]  # (key id, plaintext, ciphertext)
    keys: dict[str, str]  # kind -> key id
    users: list[dict[str, str]]  # IAM users' access keys (AccountId, UserName, AccessKeyId, Secret…)
    accounts: list[dict[str, str]]
    audited_key: str
    audit_records: list[dict[str, Any]]
    keys_before: int
    keys_after: int
    writer_ops: int
    written: list[tuple[str, bytes, bytes]] = field(default_factory=list)

    @property
    def root_key(self) -> Path:
        return self.server.data_dir / "root.key"


def populate(server: Server) -> tuple[dict[str, str], list[dict[str, str]], list[dict[str, str]]]:
    kms = server.client()
    keys: dict[str, str] = {}
    keys["symmetric"] = kms.create_key(Description="symmetric", Tags=[{"TagKey": "team", "TagValue": "a"}])[
        "KeyMetadata"
    ]["KeyId"]
    keys["rsa"] = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    keys["ecc"] = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    keys["hmac"] = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    keys["imported"] = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    IMPORTED.append(os.urandom(32))
    import_material(kms, keys["imported"], IMPORTED[0])
    kms.create_alias(AliasName="alias/backup-test", TargetKeyId=keys["symmetric"])
    kms.tag_resource(KeyId=keys["rsa"], Tags=[{"TagKey": "env", "TagValue": "prod"}])
    policy = json.loads(json.dumps(POLICY_TEMPLATE).replace("{account}", server.account_id))
    policy["Statement"][0]["Sid"] = "restored-policy"
    kms.put_key_policy(KeyId=keys["symmetric"], PolicyName="default", Policy=json.dumps(policy))
    accounts = [server.new_account() for _ in range(2)]
    users = []
    for account in [server.account_id, accounts[0]["AccountId"]]:
        name = f"u{uuid.uuid4().hex[:8]}"
        server.admin("create-user", "--account-id", account, "--user-name", name)
        server.admin(
            "put-user-policy", "--account-id", account, "--user-name", name,
            "--policy-name", "kms", "--policy-document", USER_POLICY,
        )  # fmt: skip
        users.append(server.admin("create-access-key", "--account-id", account, "--user-name", name))
    user_arn = f"arn:aws:iam::{server.account_id}:user/{users[0]['UserName']}"
    kms.create_grant(KeyId=keys["symmetric"], GranteePrincipal=user_arn, Operations=["Encrypt", "Decrypt"])
    return keys, users, accounts


def check_restored(source: Source, restored: Server) -> None:
    """Everything the source held before the backup is served by ``restored``."""
    kms = restored.client()
    for key_id, plaintext, blob in source.ciphertexts:
        answer = kms.decrypt(CiphertextBlob=blob)
        assert answer["Plaintext"] == plaintext and answer["KeyId"].endswith(key_id)
    # Keys of every kind work; the imported material, aliases, tags, policies and grants are there.
    message = b"restored"
    signature = kms.sign(KeyId=source.keys["rsa"], Message=message, SigningAlgorithm="RSASSA_PSS_SHA_256")
    assert kms.verify(
        KeyId=source.keys["rsa"], Message=message, Signature=signature["Signature"],
        SigningAlgorithm="RSASSA_PSS_SHA_256",
    )["SignatureValid"]  # fmt: skip
    ecc = kms.sign(KeyId=source.keys["ecc"], Message=message, SigningAlgorithm="ECDSA_SHA_256")
    assert kms.verify(
        KeyId=source.keys["ecc"],
        Message=message,
        Signature=ecc["Signature"],
        SigningAlgorithm="ECDSA_SHA_256",
    )["SignatureValid"]
    mac = kms.generate_mac(KeyId=source.keys["hmac"], Message=message, MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert kms.verify_mac(KeyId=source.keys["hmac"], Message=message, MacAlgorithm="HMAC_SHA_256", Mac=mac)[
        "MacValid"
    ]
    imported = kms.encrypt(KeyId=source.keys["imported"], Plaintext=message)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=imported)["Plaintext"] == message
    assert kms.describe_key(KeyId=source.keys["imported"])["KeyMetadata"]["Origin"] == "EXTERNAL"
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    assert aliases["alias/backup-test"] == source.keys["symmetric"]
    assert kms.list_resource_tags(KeyId=source.keys["rsa"])["Tags"] == [{"TagKey": "env", "TagValue": "prod"}]
    assert (
        "restored-policy"
        in kms.get_key_policy(KeyId=source.keys["symmetric"], PolicyName="default")["Policy"]
    )
    grants = kms.list_grants(KeyId=source.keys["symmetric"])["Grants"]
    assert [g["Operations"] for g in grants] == [["Encrypt", "Decrypt"]]
    # Every key of the restored snapshot works (no key without its material), and the snapshot holds
    # the keys made before the backup started, at most those made before it ended.
    listed = [k["KeyId"] for page in kms.get_paginator("list_keys").paginate() for k in page["Keys"]]
    assert source.keys_before <= len(listed) <= source.keys_after
    for key_id in listed:
        spec = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        if spec["KeySpec"] == "SYMMETRIC_DEFAULT" and spec["KeyState"] == "Enabled":
            kms.encrypt(KeyId=key_id, Plaintext=b"x")
    # Principals: every account's administrator and the IAM users sign SigV4 requests as before.
    for account in source.accounts:
        other = restored.client(access_key=account["AccessKeyId"], secret_key=account["SecretAccessKey"])
        assert other.list_keys()["Keys"] == []
    for user in source.users:
        sts = restored.client("sts", access_key=user["AccessKeyId"], secret_key=user["SecretAccessKey"])
        assert sts.get_caller_identity()["Arn"].endswith(f":user/{user['UserName']}")
    as_user = restored.client(
        access_key=source.users[0]["AccessKeyId"], secret_key=source.users[0]["SecretAccessKey"]
    )
    as_user.encrypt(KeyId=source.keys["symmetric"], Plaintext=b"user")
    # The audit trail of before the backup.
    records = audit_list(restored, "--key-id", source.audited_key)
    before = {r["eventID"] for r in source.audit_records}
    assert before and before <= {r["eventID"] for r in records}


@pytest.fixture(scope="module")
def source(workdir: Path) -> Iterator[Source]:
    """A SQLite installation with data, backed up while a writer thread creates keys and encrypts."""
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="backup-src-"))
    server = launch(data_dir, None)
    keys, users, accounts = populate(server)
    kms = server.client()
    ciphertexts = []
    key_ids = [keys["symmetric"], keys["imported"]]
    for i in range(CIPHERTEXTS):
        plaintext = os.urandom(16) + str(i).encode()
        key_id = key_ids[i % 2]
        ciphertexts.append(
            (key_id, plaintext, kms.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"])
        )
    audited = keys["hmac"]
    records = wait_for_audit(server, ("--key-id", audited), lambda r: len(r) >= 1)

    stop = threading.Event()
    ops = [0]
    errors: list[BaseException] = []

    def writer() -> None:
        client = server.client()
        try:
            while not stop.is_set():
                key_id = client.create_key()["KeyMetadata"]["KeyId"]
                client.encrypt(KeyId=key_id, Plaintext=b"during the backup")
                ops[0] += 1
        except BaseException as exc:
            errors.append(exc)

    listed = lambda: len(kms.list_keys(Limit=1000)["Keys"])  # noqa: E731
    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.5)
    keys_before = listed()
    ops_before = ops[0]
    out = data_dir.parent / f"{data_dir.name}.okb"
    result = run("backup", "create", "--out", str(out), "--data-dir", str(data_dir))
    writer_ops = ops[0] - ops_before
    keys_after = listed()
    time.sleep(0.3)
    stop.set()
    thread.join()
    assert not errors, errors
    assert "wrote" in result.stdout and "backing up: 100%" in result.stderr
    yield Source(
        server, out, ciphertexts, keys, users, accounts, audited, records, keys_before, keys_after, writer_ops
    )
    server.stop()


def test_backup_is_taken_while_the_server_writes(source: Source) -> None:
    assert source.writer_ops > 0  # CreateKey and Encrypt answered while the backup ran
    assert (source.backup.stat().st_mode & 0o777) == 0o600
    assert not [p for p in source.backup.parent.iterdir() if p.name.endswith(".partial")]
    info = json.loads(run("backup", "inspect", str(source.backup), "--json").stdout)
    assert info["sha256_ok"] is True and info["hmac_ok"] is None
    assert info["backend"] == "sqlite" and info["root_key_source"] == "file"
    assert info["tables"]["keyring"] == 1 and info["tables"]["users"] >= 2 and info["tables"]["grants"] == 1
    assert source.keys_before <= info["tables"]["keys"] <= source.keys_after
    assert info["tables"]["audit_events"] > CIPHERTEXTS
    assert "changes" not in info["tables"] and "schema_migrations" not in info["tables"]
    text = run("backup", "inspect", str(source.backup)).stdout
    assert "SHA-256:        ok" in text and "HMAC:           not checked" in text
    verified = run(
        "backup", "inspect", str(source.backup), "--json", "--verify", "--root-key-file", str(source.root_key)
    )
    assert json.loads(verified.stdout)["hmac_ok"] is True
    # Sealed columns stay sealed and the keyring stays wrapped: no key material in the clear.
    raw = source.backup.read_bytes()
    head_end = raw.index(b"\n", len(b"OPENKMS-BACKUP\n")) + 1
    header = json.loads(raw[len(b"OPENKMS-BACKUP\n") : head_end])
    body = gzip.decompress(raw[head_end : -(len(b"OPENKMS-TRAILER sha256= hmac=\n") + 128)])
    material = IMPORTED[0]
    assert material not in body and base64.b64encode(material) not in body
    sections: dict[str, tuple[list[str], list[list[Any]]]] = {}
    for line in body.splitlines():
        doc = json.loads(line)
        if isinstance(doc, dict) and "table" in doc:
            current = sections.setdefault(doc["table"], (doc["columns"], []))
        elif isinstance(doc, list):
            current[1].append(doc)
    columns, materials = sections["key_materials"]
    sealed = [row[columns.index("sealed")] for row in materials]
    assert sealed and all(base64.b64decode(v["b64"])[:1] == b"\x02" for v in sealed if v is not None)
    columns, rings = sections["keyring"]
    assert [r[columns.index("wrapped")]["b64"] for r in rings] == [header["keyring"]["wrapped"]]


def _restore_and_serve(source: Source, data_dir: Path, url: str | None) -> RestoredServer:
    target = ["--database-url", url] if url else ["--data-dir", str(data_dir)]
    result = run("restore", "--from", str(source.backup), *target, "--root-key-file", str(source.root_key))
    assert f"--root-key-file {source.root_key.resolve()}" in result.stdout
    assert "restoring: 100%" in result.stderr
    restored = RestoredServer(data_dir=data_dir, database_url=url, root_key_file=source.root_key)
    restored.account_id, restored.access_key, restored.secret_key = (
        source.server.account_id,
        source.server.access_key,
        source.server.secret_key,
    )
    restored.start()
    return restored


def test_restore_onto_a_new_data_directory(source: Source, workdir: Path) -> None:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="backup-dst-")) / "data"
    restored = _restore_and_serve(source, data_dir, None)
    try:
        check_restored(source, restored)
        assert not (data_dir / "root.key").exists()  # the root key stays the original's
    finally:
        restored.stop()
    # A wrong root key file: the restored installation does not start, with a clear message.
    wrong = data_dir.parent / "wrong.key"
    wrong.write_bytes(os.urandom(32))
    wrong.chmod(0o600)
    result = subprocess.run(
        [OPENKMS, "serve", "--data-dir", str(data_dir), "--root-key-file", str(wrong),
         "--port", str(free_port())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "the root key does not open this installation's keyring" in result.stderr
    assert "Traceback" not in result.stderr


def test_restore_onto_postgresql_and_back_onto_sqlite(source: Source, workdir: Path) -> None:
    url = create_pg_database()
    try:
        restored = _restore_and_serve(source, Path(tempfile.mkdtemp(dir=workdir, prefix="backup-pg-")), url)
        try:
            check_restored(source, restored)
            # New rows get new ids (the sequences moved past the restored ones).
            kms = restored.client()
            new_key = kms.create_key(Description="after the restore")["KeyMetadata"]["KeyId"]
            assert wait_for_audit(restored, ("--key-id", new_key), lambda r: len(r) == 1)
            # From PostgreSQL, a backup restored onto SQLite.
            pg_backup = workdir / f"pg-{uuid.uuid4().hex[:8]}.okb"
            run(
                "backup", "create", "--out", str(pg_backup), "--database-url", url,
                "--root-key-file", str(source.root_key),
            )  # fmt: skip
            assert (
                json.loads(run("backup", "inspect", str(pg_backup), "--json").stdout)["backend"]
                == "postgresql"
            )
        finally:
            restored.stop()
    finally:
        drop_pg_database(url)
    back = Source(**{**source.__dict__, "backup": pg_backup})
    back.keys_after += 1  # the key made after the restore
    again = _restore_and_serve(back, Path(tempfile.mkdtemp(dir=workdir, prefix="backup-back-")) / "d", None)
    try:
        check_restored(back, again)
        assert (
            again.client().describe_key(KeyId="alias/backup-test")["KeyMetadata"]["KeyId"]
            == source.keys["symmetric"]
        )
    finally:
        again.stop()


def _damaged(source: Source, workdir: Path) -> list[tuple[str, Path]]:
    raw = source.backup.read_bytes()
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x01
    header_end = raw.index(b"\n", len(b"OPENKMS-BACKUP\n")) + 1
    files = {
        "flipped": bytes(flipped),
        "truncated": raw[: len(raw) * 2 // 3],
        "no-trailer": raw[:-10],
        "header": raw[: header_end - 30] + b"X" + raw[header_end - 29 :],
    }
    paths = []
    for name, data in files.items():
        path = workdir / f"damaged-{name}-{uuid.uuid4().hex[:6]}.okb"
        path.write_bytes(data)
        paths.append((name, path))
    return paths


def test_a_damaged_backup_is_refused_by_inspect_and_restore(source: Source, workdir: Path) -> None:
    for name, path in _damaged(source, workdir):
        inspected = run("backup", "inspect", str(path), check=False)
        assert inspected.returncode == 1, name
        assert "damaged" in inspected.stderr or "truncated" in inspected.stderr, (name, inspected.stderr)
        assert "Traceback" not in inspected.stderr
        target = workdir / f"target-{uuid.uuid4().hex[:6]}"
        result = run(
            "restore", "--from", str(path), "--data-dir", str(target),
            "--root-key-file", str(source.root_key), check=False,
        )  # fmt: skip
        assert result.returncode == 1, name
        assert "Traceback" not in result.stderr
        assert "nothing was restored" in result.stderr, (name, result.stderr)
        assert "damaged" in result.stderr or "truncated" in result.stderr, (name, result.stderr)
        assert not target.exists(), name  # nothing written


def test_a_forged_backup_is_refused(source: Source, workdir: Path) -> None:
    """Rows changed and the SHA-256 computed again: only the HMAC (keyed from the keyring) tells."""
    import hashlib

    raw = source.backup.read_bytes()
    body, trailer = raw[: -len(b"OPENKMS-TRAILER sha256=") - 64 - len(" hmac=") - 64 - 1], raw[-64 - 1 :]
    header_end = body.index(b"\n", len(b"OPENKMS-BACKUP\n")) + 1
    header = json.loads(body[len(b"OPENKMS-BACKUP\n") : header_end])
    header["created"] = "2000-01-01T00:00:00+00:00"
    forged = b"OPENKMS-BACKUP\n" + json.dumps(header).encode() + b"\n" + body[header_end:]
    sha = hashlib.sha256(forged).hexdigest().encode()
    path = workdir / f"forged-{uuid.uuid4().hex[:6]}.okb"
    path.write_bytes(forged + b"OPENKMS-TRAILER sha256=" + sha + b" hmac=" + trailer)
    assert json.loads(run("backup", "inspect", str(path), "--json").stdout)["sha256_ok"] is True
    verified = run(
        "backup", "inspect", str(path), "--verify", "--root-key-file", str(source.root_key), check=False
    )
    assert verified.returncode == 1 and "HMAC does not match" in verified.stderr
    target = workdir / f"target-{uuid.uuid4().hex[:6]}"
    result = run(
        "restore", "--from", str(path), "--data-dir", str(target), "--root-key-file", str(source.root_key),
        check=False,
    )  # fmt: skip
    assert (
        result.returncode == 1
        and "HMAC does not match" in result.stderr
        and "nothing was restored" in result.stderr
    )
    assert not target.exists()


def test_a_wrong_root_key_is_refused_by_restore(source: Source, workdir: Path) -> None:
    wrong = workdir / f"wrong-{uuid.uuid4().hex[:6]}.key"
    wrong.write_bytes(os.urandom(32))
    wrong.chmod(0o600)
    target = workdir / f"target-{uuid.uuid4().hex[:6]}"
    for args in (["--root-key-file", str(wrong)], []):  # a wrong one; none (the target's, missing)
        result = run("restore", "--from", str(source.backup), "--data-dir", str(target), *args, check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "cannot open the keyring" in result.stderr
        assert not target.exists()
    assert "does not open" in run(
        "restore", "--from", str(source.backup), "--data-dir", str(target), "--root-key-file", str(wrong),
        check=False,
    ).stderr  # fmt: skip
    assert (
        "does not exist"
        in run("restore", "--from", str(source.backup), "--data-dir", str(target), check=False).stderr
    )
    verified = run(
        "backup", "inspect", str(source.backup), "--verify", "--root-key-file", str(wrong), check=False
    )
    assert verified.returncode == 1 and "does not open" in verified.stderr


def test_a_non_empty_target_is_refused(source: Source, workdir: Path) -> None:
    # The source itself (a live installation) and a PostgreSQL database that already has an installation.
    result = run(
        "restore", "--from", str(source.backup), "--data-dir", str(source.server.data_dir), check=False
    )
    assert result.returncode == 1 and "the target is not empty" in result.stderr
    url = create_pg_database()
    other = launch(Path(tempfile.mkdtemp(dir=workdir, prefix="backup-busy-")), url)
    try:
        result = run(
            "restore", "--from", str(source.backup), "--database-url", url,
            "--root-key-file", str(source.root_key), check=False,
        )  # fmt: skip
        assert result.returncode == 1 and "the target is not empty" in result.stderr
        other.client().list_keys()  # still served, untouched
        assert len(other.client().list_keys()["Keys"]) == 0
    finally:
        other.stop()
        drop_pg_database(url)
    # A database that cannot be reached, a data directory holding something else than a database.
    result = run(
        "restore", "--from", str(source.backup), "--database-url", "postgresql://nobody:secret@127.0.0.1:1/x",
        "--root-key-file", str(source.root_key), check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "the target database cannot be restored onto" in result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr
    junk = workdir / f"junk-{uuid.uuid4().hex[:6]}"
    junk.mkdir()
    (junk / "openkms.db").write_bytes(b"not a database" * 100)
    result = run(
        "restore", "--from", str(source.backup), "--data-dir", str(junk),
        "--root-key-file", str(source.root_key), check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "cannot be restored onto" in result.stderr, result.stderr
    assert (junk / "openkms.db").read_bytes() == b"not a database" * 100
    # Naming no target at all is a usage error.
    result = run("restore", "--from", str(source.backup), check=False)
    assert result.returncode == 2 and "--data-dir D or --database-url URL" in result.stderr


def test_migrate_sqlite_to_postgresql(source: Source, workdir: Path) -> None:
    url = create_pg_database()
    try:
        result = run("migrate", "--from-data-dir", str(source.server.data_dir), "--to-database-url", url)
        assert f"--root-key-file {source.root_key.resolve()}" in result.stdout
        assert "openkms_test:***@" in result.stdout and "openkms_test:openkms_test@" not in result.stdout
        assert "migrating: 100%" in result.stderr
        moved = RestoredServer(
            data_dir=Path(tempfile.mkdtemp(dir=workdir, prefix="migrated-")), database_url=url,
            root_key_file=source.root_key,
        )  # fmt: skip
        moved.account_id, moved.access_key, moved.secret_key = (
            source.server.account_id,
            source.server.access_key,
            source.server.secret_key,
        )
        moved.start()
        try:
            migrated = Source(**{**source.__dict__})
            migrated.keys_after = 10**6  # the writer stopped; the snapshot is of now
            check_restored(migrated, moved)
        finally:
            moved.stop()
        # Migrating onto a database that now holds the installation is refused.
        again = run(
            "migrate", "--from-data-dir", str(source.server.data_dir), "--to-database-url", url, check=False
        )
        assert again.returncode == 1 and "the target is not empty" in again.stderr
    finally:
        drop_pg_database(url)


def test_backup_of_nothing_is_refused(workdir: Path) -> None:
    empty = workdir / f"empty-{uuid.uuid4().hex[:6]}"
    out = workdir / "nothing.okb"
    result = run("backup", "create", "--out", str(out), "--data-dir", str(empty), check=False)
    assert result.returncode == 1 and "no openkms installation" in result.stderr
    assert not empty.exists() and not out.exists()


def test_backup_file_with_garbage_is_not_a_backup(workdir: Path) -> None:
    path = workdir / "garbage.okb"
    path.write_bytes(b"PK\x03\x04" + os.urandom(100))
    result = run("backup", "inspect", str(path), check=False)
    assert result.returncode == 1 and "not an openkms backup file" in result.stderr


def test_a_pkcs11_installation_restores_with_its_token(workdir: Path, tmp_path: Path) -> None:
    """The backup names the token (module and labels, as the keyring row records them): the restore
    and the restored server need only the PIN; a wrong PIN is refused and writes nothing."""
    token = init_token(tmp_path / "hsm", label="openkms-backup", pin="1357-user", so_pin="2468-so")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENKMS_PKCS11", "SOFTHSM2"))}
    env = {**base, **token.env, "OPENKMS_PKCS11_PIN": token.pin}
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="backup-pkcs11-"))
    args = ["--root-key-source", "pkcs11", "--pkcs11-module", module_path(), "--pkcs11-token-label"]
    served = {**token.env, "OPENKMS_PKCS11_PIN": token.pin}
    server = launch(data_dir, None, extra_args=[*args, token.label], env=served)
    try:
        kms = server.client()
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        blobs = [kms.encrypt(KeyId=key_id, Plaintext=bytes([i]) * 8)["CiphertextBlob"] for i in range(20)]
        out = workdir / f"pkcs11-{uuid.uuid4().hex[:6]}.okb"
        run("backup", "create", "--out", str(out), "--data-dir", str(data_dir), env=env)
    finally:
        server.stop()
    info = json.loads(run("backup", "inspect", str(out), "--json", "--verify", env=env).stdout)
    assert info["root_key_source"] == "pkcs11" and info["hmac_ok"] is True
    target = workdir / f"pkcs11-dst-{uuid.uuid4().hex[:6]}"
    wrong = run(
        "restore", "--from", str(out), "--data-dir", str(target), check=False,
        env={**env, "OPENKMS_PKCS11_PIN": "0000-wrong"},
    )  # fmt: skip
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert "PIN of the PKCS#11 token" in wrong.stderr and "is wrong" in wrong.stderr
    assert "nothing was restored" in wrong.stderr and "0000-wrong" not in wrong.stderr
    assert not target.exists()
    restored = run("restore", "--from", str(out), "--data-dir", str(target), env=env)
    assert "--root-key-file" not in restored.stdout
    again = RestoredServer(data_dir=target, database_url=None, env=served)
    again.account_id, again.access_key = server.account_id, server.access_key
    again.secret_key = server.secret_key
    again.start()
    try:
        kms = again.client()
        plaintexts = [kms.decrypt(CiphertextBlob=b)["Plaintext"] for b in blobs]
        assert plaintexts == [bytes([i]) * 8 for i in range(20)]
    finally:
        again.stop()
