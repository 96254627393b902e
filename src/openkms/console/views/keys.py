"""Customer managed keys: the key list, a key's page with its tabs (its Events tab: the key's last use
and its records of the event history), and the key's actions.

Every value shown comes from the KMS API as the signed-in principal (ListKeys, DescribeKey,
ListAliases, GetKeyPolicy…), every change is one API call; an error is shown next to the control that
caused it, in the tab it belongs to.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from starlette.responses import RedirectResponse, Response

from openkms.auth.policy import describe_console_key_policy
from openkms.console.api import Api, ApiError, input_error
from openkms.console.http import PREFIX, whole_number
from openkms.console.page import Page, api_error
from openkms.console.policy import update_console_policy
from openkms.console.render import ORIGIN_LABELS, STATE_LABELS, USAGE_LABELS, key_type
from openkms.console.views import keystores, regionality
from openkms.console.views.audit import KEY_FILTERS, lookup_events, read_filters
from openkms.errors import InternalError

# A page's keys are loaded into the service's cache in a few queries (Api.preload_keys) before each is
# described, and the account's aliases are listed once per page (ListAliases without a key, as AWS's
# console does) rather than once per key. Each key still costs one DescribeKey, about half a
# millisecond on a busy machine: 100 keys per page would come close to the 100 ms budget, so it is not
# offered.
PAGE_SIZES = (10, 25, 50)
DEFAULT_PAGE_SIZE = 25
FILTER_BUDGET = 0.03  # seconds of searching per page when a filter is given (pages stay fast)
FILTER_BATCH = 25  # keys described per step of a filtered search
ALIAS_PAGE = 100  # ListAliases' largest Limit
ACCOUNT_ID = re.compile(r"^\d{12}$")

FLASH = {
    "created": "created",  # composed in the template with the alias and key id
    "enabled": "The key was enabled.",
    "disabled": "The key was disabled.",
    "deletion_scheduled": "The key is scheduled for deletion.",
    "deletion_canceled": "Key deletion was canceled. The key is not deleted; enable it to use it again.",
    "policy_saved": "The key policy was saved.",
    "tag_added": "The tag was saved.",
    "tag_removed": "The tag was removed.",
    "rotation_saved": "The key rotation settings were saved.",
    "rotated": "The key material was rotated.",
    "alias_created": "The alias was created.",
    "alias_deleted": "The alias was deleted.",
    "grant_revoked": "The grant was revoked.",
    "material_deleted": "The key material was deleted.",
    "material_imported": "The key material was imported.",
    "description_saved": "The description was saved.",
    "replicated": "The replica keys were created. They are Creating for a moment, then Enabled.",
    "primary_changed": "The primary Region is being changed: both keys are Updating for a moment.",
}


@dataclass
class KeyRow:
    key_id: str
    metadata: dict[str, Any] | None
    aliases: list[str]
    error: dict[str, str] | None = None

    def text(self) -> str:
        md = self.metadata or {}
        return " ".join(
            [
                self.key_id,
                *self.aliases,
                str(md.get("Description", "")),
                STATE_LABELS.get(str(md.get("KeyState")), ""),
                key_type(md) if md else "",
                str(md.get("KeySpec", "")),
                USAGE_LABELS.get(str(md.get("KeyUsage")), ""),
                ORIGIN_LABELS.get(str(md.get("Origin")), ""),
            ]
        ).lower()


#: Calls of one page in flight at once. More buys nothing (the work is Python on the server's threads)
#: and costs more: a burst of database reads opens and closes connections beyond the pool's own.
PAGE_CONCURRENCY = 4


#: The aliases of the account's keys, by key ID; None when they are not known at once (the account
#: has more aliases than a page is worth listing, or the principal may not list them account-wide).
AliasIndex = dict[str, list[str]] | None


async def account_aliases(api: Api, keys: int) -> AliasIndex:
    """Every alias of the account, grouped by target key, in at most ``max(2, keys // 5)`` ListAliases
    calls (so a page never costs much more than asking key by key), or None when that is not enough or
    the principal's IAM policies do not allow an account-wide ListAliases (a key policy may still let it
    list a key's own aliases)."""
    found: dict[str, list[str]] = {}
    marker: str | None = None
    for _ in range(max(2, keys // 5)):
        try:
            page = await api.kms("ListAliases", Limit=ALIAS_PAGE, Marker=marker)
        except ApiError:
            return None
        for alias in page.get("Aliases", []):
            target = alias.get("TargetKeyId")
            if target:
                found.setdefault(str(target), []).append(str(alias["AliasName"]))
        marker = page.get("NextMarker")
        if not page.get("Truncated") or not marker:
            return found
    return None


async def key_rows(api: Api, key_ids: list[str], aliases: AliasIndex = None) -> list[KeyRow]:
    """DescribeKey of each key, and its aliases: from ``aliases`` when given, else ListAliases of the key."""
    slots = asyncio.Semaphore(PAGE_CONCURRENCY)

    async def call(operation: str, key_id: str) -> dict[str, Any]:
        async with slots:
            return await api.kms(operation, KeyId=key_id)

    async def aliases_of(key_id: str) -> list[str]:
        if aliases is not None:
            return aliases.get(key_id, [])
        listed = await call("ListAliases", key_id)
        return [a["AliasName"] for a in listed.get("Aliases", [])]

    async def one(key_id: str) -> KeyRow:
        results: list[Any] = await asyncio.gather(
            call("DescribeKey", key_id), aliases_of(key_id), return_exceptions=True
        )
        described, names = results
        if isinstance(described, ApiError):
            return KeyRow(key_id, None, [], api_error(described))
        if isinstance(described, BaseException):
            raise described
        return KeyRow(key_id, described["KeyMetadata"], [] if isinstance(names, BaseException) else names)

    if len(key_ids) > 1:
        await api.preload_keys(key_ids)
    return list(await asyncio.gather(*(one(k) for k in key_ids)))


ALIAS_TEXT = re.compile(r"^(alias/)?[a-zA-Z0-9/_-]{1,250}$")
KEY_ID_TEXT = re.compile(r"^(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")


async def _exact_match(api: Api, text: str) -> KeyRow | None:
    """The key whose full key ID or alias name is the filter text, found at once (the search through
    the other keys goes on page by page)."""
    if KEY_ID_TEXT.match(text):
        key_id = text
    elif ALIAS_TEXT.match(text):
        try:
            described = await api.kms("DescribeKey", KeyId="alias/" + text.removeprefix("alias/"))
        except ApiError:
            return None
        key_id = described["KeyMetadata"]["KeyId"]
    else:
        return None
    found = (await key_rows(api, [key_id]))[0]
    return found if found.metadata is not None else None


def _link(**params: str) -> str:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v})
    return f"{PREFIX}/keys" + (f"?{query}" if query else "")


async def home(page: Page) -> Response:
    """The console's address: the key list, in the session's Region (the redirect names it)."""
    return RedirectResponse(f"{PREFIX}/keys", 303)


async def keys_list(page: Page) -> Response:
    request = page.request
    prefs = page.prefs
    size = int(prefs.get("page_size", DEFAULT_PAGE_SIZE))
    text = request.arg("filter").strip()[:256]
    marker = request.arg("marker") or None
    trail = request.arg("trail").split(",") if request.arg("trail") else []
    rows: list[KeyRow] = []
    next_marker: str | None = None
    scanned = 0
    error: dict[str, str] | None = None
    try:
        if not text:
            listed = await page.api.kms("ListKeys", Limit=size, Marker=marker)
            ids = [k["KeyId"] for k in listed.get("Keys", [])]
            rows = await key_rows(page.api, ids, await account_aliases(page.api, len(ids)) if ids else None)
            next_marker = listed.get("NextMarker") if listed.get("Truncated") else None
        else:
            deadline = time.monotonic() + FILTER_BUDGET
            cursor = marker
            needle = text.lower()
            exact = await _exact_match(page.api, text) if marker is None else None
            if exact is not None:
                rows.append(exact)
            aliases = await account_aliases(page.api, size)
            while True:
                listed = await page.api.kms("ListKeys", Limit=FILTER_BATCH, Marker=cursor)
                ids = [
                    k["KeyId"] for k in listed.get("Keys", []) if exact is None or k["KeyId"] != exact.key_id
                ]
                batch = await key_rows(page.api, ids, aliases)
                scanned += len(listed.get("Keys", []))
                rows += [r for r in batch if needle in r.text()]
                cursor = listed.get("NextMarker") if listed.get("Truncated") else None
                if cursor is None or len(rows) >= size or time.monotonic() > deadline:
                    break
            next_marker = cursor
    except ApiError as exc:
        error = api_error(exc)
    rows = [r for r in rows if r.metadata is None or r.metadata.get("KeyManager") != "AWS"]
    here = marker or "-"
    next_link = (
        _link(filter=text, marker=next_marker, trail=",".join([*trail, here])) if next_marker else None
    )
    prev_link = None
    if trail:
        previous = trail[-1]
        prev_link = _link(filter=text, marker="" if previous == "-" else previous, trail=",".join(trail[:-1]))
    return page.render(
        "keys.html",
        rows=rows,
        error=error,
        filter=text,
        scanned=scanned,
        next_link=next_link,
        prev_link=prev_link,
        page_number=len(trail) + 1,
        show_origin=bool(prefs.get("show_origin")),
        page_size=size,
        page_sizes=PAGE_SIZES,
    )


async def preferences(page: Page) -> Response:
    request = page.request
    if page.session is None:  # preferences are a signed-in view
        raise InternalError("preferences without a session")
    number = whole_number(request.field("page_size"))
    size = number if number is not None and number in PAGE_SIZES else DEFAULT_PAGE_SIZE
    prefs = {**page.prefs, "show_origin": request.field("show_origin") == "yes", "page_size": size}
    await page.console.in_thread(functools.partial(page.console.sessions.set_prefs, page.session, prefs))
    return RedirectResponse(f"{PREFIX}/keys", 303)


# --- a key's page ------------------------------------------------------------------------------------


def tabs_for(md: dict[str, Any]) -> list[tuple[str, str]]:
    symmetric = md.get("KeySpec") == "SYMMETRIC_DEFAULT"
    external = md.get("Origin") == "EXTERNAL"
    tabs = [("policy", "Key policy"), ("crypto", "Cryptographic configuration"), ("tags", "Tags")]
    if external:
        tabs.append(("material", "Key material and rotations" if symmetric else "Key material"))
    elif symmetric and md.get("Origin") == "AWS_KMS":
        tabs.append(("rotation", "Key rotation"))
    tabs += [("aliases", "Aliases"), ("grants", "Grants")]
    if md.get("MultiRegion"):
        tabs.append(("regionality", "Regionality"))
    tabs.append(("events", "Events"))
    return tabs


async def _last_usage(api: Api, key_id: str) -> dict[str, Any]:
    """GetKeyLastUsage of the key: ``usage`` (its answer) or ``usage_error``."""
    try:
        return {"usage": await api.kms("GetKeyLastUsage", KeyId=key_id), "usage_error": None}
    except ApiError as exc:
        return {"usage": None, "usage_error": api_error(exc)}


async def _key_events(page: Page, key_id: str) -> dict[str, Any]:
    """The Events tab: the key's last use, and its records in the event history's words (all events
    unless asked otherwise: a key's use, such as Encrypt, is read-only)."""
    usage = await _last_usage(page.api, key_id)
    filters = read_filters(page, KEY_FILTERS, "all")
    found = await lookup_events(
        page, filters, key_id=key_id, path=f"{PREFIX}/keys/{key_id}", fixed={"tab": "events"}
    )
    return {**usage, **found}


async def _tab_data(page: Page, md: dict[str, Any], tab: str) -> dict[str, Any]:
    api = page.api
    key_id = md["KeyId"]
    data: dict[str, Any] = {}
    try:
        if tab == "policy":
            text = (await api.kms("GetKeyPolicy", KeyId=key_id, PolicyName="default"))["Policy"]
            view = describe_console_key_policy(text)
            mode = page.request.arg("view") or page.request.field("view") or ("default" if view else "json")
            if view is None:
                mode = "json"
            data.update(policy=text, console_view=view, mode=mode)
            if mode == "default":
                principals, problem = await api.iam_principals()
                data.update(principals=principals, iam_error=api_error(problem) if problem else None)
        elif tab == "tags":
            data["tags"] = await api.kms_pages("ListResourceTags", "Tags", KeyId=key_id)
        elif tab == "rotation":
            status = await api.kms("GetKeyRotationStatus", KeyId=key_id)
            data["status"] = status
            data["rotations"] = await api.kms_pages("ListKeyRotations", "Rotations", KeyId=key_id)
        elif tab == "material":
            if md.get("KeySpec") == "SYMMETRIC_DEFAULT":
                data["materials"] = await api.kms_pages(
                    "ListKeyRotations", "Rotations", KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL"
                )
            else:
                data["materials"] = None
        elif tab == "grants":
            data["grants"] = await api.kms_pages("ListGrants", "Grants", KeyId=key_id)
        elif tab == "events":
            data.update(await _key_events(page, key_id))
        elif tab == "regionality":
            data.update(await regionality.tab_data(api, md))
        elif tab == "crypto" and md.get("CustomKeyStoreId"):
            data["key_store"] = await keystores.describe(api, str(md["CustomKeyStoreId"]))
    except ApiError as exc:
        data["load_error"] = api_error(exc)
    return data


async def show_key(
    page: Page,
    key_id: str,
    tab: str,
    *,
    status: int = 200,
    errors: dict[str, dict[str, str]] | None = None,
    values: dict[str, str] | None = None,
    flash: str | None = None,
) -> Response:
    try:
        md = (await page.api.kms("DescribeKey", KeyId=key_id))["KeyMetadata"]
    except ApiError as exc:
        return page.render("key_error.html", status=exc.status, key_id=key_id, error=api_error(exc))
    tabs = tabs_for(md)
    if tab not in dict(tabs):
        tab = "policy"
    aliases_task = asyncio.ensure_future(page.api.kms_pages("ListAliases", "Aliases", KeyId=md["KeyId"]))
    data = await _tab_data(page, md, tab)
    try:
        aliases = [a["AliasName"] for a in await aliases_task]
        aliases_error = None
    except ApiError as exc:
        aliases, aliases_error = [], api_error(exc)
    return page.render(
        "key.html",
        status=status,
        md=md,
        aliases=aliases,
        aliases_error=aliases_error,
        tabs=tabs,
        tab=tab,
        data=data,
        errors=errors or {},
        values=values or {},
        flash=flash,
        flash_text=FLASH.get(flash or ""),
    )


async def key_page(page: Page, key_id: str) -> Response:
    code = page.request.arg("flash")
    return await show_key(page, key_id, page.request.arg("tab", "policy"), flash=FLASH.get(code) and code)


# --- actions -----------------------------------------------------------------------------------------


async def _metadata(page: Page, key_id: str) -> dict[str, Any]:
    md: dict[str, Any] = (await page.api.kms("DescribeKey", KeyId=key_id))["KeyMetadata"]
    return md


async def _policy_edit(page: Page, key_id: str, op: str) -> str:
    request = page.request
    api = page.api
    md = await _metadata(page, key_id)
    text = (await api.kms("GetKeyPolicy", KeyId=key_id, PolicyName="default"))["Policy"]
    view = describe_console_key_policy(text)
    if view is None:
        raise input_error(
            "This key policy does not have the console's statements. Edit it in the policy view."
        )
    lists = {
        "admin": list(view.administrators),
        "user": list(view.users),
        "account": list(view.other_accounts),
    }
    allow_delete = view.allow_admin_delete
    role = request.field("role")
    if op == "policy_admin_delete":
        allow_delete = request.field("allow_delete") == "yes"
    elif role not in lists:
        raise input_error("Choose what to change.")
    elif op == "policy_add":
        value = request.field("arn_text").strip() or request.field("arn").strip()
        if role == "account":
            if not ACCOUNT_ID.match(value):
                raise input_error("Enter a 12-digit AWS account ID.")
        elif not value.startswith("arn:"):
            raise input_error("Choose a user or role, or enter the ARN of an IAM user or role.")
        if value not in lists[role]:
            lists[role].append(value)
    else:
        value = request.field("value")
        lists[role] = [v for v in lists[role] if v != value]
    new_text = update_console_policy(
        text,
        account_id=str(md["AWSAccountId"]),
        metadata=md,
        administrators=lists["admin"],
        allow_admin_delete=allow_delete,
        users=lists["user"],
        other_accounts=lists["account"],
    )
    await api.kms("PutKeyPolicy", KeyId=key_id, PolicyName="default", Policy=new_text)
    return "policy_saved"


async def _run_action(page: Page, key_id: str, op: str) -> str:
    """Perform one action; the flash code of its success."""
    f = page.request.field
    api = page.api
    if op == "enable":
        await api.kms("EnableKey", KeyId=key_id)
        return "enabled"
    if op == "disable":
        await api.kms("DisableKey", KeyId=key_id)
        return "disabled"
    if op == "cancel_deletion":
        await api.kms("CancelKeyDeletion", KeyId=key_id)
        return "deletion_canceled"
    if op == "put_policy":
        text = f("policy").replace("\r\n", "\n")  # browsers send a textarea's lines with CRLF
        if not text.strip():
            raise input_error("Enter a key policy.")
        await api.kms("PutKeyPolicy", KeyId=key_id, PolicyName="default", Policy=text)
        return "policy_saved"
    if op in ("policy_add", "policy_remove", "policy_admin_delete"):
        return await _policy_edit(page, key_id, op)
    if op == "description":
        await api.kms("UpdateKeyDescription", KeyId=key_id, Description=f("description"))
        return "description_saved"
    if op == "tag_add":
        if not f("tag_key"):
            raise input_error("Enter a tag key.")
        await api.kms(
            "TagResource", KeyId=key_id, Tags=[{"TagKey": f("tag_key"), "TagValue": f("tag_value")}]
        )
        return "tag_added"
    if op == "tag_remove":
        await api.kms("UntagResource", KeyId=key_id, TagKeys=[f("tag_key")])
        return "tag_removed"
    if op == "rotation":
        if f("rotation") == "yes":
            period = f("rotation_period").strip()
            days = whole_number(period)
            if period and days is None:
                raise input_error("Enter the rotation period as a whole number of days, from 90 to 2560.")
            await api.kms("EnableKeyRotation", KeyId=key_id, RotationPeriodInDays=days)
        else:
            await api.kms("DisableKeyRotation", KeyId=key_id)
        return "rotation_saved"
    if op == "rotate_now":
        await api.kms("RotateKeyOnDemand", KeyId=key_id)
        return "rotated"
    if op == "alias_add":
        name = f("alias").strip()
        if not name:
            raise input_error("Enter an alias name.")
        name = name if name.startswith("alias/") else "alias/" + name
        await api.kms("CreateAlias", AliasName=name, TargetKeyId=key_id)
        return "alias_created"
    if op == "alias_delete":
        await api.kms("DeleteAlias", AliasName=f("alias"))
        return "alias_deleted"
    if op == "grant_revoke":
        await api.kms("RevokeGrant", KeyId=key_id, GrantId=f("grant_id"))
        return "grant_revoked"
    if op == "update_primary":
        region = f("primary_region")
        if not region:
            raise input_error("Choose the Region of the new primary key.")
        await api.kms("UpdatePrimaryRegion", KeyId=key_id, PrimaryRegion=region)
        return "primary_changed"
    if op == "material_delete":
        await api.kms("DeleteImportedKeyMaterial", KeyId=key_id, KeyMaterialId=f("material_id") or None)
        return "material_deleted"
    raise input_error("This action is not known.")


async def key_action(page: Page, key_id: str) -> Response:
    request = page.request
    op = request.field("op")
    tab = request.field("tab") or "policy"
    try:
        flash = await _run_action(page, key_id, op)
    except ApiError as exc:
        control = f"{op}_{request.field('role')}" if op in ("policy_add", "policy_remove") else op
        fields = ("policy", "tag_key", "tag_value", "alias", "rotation", "rotation_period", "description")
        values = {k: request.field(k) for k in fields}
        return await show_key(
            page, key_id, tab, status=exc.status, errors={control: api_error(exc)}, values=values
        )
    query = urllib.parse.urlencode({"tab": tab, "flash": flash, "view": request.field("view")})
    return RedirectResponse(f"{PREFIX}/keys/{key_id}?{query}", 303)


# --- schedule key deletion -----------------------------------------------------------------------------


async def delete_form(page: Page, key_id: str) -> Response:
    try:
        md = await _metadata(page, key_id)
    except ApiError as exc:
        return page.render("key_error.html", status=exc.status, key_id=key_id, error=api_error(exc))
    return page.render("key_delete.html", md=md, days="30", confirmed=False)


async def delete_submit(page: Page, key_id: str) -> Response:
    request = page.request
    days = request.field("waiting_period").strip()
    waiting = whole_number(days)
    confirmed = request.field("confirm") == "yes"
    errors: dict[str, dict[str, str]] = {}
    if waiting is None:
        errors["waiting_period"] = api_error(input_error("Enter a waiting period from 7 to 30 days."))
    if not confirmed:
        errors["confirm"] = api_error(input_error("Confirm that you want to schedule this key for deletion."))
    if not errors:
        try:
            await page.api.kms("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=waiting)
            return RedirectResponse(f"{PREFIX}/keys/{key_id}?flash=deletion_scheduled", 303)
        except ApiError as exc:
            errors["schedule"] = api_error(exc)
    try:
        md = await _metadata(page, key_id)
    except ApiError as exc:
        return page.render("key_error.html", status=exc.status, key_id=key_id, error=api_error(exc))
    return page.render("key_delete.html", status=400, md=md, days=days, confirmed=confirmed, errors=errors)
