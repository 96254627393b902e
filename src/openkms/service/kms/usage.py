"""GetKeyLastUsage (answered from the audit trail, which records every call since the key was created)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from openkms.domain.keystate import check_key_state
from openkms.domain.operations import OPERATIONS
from openkms.service.kms.context import RequestContext
from openkms.service.kms.core import KmsCore

# The operations AWS tracks as key usage (the records' ``usage_tracked``).
TRACKED = tuple(name for name, facts in OPERATIONS.items() if facts.usage_tracked)


def get_key_last_usage(core: KmsCore, ctx: RequestContext, *, key_id: str) -> dict[str, Any]:
    record = core.resolve(ctx, key_id, action="GetKeyLastUsage").record
    check_key_state("GetKeyLastUsage", record)
    with core.store.read() as tx:
        # The key owner's copy of the record (another account's use is in the owner's trail too, with
        # its own event id): never an event id of another account's trail.
        found = tx.last_successful_event(record.account_id, record.region, record.key_id, TRACKED)
    result: dict[str, Any] = {
        "key_id": record.arn,
        "tracking_start_date": record.creation_date,
        "key_creation_date": record.creation_date,
    }
    if found is not None:
        event = json.loads(found)
        when = dt.datetime.strptime(event["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        usage: dict[str, Any] = {
            "operation": event["eventName"],
            "timestamp": when.timestamp(),
            "cloud_trail_event_id": event["eventID"],
        }
        if event.get("requestID"):
            usage["kms_request_id"] = event["requestID"]
        result["key_last_usage"] = usage
    return result
