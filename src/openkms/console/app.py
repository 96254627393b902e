"""The console's ASGI application (Starlette), mounted by ``openkms serve`` at ``/console/`` on the
API's port; only requests under ``/console`` reach it, the KMS API stays on the raw ASGI path.

It routes a request to its view (:data:`openkms.console.views.ROUTES`) and enforces what every view
relies on: a readable request within the console's limits, on every POST a same-origin ``Origin``/
``Referer``, for signed-in views a live session (else the sign-in page) whose principal is looked up
again from its access key (a deleted key ends the session) and on a POST the session's CSRF token,
then the Region the address names (:mod:`openkms.console.regions`: it becomes the session's Region,
and the redirects a view answers carry it). Errors become pages in plain words; anything unexpected
is logged under a request id (never with the form's contents) and shown as such, never as a stack
trace. Every answer carries the console's security headers; the static files are served from the
package.
"""

from __future__ import annotations

import functools
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from openkms.audit.events import fast_uuid
from openkms.console.api import Api
from openkms.console.http import (
    PREFIX,
    BadRequest,
    ConsoleRequest,
    SecurityHeaders,
    delete_cookie,
    read_request,
    request_path,
)
from openkms.console.page import Console, Page
from openkms.console.regions import located, readable_region
from openkms.console.sessions import SESSION_COOKIE, tokens_equal
from openkms.console.views import ROUTES, View
from openkms.domain.model import Principal
from openkms.server.authn import Receive, Scope, Send

if TYPE_CHECKING:
    from openkms.server.app import KmsApp

log = logging.getLogger("openkms.console")

#: The answers of the router and the static files for an address without a page or a method the
#: address does not take.
ROUTING_ERRORS = {
    404: ("Page not found", "There is no console page at this address."),
    405: ("Not allowed", "This address does not accept this kind of request."),
}
UNANSWERED = ("The request could not be answered", "The console could not answer this request.")


class ConsoleApp:
    def __init__(self, kms: KmsApp) -> None:
        self.console = Console(kms)
        to_home = RedirectResponse(f"{PREFIX}/", 302)  # an ASGI app: any method
        routes: list[BaseRoute] = [
            Mount("/static", app=StaticFiles(packages=[("openkms.console", "static")])),
            *(
                Route(path, self._endpoint(view, signed_in), methods=[method])
                for method, path, view, signed_in in ROUTES
            ),
        ]
        app = Starlette(
            routes=[Route(PREFIX, to_home), Mount(PREFIX, app=Router(routes, redirect_slashes=False))],
            exception_handlers={HTTPException: self._routing_error},
        )
        app.router.redirect_slashes = False  # "/console/keys/" is not "/console/keys"
        self.app = SecurityHeaders(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    async def _routing_error(self, http: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        title, message = ROUTING_ERRORS.get(status, UNANSWERED)
        return Page(self.console, ConsoleRequest(http)).error_page(status, title, message)

    def _endpoint(self, view: View, signed_in: bool) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(http: Request) -> Response:
            try:
                request = await read_request(http)
                return await self._dispatch(Page(self.console, request), view, signed_in, http)
            except BadRequest as exc:
                page = Page(self.console, ConsoleRequest(http))
                return page.error_page(exc.status, "The request could not be read", exc.message)
            except Exception:
                request_id = fast_uuid()
                log.exception(
                    "console request %s (%s %s) failed", request_id, http.method, request_path(http)
                )
                return Page(self.console, ConsoleRequest(http)).error_page(
                    500,
                    "Something went wrong",
                    f"The console could not complete the request. Request id: {request_id}",
                )

        return endpoint

    async def _dispatch(self, page: Page, view: View, signed_in: bool, http: Request) -> Response:
        request = page.request
        if request.method == "POST" and not self._same_origin(request):
            return page.error_page(
                403, "The request was refused", "The request did not come from this console."
            )
        if not signed_in:
            return await view(page, **http.path_params)
        refusal = await self._sign_in_page(page)
        if refusal is not None:
            return refusal
        session = page.session
        if request.method == "POST" and not (
            session is not None and tokens_equal(request.field("csrf_token"), session.csrf)
        ):
            return page.error_page(
                403,
                "The request was refused",
                "The form's security token is missing or out of date. Reload the page and try again.",
            )
        refusal = await self._use_region(page)
        if refusal is not None:
            return refusal
        response = await view(page, **http.path_params)
        location = response.headers.get("location")
        if (
            location is not None
            and location.startswith(PREFIX + "/")
            and not location.startswith(f"{PREFIX}/signin")  # signed out: no Region any more
            and page.session is not None
        ):
            response.headers["location"] = located(location, page.session.row.region)
        return response

    async def _use_region(self, page: Page) -> Response | None:
        """Answer in the Region the address names (it becomes the session's Region) or the session's;
        the page's API and Region choices follow. An address naming a Region this server does not
        answer for gets an error page and changes nothing."""
        console = self.console
        session = page.session
        principal = page.principal
        if session is None or principal is None:  # only called once the session is known
            return None
        wanted = page.request.arg("region")
        if wanted and wanted != session.row.region:
            if not (readable_region(wanted) and console.runtime.settings.region_ok(wanted)):
                page.regions = await console.regions_for(principal.account_id, session.row.region)
                shown = f" “{wanted}”" if readable_region(wanted) else ""
                return page.error_page(
                    400,
                    "This Region is not available",
                    f"This service does not answer for the Region{shown} in the address. "
                    "Choose a Region from the Region menu.",
                )
            session = await console.in_thread(functools.partial(console.sessions.set_region, session, wanted))
            page.session = session
        page.regions = await console.regions_for(principal.account_id, session.row.region)
        page.api = Api(
            console.kms,
            principal,
            session.row.region,
            page.request.client_ip,
            page.request.secure,
            session.row.access_key_id,
        )
        return None

    def _same_origin(self, request: ConsoleRequest) -> bool:
        """A POST must come from a page of this console (when the browser says where it comes from)."""
        origin = request.header("origin")
        if origin is not None:
            return origin == request.origin
        referer = request.header("referer")
        if referer is not None:
            parts = urllib.parse.urlsplit(referer)
            return f"{parts.scheme}://{parts.netloc}" == request.origin
        return True

    async def _sign_in_page(self, page: Page) -> Response | None:
        """Fill in the page's session and principal; or the answer for a request without one."""
        console = self.console
        request = page.request
        session_id = request.cookies.get(SESSION_COOKIE, "")
        session = (
            await console.in_thread(functools.partial(console.sessions.load, session_id))
            if session_id
            else None
        )
        principal: Principal | None = None
        if session is not None:
            creds = console.runtime.creds.cached(session.row.access_key_id)
            if creds is None:
                creds = await console.in_thread(
                    functools.partial(console.runtime.creds.load, session.row.access_key_id)
                )
            if creds is None:  # the access key was deleted or deactivated: the session ends with it
                await console.in_thread(functools.partial(console.sessions.delete, session.id.reveal()))
                session = None
            else:
                principal = creds.principal
        if session is None or principal is None:
            response: Response
            if request.method == "POST":
                response = page.error_page(
                    401, "You are signed out", "Your session has ended. Sign in again to continue."
                )
            else:
                reason = "expired" if session_id else ""
                response = RedirectResponse(f"{PREFIX}/signin" + (f"?reason={reason}" if reason else ""), 303)
            if session_id:
                delete_cookie(response, SESSION_COOKIE, secure=request.secure)
            return response
        page.session = session
        page.principal = principal
        return None
