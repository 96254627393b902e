"""The client side of the XKS Proxy API v1: how this service, as a KMS, calls the proxy of an external
key store — GetHealthStatus, GetKeyMetadata, Encrypt and Decrypt — over HTTPS, signed with SigV4
(service ``kms-xks-proxy``) with the key store's credential, each request carrying the spec's
``requestMetadata``.

Every call is bounded by one timeout (``--xks-client-timeout``, AWS's 250 ms by default) covering the
connection, TLS and the answer, and is never retried; it must run on a worker thread (the operations
that call it raise ``NeedsIO`` on the event loop first). A failure is one :class:`ProxyError` naming
AWS's ``ConnectionErrorCode`` for it, or the proxy's own error name. The certificate is checked
against the system's trust store plus the configured CA bundles (``--xks-ca-bundle``, the
``--tls-self-signed`` CA of this data directory).
"""

from __future__ import annotations

import base64
import binascii
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from openkms.auth.sigv4 import sign_request
from openkms.clock import Clock
from openkms.crypto.secret import Secret
from openkms.domain.custom_key_stores import Failure, parse_endpoint

if TYPE_CHECKING:
    import urllib3

SIGNING_SERVICE = "kms-xks-proxy"
DEFAULT_TIMEOUT = 0.25  # seconds: AWS KMS waits this long for an XKS proxy
MAX_RESPONSE = 64 * 1024  # bytes of a proxy's answer read at most

# The proxy's error names (XKS Proxy API v1, "Error codes") and what a KMS makes of them when no
# operation-specific rule applies.
_FAILURES = {
    "AuthenticationFailedException": Failure.INVALID_CREDENTIALS,
    "InvalidUriPathException": Failure.INVALID_CONFIGURATION,
    "AccessDeniedException": Failure.ACCESS_DENIED,
}
KEY_ERRORS = frozenset(
    {
        "ValidationException",
        "InvalidStateException",
        "InvalidCiphertextException",
        "InvalidKeyUsageException",
        "KeyNotFoundException",
        "ThrottlingException",
        "UnsupportedOperationException",
        "DependencyTimeoutException",
        "InternalException",
    }
)


class ProxyError(Exception):
    """A call that did not succeed: ``failure`` is AWS's ConnectionErrorCode for it (None when the
    proxy answered one of its key errors, ``error_name``)."""

    def __init__(self, failure: Failure | None, message: str, error_name: str | None = None) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message
        self.error_name = error_name


@dataclass(frozen=True, slots=True)
class ProxyTarget:
    """Where an external key store's proxy is and how to sign for it."""

    uri_endpoint: str
    uri_path: str
    access_key_id: str
    secret: Secret[str]
    region: str  # the SigV4 scope's Region: the key store's


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(document: dict[str, Any], name: str, required: bool = True) -> bytes | None:
    """A Base64 member of a proxy's answer; INVALID_RESPONSE when it is not one."""
    value = document.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ProxyError(Failure.INVALID_RESPONSE, f"The proxy's response has no valid {name}.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProxyError(Failure.INVALID_RESPONSE, f"The proxy's {name} is not valid Base64.") from None


class XksClient:
    """Calls XKS proxies; one per process, thread-safe (a urllib3 pool per proxy endpoint)."""

    def __init__(self, *, timeout: float, trust: Callable[[], ssl.SSLContext], wall: Clock) -> None:
        """``trust`` makes the TLS context on the first call to a proxy (loading the system's trust store
        takes tens of milliseconds that a server without external key stores need not spend to start)."""
        self.timeout = timeout
        self.wall = wall  # SigV4's request time
        self._trust = trust
        self._lock = threading.Lock()
        self._pool_made: urllib3.PoolManager | None = None

    def __repr__(self) -> str:
        return f"XksClient(timeout={self.timeout})"

    @property
    def _pool(self) -> urllib3.PoolManager:
        pool = self._pool_made
        if pool is None:
            with self._lock:
                if self._pool_made is None:
                    import urllib3  # late: ~0.05 s of a start, for a server with external key stores only

                    self._pool_made = urllib3.PoolManager(
                        num_pools=64, maxsize=8, ssl_context=self._trust(), retries=False, block=False
                    )
                pool = self._pool_made
        return pool

    def close(self) -> None:
        if self._pool_made is not None:
            self._pool_made.clear()

    def call(self, target: ProxyTarget, operation_path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``<endpoint><uri path>/<operation_path>``: the answer's JSON object."""
        # Late, as urllib3 in _pool: a server without external key stores never imports it.
        import urllib3
        from urllib3.exceptions import (
            ConnectTimeoutError,
            HTTPError,
            NewConnectionError,
            ProtocolError,
            ReadTimeoutError,
            SSLError,
        )

        try:
            endpoint = parse_endpoint(target.uri_endpoint)
        except ValueError:
            raise ProxyError(Failure.INVALID_CONFIGURATION, "The proxy endpoint is not valid.") from None
        host = endpoint.host if endpoint.port == 443 else f"{endpoint.host}:{endpoint.port}"
        path = f"{target.uri_path}/{operation_path}"
        payload = orjson.dumps(body)
        headers = sign_request(
            method="POST",
            host=host,
            path=path,
            body=payload,
            access_key_id=target.access_key_id,
            secret=target.secret.reveal(),
            region=target.region,
            service=SIGNING_SERVICE,
            now=self.wall.now(),
        )
        try:
            response = self._pool.request(
                "POST",
                f"https://{host}{path}",
                body=payload,
                headers=headers,
                timeout=urllib3.Timeout(total=self.timeout),
                preload_content=False,
                redirect=False,
            )
            try:
                data = response.read(MAX_RESPONSE + 1)
            finally:
                response.release_conn()
        # NewConnectionError is a ConnectTimeoutError in urllib3: a refused connection comes first.
        except NewConnectionError:
            raise ProxyError(
                Failure.NOT_REACHABLE, f"The XKS proxy at {target.uri_endpoint} is not reachable."
            ) from None
        except (ConnectTimeoutError, ReadTimeoutError, TimeoutError):
            raise ProxyError(
                Failure.TIMED_OUT, f"The XKS proxy did not answer within {self.timeout * 1000:g} ms."
            ) from None
        except SSLError as exc:
            raise ProxyError(
                Failure.INVALID_TLS, f"The XKS proxy's TLS certificate is not trusted: {exc}"
            ) from None
        except ProtocolError as exc:
            if isinstance(exc.__context__, TimeoutError) or "timed out" in str(exc):
                raise ProxyError(
                    Failure.TIMED_OUT, f"The XKS proxy did not answer within {self.timeout * 1000:g} ms."
                ) from None
            raise ProxyError(Failure.INVALID_RESPONSE, "The XKS proxy's answer is not HTTP.") from None
        except (HTTPError, OSError):
            raise ProxyError(
                Failure.NOT_REACHABLE, f"The XKS proxy at {target.uri_endpoint} is not reachable."
            ) from None
        return _answer(response.status, data)


def _answer(status: int, data: bytes) -> dict[str, Any]:
    if len(data) > MAX_RESPONSE:
        raise ProxyError(Failure.INVALID_RESPONSE, "The XKS proxy's answer is too long.")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        raise ProxyError(
            Failure.INVALID_RESPONSE, f"The XKS proxy's answer (HTTP {status}) is not a JSON object."
        )
    if status == 200:
        return document
    name = document.get("errorName")
    message = document.get("errorMessage")
    text = message if isinstance(message, str) else ""
    if isinstance(name, str) and name in _FAILURES:
        raise ProxyError(_FAILURES[name], f"The XKS proxy answered {name}: {text}"[:1024], name)
    if isinstance(name, str) and name in KEY_ERRORS:
        raise ProxyError(None, f"The XKS proxy answered {name}: {text}"[:1024], name)
    raise ProxyError(Failure.INVALID_RESPONSE, f"The XKS proxy answered HTTP {status} without a known error.")


def trust_context(ca_files: list[str]) -> ssl.SSLContext:
    """TLS for proxies: the system's trust store plus each of ``ca_files`` (PEM)."""
    context = ssl.create_default_context()
    for path in ca_files:
        context.load_verify_locations(cafile=path)
    return context
