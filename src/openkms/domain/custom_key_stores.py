"""The rules of the external key stores this service uses as a KMS (CreateCustomKeyStore with
``CustomKeyStoreType=EXTERNAL_KEY_STORE``): connection states and AWS's ``ConnectionErrorCode``s, what
each state allows, the proxy endpoint (AWS's ``https://<host name>``, plus an optional ``:<port>`` here),
and which failure of the proxy becomes which AWS error. Pure: no I/O.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

EXTERNAL_KEY_STORE = "EXTERNAL_KEY_STORE"
AWS_CLOUDHSM = "AWS_CLOUDHSM"
PUBLIC_ENDPOINT = "PUBLIC_ENDPOINT"
VPC_ENDPOINT_SERVICE = "VPC_ENDPOINT_SERVICE"
MAX_KEY_STORES = 10  # AWS's quota of custom key stores per account and Region
XKS_KEY_SPEC = "AES_256"


class ConnectionState(enum.StrEnum):
    CONNECTED = "CONNECTED"
    CONNECTING = "CONNECTING"
    DISCONNECTED = "DISCONNECTED"
    DISCONNECTING = "DISCONNECTING"
    FAILED = "FAILED"


class Failure(enum.StrEnum):
    """What went wrong talking to an XKS proxy, named by AWS's ConnectionErrorCode for it."""

    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"  # the proxy refused the SigV4 credential
    NOT_REACHABLE = "XKS_PROXY_NOT_REACHABLE"  # no TCP connection, or refused
    TIMED_OUT = "XKS_PROXY_TIMED_OUT"  # no answer within the client's timeout
    INVALID_RESPONSE = "XKS_PROXY_INVALID_RESPONSE"  # not the API's JSON, or a status it does not name
    INVALID_CONFIGURATION = "XKS_PROXY_INVALID_CONFIGURATION"  # a wrong URI path, a proxy too small
    INVALID_TLS = "XKS_PROXY_INVALID_TLS_CONFIGURATION"  # its certificate is not trusted or not its name
    ACCESS_DENIED = "XKS_PROXY_ACCESS_DENIED"  # the proxy's authorization refused the request
    INTERNAL = "INTERNAL_ERROR"


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int


_ENDPOINT = re.compile(r"https://([a-zA-Z0-9.-]+)(?::([0-9]{1,5}))?\Z", re.ASCII)


def parse_endpoint(value: str) -> Endpoint:
    """``https://<host>[:<port>]``: AWS's pattern allows no port (443); openkms also accepts one."""
    match = _ENDPOINT.match(value)
    if match is None:
        raise ValueError(value)
    port = int(match.group(2) or 443)
    if not 0 < port < 65536:
        raise ValueError(value)
    return Endpoint(match.group(1), port)


def new_store_id(random_hex: str) -> str:
    """A custom key store id: ``cks-`` and 17 hexadecimal digits, as AWS's."""
    return "cks-" + random_hex[:17]


def connect_allowed(state: str) -> bool:
    """ConnectCustomKeyStore is refused on a key store DISCONNECTING or FAILED (disconnect it first)."""
    return state not in (ConnectionState.DISCONNECTING, ConnectionState.FAILED)


def keys_usable(state: str) -> bool:
    """The KMS keys of a key store can be used only while it is CONNECTED (else they are Unavailable)."""
    return state == ConnectionState.CONNECTED


def double_encryption_aad(key_arn: str) -> bytes:
    """The additional authenticated data sent with the outer (external key's) encryption of a
    ciphertext, which binds it to the KMS key it belongs to."""
    return b"openkms/xks/v1\x00" + key_arn.encode("utf-8")
