"""The network edge of ``openkms serve``: the uvicorn configuration it runs with (TLS, the bounded
HTTP protocol, no trust in forwarding headers except from ``--trusted-proxies``) and the ASGI
wrapper that applies the trusted proxies' headers.

uvicorn's own proxy-header handling is off: it trusts ``X-Forwarded-*`` from any local client.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Callable
from typing import Any

import uvicorn

from openkms.server.authn import Receive, Scope, Send
from openkms.server.limits import BoundedHttpToolsProtocol, EdgeLimits, EdgeRejections
from openkms.server.proxies import TrustedProxies, apply_forwarding, parse_networks
from openkms.server.tls import ServerTls, TlsConfig

ASGIApp = Callable[[Scope, Receive, Send], Any]


class ForwardedHeaders:
    """ASGI wrapper: the client address and scheme from a trusted proxy's headers (see proxies.py)."""

    def __init__(self, app: ASGIApp, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.proxies:
            apply_forwarding(scope, self.proxies)
        await self.app(scope, receive, send)


def behind_proxies(app: ASGIApp, trusted_proxies: list[str]) -> ASGIApp:
    """``app`` as served: wrapped by :class:`ForwardedHeaders` only when proxies are trusted (no cost
    on the hot path otherwise)."""
    proxies = TrustedProxies(parse_networks(trusted_proxies))
    return ForwardedHeaders(app, proxies) if proxies else app


def _tls_context(config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's ssl_context_factory: the server's context, reloaded in place on SIGHUP."""
    tls: TlsConfig = config.openkms_tls  # type: ignore[attr-defined]
    server_tls = ServerTls(tls)
    server_tls.reload_on_sighup()
    return server_tls.context


class EdgeConfig(uvicorn.Config):
    """uvicorn's Config with openkms's TLS and limits (picklable for ``--workers``)."""

    def __init__(self, app: Any, *, tls: TlsConfig | None, limits: EdgeLimits, **options: Any) -> None:
        self.openkms_tls = tls
        self.openkms_limits = limits
        self.openkms_rejections = EdgeRejections()  # this process's (a worker counts its own)
        super().__init__(
            app,
            http=BoundedHttpToolsProtocol,
            proxy_headers=False,
            timeout_keep_alive=limits.keep_alive_timeout,
            ssl_context_factory=_tls_context if tls is not None else None,
            **options,
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
