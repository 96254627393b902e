"""The CloudTrail JSON API's wire format, from botocore's ``cloudtrail`` service model: its target
prefix and operation names, LookupEvents's request decoded and checked against the model with
CloudTrail's own errors (not KMS's ValidationException), and its response encoded with the model's
member names.

CloudTrail answers a constraint the model states with the operation's error: an unknown
``AttributeKey``, a missing or over-long ``AttributeValue`` or more than one attribute
(InvalidLookupAttributesException), ``MaxResults`` outside 1..50 (InvalidMaxResultsException), an
``EventCategory`` other than ``insight`` (InvalidEventCategoryException). A JSON value of the wrong
kind is a SerializationException, as on the KMS API.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import orjson

from openkms.errors import (
    InvalidEventCategoryException,
    InvalidLookupAttributesException,
    InvalidMaxResultsException,
    SerializationException,
)
from openkms.wire import shapes
from openkms.wire.messages import wrong_kind
from openkms.wire.naming import lower_first
from openkms.wire.validate import parse_body, parse_timestamp

SERVICE_NAME = "cloudtrail"


@functools.cache  # pure memos: the model shipped with botocore
def cloudtrail_model() -> shapes.ServiceShapes:
    """The shapes of botocore's CloudTrail model, read without botocore (:mod:`openkms.wire.shapes`)."""
    return shapes.load(SERVICE_NAME)


@functools.cache
def target_prefix() -> str:
    """``com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101``: the X-Amz-Target of its operations."""
    return str(cloudtrail_model().metadata["targetPrefix"])


@functools.cache
def operation_names() -> frozenset[str]:
    return frozenset(cloudtrail_model().operation_names)


@functools.cache
def _lookup_shapes() -> dict[str, Any]:
    request = cloudtrail_model().operation("LookupEvents").input_shape
    attribute = request.members["LookupAttributes"].member
    return {
        "request": request,
        "keys": tuple(attribute.members["AttributeKey"].enum),
        "value": attribute.members["AttributeValue"].metadata,
        "max_results": request.members["MaxResults"].metadata,
        "categories": tuple(request.members["EventCategory"].enum),
    }


@functools.cache
def event_members() -> frozenset[str]:
    """The members of an entry of the response's ``Events`` (and ``Resources``)."""
    output = cloudtrail_model().operation("LookupEvents").output_shape
    event = output.members["Events"].member
    return frozenset(event.members) | frozenset(event.members["Resources"].member.members)


@dataclass(frozen=True, slots=True)
class LookupRequest:
    """A LookupEvents request as checked: ``attribute`` (key, value) or None, epoch-second times."""

    attribute: tuple[str, str] | None
    start_time: float | None
    end_time: float | None
    event_category: str | None
    max_results: int | None
    next_token: str | None
    raw: dict[str, Any]


def _string(value: Any) -> str:
    if type(value) is not str:
        raise wrong_kind(value, "String")
    return value


def _time(value: Any, member: str) -> float | None:
    if value is None:
        return None
    if type(value) is int or type(value) is float:
        return float(value)
    if type(value) is str:
        try:
            return parse_timestamp(value)
        except (ValueError, OverflowError):
            raise SerializationException(
                f"Value at '{lower_first(member)}' is not a valid timestamp"
            ) from None
    raise wrong_kind(value, "Timestamp")


def decode_lookup_events(body: bytes) -> LookupRequest:
    """The checked request, or CloudTrail's error (members the model does not have are ignored)."""
    raw = parse_body(body)
    shapes = _lookup_shapes()
    attribute: tuple[str, str] | None = None
    attributes = raw.get("LookupAttributes")
    if attributes is not None:
        if type(attributes) is not list:
            raise wrong_kind(attributes, "List")
        if len(attributes) > 1:
            raise InvalidLookupAttributesException("You can only specify one lookup attribute.")
        for item in attributes:
            if type(item) is not dict:
                raise wrong_kind(item, "Structure")
            key, value = item.get("AttributeKey"), item.get("AttributeValue")
            key = None if key is None else _string(key)
            value = None if value is None else _string(value)
            if key is None or key not in shapes["keys"]:
                raise InvalidLookupAttributesException(f"Lookup attribute key {key} is not valid.")
            low, high = shapes["value"].get("min", 1), shapes["value"].get("max", 2000)
            if value is None or not low <= len(value) <= high:
                raise InvalidLookupAttributesException(
                    f"The value of lookup attribute {key} is not valid: it must be between {low} and {high} "
                    "characters long."
                )
            if key == "ReadOnly" and value not in ("true", "false"):
                raise InvalidLookupAttributesException(
                    "The value of lookup attribute ReadOnly is not valid: it must be true or false."
                )
            attribute = (key, value)
    max_results = raw.get("MaxResults")
    if max_results is not None:
        if type(max_results) is float and max_results.is_integer():
            max_results = int(max_results)
        if type(max_results) is not int:
            raise wrong_kind(max_results, "Integer")
        low, high = shapes["max_results"]["min"], shapes["max_results"]["max"]
        if not low <= max_results <= high:
            raise InvalidMaxResultsException(
                f"A max results value of {max_results} is invalid. "
                f"Specify max results between {low} and {high}."
            )
    category = raw.get("EventCategory")
    if category is not None:
        category = _string(category)
        if category not in shapes["categories"]:
            raise InvalidEventCategoryException(
                f"Event category {category} is not valid. Valid values: {', '.join(shapes['categories'])}."
            )
    token = raw.get("NextToken")
    return LookupRequest(
        attribute=attribute,
        start_time=_time(raw.get("StartTime"), "StartTime"),
        end_time=_time(raw.get("EndTime"), "EndTime"),
        event_category=category,
        max_results=max_results,
        next_token=None if token is None else _string(token),
        raw=raw,
    )


def encode_lookup_events(events: list[dict[str, Any]], next_token: str | None) -> bytes:
    """The LookupEvents response body (``EventTime`` in epoch seconds, as the JSON protocol sends a
    timestamp; members without a value are left out)."""
    members = event_members()
    for event in events:
        unknown = (set(event) | {k for r in event.get("Resources", ()) for k in r}) - members
        if unknown:
            raise KeyError(f"not members of the model's Event: {sorted(unknown)}")
    body: dict[str, Any] = {"Events": events}
    if next_token is not None:
        body["NextToken"] = next_token
    return orjson.dumps(body)


def audit_lookup_request(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """LookupEvents's ``requestParameters`` as CloudTrail records them (camelCase members)."""
    if raw is None:
        return None
    members = _lookup_shapes()["request"].members
    return {lower_first(name): _camel(raw[name]) for name in members if raw.get(name) is not None}


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {lower_first(k): _camel(v) for k, v in value.items() if isinstance(k, str)}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value
