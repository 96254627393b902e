"""Versioned migrations as frozen DDL.

Each step is a list of SQL statements written out literally (generated once from the table
definitions of the day and pasted here), applied once, in order, inside one transaction, and
recorded in ``schema_migrations``. Steps never read ``schema.py``'s tables, which describe the newest
schema for queries: a released step must keep creating exactly what it created when it shipped, so a
database at any version upgrades to the same schema a fresh install gets. Never edit a released step
(nor ``_TYPES``): add a new one, and change the tables in ``schema.py`` to match
(tests/unit/test_migrations.py fails until both agree).

The two backends share the statements; the few types whose spelling differs are placeholders filled
from ``_TYPES``, and a statement whose SQL differs (v10's backfill reads JSON with each backend's own
functions) is a dict of the two spellings.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# Placeholder -> type, per backend. ``serial`` / ``bigserial`` are autoincrementing integer keys
# (on SQLite an INTEGER PRIMARY KEY is the rowid and increments by itself).
_TYPES: dict[str, dict[str, str]] = {
    "sqlite": {"blob": "BLOB", "serial": "INTEGER", "bigserial": "INTEGER"},
    "postgresql": {"blob": "BYTEA", "serial": "SERIAL", "bigserial": "BIGSERIAL"},
}

_SCHEMA_MIGRATIONS = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version {serial} NOT NULL,
    applied_at FLOAT NOT NULL,
    PRIMARY KEY (version)
)"""

# --- v1: accounts, users and access keys, KMS keys and their material, aliases, tags, change feed, audit
_V1 = (
    """CREATE TABLE accounts (
    account_id VARCHAR(12) NOT NULL,
    created_at FLOAT NOT NULL,
    PRIMARY KEY (account_id)
)""",
    """CREATE TABLE users (
    account_id VARCHAR(12) NOT NULL,
    user_name VARCHAR(64) NOT NULL,
    user_id VARCHAR(32) NOT NULL,
    path VARCHAR(512) NOT NULL,
    created_at FLOAT NOT NULL,
    inline_policies TEXT NOT NULL,
    tags TEXT NOT NULL,
    PRIMARY KEY (account_id, user_name),
    UNIQUE (user_id)
)""",
    """CREATE TABLE access_keys (
    access_key_id VARCHAR(128) NOT NULL,
    account_id VARCHAR(12) NOT NULL,
    user_name VARCHAR(64) NOT NULL,
    secret_sealed {blob} NOT NULL,
    status VARCHAR(16) NOT NULL,
    created_at FLOAT NOT NULL,
    PRIMARY KEY (access_key_id)
)""",
    "CREATE INDEX ix_access_keys_user ON access_keys (account_id, user_name)",
    """CREATE TABLE keys (
    region VARCHAR(32) NOT NULL,
    key_id VARCHAR(64) NOT NULL,
    account_id VARCHAR(12) NOT NULL,
    key_spec VARCHAR(32) NOT NULL,
    key_usage VARCHAR(32) NOT NULL,
    origin VARCHAR(32) NOT NULL,
    key_state VARCHAR(32) NOT NULL,
    creation_date FLOAT NOT NULL,
    policy TEXT NOT NULL,
    description TEXT NOT NULL,
    multi_region BOOLEAN NOT NULL,
    deletion_date FLOAT,
    pending_window_days INTEGER,
    rotation_enabled BOOLEAN NOT NULL,
    rotation_period_days INTEGER,
    next_rotation_date FLOAT,
    current_material_id VARCHAR(64),
    expiration_model VARCHAR(32),
    valid_to FLOAT,
    version INTEGER NOT NULL,
    PRIMARY KEY (region, key_id)
)""",
    "CREATE INDEX ix_keys_account ON keys (region, account_id, key_id)",
    "CREATE INDEX ix_keys_deletion ON keys (key_state, deletion_date)",
    """CREATE TABLE key_materials (
    region VARCHAR(32) NOT NULL,
    key_id VARCHAR(64) NOT NULL,
    material_id VARCHAR(64) NOT NULL,
    state VARCHAR(32) NOT NULL,
    created FLOAT NOT NULL,
    sealed {blob},
    import_state VARCHAR(32),
    rotation_date FLOAT,
    rotation_type VARCHAR(16),
    valid_to FLOAT,
    expiration_model VARCHAR(32),
    description TEXT,
    PRIMARY KEY (region, key_id, material_id)
)""",
    """CREATE TABLE aliases (
    region VARCHAR(32) NOT NULL,
    account_id VARCHAR(12) NOT NULL,
    alias_name VARCHAR(256) NOT NULL,
    key_id VARCHAR(64) NOT NULL,
    creation_date FLOAT NOT NULL,
    last_updated_date FLOAT NOT NULL,
    PRIMARY KEY (region, account_id, alias_name)
)""",
    "CREATE INDEX ix_aliases_key ON aliases (region, key_id)",
    """CREATE TABLE tags (
    region VARCHAR(32) NOT NULL,
    key_id VARCHAR(64) NOT NULL,
    tag_key VARCHAR(128) NOT NULL,
    tag_value VARCHAR(256) NOT NULL,
    PRIMARY KEY (region, key_id, tag_key)
)""",
    """CREATE TABLE changes (
    id {bigserial} NOT NULL,
    kind VARCHAR(16) NOT NULL,
    ident VARCHAR(512) NOT NULL,
    at FLOAT NOT NULL,
    PRIMARY KEY (id)
)""",
    """CREATE TABLE audit_events (
    id {bigserial} NOT NULL,
    event_id VARCHAR(36) NOT NULL,
    event_time FLOAT NOT NULL,
    account_id VARCHAR(12),
    region VARCHAR(32),
    event_name VARCHAR(64) NOT NULL,
    key_id VARCHAR(64),
    principal_arn VARCHAR(2048),
    error_code VARCHAR(128),
    record TEXT NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (event_id)
)""",
    "CREATE INDEX ix_audit_key ON audit_events (key_id, event_time)",
    "CREATE INDEX ix_audit_time ON audit_events (event_time)",
)

# --- v2: import parameters (ImportKeyMaterial), expiry scan over imported material
_V2 = (
    """CREATE TABLE import_parameters (
    token_id VARCHAR(36) NOT NULL,
    region VARCHAR(32) NOT NULL,
    key_id VARCHAR(64) NOT NULL,
    wrapping_algorithm VARCHAR(32) NOT NULL,
    wrapping_key_spec VARCHAR(16) NOT NULL,
    private_key_sealed {blob} NOT NULL,
    expires FLOAT NOT NULL,
    PRIMARY KEY (token_id)
)""",
    "CREATE INDEX ix_import_parameters_expires ON import_parameters (expires)",
    "CREATE INDEX ix_key_materials_expiry ON key_materials (expiration_model, valid_to)",
)

# --- v3: IAM roles, managed policies and their attachments, STS sessions
_V3 = (
    """CREATE TABLE roles (
    account_id VARCHAR(12) NOT NULL,
    role_name VARCHAR(64) NOT NULL,
    role_id VARCHAR(32) NOT NULL,
    path VARCHAR(512) NOT NULL,
    trust_policy TEXT NOT NULL,
    description TEXT NOT NULL,
    max_session_duration INTEGER NOT NULL,
    created_at FLOAT NOT NULL,
    inline_policies TEXT NOT NULL,
    tags TEXT NOT NULL,
    PRIMARY KEY (account_id, role_name),
    UNIQUE (role_id)
)""",
    """CREATE TABLE managed_policies (
    account_id VARCHAR(12) NOT NULL,
    policy_name VARCHAR(128) NOT NULL,
    policy_id VARCHAR(32) NOT NULL,
    arn VARCHAR(2048) NOT NULL,
    path VARCHAR(512) NOT NULL,
    description TEXT NOT NULL,
    document TEXT NOT NULL,
    created_at FLOAT NOT NULL,
    updated_at FLOAT NOT NULL,
    PRIMARY KEY (account_id, policy_name),
    UNIQUE (policy_id),
    UNIQUE (arn)
)""",
    """CREATE TABLE policy_attachments (
    account_id VARCHAR(12) NOT NULL,
    principal_kind VARCHAR(8) NOT NULL,
    principal_name VARCHAR(64) NOT NULL,
    policy_arn VARCHAR(2048) NOT NULL,
    PRIMARY KEY (account_id, principal_kind, principal_name, policy_arn)
)""",
    "CREATE INDEX ix_policy_attachments_arn ON policy_attachments (policy_arn)",
    """CREATE TABLE sessions (
    access_key_id VARCHAR(128) NOT NULL,
    secret_sealed {blob} NOT NULL,
    token_sha256 {blob} NOT NULL,
    account_id VARCHAR(12) NOT NULL,
    role_name VARCHAR(64) NOT NULL,
    role_id VARCHAR(32) NOT NULL,
    role_path VARCHAR(512) NOT NULL,
    session_name VARCHAR(64) NOT NULL,
    created_at FLOAT NOT NULL,
    expires FLOAT NOT NULL,
    tags TEXT NOT NULL,
    source_identity VARCHAR(64),
    PRIMARY KEY (access_key_id)
)""",
    "CREATE INDEX ix_sessions_expires ON sessions (expires)",
    "CREATE INDEX ix_sessions_role ON sessions (account_id, role_name)",
)

# --- v4: grants
_V4 = (
    """CREATE TABLE grants (
    grant_id VARCHAR(64) NOT NULL,
    region VARCHAR(32) NOT NULL,
    key_id VARCHAR(64) NOT NULL,
    account_id VARCHAR(12) NOT NULL,
    name VARCHAR(256),
    creation_date FLOAT NOT NULL,
    grantee_principal VARCHAR(256) NOT NULL,
    retiring_principal VARCHAR(256),
    operations TEXT NOT NULL,
    constraints TEXT,
    PRIMARY KEY (grant_id)
)""",
    "CREATE INDEX ix_grants_key ON grants (region, key_id, grant_id)",
    "CREATE INDEX ix_grants_retiring ON grants (retiring_principal)",
)

# --- v5: web console sessions (see openkms.console.sessions)
_V5 = (
    """CREATE TABLE console_sessions (
    session_hash VARCHAR(64) NOT NULL,
    access_key_id VARCHAR(128) NOT NULL,
    account_id VARCHAR(12) NOT NULL,
    region VARCHAR(32) NOT NULL,
    created_at FLOAT NOT NULL,
    last_seen FLOAT NOT NULL,
    expires FLOAT NOT NULL,
    prefs TEXT NOT NULL,
    PRIMARY KEY (session_hash)
)""",
    "CREATE INDEX ix_console_sessions_access_key ON console_sessions (access_key_id)",
    "CREATE INDEX ix_console_sessions_last_seen ON console_sessions (last_seen)",
)

# --- v6: the XKS proxy's key stores, their SigV4 credentials and external keys (see openkms.service.xks)
_V6 = (
    """CREATE TABLE xks_keystores (
    name VARCHAR(64) NOT NULL,
    created_at FLOAT NOT NULL,
    max_tps FLOAT,
    client_cn VARCHAR(256),
    PRIMARY KEY (name)
)""",
    """CREATE TABLE xks_credentials (
    access_key_id VARCHAR(32) NOT NULL,
    keystore VARCHAR(64) NOT NULL,
    secret_sealed {blob} NOT NULL,
    created_at FLOAT NOT NULL,
    valid_until FLOAT,
    PRIMARY KEY (access_key_id)
)""",
    "CREATE INDEX ix_xks_credentials_keystore ON xks_credentials (keystore)",
    """CREATE TABLE xks_keys (
    keystore VARCHAR(64) NOT NULL,
    key_id VARCHAR(128) NOT NULL,
    key_spec VARCHAR(16) NOT NULL,
    key_usage VARCHAR(32) NOT NULL,
    status VARCHAR(16) NOT NULL,
    material_sealed {blob} NOT NULL,
    allowed_principals TEXT NOT NULL,
    created_at FLOAT NOT NULL,
    PRIMARY KEY (keystore, key_id)
)""",
)

# --- v7: multi-Region keys: one row per key of a set (primary and replicas), the set's primary Region,
# and since when the key is in a transient state (Creating, Updating); rows for the primaries made before
_V7 = (
    """CREATE TABLE multi_region_keys (
    region VARCHAR(32) NOT NULL,
    key_id VARCHAR(64) NOT NULL,
    account_id VARCHAR(12) NOT NULL,
    primary_region VARCHAR(32) NOT NULL,
    sync_since FLOAT,
    PRIMARY KEY (region, key_id)
)""",
    "CREATE INDEX ix_multi_region_keys_set ON multi_region_keys (account_id, key_id)",
    "CREATE INDEX ix_multi_region_keys_sync ON multi_region_keys (sync_since)",
    """INSERT INTO multi_region_keys (region, key_id, account_id, primary_region, sync_since)
    SELECT region, key_id, account_id, region, NULL FROM keys WHERE multi_region""",
)

# --- v8: the external key stores openkms uses as a KMS (CreateCustomKeyStore; the proxy's credential
# secret sealed under the root key) and the KMS keys in them with their external key's id
_V8 = (
    """CREATE TABLE custom_key_stores (
    custom_key_store_id VARCHAR(64) NOT NULL,
    region VARCHAR(32) NOT NULL,
    account_id VARCHAR(12) NOT NULL,
    name VARCHAR(256) NOT NULL,
    store_type VARCHAR(32) NOT NULL,
    connection_state VARCHAR(16) NOT NULL,
    connection_error_code VARCHAR(64),
    created_at FLOAT NOT NULL,
    uri_endpoint VARCHAR(128) NOT NULL,
    uri_path VARCHAR(128) NOT NULL,
    connectivity VARCHAR(32) NOT NULL,
    access_key_id VARCHAR(32) NOT NULL,
    secret_sealed {blob} NOT NULL,
    PRIMARY KEY (custom_key_store_id)
)""",
    "CREATE UNIQUE INDEX ux_custom_key_stores_name ON custom_key_stores (region, account_id, name)",
    """CREATE TABLE external_store_keys (
    region VARCHAR(32) NOT NULL,
    key_id VARCHAR(64) NOT NULL,
    custom_key_store_id VARCHAR(64) NOT NULL,
    xks_key_id VARCHAR(128) NOT NULL,
    PRIMARY KEY (region, key_id)
)""",
    "CREATE INDEX ix_external_store_keys_store ON external_store_keys (custom_key_store_id, xks_key_id)",
)

# --- v9: the keyring (the data-encryption keys every sealed column is sealed under), wrapped by the root
# key's holder, with the root of trust it was made with and the progress of a root key rotation
_V9 = (
    """CREATE TABLE keyring (
    id INTEGER NOT NULL,
    source VARCHAR(16) NOT NULL,
    config TEXT NOT NULL,
    wrapped {blob} NOT NULL,
    generation INTEGER NOT NULL,
    updated_at FLOAT NOT NULL,
    rotation_state VARCHAR(16) NOT NULL,
    rotation_started FLOAT,
    rotation_resealed INTEGER NOT NULL,
    rotation_total INTEGER NOT NULL,
    PRIMARY KEY (id)
)""",
)

# --- v10: CloudTrail LookupEvents: an index of the trail per account and Region (newest first) and by
# event name, and the lookup attributes a record's columns do not hold (Username, AccessKeyId, ReadOnly,
# EventSource, ResourceType, ResourceName: one row per attribute value, keyed by the record's id),
# filled for the records already stored from their JSON (the backend's own JSON functions; a record
# holding an escaped U+0000, which PostgreSQL's JSON functions refuse, is left out on both backends: it
# is found by EventName and EventId only)
_V10: tuple[str | dict[str, str], ...] = (
    "CREATE INDEX ix_audit_trail ON audit_events (account_id, region, event_time, id)",
    "CREATE INDEX ix_audit_trail_name ON audit_events (account_id, region, event_name, event_time, id)",
    """CREATE TABLE audit_attributes (
    audit_id BIGINT NOT NULL,
    account_id VARCHAR(12) NOT NULL,
    region VARCHAR(32) NOT NULL,
    name VARCHAR(16) NOT NULL,
    value VARCHAR(512) NOT NULL,
    event_time FLOAT NOT NULL,
    PRIMARY KEY (account_id, region, name, value, event_time, audit_id)
)""",
    "CREATE INDEX ix_audit_attributes_audit ON audit_attributes (audit_id)",
    {
        "sqlite": """INSERT INTO audit_attributes (audit_id, account_id, region, name, value, event_time)
    SELECT id, account_id, region, name, substr(value, 1, 512), event_time FROM (
        SELECT a.id, a.account_id, a.region, a.event_time, n.name,
            CASE n.name
                WHEN 'Username' THEN coalesce(
                    json_extract(a.record, '$.userIdentity.userName'),
                    CASE json_extract(a.record, '$.userIdentity.type')
                        WHEN 'Root' THEN 'root'
                        WHEN 'AssumedRole' THEN substr(
                            substr(json_extract(a.record, '$.userIdentity.arn'),
                                instr(json_extract(a.record, '$.userIdentity.arn'), ':assumed-role/') + 14),
                            instr(substr(json_extract(a.record, '$.userIdentity.arn'),
                                instr(json_extract(a.record, '$.userIdentity.arn'), ':assumed-role/') + 14),
                                '/') + 1)
                    END)
                WHEN 'AccessKeyId' THEN json_extract(a.record, '$.userIdentity.accessKeyId')
                WHEN 'ReadOnly' THEN CASE json_type(a.record, '$.readOnly')
                    WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END
                WHEN 'EventSource' THEN json_extract(a.record, '$.eventSource')
            END AS value
        FROM audit_events a,
            (SELECT 'Username' AS name UNION ALL SELECT 'AccessKeyId' UNION ALL SELECT 'ReadOnly'
                UNION ALL SELECT 'EventSource') n
        WHERE a.account_id IS NOT NULL AND a.region IS NOT NULL AND json_valid(a.record)
            AND instr(a.record, '\\u0000') = 0
    ) WHERE value IS NOT NULL AND value <> ''""",
        "postgresql": """INSERT INTO audit_attributes (audit_id, account_id, region, name, value, event_time)
    SELECT id, account_id, region, name, substr(value, 1, 512), event_time FROM (
        SELECT a.id, a.account_id, a.region, a.event_time, n.name,
            CASE n.name
                WHEN 'Username' THEN coalesce(
                    a.record::json -> 'userIdentity' ->> 'userName',
                    CASE a.record::json -> 'userIdentity' ->> 'type'
                        WHEN 'Root' THEN 'root'
                        WHEN 'AssumedRole' THEN split_part(a.record::json -> 'userIdentity' ->> 'arn', '/', 3)
                    END)
                WHEN 'AccessKeyId' THEN a.record::json -> 'userIdentity' ->> 'accessKeyId'
                WHEN 'ReadOnly' THEN CASE json_typeof(a.record::json -> 'readOnly')
                    WHEN 'boolean' THEN a.record::json ->> 'readOnly' END
                WHEN 'EventSource' THEN a.record::json ->> 'eventSource'
            END AS value
        FROM audit_events a,
            (VALUES ('Username'), ('AccessKeyId'), ('ReadOnly'), ('EventSource')) AS n (name)
        WHERE a.account_id IS NOT NULL AND a.region IS NOT NULL AND strpos(a.record, '\\u0000') = 0
    ) AS v WHERE value IS NOT NULL AND value <> ''""",
    },
    {
        "sqlite": """INSERT OR IGNORE INTO audit_attributes
        (audit_id, account_id, region, name, value, event_time)
    SELECT a.id, a.account_id, a.region, n.name, substr(CASE n.name
            WHEN 'ResourceType' THEN json_extract(r.value, '$.type')
            ELSE json_extract(r.value, '$.ARN') END, 1, 512), a.event_time
    FROM audit_events a, json_each(a.record, '$.resources') r,
        (SELECT 'ResourceType' AS name UNION ALL SELECT 'ResourceName') n
    WHERE a.account_id IS NOT NULL AND a.region IS NOT NULL AND json_valid(a.record)
            AND instr(a.record, '\\u0000') = 0
        AND json_type(a.record, '$.resources') = 'array' AND json_type(r.value) = 'object'
        AND CASE n.name WHEN 'ResourceType' THEN json_type(r.value, '$.type')
            ELSE json_type(r.value, '$.ARN') END = 'text'""",
        "postgresql": """INSERT INTO audit_attributes (audit_id, account_id, region, name, value, event_time)
    SELECT a.id, a.account_id, a.region, n.name, substr(CASE n.name
            WHEN 'ResourceType' THEN r.value ->> 'type' ELSE r.value ->> 'ARN' END, 1, 512), a.event_time
    FROM (SELECT * FROM audit_events WHERE strpos(record, '\\u0000') = 0) AS a
        CROSS JOIN LATERAL json_array_elements(CASE json_typeof(a.record::json -> 'resources')
            WHEN 'array' THEN a.record::json -> 'resources' ELSE '[]'::json END) AS r (value)
        CROSS JOIN (VALUES ('ResourceType'), ('ResourceName')) AS n (name)
    WHERE a.account_id IS NOT NULL AND a.region IS NOT NULL AND json_typeof(r.value) = 'object'
        AND CASE n.name WHEN 'ResourceType' THEN r.value ->> 'type' ELSE r.value ->> 'ARN' END IS NOT NULL
    ON CONFLICT DO NOTHING""",
    },
)

# --- v11: the tamper-evident audit trail: every record chained to its predecessor in its account and
# Region's chain (seq, prev_hash, hash), the chain heads, the signed digests (and retention markers), and
# the digest signing keys (their private keys sealed under the keyring)
_V11 = (
    "ALTER TABLE audit_events ADD COLUMN seq BIGINT",
    "ALTER TABLE audit_events ADD COLUMN prev_hash VARCHAR(64)",
    "ALTER TABLE audit_events ADD COLUMN hash VARCHAR(64)",
    "CREATE INDEX ix_audit_chain ON audit_events (account_id, region, seq)",
    """CREATE TABLE audit_chain_heads (
    account_id VARCHAR(12) NOT NULL,
    region VARCHAR(32) NOT NULL,
    seq BIGINT NOT NULL,
    hash VARCHAR(64) NOT NULL,
    updated_at FLOAT NOT NULL,
    digests INTEGER NOT NULL,
    digest_signature VARCHAR(1024),
    digested_seq BIGINT NOT NULL,
    digested_at FLOAT,
    PRIMARY KEY (account_id, region)
)""",
    """CREATE TABLE audit_digests (
    id {bigserial} NOT NULL,
    account_id VARCHAR(12) NOT NULL,
    region VARCHAR(32) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    number INTEGER NOT NULL,
    start_time FLOAT NOT NULL,
    end_time FLOAT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    last_hash VARCHAR(64) NOT NULL,
    fingerprint VARCHAR(64) NOT NULL,
    body TEXT NOT NULL,
    signature VARCHAR(1024) NOT NULL,
    PRIMARY KEY (id)
)""",
    "CREATE INDEX ix_audit_digests_chain ON audit_digests (account_id, region, number)",
    """CREATE TABLE audit_signing_keys (
    fingerprint VARCHAR(64) NOT NULL,
    region VARCHAR(32) NOT NULL,
    valid_from FLOAT NOT NULL,
    valid_to FLOAT,
    public_key {blob} NOT NULL,
    private_key_sealed {blob} NOT NULL,
    PRIMARY KEY (fingerprint)
)""",
    "CREATE INDEX ix_audit_signing_keys_region ON audit_signing_keys (region, valid_from)",
)

# --- v12: the audit export's cursors, the log files it wrote and their digests' chain, its lease -------
_V12 = (
    """CREATE TABLE audit_export_state (
    account_id VARCHAR(12) NOT NULL,
    region VARCHAR(32) NOT NULL,
    created_at FLOAT NOT NULL,
    exported_id BIGINT NOT NULL,
    pending_id BIGINT,
    pending_at FLOAT,
    digest_object VARCHAR(1024),
    digest_signature TEXT,
    digest_hash VARCHAR(64),
    digest_end FLOAT,
    digest_pending_end FLOAT,
    PRIMARY KEY (account_id, region)
)""",
    """CREATE TABLE audit_export_files (
    s3_object VARCHAR(1024) NOT NULL,
    account_id VARCHAR(12) NOT NULL,
    region VARCHAR(32) NOT NULL,
    hash_value VARCHAR(64) NOT NULL,
    oldest_event FLOAT NOT NULL,
    newest_event FLOAT NOT NULL,
    first_id BIGINT NOT NULL,
    last_id BIGINT NOT NULL,
    records INTEGER NOT NULL,
    digest_end FLOAT,
    PRIMARY KEY (s3_object)
)""",
    "CREATE INDEX ix_audit_export_files_digest ON audit_export_files (account_id, region, digest_end)",
    """CREATE TABLE audit_export_lease (
    name VARCHAR(32) NOT NULL,
    holder VARCHAR(64) NOT NULL,
    expires FLOAT NOT NULL,
    scanned_id BIGINT NOT NULL,
    PRIMARY KEY (name)
)""",
    "CREATE INDEX ix_audit_account_region ON audit_events (account_id, region, id)",
)

# v13: the lookup attributes cost less to write. Each record writes about six attribute rows, and in
# the audit writer they cost three times the record itself (profiled under Encrypt load): on SQLite the
# table becomes WITHOUT ROWID (the primary key is the table: one B-tree instead of two), and the index
# on audit_id goes (pruning finds a chain's rows by the primary key's (account_id, region) prefix).
_V13: tuple[str | dict[str, str], ...] = (
    "DROP INDEX ix_audit_attributes_audit",
    {"sqlite": "ALTER TABLE audit_attributes RENAME TO audit_attributes_v12", "postgresql": "SELECT 1"},
    {
        "sqlite": """CREATE TABLE audit_attributes (
    audit_id BIGINT NOT NULL,
    account_id VARCHAR(12) NOT NULL,
    region VARCHAR(32) NOT NULL,
    name VARCHAR(16) NOT NULL,
    value VARCHAR(512) NOT NULL,
    event_time FLOAT NOT NULL,
    PRIMARY KEY (account_id, region, name, value, event_time, audit_id)
) WITHOUT ROWID""",
        "postgresql": "SELECT 1",
    },
    {
        "sqlite": """INSERT INTO audit_attributes (audit_id, account_id, region, name, value, event_time)
    SELECT audit_id, account_id, region, name, value, event_time FROM audit_attributes_v12""",
        "postgresql": "SELECT 1",
    },
    {"sqlite": "DROP TABLE audit_attributes_v12", "postgresql": "SELECT 1"},
)

# --- v14: IAM account aliases (one per account, unique across the installation, as in AWS) ---------------
_V14 = (
    """CREATE TABLE account_aliases (
    account_alias VARCHAR(63) NOT NULL,
    account_id VARCHAR(12) NOT NULL,
    created_at FLOAT NOT NULL,
    PRIMARY KEY (account_alias)
)""",
    "CREATE UNIQUE INDEX ix_account_aliases_account ON account_aliases (account_id)",
)

MIGRATIONS: list[tuple[int, Sequence[str | dict[str, str]]]] = [
    (1, _V1),
    (2, _V2),
    (3, _V3),
    (4, _V4),
    (5, _V5),
    (6, _V6),
    (7, _V7),
    (8, _V8),
    (9, _V9),
    (10, _V10),
    (11, _V11),
    (12, _V12),
    (13, _V13),
    (14, _V14),
]
LATEST = MIGRATIONS[-1][0]


def _sql(conn: Connection, statement: str | dict[str, str]) -> str:
    """A step's statement for the connection's backend (a statement spelled per backend is a dict)."""
    dialect = conn.dialect.name
    if isinstance(statement, dict):
        return statement[dialect]
    return statement.format(**_TYPES[dialect])


def migrate(conn: Connection, target: int = LATEST, *, now: float) -> list[int]:
    """Apply the steps up to ``target`` not yet applied (recorded as applied at ``now``); returns the
    versions applied.

    The caller holds a write lock (and the transaction). ``target`` below the newest is for tests that
    build a database as an older release left it.
    """
    conn.exec_driver_sql(_sql(conn, _SCHEMA_MIGRATIONS))
    done = {row[0] for row in conn.exec_driver_sql("SELECT version FROM schema_migrations")}
    applied = []
    for version, statements in MIGRATIONS:
        if version in done or version > target:
            continue
        for statement in statements:
            conn.exec_driver_sql(_sql(conn, statement))
        conn.execute(
            sa.text("INSERT INTO schema_migrations (version, applied_at) VALUES (:version, :at)"),
            {"version": version, "at": now},
        )
        applied.append(version)
    return applied
