"""Builders for CloudTrail-format records (``eventVersion`` 1.11).

An API call's record is made in one place: every entry point (the KMS JSON API, the IAM and STS
Query APIs, the console) describes the call as an :class:`ApiCall` and :func:`cloudtrail_record` makes
the record; :func:`trail_rows` turns it into the rows stored for each receiving account. The events the
service initiates itself have :func:`service_event_record`.

Records never contain plaintexts, ciphertexts, key material, signatures, MACs or tokens: callers pass
request parameters and response elements already filtered by the wire layer, and the cryptographic
operations pass ``None`` for their response elements.
"""

from __future__ import annotations

import functools
import math
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from openkms.domain.model import Principal
from openkms.domain.operations import OPERATIONS

EVENT_VERSION = "1.11"
EVENT_SOURCE = "kms.amazonaws.com"

#: Operations whose records have readOnly true (they change nothing): the records' ``read_only``.
READ_ONLY = frozenset(name for name, facts in OPERATIONS.items() if facts.read_only)


def fast_uuid() -> str:
    """A random (version 4) UUID for request and event ids, which need to be unique, not secret."""
    h = "%032x" % random.getrandbits(128)  # noqa: UP031 - the fastest way to 32 hex digits
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def iso_time(epoch: float) -> str:
    return _iso_second(math.floor(epoch))  # as gmtime drops the fraction


@functools.lru_cache(maxsize=4)
def _iso_second(second: int) -> str:
    """The formatted second (remembered: the calls of one second share it, on every call's path)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


def user_identity(principal: Principal | None, access_key_id: str | None) -> dict[str, Any]:
    if principal is None:
        identity: dict[str, Any] = {"type": "Unknown"}
        if access_key_id:
            identity["accessKeyId"] = access_key_id
        return identity
    identity = {
        "type": principal.identity_type,
        "principalId": principal.principal_id,
        "arn": principal.arn,
        "accountId": principal.account_id,
    }
    if principal.access_key_id:
        identity["accessKeyId"] = principal.access_key_id
    if principal.user_name:
        identity["userName"] = principal.user_name
    if principal.role_arn:
        identity["sessionContext"] = {
            "sessionIssuer": {
                "type": "Role",
                "principalId": principal.principal_id.partition(":")[0],
                "arn": principal.role_arn,
                "accountId": principal.account_id,
                "userName": principal.role_name,
            },
            "attributes": {"mfaAuthenticated": "false"},
        }
    return identity


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One call of an API and its outcome, as its audit record tells it: the KMS JSON API, the IAM
    and STS Query APIs, and the console's own events (sign-in, IAM listings, event history) all
    describe a call with this, and :func:`cloudtrail_record` turns it into the record.

    ``request_parameters`` and ``response_elements`` are CloudTrail's views, already filtered (the
    wire layer drops secrets and blobs); ``resources`` the ARNs of the keys the call was authorized to
    use; ``key_id`` the key the record is indexed under. A call without ``error_code`` succeeded
    (a failed console sign-in has only an ``error_message``, as CloudTrail records it).
    """

    # What
    event_source: str
    event_name: str
    read_only: bool
    # Who, where and when (``started``: the injected clock's time the call arrived)
    principal: Principal | None
    access_key_id: str | None
    region: str
    source_ip: str
    user_agent: str
    request_id: str
    started: float
    # The request and its outcome
    request_parameters: dict[str, Any] | None = None
    response_elements: dict[str, Any] | None = None
    additional_event_data: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    resources: Sequence[str] = ()
    key_id: str | None = None
    # The record's userIdentity as given, for a caller that is no principal of an account (an XKS key
    # store's credential); None: built from ``principal`` and ``access_key_id``.
    identity: dict[str, Any] | None = None

    @property
    def durable(self) -> bool:
        """A change that succeeded: it is answered only once its record is stored."""
        return self.error_code is None and not self.read_only


def cloudtrail_record(call: ApiCall) -> dict[str, Any]:
    """The CloudTrail record (``eventType`` AwsApiCall) of a call, in CloudTrail's field order."""
    principal = call.principal
    record: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": (
            call.identity if call.identity is not None else user_identity(principal, call.access_key_id)
        ),
        "eventTime": iso_time(call.started),
        "eventSource": call.event_source,
        "eventName": call.event_name,
        "awsRegion": call.region,
        "sourceIPAddress": call.source_ip,
        "userAgent": call.user_agent,
    }
    if call.error_code is not None:
        record["errorCode"] = call.error_code
        record["errorMessage"] = call.error_message or ""
    record["requestParameters"] = call.request_parameters
    record["responseElements"] = call.response_elements
    if call.additional_event_data:
        record["additionalEventData"] = call.additional_event_data
    record["requestID"] = call.request_id
    record["eventID"] = fast_uuid()
    record["readOnly"] = call.read_only
    record["resources"] = [_resource(arn) for arn in call.resources]
    record["eventType"] = "AwsApiCall"
    record["managementEvent"] = True
    record["recipientAccountId"] = principal.account_id if principal else None
    record["eventCategory"] = "Management"
    if call.error_message and call.error_code is None:  # a failed ConsoleLogin: a message, no code
        record["errorMessage"] = call.error_message
    return record


def service_event_record(
    *,
    event_name: str,
    event_time: float,
    region: str,
    account_id: str,
    key_arn: str,
    details: dict[str, Any],
) -> dict[str, Any]:
    """An event the service initiates itself (``DeleteKey``, ``DeleteExpiredKeyMaterial``, ``RotateKey``)."""
    return {
        **_by_aws_internal(event_name, event_time, region, account_id),
        "requestParameters": None,
        "responseElements": None,
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "resources": [_resource(key_arn)],
        "eventType": "AwsServiceEvent",
        "managementEvent": True,
        "recipientAccountId": account_id,
        "serviceEventDetails": details,
        "eventCategory": "Management",
    }


def internal_call_record(
    *,
    event_name: str,
    event_time: float,
    region: str,
    account_id: str,
    key_arn: str,
    request_id: str,
) -> dict[str, Any]:
    """A call the service makes to itself, recorded as AWS records ``SynchronizeMultiRegionKey``: an
    ``AwsApiCall`` by "AWS Internal", without parameters, naming the key in ``responseElements.keyId``
    and ``resources``."""
    return {
        **_by_aws_internal(event_name, event_time, region, account_id),
        "requestParameters": None,
        "responseElements": {"keyId": key_arn},
        "requestID": request_id,
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "resources": [_resource(key_arn)],
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account_id,
        "eventCategory": "Management",
    }


def _by_aws_internal(event_name: str, event_time: float, region: str, account_id: str) -> dict[str, Any]:
    """The first fields of a record of what the service does itself ("AWS Internal")."""
    return {
        "eventVersion": EVENT_VERSION,
        "userIdentity": {"accountId": account_id, "invokedBy": "AWS Internal"},
        "eventTime": iso_time(event_time),
        "eventSource": EVENT_SOURCE,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": "AWS Internal",
        "userAgent": "AWS Internal",
    }


def _resource(arn: str) -> dict[str, str]:
    account = arn.split(":")[4] if arn.count(":") >= 5 else ""
    return {"accountId": account, "type": "AWS::KMS::Key", "ARN": arn}


# The widths of the indexed columns of ``audit_events`` (storage/schema.py). Some values come from the
# client as sent (the event name of an unknown operation is its X-Amz-Target): one longer than its
# column, or holding U+0000 (which PostgreSQL cannot store), would make the database refuse the whole
# batch of records, so the column gets a cleaned prefix; the record (JSON, where U+0000 is escaped)
# keeps the value whole.
_COLUMN_WIDTHS = {
    "account_id": 12,
    "region": 32,
    "event_name": 64,
    "key_id": 64,
    "principal_arn": 2048,
    "error_code": 128,
}


#: The widest value of an ``audit_attributes`` row (a longer value is stored, and looked up, by its prefix).
ATTRIBUTE_WIDTH = 512


def lookup_username(identity: dict[str, Any]) -> str | None:
    """The user name LookupEvents finds a record by: the IAM user's name, ``root`` for the account's
    root user, the session name of an assumed-role session."""
    name = identity.get("userName")
    if isinstance(name, str) and name:
        return name
    kind = identity.get("type")
    if kind == "Root":
        return "root"
    arn = identity.get("arn")
    if kind == "AssumedRole" and isinstance(arn, str) and arn.count("/") >= 2:
        return arn.split("/", 2)[2]
    return None


def lookup_attributes(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The (LookupAttributeKey, value) pairs a record is found by that its columns do not hold
    (EventName and EventId are columns of ``audit_events``); the migration of v10 computes the same
    for older records in SQL."""
    identity = record.get("userIdentity") or {}
    pairs: list[tuple[str, str]] = []
    username = lookup_username(identity)
    if username:
        pairs.append(("Username", username))
    access_key = identity.get("accessKeyId")
    if isinstance(access_key, str) and access_key:
        pairs.append(("AccessKeyId", access_key))
    read_only = record.get("readOnly")
    if isinstance(read_only, bool):
        pairs.append(("ReadOnly", "true" if read_only else "false"))
    source = record.get("eventSource")
    if isinstance(source, str) and source:
        pairs.append(("EventSource", source))
    for resource in record.get("resources") or ():
        if resource.get("type"):
            pairs.append(("ResourceType", resource["type"]))
        if resource.get("ARN"):
            pairs.append(("ResourceName", resource["ARN"]))
    out = []
    for name, value in dict.fromkeys(pairs):  # a resource named twice is one row
        if "\x00" in value:
            value = value.replace("\x00", "")
        if value:
            out.append((name, value[:ATTRIBUTE_WIDTH]))
    return list(dict.fromkeys(out))


def storage_row(
    record: dict[str, Any], event_time: float, key_id: str | None, text: str | None = None
) -> dict[str, Any]:
    """The indexed columns stored beside a record (``text``: the record already serialised), and its
    lookup ``attributes`` (rows of ``audit_attributes``)."""
    identity = record.get("userIdentity") or {}
    row: dict[str, Any] = {
        "event_id": record["eventID"],
        "event_time": event_time,
        "account_id": record.get("recipientAccountId") or identity.get("accountId"),
        "region": record.get("awsRegion"),
        "event_name": record["eventName"],
        "key_id": key_id,
        "principal_arn": identity.get("arn"),
        "error_code": record.get("errorCode"),
        "record": orjson.dumps(record).decode() if text is None else text,
        "attributes": lookup_attributes(record),
    }
    for column, width in _COLUMN_WIDTHS.items():
        value = row[column]
        if isinstance(value, str):
            if "\x00" in value:
                value = value.replace("\x00", "")
            row[column] = value[:width]
    return row


# The error of a call refused by authorization: CloudTrail records it only in the caller's account.
_DENIED = "AccessDeniedException"


def trail_rows(record: dict[str, Any], event_time: float, key_id: str | None) -> list[dict[str, Any]]:
    """The rows an API call's record is stored as: the caller's copy, and one copy for each other
    account whose key the call acted on (CloudTrail delivers a cross-account call to the caller's and
    to the key owner's account; a call refused with AccessDenied only to the caller's).

    Each copy has its own ``eventID`` and its ``recipientAccountId`` (the account receiving it, the
    ``account_id`` column every reader filters on) and all carry the same ``sharedEventID``; a
    same-account call has none. A key owner's copy is indexed under the first of its keys in
    ``resources``. The fields up to ``requestID`` (identity, parameters…) are serialised once for all
    copies: only the short tail from ``eventID`` on differs.

    ``resources`` only ever lists keys the caller was authorized to use (the service adds a key after
    authorizing it), so a call refused before reaching a key of another account has no owner copy.
    """
    caller = record.get("recipientAccountId")
    owners: dict[str, str] | None = None
    if caller is not None and record.get("errorCode") != _DENIED:
        for resource in record["resources"]:
            account = resource["accountId"]
            if account != caller:  # the one test on the path of every call
                if owners is None:
                    owners = {}
                owners.setdefault(account, resource["ARN"])
    if owners is None:
        return [storage_row(record, event_time, key_id)]
    record["sharedEventID"] = fast_uuid()
    record["eventCategory"] = record.pop("eventCategory")  # CloudTrail's order: …sharedEventID, eventCategory
    items = list(record.items())
    split = next(index for index, (name, _) in enumerate(items) if name == "eventID")
    head = orjson.dumps(dict(items[:split]))[:-1] + b","
    tail = dict(items[split:])
    rows = [storage_row(record, event_time, key_id, (head + orjson.dumps(tail)[1:]).decode())]
    for account, arn in owners.items():
        tail["eventID"] = fast_uuid()
        tail["recipientAccountId"] = account
        rows.append(
            {
                **rows[0],
                "event_id": tail["eventID"],
                "account_id": account[: _COLUMN_WIDTHS["account_id"]],
                "key_id": arn.rsplit("/", 1)[-1][: _COLUMN_WIDTHS["key_id"]],
                "record": (head + orjson.dumps(tail)[1:]).decode(),
            }
        )
    return rows
