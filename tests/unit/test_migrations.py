"""Frozen migrations (storage/migrations.py) against the tables queries use (storage/schema.py), on both
backends: a database left by any older version upgrades to exactly a fresh install's schema with its
rows intact, a fresh install is exactly what the table definitions describe, and a database already
at the newest version is left alone."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from openkms.storage import schema
from openkms.storage.migrations import LATEST, MIGRATIONS, migrate
from openkms.storage.store import Store, normalize_url
from tests.conftest import create_pg_database, drop_pg_database

NewUrl = Callable[[], str]
APPLIED_AT = 1_700_000_000.0  # the time migrate() records each step as applied at


@pytest.fixture(params=["sqlite", "postgresql"])
def new_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NewUrl]:
    """Makes new, empty databases on the backend; dropped at the end of the test."""
    made: list[str] = []

    def make() -> str:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / f'db{len(made)}.sqlite'}"
        else:
            url = create_pg_database()
        made.append(url)
        return url

    yield make
    if request.param == "postgresql":
        for url in made:
            drop_pg_database(url)


def engine(url: str) -> Engine:
    return sa.create_engine(normalize_url(url))


def migrated(url: str, target: int = LATEST) -> Engine:
    eng = engine(url)
    with eng.begin() as conn:
        migrate(conn, target, now=APPLIED_AT)
    return eng


def _sql(text: str | None) -> str:
    text = re.sub(r"\s+", " ", text or "")
    return text.replace("( ", "(").replace(" )", ")").strip()


def describe(eng: Engine) -> dict[str, Any]:
    """Everything about the schema a query or a later migration could depend on."""
    insp = sa.inspect(eng)
    out: dict[str, Any] = {}
    for name in sorted(insp.get_table_names()):
        out[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                for c in insp.get_columns(name)
            ],
            "primary_key": insp.get_pk_constraint(name)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(name)
            ),
            "unique": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(name)),
        }
    if eng.dialect.name == "sqlite":
        with eng.connect() as conn:
            rows = conn.exec_driver_sql("SELECT type, name, tbl_name, sql FROM sqlite_master")
            out["sqlite_master"] = sorted((r[0], r[1], r[2], _sql(r[3])) for r in rows)
    return out


# Rows as each version's tables held them, inserted with the columns that version had.
ROWS: dict[int, list[tuple[str, dict[str, Any]]]] = {
    1: [
        ("accounts", {"account_id": "111122223333", "created_at": 1.5}),
        (
            "users",
            {
                "account_id": "111122223333",
                "user_name": "alice",
                "user_id": "AIDAEXAMPLE",
                "path": "/",
                "created_at": 2.5,
                "inline_policies": "{}",
                "tags": "{}",
            },
        ),
        (
            "access_keys",
            {
                "access_key_id": "AKIAEXAMPLE",
                "account_id": "111122223333",
                "user_name": "alice",
                "secret_sealed": b"\x00sealed\xff",
                "status": "Active",
                "created_at": 3.5,
            },
        ),
        (
            "keys",
            {
                "region": "us-east-1",
                "key_id": "1234abcd-12ab-34cd-56ef-1234567890ab",
                "account_id": "111122223333",
                "key_spec": "SYMMETRIC_DEFAULT",
                "key_usage": "ENCRYPT_DECRYPT",
                "origin": "AWS_KMS",
                "key_state": "Enabled",
                "creation_date": 4.5,
                "policy": '{"Version": "2012-10-17"}',
                "description": "",
                "multi_region": False,
                "deletion_date": None,
                "pending_window_days": None,
                "rotation_enabled": True,
                "rotation_period_days": 365,
                "next_rotation_date": 5.5,
                "current_material_id": "m1",
                "expiration_model": None,
                "valid_to": None,
                "version": 1,
            },
        ),
        (
            "key_materials",
            {
                "region": "us-east-1",
                "key_id": "1234abcd-12ab-34cd-56ef-1234567890ab",
                "material_id": "m1",
                "state": "CURRENT",
                "created": 4.5,
                "sealed": b"material",
                "import_state": None,
                "rotation_date": None,
                "rotation_type": None,
                "valid_to": None,
                "expiration_model": None,
                "description": None,
            },
        ),
        (
            "aliases",
            {
                "region": "us-east-1",
                "account_id": "111122223333",
                "alias_name": "alias/example",
                "key_id": "1234abcd-12ab-34cd-56ef-1234567890ab",
                "creation_date": 6.5,
                "last_updated_date": 6.5,
            },
        ),
        (
            "tags",
            {
                "region": "us-east-1",
                "key_id": "1234abcd-12ab-34cd-56ef-1234567890ab",
                "tag_key": "team",
                "tag_value": "blue",
            },
        ),
        ("changes", {"kind": "key", "ident": "us-east-1/1234abcd", "at": 7.5}),
        (
            "audit_events",
            {
                "event_id": "00000000-0000-4000-8000-000000000001",
                "event_time": 8.5,
                "account_id": "111122223333",
                "region": "us-east-1",
                "event_name": "CreateKey",
                "key_id": "1234abcd-12ab-34cd-56ef-1234567890ab",
                "principal_arn": "arn:aws:iam::111122223333:user/alice",
                "error_code": None,
                "record": "{}",
            },
        ),
    ],
    2: [
        (
            "import_parameters",
            {
                "token_id": "00000000-0000-4000-8000-000000000002",
                "region": "us-east-1",
                "key_id": "1234abcd-12ab-34cd-56ef-1234567890ab",
                "wrapping_algorithm": "RSAES_OAEP_SHA_256",
                "wrapping_key_spec": "RSA_2048",
                "private_key_sealed": b"private",
                "expires": 9.5,
            },
        ),
    ],
    3: [
        (
            "roles",
            {
                "account_id": "111122223333",
                "role_name": "reader",
                "role_id": "AROAEXAMPLE",
                "path": "/",
                "trust_policy": "{}",
                "description": "",
                "max_session_duration": 3600,
                "created_at": 10.5,
                "inline_policies": "{}",
                "tags": "{}",
            },
        ),
        (
            "managed_policies",
            {
                "account_id": "111122223333",
                "policy_name": "p",
                "policy_id": "ANPAEXAMPLE",
                "arn": "arn:aws:iam::111122223333:policy/p",
                "path": "/",
                "description": "",
                "document": "{}",
                "created_at": 11.5,
                "updated_at": 11.5,
            },
        ),
        (
            "policy_attachments",
            {
                "account_id": "111122223333",
                "principal_kind": "role",
                "principal_name": "reader",
                "policy_arn": "arn:aws:iam::111122223333:policy/p",
            },
        ),
        (
            "sessions",
            {
                "access_key_id": "ASIAEXAMPLE",
                "secret_sealed": b"secret",
                "token_sha256": b"\x01" * 32,
                "account_id": "111122223333",
                "role_name": "reader",
                "role_id": "AROAEXAMPLE",
                "role_path": "/",
                "session_name": "s",
                "created_at": 12.5,
                "expires": 13.5,
                "tags": "{}",
                "source_identity": None,
            },
        ),
    ],
    4: [
        (
            "grants",
            {
                "grant_id": "g" * 64,
                "region": "us-east-1",
                "key_id": "1234abcd-12ab-34cd-56ef-1234567890ab",
                "account_id": "111122223333",
                "name": None,
                "creation_date": 14.5,
                "grantee_principal": "arn:aws:iam::111122223333:role/reader",
                "retiring_principal": None,
                "operations": '["Decrypt"]',
                "constraints": None,
            },
        ),
    ],
    5: [
        (
            "console_sessions",
            {
                "session_hash": "s" * 64,
                "access_key_id": "AKIAEXAMPLE",
                "account_id": "111122223333",
                "region": "us-east-1",
                "created_at": 15.5,
                "last_seen": 15.5,
                "expires": 16.5,
                "prefs": "{}",
            },
        ),
    ],
    6: [
        ("xks_keystores", {"name": "store", "created_at": 17.5, "max_tps": None, "client_cn": None}),
        (
            "xks_credentials",
            {
                "access_key_id": "XKSEXAMPLE",
                "keystore": "store",
                "secret_sealed": b"secret",
                "created_at": 17.5,
                "valid_until": None,
            },
        ),
        (
            "xks_keys",
            {
                "keystore": "store",
                "key_id": "external-1",
                "key_spec": "AES_256",
                "key_usage": "ENCRYPT,DECRYPT",
                "status": "ENABLED",
                "material_sealed": b"material",
                "allowed_principals": "[]",
                "created_at": 17.5,
            },
        ),
    ],
    7: [
        (
            "multi_region_keys",
            {
                "region": "us-west-2",
                "key_id": "mrk-" + "cd" * 16,
                "account_id": "111122223333",
                "primary_region": "us-east-1",
                "sync_since": None,
            },
        ),
    ],
    8: [
        (
            "custom_key_stores",
            {
                "custom_key_store_id": "cks-" + "0" * 17,
                "region": "us-east-1",
                "account_id": "111122223333",
                "name": "external",
                "store_type": "EXTERNAL_KEY_STORE",
                "connection_state": "DISCONNECTED",
                "connection_error_code": None,
                "created_at": 18.5,
                "uri_endpoint": "https://xks.example.com",
                "uri_path": "/kms/xks/v1",
                "connectivity": "PUBLIC_ENDPOINT",
                "access_key_id": "XKSEXAMPLE",
                "secret_sealed": b"secret",
            },
        ),
        (
            "external_store_keys",
            {
                "region": "us-east-1",
                "key_id": "11111111-2222-3333-4444-555555555555",
                "custom_key_store_id": "cks-" + "0" * 17,
                "xks_key_id": "external-1",
            },
        ),
    ],
    9: [
        (
            "keyring",
            {
                "id": 1,
                "source": "file",
                "config": "{}",
                "wrapped": b"wrapped",
                "generation": 1,
                "updated_at": 19.5,
                "rotation_state": "idle",
                "rotation_started": None,
                "rotation_resealed": 0,
                "rotation_total": 0,
            },
        ),
    ],
    10: [
        (
            "audit_attributes",
            {
                "audit_id": 1,
                "account_id": "111122223333",
                "region": "us-east-1",
                "name": "Username",
                "value": "alice",
                "event_time": 20.5,
            },
        ),
    ],
    11: [
        (
            "audit_chain_heads",
            {
                "account_id": "111122223333",
                "region": "us-east-1",
                "seq": 1,
                "hash": "h" * 64,
                "updated_at": 21.5,
                "digests": 0,
                "digest_signature": None,
                "digested_seq": 0,
                "digested_at": None,
            },
        ),
    ],
    12: [
        (
            "audit_export_lease",
            {"name": "export", "holder": "node-a", "expires": 22.5, "scanned_id": 7},
        ),
    ],
    13: [],  # v13 made no table (it rebuilt audit_attributes, whose v10 row above it must keep)
}
# A multi-Region primary key as a release before v7 left it (no multi_region_keys row yet).
MRK_ID = "mrk-" + "ab" * 16
MRK_ROW = {
    **dict(ROWS[1][3][1]),
    "region": "eu-west-1",
    "key_id": MRK_ID,
    "multi_region": True,
    "current_material_id": "m2",
}
# The tables the newest step creates: a database left at an older version has none of them.
NEWEST_TABLES = set(
    re.findall(r"CREATE TABLE (\w+)", " ".join(s for s in MIGRATIONS[-1][1] if isinstance(s, str)))
)


def insert_rows(eng: Engine, up_to: int) -> list[tuple[str, dict[str, Any]]]:
    rows = [row for version, rs in ROWS.items() if version <= up_to for row in rs]
    with eng.begin() as conn:
        for table, values in rows:
            cols = ", ".join(values)
            params = ", ".join(f":{c}" for c in values)
            conn.execute(sa.text(f"INSERT INTO {table} ({cols}) VALUES ({params})"), values)
    return rows


def read_back(eng: Engine, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    with eng.connect() as conn:
        result = conn.execute(sa.text(f"SELECT {', '.join(columns)} FROM {table}"))
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in result]


def test_rows_cover_every_step_but_the_newest() -> None:
    assert sorted(ROWS) == [v for v, _ in MIGRATIONS][:-1]


@pytest.mark.parametrize("start", [v for v, _ in MIGRATIONS][:-1])
def test_upgrade_from_an_older_version_keeps_rows_and_equals_a_fresh_install(
    new_url: NewUrl, start: int
) -> None:
    old = migrated(new_url(), start)
    fresh = migrated(new_url())
    try:
        assert not NEWEST_TABLES & set(describe(old))
        rows = insert_rows(old, start)
        with old.begin() as conn:
            assert migrate(conn, now=APPLIED_AT) == list(range(start + 1, LATEST + 1))
        assert describe(old) == describe(fresh)
        for table, values in rows:
            assert read_back(old, table, list(values)) == [tuple(values.values())]
        with old.connect() as conn:
            versions = [r[0] for r in conn.exec_driver_sql("SELECT version FROM schema_migrations")]
        assert sorted(versions) == list(range(1, LATEST + 1))
    finally:
        old.dispose()
        fresh.dispose()


def test_fresh_install_is_what_the_table_definitions_describe(new_url: NewUrl) -> None:
    # Fails when a table in schema.py gains (or loses) a column, index or constraint that no migration
    # makes, or a migration makes one schema.py does not describe.
    fresh = migrated(new_url())
    described = engine(new_url())
    try:
        schema.metadata.create_all(described)
        assert describe(fresh) == describe(described)
    finally:
        fresh.dispose()
        described.dispose()


def test_a_database_at_the_newest_version_is_left_alone(new_url: NewUrl) -> None:
    eng = migrated(new_url())
    try:
        insert_rows(eng, LATEST)
        before = describe(eng)
        with eng.begin() as conn:
            assert migrate(conn, now=APPLIED_AT) == []
        assert describe(eng) == before
        assert read_back(eng, "accounts", ["account_id"]) == [("111122223333",)]
    finally:
        eng.dispose()


def test_two_fresh_stores_in_one_process(new_url: NewUrl) -> None:
    stores = [Store(new_url()), Store(new_url())]
    try:
        for store in stores:
            assert describe(store.engine) == describe(stores[0].engine)
            with store.write() as tx:
                tx.changed("key", "us-east-1/k")
            with store.engine.connect() as conn:
                versions = conn.exec_driver_sql("SELECT version FROM schema_migrations").all()
            assert sorted(v for (v,) in versions) == list(range(1, LATEST + 1))
    finally:
        for store in stores:
            store.close()


def test_multi_region_keys_made_before_v7_become_primaries_of_their_own_region(new_url: NewUrl) -> None:
    old = migrated(new_url(), 6)
    try:
        with old.begin() as conn:
            cols = ", ".join(MRK_ROW)
            conn.execute(
                sa.text(f"INSERT INTO keys ({cols}) VALUES ({', '.join(':' + c for c in MRK_ROW)})"), MRK_ROW
            )
        insert_rows(old, 1)  # and a single-Region key, which gets no row
        with old.begin() as conn:
            assert migrate(conn, 7, now=APPLIED_AT) == [7]
        columns = ["region", "key_id", "account_id", "primary_region", "sync_since"]
        rows = read_back(old, "multi_region_keys", columns)
        assert rows == [("eu-west-1", MRK_ID, "111122223333", "eu-west-1", None)]
    finally:
        old.dispose()


def test_records_stored_before_v10_get_their_lookup_attributes(new_url: NewUrl) -> None:
    old = migrated(new_url(), 9)
    arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    records = [
        {
            "userIdentity": {"type": "IAMUser", "userName": "alice", "accessKeyId": "AKIAEXAMPLE"},
            "eventSource": "kms.amazonaws.com",
            "readOnly": False,
            "resources": [{"accountId": "111122223333", "type": "AWS::KMS::Key", "ARN": arn}],
        },
        {
            "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/R/sess"},
            "eventSource": "kms.amazonaws.com",
            "readOnly": True,
            "resources": [],
        },
        {"userIdentity": {"type": "Root", "arn": "arn:aws:iam::111122223333:root"}, "readOnly": True},
        # An escaped U+0000 (which PostgreSQL's JSON functions refuse): left out, the migration goes on.
        {"userIdentity": {"userName": "bob"}, "requestParameters": {"description": "a\x00b"}},
    ]
    try:
        with old.begin() as conn:
            for n, record in enumerate(records):
                conn.execute(
                    sa.text(
                        "INSERT INTO audit_events"
                        " (event_id, event_time, account_id, region, event_name, record)"
                        " VALUES (:e, :t, '111122223333', 'us-east-1', 'CreateKey', :r)"
                    ),
                    {"e": f"e{n}", "t": 10.0 + n, "r": json.dumps(record)},
                )
        with old.begin() as conn:
            assert migrate(conn, 10, now=APPLIED_AT) == [10]
            ids = {r[1]: r[0] for r in conn.exec_driver_sql("SELECT id, event_id FROM audit_events")}
        got = sorted(read_back(old, "audit_attributes", ["audit_id", "name", "value", "event_time"]))
        assert got == sorted(
            [
                (ids["e0"], "Username", "alice", 10.0),
                (ids["e0"], "AccessKeyId", "AKIAEXAMPLE", 10.0),
                (ids["e0"], "ReadOnly", "false", 10.0),
                (ids["e0"], "EventSource", "kms.amazonaws.com", 10.0),
                (ids["e0"], "ResourceType", "AWS::KMS::Key", 10.0),
                (ids["e0"], "ResourceName", arn, 10.0),
                (ids["e1"], "Username", "sess", 11.0),
                (ids["e1"], "ReadOnly", "true", 11.0),
                (ids["e1"], "EventSource", "kms.amazonaws.com", 11.0),
                (ids["e2"], "Username", "root", 12.0),
                (ids["e2"], "ReadOnly", "true", 12.0),
            ]
        )
    finally:
        old.dispose()
