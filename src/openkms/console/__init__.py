"""The web console served by ``openkms serve`` at ``/console/`` (see :mod:`openkms.console.app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openkms.console.app import ConsoleApp
    from openkms.server.app import KmsApp


def mount(kms: KmsApp) -> ConsoleApp:
    """Serve the console at ``/console`` on the API's port (imports Starlette and Jinja2 only when used:
    ``openkms`` commands other than ``serve`` start without them)."""
    from openkms.console.app import mount as _mount

    return _mount(kms)
