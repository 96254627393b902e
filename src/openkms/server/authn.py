"""Request plumbing shared by every HTTP entry point: reading a bounded body, writing a response, and
authenticating a SigV4-signed request against the stored credentials (long-term access keys and STS
session credentials)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from openkms.auth.sigv4 import Credential, SigningKeyCache, check_scope, parse_authorization, verify_signature
from openkms.domain.model import Principal
from openkms.errors import UnrecognizedClientException
from openkms.server.runtime import Runtime

MAX_BODY = 512 * 1024
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
InThread = Callable[[Callable[[], Any]], Awaitable[Any]]


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int = MAX_BODY) -> bytes:
    """The whole request body; raises BodyTooLarge past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge()
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Authenticator:
    """SigV4 verification, the one path of every signed request (the KMS JSON API and the IAM/STS Query
    API): the Authorization header and the headers that must be signed, scope and clock skew, the access
    key (and session token; an id refused a moment ago is refused again without a database read), the
    signature. The request time is checked against the wall clock (``runtime.wall``: what clients sign
    with), a session's expiry against the service clock."""

    def __init__(self, runtime: Runtime, in_thread: InThread) -> None:
        self.runtime = runtime
        self.signing_keys = SigningKeyCache()
        self._in_thread = in_thread

    async def authenticate(
        self,
        scope: Scope,
        headers: dict[str, str],
        body: bytes,
        *,
        service: str,
        region_ok: Callable[[str], bool],
        on_credential: Callable[[Credential], None] | None = None,
    ) -> tuple[Principal, Credential]:
        cred = parse_authorization(headers)
        if on_credential is not None:
            on_credential(cred)
        check_scope(cred, service=service, region_ok=region_ok, now=self.runtime.wall.now())
        cache = self.runtime.creds
        creds = cache.cached(cred.access_key_id)
        if creds is None:
            if cache.known_unknown(cred.access_key_id):  # refused a moment ago: no database read
                raise UnrecognizedClientException()
            creds = await self._in_thread(functools.partial(cache.load, cred.access_key_id))
        if creds is None:
            raise UnrecognizedClientException()
        if creds.token_sha256 is not None or cred.security_token is not None:
            creds.check_session(cred.security_token, self.runtime.clock.now())
        signing_key = self.signing_keys.prepared_key(
            cred.access_key_id, creds.secret.reveal(), cred.date, cred.region, cred.service
        )
        verify_signature(
            cred,
            method=scope["method"],
            raw_path=scope.get("raw_path") or scope["path"].encode(),
            query_string=scope.get("query_string", b""),
            headers=scope["headers"],
            body=body,
            signing_key=signing_key,
        )
        return creds.principal, cred
