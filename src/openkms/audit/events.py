"""Builders for CloudTrail-format records (``eventVersion`` 1.11, ``eventSource`` kms.amazonaws.com).

Records never contain plaintexts, ciphertexts, key material, signatures, MACs or tokens: callers pass
request parameters and response elements already filtered by the wire layer, and the cryptographic
operations pass ``None`` for their response elements.
"""

from __future__ import annotations

import random
import time
import uuid
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
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


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


def api_call_record(
    *,
    event_name: str,
    event_time: float,
    region: str,
    principal: Principal | None,
    access_key_id: str | None,
    source_ip: str,
    user_agent: str,
    request_id: str,
    request_parameters: dict[str, Any] | None,
    response_elements: dict[str, Any] | None,
    resources: list[str],
    additional_event_data: dict[str, Any] | None,
    error_code: str | None,
    error_message: str | None,
    recipient_account_id: str | None,
    event_source: str = EVENT_SOURCE,
    read_only: bool | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": user_identity(principal, access_key_id),
        "eventTime": iso_time(event_time),
        "eventSource": event_source,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": user_agent,
    }
    if error_code is not None:
        record["errorCode"] = error_code
        record["errorMessage"] = error_message or ""
    record["requestParameters"] = request_parameters
    record["responseElements"] = response_elements
    if additional_event_data:
        record["additionalEventData"] = additional_event_data
    record.update(
        {
            "requestID": request_id,
            "eventID": fast_uuid(),
            "readOnly": event_name in READ_ONLY if read_only is None else read_only,
            "resources": [_resource(arn) for arn in resources],
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": recipient_account_id,
            "eventCategory": "Management",
        }
    )
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
        "eventVersion": EVENT_VERSION,
        "userIdentity": {"accountId": account_id, "invokedBy": "AWS Internal"},
        "eventTime": iso_time(event_time),
        "eventSource": EVENT_SOURCE,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": "AWS Internal",
        "userAgent": "AWS Internal",
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


def storage_row(
    record: dict[str, Any], event_time: float, key_id: str | None, text: str | None = None
) -> dict[str, Any]:
    """The indexed columns stored beside a record (``text``: the record already serialised)."""
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
