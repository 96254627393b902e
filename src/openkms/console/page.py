"""What the console's views work with: the console's services (:class:`Console`), the page being
answered (:class:`Page`: the request, and for a signed-in view its session, principal and API), and
an API error in the words a page shows (:func:`api_error`).

The application (:mod:`openkms.console.app`) builds these and routes to the views; the views
(:mod:`openkms.console.views`) import only this module and those below it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.responses import HTMLResponse, Response

from openkms.console.api import Api, ApiError
from openkms.console.http import ConsoleRequest
from openkms.console.regions import region_choices, region_home, with_region
from openkms.console.render import render
from openkms.console.sessions import Session, SessionStore
from openkms.domain.model import Principal

if TYPE_CHECKING:
    from openkms.server.app import KmsApp


#: How long the Regions where an account has keys are remembered (the Region selector lists them when
#: the server answers every Region): one small query a minute per account and server process, never one
#: per page.
REGIONS_IN_USE_TTL = 60.0
MAX_REMEMBERED_ACCOUNTS = 10_000


class Console:
    """The console's services: the KMS application it calls, its runtime, the session store, and the
    Regions where each account has keys (remembered for a minute)."""

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
        self._regions_in_use: dict[str, tuple[float, list[str]]] = {}

    async def in_thread(self, fn: Callable[[], Any]) -> Any:
        """Run blocking work (database reads and writes) on the server's thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self.kms.pool, fn)

    async def regions_for(self, account_id: str, current: str) -> list[str]:
        """The Regions the selector offers an account's session: the server's Regions when it has a
        list, else AWS's commercial Regions and the Regions where the account has keys."""
        configured = self.runtime.settings.regions
        if configured:
            return region_choices(configured, (), current)
        now = time.monotonic()
        cached = self._regions_in_use.get(account_id)
        if cached is None or now - cached[0] >= REGIONS_IN_USE_TTL:
            cached = (now, await self.in_thread(functools.partial(self._key_regions, account_id)))
            if len(self._regions_in_use) >= MAX_REMEMBERED_ACCOUNTS:
                self._regions_in_use.clear()
            self._regions_in_use[account_id] = cached
        return region_choices((), cached[1], current)

    def _key_regions(self, account_id: str) -> list[str]:
        with self.runtime.store.read() as tx:
            return tx.console_key_regions(account_id)


@dataclass
class Page:
    """What a view gets: the request, and for signed-in views the session, principal and API."""

    console: Console
    request: ConsoleRequest
    session: Session | None = None
    principal: Principal | None = None
    api: Api = field(default=None)  # type: ignore[assignment]
    regions: list[str] = field(default_factory=list)  # the Region selector's choices

    @property
    def prefs(self) -> dict[str, Any]:
        return dict(self.session.row.prefs) if self.session else {}

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("error", None)
        context.setdefault("errors", {})
        context.setdefault("flash", None)
        region = self.session.row.region if self.session else ""
        body = render(
            template,
            principal=self.principal,
            session=self.session,
            csrf=self.session.csrf if self.session else "",
            region=region,
            regions=self.regions or ([region] if region else []),
            region_home=region_home(self.request.path),
            path=self.request.path,
            **context,
        )
        return HTMLResponse(with_region(body, region), status_code=status)

    def error_page(self, status: int, title: str, message: str) -> Response:
        return self.render("message.html", status=status, title=title, message=message)


def api_error(exc: ApiError) -> dict[str, str]:
    return {"title": exc.title, "message": exc.message, "code": exc.code}
