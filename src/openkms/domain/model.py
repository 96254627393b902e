"""The records the service keeps: keys, key materials, aliases and principals (plain data, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from openkms.arns import key_arn
from openkms.domain.keyspec import KeySpec, KeyUsage, Origin


class KeyState(StrEnum):
    CREATING = "Creating"
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    PENDING_DELETION = "PendingDeletion"
    PENDING_IMPORT = "PendingImport"
    PENDING_REPLICA_DELETION = "PendingReplicaDeletion"
    UNAVAILABLE = "Unavailable"
    UPDATING = "Updating"


class MaterialState(StrEnum):
    CURRENT = "CURRENT"
    NON_CURRENT = "NON_CURRENT"
    PENDING_ROTATION = "PENDING_ROTATION"
    # Shown (never stored) for new material of a multi-Region primary key while a replica still has
    # to import it: RotateKeyOnDemand waits for every replica.
    PENDING_MULTI_REGION_IMPORT_AND_ROTATION = "PENDING_MULTI_REGION_IMPORT_AND_ROTATION"


class ImportState(StrEnum):
    IMPORTED = "IMPORTED"
    PENDING_IMPORT = "PENDING_IMPORT"


@dataclass(slots=True)
class KeyRecord:
    """A KMS key's metadata as stored (key material lives in :class:`KeyMaterial` rows)."""

    region: str
    key_id: str
    account_id: str
    key_spec: KeySpec
    key_usage: KeyUsage
    origin: Origin
    key_state: KeyState
    creation_date: float
    policy: str
    description: str = ""
    multi_region: bool = False
    deletion_date: float | None = None
    pending_window_days: int | None = None
    rotation_enabled: bool = False
    rotation_period_days: int | None = None
    next_rotation_date: float | None = None
    current_material_id: str | None = None
    expiration_model: str | None = None
    valid_to: float | None = None
    version: int = 1
    # Multi-Region keys (read with the key from ``multi_region_keys``, not columns of ``keys``): the
    # Region of the set's primary key (None: this key's own, as for a new primary) and the Regions of
    # every replica of the set, this key's included when it is one.
    primary_region: str | None = None
    replica_regions: tuple[str, ...] = ()

    @property
    def arn(self) -> str:
        return key_arn(self.region, self.account_id, self.key_id)

    @property
    def is_replica(self) -> bool:
        """A multi-Region replica key (its set's primary key is in another Region)."""
        return self.multi_region and self.primary_region not in (None, self.region)

    @property
    def multi_region_type(self) -> str | None:
        """``PRIMARY`` or ``REPLICA`` for a multi-Region key (MultiRegionKeyType), None otherwise."""
        if not self.multi_region:
            return None
        return "REPLICA" if self.is_replica else "PRIMARY"

    @property
    def related_regions(self) -> tuple[str, ...]:
        """Every Region of the key's multi-Region set, the primary's first (just its own for others)."""
        primary = self.primary_region or self.region
        return (primary, *(r for r in self.replica_regions if r != primary))


@dataclass(slots=True)
class KeyMaterial:
    """One key material of a key. ``sealed`` is the material sealed under the root key, or None once
    imported material has been deleted (the row then only remembers the id and its history)."""

    material_id: str
    state: MaterialState
    created: float
    sealed: bytes | None
    import_state: ImportState | None = None
    rotation_date: float | None = None
    rotation_type: str | None = None
    valid_to: float | None = None
    expiration_model: str | None = None
    description: str | None = None


@dataclass(slots=True)
class Alias:
    region: str
    account_id: str
    alias_name: str
    target_key_id: str
    creation_date: float
    last_updated_date: float


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request."""

    account_id: str
    arn: str
    principal_id: str
    identity_type: str  # "IAMUser", "Root", "AssumedRole", "AWSService"
    user_name: str | None = None
    access_key_id: str | None = None
    tags: tuple[tuple[str, str], ...] = field(default=())
    # Assumed-role sessions (identity_type "AssumedRole", arn arn:aws:sts::A:assumed-role/R/S,
    # principal_id "AROA…:S"): the role's IAM ARN (with its path) and the session name.
    role_arn: str | None = None
    session_name: str | None = None

    @property
    def role_name(self) -> str | None:
        """The assumed role's name (the last segment of ``role_arn``), or None for other principals."""
        return self.role_arn.rsplit("/", 1)[-1] if self.role_arn else None
