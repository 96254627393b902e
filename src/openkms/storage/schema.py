"""The tables as the newest schema has them, for queries.

Nothing creates tables from these objects: ``migrations.py`` holds each version's frozen DDL. A change
here needs a new migration there (tests/unit/test_migrations.py compares the two).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("account_id", sa.String(12), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

account_aliases = sa.Table(
    "account_aliases",
    metadata,
    sa.Column("account_alias", sa.String(63), primary_key=True),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_account_aliases_account", "account_id", unique=True),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("account_id", sa.String(12), primary_key=True),
    sa.Column("user_name", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(32), nullable=False, unique=True),
    sa.Column("path", sa.String(512), nullable=False, default="/"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("inline_policies", sa.Text, nullable=False, default="{}"),
    sa.Column("tags", sa.Text, nullable=False, default="{}"),
)

access_keys = sa.Table(
    "access_keys",
    metadata,
    sa.Column("access_key_id", sa.String(128), primary_key=True),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("user_name", sa.String(64), nullable=False),
    sa.Column("secret_sealed", sa.LargeBinary, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_access_keys_user", "account_id", "user_name"),
)

keys = sa.Table(
    "keys",
    metadata,
    sa.Column("region", sa.String(32), primary_key=True),
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("key_spec", sa.String(32), nullable=False),
    sa.Column("key_usage", sa.String(32), nullable=False),
    sa.Column("origin", sa.String(32), nullable=False),
    sa.Column("key_state", sa.String(32), nullable=False),
    sa.Column("creation_date", sa.Float, nullable=False),
    sa.Column("policy", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("multi_region", sa.Boolean, nullable=False),
    sa.Column("deletion_date", sa.Float),
    sa.Column("pending_window_days", sa.Integer),
    sa.Column("rotation_enabled", sa.Boolean, nullable=False),
    sa.Column("rotation_period_days", sa.Integer),
    sa.Column("next_rotation_date", sa.Float),
    sa.Column("current_material_id", sa.String(64)),
    sa.Column("expiration_model", sa.String(32)),
    sa.Column("valid_to", sa.Float),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_keys_account", "region", "account_id", "key_id"),
    sa.Index("ix_keys_deletion", "key_state", "deletion_date"),
)

key_materials = sa.Table(
    "key_materials",
    metadata,
    sa.Column("region", sa.String(32), primary_key=True),
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("material_id", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("sealed", sa.LargeBinary),
    sa.Column("import_state", sa.String(32)),
    sa.Column("rotation_date", sa.Float),
    sa.Column("rotation_type", sa.String(16)),
    sa.Column("valid_to", sa.Float),
    sa.Column("expiration_model", sa.String(32)),
    sa.Column("description", sa.Text),
    sa.Index("ix_key_materials_expiry", "expiration_model", "valid_to"),  # v2
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("region", sa.String(32), primary_key=True),
    sa.Column("account_id", sa.String(12), primary_key=True),
    sa.Column("alias_name", sa.String(256), primary_key=True),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("creation_date", sa.Float, nullable=False),
    sa.Column("last_updated_date", sa.Float, nullable=False),
    sa.Index("ix_aliases_key", "region", "key_id"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("region", sa.String(32), primary_key=True),
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("tag_key", sa.String(128), primary_key=True),
    sa.Column("tag_value", sa.String(256), nullable=False),
)

changes = sa.Table(
    "changes",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("ident", sa.String(512), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("event_time", sa.Float, nullable=False),
    sa.Column("account_id", sa.String(12)),
    sa.Column("region", sa.String(32)),
    sa.Column("event_name", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(64)),
    sa.Column("principal_arn", sa.String(2048)),
    sa.Column("error_code", sa.String(128)),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("seq", sa.BigInteger),
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("hash", sa.String(64)),
    sa.Index("ix_audit_time", "event_time"),
    sa.Index("ix_audit_key", "key_id", "event_time"),
    sa.Index("ix_audit_trail", "account_id", "region", "event_time", "id"),
    sa.Index("ix_audit_trail_name", "account_id", "region", "event_name", "event_time", "id"),
    sa.Index("ix_audit_account_region", "account_id", "region", "id"),
    sa.Index("ix_audit_chain", "account_id", "region", "seq"),
)

# The LookupEvents attributes a record's columns do not hold: one row per (record, attribute, value);
# ``name`` is the attribute's LookupAttributeKey (Username, AccessKeyId, ReadOnly, EventSource,
# ResourceType, ResourceName), ``value`` its first 512 characters.
audit_attributes = sa.Table(
    "audit_attributes",
    metadata,
    sa.Column("audit_id", sa.BigInteger, nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("name", sa.String(16), nullable=False),
    sa.Column("value", sa.String(512), nullable=False),
    sa.Column("event_time", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint("account_id", "region", "name", "value", "event_time", "audit_id"),
    sqlite_with_rowid=False,
)

# One row per (account, Region) chain of audit records ('' for a record without one): the newest
# record's seq and hash, and the newest digest's number, signature and the last seq it covers.
audit_chain_heads = sa.Table(
    "audit_chain_heads",
    metadata,
    sa.Column("account_id", sa.String(12), primary_key=True),
    sa.Column("region", sa.String(32), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("digests", sa.Integer, nullable=False),
    sa.Column("digest_signature", sa.String(1024)),
    sa.Column("digested_seq", sa.BigInteger, nullable=False),
    sa.Column("digested_at", sa.Float),
)

# Signed statements about a chain: ``digest`` (records first_seq..last_seq, the last one's hash) and
# ``retention`` (records up to last_seq pruned); ``body`` is the signed JSON, ``signature`` its hex.
audit_digests = sa.Table(
    "audit_digests",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("start_time", sa.Float, nullable=False),
    sa.Column("end_time", sa.Float, nullable=False),
    sa.Column("first_seq", sa.BigInteger, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("last_hash", sa.String(64), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("signature", sa.String(1024), nullable=False),
    sa.Index("ix_audit_digests_chain", "account_id", "region", "number"),
)

# The digest signing keys (RSA, SHA256withRSA), one active per Region; old ones kept for verification.
audit_signing_keys = sa.Table(
    "audit_signing_keys",
    metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("valid_from", sa.Float, nullable=False),
    sa.Column("valid_to", sa.Float),
    sa.Column("public_key", sa.LargeBinary, nullable=False),
    sa.Column("private_key_sealed", sa.LargeBinary, nullable=False),
    sa.Index("ix_audit_signing_keys_region", "region", "valid_from"),
)

import_parameters = sa.Table(
    "import_parameters",
    metadata,
    sa.Column("token_id", sa.String(36), primary_key=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("wrapping_algorithm", sa.String(32), nullable=False),
    sa.Column("wrapping_key_spec", sa.String(16), nullable=False),
    sa.Column("private_key_sealed", sa.LargeBinary, nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
    sa.Index("ix_import_parameters_expires", "expires"),
)

grants = sa.Table(
    "grants",
    metadata,
    sa.Column("grant_id", sa.String(64), primary_key=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("name", sa.String(256)),
    sa.Column("creation_date", sa.Float, nullable=False),
    sa.Column("grantee_principal", sa.String(256), nullable=False),
    sa.Column("retiring_principal", sa.String(256)),
    sa.Column("operations", sa.Text, nullable=False),
    sa.Column("constraints", sa.Text),
    sa.Index("ix_grants_key", "region", "key_id", "grant_id"),
    sa.Index("ix_grants_retiring", "retiring_principal"),
)


# --- v3: IAM roles, managed policies and their attachments, STS sessions ----------------------------
roles = sa.Table(
    "roles",
    metadata,
    sa.Column("account_id", sa.String(12), primary_key=True),
    sa.Column("role_name", sa.String(64), primary_key=True),
    sa.Column("role_id", sa.String(32), nullable=False, unique=True),
    sa.Column("path", sa.String(512), nullable=False),
    sa.Column("trust_policy", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("max_session_duration", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("inline_policies", sa.Text, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
)

managed_policies = sa.Table(
    "managed_policies",
    metadata,
    sa.Column("account_id", sa.String(12), primary_key=True),
    sa.Column("policy_name", sa.String(128), primary_key=True),
    sa.Column("policy_id", sa.String(32), nullable=False, unique=True),
    sa.Column("arn", sa.String(2048), nullable=False, unique=True),
    sa.Column("path", sa.String(512), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

policy_attachments = sa.Table(
    "policy_attachments",
    metadata,
    sa.Column("account_id", sa.String(12), primary_key=True),
    sa.Column("principal_kind", sa.String(8), primary_key=True),  # "user" or "role"
    sa.Column("principal_name", sa.String(64), primary_key=True),
    sa.Column("policy_arn", sa.String(2048), primary_key=True),
    sa.Index("ix_policy_attachments_arn", "policy_arn"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("access_key_id", sa.String(128), primary_key=True),
    sa.Column("secret_sealed", sa.LargeBinary, nullable=False),
    sa.Column("token_sha256", sa.LargeBinary, nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("role_name", sa.String(64), nullable=False),
    sa.Column("role_id", sa.String(32), nullable=False),
    sa.Column("role_path", sa.String(512), nullable=False),
    sa.Column("session_name", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("source_identity", sa.String(64)),
    sa.Index("ix_sessions_expires", "expires"),
    sa.Index("ix_sessions_role", "account_id", "role_name"),
)

# --- v5: web console sessions (see openkms.console.sessions) -----------------------------------------
# Only the SHA-256 of the random session id is stored, never the id itself nor any secret.
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("session_hash", sa.String(64), primary_key=True),
    sa.Column("access_key_id", sa.String(128), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
    sa.Column("prefs", sa.Text, nullable=False),
    sa.Index("ix_console_sessions_last_seen", "last_seen"),
    sa.Index("ix_console_sessions_access_key", "access_key_id"),
)

# --- v6: the XKS proxy's key stores, their SigV4 credentials and their external keys ------------------
# Secrets (credentials' secret access keys, keys' AES-256 material) are stored sealed under the root key.
xks_keystores = sa.Table(
    "xks_keystores",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("max_tps", sa.Float),  # requests per second on its path prefix; NULL: unlimited
    sa.Column("client_cn", sa.String(256)),  # the TLS client certificate's subject CN; NULL: any
)

xks_credentials = sa.Table(
    "xks_credentials",
    metadata,
    sa.Column("access_key_id", sa.String(32), primary_key=True),
    sa.Column("keystore", sa.String(64), nullable=False),
    sa.Column("secret_sealed", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("valid_until", sa.Float),  # NULL: the key store's current credential
    sa.Index("ix_xks_credentials_keystore", "keystore"),
)

xks_keys = sa.Table(
    "xks_keys",
    metadata,
    sa.Column("keystore", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(128), primary_key=True),
    sa.Column("key_spec", sa.String(16), nullable=False),
    sa.Column("key_usage", sa.String(32), nullable=False),  # "ENCRYPT,DECRYPT", "ENCRYPT", "DECRYPT" or ""
    sa.Column("status", sa.String(16), nullable=False),  # ENABLED or DISABLED
    sa.Column("material_sealed", sa.LargeBinary, nullable=False),
    sa.Column("allowed_principals", sa.Text, nullable=False),  # JSON list; empty: any principal
    sa.Column("created_at", sa.Float, nullable=False),
)

# --- v7: multi-Region keys (see openkms.service.kms.multi_region) -------------------------------------
# One row per key of a set of related multi-Region keys (the primary and each replica, all with the
# same key id), naming the set's primary Region; ``sync_since`` is when the key entered a transient
# state (Creating after ReplicateKey, Updating after UpdatePrimaryRegion), which the synchronization job
# ends once the configured delay has passed (None: not in one).
multi_region_keys = sa.Table(
    "multi_region_keys",
    metadata,
    sa.Column("region", sa.String(32), primary_key=True),
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("primary_region", sa.String(32), nullable=False),
    sa.Column("sync_since", sa.Float),
    sa.Index("ix_multi_region_keys_set", "account_id", "key_id"),
    sa.Index("ix_multi_region_keys_sync", "sync_since"),
)

# --- v8: the external key stores this service uses as a KMS, and the KMS keys in them -----------------
custom_key_stores = sa.Table(
    "custom_key_stores",
    metadata,
    sa.Column("custom_key_store_id", sa.String(64), primary_key=True),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("store_type", sa.String(32), nullable=False),  # EXTERNAL_KEY_STORE
    sa.Column("connection_state", sa.String(16), nullable=False),
    sa.Column("connection_error_code", sa.String(64)),  # set while FAILED
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("uri_endpoint", sa.String(128), nullable=False),
    sa.Column("uri_path", sa.String(128), nullable=False),
    sa.Column("connectivity", sa.String(32), nullable=False),
    sa.Column("access_key_id", sa.String(32), nullable=False),
    sa.Column("secret_sealed", sa.LargeBinary, nullable=False),  # the proxy credential's secret, sealed
    sa.Index("ux_custom_key_stores_name", "region", "account_id", "name", unique=True),
)

external_store_keys = sa.Table(
    "external_store_keys",
    metadata,
    sa.Column("region", sa.String(32), primary_key=True),
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("custom_key_store_id", sa.String(64), nullable=False),
    sa.Column("xks_key_id", sa.String(128), nullable=False),
    sa.Index("ix_external_store_keys_store", "custom_key_store_id", "xks_key_id"),
)

# --- v9: the keyring, wrapped by the root of trust (see openkms.service.trust) ------------------------
# One row (id 1). ``source`` is the root of trust (file, pkcs11 or shamir) and ``config`` its public
# settings (JSON: the token and key labels, the number of shares); ``wrapped`` the keyring sealed by it;
# ``generation`` grows with every change (writes compare and set it). A root key rotation's progress:
# ``rotation_state`` idle, running or done, with the rows re-sealed of the total counted at its start.
keyring = sa.Table(
    "keyring",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("rotation_state", sa.String(16), nullable=False),
    sa.Column("rotation_started", sa.Float),
    sa.Column("rotation_resealed", sa.Integer, nullable=False),
    sa.Column("rotation_total", sa.Integer, nullable=False),
)

# --- v12: the audit export (openkms.audit.export) -------------------------------------------------------
# Per account and Region: the last audit row id delivered in a log file (``exported_id``), the range
# planned for the next file (``pending_id``, named from ``pending_at``: a crash rewrites the same file),
# and the head of the digest chain (the last digest's object, signature, SHA-256 and end time) with the
# end time of a digest planned but not yet written.
audit_export_state = sa.Table(
    "audit_export_state",
    metadata,
    sa.Column("account_id", sa.String(12), primary_key=True),
    sa.Column("region", sa.String(32), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("exported_id", sa.BigInteger, nullable=False),
    sa.Column("pending_id", sa.BigInteger),
    sa.Column("pending_at", sa.Float),
    sa.Column("digest_object", sa.String(1024)),
    sa.Column("digest_signature", sa.Text),
    sa.Column("digest_hash", sa.String(64)),
    sa.Column("digest_end", sa.Float),
    sa.Column("digest_pending_end", sa.Float),
)

# The log files written, each listed by the digest whose end time is ``digest_end`` (NULL: not yet).
audit_export_files = sa.Table(
    "audit_export_files",
    metadata,
    sa.Column("s3_object", sa.String(1024), primary_key=True),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("hash_value", sa.String(64), nullable=False),
    sa.Column("oldest_event", sa.Float, nullable=False),
    sa.Column("newest_event", sa.Float, nullable=False),
    sa.Column("first_id", sa.BigInteger, nullable=False),
    sa.Column("last_id", sa.BigInteger, nullable=False),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("digest_end", sa.Float),
    sa.Index("ix_audit_export_files_digest", "account_id", "region", "digest_end"),
)

# The one exporter among the processes on the database (``name`` "export"): its holder until ``expires``,
# and the audit row id up to which every (account, Region) has its state row.
audit_export_lease = sa.Table(
    "audit_export_lease",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
    sa.Column("scanned_id", sa.BigInteger, nullable=False),
)
