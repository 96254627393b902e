"""The console's ASGI application, mounted by ``openkms serve`` at ``/console/`` on the API's port.

It routes a request to its view, and enforces what every view relies on: a live session (else the
sign-in page), the signed-in principal looked up again from its access key (a deleted key ends the
session), and on every POST the session's CSRF token and a same-origin ``Origin``/``Referer``. Errors
become pages in plain words; anything unexpected is logged under a request id (never with the form's
contents) and shown as such, never as a stack trace.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from openkms.audit.events import fast_uuid
from openkms.console.api import Api, ApiError
from openkms.console.http import (
    BadRequest,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    read_request,
    redirect,
    send_response,
)
from openkms.console.render import compile_templates, load_static, render
from openkms.console.sessions import SESSION_COOKIE, SIGNIN_COOKIE, Session, SessionStore, tokens_equal
from openkms.domain.model import Principal

if TYPE_CHECKING:
    from openkms.server.app import KmsApp

log = logging.getLogger("openkms.console")

PREFIX = "/console"
Handler = Callable[..., Awaitable[Response]]


@dataclass
class Page:
    """What a view gets: the request, and for signed-in views the session, principal and API."""

    console: ConsoleApp
    request: Request
    session: Session | None = None
    principal: Principal | None = None
    api: Api = field(default=None)  # type: ignore[assignment]

    @property
    def prefs(self) -> dict[str, Any]:
        return dict(self.session.row.prefs) if self.session else {}

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("error", None)
        context.setdefault("errors", {})
        context.setdefault("flash", None)
        body = render(
            template,
            principal=self.principal,
            session=self.session,
            csrf=self.session.csrf if self.session else "",
            region=self.session.row.region if self.session else "",
            path=self.request.path,
            **context,
        )
        return Response(status=status, body=body)

    def error_page(self, status: int, title: str, message: str) -> Response:
        return self.render("message.html", status=status, title=title, message=message)


class ConsoleApp:
    def __init__(self, kms: KmsApp) -> None:
        from openkms.console import views

        self.kms = kms
        self.runtime = kms.runtime
        self.sessions = SessionStore(kms.runtime.store)
        self.static = load_static()
        compile_templates()
        self.routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []
        for method, pattern, handler, signed_in in views.ROUTES:
            self.routes.append((method, re.compile(f"^{PREFIX}{pattern}$"), handler, signed_in))

    async def in_thread(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.kms.pool, fn)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path in (PREFIX, PREFIX + "/"):
            await send_response(send, redirect(f"{PREFIX}/keys", 302))
            return
        if path.startswith(f"{PREFIX}/static/") and scope["method"] in ("GET", "HEAD"):
            found = self.static.get(path.rsplit("/", 1)[-1])
            if found is None:
                await send_response(send, Response(404, b"Not found", "text/plain; charset=utf-8"))
            else:
                await send_response(send, Response(200, found[0], found[1]), static=True)
            return
        request_id = fast_uuid()
        try:
            request = await read_request(scope, receive)
            response = await self._dispatch(request)
        except BadRequest as exc:
            page = Page(self, Request(scope["method"], path, {}, {}, {}, "", "http"))
            response = page.error_page(exc.status, "The request could not be read", exc.message)
        except Exception:
            log.exception("console request %s (%s %s) failed", request_id, scope["method"], path)
            page = Page(self, Request(scope["method"], path, {}, {}, {}, "", "http"))
            response = page.error_page(
                500,
                "Something went wrong",
                f"The console could not complete the request. Request id: {request_id}",
            )
        await send_response(send, response)

    async def _dispatch(self, request: Request) -> Response:
        allowed: list[str] = []
        for method, pattern, handler, signed_in in self.routes:
            match = pattern.match(request.path)
            if match is None:
                continue
            if method != request.method and not (method == "GET" and request.method == "HEAD"):
                allowed.append(method)
                continue
            page = Page(self, request)
            if request.method == "POST" and not self._same_origin(request):
                return page.error_page(
                    403, "The request was refused", "The request did not come from this console."
                )
            if signed_in:
                refusal = await self._sign_in_page(page)
                if refusal is not None:
                    return refusal
                if request.method == "POST":
                    assert page.session is not None
                    if not tokens_equal(request.field("csrf_token"), page.session.csrf):
                        return page.error_page(
                            403,
                            "The request was refused",
                            "The form's security token is missing or out of date. "
                            "Reload the page and try again.",
                        )
            return await handler(page, **match.groupdict())
        page = Page(self, request)
        if allowed:
            return page.error_page(405, "Not allowed", "This address does not accept this kind of request.")
        return page.error_page(404, "Page not found", "There is no console page at this address.")

    def _same_origin(self, request: Request) -> bool:
        """A POST must come from a page of this console (when the browser says where it comes from)."""
        origin = request.headers.get("origin")
        if origin is not None:
            return origin == request.origin
        referer = request.headers.get("referer")
        if referer is not None:
            parts = urllib.parse.urlsplit(referer)
            return f"{parts.scheme}://{parts.netloc}" == request.origin
        return True

    async def _sign_in_page(self, page: Page) -> Response | None:
        """Fill in the page's session, principal and API; or the answer for a request without one."""
        request = page.request
        session_id = request.cookies.get(SESSION_COOKIE, "")
        session = (
            await self.in_thread(functools.partial(self.sessions.load, session_id)) if session_id else None
        )
        principal: Principal | None = None
        if session is not None:
            creds = self.runtime.creds.cached(session.row.access_key_id)
            if creds is None:
                creds = await self.in_thread(
                    functools.partial(self.runtime.creds.load, session.row.access_key_id)
                )
            if creds is None:  # the access key was deleted or deactivated: the session ends with it
                await self.in_thread(functools.partial(self.sessions.delete, session.id))
                session = None
            else:
                principal = creds.principal
        if session is None or principal is None:
            if request.method == "POST":
                response = page.error_page(
                    401, "You are signed out", "Your session has ended. Sign in again to continue."
                )
            else:
                reason = "expired" if session_id else ""
                response = redirect(f"{PREFIX}/signin" + (f"?reason={reason}" if reason else ""))
            if session_id:
                response.delete_cookie(SESSION_COOKIE, secure=request.secure)
            return response
        page.session = session
        page.principal = principal
        page.api = Api(
            self.kms,
            principal,
            session.row.region,
            request.client_ip,
            request.secure,
            session.row.access_key_id,
        )
        return None

    def check_signin_token(self, request: Request) -> bool:
        cookie = request.cookies.get(SIGNIN_COOKIE, "")
        return bool(cookie) and tokens_equal(request.field("csrf_token"), cookie)


def api_error(exc: ApiError) -> dict[str, str]:
    return {"title": exc.title, "message": exc.message, "code": exc.code}


def mount(kms: KmsApp) -> ConsoleApp:
    """Serve the console at ``/console`` on the API's port."""
    console = ConsoleApp(kms)
    kms.mounts[PREFIX] = console
    return console
