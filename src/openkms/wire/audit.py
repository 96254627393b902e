"""CloudTrail views of requests and responses (``requestParameters`` / ``responseElements``).

Member names are AWS's lower camelCase of the wire names (first letter lowered only, nested too; map
keys unchanged). Every blob member and every member whose shape is marked ``sensitive`` is dropped,
timestamps are rendered in CloudTrail's human format (``"Aug 10, 2022, 10:38:27 PM"``, UTC), and the
responses CloudTrail never records (cryptographic operations, GetKeyPolicy, GetParametersForImport)
are None. These helpers never raise on odd values: a request that failed validation is audited too.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from openkms.domain.operations import OPERATIONS
from openkms.wire import model
from openkms.wire.naming import lower_first, to_snake
from openkms.wire.validate import parse_timestamp

#: Operations whose response CloudTrail records as null (reference §7: responses of cryptographic
#: operations, the GetKeyPolicy response, the GetParametersForImport public key and token): the
#: records' ``response_logged``.
RESPONSE_NOT_LOGGED = frozenset(name for name, facts in OPERATIONS.items() if not facts.response_logged)

#: Parameters CloudTrail records with their default value when the request omitted them (the ct-encrypt
#: and ct-decrypt examples: "always includes the encryptionAlgorithm ... even if ... wasn't specified"):
#: the records' ``logged_defaults``.
REQUEST_DEFAULTS: dict[str, dict[str, Any]] = {
    name: dict(facts.logged_defaults) for name, facts in OPERATIONS.items() if facts.logged_defaults
}

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

Auditor = Callable[[Any], Any]


def human_time(moment: datetime | float) -> str:
    """CloudTrail's date format inside request/response elements: ``Aug 10, 2022, 10:38:27 PM`` (UTC)."""
    if isinstance(moment, datetime):
        when = moment.astimezone(UTC) if moment.tzinfo is not None else moment
    else:
        when = datetime.fromtimestamp(moment, UTC)
    hour = when.hour % 12 or 12
    half = "AM" if when.hour < 12 else "PM"
    clock = f"{hour}:{when.minute:02d}:{when.second:02d} {half}"
    return f"{_MONTHS[when.month - 1]} {when.day}, {when.year}, {clock}"


def _hidden(shape: Any) -> bool:
    """Whether a member of this shape is never logged (blob or sensitive, or a container of such)."""
    if shape.type_name == "blob" or shape.metadata.get("sensitive"):
        return True
    if shape.type_name == "list":
        return _hidden(shape.member)
    if shape.type_name == "map":
        return _hidden(shape.value)
    return False


def _cloudtrail_name(wire: str) -> str:
    """CloudTrail's spelling of a member: lower camelCase, except that a leading ``AWS`` stays as it is
    (``"AWSAccountId"`` in the ct-createkey example's keyMetadata)."""
    return wire if wire.startswith("AWS") else lower_first(wire)


def _same(value: Any) -> Any:
    return value


def _time(value: Any) -> Any:
    """A timestamp given as epoch seconds, an ISO-8601/numeric string or a datetime, humanised."""
    try:
        if isinstance(value, datetime):
            return human_time(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return human_time(float(value))
        if isinstance(value, str):
            return human_time(parse_timestamp(value))
    except (ValueError, OverflowError, OSError):
        pass
    return value


def _plain(value: Any) -> Any:
    """Result leaves: enums are logged as their value."""
    return value.value if isinstance(value, enum.Enum) else value


class _Compiler:
    """Builds (and caches) one auditor per shape for one side: the request (keys are wire names,
    values raw JSON) or the response (keys are snake_case, values Python objects)."""

    def __init__(self, *, snake_keys: bool) -> None:
        self.snake_keys = snake_keys
        self.cache: dict[str, Auditor] = {}
        self.leaf: Auditor = _plain if snake_keys else _same

    def shape(self, shape: Any) -> Auditor:
        found = self.cache.get(shape.name)
        if found is not None:
            return found
        kind = shape.type_name
        auditor: Auditor
        if kind == "structure":
            auditor = self._structure(shape)
        elif kind == "list":
            element = self.shape(shape.member)

            def auditor(value: Any) -> Any:
                if not isinstance(value, list | tuple):
                    return value
                return [element(item) for item in value]

        elif kind == "map":
            item = self.shape(shape.value)

            def auditor(value: Any) -> Any:
                if not isinstance(value, Mapping):
                    return value
                return {key: item(v) for key, v in value.items()}

        elif kind == "timestamp":
            auditor = _time
        else:
            auditor = self.leaf
        self.cache[shape.name] = auditor
        return auditor

    def _structure(self, shape: Any) -> Auditor:
        members: dict[str, tuple[str, Auditor]] = {}

        def auditor(value: Any) -> Any:
            if not isinstance(value, Mapping):
                return value
            out: dict[str, Any] = {}
            for key, item in value.items():
                member = members.get(key)
                if member is not None and item is not None:
                    out[member[0]] = member[1](item)
            return out

        self.cache[shape.name] = auditor
        for wire, member_shape in shape.members.items():
            if not _hidden(member_shape):
                key = to_snake(wire) if self.snake_keys else wire
                members[key] = (_cloudtrail_name(wire), self.shape(member_shape))
        return auditor


_requests = _Compiler(snake_keys=False)
_responses = _Compiler(snake_keys=True)
_request_auditors: dict[str, Auditor | None] = {}
_response_auditors: dict[str, Auditor | None] = {}
_lock = threading.Lock()  # compile under it; publish an operation's auditor only once complete


def _auditor(operation: str, *, request: bool) -> Auditor | None:
    table = _request_auditors if request else _response_auditors
    try:
        return table[operation]
    except KeyError:
        pass
    if operation not in model.operation_names():
        return None
    shape = model.input_shape(operation) if request else model.output_shape(operation)
    with _lock:
        if operation not in table:
            table[operation] = None if shape is None else (_requests if request else _responses).shape(shape)
        return table[operation]


def audit_request_parameters(operation: str, raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """CloudTrail ``requestParameters`` of a request given as its raw (PascalCase) JSON object.

    None when nothing is left to log (no parameters, or only secret ones) or the operation is unknown.
    """
    auditor = _auditor(operation, request=True)
    if auditor is None or not raw:
        return None
    logged: dict[str, Any] = auditor(raw)
    for name, default in REQUEST_DEFAULTS.get(operation, {}).items():
        logged.setdefault(name, default)
    return logged or None


def audit_response_elements(operation: str, result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """CloudTrail ``responseElements`` of a snake_case result (as given to ``encode_response``).

    None for a None/empty result, an operation whose response CloudTrail does not record
    (:data:`RESPONSE_NOT_LOGGED`), or when nothing is left to log.
    """
    if not result or operation in RESPONSE_NOT_LOGGED:
        return None
    auditor = _auditor(operation, request=False)
    if auditor is None:
        return None
    logged: dict[str, Any] = auditor(result)
    return logged or None
