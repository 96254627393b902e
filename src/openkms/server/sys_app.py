"""The service's own endpoints, beside the APIs on the same port, and what a sealed server answers.

- ``GET /readyz``: 200 ``{"ready": true, …}`` when the database can be reached, the keyring is loaded
  (not sealed) and the database's migrations are this release's; 503 with the reasons otherwise. The
  database check is made at most once a second (its answer is kept that long).
- ``GET /sys/seal-status``: ``{"sealed", "progress", "threshold", "source", "rotation": {"state",
  "resealed", "total"}}`` (unauthenticated, as Vault's).
- ``POST /sys/unseal`` ``{"share": "…"}``: one Shamir share (unauthenticated: the body is bounded and
  holds nothing but a share); answers the seal status, or 400 ``{"__type", "message"}``.
- ``POST /sys/seal``: SigV4-signed (service ``kms``) by an administrator of the installation's first
  account: its root, or a principal whose identity policies allow ``kms:*`` on ``*`` (its ``admin``
  user is one). Seals this process only: it forgets the keyring, the keys, credentials and signing
  keys cached.

While the process is sealed, every other request is answered here before authentication (the
credentials are sealed too): the KMS JSON API with ``KMSInternalException`` (500), the IAM/STS Query
API with ``ServiceFailure`` (500, XML), the XKS proxy API with ``InternalException``, the console with
a page; ``GET /`` and ``/healthz`` stay the liveness check.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from openkms.audit.events import fast_uuid
from openkms.auth.policy import Request, authorize
from openkms.domain import xks
from openkms.domain.model import Principal
from openkms.errors import ServiceError
from openkms.server.authn import (
    Authenticator,
    BodyTooLarge,
    InThread,
    Receive,
    Scope,
    Send,
    read_body,
    respond,
)
from openkms.server.query_app import scope_service
from openkms.server.runtime import Runtime
from openkms.server.unseal import SEALED_MESSAGE, Unsealer, UnsealRefused
from openkms.service.trust import keyring as trust_keyring
from openkms.storage.migrations import LATEST
from openkms.wire import query

log = logging.getLogger("openkms.server.sys")

PREFIX = "/sys/"
READYZ = "/readyz"
HEALTH_PATHS = ("/", "/healthz")
MAX_UNSEAL_BODY = 4096
READY_TTL = 1.0  # seconds a database check is believed
READY_TIMEOUT = 3.0  # seconds a database check may take
CONSOLE_PREFIX = "/console"
JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_SEALED_PAGE = (
    b"<!doctype html><html lang=en><head><meta charset=utf-8><title>openkms: sealed</title></head>"
    b"<body><h1>The service is sealed</h1><p>Its keys cannot be used until an operator unseals it with "
    b"enough of its Shamir shares (<code>openkms operator unseal</code>).</p></body></html>"
)
_PAGE_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
]


def _error(code: str, message: str) -> bytes:
    return orjson.dumps({"__type": code, "message": message})


class SysApp:
    """``/sys/…``, ``/readyz`` and the sealed answers; :meth:`handles` says which requests are its."""

    def __init__(
        self,
        runtime: Runtime,
        authn: Authenticator,
        in_thread: InThread,
        is_query: Callable[[dict[str, str]], bool],
    ) -> None:
        self.runtime = runtime
        self.authn = authn
        self._in_thread = in_thread
        self._is_query = is_query
        self.unsealer = Unsealer(runtime.trust, self._forget_secrets)
        self._db_checked = -READY_TTL
        self._db_state: tuple[bool, int | None, str | None] = (False, None, None)
        self._db_lock = asyncio.Lock()

    def _forget_secrets(self) -> None:
        runtime = self.runtime
        runtime.core.cache.clear()
        runtime.creds.clear()
        runtime.policies.clear()
        self.authn.signing_keys.clear()

    def handles(self, path: str) -> bool:
        return path.startswith(PREFIX) or path == READYZ or self.runtime.trust.sealed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        routes: dict[tuple[str, str], Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            ("GET", READYZ): self._readyz,
            ("GET", PREFIX + "seal-status"): self._seal_status,
            ("POST", PREFIX + "unseal"): self._unseal,
            ("POST", PREFIX + "seal"): self._seal,
        }
        route = routes.get((method, path))
        if route is not None:
            await route(scope, receive, send)
        elif path == READYZ or path.startswith(PREFIX):
            await respond(send, 404, _error("NotFound", f"No {method} {path[:100]} here."), JSON)
        else:
            await self._sealed(scope, send)

    # -- a sealed process's answers -----------------------------------------------------------------------
    async def _sealed(self, scope: Scope, send: Send) -> None:
        path: str = scope["path"]
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        request_id = fast_uuid()
        ids = [(b"x-amzn-requestid", request_id.encode())]
        if path.startswith(xks.MOUNT):
            body = xks.InternalException(SEALED_MESSAGE).body()
            await respond(send, 500, body, [*ids, (b"content-type", b"application/json")])
        elif path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/"):
            await respond(send, 503, _SEALED_PAGE, _PAGE_HEADERS)
        elif self._is_query(headers):
            service = scope_service(headers)
            body = query.encode_error(
                service if service in ("iam", "sts") else "iam",
                "ServiceFailure",
                SEALED_MESSAGE,
                request_id,
                sender=False,
            )
            await respond(send, 500, body, [*ids, (b"content-type", b"text/xml")])
        elif scope["method"] == "GET" and path in HEALTH_PATHS:
            await respond(send, 200, b'{"status":"ok"}', [(b"content-type", b"application/json")])
        else:
            body = _error("KMSInternalException", SEALED_MESSAGE)
            await respond(send, 500, body, [*ids, (b"content-type", b"application/x-amz-json-1.1")])

    # -- readiness ------------------------------------------------------------------------------------------
    def _check_database(self) -> tuple[bool, int | None, str | None]:
        try:
            return True, self.runtime.store.schema_version(READY_TIMEOUT), None
        except Exception as exc:  # any driver error: the database cannot be used
            log.warning("readiness: the database cannot be reached (%s)", type(exc).__name__)
            return False, None, type(exc).__name__

    async def _database(self) -> tuple[bool, int | None, str | None]:
        async with self._db_lock:  # concurrent checks share one database round trip
            if time.monotonic() - self._db_checked >= READY_TTL:
                try:
                    self._db_state = await asyncio.wait_for(
                        self._in_thread(self._check_database), READY_TIMEOUT
                    )
                except TimeoutError:
                    self._db_state = (False, None, "timeout")
                self._db_checked = time.monotonic()
            return self._db_state

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        reachable, applied, failure = await self._database()
        sealed = self.runtime.trust.sealed
        reasons = []
        if not reachable:
            reasons.append(f"the database cannot be reached ({failure})")
        if sealed:
            reasons.append("the service is sealed (openkms operator unseal)")
        if reachable and applied != LATEST:
            reasons.append(f"the database's migrations are at {applied}, this release's at {LATEST}")
        report = {
            "ready": not reasons,
            "sealed": sealed,
            "database": "reachable" if reachable else "unreachable",
            "keyring": "sealed" if sealed else "loaded",
            "migrations": {"applied": applied, "latest": LATEST},
            "reasons": reasons,
        }
        return not reasons, report

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        ready, report = await self.readiness()
        await respond(send, 200 if ready else 503, orjson.dumps(report), JSON)

    # -- the seal -------------------------------------------------------------------------------------------
    def _status(self) -> dict[str, Any]:
        status = self.unsealer.status()
        row = trust_keyring.stored(self.runtime.store)
        status["source"] = row.source if row is not None else self.runtime.trust.source
        status["rotation"] = {
            "state": row.rotation_state if row is not None else "idle",
            "resealed": row.rotation_resealed if row is not None else 0,
            "total": row.rotation_total if row is not None else 0,
        }
        return status

    async def _seal_status(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status = await self._in_thread(self._status)
        except Exception as exc:
            log.warning("seal status: the keyring row cannot be read (%s)", type(exc).__name__)
            status = {**self.unsealer.status(), "source": self.runtime.trust.source, "rotation": None}
        await respond(send, 200, orjson.dumps(status), JSON)

    async def _unseal(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            try:
                body = await read_body(receive, MAX_UNSEAL_BODY)
            except BodyTooLarge:
                raise UnsealRefused("the request is too large for a share", 413) from None
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError:
                document = None
            if (
                not isinstance(document, dict)
                or set(document) != {"share"}
                or not isinstance(document["share"], str)
            ):
                raise UnsealRefused('the body must be {"share": "<one share>"}')
            status = await self._in_thread(functools.partial(self.unsealer.submit, document["share"]))
        except UnsealRefused as exc:
            await respond(send, exc.status, _error("UnsealRefused", exc.message), JSON)
            return
        except Exception as exc:  # the keyring could not be read (the database): the progress is reset
            log.error("unseal failed: %s", type(exc).__name__)
            message = "the keyring could not be read; the unseal progress is reset: try again"
            await respond(send, 500, _error("InternalError", message), JSON)
            return
        if not status["sealed"]:
            log.warning("unsealed: the keyring is open")
        await respond(send, 200, orjson.dumps(status), JSON)

    async def _seal(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.runtime.trust.source != "shamir":
            message = "only an installation sealed by Shamir shares can be sealed (it is unsealed by them)"
            await respond(send, 400, _error("UnsealRefused", message), JSON)
            return
        if self.runtime.trust.sealed:  # nothing to do, and the credentials cannot be checked
            await respond(send, 200, orjson.dumps(self.unsealer.status()), JSON)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        try:
            try:
                body = await read_body(receive, MAX_UNSEAL_BODY)
            except BodyTooLarge:
                raise UnsealRefused("the request is too large", 413) from None
            principal, _ = await self.authn.authenticate(
                scope, headers, body, service="kms", region_ok=self.runtime.settings.region_ok
            )
            allowed = await self._in_thread(functools.partial(self._is_administrator, principal))
            if not allowed:
                raise UnsealRefused(
                    f"User: {principal.arn} is not allowed to seal the service (an administrator: the "
                    "account's root, or a principal allowed kms:* on *)",
                    403,
                )
        except ServiceError as exc:
            await respond(send, exc.status, _error(exc.code, exc.message), JSON)
            return
        except UnsealRefused as exc:
            code = "AccessDeniedException" if exc.status == 403 else "RequestEntityTooLarge"
            await respond(send, exc.status, _error(code, exc.message), JSON)
            return
        self.unsealer.seal()
        log.warning("sealed by %s", principal.arn)
        await respond(send, 200, orjson.dumps(self.unsealer.status()), JSON)

    def _is_administrator(self, principal: Principal) -> bool:
        """Sealing stops the service for every account: only the installation's own account (the first
        one, made by ``operator init``) may do it; another account's administrator may not."""
        with self.runtime.store.read() as tx:
            accounts = tx.list_accounts_by_age()
        if not accounts or principal.account_id != accounts[0]:
            return False
        authorizer = self.runtime.core.authorizer
        request = Request(action="kms:*", resource="*", resource_account=None)
        decision = authorize(
            authorizer.caller(principal),
            request,
            key_policy=None,
            identity_policies=authorizer.identity_documents(principal),
        )
        return decision.allowed
