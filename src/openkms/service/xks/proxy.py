"""The XKS Proxy API v1 operations — GetKeyMetadata, Encrypt, Decrypt, GetHealthStatus — on the
external keys of a key store, one call at a time, from its request path to its answer (run on a worker
thread by ``server/xks_app.py``).

The order of checks: HTTPS (AccessDeniedException) → the path (InvalidUriPathException: not an API
path, or no such key store) → the method (405 for anything but POST) → the key store's TLS client
certificate CN, if it requires one → SigV4 with service ``kms-xks-proxy``, a request time within 5
minutes and one of the key store's valid credentials (AuthenticationFailedException) → its request
quota (ThrottlingException) → the body (ValidationException; UnsupportedOperationException past this
proxy's sizes) → the external key (KeyNotFoundException) → its allowed callers against
``awsPrincipalArn`` (AccessDeniedException; never for GetHealthStatus) → its status
(InvalidStateException) → its usage (InvalidKeyUsageException) → the
work. The key store, credential and key are read in one read transaction, never cached.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openkms.arns import is_region
from openkms.auth.sigv4 import SigningKeyCache, check_scope, parse_authorization, verify_signature
from openkms.clock import Clock
from openkms.crypto import xks as xks_crypto
from openkms.crypto.envelope import RootKey
from openkms.domain import xks
from openkms.domain.xks import Operation
from openkms.errors import ServiceError
from openkms.service.xks.admin import MATERIAL_PURPOSE, SECRET_PURPOSE, material_ident, secret_ident
from openkms.storage.rows import XksKeyRow, XksKeyStoreRow
from openkms.storage.store import Store, Tx

VENDOR = "openkms"
# Sent back with every ciphertext and bound into its associated data: the version of this proxy's
# ciphertext layout (associated data with lengths, as described in crypto/xks.py).
CIPHERTEXT_METADATA = b"\x01"

Throttle = Callable[[str, float], None]  # (key store name, its requests per second): raises when spent


@dataclass(slots=True)
class XksCall:
    """One request as it arrived, and what its audit record says about it (filled in as it is checked)."""

    method: str
    path: str
    raw_path: bytes
    query_string: bytes
    headers: list[tuple[bytes, bytes]]  # as received (lowercased names)
    header_map: dict[str, str]  # lowercased name -> value (latin-1)
    secure: bool  # received over TLS
    client_cert_name: str | None  # the TLS client certificate's subject (RFC 4514), if any
    body: bytes = b""
    document: dict[str, Any] | None = None  # the body, if it is a JSON object
    route: xks.Route | None = None
    access_key_id: str | None = None  # as the Authorization header names it
    region: str | None = None  # the SigV4 scope's region, once checked
    authenticated: bool = False  # the signature was verified with one of the key store's credentials


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def common_names(rfc4514: str) -> list[str]:
    """The ``CN`` values of an RFC 4514 distinguished name (``\\``-escapes undone)."""
    names: list[str] = []
    attribute: list[str] = []
    escaped = False
    for char in rfc4514 + ",":
        if escaped:
            attribute.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",+":
            kind, _, value = "".join(attribute).partition("=")
            if kind.strip().upper() == "CN":
                names.append(value)
            attribute = []
        else:
            attribute.append(char)
    return names


class XksProxy:
    """The proxy's operations over the store; ``throttle`` enforces a key store's request quota."""

    def __init__(
        self,
        store: Store,
        root: RootKey,
        clock: Clock,
        *,
        wall: Clock,
        throttle: Throttle,
        fleet_size: int,
        model: str,
    ) -> None:
        self.store = store
        self.root = root
        self.clock = clock
        self.wall = wall  # what clients sign with (the request time's check)
        self.throttle = throttle
        self.fleet_size = fleet_size
        self.model = model
        self.signing_keys = SigningKeyCache()

    def handle(self, call: XksCall) -> dict[str, Any]:
        """The response body of a successful call; raises :class:`xks.XksError` otherwise."""
        if not call.secure:
            raise xks.AccessDeniedException("XKS proxy API calls must be made over HTTPS.")
        route = call.route = xks.route(call.path)
        with self.store.read() as tx:
            keystore = tx.get_xks_keystore(route.keystore)
            if keystore is None:
                raise xks.InvalidUriPathException(
                    "The request was rejected because the specified URI path is not valid."
                )
            if call.method != "POST":
                raise xks.MethodNotAllowed(
                    f"{call.method} is not allowed: XKS proxy API calls are POST requests."
                )
            self._check_client_certificate(keystore, call)
            self._authenticate(tx, keystore, call)
            if keystore.max_tps is not None:
                self.throttle(keystore.name, keystore.max_tps)
            if route.operation is Operation.GET_HEALTH_STATUS:
                return self._health()
            request = _parse(route.operation, call.document)
            key = tx.get_xks_key(keystore.name, route.key_id or "")
        if key is None:
            raise xks.KeyNotFoundException(
                "The request was rejected because the specified external key is not found."
            )
        if not xks.principal_allowed(key.allowed_principals, request_principal(request)):
            raise xks.AccessDeniedException(
                "The request was rejected because the operation is not authorized based on request metadata."
            )
        if isinstance(request, xks.KeyRequest):
            return {"keySpec": key.key_spec, "keyUsage": list(key.key_usage), "keyStatus": key.status}
        if key.status != xks.ENABLED:
            raise xks.InvalidStateException(
                "The request was rejected because the specified external key is disabled."
            )
        if isinstance(request, xks.EncryptRequest):
            return self._encrypt(key, request)
        return self._decrypt(key, request)

    # -- checks ----------------------------------------------------------------------------------------
    def _check_client_certificate(self, keystore: XksKeyStoreRow, call: XksCall) -> None:
        if keystore.client_cn is None:
            return
        if call.client_cert_name is None or keystore.client_cn not in common_names(call.client_cert_name):
            raise xks.AuthenticationFailedException(
                "This key store requires a TLS client certificate with another subject."
            )

    def _authenticate(self, tx: Tx, keystore: XksKeyStoreRow, call: XksCall) -> None:
        try:
            cred = parse_authorization(call.header_map)
            call.access_key_id = cred.access_key_id
            # Request signing uses the wall clock (as every SigV4 check here); credential validity the
            # service's clock.
            check_scope(
                cred,
                service=xks.SIGNING_SERVICE,
                region_ok=is_region,
                now=self.wall.now(),
                max_skew=xks.MAX_SKEW,
            )
            call.region = cred.region
            row = tx.get_xks_credential(cred.access_key_id)
            if (
                row is None
                or row.keystore != keystore.name
                or (row.valid_until is not None and row.valid_until <= self.clock.now())
            ):
                raise xks.AuthenticationFailedException(
                    "The access key id is not a valid credential of this key store."
                )
            secret = self.root.unseal(
                SECRET_PURPOSE, secret_ident(keystore.name, row.access_key_id), row.secret_sealed
            ).decode("ascii")
            signing_key = self.signing_keys.signing_key(
                cred.access_key_id, secret, cred.date, cred.region, cred.service
            )
            verify_signature(
                cred,
                method=call.method,
                raw_path=call.raw_path,
                query_string=call.query_string,
                headers=call.headers,
                body=call.body,
                signing_key=signing_key,
            )
        except ServiceError as exc:  # the SigV4 errors of the KMS API, reported as this API's one error
            raise xks.AuthenticationFailedException(exc.message) from None
        call.authenticated = True

    # -- operations ------------------------------------------------------------------------------------
    def _material(self, key: XksKeyRow) -> bytes:
        return self.root.unseal(
            MATERIAL_PURPOSE, material_ident(key.keystore, key.key_id), key.material_sealed
        )

    def _encrypt(self, key: XksKeyRow, request: xks.EncryptRequest) -> dict[str, Any]:
        if xks.ENCRYPT not in key.key_usage:
            raise xks.InvalidKeyUsageException(
                "The request was rejected because the specified key does not support encryption."
            )
        material = self._material(key)
        encrypted = xks_crypto.encrypt(material, request.plaintext, request.aad, CIPHERTEXT_METADATA)
        out = {
            "ciphertext": _b64(encrypted.ciphertext),
            "ciphertextMetadata": _b64(CIPHERTEXT_METADATA),
            "initializationVector": _b64(encrypted.iv),
            "authenticationTag": _b64(encrypted.tag),
        }
        if request.integrity_value:
            # The value first, then a decryption of what is returned: a bit flipped after the value was
            # computed makes the check fail (an error, never a ciphertext that cannot be decrypted).
            value = xks_crypto.integrity_value(request.aad, CIPHERTEXT_METADATA, encrypted)
            try:
                xks_crypto.decrypt(
                    material,
                    encrypted.iv,
                    encrypted.ciphertext,
                    encrypted.tag,
                    request.aad,
                    CIPHERTEXT_METADATA,
                )
            except xks_crypto.InvalidCiphertext:
                raise xks.InternalException(
                    "The encryption could not be verified; retry the request."
                ) from None
            out["ciphertextDataIntegrityValue"] = _b64(value)
        return out

    def _decrypt(self, key: XksKeyRow, request: xks.DecryptRequest) -> dict[str, Any]:
        if xks.DECRYPT not in key.key_usage:
            raise xks.InvalidKeyUsageException(
                "The request was rejected because the specified key does not support decryption."
            )
        try:
            plaintext = xks_crypto.decrypt(
                self._material(key),
                request.iv,
                request.ciphertext,
                request.tag,
                request.aad,
                request.ciphertext_metadata,
            )
        except xks_crypto.InvalidCiphertext:
            raise xks.InvalidCiphertextException(
                "The request was rejected because the specified ciphertext, initialization vector, "
                "additional authenticated data or authentication tag is corrupted, missing, or otherwise "
                "invalid."
            ) from None
        return {"plaintext": _b64(plaintext)}

    def _health(self) -> dict[str, Any]:
        """Deep: the key store and credential were just read from the database, and a round trip of
        AES-GCM under a throwaway key (never one of the external keys) must succeed."""
        return {
            "xksProxyFleetSize": self.fleet_size,
            "xksProxyVendor": VENDOR,
            "xksProxyModel": self.model,
            "ekmVendor": VENDOR,
            "ekmFleetDetails": [
                {
                    "id": f"openkms-{self.root.fingerprint}",
                    "model": f"{self.model} ({self.store.backend})",
                    "healthStatus": "ACTIVE" if xks_crypto.self_test() else "UNAVAILABLE",
                }
            ],
        }


Request = xks.KeyRequest | xks.EncryptRequest | xks.DecryptRequest


def _parse(operation: Operation, document: dict[str, Any] | None) -> Request:
    if operation is Operation.ENCRYPT:
        return xks.encrypt_request(document)
    if operation is Operation.DECRYPT:
        return xks.decrypt_request(document)
    return xks.metadata_request(document)


def request_principal(request: Request) -> str:
    return request.principal_arn if isinstance(request, xks.KeyRequest) else request.meta.principal_arn
