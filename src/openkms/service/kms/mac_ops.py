"""Operations of HMAC keys: GenerateMac and VerifyMac (hot path: no I/O when the key is cached).

The MAC is the RFC 2104 HMAC of the message under the key material, so it equals an HMAC computed
anywhere with the same (e.g. imported) key. MACs and messages are never audited.
"""

from __future__ import annotations

from typing import Any

from openkms.crypto import hmac_keys
from openkms.domain.keyspec import MAC_ALGORITHMS, KeyUsage
from openkms.domain.keystate import check_key_state
from openkms.errors import DryRunOperationException, KMSInvalidMacException
from openkms.service.kms.context import RequestContext
from openkms.service.kms.core import KmsCore
from openkms.service.kms.key_material import check_usage, current_material, incompatible_algorithm


def _mac_key(
    core: KmsCore, ctx: RequestContext, key_id: str, algorithm: str, operation: str
) -> tuple[str, bytes]:
    loaded = core.resolve(ctx, key_id, action=operation, allow_alias=True)
    record = loaded.record
    check_key_state(operation, record)
    check_usage(record, KeyUsage.GENERATE_VERIFY_MAC, operation)
    if algorithm not in MAC_ALGORITHMS.get(record.key_spec, ()):
        raise incompatible_algorithm(algorithm, record)
    return record.arn, current_material(loaded)[1]


def generate_mac(
    core: KmsCore,
    ctx: RequestContext,
    *,
    message: bytes,
    key_id: str,
    mac_algorithm: str,
    grant_tokens: list[str] | None = None,
    dry_run: bool | None = None,
) -> dict[str, Any]:
    arn, key = _mac_key(core, ctx, key_id, mac_algorithm, "GenerateMac")
    if dry_run:
        raise DryRunOperationException()
    return {
        "mac": hmac_keys.compute_mac(mac_algorithm, key, message),
        "mac_algorithm": mac_algorithm,
        "key_id": arn,
    }


def verify_mac(
    core: KmsCore,
    ctx: RequestContext,
    *,
    message: bytes,
    key_id: str,
    mac_algorithm: str,
    mac: bytes,
    grant_tokens: list[str] | None = None,
    dry_run: bool | None = None,
) -> dict[str, Any]:
    arn, key = _mac_key(core, ctx, key_id, mac_algorithm, "VerifyMac")
    if not hmac_keys.verify_mac(mac_algorithm, key, message, mac):
        raise KMSInvalidMacException("")
    if dry_run:
        raise DryRunOperationException()
    return {"key_id": arn, "mac_valid": True, "mac_algorithm": mac_algorithm}
