"""The XKS Proxy API v1 on the service's own port: :class:`KmsApp` hands over every request whose path
starts with ``/xks/`` (one prefix check; the KMS API's requests never come here).

A call is read with a bounded body (64 KiB; UnsupportedOperationException past it), run by
:class:`openkms.service.xks.proxy.XksProxy` on a worker thread within ``--xks-timeout`` seconds
(DependencyTimeoutException past it), answered ``application/json`` — the result, or the API's error
body ``{"errorName", "errorMessage"}`` with its status — and recorded in the audit trail. Anything
unexpected is logged under the request id and answered InternalException.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson

from openkms.audit.events import ApiCall, fast_uuid
from openkms.audit.writer import RecordNotStored
from openkms.config import DEFAULT_REGION
from openkms.crypto.envelope import ServiceSealed
from openkms.domain import xks
from openkms.domain.quotas import QuotaTable
from openkms.errors import ThrottlingException
from openkms.server.authn import BodyTooLarge, InThread, Receive, Scope, Send, read_body, respond
from openkms.server.quotas import RequestLimiter
from openkms.server.runtime import Runtime
from openkms.server.unseal import SEALED_MESSAGE
from openkms.service.xks.proxy import XksCall, XksProxy

log = logging.getLogger("openkms.server.xks")

PREFIX = xks.MOUNT
EVENT_SOURCE = "kms-xks-proxy"  # the records' eventSource: the API's SigV4 service name
JSON_CT = b"application/json"


def _model() -> str:
    try:
        return f"openkms {version('openkms')}"
    except PackageNotFoundError:
        return "openkms"


class XksApp:
    def __init__(self, runtime: Runtime, in_thread: InThread) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.timeout = settings.xks_timeout
        self._in_thread = in_thread
        # Each key store's request quota is shared by the processes of one server (--workers).
        self._share = 1.0 / max(1, settings.quota_processes)
        self.limiter = RequestLimiter(QuotaTable())
        self.proxy = XksProxy(
            runtime.store,
            runtime.root,
            runtime.clock,
            wall=runtime.wall,
            throttle=self._throttle,
            fleet_size=max(1, settings.quota_processes),
            model=_model(),
        )

    def _throttle(self, keystore: str, rate: float) -> None:
        try:
            self.limiter.take(("xks", keystore, ""), rate * self._share)
        except ThrottlingException:
            raise xks.ThrottlingException(
                "The request was rejected because the request rate of this key store is too high."
            ) from None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = self.runtime.clock.now()
        perf = time.perf_counter()
        request_id = fast_uuid()
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        tls = (scope.get("extensions") or {}).get("tls") or {}
        call = XksCall(
            method=scope["method"],
            path=scope["path"],
            raw_path=scope.get("raw_path") or scope["path"].encode(),
            query_string=scope.get("query_string", b""),
            headers=scope["headers"],
            header_map=headers,
            secure=scope.get("scheme") == "https",
            client_cert_name=tls.get("client_cert_name"),
        )
        result: dict[str, Any] | None = None
        error: xks.XksError | None = None
        try:
            try:
                call.body = await read_body(receive, xks.MAX_BODY)
            except BodyTooLarge:
                raise xks.UnsupportedOperationException(
                    f"The request body is larger than the {xks.MAX_BODY} bytes this proxy accepts."
                ) from None
            call.document = xks.load_object(call.body)
            work = self._in_thread(functools.partial(self.proxy.handle, call))
            result = await asyncio.wait_for(work, self.timeout)
        except xks.XksError as exc:
            error = exc
        except ServiceSealed:  # sealed since the request arrived
            error = xks.InternalException(SEALED_MESSAGE)
        except TimeoutError:
            error = xks.DependencyTimeoutException(
                "The XKS proxy timed out while trying to access its database. Request id: " + request_id
            )
        except Exception:
            log.exception("XKS proxy request %s failed", request_id, extra={"request_id": request_id})
            error = xks.InternalException("An internal error occurred. Request id: " + request_id)
        client = scope.get("client")
        await self._record(
            call,
            request_id,
            started,
            error,
            client[0] if client else "127.0.0.1",
            headers.get("user-agent", ""),
        )
        observe = self.runtime.observe_request
        if observe is not None:
            operation = str(call.route.operation) if call.route is not None else "Unknown"
            observe("xks", operation, error.name if error else "ok", time.perf_counter() - perf)
        out_headers = [(b"x-amzn-requestid", request_id.encode()), (b"content-type", JSON_CT)]
        if error is None:
            await respond(send, 200, orjson.dumps(result), out_headers)
            return
        if isinstance(error, xks.MethodNotAllowed):
            out_headers.append((b"allow", b"POST"))
        await respond(send, error.status, error.body(), out_headers)

    async def _record(
        self,
        call: XksCall,
        request_id: str,
        started: float,
        error: xks.XksError | None,
        source_ip: str,
        user_agent: str,
    ) -> None:
        """The call's audit record: the key store, the external key and the caller's
        ``requestMetadata`` (awsPrincipalArn, kmsOperation, kmsRequestId, kmsKeyArn…), never data,
        AAD, IVs or tags. Read-only: written within 50 ms, never waited for."""
        route = call.route
        document = call.document or {}
        parameters: dict[str, Any] = {"uriPath": call.path[:512]}
        if route is not None:
            parameters["keyStore"] = route.keystore
            if route.key_id is not None:
                parameters["externalKeyId"] = route.key_id
        parameters["requestMetadata"] = xks.audited_metadata(call.document)
        for name in ("encryptionAlgorithm", "ciphertextDataIntegrityValueAlgorithm"):
            value = document.get(name)
            if isinstance(value, str):
                parameters[name] = value[:64]
        identity = None
        if call.authenticated:
            identity = {"type": "XksProxyCredential", "accessKeyId": call.access_key_id}
        record = ApiCall(
            event_source=EVENT_SOURCE,
            event_name=str(route.operation) if route is not None else "Unknown",
            read_only=True,
            principal=None,
            access_key_id=call.access_key_id,
            region=call.region or DEFAULT_REGION,
            source_ip=source_ip,
            user_agent=user_agent,
            request_id=request_id,
            started=started,
            request_parameters=parameters,
            error_code=error.name if error is not None else None,
            error_message=error.message if error is not None else None,
            key_id=route.key_id if route is not None else None,
            identity=identity,
        )
        with contextlib.suppress(RecordNotStored):  # read-only: logged by the writer, the answer stands
            await self.runtime.audit.submit_call(record)
