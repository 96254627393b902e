"""Event history: the signed-in account's audit trail in the session's Region (CloudTrail records,
including the events the service initiates itself, such as DeleteExpiredKeyMaterial and DeleteKey,
and other accounts' calls on the account's keys), filtered by key, event name, principal, time and
read-only, newest first, each record's JSON viewable. A key's Events tab shows the same for its key
(:func:`lookup_events`).

Reading it is authorized as ``cloudtrail:LookupEvents`` by the principal's IAM policies (what AWS's
CloudTrail console requires) and is itself recorded as a read-only LookupEvents event.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import urllib.parse
from typing import Any

from starlette.responses import Response

from openkms.auth.policy import Request as PolicyRequest
from openkms.auth.policy import access_denied_message, authorize
from openkms.console.api import ApiError, input_error
from openkms.console.http import PREFIX, whole_number
from openkms.console.page import Page, api_error
from openkms.domain.model import Principal
from openkms.errors import InternalError
from openkms.server.runtime import Runtime
from openkms.service.iam import parsed_identity_policies, policy_caller

PAGE = 50
LOOKUP_ACTION = "cloudtrail:LookupEvents"


def authorize_lookup(runtime: Runtime, principal: Principal) -> None:
    caller = policy_caller(principal)
    request = PolicyRequest(action=LOOKUP_ACTION, resource="*", resource_account=principal.account_id)
    decision = authorize(
        caller,
        request,
        key_policy=None,
        identity_policies=parsed_identity_policies(runtime.policies, runtime.documents, principal),
    )
    if not decision.allowed:
        raise ApiError("AccessDeniedException", access_denied_message(caller, request, decision))


def _moment(text: str, label: str) -> float | None:
    if not text.strip():
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise input_error(f"Enter the {label} as a date and time, such as 2030-01-31T12:00 (UTC).") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _who(record: dict[str, Any]) -> str:
    identity = record.get("userIdentity") or {}
    return str(identity.get("userName") or identity.get("arn") or identity.get("invokedBy") or "")


def _key_of(record: dict[str, Any]) -> str:
    """The key an event is listed under: the first of the viewing account's keys in ``resources``
    (another account's call on one of them lists that key, not the caller's), else the first."""
    resources = record.get("resources") or []
    if not resources:
        return ""
    own = [r for r in resources if r.get("accountId") == record.get("recipientAccountId")]
    return str((own or resources)[0].get("ARN", "")).rsplit("/", 1)[-1]


#: The filters of the event history and of a key's Events tab (which has its key already).
HISTORY_FILTERS = ("key_id", "event_name", "principal", "start", "end")
KEY_FILTERS = ("event_name", "principal", "start", "end")
READ_ONLY_CHOICES = ("false", "all", "true")


def read_filters(page: Page, names: tuple[str, ...], read_only_default: str) -> dict[str, str]:
    """The filters of the address (each at most 2,048 characters) and its read-only choice."""
    request = page.request
    filters = {name: request.arg(name).strip()[:2048] for name in names}
    chosen = request.arg("read_only")
    filters["read_only"] = chosen if chosen in READ_ONLY_CHOICES else read_only_default
    return filters


def _address(path: str, params: dict[str, str]) -> str:
    return f"{path}?{urllib.parse.urlencode(params)}"


async def lookup_events(
    page: Page,
    filters: dict[str, str],
    *,
    key_id: str | None,
    path: str,
    fixed: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One page of the account's records in the session's Region, newest first, as the event history
    and a key's Events tab show them: ``events``, the filters' ``error``/``errors``, and the links to
    older events, the newest and all events (``path`` with the ``fixed`` parameters, then the
    filters). Authorized as ``cloudtrail:LookupEvents`` and recorded as a LookupEvents event."""
    principal = page.principal
    if principal is None:  # the router serves these views to signed-in sessions only
        raise InternalError("the event history without a signed-in principal")
    console = page.console
    before = page.request.arg("before")
    started = console.runtime.clock.now()
    events: list[dict[str, Any]] = []
    next_link: str | None = None
    error: dict[str, str] | None = None
    errors: dict[str, dict[str, str]] = {}
    try:
        await console.in_thread(functools.partial(authorize_lookup, console.runtime, principal))
    except ApiError as exc:
        error = api_error(exc)
    window: dict[str, float | None] = {}
    for name, label in (("start", "start time"), ("end", "end time")):
        try:
            window[name] = _moment(filters[name], label)
        except ApiError as exc:
            errors[name] = api_error(exc)
    region = page.api.region
    links = dict(fixed or {})
    if error is None and not errors:
        read_only = {"true": True, "false": False}.get(filters["read_only"])  # "all": None

        def query() -> list[tuple[int, str]]:
            with console.runtime.store.read() as tx:
                return tx.console_audit_events(
                    account_id=principal.account_id,
                    region=region,
                    key_id=key_id,
                    event_name=filters["event_name"] or None,
                    principal=filters["principal"] or None,
                    start=window.get("start"),
                    end=window.get("end"),
                    read_only=read_only,
                    before_id=whole_number(before),
                    limit=PAGE + 1,
                )

        rows = await console.in_thread(query)
        for row_id, text in rows[:PAGE]:
            record = json.loads(text)
            events.append(
                {
                    "id": row_id,
                    "record": record,
                    "json": json.dumps(record, indent=2),
                    "who": _who(record),
                    "key": _key_of(record),
                }
            )
        if len(rows) > PAGE:
            next_link = _address(path, {**links, **filters, "before": str(rows[PAGE - 1][0])})
    looked_up = {"key_id": key_id or "", **filters}
    attributes = [{"attributeKey": k, "attributeValue": v} for k, v in looked_up.items() if v and v != "all"]
    await page.api.record(
        event_source="cloudtrail.amazonaws.com",
        event_name="LookupEvents",
        region=region,
        started=started,
        error_code="AccessDenied" if error else None,
        error_message=error["message"] if error else None,
        request_parameters={"lookupAttributes": attributes, "maxResults": PAGE},
    )
    return {
        "events": events,
        "filters": filters,
        "error": error,
        "errors": errors,
        "next_link": next_link,
        "newest_link": _address(path, {**links, **filters}) if before else None,
        "all_link": _address(path, {**links, **filters, "read_only": "all"}),
    }


async def audit_page(page: Page) -> Response:
    # As CloudTrail's event history, changes only unless asked otherwise: the console's own page
    # views (DescribeKey, ListAliases…) would bury them.
    filters = read_filters(page, HISTORY_FILTERS, "false")
    found = await lookup_events(
        page, filters, key_id=filters["key_id"].rsplit("/", 1)[-1] or None, path=f"{PREFIX}/audit"
    )
    return page.render("audit.html", status=400 if found["errors"] else 200, **found)
