"""Event history: the signed-in account's audit trail (CloudTrail records, including the events the
service initiates itself, such as DeleteExpiredKeyMaterial and DeleteKey, and other accounts' calls on
the account's keys), filtered by key, event name, principal, time and read-only, newest first, each
record's JSON viewable.

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


async def audit_page(page: Page) -> Response:
    request = page.request
    principal = page.principal
    if principal is None:  # the router serves this view to signed-in sessions only
        raise InternalError("the event history without a signed-in principal")
    console = page.console
    filters = {
        name: request.arg(name).strip()[:2048]
        for name in ("key_id", "event_name", "principal", "start", "end")
    }
    # As CloudTrail's event history, changes only unless asked otherwise: the console's own page
    # views (DescribeKey, ListAliases…) would bury them.
    filters["read_only"] = (
        request.arg("read_only") if request.arg("read_only") in ("all", "true") else "false"
    )
    before = request.arg("before")
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
    if error is None and not errors:
        read_only = {"true": True, "false": False}.get(filters["read_only"])  # "all": None
        key_id = filters["key_id"].rsplit("/", 1)[-1] or None

        def query() -> list[tuple[int, str]]:
            with console.runtime.store.read() as tx:
                return tx.console_audit_events(
                    account_id=principal.account_id,
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
            query_string = urllib.parse.urlencode({**filters, "before": str(rows[PAGE - 1][0])})
            next_link = f"{PREFIX}/audit?{query_string}"
    attributes = [{"attributeKey": k, "attributeValue": v} for k, v in filters.items() if v and v != "all"]
    await page.api.record(
        event_source="cloudtrail.amazonaws.com",
        event_name="LookupEvents",
        region=page.api.region,
        started=started,
        error_code="AccessDenied" if error else None,
        error_message=error["message"] if error else None,
        request_parameters={"lookupAttributes": attributes, "maxResults": PAGE},
    )
    return page.render(
        "audit.html",
        status=400 if errors else 200,
        events=events,
        filters=filters,
        error=error,
        errors=errors,
        next_link=next_link,
        newest_link=f"{PREFIX}/audit?{urllib.parse.urlencode(filters)}" if before else None,
        all_link=f"{PREFIX}/audit?{urllib.parse.urlencode({**filters, 'read_only': 'all'})}",
    )
