"""Using a loaded key's material in the operations of asymmetric and HMAC keys: which material is
the key's, its parsed private key (cached beside the material in the key cache), and the checks
these operations share.

Work that takes milliseconds (parsing and validating a private key, RSA-3072/4096 private-key
operations, the pure-Python Ed25519ph) never runs on the event loop: on the hot path it raises
``NeedsIO`` before anything has happened, and the dispatcher re-runs the operation on a worker thread.
"""

from __future__ import annotations

from openkms.crypto import asymmetric
from openkms.domain.keyspec import KeySpec, KeyUsage
from openkms.domain.model import KeyRecord, MaterialState
from openkms.errors import InvalidKeyUsageException, KMSInternalException, KMSInvalidStateException
from openkms.service.kms.context import NeedsIO, RequestContext
from openkms.service.kms.keycache import LoadedKey

# Private-key operations too slow for the event loop (milliseconds each).
_SLOW_PRIVATE_SPECS = frozenset({KeySpec.RSA_3072, KeySpec.RSA_4096})
_SLOW_ALGORITHMS = frozenset({"ED25519_PH_SHA_512"})


def current_material(loaded: LoadedKey) -> tuple[str, bytes]:
    """(material id, material) of an asymmetric or HMAC key: its only usable material."""
    record = loaded.record
    mid = record.current_material_id
    if mid is not None and mid in loaded.secrets:
        return mid, loaded.secrets[mid].reveal()
    for mid, material in loaded.materials.items():
        if material.state is MaterialState.CURRENT and mid in loaded.secrets:
            return mid, loaded.secrets[mid].reveal()
    if len(loaded.secrets) == 1:
        mid, secret = next(iter(loaded.secrets.items()))
        return mid, secret.reveal()
    raise KMSInvalidStateException(f"{record.arn} is pending import.")


def private_key(ctx: RequestContext, loaded: LoadedKey) -> asymmetric.AsymmetricKey:
    """The key's parsed private key, parsed once per cached key entry."""
    mid, material = current_material(loaded)
    parsed = loaded.parsed.get(mid)
    if isinstance(parsed, asymmetric.AsymmetricKey):
        return parsed
    if not ctx.allow_io:
        raise NeedsIO()
    try:
        key = asymmetric.load_private_key(loaded.record.key_spec, material)
    except asymmetric.KeyMaterialError:
        raise KMSInternalException(f"The key material of {loaded.record.arn} is not usable.") from None
    loaded.parsed[mid] = key
    return key


def off_loop_if_slow(ctx: RequestContext, record: KeyRecord, algorithm: str, *, private_op: bool) -> None:
    """Leave the event loop before a slow cryptographic operation."""
    if ctx.allow_io:
        return
    if algorithm in _SLOW_ALGORITHMS or (private_op and record.key_spec in _SLOW_PRIVATE_SPECS):
        raise NeedsIO()


def check_usage(record: KeyRecord, usage: KeyUsage, operation: str) -> None:
    if record.key_usage is not usage:
        raise InvalidKeyUsageException(
            f"{record.arn} key usage is {record.key_usage} which is not valid for {operation}."
        )


def incompatible_algorithm(algorithm: str, record: KeyRecord) -> InvalidKeyUsageException:
    return InvalidKeyUsageException(f"Algorithm {algorithm} is incompatible with key spec {record.key_spec}.")
