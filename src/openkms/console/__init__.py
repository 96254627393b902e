"""The web console served by ``openkms serve`` at ``/console/`` (see :mod:`openkms.console.app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openkms.console.app import ConsoleApp
    from openkms.server.app import KmsApp
    from openkms.server.authn import Receive, Scope, Send

#: Where the console is mounted (``openkms.console.http.PREFIX``, which imports Starlette).
PREFIX = "/console"


class DeferredConsole:
    """The console's ASGI application, made on its first request: Starlette, Jinja2 and the compiled
    templates (about 0.1 s) are not part of a server's start, nor of a server nobody opens the console
    of. Made on the event loop, so two first requests make one."""

    def __init__(self, kms: KmsApp) -> None:
        self.kms = kms
        self._app: ConsoleApp | None = None

    @property
    def app(self) -> ConsoleApp:
        app = self._app
        if app is None:
            from openkms.console.app import ConsoleApp  # late: see the class's doc

            app = self._app = ConsoleApp(self.kms)
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def mount(kms: KmsApp) -> DeferredConsole:
    """Serve the console at ``/console`` on the API's port (imports Starlette and Jinja2 only when used:
    on the console's first request)."""
    console = DeferredConsole(kms)
    kms.mounts[PREFIX] = console
    return console
