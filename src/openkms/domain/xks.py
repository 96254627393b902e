"""The rules of the External Key Store (XKS) Proxy API v1 as openkms serves it: where a key store's
API lives (its URI path), the names of key stores and external keys, key usages, the API's errors with
their HTTP statuses, and the request bodies, checked and decoded into typed requests.

Pure: no I/O and no cryptography. The order in which a request is checked is the server's
(``service/xks/proxy.py``); this module only says what is valid.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

import orjson

# --- where the API lives ---------------------------------------------------------------------------------

MOUNT = "/xks/"  # every key store's API is under /xks/<key store name>/kms/xks/v1
API_SUFFIX = "/kms/xks/v1"
SIGNING_SERVICE = "kms-xks-proxy"  # the SigV4 credential scope's service
MAX_SKEW = 300.0  # seconds a request's X-Amz-Date may be off (the API asks for 5 minutes)

KEY_SPEC = "AES_256"
ENCRYPTION_ALGORITHM = "AES_GCM"
CDIV_ALGORITHM = "SHA_256"
ENCRYPT = "ENCRYPT"
DECRYPT = "DECRYPT"
ENABLED = "ENABLED"
DISABLED = "DISABLED"

# --- sizes (the API's minimums are 4300 bytes of data, 8192 of AAD, ARNs of 2048 characters) -----------

MAX_BODY = 64 * 1024  # request body, bytes
MAX_DATA = 16 * 1024  # plaintext or ciphertext, bytes (before Base64)
MAX_AAD = 16 * 1024  # additionalAuthenticatedData, bytes (its length is encoded in two bytes)
MAX_CIPHERTEXT_METADATA = 20
IV_LENGTHS = (12, 16)
TAG_LENGTH = 16
MAX_AUDITED_FIELDS = 32  # requestMetadata fields kept in an audit record
MAX_AUDITED_LENGTH = 2048  # characters kept of each

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,128}\Z")
_ACCESS_KEY_ID = re.compile(r"[A-Z2-7]{20,30}\Z")
_SECRET = re.compile(r"[A-Za-z0-9+/=]{43,64}\Z")
_URI_PATH = re.compile(r"[A-Za-z0-9/_-]{1,128}\Z")
_ACCOUNT = re.compile(r"[0-9]{12}\Z")

USAGES: dict[str, tuple[str, ...]] = {
    "encrypt,decrypt": (ENCRYPT, DECRYPT),
    "encrypt": (ENCRYPT,),
    "decrypt": (DECRYPT,),
    "none": (),
}


class Operation(StrEnum):
    GET_KEY_METADATA = "GetKeyMetadata"
    ENCRYPT = "Encrypt"
    DECRYPT = "Decrypt"
    GET_HEALTH_STATUS = "GetHealthStatus"


_KEY_OPERATIONS = {
    "metadata": Operation.GET_KEY_METADATA,
    "encrypt": Operation.ENCRYPT,
    "decrypt": Operation.DECRYPT,
}


def valid_name(name: str) -> bool:
    """A key store name: 1 to 64 letters, digits, ``-`` and ``_`` (it is a segment of the URI path)."""
    return bool(_NAME.match(name))


def valid_key_id(key_id: str) -> bool:
    """An external key id: 1 to 128 letters, digits, ``.``, ``-`` and ``_``, as the API allows."""
    return bool(_KEY_ID.match(key_id))


def valid_access_key_id(value: str) -> bool:
    return bool(_ACCESS_KEY_ID.match(value))


def valid_secret(value: str) -> bool:
    return bool(_SECRET.match(value))


def uri_path(name: str) -> str:
    """The key store's ``XksProxyUriPath``: ``/xks/<name>/kms/xks/v1`` (at most 80 characters)."""
    path = f"{MOUNT}{name}{API_SUFFIX}"
    if not valid_name(name) or not _URI_PATH.match(path):
        raise ValueError(f"not a key store name: {name!r}")
    return path


def parse_usage(value: str) -> tuple[str, ...]:
    """``encrypt,decrypt`` (either order), ``encrypt``, ``decrypt`` or ``none``; ValueError otherwise."""
    parts = sorted(part.strip().lower() for part in value.split(","))
    key = ",".join(reversed(parts)) if parts == ["decrypt", "encrypt"] else ",".join(parts)
    if key not in USAGES:
        raise ValueError(f"key usage must be one of {', '.join(USAGES)}; got {value!r}")
    return USAGES[key]


def valid_allowed_principal(value: str) -> bool:
    """An entry of a key's allowed principals: a 12-digit account id or a principal's ARN."""
    return bool(_ACCOUNT.match(value)) or (value.startswith("arn:") and value.count(":") >= 5)


def principal_allowed(allowed: tuple[str, ...], principal_arn: str) -> bool:
    """Whether ``principal_arn`` (the request's ``awsPrincipalArn``) may use a key allowing ``allowed``:
    any principal when the list is empty; else one named exactly, or any principal of a listed account."""
    if not allowed:
        return True
    parts = principal_arn.split(":")
    account = parts[4] if len(parts) >= 6 and parts[0] == "arn" else None
    return any(entry in (principal_arn, account) for entry in allowed)


# --- errors ---------------------------------------------------------------------------------------------


class XksError(Exception):
    """An error of the API: answered with ``status`` and the body ``{"errorName", "errorMessage"}``.

    The message is cut to 511 printable ASCII characters, as the API requires."""

    name: ClassVar[str] = "InternalException"
    status: ClassVar[int] = 500

    def __init__(self, message: str = "") -> None:
        cleaned = "".join(c if " " <= c <= "~" else "?" for c in message[:511])
        super().__init__(cleaned)
        self.message = cleaned

    def body(self) -> bytes:
        return orjson.dumps({"errorName": self.name, "errorMessage": self.message})


class ValidationException(XksError):
    name = "ValidationException"
    status = 400


class InvalidStateException(XksError):
    name = "InvalidStateException"
    status = 400


class InvalidCiphertextException(XksError):
    name = "InvalidCiphertextException"
    status = 400


class InvalidKeyUsageException(XksError):
    name = "InvalidKeyUsageException"
    status = 400


class AuthenticationFailedException(XksError):
    name = "AuthenticationFailedException"
    status = 401


class AccessDeniedException(XksError):
    name = "AccessDeniedException"
    status = 403


class KeyNotFoundException(XksError):
    name = "KeyNotFoundException"
    status = 404


class InvalidUriPathException(XksError):
    name = "InvalidUriPathException"
    status = 404


class ThrottlingException(XksError):
    name = "ThrottlingException"
    status = 429


class UnsupportedOperationException(XksError):
    name = "UnsupportedOperationException"
    status = 501


class DependencyTimeoutException(XksError):
    name = "DependencyTimeoutException"
    status = 503


class InternalException(XksError):
    name = "InternalException"
    status = 500


class MethodNotAllowed(ValidationException):
    """A method other than POST on one of the API's URIs: 405, as the API requires (it names no error
    for it, so the body says ValidationException)."""

    status = 405


ERRORS: tuple[type[XksError], ...] = (
    ValidationException,
    InvalidStateException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    AuthenticationFailedException,
    AccessDeniedException,
    KeyNotFoundException,
    InvalidUriPathException,
    ThrottlingException,
    UnsupportedOperationException,
    DependencyTimeoutException,
    InternalException,
)


# --- routes ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    keystore: str
    operation: Operation
    key_id: str | None  # None for GetHealthStatus


def route(path: str) -> Route:
    """The key store, operation and external key of a request path; InvalidUriPathException for any
    path that is not ``/xks/<name>/kms/xks/v1/health`` or ``…/keys/<externalKeyId>/<operation>``."""
    if path.startswith(MOUNT):
        name, _, rest = path[len(MOUNT) :].partition("/")
        if valid_name(name) and ("/" + rest).startswith(API_SUFFIX + "/"):
            api = rest[len(API_SUFFIX) :]
            if api == "health":
                return Route(name, Operation.GET_HEALTH_STATUS, None)
            parts = api.split("/")
            if (
                len(parts) == 3
                and parts[0] == "keys"
                and valid_key_id(parts[1])
                and parts[2] in _KEY_OPERATIONS
            ):
                return Route(name, _KEY_OPERATIONS[parts[2]], parts[1])
    raise InvalidUriPathException("The request was rejected because the specified URI path is not valid.")


# --- requests -------------------------------------------------------------------------------------------


def load_object(body: bytes) -> dict[str, Any] | None:
    """The request body as a JSON object, or None when it is not one."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def audited_metadata(document: dict[str, Any] | None) -> dict[str, str] | None:
    """The ``requestMetadata`` as an audit record keeps it: its string fields (at most 32, each cut to
    2048 characters), whatever the rest of the request."""
    metadata = document.get("requestMetadata") if document is not None else None
    if not isinstance(metadata, dict):
        return None
    kept: dict[str, str] = {}
    for name, value in metadata.items():
        if isinstance(value, str) and len(kept) < MAX_AUDITED_FIELDS:
            kept[name[:MAX_AUDITED_LENGTH]] = value[:MAX_AUDITED_LENGTH]
    return kept


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """What the three key operations share: the caller's ``requestMetadata``."""

    principal_arn: str  # awsPrincipalArn
    kms_operation: str
    kms_request_id: str
    kms_key_arn: str | None


@dataclass(frozen=True, slots=True)
class EncryptRequest:
    meta: KeyRequest
    plaintext: bytes
    aad: bytes | None
    integrity_value: bool  # ciphertextDataIntegrityValueAlgorithm given (SHA_256)


@dataclass(frozen=True, slots=True)
class DecryptRequest:
    meta: KeyRequest
    ciphertext: bytes
    aad: bytes | None
    ciphertext_metadata: bytes | None
    iv: bytes
    tag: bytes


def _document(document: dict[str, Any] | None) -> dict[str, Any]:
    if document is None:
        raise ValidationException("The request body must be a JSON object.")
    return document


def _metadata(document: dict[str, Any], key_arn_required: bool) -> KeyRequest:
    metadata = document.get("requestMetadata")
    if not isinstance(metadata, dict):
        raise ValidationException("requestMetadata is required and must be an object.")
    required = ["awsPrincipalArn", "kmsOperation", "kmsRequestId"] + (
        ["kmsKeyArn"] if key_arn_required else []
    )
    for name in required:
        if not isinstance(metadata.get(name), str):
            raise ValidationException(f"requestMetadata.{name} is required and must be a string.")
    key_arn = metadata.get("kmsKeyArn")
    if key_arn is not None and not isinstance(key_arn, str):
        raise ValidationException("requestMetadata.kmsKeyArn must be a string.")
    return KeyRequest(
        metadata["awsPrincipalArn"], metadata["kmsOperation"], metadata["kmsRequestId"], key_arn
    )


def _base64(document: dict[str, Any], name: str, required: bool, limit: int | None = None) -> bytes | None:
    value = document.get(name)
    if value is None:
        if required:
            raise ValidationException(f"{name} is required.")
        return None
    if not isinstance(value, str):
        raise ValidationException(f"{name} must be a Base64-encoded string.")
    try:
        decoded = base64.b64decode(value, validate=True)  # the body is bounded: so is this
    except (binascii.Error, ValueError):
        raise ValidationException(f"{name} is not valid standard Base64.") from None
    if limit is not None and len(decoded) > limit:
        raise UnsupportedOperationException(f"{name} is longer than the {limit} bytes this proxy supports.")
    return decoded


def _algorithm(document: dict[str, Any]) -> None:
    algorithm = document.get("encryptionAlgorithm")
    if algorithm is None:
        raise ValidationException("encryptionAlgorithm is required.")
    if algorithm != ENCRYPTION_ALGORITHM:
        raise ValidationException(f"encryptionAlgorithm must be {ENCRYPTION_ALGORITHM}.")


def metadata_request(document: dict[str, Any] | None) -> KeyRequest:
    return _metadata(_document(document), key_arn_required=False)


def encrypt_request(document: dict[str, Any] | None) -> EncryptRequest:
    document = _document(document)
    meta = _metadata(document, key_arn_required=True)
    plaintext = _base64(document, "plaintext", True, MAX_DATA)
    aad = _base64(document, "additionalAuthenticatedData", False, MAX_AAD)
    _algorithm(document)
    cdiv = document.get("ciphertextDataIntegrityValueAlgorithm")
    if cdiv is not None and cdiv != CDIV_ALGORITHM:
        raise ValidationException(f"ciphertextDataIntegrityValueAlgorithm must be {CDIV_ALGORITHM}.")
    return EncryptRequest(meta, plaintext or b"", aad, cdiv is not None)


def decrypt_request(document: dict[str, Any] | None) -> DecryptRequest:
    document = _document(document)
    meta = _metadata(document, key_arn_required=True)
    ciphertext = _base64(document, "ciphertext", True, MAX_DATA)
    aad = _base64(document, "additionalAuthenticatedData", False, MAX_AAD)
    ciphertext_metadata = _base64(document, "ciphertextMetadata", False)
    _algorithm(document)
    iv = _base64(document, "initializationVector", True)
    tag = _base64(document, "authenticationTag", True)
    if ciphertext_metadata is not None and len(ciphertext_metadata) > MAX_CIPHERTEXT_METADATA:
        raise ValidationException(f"ciphertextMetadata must not exceed {MAX_CIPHERTEXT_METADATA} bytes.")
    if iv is None or len(iv) not in IV_LENGTHS:
        raise InvalidCiphertextException("The initialization vector must be 12 or 16 bytes.")
    if tag is None or len(tag) != TAG_LENGTH:
        raise InvalidCiphertextException("The authentication tag must be 16 bytes.")
    return DecryptRequest(meta, ciphertext or b"", aad, ciphertext_metadata, iv, tag)
