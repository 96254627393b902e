"""Bring your own key: GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial, the
on-demand rotation of imported symmetric keys, and the deletion of material whose ValidTo has passed.

Rules (AWS's): only EXTERNAL keys; the first material imported is permanently bound to the key and
becomes current; reimport must be the same material (asymmetric and HMAC keys can only ever have that
one); symmetric keys may take NEW_KEY_MATERIAL, pending rotation until RotateKeyOnDemand makes it
current. A key is Enabled only while every permanently associated material is imported.

Multi-Region keys (AWS's "Importing key material into multi-Region keys"): a replica of an EXTERNAL
primary knows the ids of the primary's materials but not the materials; the same material must be
imported into it (any other is refused), and new material is imported into the primary first, then
into every replica, before RotateKeyOnDemand on the primary makes it current everywhere.
"""

from __future__ import annotations

import uuid
from typing import Any

from openkms.audit.events import service_event_record, storage_row
from openkms.crypto import asymmetric, tokens, wrapping
from openkms.crypto.envelope import SealError
from openkms.domain.keyspec import HMAC_SPECS, RSA_SPECS, KeySpec, Origin
from openkms.domain.keystate import check_key_state
from openkms.domain.model import ImportState, KeyMaterial, KeyRecord, KeyState, MaterialState
from openkms.errors import (
    ExpiredImportTokenException,
    IncorrectKeyMaterialException,
    InvalidCiphertextException,
    InvalidImportTokenException,
    KMSInvalidStateException,
    LimitExceededException,
    NotFoundException,
    UnsupportedOperationException,
    ValidationException,
)
from openkms.service.kms.context import RequestContext
from openkms.service.kms.core import KmsCore
from openkms.service.kms.multi_region import replicas_for_update, require_primary, synchronize_event
from openkms.storage.store import Tx

DAY = 86400.0
PARAMETERS_LIFETIME = DAY
MAX_VALID_TO_DAYS = 365
WRAPPING_PURPOSE = "wrapping-private-key"
EXPIRES = "KEY_MATERIAL_EXPIRES"
DOES_NOT_EXPIRE = "KEY_MATERIAL_DOES_NOT_EXPIRE"
NEW = "NEW_KEY_MATERIAL"
EXISTING = "EXISTING_KEY_MATERIAL"
HMAC_MIN_BYTES = {KeySpec.HMAC_224: 28, KeySpec.HMAC_256: 32, KeySpec.HMAC_384: 48, KeySpec.HMAC_512: 64}
HMAC_MAX_BYTES = 128
MAX_ON_DEMAND_ROTATIONS = 25
_INVALID_TOKEN = "The import token is invalid or associated with a different KMS key."  # noqa: S105


def _require_external(record: KeyRecord) -> None:
    if record.origin is not Origin.EXTERNAL:
        raise UnsupportedOperationException(
            f"{record.arn} origin is {record.origin} which is not valid for this operation."
        )


def _china(region: str) -> bool:
    return region.startswith("cn-")


def check_wrapping_choice(spec: KeySpec, algorithm: str, wrapping_spec: str, region: str) -> None:
    """AWS's wrapping algorithm x wrapping key spec x key material rules."""
    if algorithm == "RSAES_PKCS1_V1_5":
        raise ValidationException(
            "The wrapping algorithm RSAES_PKCS1_V1_5 is no longer supported. "
            "Use RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1, RSA_AES_KEY_WRAP_SHA_256 or RSA_AES_KEY_WRAP_SHA_1."
        )
    if algorithm == "SM2PKE" or wrapping_spec == "SM2":
        raise ValidationException(f"SM2 wrapping is only supported in China Regions, not in {region}.")
    if spec in RSA_SPECS and algorithm in wrapping.OAEP_ALGORITHMS:
        raise ValidationException(
            f"Wrapping algorithm {algorithm} cannot wrap {spec} key material. "
            "Use RSA_AES_KEY_WRAP_SHA_256 or RSA_AES_KEY_WRAP_SHA_1."
        )
    if (
        spec is KeySpec.ECC_NIST_P521
        and wrapping_spec == "RSA_2048"
        and algorithm in wrapping.OAEP_ALGORITHMS
    ):
        raise ValidationException(
            f"Wrapping algorithm {algorithm} with wrapping key spec RSA_2048 cannot wrap ECC_NIST_P521 key "
            "material. Use a larger wrapping key spec or RSA_AES_KEY_WRAP_SHA_256."
        )


def get_parameters_for_import(
    core: KmsCore, ctx: RequestContext, *, key_id: str, wrapping_algorithm: str, wrapping_key_spec: str
) -> dict[str, Any]:
    record = core.resolve(ctx, key_id, action="GetParametersForImport").record
    _require_external(record)
    check_key_state("GetParametersForImport", record)
    check_wrapping_choice(record.key_spec, wrapping_algorithm, wrapping_key_spec, ctx.region)
    private_der, public_der = core.keypairs.key_pair(KeySpec(wrapping_key_spec))
    token_id = str(uuid.uuid4())
    expires = core.clock.now() + PARAMETERS_LIFETIME
    sealed = core.root.seal(WRAPPING_PURPOSE, token_id, private_der)
    with core.store.write() as tx:
        tx.put_import_parameters(
            token_id, record.region, record.key_id, wrapping_algorithm, wrapping_key_spec, sealed, expires
        )
    claims = tokens.ImportTokenClaims(
        token_id=token_id,
        region=record.region,
        account_id=record.account_id,
        key_id=record.key_id,
        wrapping_algorithm=wrapping_algorithm,
        wrapping_key_spec=wrapping_key_spec,
        expires=expires,
    )
    return {
        "key_id": record.arn,
        "import_token": tokens.issue(core.root.token_key(), claims),
        "public_key": public_der,
        "parameters_valid_to": expires,
    }


def check_material(spec: KeySpec, material: bytes) -> None:
    """Does the unwrapped material have the format AWS requires for this key spec?"""
    if spec is KeySpec.SYMMETRIC_DEFAULT:
        ok = len(material) == 32
    elif spec in HMAC_SPECS:
        ok = HMAC_MIN_BYTES[spec] <= len(material) <= HMAC_MAX_BYTES
    else:
        ok = asymmetric.material_matches_spec(spec, material)
    if not ok:
        raise IncorrectKeyMaterialException(f"The key material is not valid for key spec {spec}.")


def _check_expiry_params(now: float, expiration_model: str | None, valid_to: float | None) -> str:
    model = expiration_model or EXPIRES
    if model == EXPIRES:
        if valid_to is None:
            raise ValidationException(
                "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES"
            )
        if valid_to <= now:
            raise ValidationException("The validTo date must be in the future.")
        if valid_to > now + MAX_VALID_TO_DAYS * DAY:
            raise ValidationException("The validTo date must be no more than 365 days in the future.")
    elif valid_to is not None:
        raise ValidationException(
            "A validTo date must not be set if the ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE"
        )
    return model


def _open_token(
    core: KmsCore, tx: Tx, record: KeyRecord, token: bytes, now: float
) -> tuple[tokens.ImportTokenClaims, bytes]:
    try:
        claims = tokens.open_token(core.root.token_key(), token)
    except tokens.TokenError:
        raise InvalidImportTokenException(_INVALID_TOKEN) from None
    if (claims.region, claims.account_id, claims.key_id) != (record.region, record.account_id, record.key_id):
        raise InvalidImportTokenException(_INVALID_TOKEN)
    if claims.expires <= now:
        raise ExpiredImportTokenException(
            "The import token has expired. Download a new one with GetParametersForImport."
        )
    row = tx.get_import_parameters(claims.token_id)
    if row is None:
        raise InvalidImportTokenException("The import token has already been used or has expired.")
    try:
        private_der = core.root.unseal(WRAPPING_PURPOSE, claims.token_id, row[2])
    except SealError:
        raise InvalidImportTokenException(_INVALID_TOKEN) from None
    return claims, private_der


def _refresh_key(record: KeyRecord, materials: list[KeyMaterial]) -> None:
    """Key state and key-level ExpirationModel/ValidTo from the key's materials."""
    bound = [m for m in materials if m.state in (MaterialState.CURRENT, MaterialState.NON_CURRENT)]
    complete = bool(bound) and all(m.import_state is ImportState.IMPORTED for m in bound)
    if record.key_state in (KeyState.PENDING_DELETION, KeyState.PENDING_REPLICA_DELETION):
        pass
    elif not complete:
        record.key_state = KeyState.PENDING_IMPORT
    elif record.key_state is KeyState.PENDING_IMPORT:
        record.key_state = KeyState.ENABLED
    if complete:
        expiring = [m.valid_to for m in bound if m.expiration_model == EXPIRES and m.valid_to is not None]
        record.expiration_model = EXPIRES if expiring else DOES_NOT_EXPIRE
        record.valid_to = min(expiring) if expiring else None
    else:
        record.expiration_model = None
        record.valid_to = None


def import_key_material(
    core: KmsCore,
    ctx: RequestContext,
    *,
    key_id: str,
    import_token: bytes,
    encrypted_key_material: bytes,
    valid_to: float | None = None,
    expiration_model: str | None = None,
    import_type: str | None = None,
    key_material_description: str | None = None,
    key_material_id: str | None = None,
) -> dict[str, Any]:
    now = core.clock.now()
    model = _check_expiry_params(now, expiration_model, valid_to)
    if import_type == NEW and key_material_id is not None:
        raise ValidationException("KeyMaterialId cannot be specified when ImportType is NEW_KEY_MATERIAL.")
    with core.store.write() as tx:
        record = core.resolve_for_update(ctx, tx, key_id, action="ImportKeyMaterial")
        _require_external(record)
        check_key_state("ImportKeyMaterial", record)
        symmetric = record.key_spec is KeySpec.SYMMETRIC_DEFAULT
        if not symmetric and (import_type or key_material_id or key_material_description is not None):
            raise ValidationException(
                "ImportType, KeyMaterialId and KeyMaterialDescription are supported only for symmetric "
                "encryption keys."
            )
        if import_type == NEW and record.is_replica:
            require_primary(record)  # new material is imported into the primary key first
        claims, private_der = _open_token(core, tx, record, import_token, now)
        try:
            material = wrapping.unwrap(claims.wrapping_algorithm, private_der, encrypted_key_material)
        except wrapping.UnwrapError:
            raise InvalidCiphertextException(
                "The wrapped key material could not be decrypted with the import parameters."
            ) from None
        check_material(record.key_spec, material)
        material_id = core.root.material_id(record.key_id, material)
        if key_material_id is not None and key_material_id != material_id:
            raise IncorrectKeyMaterialException(
                f"The key material does not match key material {key_material_id} of {record.arn}."
            )
        materials = tx.get_materials(record.region, record.key_id)
        by_id = {m.material_id: m for m in materials}
        kind = import_type or (NEW if not materials else EXISTING)
        if kind == NEW and materials:
            if material_id in by_id:
                raise IncorrectKeyMaterialException(
                    f"The key material (id: {material_id}) is already associated with {record.arn}."
                )
            pending = [m for m in materials if m.state is MaterialState.PENDING_ROTATION]
            if pending:
                raise KMSInvalidStateException(
                    f"New key material (id: {material_id}) cannot be imported into KMS key {record.arn}, "
                    f"because another key material (id: {pending[0].material_id}) is pending rotation."
                )
            state = MaterialState.PENDING_ROTATION
        elif kind == NEW:
            state = MaterialState.CURRENT
        else:
            existing = by_id.get(material_id)
            if existing is None:
                raise IncorrectKeyMaterialException(
                    f"The key material is not the key material associated with {record.arn}."
                )
            state = existing.state
        previous = by_id.get(material_id)
        m = KeyMaterial(
            material_id=material_id,
            state=state,
            created=previous.created if previous else now,
            sealed=core.seal_material(record.region, record.key_id, material_id, material),
            import_state=ImportState.IMPORTED,
            rotation_date=previous.rotation_date if previous else None,
            rotation_type=previous.rotation_type if previous else None,
            valid_to=valid_to if model == EXPIRES else None,
            expiration_model=model,
            description=key_material_description
            if key_material_description is not None
            else (previous.description if previous else None),
        )
        tx.put_material(record.region, record.key_id, m)
        by_id[material_id] = m
        if state is MaterialState.CURRENT:
            record.current_material_id = material_id
        _refresh_key(record, list(by_id.values()))
        tx.update_key(record)
        tx.delete_import_parameters(claims.token_id)
        if previous is None and state is MaterialState.PENDING_ROTATION and record.multi_region:
            _announce_to_replicas(tx, record, m)
    result: dict[str, Any] = {"key_id": record.arn}
    if symmetric:
        result["key_material_id"] = material_id
    return result


def _announce_to_replicas(tx: Tx, primary: KeyRecord, m: KeyMaterial) -> None:
    """New material of a multi-Region primary key: each replica learns its id and description (not
    the material, which must be imported into it as EXISTING_KEY_MATERIAL)."""
    for region in primary.replica_regions:
        tx.put_material(
            region,
            primary.key_id,
            KeyMaterial(
                material_id=m.material_id,
                state=MaterialState.PENDING_ROTATION,
                created=m.created,
                sealed=None,
                import_state=ImportState.PENDING_IMPORT,
                description=m.description,
            ),
        )


def _delete_material(tx: Tx, record: KeyRecord, m: KeyMaterial) -> None:
    m.sealed = None
    m.import_state = ImportState.PENDING_IMPORT
    m.valid_to = None
    m.expiration_model = None
    tx.put_material(record.region, record.key_id, m)
    _refresh_key(record, tx.get_materials(record.region, record.key_id))
    tx.update_key(record)


def delete_imported_key_material(
    core: KmsCore, ctx: RequestContext, *, key_id: str, key_material_id: str | None = None
) -> dict[str, Any]:
    with core.store.write() as tx:
        record = core.resolve_for_update(ctx, tx, key_id, action="DeleteImportedKeyMaterial")
        _require_external(record)
        check_key_state("DeleteImportedKeyMaterial", record)
        materials = {m.material_id: m for m in tx.get_materials(record.region, record.key_id)}
        target_id = key_material_id or record.current_material_id
        target = materials.get(target_id) if target_id else None
        if target is None:
            if key_material_id is not None:
                raise NotFoundException(
                    f"Key material {key_material_id} is not associated with {record.arn}."
                )
        else:
            pending = target.state is MaterialState.PENDING_ROTATION
            _delete_material(tx, record, target)
            if pending and record.multi_region and not record.is_replica:
                # Material not yet current goes from the replicas too (AWS's rule for primaries).
                for replica in replicas_for_update(tx, record):
                    for copy in tx.get_materials(replica.region, replica.key_id):
                        if copy.material_id == target_id and copy.state is MaterialState.PENDING_ROTATION:
                            _delete_material(tx, replica, copy)
    core.store.scrub()
    result: dict[str, Any] = {"key_id": record.arn}
    # Like ImportKeyMaterial and DescribeKey: material IDs are shown for symmetric keys only.
    if target_id and record.key_spec is KeySpec.SYMMETRIC_DEFAULT:
        result["key_material_id"] = target_id
    return result


def rotate_external_on_demand(
    core: KmsCore, tx: Tx, record: KeyRecord, now: float, request_id: str
) -> tuple[str | None, str]:
    """Make the pending imported material current (RotateKeyOnDemand on an EXTERNAL key), on a
    multi-Region primary and every replica at once, once each replica has imported it."""
    materials = tx.get_materials(record.region, record.key_id)
    if sum(1 for m in materials if m.rotation_type == "ON_DEMAND") >= MAX_ON_DEMAND_ROTATIONS:
        raise LimitExceededException(
            "The on-demand rotations limit has been reached for the given keyId. "
            f"No more on-demand rotations can be performed for this key: {record.arn}"
        )
    pending = [m for m in materials if m.state is MaterialState.PENDING_ROTATION]
    replicas = replicas_for_update(tx, record) if record.multi_region else []
    if pending:
        # Every replica must hold the new material: until then it is "pending multi-Region import".
        for replica in replicas:
            held = {
                m.material_id
                for m in tx.get_materials(replica.region, replica.key_id)
                if m.import_state is ImportState.IMPORTED
            }
            if pending[0].material_id not in held:
                pending = []
                break
    if not pending:
        raise KMSInvalidStateException(
            f"No available key material pending rotation for the key: {record.arn}."
        )
    previous = record.current_material_id
    new_id = pending[0].material_id
    for key in (record, *replicas):
        for m in tx.get_materials(key.region, key.key_id):
            if m.state is MaterialState.CURRENT:
                m.state = MaterialState.NON_CURRENT
            elif m.material_id == new_id:
                m.state = MaterialState.CURRENT
                m.rotation_date = now
                m.rotation_type = "ON_DEMAND"
            else:
                continue
            tx.put_material(key.region, key.key_id, m)
        key.current_material_id = new_id
        _refresh_key(key, tx.get_materials(key.region, key.key_id))
        if key is not record:
            tx.update_key(key)
    if replicas:
        tx.append_audit([synchronize_event(record, now, request_id)])
    return previous, new_id


def expire_due_material(core: KmsCore) -> int:
    """Delete imported material whose ValidTo has passed; idempotent across nodes (row locks)."""
    now = core.clock.now()
    with core.store.read() as tx:
        due = tx.materials_due_for_expiry(now)
    expired = 0
    for region, key_id, material_id in due:
        with core.store.write() as tx:
            record = tx.get_key(region, key_id, for_update=True)
            if record is None:
                continue
            m = next((x for x in tx.get_materials(region, key_id) if x.material_id == material_id), None)
            if (
                m is None
                or m.sealed is None
                or m.expiration_model != EXPIRES
                or m.valid_to is None
                or m.valid_to > now
            ):
                continue
            _delete_material(tx, record, m)
            event = service_event_record(
                event_name="DeleteExpiredKeyMaterial",
                event_time=now,
                region=region,
                account_id=record.account_id,
                key_arn=record.arn,
                details={"keyId": record.arn, "keyMaterialId": material_id},
            )
            tx.append_audit([storage_row(event, now, record.key_id)])
            expired += 1
    if expired:
        core.store.scrub()
    return expired


def purge_import_parameters(core: KmsCore) -> int:
    """Destroy the wrapping private keys of import tokens that have expired."""
    with core.store.write() as tx:
        return tx.purge_import_parameters(core.clock.now())
