"""The console's pages: (method, path under /console, view, needs a signed-in session)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from openkms.console.http import Response
from openkms.console.views import audit, auth, create, keys, material

K = keys.KEY_ID
ROUTES: list[tuple[str, str, Callable[..., Awaitable[Response]], bool]] = [
    ("GET", "/signin", auth.signin_form, False),
    ("POST", "/signin", auth.signin, False),
    ("POST", "/signout", auth.signout, True),
    ("GET", "/keys", keys.keys_list, True),
    ("POST", "/preferences", keys.preferences, True),
    ("GET", "/keys/create", create.create_form, True),
    ("POST", "/keys/create", create.create_submit, True),
    ("GET", f"/keys/{K}", keys.key_page, True),
    ("POST", f"/keys/{K}", keys.key_action, True),
    ("GET", f"/keys/{K}/delete", keys.delete_form, True),
    ("POST", f"/keys/{K}/delete", keys.delete_submit, True),
    ("GET", f"/keys/{K}/import", material.import_page, True),
    ("POST", f"/keys/{K}/import", material.upload_material, True),
    ("POST", f"/keys/{K}/import/parameters", material.download_parameters, True),
    ("GET", "/audit", audit.audit_page, True),
]
