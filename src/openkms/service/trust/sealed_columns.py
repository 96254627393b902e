"""Every column the service stores sealed, with the purpose and identity each value is bound to: what a
root key rotation re-seals and what its final scan checks. A new sealed column is added here (the
unit test tests/unit/test_keyring.py finds every ``LargeBinary`` column named ``*sealed``)."""

from __future__ import annotations

from dataclasses import dataclass

from openkms.service.identity.principals import SECRET_PURPOSE as ACCESS_KEY_PURPOSE
from openkms.service.identity.principals import SESSION_PURPOSE
from openkms.service.kms.core import MATERIAL_PURPOSE
from openkms.service.kms.custom_key_stores import SECRET_PURPOSE as PROXY_CREDENTIAL_PURPOSE
from openkms.service.kms.importing import WRAPPING_PURPOSE
from openkms.service.trail.signing import SIGNING_PURPOSE as AUDIT_SIGNING_PURPOSE
from openkms.service.xks.admin import MATERIAL_PURPOSE as XKS_MATERIAL_PURPOSE
from openkms.service.xks.admin import SECRET_PURPOSE as XKS_SECRET_PURPOSE


@dataclass(frozen=True)
class SealedColumn:
    """``table.column`` holds values sealed for ``purpose``; a row's identity is its ``ident`` columns'
    values joined by ``/``; ``keys`` are columns that name one row (its primary key, and any other column
    of ``ident``), the order the rotation walks the table in."""

    table: str
    column: str
    purpose: str
    keys: tuple[str, ...]
    ident: tuple[str, ...]

    def ident_of(self, key: tuple[str, ...]) -> str:
        values = dict(zip(self.keys, key, strict=True))
        return "/".join(values[name] for name in self.ident)


SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn("access_keys", "secret_sealed", ACCESS_KEY_PURPOSE, ("access_key_id",), ("access_key_id",)),
    SealedColumn("sessions", "secret_sealed", SESSION_PURPOSE, ("access_key_id",), ("access_key_id",)),
    SealedColumn(
        "key_materials",
        "sealed",
        MATERIAL_PURPOSE,
        ("region", "key_id", "material_id"),
        ("region", "key_id", "material_id"),
    ),
    SealedColumn("import_parameters", "private_key_sealed", WRAPPING_PURPOSE, ("token_id",), ("token_id",)),
    SealedColumn(
        "xks_credentials",
        "secret_sealed",
        XKS_SECRET_PURPOSE,
        ("access_key_id", "keystore"),
        ("keystore", "access_key_id"),
    ),
    SealedColumn(
        "xks_keys", "material_sealed", XKS_MATERIAL_PURPOSE, ("keystore", "key_id"), ("keystore", "key_id")
    ),
    SealedColumn(
        "custom_key_stores",
        "secret_sealed",
        PROXY_CREDENTIAL_PURPOSE,
        ("custom_key_store_id",),
        ("custom_key_store_id",),
    ),
    SealedColumn(
        "audit_signing_keys",
        "private_key_sealed",
        AUDIT_SIGNING_PURPOSE,
        ("region", "fingerprint"),
        ("region", "fingerprint"),
    ),
)
