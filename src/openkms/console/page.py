"""What the console's views work with: the console's services (:class:`Console`), the page being
answered (:class:`Page`: the request, and for a signed-in view its session, principal and API), and
an API error in the words a page shows (:func:`api_error`).

The application (:mod:`openkms.console.app`) builds these and routes to the views; the views
(:mod:`openkms.console.views`) import only this module and those below it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.responses import HTMLResponse, Response

from openkms.console.api import Api, ApiError
from openkms.console.http import ConsoleRequest
from openkms.console.render import render
from openkms.console.sessions import Session, SessionStore
from openkms.domain.model import Principal

if TYPE_CHECKING:
    from openkms.server.app import KmsApp


class Console:
    """The console's services: the KMS application it calls, its runtime, and the session store."""

    def __init__(self, kms: KmsApp) -> None:
        self.kms = kms
        self.runtime = kms.runtime
        settings = kms.runtime.settings
        self.sessions = SessionStore(
            kms.runtime.store,
            kms.runtime.clock,
            settings.console_idle_timeout,
            settings.console_session_lifetime,
        )

    async def in_thread(self, fn: Callable[[], Any]) -> Any:
        """Run blocking work (database reads and writes) on the server's thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self.kms.pool, fn)


@dataclass
class Page:
    """What a view gets: the request, and for signed-in views the session, principal and API."""

    console: Console
    request: ConsoleRequest
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
        return HTMLResponse(body, status_code=status)

    def error_page(self, status: int, title: str, message: str) -> Response:
        return self.render("message.html", status=status, title=title, message=message)


def api_error(exc: ApiError) -> dict[str, str]:
    return {"title": exc.title, "message": exc.message, "code": exc.code}
