"""The rows the store reads and writes (plain dataclasses) and their conversions to and from columns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from openkms.domain.keyspec import KeySpec, KeyUsage, Origin
from openkms.domain.model import Alias, ImportState, KeyMaterial, KeyRecord, KeyState, MaterialState


class Conflict(Exception):
    """A row with that identity exists already."""


@dataclass(frozen=True, slots=True)
class AccessKeyRow:
    access_key_id: str
    account_id: str
    user_name: str
    secret_sealed: bytes
    status: str
    created_at: float


@dataclass(frozen=True, slots=True)
class GrantRow:
    grant_id: str
    region: str
    key_id: str
    account_id: str
    name: str | None
    creation_date: float
    grantee_principal: str
    retiring_principal: str | None
    operations: tuple[str, ...]
    constraints: dict[str, dict[str, str]] | None


def grant_from_row(r: Any) -> GrantRow:
    return GrantRow(
        r.grant_id,
        r.region,
        r.key_id,
        r.account_id,
        r.name,
        r.creation_date,
        r.grantee_principal,
        r.retiring_principal,
        tuple(json.loads(r.operations)),
        json.loads(r.constraints) if r.constraints else None,
    )


@dataclass(frozen=True, slots=True)
class UserRow:
    account_id: str
    user_name: str
    user_id: str
    path: str
    created_at: float
    inline_policies: dict[str, Any]
    tags: dict[str, str]


def user_from_row(r: Any) -> UserRow:
    return UserRow(
        r.account_id,
        r.user_name,
        r.user_id,
        r.path,
        r.created_at,
        json.loads(r.inline_policies),
        json.loads(r.tags),
    )


# -- IAM roles, managed policies and STS sessions (migration 3) ---------------------------------------


@dataclass(frozen=True, slots=True)
class RoleRow:
    account_id: str
    role_name: str
    role_id: str
    path: str
    trust_policy: str
    description: str
    max_session_duration: int
    created_at: float
    inline_policies: dict[str, Any]
    tags: dict[str, str]


@dataclass(frozen=True, slots=True)
class ManagedPolicyRow:
    account_id: str
    policy_name: str
    policy_id: str
    arn: str
    path: str
    description: str
    document: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class SessionRow:
    """Temporary credentials from AssumeRole. Only a SHA-256 of the session token is stored."""

    access_key_id: str
    secret_sealed: bytes
    token_sha256: bytes
    account_id: str
    role_name: str
    role_id: str
    role_path: str
    session_name: str
    created_at: float
    expires: float
    tags: dict[str, str]
    source_identity: str | None


def role_from_row(r: Any) -> RoleRow:
    return RoleRow(
        r.account_id,
        r.role_name,
        r.role_id,
        r.path,
        r.trust_policy,
        r.description,
        r.max_session_duration,
        r.created_at,
        json.loads(r.inline_policies),
        json.loads(r.tags),
    )


def managed_from_row(r: Any) -> ManagedPolicyRow:
    return ManagedPolicyRow(
        r.account_id,
        r.policy_name,
        r.policy_id,
        r.arn,
        r.path,
        r.description,
        r.document,
        r.created_at,
        r.updated_at,
    )


def key_from_row(r: Any) -> KeyRecord:
    return KeyRecord(
        region=r.region,
        key_id=r.key_id,
        account_id=r.account_id,
        key_spec=KeySpec(r.key_spec),
        key_usage=KeyUsage(r.key_usage),
        origin=Origin(r.origin),
        key_state=KeyState(r.key_state),
        creation_date=r.creation_date,
        policy=r.policy,
        description=r.description,
        multi_region=bool(r.multi_region),
        deletion_date=r.deletion_date,
        pending_window_days=r.pending_window_days,
        rotation_enabled=bool(r.rotation_enabled),
        rotation_period_days=r.rotation_period_days,
        next_rotation_date=r.next_rotation_date,
        current_material_id=r.current_material_id,
        expiration_model=r.expiration_model,
        valid_to=r.valid_to,
        version=r.version,
    )


def key_values(k: KeyRecord) -> dict[str, Any]:
    return {
        "region": k.region,
        "key_id": k.key_id,
        "account_id": k.account_id,
        "key_spec": str(k.key_spec),
        "key_usage": str(k.key_usage),
        "origin": str(k.origin),
        "key_state": str(k.key_state),
        "creation_date": k.creation_date,
        "policy": k.policy,
        "description": k.description,
        "multi_region": k.multi_region,
        "deletion_date": k.deletion_date,
        "pending_window_days": k.pending_window_days,
        "rotation_enabled": k.rotation_enabled,
        "rotation_period_days": k.rotation_period_days,
        "next_rotation_date": k.next_rotation_date,
        "current_material_id": k.current_material_id,
        "expiration_model": k.expiration_model,
        "valid_to": k.valid_to,
        "version": k.version,
    }


def material_from_row(r: Any) -> KeyMaterial:
    return KeyMaterial(
        material_id=r.material_id,
        state=MaterialState(r.state),
        created=r.created,
        sealed=bytes(r.sealed) if r.sealed is not None else None,
        import_state=ImportState(r.import_state) if r.import_state else None,
        rotation_date=r.rotation_date,
        rotation_type=r.rotation_type,
        valid_to=r.valid_to,
        expiration_model=r.expiration_model,
        description=r.description,
    )


def material_values(region: str, key_id: str, m: KeyMaterial) -> dict[str, Any]:
    return {
        "region": region,
        "key_id": key_id,
        "material_id": m.material_id,
        "state": str(m.state),
        "created": m.created,
        "sealed": m.sealed,
        "import_state": str(m.import_state) if m.import_state else None,
        "rotation_date": m.rotation_date,
        "rotation_type": m.rotation_type,
        "valid_to": m.valid_to,
        "expiration_model": m.expiration_model,
        "description": m.description,
    }


@dataclass(frozen=True, slots=True)
class ConsoleSessionRow:
    """A web console session (migration 5): who signed in, where, and until when."""

    session_hash: str
    access_key_id: str
    account_id: str
    region: str
    created_at: float
    last_seen: float
    expires: float
    prefs: dict[str, Any]


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def alias_from_row(r: Any) -> Alias:
    return Alias(r.region, r.account_id, r.alias_name, r.key_id, r.creation_date, r.last_updated_date)


@dataclass(frozen=True, slots=True)
class XksKeyStoreRow:
    """A key store of the XKS proxy (migration 6): its API is at ``/xks/<name>/kms/xks/v1``."""

    name: str
    created_at: float
    max_tps: float | None  # requests per second on its path prefix; None: unlimited
    client_cn: str | None  # the subject CN its TLS client certificates must have; None: any


@dataclass(frozen=True, slots=True)
class XksCredentialRow:
    """A SigV4 credential of a key store; ``valid_until`` None for the current one."""

    access_key_id: str
    keystore: str
    secret_sealed: bytes
    created_at: float
    valid_until: float | None


@dataclass(frozen=True, slots=True)
class XksKeyRow:
    """An external key of a key store: AES-256 material (sealed), usage, status, allowed callers."""

    keystore: str
    key_id: str
    key_spec: str
    key_usage: tuple[str, ...]
    status: str
    material_sealed: bytes
    allowed_principals: tuple[str, ...]
    created_at: float


@dataclass(slots=True)
class CustomKeyStoreRow:
    """An external key store this service uses as a KMS (migration 8): where its XKS proxy is, the
    SigV4 credential it signs with (the secret sealed) and its connection state."""

    custom_key_store_id: str
    region: str
    account_id: str
    name: str
    store_type: str
    connection_state: str
    connection_error_code: str | None
    created_at: float
    uri_endpoint: str
    uri_path: str
    connectivity: str
    access_key_id: str
    secret_sealed: bytes


@dataclass(frozen=True, slots=True)
class ExternalStoreKeyRow:
    """A KMS key in an external key store and the id of its external key at the proxy."""

    region: str
    key_id: str
    custom_key_store_id: str
    xks_key_id: str
