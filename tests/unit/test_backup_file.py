"""Backup files (storage/backup.py) on both backends: a snapshot sees one state while another connection
writes (PostgreSQL: REPEATABLE READ READ ONLY); rows of every type come back equal across backends;
a restore onto an empty target (fresh, or left at an older schema version) migrates it, inserts, moves
PostgreSQL's sequences past the restored ids, and leaves nothing behind when it fails; a damaged file,
one whose body does not match its header, an unknown table or column, a malformed value and an
over-long line are refused; the backup key is stable across a root key rotation."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from openkms.crypto.envelope import AesKek, Keyring, RootKey
from openkms.storage import backup, schema
from openkms.storage.migrations import LATEST, MIGRATIONS, migrate
from openkms.storage.store import KeyringRow, Store
from tests.unit.test_migrations import NewUrl, new_url  # noqa: F401 - the fixture

RING = Keyring.new()
ROOT = RootKey.from_keyring(RING)
KEY = ROOT.backup_key()


def _key_row(i: int) -> dict[str, Any]:
    return {
        "region": "us-east-1", "key_id": f"k{i:04d}", "account_id": "111122223333",
        "key_spec": "SYMMETRIC_DEFAULT", "key_usage": "ENCRYPT_DECRYPT", "origin": "AWS_KMS",
        "key_state": "Enabled", "creation_date": 1.5 + i / 3, "policy": "{\"é\": \"\\u0000x\"}",
        "description": "", "multi_region": i % 2 == 0, "deletion_date": None, "pending_window_days": None,
        "rotation_enabled": True, "rotation_period_days": 365, "next_rotation_date": 1e9 + 0.1,
        "current_material_id": "m", "expiration_model": None, "valid_to": None, "version": 1,
    }  # fmt: skip


def populated(url: str, keys: int = 1200) -> Store:
    store = Store(url)
    with store.write() as tx:
        tx.insert_keyring(
            KeyringRow(source="file", config="{}", wrapped=AesKek(os.urandom(32)).wrap(RING.to_bytes()),
                       generation=3, updated_at=2.0)
        )  # fmt: skip
        conn = tx.conn
        conn.execute(sa.insert(schema.accounts), [{"account_id": "111122223333", "created_at": 1.0}])
        conn.execute(sa.insert(schema.keys), [_key_row(i) for i in range(keys)])
        conn.execute(
            sa.insert(schema.key_materials),
            [
                {"region": "us-east-1", "key_id": f"k{i:04d}", "material_id": "m", "state": "CURRENT",
                 "created": 1.0, "sealed": os.urandom(61) + b"\x00"}
                for i in range(keys)
            ],
        )  # fmt: skip
        for i in range(5):
            conn.execute(
                sa.insert(schema.audit_events).values(
                    event_id=f"e{i}", event_time=float(i), event_name="Encrypt", record="{}"
                )
            )
        conn.execute(sa.insert(schema.changes).values(kind="key", ident="x", at=1.0))
    return store


def dump(store: Store) -> bytes:
    out = io.BytesIO()
    backup.write_backup(store, out, key=KEY, fingerprint=ROOT.fingerprint)
    return out.getvalue()


def restore(url: str, data: bytes) -> dict[str, int]:
    f = io.BytesIO(data)
    header, result = backup.check(f, KEY)
    assert result.sha256_ok and result.hmac_ok
    f.seek(0)
    return backup.restore_backup(url, f, header=header, want_sha256=result.sha256)


def rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    store = Store(url)
    try:
        with store.read() as tx:
            return {
                t.name: [tuple(r) for r in tx.conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
                for t in backup.tables_in_order()
            }
    finally:
        store.close()


@pytest.fixture
def other_backend(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'other.sqlite'}"


def test_round_trip_across_backends(new_url: NewUrl, other_backend: str) -> None:  # noqa: F811
    source = new_url()
    store = populated(source)
    data = dump(store)
    store.close()
    header = backup.read_header(io.BytesIO(data))
    assert header.tables["keys"] == 1200 and header.tables["audit_events"] == 5
    assert "changes" not in header.tables and "schema_migrations" not in header.tables
    assert header.schema_version == LATEST and header.fingerprint == ROOT.fingerprint
    target = new_url()
    assert restore(target, data) == header.tables
    assert rows(target) == rows(source)
    # ... and onto the other backend (SQLite), and back.
    assert restore(other_backend, data) == header.tables
    assert rows(other_backend) == rows(source)


def test_restore_moves_sequences_past_the_restored_ids(new_url: NewUrl) -> None:  # noqa: F811
    store = populated(new_url(), keys=3)
    data = dump(store)
    store.close()
    target = new_url()
    restore(target, data)
    after = Store(target)
    with after.write() as tx:
        tx.conn.execute(
            sa.insert(schema.audit_events).values(event_id="new", event_time=9.0, event_name="X", record="{}")
        )
        tx.conn.execute(sa.insert(schema.changes).values(kind="key", ident="y", at=1.0))
        new_id = tx.conn.execute(
            sa.select(schema.audit_events.c.id).where(schema.audit_events.c.event_id == "new")
        ).scalar_one()
    after.close()
    assert new_id == 6


def test_a_snapshot_sees_one_state_while_others_write(new_url: NewUrl) -> None:  # noqa: F811
    store = populated(new_url(), keys=2)
    count = sa.select(sa.func.count()).select_from(schema.keys)
    with backup.snapshot(store) as conn:
        before = conn.execute(count).scalar_one()
        if store.backend == "postgresql":
            assert conn.exec_driver_sql("SHOW transaction_isolation").scalar_one() == "repeatable read"
            assert conn.exec_driver_sql("SHOW transaction_read_only").scalar_one() == "on"
        with store.write() as tx:  # another connection commits a row meanwhile
            tx.conn.execute(sa.insert(schema.keys), [_key_row(99)])
        assert conn.execute(count).scalar_one() == before
    with store.read() as tx:
        assert tx.conn.execute(count).scalar_one() == before + 1
    store.close()


def test_restore_onto_a_target_left_at_an_older_version(new_url: NewUrl) -> None:  # noqa: F811
    store = populated(new_url(), keys=2)
    data = dump(store)
    store.close()
    target = new_url()
    engine = sa.create_engine(Store(target, migrate_schema=False).url)
    with engine.begin() as conn:
        migrate(conn, target=5, now=1.0)
    engine.dispose()
    restore(target, data)
    check = Store(target)
    with check.read() as tx:
        versions = [r[0] for r in tx.conn.exec_driver_sql("SELECT version FROM schema_migrations ORDER BY 1")]
        assert tx.get_keyring() is not None
    check.close()
    assert versions == [version for version, _ in MIGRATIONS]


def _tables(url: str) -> list[str]:
    engine = sa.create_engine(Store(url, migrate_schema=False).url)
    try:
        with engine.connect() as conn:
            return sa.inspect(conn).get_table_names()
    finally:
        engine.dispose()


def test_a_non_empty_target_is_refused_and_left_alone(new_url: NewUrl) -> None:  # noqa: F811
    source = new_url()
    store = populated(source, keys=2)
    data = dump(store)
    store.close()
    with pytest.raises(backup.BackupError, match="the target is not empty"):
        restore(source, data)
    assert len(rows(source)["keys"]) == 2


def craft(doc_changes: dict[str, Any], lines: list[bytes], key: bytes = KEY) -> bytes:
    """A backup file of ``lines`` (raw body lines), made as write_backup makes one."""
    doc = {
        "format": "openkms-backup", "format_version": 1, "schema_version": LATEST, "created_at": 1.0,
        "created": "1970-01-01T00:00:01+00:00", "backend": "sqlite", "fingerprint": ROOT.fingerprint,
        "keyring": {"source": "file", "config": "{}", "wrapped": base64.b64encode(b"w" * 40).decode()},
        "tables": {}, **doc_changes,
    }  # fmt: skip
    head = backup.MAGIC + json.dumps(doc).encode() + b"\n"
    body = gzip.compress(b"".join(lines), mtime=0)
    signed = head + body
    sha = hashlib.sha256(signed).hexdigest().encode()
    mac = hmac.new(key, signed, hashlib.sha256).hexdigest().encode()
    return signed + b"OPENKMS-TRAILER sha256=" + sha + b" hmac=" + mac + b"\n"


def _section(name: str, columns: list[str], n: int) -> bytes:
    return json.dumps({"table": name, "columns": columns, "rows": n}).encode() + b"\n"


ACCOUNT = ["account_id", "created_at"]
END0 = b'{"end": true, "rows": 0}\n'


@pytest.mark.parametrize(
    ("tables", "lines", "message"),
    [
        ({}, [_section("changes", ["id", "kind", "ident", "at"], 0), END0], "does not restore"),
        ({}, [_section("nope", ["a"], 0), END0], "does not restore"),
        ({"accounts": 0}, [_section("accounts", ["account_id"], 0), END0], "columns of table accounts"),
        ({"accounts": 1}, [_section("accounts", ACCOUNT, 1), b'["1", 1.0, 3]\n', END0], "malformed row"),
        ({"accounts": 1}, [_section("accounts", ACCOUNT, 1), b'["1", {"x": 1}]\n', END0], "malformed value"),
        ({"accounts": 1}, [_section("accounts", ACCOUNT, 1), b'["1", NaN]\n', END0], "not JSON"),
        ({"accounts": 1}, [_section("accounts", ACCOUNT, 1), b'["1", {"b64": "*"}]\n', END0],
         "malformed value"),
        ({"accounts": 1}, [_section("accounts", ACCOUNT, 1), b'["1", 1e999999]\n', END0], "not JSON"),
        ({"accounts": 2}, [_section("accounts", ACCOUNT, 1), b'["1", 1.0]\n', b'{"end": true, "rows": 1}\n'],
         "does not hold what its header says"),
        ({"accounts": 0}, [_section("accounts", ACCOUNT, 0), END0, b"more\n"], "data after its end"),
        ({"accounts": 0}, [_section("accounts", ACCOUNT, 0)], "truncated"),
        ({"accounts": 1}, [_section("accounts", ACCOUNT, 1), b'["' + b"a" * backup.MAX_LINE + b'", 1.0]\n',
                           END0], "line too long"),
        ({"accounts": 2}, [_section("accounts", ACCOUNT, 2), b'["1", 1.0]\n', b'["1", 2.0]\n',
                           b'{"end": true, "rows": 2}\n'], "do not fit this database"),
        ({"accounts": 1}, [_section("accounts", ACCOUNT, 1), b'[null, 1.0]\n', b'{"end": true, "rows": 1}\n'],
         "do not fit this database"),
    ],
    ids=lambda value: None if isinstance(value, str) else "",  # ids from the message (stable, short)
)  # fmt: skip
def test_malformed_bodies_are_refused_and_leave_nothing(
    new_url: NewUrl,  # noqa: F811
    tables: dict[str, int],
    lines: list[bytes],
    message: str,
) -> None:
    data = craft({"tables": tables}, lines)
    target = new_url()
    with pytest.raises(backup.BackupError, match=message):
        restore(target, data)
    assert _tables(target) == []  # the migrations ran in the transaction that was rolled back


def test_damage_anywhere_is_seen(new_url: NewUrl) -> None:  # noqa: F811
    store = populated(new_url(), keys=20)
    data = dump(store)
    store.close()
    for at in range(0, len(data), max(1, len(data) // 97)):
        damaged = bytearray(data)
        damaged[at] ^= 0x40
        try:
            _, result = backup.check(io.BytesIO(bytes(damaged)), KEY)
        except backup.BackupError:
            continue  # the header or the trailer no longer reads
        assert not (result.sha256_ok and result.hmac_ok), at
    # A file changed between the check and the restore: the restore's own digest refuses it.
    header, result = backup.check(io.BytesIO(data), KEY)
    target = new_url()
    body = range(header.size, len(data) - backup.TRAILER_BYTES)
    for at in range(body.start, body.stop, max(1, len(body) // 25)):
        changed = bytearray(data)
        changed[at] ^= 1 << (at % 8)
        with pytest.raises(backup.BackupError):
            backup.restore_backup(target, io.BytesIO(changed), header=header, want_sha256=result.sha256)
        assert _tables(target) == []
    # Another key's HMAC does not match.
    assert backup.check(io.BytesIO(data), os.urandom(32))[1].hmac_ok is False


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not an openkms backup"),
        (b"OPENKMS-BACKUP\n" + b"{" * (backup.MAX_HEADER + 1), "too large"),
        (b"OPENKMS-BACKUP\n[1]\n", "malformed"),
        (craft({"format_version": 2}, [END0]), "format version 2"),
        (craft({"schema_version": LATEST + 1}, [END0]), "newer than this openkms"),
        (craft({"tables": {"a": -1}}, [END0]), "table counts"),
        (craft({}, [END0])[:-5], "no trailer"),
    ],
    ids=lambda value: None if isinstance(value, str) else "",  # ids from the message (stable, short)
)
def test_bad_headers_and_trailers_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(backup.BackupError, match=message):
        backup.check(io.BytesIO(data), None)


def test_the_backup_key_is_stable_across_rotations_and_private_to_an_installation() -> None:
    rotated = RootKey.from_keyring(RING.with_new_version())
    assert rotated.backup_key() == KEY and rotated.fingerprint == ROOT.fingerprint
    assert RootKey.from_keyring(Keyring.new()).backup_key() != KEY
    assert KEY not in (ROOT.token_key(), RING.derive)
