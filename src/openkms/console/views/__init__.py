"""The console's pages: (method, path under /console, view, needs a signed-in session).

Paths are Starlette's; ``{key_id:key_id}`` is a key id or alias name of 1 to 64 letters, digits and
hyphens (any other address under ``/keys/`` has no page); ``{store_id:key_id}`` a custom key store id
of the same characters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response

from openkms.console.views import audit, auth, create, keys, keystores, material, regionality

View = Callable[..., Awaitable[Response]]


class KeyIdConvertor(Convertor[str]):
    regex = "[A-Za-z0-9-]{1,64}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("key_id", KeyIdConvertor())

K = "{key_id:key_id}"
S = "{store_id:key_id}"  # a custom key store id (cks-…), the same characters
ROUTES: list[tuple[str, str, View, bool]] = [
    ("GET", "/signin", auth.signin_form, False),
    ("POST", "/signin", auth.signin, False),
    ("POST", "/signout", auth.signout, True),
    ("GET", "/", keys.home, True),
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
    ("GET", f"/keys/{K}/replicate", regionality.replicate_form, True),
    ("POST", f"/keys/{K}/replicate", regionality.replicate_submit, True),
    ("GET", "/keystores", keystores.stores_list, True),
    ("GET", "/keystores/create", keystores.create_form, True),
    ("POST", "/keystores/create", keystores.create_submit, True),
    ("GET", f"/keystores/{S}", keystores.store_page, True),
    ("POST", f"/keystores/{S}", keystores.store_action, True),
    ("GET", f"/keystores/{S}/edit", keystores.edit_form, True),
    ("POST", f"/keystores/{S}/edit", keystores.edit_submit, True),
    ("GET", f"/keystores/{S}/delete", keystores.delete_form, True),
    ("POST", f"/keystores/{S}/delete", keystores.delete_submit, True),
    ("GET", "/audit", audit.audit_page, True),
]
