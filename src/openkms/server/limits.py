"""Bounded connections: the HTTP/1.1 protocol of ``openkms serve`` with limits on what a client may
hold — the size and number of request headers, the time to send the headers and the body, idle
keep-alive time, and the number of open connections of a process.

It is uvicorn's httptools protocol with the limits added where bytes arrive: header bytes are counted
before the parser sees them (so an unfinished header is never buffered past the limit), and each
request has a deadline for its headers (from the connection's first byte, or the end of the previous
response) and one for its body. Past a limit the client is answered (431, 408 or 503) and the
connection is closed; nothing a slow or malicious client does grows memory without bound or holds
the event loop. The answers given are counted by status in the configuration's
:class:`EdgeRejections` (``config.openkms_rejections``), which the metrics read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from openkms.server.tls import subject_name

_REASONS = {
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


@dataclass(frozen=True)
class EdgeLimits:
    """Per-connection and per-process bounds (all configurable; see ``openkms serve --help``)."""

    max_header_bytes: int = 16 * 1024  # request line + header fields
    max_headers: int = 100
    header_timeout: float = 10.0  # seconds to receive a request's complete header
    body_timeout: float = 30.0  # seconds to receive its complete body once the header is in
    keep_alive_timeout: int = 5  # idle seconds between requests on a kept-alive connection
    max_connections: int = 1024  # open connections of one process; past it new ones are refused


class EdgeRejections:
    """Requests and connections refused at the edge of one process, by HTTP status (408, 431, 503)."""

    def __init__(self) -> None:
        self.by_status: dict[int, int] = {}

    def count(self, status: int) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1


_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _OneWriteResponse:
    """The transport as one request's response cycle sees it: the response head is held until the
    first body write, so that a response whose body follows at once leaves in one ``send()`` (uvicorn
    writes the head and the body separately). A held head is written before a close and when the
    response completes without a body write (HEAD, 204, 304)."""

    __slots__ = ("_done", "_head", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport, done: Callable[[], None]) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._started = False
        self._done = done

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif self._started or data == _CONTINUE:
            self._transport.write(data)
        else:
            self._started = True
            self._head = data

    def flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)

    def on_response(self) -> None:
        """The response is complete: write a head still held, then the protocol's continuation."""
        self.flush()
        self._done()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with the :class:`EdgeLimits` of its server's configuration
    (``config.openkms_limits``; the defaults when the configuration has none)."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.limits: EdgeLimits = getattr(config, "openkms_limits", None) or EdgeLimits()
        self.rejections: EdgeRejections | None = getattr(config, "openkms_rejections", None)
        self._reading_headers = True
        self._header_bytes = 0
        self._header_count = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._rejected = False
        self._extensions: dict[str, Any] | None = None  # the ASGI TLS extension, with a client certificate

    # -- deadlines -----------------------------------------------------------------------------------
    def _arm(self, seconds: float, status: int) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, status)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, status: int) -> None:
        self._deadline = None
        self._reject(status)

    def _reject(self, status: int) -> None:
        """Answer ``status`` (unless a response is under way) and close the connection."""
        if self._rejected or self.transport.is_closing():
            return
        self._rejected = True
        if self.rejections is not None:
            self.rejections.count(status)
        cycle = self.cycle
        started = cycle is not None and not cycle.response_complete and cycle.response_started
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the application's receive() sees http.disconnect
            cycle.message_event.set()
        if not started:
            reason = _REASONS[status]
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s" % (status, reason, len(reason), reason)
            )
        self.transport.close()

    # -- protocol events -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._reject(503)
            return
        peercert = transport.get_extra_info("peercert") if self.scheme == "https" else None
        if peercert:  # verified: only with --tls-client-ca
            self._extensions = {"tls": {"client_cert_name": subject_name(peercert)}}
        self._arm(self.limits.header_timeout, 408)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return
        if self._reading_headers:
            room = self.limits.max_header_bytes - self._header_bytes
            if len(data) > room:
                # Feed what fits: if the header ends within it, the rest is body (or the next request).
                head, data = data[: room + 1], data[room + 1 :]
                self._header_bytes += len(head)
                super().data_received(head)
                if self._rejected or self.transport.is_closing():
                    return
                if self._reading_headers:
                    self._reject(431)
                    return
                if not data:
                    return
            else:
                self._header_bytes += len(data)
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._extensions is not None:
            self.scope["extensions"] = self._extensions
        self._reading_headers = True
        self._header_count = 0
        if self._deadline is None:
            self._arm(self.limits.header_timeout, 408)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count <= self.limits.max_headers:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._header_bytes = 0
        if self._header_count > self.limits.max_headers:
            self._reject(431)
            return
        self._arm(self.limits.body_timeout, 408)
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:
            held = _OneWriteResponse(self.transport, cycle.on_response)
            cycle.transport = held  # type: ignore[assignment]
            cycle.on_response = held.on_response

    def on_body(self, body: bytes) -> None:
        if self._rejected:
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        if self._rejected:
            return
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's header deadline starts with its first byte (on_message_begin); until
        # then the keep-alive timeout applies.
