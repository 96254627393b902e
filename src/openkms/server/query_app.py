"""The IAM and STS Query APIs on the service's endpoint.

:class:`KmsApp` hands over a form-encoded POST whose SigV4 credential scope names the ``iam`` or ``sts``
service. The flow is the KMS one: SigV4 (with the session-token check for temporary credentials; IAM is
signed for us-east-1, STS for the request's region), decoding and validation against botocore's model,
the service function on a worker thread, the XML answer, and a CloudTrail record (eventSource
``iam.amazonaws.com`` / ``sts.amazonaws.com``; secret access keys and session tokens never recorded).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from openkms import errors
from openkms.audit.events import ApiCall
from openkms.audit.writer import RecordNotStored
from openkms.crypto.envelope import ServiceSealed
from openkms.domain.model import Principal
from openkms.errors import InvalidAction, QueryError, ServiceError
from openkms.server.authn import Authenticator, BodyTooLarge, read_body
from openkms.server.runtime import Runtime
from openkms.server.unseal import SEALED_MESSAGE
from openkms.service import iam
from openkms.service.iam import IamContext, sts
from openkms.wire import query

log = logging.getLogger("openkms.server.query")

XML_CT = b"text/xml"
FORM_CT = "application/x-www-form-urlencoded"
IAM_REGION = "us-east-1"
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_OPERATIONS = {"iam": iam.OPERATIONS, "sts": sts.OPERATIONS}
_READ_ONLY = {"iam": iam.READ_ONLY, "sts": sts.READ_ONLY}

# The authentication errors of the JSON protocol, as the Query protocol names them.
_AUTH_ERRORS: dict[type[ServiceError], Callable[[str], QueryError]] = {
    errors.UnrecognizedClientException: errors.InvalidClientTokenId,
    errors.ExpiredTokenException: errors.ExpiredToken,
    errors.InvalidSignatureException: errors.SignatureDoesNotMatch,
    errors.IncompleteSignatureException: errors.IncompleteSignature,
    errors.MissingAuthenticationTokenException: errors.MissingAuthenticationToken,
    errors.RequestEntityTooLargeException: errors.RequestEntityTooLarge,
}


def scope_service(headers: dict[str, str]) -> str | None:
    """The service of the ``Authorization`` header's credential scope (cheap; not validated)."""
    auth = headers.get("authorization", "")
    start = auth.find("Credential=")
    if start < 0:
        return None
    parts = auth[start + 11 :].split(",", 1)[0].split("/")
    return parts[3].strip() if len(parts) >= 5 else None


def as_query_error(error: ServiceError) -> ServiceError:
    if isinstance(error, QueryError):
        return error
    convert = _AUTH_ERRORS.get(type(error))
    return convert(error.message) if convert is not None else error


class QueryApp:
    def __init__(self, runtime: Runtime, authn: Authenticator, pool: ThreadPoolExecutor) -> None:
        self.runtime = runtime
        self.authn = authn
        self.pool = pool

    def accepts(self, headers: dict[str, str]) -> bool:
        """A request for the Query API: signed for ``iam`` or ``sts`` (whatever its method and content
        type: IAM and STS answer it in their protocol), or a form without a usable credential scope
        (unsigned: the Query API's MissingAuthenticationToken). A form signed for KMS stays KMS's."""
        service = scope_service(headers)
        if service in _OPERATIONS:
            return True
        return not service and headers.get("content-type", "").lower().startswith(FORM_CT)

    def _region_ok(self, service: str) -> Callable[[str], bool]:
        if service == "iam":
            return lambda region: region == IAM_REGION or self.runtime.settings.region_ok(region)
        return self.runtime.settings.region_ok

    async def _in_thread(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn)

    async def __call__(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> None:
        started = self.runtime.clock.now()
        perf = time.perf_counter()
        request_id = str(uuid.uuid4())
        signed_for = scope_service(headers)
        service = signed_for if signed_for in _OPERATIONS else "iam"
        client = scope.get("client")
        source_ip = client[0] if client else "127.0.0.1"
        user_agent = headers.get("user-agent", "")
        principal: Principal | None = None
        access_key_id: str | None = None
        region = IAM_REGION
        operation = "Unknown"
        raw: dict[str, Any] | None = None
        result: dict[str, Any] | None = None
        error: ServiceError | None = None
        body_out = b""
        try:
            try:
                body = await read_body(receive)
            except BodyTooLarge:
                raise errors.RequestEntityTooLarge("Request entity too large") from None
            # Parameters may come in the query string too (GET, as AWS's Query APIs take them).
            query_string: bytes = scope.get("query_string", b"")
            form = query_string + b"&" + body if query_string else body
            operation = query.peek_action(form) or "Unknown"
            seen: list[str] = []
            principal, cred = await self.authn.authenticate(
                scope,
                headers,
                body,
                service=service,
                region_ok=self._region_ok(service),
                on_credential=lambda c: seen.append(c.access_key_id),
            )
            access_key_id = seen[0] if seen else None
            if service == "sts":
                region = cred.region
            request = query.decode_query(service, form)
            raw = request.raw
            fn = _OPERATIONS[service].get(request.operation)
            if fn is None:
                raise InvalidAction(f"The action {request.operation} is not supported by this service.")
            ctx = IamContext(
                self.runtime.store,
                self.runtime.root,
                self.runtime.clock.now(),
                principal.account_id,
                principal,
                policies=self.runtime.policies,
                documents=self.runtime.documents,
            )
            result = await self._in_thread(functools.partial(fn, ctx, **request.params))
            body_out = query.encode_result(service, request.operation, result, request_id)
        except ServiceError as exc:
            error = as_query_error(exc)
        except ServiceSealed:  # sealed since the request arrived
            error = errors.ServiceFailure(SEALED_MESSAGE)
        except Exception:  # the outermost catch-all: never a raw 500
            log.exception(
                "request %s (%s %s) failed", request_id, service, operation, extra={"request_id": request_id}
            )
            error = errors.InternalFailure("An internal error occurred. Request id: " + request_id)
        read_only = operation in _READ_ONLY[service]
        known = operation in query.operation_names(service)
        audited = ApiCall(
            event_source=f"{service}.amazonaws.com",
            event_name=operation,
            read_only=read_only,
            principal=principal,
            access_key_id=access_key_id,
            region=region,
            source_ip=source_ip,
            user_agent=user_agent,
            request_id=request_id,
            started=started,
            request_parameters=query.audit_request(service, operation, raw) if known else None,
            response_elements=(
                query.audit_response(service, operation, result) if known and error is None else None
            ),
            error_code=error.code if error else None,
            error_message=error.message if error else None,
        )
        try:
            await self.runtime.audit.submit_call(audited)
        except RecordNotStored as exc:  # as on the KMS path: a change done, but not a success
            error = errors.InternalFailure(exc.message)
        observe = self.runtime.observe_request
        if observe is not None:
            outcome = error.code if error else "ok"
            observe(service, operation if known else "Unknown", outcome, time.perf_counter() - perf)
        out_headers = [(b"x-amzn-requestid", request_id.encode()), (b"content-type", XML_CT)]
        if error is not None:
            sender = error.sender if isinstance(error, QueryError) else error.status < 500
            body_out = query.encode_error(service, error.code, error.message, request_id, sender=sender)
            status = error.status
        else:
            status = 200
        out_headers.append((b"content-length", str(len(body_out)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": body_out})
