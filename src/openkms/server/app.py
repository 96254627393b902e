"""The ASGI application: routes a request, authenticates it (SigV4), decodes and validates it
against the KMS model, runs the service function, answers in AWS JSON 1.1 and audits the call.

The order of checks is AWS's: authentication, then the operation and its input, then (inside the
service) key lookup, authorization, key state and key usage. One place turns exceptions into
responses; anything unexpected is logged under the request id and answered as KMSInternalException.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from openkms.audit.events import EVENT_SOURCE, READ_ONLY, ApiCall, cloudtrail_record, fast_uuid, trail_rows
from openkms.audit.writer import RecordNotStored
from openkms.auth.sigv4 import Credential
from openkms.config import DEFAULT_REGION, WORKER_THREADS
from openkms.crypto.envelope import ServiceSealed
from openkms.domain import xks
from openkms.domain.model import KeyRecord, Principal
from openkms.domain.quotas import crypto_group, operation_group
from openkms.errors import (
    KMSInternalException,
    RequestEntityTooLargeException,
    ServiceError,
    UnknownOperationException,
    UnrecognizedClientException,
    UnsupportedOperationException,
    ValidationException,
)
from openkms.server.authn import (
    Authenticator,
    BodyTooLarge,
    Receive,
    Scope,
    Send,
    read_body,
    respond,
)
from openkms.server.cloudtrail_app import CloudTrailApp
from openkms.server.query_app import QueryApp
from openkms.server.quotas import RequestLimiter
from openkms.server.runtime import Runtime, load_quotas
from openkms.server.sys_app import SysApp
from openkms.server.unseal import SEALED_MESSAGE
from openkms.server.xks_app import XksApp
from openkms.service.kms.context import ChangeRecord, NeedsIO, RequestContext
from openkms.service.kms.grants import check_grant_tokens
from openkms.service.kms.registry import HOT, OPERATIONS
from openkms.wire.codec import (
    audit_request_parameters,
    audit_response_elements,
    decode_request,
    encode_response,
)
from openkms.wire.model import operation_names

log = logging.getLogger("openkms.server")

JSON_CT = b"application/x-amz-json-1.1"


def _parsed_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def error_body(error: ServiceError) -> bytes:
    return orjson.dumps({"__type": error.code, "message": error.message})


@dataclass
class Call:
    """One KMS operation call as it arrived, from the JSON API or the console."""

    operation: str
    body: bytes
    principal: Principal | None
    region: str
    source_ip: str
    user_agent: str
    started: float  # the runtime clock's time the call arrived
    secure: bool = False
    access_key_id: str | None = None
    request_id: str = field(default_factory=fast_uuid)
    api: str = "kms"  # the metrics' api label: kms (the JSON API) or console
    perf: float = field(default_factory=time.perf_counter)  # when it arrived, for the latency metric

    @property
    def log_extra(self) -> dict[str, str]:
        return {"request_id": self.request_id}

    def context(self, principal: Principal) -> RequestContext:
        ctx = RequestContext(principal, self.region, self.request_id, self.source_ip, self.user_agent)
        ctx.secure_transport = self.secure
        return ctx


class KmsApp:
    """The ASGI callable served by ``openkms serve``."""

    def __init__(self, runtime: Runtime, threads: int = WORKER_THREADS) -> None:
        self.runtime = runtime
        self.core = runtime.core
        self.settings = runtime.settings
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="openkms-worker")
        self.authn = Authenticator(runtime, self._in_thread)
        self.known_ops = operation_names()
        quotas = load_quotas(self.settings)
        self.limiter = RequestLimiter(quotas) if quotas is not None else None
        # Extra routes (console, IAM/STS) are mounted here by later layers: path prefix -> ASGI app.
        self.mounts: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {}
        self.query = QueryApp(runtime, self.authn, self.pool)
        self.trail = CloudTrailApp(runtime, self.authn, self.pool)  # CloudTrail's LookupEvents
        self.mounts[xks.MOUNT] = XksApp(runtime, self._in_thread)  # the XKS proxy API: /xks/<key store>/…
        self.sys = SysApp(runtime, self.authn, self._in_thread, self.query.accepts)  # /sys/, /readyz, sealed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        path: str = scope["path"]
        if self.sys.handles(path):
            await self.sys(scope, receive, send)
            return
        for prefix, mounted in self.mounts.items():
            if path.startswith(prefix):
                await mounted(scope, receive, send)
                return
        if scope["method"] == "GET" and path in ("/", "/healthz"):
            headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
            if not self.query.accepts(headers):  # else an IAM or STS call (GET /?Action=…)
                await respond(send, 200, b'{"status":"ok"}', [(b"content-type", b"application/json")])
                return
        await self._kms(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if not self.runtime.started:
                    self.runtime.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.get_running_loop().run_in_executor(None, self.runtime.stop)
                self.pool.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _in_thread(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn)

    async def _kms(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers[name.decode("latin-1")] = value.decode("latin-1")
        if self.query.accepts(headers):
            await self.query(scope, receive, send, headers)  # IAM / STS Query API
            return
        if self.trail.accepts(headers):
            await self.trail(scope, receive, send, headers)  # CloudTrail JSON API
            return
        target = headers.get("x-amz-target", "")
        client = scope.get("client")
        call = Call(
            operation=target.partition(".")[2] or target or "Unknown",
            body=b"",
            principal=None,
            region=DEFAULT_REGION,
            source_ip=client[0] if client else "127.0.0.1",
            user_agent=headers.get("user-agent", ""),
            started=self.runtime.clock.now(),
            secure=scope.get("scheme") == "https",
        )
        error: ServiceError | None = None
        try:
            try:
                call.body = await read_body(receive)
            except BodyTooLarge:
                raise RequestEntityTooLargeException("Request entity too large") from None
            await self._authenticate(scope, headers, call)
            prefix, _, operation = target.partition(".")
            if prefix != "TrentService" or operation not in self.known_ops:
                raise UnknownOperationException("")
        except ServiceError as exc:
            error = exc
        except ServiceSealed:  # sealed since the request arrived
            error = KMSInternalException(SEALED_MESSAGE)
        except Exception:
            log.exception("request %s failed during authentication", call.request_id, extra=call.log_extra)
            error = KMSInternalException("An internal error occurred. Request id: " + call.request_id)
        status, body_out = await self.execute(call, error)
        out_headers = [(b"x-amzn-requestid", call.request_id.encode()), (b"content-type", JSON_CT)]
        await respond(send, status, body_out, out_headers)

    async def _authenticate(self, scope: Scope, headers: dict[str, str], call: Call) -> None:
        """SigV4: sets ``call.principal`` and ``call.region`` or raises AWS's authentication errors."""

        def seen(cred: Credential) -> None:
            call.access_key_id = cred.access_key_id

        call.principal, cred = await self.authn.authenticate(
            scope, headers, call.body, service="kms", region_ok=self.settings.region_ok, on_credential=seen
        )
        call.region = cred.region

    async def execute(self, call: Call, error: ServiceError | None = None) -> tuple[int, bytes]:
        """Run one KMS operation for an authenticated principal and audit it: the one path every
        client takes (the JSON API after SigV4, and the web console with its session's principal).
        Returns the HTTP status and the AWS JSON body (the error body on failure)."""
        operation = call.operation
        raw: dict[str, Any] | None = None
        result: dict[str, Any] | None = None
        ctx: RequestContext | None = None
        body_out = b""
        principal = call.principal
        try:
            if error is not None:
                raise error
            if principal is None:
                raise UnrecognizedClientException()
            if operation not in self.known_ops:
                raise UnknownOperationException("")
            try:
                decoded = decode_request(operation, call.body)
            except ValidationException:
                raw = _parsed_object(call.body)  # the audit record still shows what was asked
                raise
            raw = decoded.raw
            fn = OPERATIONS.get(operation)
            if fn is None:
                raise UnsupportedOperationException(f"{operation} is not supported by this service.")
            if decoded.params.get("grant_tokens"):
                check_grant_tokens(self.core, decoded.params["grant_tokens"])
            charge = self._quota_charge(call, principal, operation, decoded.params)
            ctx = call.context(principal)
            ctx.set_request(operation, decoded.params)
            ctx.charge_key = charge
            if operation not in READ_ONLY and self.core.store.records_with_changes:
                ctx.change_record = self._change_record(call, raw, ctx)
            if operation in HOT:
                ctx.allow_io = False
                try:
                    result = fn(self.core, ctx, **decoded.params)
                except NeedsIO:
                    ctx = call.context(principal)
                    ctx.set_request(operation, decoded.params)
                    ctx.charge_key = charge
                    result = await self._in_thread(functools.partial(fn, self.core, ctx, **decoded.params))
            else:
                result = await self._in_thread(functools.partial(fn, self.core, ctx, **decoded.params))
            body_out = encode_response(operation, result)
        except ServiceError as exc:
            error = exc
        except ServiceSealed:
            error = KMSInternalException(SEALED_MESSAGE)
        except Exception:
            log.exception("request %s (%s) failed", call.request_id, operation, extra=call.log_extra)
            error = KMSInternalException("An internal error occurred. Request id: " + call.request_id)
        stored = ctx.change_record.rows if ctx is not None and ctx.change_record is not None else None
        if stored is not None:  # committed with the change (a later failure does not undo the change)
            self.runtime.audit.stored_elsewhere(stored)
        else:
            try:
                await self.runtime.audit.submit_call(self._audited(call, raw, result, ctx, error))
            except RecordNotStored as exc:  # only a change waits for its record: done, but not a success
                error = KMSInternalException(exc.message)
        observe = self.runtime.observe_request
        if observe is not None:
            name = operation if operation in self.known_ops else "Unknown"
            observe(call.api, name, error.code if error else "ok", time.perf_counter() - call.perf)
        if error is not None:
            return error.status, error_body(error)
        return 200, body_out

    def _quota_charge(
        self, call: Call, principal: Principal, operation: str, params: dict[str, Any]
    ) -> Callable[[KeyRecord], None] | None:
        """Charge the call to its request quota (ThrottlingException when spent): now for operations
        whose budget is known from the request, or — returned — once per key for the cryptographic
        operations whose budget is their key's type."""
        limiter = self.limiter
        if limiter is None:
            return None
        account = principal.account_id
        group = operation_group(operation, params)
        if group is not None:
            limiter.charge(account, call.region, group)
            return None
        charged: set[str] = set()

        def charge(key: KeyRecord) -> None:
            if key.key_id not in charged:  # once per key, also when the call is re-run off the loop
                limiter.charge(account, call.region, crypto_group(str(key.key_spec)))
                charged.add(key.key_id)

        return charge

    def _change_record(self, call: Call, raw: dict[str, Any] | None, ctx: RequestContext) -> ChangeRecord:
        """How a change's service function stores the call's record in the change's transaction."""

        def build(result: dict[str, Any], key_arn: str) -> list[dict[str, Any]]:
            api_call = self._audited(call, raw, result, ctx, None, touched=key_arn)
            return trail_rows(cloudtrail_record(api_call), call.started, api_call.key_id)

        return ChangeRecord(build)

    def _audited(
        self,
        call: Call,
        raw: dict[str, Any] | None,
        result: dict[str, Any] | None,
        ctx: RequestContext | None,
        error: ServiceError | None,
        touched: str | None = None,
    ) -> ApiCall:
        """The call and its outcome as its audit record tells them. A call on another account's key is
        recorded in that account's trail too (``resources``; both copies in one write: a change waits
        for both). ``touched``: a key the call acted on that ``ctx`` does not list yet (a record
        made inside the change's transaction, before the service function returns)."""
        operation = call.operation
        known = operation in self.known_ops
        read_only = operation in READ_ONLY
        request_parameters: dict[str, Any] | None = None
        if known and raw is not None:
            try:
                request_parameters = audit_request_parameters(operation, raw)
            except (TypeError, ValueError, KeyError, AttributeError):
                request_parameters = None  # a request too malformed to describe (it failed validation)
        resources: list[str] | tuple[str, ...] = ctx.resources if ctx else ()
        key_arn = ctx.audit_key_arn if ctx else None
        if touched is not None:
            key_arn = key_arn or touched
            if touched not in resources:
                resources = [*resources, touched]
        response_elements: dict[str, Any] | None = None
        if error is None and known and not read_only:
            response_elements = audit_response_elements(operation, result)
            if response_elements is None and key_arn:
                response_elements = {"keyId": key_arn}
        return ApiCall(
            event_source=EVENT_SOURCE,
            event_name=operation,
            read_only=read_only,
            principal=call.principal,
            access_key_id=call.access_key_id,
            region=call.region,
            source_ip=call.source_ip,
            user_agent=call.user_agent,
            request_id=call.request_id,
            started=call.started,
            request_parameters=request_parameters,
            response_elements=response_elements,
            additional_event_data=ctx.additional_event_data if ctx and error is None else None,
            error_code=error.code if error else None,
            error_message=error.message if error else None,
            resources=resources,
            key_id=key_arn.rsplit("/", 1)[-1] if key_arn else None,
        )
