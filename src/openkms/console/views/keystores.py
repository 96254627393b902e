"""Custom key stores: the account's external key stores (XKS) of the session's Region, as AWS's console
shows them — the list with each store's connection state, a store's page, creating one (its proxy's
URI endpoint and path, public endpoint connectivity, and the proxy's credential), connecting,
disconnecting, editing and deleting it (after a confirmation).

Every value comes from DescribeCustomKeyStores and every change is one API call as the signed-in
principal. The credential's secret access key is sent to the service and nowhere else: it is never put
back into a form, a page or a message (a refusal that quotes it is shown with it masked), and the
service's audit record leaves it out (the API's ``sensitive`` members are never recorded).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from starlette.responses import RedirectResponse, Response

from openkms.console.api import Api, ApiError
from openkms.console.http import PREFIX
from openkms.console.page import Page, api_error

STORE_TYPE = "EXTERNAL_KEY_STORE"
CONNECTIVITY = "PUBLIC_ENDPOINT"
ENDPOINT = re.compile(r"^https://[a-zA-Z0-9.-]+(:[0-9]{1,5})?$")
URI_PATH = re.compile(r"^(/[a-zA-Z0-9/_-]+)?/kms/xks/v[0-9]{1,2}$")
ACCESS_KEY_ID = re.compile(r"^[A-Z2-7]{20,30}$")
SECRET = re.compile(r"^[a-zA-Z0-9/+=]{43,64}$")
LIST_LIMIT = 100

STATE_LABELS = {
    "CONNECTED": "Connected",
    "CONNECTING": "Connecting",
    "DISCONNECTED": "Disconnected",
    "DISCONNECTING": "Disconnecting",
    "FAILED": "Failed",
}
#: ConnectionErrorCode in plain words (AWS's list; the codes of CloudHSM key stores are shown as such).
FAILURE_LABELS = {
    "INVALID_CREDENTIALS": "The proxy refused the proxy credential.",
    "XKS_PROXY_NOT_REACHABLE": "The proxy could not be reached at its URI endpoint.",
    "XKS_PROXY_TIMED_OUT": "The proxy did not answer in time.",
    "XKS_PROXY_INVALID_RESPONSE": "The proxy's answer could not be understood.",
    "XKS_PROXY_INVALID_CONFIGURATION": "The proxy URI path or the proxy's configuration is not valid.",
    "XKS_PROXY_INVALID_TLS_CONFIGURATION": "The proxy's TLS certificate is not trusted.",
    "XKS_PROXY_ACCESS_DENIED": "The proxy denied access.",
    "INTERNAL_ERROR": "The service could not complete the connection.",
    "NETWORK_ERRORS": "The network to the proxy failed.",
}
FLASH = {
    "created": "The external key store was created. Connect it to create KMS keys in it.",
    "connected": "The key store was connected.",
    "disconnected": "The key store was disconnected. Its KMS keys are unavailable until it is connected.",
    "updated": "The key store settings were saved.",
    "deleted": "The key store was deleted.",
}
#: Which form field a refusal of the service belongs to.
FIELD_OF_ERROR = {
    "CustomKeyStoreNameInUseException": "name",
    "XksProxyUriEndpointInUseException": "endpoint",
    "XksProxyUriInUseException": "endpoint",
    "XksProxyUriUnreachableException": "endpoint",
    "XksProxyInvalidConfigurationException": "path",
    "XksProxyIncorrectAuthenticationCredentialException": "credential",
}


def masked(problem: dict[str, str], secret: str) -> dict[str, str]:
    """A refusal as the page shows it, with the secret access key never in it."""
    if not secret:
        return problem
    return {k: v.replace(secret, "[secret access key]") for k, v in problem.items()}


async def list_stores(api: Api) -> list[dict[str, Any]]:
    """The account's external key stores in the API's Region (at most a few pages)."""
    stores: list[dict[str, Any]] = []
    marker: str | None = None
    for _ in range(10):
        page = await api.kms("DescribeCustomKeyStores", Limit=LIST_LIMIT, Marker=marker)
        stores += [s for s in page.get("CustomKeyStores", []) if s.get("CustomKeyStoreType") == STORE_TYPE]
        marker = page.get("NextMarker")
        if not page.get("Truncated") or not marker:
            break
    return stores


async def describe(api: Api, store_id: str) -> dict[str, Any]:
    """One key store (for a key's page): ``{"store": …}`` or ``{"error": …}``."""
    try:
        found = await api.kms("DescribeCustomKeyStores", CustomKeyStoreId=store_id)
    except ApiError as exc:
        return {"error": api_error(exc)}
    stores = found.get("CustomKeyStores", [])
    return {"store": stores[0]} if stores else {"error": {"title": "Not found", "message": store_id}}


def _render(page: Page, template: str, status: int = 200, **context: Any) -> Response:
    return page.render(
        template, status=status, state_labels=STATE_LABELS, failure_labels=FAILURE_LABELS, **context
    )


async def stores_list(page: Page) -> Response:
    code = page.request.arg("flash")
    try:
        stores, error = await list_stores(page.api), None
    except ApiError as exc:
        stores, error = [], api_error(exc)
    return _render(page, "keystores.html", stores=stores, error=error, flash_text=FLASH.get(code))


# --- create and edit ------------------------------------------------------------------------------------


@dataclass
class StoreForm:
    name: str = ""
    endpoint: str = ""
    path: str = ""
    access_key_id: str = ""
    secret: str = ""  # never rendered

    @classmethod
    def from_page(cls, page: Page) -> StoreForm:
        f = page.request.field
        return cls(
            name=f("name").strip(),
            endpoint=f("endpoint").strip(),
            path=f("path").strip(),
            access_key_id=f("access_key_id").strip(),
            secret=f("secret_access_key").strip(),
        )

    @classmethod
    def of_store(cls, store: dict[str, Any]) -> StoreForm:
        proxy = store.get("XksProxyConfiguration") or {}
        return cls(
            name=str(store.get("CustomKeyStoreName", "")),
            endpoint=str(proxy.get("UriEndpoint", "")),
            path=str(proxy.get("UriPath", "")),
            access_key_id=str(proxy.get("AccessKeyId", "")),
        )

    def check(self, *, new: bool, current: StoreForm | None = None) -> dict[str, str]:
        errors: dict[str, str] = {}
        if not self.name:
            errors["name"] = "Enter a key store name."
        elif len(self.name) > 256:
            errors["name"] = "The key store name can have up to 256 characters."
        if len(self.endpoint) > 128 or not ENDPOINT.match(self.endpoint):
            errors["endpoint"] = (
                "Enter the proxy URI endpoint as https:// and a host name with an optional port, "
                "such as https://xks.example.com:8443."
            )
        if len(self.path) > 128 or not URI_PATH.match(self.path):
            errors["path"] = "Enter the proxy URI path, ending with /kms/xks/v1, such as /example/kms/xks/v1."
        changed_id = current is None or self.access_key_id != current.access_key_id
        if new or self.secret or changed_id:
            if not ACCESS_KEY_ID.match(self.access_key_id):
                errors["access_key_id"] = (
                    "Enter the proxy's access key ID: 20 to 30 capital letters and digits 2 to 7."
                )
            if not SECRET.match(self.secret):
                errors["secret_access_key"] = (
                    "Enter the proxy's secret access key: 43 to 64 letters, digits and the characters / + =."
                    if new or self.secret
                    else "Enter the secret access key of the new access key ID."
                )
        return errors

    def credential(self) -> dict[str, str]:
        return {"AccessKeyId": self.access_key_id, "RawSecretAccessKey": self.secret}


def _refusal(exc: ApiError, form: StoreForm) -> dict[str, Any]:
    problem = masked(api_error(exc), form.secret)
    return {FIELD_OF_ERROR.get(exc.code, "form"): problem}


async def create_form(page: Page) -> Response:
    return _render(page, "keystore_form.html", form=StoreForm(), store=None, errors={})


async def create_submit(page: Page) -> Response:
    form = StoreForm.from_page(page)
    errors: dict[str, Any] = dict(form.check(new=True))
    if page.request.field("connectivity") not in ("", CONNECTIVITY):
        errors["connectivity"] = "Only public endpoint connectivity is available on this service."
    if not errors:
        try:
            created = await page.api.kms(
                "CreateCustomKeyStore",
                CustomKeyStoreName=form.name,
                CustomKeyStoreType=STORE_TYPE,
                XksProxyUriEndpoint=form.endpoint,
                XksProxyUriPath=form.path,
                XksProxyConnectivity=CONNECTIVITY,
                XksProxyAuthenticationCredential=form.credential(),
            )
        except ApiError as exc:
            return _render(
                page, "keystore_form.html", exc.status, form=form, store=None, errors=_refusal(exc, form)
            )
        return RedirectResponse(f"{PREFIX}/keystores/{created['CustomKeyStoreId']}?flash=created", 303)
    return _render(page, "keystore_form.html", 400, form=form, store=None, errors=errors)


async def _one(page: Page, store_id: str) -> dict[str, Any] | Response:
    found = await describe(page.api, store_id)
    if "store" in found:
        store: dict[str, Any] = found["store"]
        return store
    return _render(page, "keystore_error.html", 404, store_id=store_id, error=found["error"])


async def edit_form(page: Page, store_id: str) -> Response:
    store = await _one(page, store_id)
    if isinstance(store, Response):
        return store
    return _render(page, "keystore_form.html", form=StoreForm.of_store(store), store=store, errors={})


async def edit_submit(page: Page, store_id: str) -> Response:
    store = await _one(page, store_id)
    if isinstance(store, Response):
        return store
    current = StoreForm.of_store(store)
    form = StoreForm.from_page(page)
    errors = form.check(new=False, current=current)
    if errors:
        return _render(page, "keystore_form.html", 400, form=form, store=store, errors=errors)
    changes: dict[str, Any] = {}
    if form.name != current.name:
        changes["NewCustomKeyStoreName"] = form.name
    if form.endpoint != current.endpoint:
        changes["XksProxyUriEndpoint"] = form.endpoint
    if form.path != current.path:
        changes["XksProxyUriPath"] = form.path
    if form.secret:
        changes["XksProxyAuthenticationCredential"] = form.credential()
    if changes:
        try:
            await page.api.kms("UpdateCustomKeyStore", CustomKeyStoreId=store["CustomKeyStoreId"], **changes)
        except ApiError as exc:
            return _render(
                page, "keystore_form.html", exc.status, form=form, store=store, errors=_refusal(exc, form)
            )
    return RedirectResponse(f"{PREFIX}/keystores/{store['CustomKeyStoreId']}?flash=updated", 303)


# --- a key store's page, connect and disconnect -------------------------------------------------------


async def store_page(page: Page, store_id: str, errors: dict[str, Any] | None = None) -> Response:
    store = await _one(page, store_id)
    if isinstance(store, Response):
        return store
    code = page.request.arg("flash")
    return _render(
        page,
        "keystore.html",
        400 if errors else 200,
        store=store,
        errors=errors or {},
        flash_text=FLASH.get(code),
    )


async def store_action(page: Page, store_id: str) -> Response:
    op = page.request.field("op")
    operation = {"connect": "ConnectCustomKeyStore", "disconnect": "DisconnectCustomKeyStore"}.get(op)
    if operation is None:
        unknown = {"title": "", "message": "This action is not known."}
        return await store_page(page, store_id, {"form": unknown})
    try:
        await page.api.kms(operation, CustomKeyStoreId=store_id)
    except ApiError as exc:
        return await store_page(page, store_id, {op: api_error(exc)})
    flash = "disconnected" if op == "disconnect" else "connected"
    if op == "connect":
        found = await describe(page.api, store_id)
        if found.get("store", {}).get("ConnectionState") != "CONNECTED":
            flash = ""  # the page shows the state and why it failed
    query = f"?{urllib.parse.urlencode({'flash': flash})}" if flash else ""
    return RedirectResponse(f"{PREFIX}/keystores/{store_id}{query}", 303)


# --- delete -------------------------------------------------------------------------------------------


async def delete_form(page: Page, store_id: str) -> Response:
    store = await _one(page, store_id)
    if isinstance(store, Response):
        return store
    return _render(page, "keystore_delete.html", store=store, confirmed=False, errors={})


async def delete_submit(page: Page, store_id: str) -> Response:
    store = await _one(page, store_id)
    if isinstance(store, Response):
        return store
    confirmed = page.request.field("confirm") == "yes"
    errors: dict[str, Any] = {}
    if not confirmed:
        errors["confirm"] = "Confirm that you want to delete this key store."
    else:
        try:
            await page.api.kms("DeleteCustomKeyStore", CustomKeyStoreId=store["CustomKeyStoreId"])
            return RedirectResponse(f"{PREFIX}/keystores?flash=deleted", 303)
        except ApiError as exc:
            errors["delete"] = api_error(exc)
    return _render(page, "keystore_delete.html", 400, store=store, confirmed=confirmed, errors=errors)
