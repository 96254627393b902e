"""The CloudTrail JSON API on the service's endpoint: LookupEvents.

:class:`KmsApp` hands over a request whose ``X-Amz-Target`` starts with CloudTrail's target prefix (or
that is signed for the ``cloudtrail`` service). The flow is the KMS one: SigV4 (service ``cloudtrail``,
the request's Region), the operation (a name not in botocore's cloudtrail model is
UnknownOperationException; an operation of the model other than LookupEvents is
UnsupportedOperationException, the error CloudTrail's model declares for an operation a trail cannot
serve), the input checked against the model with CloudTrail's errors, authorization
(``cloudtrail:LookupEvents`` in the caller's identity policies), the lookup on a worker thread, the
JSON 1.1 answer.

Every call is recorded in the trail as CloudTrail records it: a management event with eventSource
``cloudtrail.amazonaws.com``, LookupEvents read-only (so an auditor sees who looked, and when), with
its request parameters and no response elements.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from openkms.audit.events import ApiCall, fast_uuid
from openkms.audit.writer import RecordNotStored
from openkms.config import DEFAULT_REGION
from openkms.crypto.envelope import ServiceSealed
from openkms.domain.model import Principal
from openkms.errors import (
    KMSInternalException,
    RequestEntityTooLargeException,
    ServiceError,
    UnknownOperationException,
    UnrecognizedClientException,
    UnsupportedOperationException,
)
from openkms.server.authn import Authenticator, BodyTooLarge, read_body, respond
from openkms.server.runtime import Runtime
from openkms.server.unseal import SEALED_MESSAGE
from openkms.service.trail.lookup import LookupCall, TokenSigner, authorize_lookup, lookup_events
from openkms.wire import cloudtrail

log = logging.getLogger("openkms.server.cloudtrail")

JSON_CT = b"application/x-amz-json-1.1"
EVENT_SOURCE = "cloudtrail.amazonaws.com"
SIGNING_SERVICE = "cloudtrail"
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_READ_PREFIXES = ("Describe", "Get", "List", "Lookup")


def _signed_for(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    start = auth.find("Credential=")
    if start < 0:
        return None
    parts = auth[start + 11 :].split(",", 1)[0].split("/")
    return parts[3].strip() if len(parts) >= 5 else None


class CloudTrailApp:
    def __init__(self, runtime: Runtime, authn: Authenticator, pool: ThreadPoolExecutor) -> None:
        self.runtime = runtime
        self.authn = authn
        self.pool = pool
        self.prefix = cloudtrail.target_prefix() + "."
        self.signer = TokenSigner(runtime.root.token_key)

    def accepts(self, headers: dict[str, str]) -> bool:
        """A CloudTrail call: its target names CloudTrail, or it is signed for ``cloudtrail``."""
        return (
            headers.get("x-amz-target", "").startswith(self.prefix) or _signed_for(headers) == SIGNING_SERVICE
        )

    async def _in_thread(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn)

    async def __call__(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> None:
        started = self.runtime.clock.now()
        perf = time.perf_counter()
        request_id = fast_uuid()
        target = headers.get("x-amz-target", "")
        operation = target[len(self.prefix) :] if target.startswith(self.prefix) else ""
        known = operation in cloudtrail.operation_names()
        client = scope.get("client")
        source_ip = client[0] if client else "127.0.0.1"
        principal: Principal | None = None
        seen: list[str] = []
        region = DEFAULT_REGION
        request: cloudtrail.LookupRequest | None = None
        error: ServiceError | None = None
        body_out = b""
        try:
            try:
                body = await read_body(receive)
            except BodyTooLarge:
                raise RequestEntityTooLargeException("Request entity too large") from None
            principal, cred = await self.authn.authenticate(
                scope,
                headers,
                body,
                service=SIGNING_SERVICE,
                region_ok=self.runtime.settings.region_ok,
                on_credential=lambda c: seen.append(c.access_key_id),
            )
            region = cred.region
            if not known:
                raise UnknownOperationException("")
            if operation != "LookupEvents":
                raise UnsupportedOperationException(f"{operation} is not supported by this service.")
            request = cloudtrail.decode_lookup_events(body)
            call = LookupCall(
                principal=principal,
                region=region,
                source_ip=source_ip,
                secure=scope.get("scheme") == "https",
                now=self.runtime.clock.now(),
            )
            body_out = await self._in_thread(functools.partial(self._lookup, call, request))
        except ServiceError as exc:
            error = exc
        except ServiceSealed:  # sealed since the request arrived
            error = KMSInternalException(SEALED_MESSAGE)
        except Exception:  # the outermost catch-all: never a raw 500
            log.exception(
                "request %s (cloudtrail %s) failed", request_id, operation, extra={"request_id": request_id}
            )
            error = KMSInternalException("An internal error occurred. Request id: " + request_id)
        if principal is None and error is None:
            error = UnrecognizedClientException()
        audited = ApiCall(
            event_source=EVENT_SOURCE,
            event_name=operation if known else (operation or target or "Unknown"),
            read_only=operation.startswith(_READ_PREFIXES),
            principal=principal,
            access_key_id=seen[0] if seen else None,
            region=region,
            source_ip=source_ip,
            user_agent=headers.get("user-agent", ""),
            request_id=request_id,
            started=started,
            request_parameters=cloudtrail.audit_lookup_request(request.raw) if request is not None else None,
            error_code=error.code if error else None,
            error_message=error.message if error else None,
        )
        try:
            await self.runtime.audit.submit_call(audited)
        except RecordNotStored as exc:  # as on the KMS path: done, but not a success
            error = KMSInternalException(exc.message)
        observe = self.runtime.observe_request
        if observe is not None:
            outcome = error.code if error else "ok"
            observe("cloudtrail", operation if known else "Unknown", outcome, time.perf_counter() - perf)
        out_headers = [(b"x-amzn-requestid", request_id.encode()), (b"content-type", JSON_CT)]
        if error is not None:
            body_out = orjson.dumps({"__type": error.code, "message": error.message})
            await respond(send, error.status, body_out, out_headers)
        else:
            await respond(send, 200, body_out, out_headers)

    def _lookup(self, call: LookupCall, request: cloudtrail.LookupRequest) -> bytes:
        """Authorize and run a LookupEvents call (on a worker thread: it reads the database)."""
        runtime = self.runtime
        authorize_lookup(call, runtime.policies, runtime.documents)
        result = lookup_events(
            runtime.store,
            self.signer,
            call,
            attribute=request.attribute,
            start_time=request.start_time,
            end_time=request.end_time,
            event_category=request.event_category,
            max_results=request.max_results,
            next_token=request.next_token,
        )
        return cloudtrail.encode_lookup_events(result["Events"], result.get("NextToken"))
