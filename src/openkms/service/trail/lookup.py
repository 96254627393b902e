"""CloudTrail LookupEvents over the service's trail: the caller's account and the request's Region only,
authorized by ``cloudtrail:LookupEvents`` in the caller's identity policies, newest first.

* Attributes: at most one (the wire layer checks it). EventName and EventId are columns of the
  trail's rows; Username, AccessKeyId, ReadOnly, EventSource, ResourceType and ResourceName are rows of
  ``audit_attributes`` (``audit/events.lookup_attributes``). Each lookup is one index range.
* Time: ``StartTime`` (inclusive) to ``EndTime`` (inclusive, at the second a record shows); by default
  the last 90 days (CloudTrail's event history), by the service clock. A start after the end is
  InvalidTimeRangeException.
* Paging: keyset on (event time, record id), never an offset. ``NextToken`` is opaque and
  authenticated (an HMAC under a key derived from the keyring's token key, so every node accepts the
  others' tokens), carries the window the first page resolved (a default window does not slide between
  pages) and is bound to the query: the same attribute, times and category, in the same account and
  Region, or InvalidNextTokenException. ``MaxResults`` may change between pages.
* ``EventCategory`` ``insight``: openkms records no Insights events, so the answer is empty (what
  CloudTrail answers a trail without Insights).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from openkms.audit.events import ATTRIBUTE_WIDTH, lookup_username
from openkms.auth.policy import Caller, PolicyCache, Request, authorize
from openkms.domain.model import Principal
from openkms.errors import (
    AccessDeniedException,
    InvalidNextTokenException,
    InvalidTimeRangeException,
    ServiceError,
)
from openkms.service.identity.policies import IdentityPolicyCache
from openkms.storage.store import Store

ACTION = "cloudtrail:LookupEvents"
HISTORY_DAYS = 90  # CloudTrail's event history: the last 90 days
DEFAULT_MAX_RESULTS = 50
_TAG = 16


@dataclass(frozen=True, slots=True)
class LookupCall:
    """Who looks, where, and when (the service clock's now)."""

    principal: Principal
    region: str
    source_ip: str
    secure: bool
    now: float


class TokenSigner:
    """Makes and checks NextTokens (``secret``: the keyring's token key, read on first use)."""

    __slots__ = ("_key", "_secret")

    def __init__(self, secret: Callable[[], bytes]) -> None:
        self._secret = secret
        self._key: bytes | None = None

    def __repr__(self) -> str:
        return "TokenSigner()"

    def _tag(self, body: bytes) -> bytes:
        if self._key is None:
            self._key = hashlib.sha256(b"openkms/cloudtrail-next-token/v1" + self._secret()).digest()
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_TAG]

    def make(self, state: dict[str, Any]) -> str:
        body = orjson.dumps(state)
        return base64.urlsafe_b64encode(self._tag(body) + body).decode().rstrip("=")

    def read(self, token: str) -> dict[str, Any]:
        invalid = InvalidNextTokenException("Invalid NextToken: the token is not valid for this request.")
        if len(token) > 1024:
            raise invalid
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise invalid from None
        tag, body = raw[:_TAG], raw[_TAG:]
        if len(tag) != _TAG or not hmac.compare_digest(tag, self._tag(body)):
            raise invalid
        state = orjson.loads(body)
        if not isinstance(state, dict):
            raise invalid
        return state


def _query_digest(
    call: LookupCall, attribute: tuple[str, str] | None, start: Any, end: Any, category: Any
) -> str:
    """What a token is bound to: the account, Region and the request's own parameters."""
    text = orjson.dumps(
        [call.principal.account_id, call.region, list(attribute) if attribute else None, start, end, category]
    )
    return hashlib.sha256(text).hexdigest()[:32]


def authorize_lookup(call: LookupCall, policies: IdentityPolicyCache, documents: PolicyCache) -> None:
    """AccessDeniedException unless the caller's identity policies allow ``cloudtrail:LookupEvents``
    (the account's root user always may)."""
    principal = call.principal
    caller = Caller.of(principal)
    request = Request(
        action=ACTION,
        resource="*",
        resource_account=principal.account_id,
        context={
            "aws:CurrentTime": dt.datetime.fromtimestamp(call.now, dt.UTC),
            "aws:EpochTime": int(call.now),
            "aws:SourceIp": call.source_ip,
            "aws:SecureTransport": call.secure,
            "aws:RequestedRegion": call.region,
        },
    )
    parsed = []
    for text in policies.get(principal):
        try:
            parsed.append(documents.parse(text, kind="identity"))
        except ServiceError:
            continue  # a stored document the engine cannot read allows nothing
    decision = authorize(caller, request, key_policy=None, identity_policies=parsed)
    if not decision.allowed:
        raise AccessDeniedException(
            f"User: {caller.arn} is not authorized to perform: {ACTION} {decision.reason}"
        )


def lookup_events(
    store: Store,
    signer: TokenSigner,
    call: LookupCall,
    *,
    attribute: tuple[str, str] | None,
    start_time: float | None,
    end_time: float | None,
    event_category: str | None,
    max_results: int | None,
    next_token: str | None,
) -> dict[str, Any]:
    """The page: ``{"Events": [...], "NextToken": ...}`` (entries in the model's member names)."""
    digest = _query_digest(call, attribute, start_time, end_time, event_category)
    before: tuple[float, int] | None = None
    if next_token is not None:
        state = signer.read(next_token)
        try:
            if state["q"] != digest:
                raise InvalidNextTokenException(
                    "Invalid NextToken: the token was issued for other parameters."
                )
            start, end = float(state["s"]), float(state["e"])
            before = (float(state["t"]), int(state["i"]))
        except (KeyError, TypeError, ValueError):
            raise InvalidNextTokenException(
                "Invalid NextToken: the token is not valid for this request."
            ) from None
    else:
        end = call.now if end_time is None else end_time
        start = end - HISTORY_DAYS * 86400 if start_time is None else start_time
        if start_time is not None and end_time is None and start > end:
            end = start  # a start in the future: nothing yet, not an error
        if start > end:
            raise InvalidTimeRangeException("Start time must be earlier than or equal to end time.")
    if event_category == "insight":  # no Insights events are recorded
        return {"Events": []}
    if (
        attribute is not None
        and len(attribute[1]) > ATTRIBUTE_WIDTH
        and attribute[0] not in ("EventName", "EventId")
    ):
        attribute = (attribute[0], attribute[1][:ATTRIBUTE_WIDTH])
    limit = max_results or DEFAULT_MAX_RESULTS
    with store.read() as tx:
        rows = tx.lookup_events(
            account_id=call.principal.account_id,
            region=call.region,
            attribute=attribute,
            start=start,
            end=math.floor(end) + 0.999999,  # the records' event time is to the second
            before=before,
            limit=limit + 1,
        )
    events = [_event(record, event_time) for _, event_time, record in rows[:limit]]
    result: dict[str, Any] = {"Events": events}
    if len(rows) > limit:
        last_id, last_time, _ = rows[limit - 1]
        result["NextToken"] = signer.make({"q": digest, "s": start, "e": end, "t": last_time, "i": last_id})
    return result


def _event(text: str, event_time: float) -> dict[str, Any]:
    """One entry of ``Events``: the record's summary and the record itself as its JSON string."""
    record = orjson.loads(text)
    identity = record.get("userIdentity") or {}
    event: dict[str, Any] = {
        "EventId": record.get("eventID"),
        "EventName": record.get("eventName"),
        "ReadOnly": "true" if record.get("readOnly") else "false",
        "AccessKeyId": identity.get("accessKeyId"),
        "EventTime": math.floor(event_time),
        "EventSource": record.get("eventSource"),
        "Username": lookup_username(identity),
        "Resources": [
            {"ResourceType": r.get("type"), "ResourceName": r.get("ARN")}
            for r in record.get("resources") or ()
            if isinstance(r, dict)
        ],
        "CloudTrailEvent": text,
    }
    return {name: value for name, value in event.items() if value is not None}
